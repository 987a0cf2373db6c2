//! The request pipeline as sans-IO state machines: events in, actions out, no I/O and no clock.
//!
//! Stages follow ZooKeeper's processor chain (DESIGN.md §3):
//! - `prep`: validate a write against the speculative tree, fix every value, produce a txn.
//! - `batch`: when a batch of txns closes (the batching flags); the driver's log stage makes
//!   each batch durable with one write and one sync (group commit); once a quorum holds it
//!   (standalone: this server alone) the driver reports it `Committed`.
//! - `commit`: per-session FIFO, so reads queued behind a session's writes see them.
//! - `apply`: release committed txns in zxid order: publish the tree, fire watches, reply.
//! - `read`: answer reads against one published tree version (also used by the event loops).
//!
//! `roles` wires them into one core for every role: a front end all roles run, a proposer
//! only the leader runs (a standalone server is a leader whose quorum is itself), and one
//! release path for the leader's own txns and a learner's replicated ones.
//!
//! Never: touch sockets, files or clocks; block; allocate per-request threads.

pub mod apply;
pub mod batch;
pub mod commit;
pub mod entry;
pub mod prep;
pub mod read;
pub mod roles;

pub use roles::{
    Actions, ConnId, Core, CoreConfig, Forwarded, ForwardedOp, Input, Output, SessionChange,
};
