//! Cutting the log back to a zxid: what a learner does when its new leader sends TRUNC
//! (its log holds proposals of an older epoch that the ensemble never committed).
//!
//! The cut can fall inside a group-commit frame, and the frame's first part may hold
//! transactions a quorum acknowledged, so the frame is never rewritten in place: a torn
//! rewrite would lose them. Instead, in this order, each step durable before the next:
//! 1. segments wholly after the cut are removed, newest first;
//! 2. the segment holding the cut is copied, up to the cut, into a fresh segment under a
//!    name recovery ignores (`<segment>.trunc`), frame by frame with one sync each;
//! 3. that copy is renamed over the segment (an atomic replace, the directory synced).
//!
//! A crash at any point leaves either the old log, or the old log without some segments
//! that lay wholly after the cut (a prefix of it that still holds everything up to the
//! cut), or the cut log. A left-over copy is removed by the next truncation.
//!
//! Never: run while a `WalWriter` is open on the same directory (the caller closes it and
//! opens a new one afterwards).

use thiserror::Error;

use rzk_proto::Txn;

use crate::backend::Storage;
use crate::format::{self, SegmentEnd};
use crate::recover::{list_segments, RecoverError};

/// Recovery never takes a file with this suffix for a segment (segment names are exactly
/// `log.` and 16 hex digits).
const COPY_SUFFIX: &str = ".trunc";

/// A copied frame holds at most this many bytes of records, well under the format's limit.
const COPY_FRAME_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum TruncateError {
    #[error("truncating the log in {path} failed: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Listing(#[from] RecoverError),
    #[error("{path}: corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        path: String,
        offset: u64,
        reason: String,
    },
}

/// What a truncation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Truncated {
    /// Segments removed because every transaction in them was after the cut.
    pub removed_segments: Vec<String>,
    /// Transactions after the cut dropped from the segment that held the cut.
    pub dropped_txns: usize,
    /// The last zxid kept in the segment that held the cut (`None` if it kept none).
    pub last_zxid: Option<i64>,
}

/// Removes every transaction with a zxid above `after` from the log in `storage`, durably
/// and crash-safely (see the module docs).
pub fn truncate_after(storage: &mut dyn Storage, after: i64) -> Result<Truncated, TruncateError> {
    let io = |storage: &dyn Storage, name: &str| {
        let path = storage.describe(name);
        move |source| TruncateError::Io { path, source }
    };
    let stale: Vec<String> = storage
        .list()
        .map_err(io(storage, ""))?
        .into_iter()
        .filter(|name| name.ends_with(COPY_SUFFIX))
        .collect();
    for name in stale {
        storage.remove(&name).map_err(io(storage, &name))?;
    }
    let segments = list_segments(storage)?;
    let mut out = Truncated::default();
    // Newest first: a crash part-way leaves the newest segments gone and the older ones
    // whole, never a hole in the middle.
    for (base, name) in segments.iter().rev() {
        if *base > after {
            storage.remove(name).map_err(io(storage, name))?;
            out.removed_segments.push(name.clone());
        }
    }
    let Some((_, name)) = segments.iter().rev().find(|(base, _)| *base <= after) else {
        return Ok(out);
    };
    let image = storage.read(name).map_err(io(storage, name))?;
    let scanned =
        format::scan_segment(&image).map_err(|(offset, reason)| TruncateError::Corrupt {
            path: storage.describe(name),
            offset: offset as u64,
            reason,
        })?;
    if let SegmentEnd::Corrupt { offset, reason } = &scanned.end {
        return Err(TruncateError::Corrupt {
            path: storage.describe(name),
            offset: *offset as u64,
            reason: reason.clone(),
        });
    }
    // A segment's txns are in zxid order: what stays is a prefix.
    let keep = scanned.txns.partition_point(|(_, txn)| txn.zxid <= after);
    out.dropped_txns = scanned.txns.len() - keep;
    if out.dropped_txns == 0 {
        out.last_zxid = scanned.txns.last().map(|(_, t)| t.zxid);
        return Ok(out);
    }
    let base_zxid = scanned.base_zxid;
    let kept: Vec<Txn> = scanned
        .txns
        .into_iter()
        .take(keep)
        .map(|(_, txn)| txn)
        .collect();
    out.last_zxid = kept.last().map(|t| t.zxid);
    let copy = format!("{name}{COPY_SUFFIX}");
    let mut segment = storage
        .create(&copy, image.len() as u64)
        .map_err(io(storage, &copy))?;
    let mut offset = 0u64;
    let header = format::encode_segment_header(base_zxid);
    segment
        .write_durable(offset, &header)
        .map_err(io(storage, &copy))?;
    offset += header.len() as u64;
    let mut frame = Vec::new();
    let mut start = 0;
    while start < kept.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < kept.len() && (end == start || bytes < COPY_FRAME_BYTES) {
            bytes += kept[end].encoded_len() + format::RECORD_HEADER_BYTES;
            end += 1;
        }
        frame.clear();
        format::encode_batch(&kept[start..end], &mut frame);
        segment
            .write_durable(offset, &frame)
            .map_err(io(storage, &copy))?;
        offset += frame.len() as u64;
        start = end;
    }
    drop(segment);
    storage.rename(&copy, name).map_err(io(storage, name))?;
    Ok(out)
}
