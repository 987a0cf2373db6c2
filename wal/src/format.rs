//! The on-disk format of log segments (byte diagrams in docs/FORMAT-wal.md). Pure functions on
//! byte slices: encoding a batch, and scanning a segment image into transactions plus a
//! verdict on how the segment ends. No I/O here, so recovery logic can be fuzzed and tested on
//! images that never touched a disk.

use rzk_proto::{Reader, Txn, Writer};

pub const SEGMENT_MAGIC: [u8; 8] = *b"RZKWAL01";
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_BYTES: usize = 32;
pub const BATCH_MAGIC: u32 = 0x525a_4b42; // "RZKB"
pub const BATCH_HEADER_BYTES: usize = 16;
pub const RECORD_HEADER_BYTES: usize = 16;
/// The largest batch frame. One frame is one write and one sync; a torn write can only damage
/// the last frame, and recovery relies on everything past a damaged last frame being zeros.
pub const BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
const _: () = assert!(BATCH_BYTES_MAX < u32::MAX as usize);
const _: () = assert!(SEGMENT_HEADER_BYTES >= 28);

/// Segment file name for a segment whose first transaction is `base_zxid`.
pub fn segment_name(base_zxid: i64) -> String {
    format!("log.{base_zxid:016x}")
}

pub fn parse_segment_name(name: &str) -> Option<i64> {
    let hex = name.strip_prefix("log.")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
}

pub fn encode_segment_header(base_zxid: i64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_be_bytes());
    h[12..16].copy_from_slice(&(SEGMENT_HEADER_BYTES as u32).to_be_bytes());
    h[16..24].copy_from_slice(&base_zxid.to_be_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_be_bytes());
    h
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// Appends one batch frame holding `txns` to `out`.
pub fn encode_batch(txns: &[Txn], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; BATCH_HEADER_BYTES]);
    let mut w = Writer::new();
    for txn in txns {
        w.bytes.clear();
        txn.encode(&mut w);
        let payload = &w.bytes;
        let zxid = txn.zxid.to_be_bytes();
        let mut crc = crc32c::crc32c(&zxid);
        crc = crc32c::crc32c_append(crc, payload);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&zxid);
        out.extend_from_slice(payload);
    }
    let body_len = (out.len() - start - BATCH_HEADER_BYTES) as u32;
    out[start..start + 4].copy_from_slice(&BATCH_MAGIC.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&body_len.to_be_bytes());
    out[start + 8..start + 12].copy_from_slice(&(txns.len() as u32).to_be_bytes());
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&out[start..start + 12]),
        &out[start + BATCH_HEADER_BYTES..],
    );
    out[start + 12..start + 16].copy_from_slice(&crc.to_be_bytes());
}

/// How a segment image ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Valid frames up to `offset`, zeros after it.
    Clean { offset: usize },
    /// The last frame, starting at `offset`, is incomplete and nothing follows it: a write
    /// that was in progress at a crash (never acknowledged). Recovery zeroes
    /// `offset..extent_end` and appends from `offset`.
    Torn {
        offset: usize,
        extent_end: usize,
        reason: String,
    },
    /// Damage with data after it: not explainable by a crash.
    Corrupt { offset: usize, reason: String },
}

#[derive(Debug)]
pub struct ScannedSegment {
    pub base_zxid: i64,
    /// Every transaction in the valid frames that was not skipped, with its offset.
    pub txns: Vec<(usize, Txn)>,
    /// The zxid of the segment's first record, skipped or not.
    pub first_zxid: Option<i64>,
    /// The largest zxid among the records skipped (checksummed but not decoded); 0 if none.
    pub skipped_max_zxid: i64,
    pub end: SegmentEnd,
}

fn all_zero(bytes: &[u8]) -> bool {
    // Eight bytes at a time: recovery checks up to a whole preallocated segment.
    let (words, tail) = bytes.as_chunks::<8>();
    words.iter().all(|w| u64::from_ne_bytes(*w) == 0) && tail.iter().all(|&b| b == 0)
}

