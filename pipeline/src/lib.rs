//! The request pipeline as sans-IO state machines: events in, actions out, no I/O and no clock.
//!
//! Stages follow ZooKeeper's processor chain (DESIGN.md §3):
//! - `prep`: validate a write against the speculative tree, fix every value, produce a txn.
//! - `batch`: when a batch of txns closes (the batching flags); the driver's log stage makes
//!   each batch durable with one write and one sync (group commit) and reports `Durable`.
//! - `commit`: per-session FIFO, so reads queued behind a session's writes see them.
//! - `apply`: release durable txns in zxid order: publish the tree, fire watches, reply.
//! - `read`: answer reads against one published tree version (also used by the event loops).
//!
//! `roles` wires them for a standalone server; a follower will reuse the same stages with
//! `Durable` replaced by the quorum's commit notice.
//!
//! Never: touch sockets, files or clocks; block; allocate per-request threads.

pub mod apply;
pub mod batch;
pub mod commit;
pub mod prep;
pub mod read;
pub mod roles;

pub use roles::{Actions, ConnId, CoreConfig, Input, Output, Standalone};
