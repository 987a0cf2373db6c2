//! Placeholder: filled in by the TLS work.
