//! One server of an ensemble over real disks and sockets: what runs the sans-IO cores
//! (`rzk_quorum::Peer`, `rzk_pipeline::Core`) against the WAL, the data dir and the peer
//! transport.
//!
//! Owns: the disk stage (`disk.rs`), which carries out the quorum core's disk requests in
//! their order on a thread of its own, so the core keeps taking ACKs and heartbeats while a
//! sync runs.
//! Never: decide anything the cores decide, or report a disk request done before it is
//! durable (a follower's ACK and an epoch it acts on rest on that).

pub mod disk;

pub use disk::{DiskDone, DiskStage, Purger};
