//! Reading the log back at startup: which transactions follow a snapshot, where appending
//! resumes, and whether the tail needs truncating.
//!
//! Scenario this exists for: 1) batch 7 is durable, batch 8 is half written; 2) crash;
//! 3) recovery returns batches ≤ 7, reports the torn tail at batch 8's offset, and the
//! writer zeroes it before appending there. Batch 8 was never acknowledged, so nothing a
//! client saw is lost. Damage anywhere else cannot come from a crash and stops startup.

use thiserror::Error;

use rzk_proto::Txn;

use crate::backend::Storage;
use crate::format::{self, SegmentEnd};

#[derive(Debug, Error)]
pub enum RecoverError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        path: String,
        offset: u64,
        reason: String,
    },
    #[error("the log does not cover zxid {expected:#x}: {detail}")]
    Gap { expected: i64, detail: String },
}

/// Where the writer resumes: the last segment and the offset after its last valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub segment: String,
    pub base_zxid: i64,
    pub offset: u64,
    /// Bytes from `offset` up to here must be zeroed first (a torn write).
    pub zero_until: u64,
}

#[derive(Debug, Default)]
pub struct Recovered {
    /// Transactions after `after_zxid`, in order.
    pub txns: Vec<Txn>,
    /// The last zxid in the log (or `after_zxid` if the log holds nothing newer).
    pub last_zxid: i64,
    pub tail: Option<Tail>,
    /// Every segment, oldest first, with its base zxid.
    pub segments: Vec<(i64, String)>,
    /// A torn tail that was found (for the log line).
    pub torn: Option<(String, u64, String)>,
    /// The newest segment, if its creation completed but its header write did not: it holds
    /// nothing and the writer deletes it.
    pub discard: Option<String>,
}

/// Segments sorted by base zxid.
pub fn list_segments(storage: &dyn Storage) -> Result<Vec<(i64, String)>, RecoverError> {
    let mut segments: Vec<(i64, String)> = storage
        .list()
        .map_err(|source| RecoverError::Io {
            path: storage.describe(""),
            source,
        })?
        .into_iter()
        .filter_map(|name| format::parse_segment_name(&name).map(|z| (z, name)))
        .collect();
    segments.sort();
    Ok(segments)
}

