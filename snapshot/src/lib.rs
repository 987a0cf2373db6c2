//! Snapshots: the znode tree and the session table exactly as of one zxid, on disk, so that
//! recovery can load the newest valid one and replay the transaction log from zxid + 1.
//!
//! In: a *published* (immutable) [`Tree`] version, taken in the background while writes go on,
//! and the session records as of the same zxid. Out: `snapshot.<zxid as 16 hex digits>` files
//! in the data dir, and [`Snapshot`]s loaded back from them.
//! Byte layout: [`docs/FORMAT-snapshot.md`](../../docs/FORMAT-snapshot.md) (a fixed,
//! crc32c-checked header; a zstd-compressed body of the sessions, then the nodes with their
//! ACL lists interned; a crc32c trailer over the compressed body).
//!
//! Owns: the snapshot format (`format`: pure functions on bytes, fuzzable), the snapshot
//! files (`files`: naming, atomic write via temp + fsync + rename + dir fsync, listing,
//! purge by count), a snapshot streamed to a learner (`stream`: chunked encode, and an
//! install that completes and checks the file like `write` and `load`), and an ensemble
//! server's two epoch files beside them (`write_epoch`, `read_epoch`, written the same
//! atomic way).
//! Holds: a file exists under its final name only once it is complete and durable; a temp
//! file is never listed; [`decode`] never panics on any input, never allocates more than the
//! bytes it has actually seen justify, and accepts a file only if its magic, version, both
//! checksums, every length, every count and the tree's own invariants add up exactly (no
//! trailing bytes).
//! Never: snapshot a tree the writer is still changing (only a published version, so a
//! snapshot is an exact state, not ZooKeeper's fuzzy one); stop or slow the pipeline; touch
//! the transaction log or decide which log records to replay or delete ([`purge`] only reports
//! the oldest retained zxid); skip or repair a corrupt snapshot silently ([`load`] returns
//! [`SnapshotError::Corrupt`] naming file and offset, and recovery decides what to do).

mod files;
mod format;
mod stream;

use std::fmt;
use std::path::PathBuf;

use rzk_tree::Tree;

pub use files::{
    list, load, load_with, purge, read_epoch, write, write_epoch, write_image, EpochFile,
    SNAP_RETAIN_COUNT_MIN,
};
pub use format::{decode, decode_with, encode, FORMAT_VERSION, HEADER_BYTES, MAGIC, TRAILER_BYTES};
pub use stream::{stream, Framing, Install};

/// One session as a snapshot keeps it: enough to let a client reattach after a restart.
/// Expiry deadlines are not kept: after recovery every session gets a fresh full timeout, as
/// in ZooKeeper (`SessionTrackerImpl` re-adds sessions from the snapshot with their timeout).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: i64,
    pub timeout_ms: i32,
    pub passwd: [u8; 16],
}

impl From<&rzk_session::DurableSession> for SessionRecord {
    fn from(s: &rzk_session::DurableSession) -> Self {
        SessionRecord {
            id: s.id,
            timeout_ms: s.timeout_ms,
            passwd: s.passwd,
        }
    }
}

impl From<&SessionRecord> for rzk_session::DurableSession {
    fn from(r: &SessionRecord) -> Self {
        rzk_session::DurableSession {
            id: r.id,
            timeout_ms: r.timeout_ms,
            passwd: r.passwd,
        }
    }
}

impl fmt::Debug for SessionRecord {
    // The password lets anyone reattach the session: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("id", &format_args!("{:#x}", self.id))
            .field("timeout_ms", &self.timeout_ms)
            .field("passwd", &"<redacted>")
            .finish()
    }
}

/// A loaded snapshot: the tree and the sessions as of `zxid` (`== tree.last_zxid()`).
pub struct Snapshot {
    pub zxid: i64,
    pub tree: Tree,
    pub sessions: Vec<SessionRecord>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("zxid", &format_args!("{:#x}", self.zxid))
            .field("node_count", &self.tree.node_count())
            .field("session_count", &self.sessions.len())
            .finish()
    }
}

/// Why a snapshot could not be loaded. `Corrupt` means the bytes are not a snapshot this code
/// wrote intact; recovery may fall back to an older snapshot but must say so loudly.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `path` is empty when the bytes came from [`decode`] rather than a file. `offset` is the
    /// file offset of the first byte found wrong; for a fault inside the compressed body
    /// (checksum mismatch, zstd error, bad record) it is the body's start, [`HEADER_BYTES`],
    /// and `reason` gives the detail (for a bad record, its offset in the uncompressed body).
    #[error("{}: corrupt snapshot at byte {offset}: {reason}", shown(.path))]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn shown(path: &std::path::Path) -> String {
    if path.as_os_str().is_empty() {
        "<bytes>".to_owned()
    } else {
        path.display().to_string()
    }
}
