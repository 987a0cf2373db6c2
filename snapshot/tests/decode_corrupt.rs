//! Goal: no damaged or forged snapshot decodes, none panics, and every error names an offset.
//! Method: every single-bit flip and every truncation of a small snapshot (caught by the
//! checksums and lengths); hand-framed bodies with valid checksums but bad records (caught by
//! the parser); and seeded random mutations of the uncompressed body, re-framed with valid
//! checksums so they reach the parser and `Tree::from_nodes` (replay with SEED=0x...).

mod common;

use common::*;
use rzk_proto::Acl;
use rzk_snapshot::{decode, encode, SnapshotError, HEADER_BYTES};

fn corrupt_offset(bytes: &[u8]) -> (u64, String) {
    match decode(bytes) {
        Ok(s) => panic!("decoded a damaged snapshot: {s:?}"),
        Err(SnapshotError::Corrupt {
            path,
            offset,
            reason,
        }) => {
            assert!(path.as_os_str().is_empty());
            assert!(offset <= bytes.len() as u64, "offset {offset} past the end");
            (offset, reason)
        }
        Err(e) => panic!("not a Corrupt error: {e}"),
    }
}

fn small_snapshot() -> Vec<u8> {
    encode(&every_kind_tree(), &sessions())
}

#[test]
fn every_single_bit_flip_is_detected() {
    let bytes = small_snapshot();
    assert!(
        bytes.len() < 2000,
        "keep this test small: {} bytes",
        bytes.len()
    );
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[i] ^= 1 << bit;
            let (offset, reason) = corrupt_offset(&damaged);
            let expected = match i {
                0..4 => 0,
                4..8 => 4,
                8..HEADER_BYTES => 48,
                // Body or trailer: the body's checksum fails, reported at the body's start.
                _ => HEADER_BYTES as u64,
            };
            assert_eq!(offset, expected, "flip of byte {i} bit {bit}: {reason}");
        }
    }
}

#[test]
fn every_truncation_is_detected_at_the_cut() {
    let bytes = small_snapshot();
    for cut in 0..bytes.len() {
        let (offset, reason) = corrupt_offset(&bytes[..cut]);
        assert_eq!(offset, cut as u64, "cut at {cut}: {reason}");
    }
}

#[test]
fn trailing_garbage_is_rejected() {
    let bytes = small_snapshot();
    for extra in [&[0u8][..], b"x", &[0; 4096]] {
        let mut longer = bytes.clone();
        longer.extend_from_slice(extra);
        let (offset, _) = corrupt_offset(&longer);
        assert_eq!(offset, bytes.len() as u64);
    }
}

#[test]
fn foreign_files_and_future_versions_are_rejected() {
    assert_eq!(corrupt_offset(b"").0, 0);
    assert_eq!(corrupt_offset(b"ZKSN\0\0\0\x02").0, 0);
    assert_eq!(corrupt_offset(&[0u8; 100]).0, 0);
    let mut bytes = small_snapshot();
    bytes[4] = 2;
    let (offset, reason) = corrupt_offset(&bytes);
    assert_eq!(offset, 4);
    assert!(reason.contains("version 2"), "{reason}");
}

/// A valid small body: one session, the open ACL, "/" and "/a".
fn good_body() -> BodyBuilder {
    let mut b = BodyBuilder::default();
    b.session(&sessions()[0]);
    b.node(
        b"/",
        &stat(0, 0, 0, 1),
        Some(b""),
        0,
        Some(&Acl::open_unsafe()),
    );
    b.node(b"/a", &stat(1, 0, 3, 0), Some(b"abc"), 0, None);
    b
}

fn body_reason(bytes: &[u8]) -> String {
    let (offset, reason) = corrupt_offset(bytes);
    assert_eq!(offset, HEADER_BYTES as u64, "{reason}");
    reason
}