/// Checks a segment header; `Err` names the problem (offset 0).
pub fn check_segment_header(image: &[u8]) -> Result<i64, String> {
    if image.len() < SEGMENT_HEADER_BYTES {
        return Err(format!(
            "file is {} bytes, shorter than the {SEGMENT_HEADER_BYTES}-byte segment header",
            image.len()
        ));
    }
    if image[0..8] != SEGMENT_MAGIC {
        return Err("not an rzk log segment (bad magic)".into());
    }
    if be_u32(&image[8..12]) != SEGMENT_FORMAT_VERSION {
        return Err(format!(
            "unknown segment format version {}",
            be_u32(&image[8..12])
        ));
    }
    if be_u32(&image[24..28]) != crc32c::crc32c(&image[0..24]) {
        return Err("segment header checksum mismatch".into());
    }
    Ok(be_i64(&image[16..24]))
}

/// Skipping the records at the start of a segment that a snapshot already holds.
struct Skip {
    /// Records whose zxid is at most this, up to the first that is not, are checksummed but
    /// not decoded: a restart after a snapshot would otherwise decode a segment's worth of
    /// transactions only to drop them. `None` once a record above it was seen.
    through: Option<i64>,
    first_zxid: Option<i64>,
    max_zxid: i64,
}

/// Decodes one batch frame's body into transactions, checking every record.
fn decode_batch_body(
    body: &[u8],
    record_count: u32,
    skip: &mut Skip,
) -> Result<Vec<(usize, Txn)>, (usize, String)> {
    let mut txns = Vec::new();
    let mut at = 0usize;
    for _ in 0..record_count {
        if body.len() - at < RECORD_HEADER_BYTES {
            return Err((at, "record header runs past the frame".into()));
        }
        let len = be_u32(&body[at..]) as usize;
        let crc = be_u32(&body[at + 4..]);
        let zxid_bytes = &body[at + 8..at + 16];
        let payload_start = at + RECORD_HEADER_BYTES;
        if body.len() - payload_start < len {
            return Err((at, format!("record of {len} bytes runs past the frame")));
        }
        let payload = &body[payload_start..payload_start + len];
        if crc32c::crc32c_append(crc32c::crc32c(zxid_bytes), payload) != crc {
            return Err((at, "record checksum mismatch".into()));
        }
        let zxid = be_i64(zxid_bytes);
        skip.first_zxid.get_or_insert(zxid);
        if let Some(through) = skip.through {
            if zxid <= through {
                skip.max_zxid = skip.max_zxid.max(zxid);
                at = payload_start + len;
                continue;
            }
            skip.through = None;
        }
        let mut r = Reader::new(payload);
        let txn = Txn::decode(&mut r).map_err(|e| (at, format!("record does not decode: {e}")))?;
        if txn.zxid != zxid {
            return Err((at, "record zxid does not match its transaction".into()));
        }
        txns.push((at, txn));
        at = payload_start + len;
    }
    if at != body.len() {
        return Err((at, "frame has bytes after its last record".into()));
    }
    Ok(txns)
}

/// The offset of the first complete frame with a valid checksum at or after `from`.
fn find_valid_frame(image: &[u8], from: usize) -> Option<usize> {
    let magic = BATCH_MAGIC.to_be_bytes();
    let last_start = image.len().checked_sub(BATCH_HEADER_BYTES)?;
    let mut start = from;
    while start <= last_start {
        if image[start] != magic[0] || image[start..start + 4] != magic {
            start += 1;
            continue;
        }
        let header = &image[start..start + BATCH_HEADER_BYTES];
        let body_len = be_u32(&header[4..]) as usize;
        if body_len <= BATCH_BYTES_MAX && start + BATCH_HEADER_BYTES + body_len <= image.len() {
            let body = &image[start + BATCH_HEADER_BYTES..start + BATCH_HEADER_BYTES + body_len];
            let crc = crc32c::crc32c_append(crc32c::crc32c(&header[..12]), body);
            if crc == be_u32(&header[12..]) {
                return Some(start);
            }
        }
        start += 1;
    }
    None
}

/// Scans a whole segment image. Never panics; every problem is reported with an offset.
pub fn scan_segment(image: &[u8]) -> Result<ScannedSegment, (usize, String)> {
    scan(image, None)
}

