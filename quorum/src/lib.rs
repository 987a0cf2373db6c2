//! ZAB as sans-IO state machines.
