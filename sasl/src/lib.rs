//! Placeholder: filled in by the SASL work.
