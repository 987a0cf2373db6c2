//! The whole ensemble in one process and one thread, driven by one seed.
//!
//! Owns: the simulated network, disks, clocks and clients, the fault schedule, and the
//! checkers that judge a run (see docs/SIMULATION.md).
//! Never: read a real clock, spawn a thread, touch a socket or a file, or use unseeded
//! randomness: a seed must replay exactly.

pub mod linearizability;