#[test]
fn records_that_do_not_add_up_are_rejected_despite_valid_checksums() {
    let good = good_body().bytes;
    decode(&frame(5, 2, 1, &good)).unwrap();

    // Counts that cannot fit the declared body.
    assert!(body_reason(&frame(5, u64::MAX, 1, &good)).contains("cannot fit"));
    assert!(body_reason(&frame(5, 2, u64::MAX / 2, &good)).contains("cannot fit"));
    // One node more or fewer than the body holds.
    body_reason(&frame(5, 1, 1, &good));
    body_reason(&frame(5, 2, 0, &good));
    // Declared uncompressed length off by one either way.
    let compressed = zstd::bulk::compress(&good, 1).unwrap();
    for declared in [good.len() as u64 - 1, good.len() as u64 + 1, u64::MAX] {
        let h = HeaderFields {
            zxid: 5,
            node_count: 2,
            session_count: 1,
            body_uncompressed_bytes: declared,
        };
        body_reason(&frame_compressed(h, &compressed));
    }
    // Bytes after the last node.
    let mut longer = good.clone();
    longer.push(0);
    assert!(body_reason(&frame(5, 2, 1, &longer)).contains("end at byte"));

    let mut b = BodyBuilder::default();
    b.session(&sessions()[0]);
    b.node(
        b"/",
        &stat(0, 0, 0, 1),
        Some(b""),
        0,
        Some(&Acl::open_unsafe()),
    );
    let prefix = b.bytes.clone();

    // An ACL reference beyond the next new number.
    let mut bad = BodyBuilder {
        bytes: prefix.clone(),
    };
    bad.node(b"/a", &stat(1, 0, 3, 0), Some(b"abc"), 2, None);
    assert!(body_reason(&frame(5, 2, 1, &bad.bytes)).contains("ACL reference 2"));
    // A new ACL list whose entries are missing.
    let mut bad = BodyBuilder {
        bytes: prefix.clone(),
    };
    bad.node(b"/a", &stat(1, 0, 3, 0), Some(b"abc"), 1, None);
    body_reason(&frame(5, 2, 1, &bad.bytes));
    // A path that is not UTF-8.
    let mut bad = BodyBuilder {
        bytes: prefix.clone(),
    };
    bad.node(b"/\xff", &stat(1, 0, 3, 0), Some(b"abc"), 0, None);
    assert!(body_reason(&frame(5, 2, 1, &bad.bytes)).contains("UTF-8"));
    // Records fine, tree not: a node without its parent, a wrong child count, a bad path,
    // a duplicate, a dataLength that disagrees with the data.
    for (path, data_length) in [(&b"/x/a"[..], 3), (b"/a/", 3), (b"/", 3), (b"/a", 2)] {
        let mut bad = BodyBuilder {
            bytes: prefix.clone(),
        };
        bad.node(path, &stat(1, 0, data_length, 0), Some(b"abc"), 0, None);
        assert!(body_reason(&frame(5, 2, 1, &bad.bytes)).contains("valid tree"));
    }
    // A data length far beyond the body: must fail without allocating it.
    let mut bad = BodyBuilder {
        bytes: prefix.clone(),
    };
    bad.u32(1)
        .raw(b"/")
        .stat(&stat(1, 0, 0, 0))
        .u32(0x7fff_fff0);
    body_reason(&frame(5, 2, 1, &bad.bytes));
    let h = HeaderFields {
        zxid: 5,
        node_count: 2,
        session_count: 1,
        body_uncompressed_bytes: u64::MAX / 2,
    };
    body_reason(&frame_compressed(
        h,
        &zstd::bulk::compress(&bad.bytes, 1).unwrap(),
    ));
    // A new ACL list claiming 4 billion entries.
    let mut bad = BodyBuilder {
        bytes: prefix.clone(),
    };
    bad.u32(2)
        .raw(b"/a")
        .stat(&stat(1, 0, 0, 0))
        .u32(0)
        .u32(1)
        .u32(u32::MAX);
    body_reason(&frame(5, 2, 1, &bad.bytes));
}

#[test]
fn compressed_bodies_that_are_not_zstd_frames_of_the_body_are_rejected() {
    let good = good_body().bytes;
    let h = HeaderFields {
        zxid: 5,
        node_count: 2,
        session_count: 1,
        body_uncompressed_bytes: good.len() as u64,
    };
    // Not zstd at all.
    assert!(body_reason(&frame_compressed(h, &good)).contains("zstd"));
    // Empty.
    body_reason(&frame_compressed(h, &[]));
    // The frame cut short (checksums recomputed, so only zstd can tell).
    let compressed = zstd::bulk::compress(&good, 1).unwrap();
    for cut in 0..compressed.len() {
        body_reason(&frame_compressed(h, &compressed[..cut]));
    }
    // The body twice, or once and garbage.
    let mut two = compressed.clone();
    two.extend_from_slice(&compressed);
    body_reason(&frame_compressed(h, &two));
    let mut tail = compressed.clone();
    tail.push(0);
    body_reason(&frame_compressed(h, &tail));
    // The body may be cut into frames anywhere, even inside a record.
    for cut in [1, 40, good.len() - 1] {
        let mut halves = zstd::bulk::compress(&good[..cut], 1).unwrap();
        halves.extend_from_slice(&zstd::bulk::compress(&good[cut..], 1).unwrap());
        decode(&frame_compressed(h, &halves)).unwrap();
    }
    // A frame asking for a window larger than 1 MiB.
    // (Streaming with an unknown size, so zstd cannot shrink the window to the input.)
    let mut big_window = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    big_window.window_log(27).unwrap();
    big_window.include_contentsize(false).unwrap();
    std::io::Write::write_all(&mut big_window, &good).unwrap();
    let compressed = big_window.finish().unwrap();
    assert!(body_reason(&frame_compressed(h, &compressed)).contains("zstd"));
}

#[test]
fn random_body_mutations_never_panic() {
    let (h, body) = unframe(&small_snapshot());
    let mut rng = Rng::from_env();
    // RZK_MUTATIONS raises the count for a longer soak.
    let rounds: usize = std::env::var("RZK_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let mut decoded = 0;
    for _ in 0..rounds {
        let mut b = body.clone();
        let mut fields = h;
        for _ in 0..1 + rng.below(4) {
            let op = rng.below(6);
            if b.is_empty() && op < 3 {
                continue;
            }
            match op {
                0 | 1 => {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
                2 => {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
                3 => b.truncate(rng.below(b.len() + 1)),
                4 => {
                    let i = rng.below(b.len() + 1);
                    let v = [0u8, 1, 0xff, 0x7f, 0x80][rng.below(5)];
                    b.insert(i, v);
                }
                _ => match rng.below(2) {
                    0 => fields.node_count = rng.below(30) as u64,
                    _ => fields.session_count = rng.below(5) as u64,
                },
            }
        }
        fields.body_uncompressed_bytes = b.len() as u64;
        let compressed = zstd::bulk::compress(&b, 1).unwrap();
        // Decoding may succeed (a flipped stat or data byte is still a valid snapshot);
        // it must never panic, and an error must point into the body.
        if decode(&frame_compressed(fields, &compressed)).is_ok() {
            decoded += 1;
        } else {
            body_reason(&frame_compressed(fields, &compressed));
        }
    }
    eprintln!("{decoded} of {rounds} mutated bodies still decoded");
}