/// Reads every transaction after `after_zxid` (the snapshot's zxid; 0 without one).
pub fn recover(storage: &dyn Storage, after_zxid: i64) -> Result<Recovered, RecoverError> {
    let segments = list_segments(storage)?;
    let mut out = Recovered {
        last_zxid: after_zxid,
        segments: segments.clone(),
        ..Recovered::default()
    };
    if segments.is_empty() {
        return Ok(out);
    }
    let mut segments = segments;
    let read = |name: &str| {
        storage.read(name).map_err(|source| RecoverError::Io {
            path: storage.describe(name),
            source,
        })
    };
    // The last segment is read once, here, and scanned below (it is the one recovery
    // always needs).
    let mut last_image = None;
    // A crash between creating a segment and writing its header leaves a zero-filled file
    // with a torn header and nothing else: no transaction can be in it.
    if let Some((_, name)) = segments.last() {
        let image = read(name)?;
        let body = image.get(format::SEGMENT_HEADER_BYTES..).unwrap_or(&[]);
        if format::check_segment_header(&image).is_err() && body.iter().all(|&b| b == 0) {
            out.discard = Some(name.clone());
            segments.pop();
            out.segments.pop();
        } else {
            last_image = Some(image);
        }
    }
    if segments.is_empty() {
        return Ok(out);
    }
    // Segments wholly before the snapshot need no reading: the next one starts at or before
    // the first zxid we need.
    let first_needed = segments
        .iter()
        .rposition(|(base, _)| *base <= after_zxid + 1)
        .unwrap_or(0);
    let (first_base, first_name) = &segments[first_needed];
    // A new epoch may start right after the snapshot: an ensemble's history goes from
    // (e, n) to (e + 1, 1) when what followed (e, n) was never committed, or the counter
    // ran out. Within the log the same rule holds (below).
    let next_epoch = (*first_base >> 32) > (after_zxid >> 32);
    if *first_base > after_zxid + 1 && !next_epoch {
        return Err(RecoverError::Gap {
            expected: after_zxid + 1,
            detail: format!(
                "the oldest segment {} starts at {first_base:#x}",
                storage.describe(first_name)
            ),
        });
    }
    let mut prev = after_zxid;
    let mut seen_any = false;
    let mut max_seen = 0;
    let last_index = segments.len() - 1;
    for (index, (base, name)) in segments.iter().enumerate().skip(first_needed) {
        let path = storage.describe(name);
        let image = match last_image.take_if(|_| index == last_index) {
            Some(image) => image,
            None => read(name)?,
        };
        // Until a transaction past the snapshot has been seen, older ones are only
        // checksummed, not decoded: the snapshot holds them.
        let scanned = if seen_any {
            format::scan_segment(&image)
        } else {
            format::scan_segment_after(&image, after_zxid)
        }
        .map_err(|(offset, reason)| RecoverError::Corrupt {
            path: path.clone(),
            offset: offset as u64,
            reason,
        })?;
        if scanned.base_zxid != *base {
            return Err(RecoverError::Corrupt {
                path,
                offset: 16,
                reason: format!(
                    "header says base zxid {:#x}, the name says {base:#x}",
                    scanned.base_zxid
                ),
            });
        }
        if let Some(first) = scanned.first_zxid {
            if first != *base {
                return Err(RecoverError::Corrupt {
                    path,
                    offset: (format::SEGMENT_HEADER_BYTES + format::BATCH_HEADER_BYTES) as u64,
                    reason: format!("first zxid {first:#x} is not the base zxid {base:#x}"),
                });
            }
        }
        max_seen = max_seen.max(scanned.skipped_max_zxid);
        for (offset, txn) in scanned.txns {
            max_seen = max_seen.max(txn.zxid);
            // The scan left out the leading transactions at or below the snapshot's zxid.
            debug_assert!(seen_any || txn.zxid > after_zxid);
            // Zxids are consecutive within an epoch; a new epoch restarts the counter.
            let consecutive = txn.zxid == prev + 1 || (txn.zxid >> 32) > (prev >> 32);
            if !consecutive {
                return Err(RecoverError::Gap {
                    expected: prev + 1,
                    detail: format!("{path} at byte offset {offset} holds {:#x}", txn.zxid),
                });
            }
            prev = txn.zxid;
            seen_any = true;
            out.txns.push(txn);
        }
        let (end_offset, zero_until) = match scanned.end {
            SegmentEnd::Clean { offset } => (offset, offset),
            SegmentEnd::Torn {
                offset,
                extent_end,
                reason,
            } => {
                if index != last_index {
                    // Only the last write can be torn; a later segment means this write
                    // completed before it, so the damage is real.
                    return Err(RecoverError::Corrupt {
                        path,
                        offset: offset as u64,
                        reason: format!("{reason}, and newer segments follow"),
                    });
                }
                out.torn = Some((path.clone(), offset as u64, reason));
                (offset, extent_end)
            }
            SegmentEnd::Corrupt { offset, reason } => {
                return Err(RecoverError::Corrupt {
                    path,
                    offset: offset as u64,
                    reason,
                })
            }
        };
        if index == last_index {
            out.tail = Some(Tail {
                segment: name.clone(),
                base_zxid: *base,
                offset: end_offset as u64,
                zero_until: zero_until as u64,
            });
        }
    }
    // The snapshot holds only durable state, so the log reaches at least its zxid.
    if max_seen < after_zxid {
        return Err(RecoverError::Gap {
            expected: after_zxid,
            detail: format!("the log ends at {max_seen:#x}, before the snapshot's zxid"),
        });
    }
    out.last_zxid = prev.max(after_zxid);
    Ok(out)
}
