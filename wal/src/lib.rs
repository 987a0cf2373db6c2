//! The transaction log. Owns: the segment format (`format`), making batches durable with one
//! write and one sync each (`writer`), reading a log back after a crash or from a zxid
//! (`recover`), cutting it back to a zxid for a learner's TRUNC (`truncate`), and the
//! storage backends that move bytes (`backend`).
//!
//! Guarantees: `WalWriter::append` returns only when every transaction in the batch is
//! durable (unless `forceSync=no`); after a crash, recovery returns exactly a prefix of what
//! was appended that includes everything `append` returned for. A torn tail (a write in
//! progress at the crash) is truncated and logged; any other damage is an error naming the
//! file and offset, never a silent skip. A failed write or sync poisons the writer: it
//! refuses every later append, because the kernel may have dropped the dirty pages.
//!
//! Never: decide what a transaction means, or call a clock. Only `backend` touches files.

pub mod backend;
pub mod format;
pub mod recover;
pub mod truncate;
pub mod writer;

pub use backend::{Backend, FileStorage, MemStorage, Segment, SegmentImage, Storage, SyncMode};
pub use recover::{recover, RecoverError, Recovered};
pub use truncate::{truncate_after, TruncateError, Truncated};
pub use writer::{WalError, WalWriter};