/// Scans a whole segment image as `scan_segment` does, checking every frame and record, but
/// leaves undecoded the records from the start up to the first with a zxid above
/// `skip_through` (recovery's snapshot zxid).
pub fn scan_segment_after(
    image: &[u8],
    skip_through: i64,
) -> Result<ScannedSegment, (usize, String)> {
    scan(image, Some(skip_through))
}

fn scan(image: &[u8], skip_through: Option<i64>) -> Result<ScannedSegment, (usize, String)> {
    let base_zxid = check_segment_header(image).map_err(|e| (0, e))?;
    let mut skip = Skip {
        through: skip_through,
        first_zxid: None,
        max_zxid: 0,
    };
    let mut txns = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES;
    let end = loop {
        let rest = &image[at..];
        if rest.len() < BATCH_HEADER_BYTES {
            break if all_zero(rest) {
                SegmentEnd::Clean { offset: at }
            } else {
                SegmentEnd::Torn {
                    offset: at,
                    extent_end: image.len(),
                    reason: "partial frame header at the end of the file".into(),
                }
            };
        }
        let header = &rest[..BATCH_HEADER_BYTES];
        let magic = be_u32(header);
        let body_len = be_u32(&header[4..]) as usize;
        let record_count = be_u32(&header[8..]);
        let crc = be_u32(&header[12..]);
        let damaged = |reason: String, claimed_end: usize| {
            // A crash tears only the last write, and a write is one frame: a complete,
            // valid frame after the damage proves the damaged frame was written (and
            // synced) before it, so that is corruption, never a torn tail.
            if let Some(next) = find_valid_frame(image, at + 1) {
                return SegmentEnd::Corrupt {
                    offset: at,
                    reason: format!("{reason}; a valid frame follows at offset {next}"),
                };
            }
            let last_nonzero = image.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            let extent_end = claimed_end.max(last_nonzero).min(image.len());
            if extent_end <= at || all_zero(&image[at..extent_end]) {
                SegmentEnd::Clean { offset: at }
            } else {
                SegmentEnd::Torn {
                    offset: at,
                    extent_end,
                    reason,
                }
            }
        };
        let max_extent = at + BATCH_HEADER_BYTES + BATCH_BYTES_MAX;
        // The common end: the preallocated zeros after the last frame.
        if magic == 0 && all_zero(rest) {
            break SegmentEnd::Clean { offset: at };
        }
        if magic != BATCH_MAGIC {
            break damaged("no frame header".into(), max_extent);
        }
        if body_len > BATCH_BYTES_MAX {
            break damaged(format!("frame claims {body_len} bytes"), max_extent);
        }
        let frame_end = at + BATCH_HEADER_BYTES + body_len;
        if frame_end > image.len() {
            break damaged("frame runs past the end of the file".into(), frame_end);
        }
        let body = &image[at + BATCH_HEADER_BYTES..frame_end];
        let actual = crc32c::crc32c_append(crc32c::crc32c(&header[..12]), body);
        if actual != crc {
            break damaged("frame checksum mismatch".into(), frame_end);
        }
        match decode_batch_body(body, record_count, &mut skip) {
            Ok(batch) => {
                txns.extend(
                    batch
                        .into_iter()
                        .map(|(off, txn)| (at + BATCH_HEADER_BYTES + off, txn)),
                );
            }
            // The frame checksum held, so this is not a torn write: bad bytes were written.
            Err((off, reason)) => {
                break SegmentEnd::Corrupt {
                    offset: at + BATCH_HEADER_BYTES + off,
                    reason,
                }
            }
        }
        at = frame_end;
    };
    Ok(ScannedSegment {
        base_zxid,
        txns,
        first_zxid: skip.first_zxid,
        skipped_max_zxid: skip.max_zxid,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rzk_proto::TxnBody;

    pub(crate) fn txn(zxid: i64) -> Txn {
        Txn {
            zxid,
            time_ms: 1,
            session_id: 2,
            cxid: 3,
            body: TxnBody::Delete {
                path: format!("/n{zxid}"),
            },
        }
    }

    fn image(batches: &[&[i64]], zeros: usize) -> Vec<u8> {
        let mut img = encode_segment_header(batches[0][0]).to_vec();
        for b in batches {
            let txns: Vec<Txn> = b.iter().map(|&z| txn(z)).collect();
            encode_batch(&txns, &mut img);
        }
        img.extend(std::iter::repeat_n(0, zeros));
        img
    }

    #[test]
    fn clean_segment_scans_every_txn() {
        let img = image(&[&[1, 2], &[3]], 100);
        let s = scan_segment(&img).unwrap();
        assert_eq!(s.base_zxid, 1);
        assert_eq!(
            s.txns.iter().map(|(_, t)| t.zxid).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(
            s.end,
            SegmentEnd::Clean {
                offset: img.len() - 100
            }
        );
    }

    #[test]
    fn skipping_leaves_out_only_the_leading_records_a_snapshot_holds() {
        let img = image(&[&[5, 6], &[7, 8, 9]], 100);
        let zxids = |s: &ScannedSegment| s.txns.iter().map(|(_, t)| t.zxid).collect::<Vec<_>>();
        for (through, expect, skipped_max) in [
            (i64::MIN, vec![5, 6, 7, 8, 9], 0),
            (6, vec![7, 8, 9], 6),
            (7, vec![8, 9], 7),
            (9, vec![], 9),
            (100, vec![], 9),
        ] {
            let s = scan_segment_after(&img, through).unwrap();
            assert_eq!(zxids(&s), expect, "through {through}");
            assert_eq!(s.first_zxid, Some(5));
            assert_eq!(s.skipped_max_zxid, skipped_max);
            assert_eq!(s.end, scan_segment(&img).unwrap().end);
        }
        // Only a prefix is skipped: a lower zxid after a higher one is decoded, for recovery
        // to reject.
        let img = image(&[&[5, 9], &[6]], 0);
        assert_eq!(zxids(&scan_segment_after(&img, 6).unwrap()), [9, 6]);
        // Damage among the skipped records is still found.
        let mut img = image(&[&[5, 6], &[7]], 0);
        let last = img.len() - 1;
        img[last] ^= 1;
        let bad = image(&[&[5, 6]], 0).len();
        assert!(matches!(
            scan_segment_after(&img, 100).unwrap().end,
            SegmentEnd::Torn { offset, .. } if offset == bad
        ));
    }

    #[test]
    fn every_truncation_of_the_last_frame_is_torn_never_corrupt() {
        let full = image(&[&[1, 2], &[3, 4]], 0);
        let first_end = image(&[&[1, 2]], 0).len();
        for cut in first_end + 1..full.len() {
            let mut img = full[..cut].to_vec();
            img.extend(std::iter::repeat_n(0, 64));
            let s = scan_segment(&img).unwrap();
            assert_eq!(s.txns.len(), 2, "cut at {cut}");
            assert!(
                matches!(s.end, SegmentEnd::Torn { offset, .. } if offset == first_end),
                "cut at {cut}: {:?}",
                s.end
            );
        }
    }

    #[test]
    fn a_flipped_bit_before_a_valid_frame_is_corrupt() {
        let mut img = image(&[&[1, 2], &[3, 4]], 10);
        img[SEGMENT_HEADER_BYTES + BATCH_HEADER_BYTES + 20] ^= 0x10;
        let s = scan_segment(&img).unwrap();
        assert!(s.txns.is_empty());
        assert!(
            matches!(s.end, SegmentEnd::Corrupt { offset, .. } if offset == SEGMENT_HEADER_BYTES)
        );
    }

    #[test]
    fn a_bad_header_is_an_error_at_offset_zero() {
        let mut img = image(&[&[1]], 0);
        img[3] ^= 1;
        assert_eq!(scan_segment(&img).unwrap_err().0, 0);
        assert!(scan_segment(&img[..10]).is_err());
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_name(0x1_0000_0001), "log.0000000100000001");
        assert_eq!(
            parse_segment_name("log.0000000100000001"),
            Some(0x1_0000_0001)
        );
        assert_eq!(parse_segment_name("log.x"), None);
    }
}
