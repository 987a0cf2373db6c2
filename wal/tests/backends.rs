//! Goal: the three `--wal-backend`s write the same bytes, keep them when the process dies
//! without closing anything, and produce logs that recovery and the writer continue; and
//! asking for io_uring either gets io_uring or a reported fallback, never a silent one.
//! Method: for each backend, write through `FileStorage::with_backend` on a real directory
//! and compare a fresh `std::fs::read` of the files with the expected image; then run
//! `WalWriter` over segment rolls, recover, reopen with another backend, append, recover.
//! Where io_uring is unavailable the io_uring cases run on the fallback, assert that it was
//! reported, and print that io_uring was not tested.

use std::path::PathBuf;

use rzk_proto::{Txn, TxnBody};
use rzk_wal::backend::{probe_io_uring, Backend};
use rzk_wal::{recover, FileStorage, Storage, SyncMode, WalWriter};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rzk-wal-backends-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Storage on `backend`, checking that the backend in use is the one asked for, or pwrite
/// for io_uring exactly when the probe fails.
fn open_storage(dir: &std::path::Path, sync: SyncMode, backend: Backend) -> FileStorage {
    let (storage, used) = FileStorage::with_backend(dir, sync, backend).unwrap();
    assert_eq!(storage.backend(), used);
    match (backend, probe_io_uring()) {
        (Backend::Uring, Err(e)) => {
            assert_eq!(
                used,
                Backend::Pwrite,
                "a failed probe must be reported as a fallback"
            );
            eprintln!("io_uring not available ({e}): the io_uring case ran on the pwrite fallback");
        }
        _ => assert_eq!(used, backend),
    }
    storage
}

#[test]
fn io_uring_is_used_when_the_probe_succeeds_and_reported_when_not() {
    let dir = temp_dir("probe");
    let (_, used) = FileStorage::with_backend(&dir, SyncMode::Data, Backend::Uring).unwrap();
    match probe_io_uring() {
        Ok(()) => assert_eq!(used, Backend::Uring),
        Err(e) => {
            assert_eq!(used, Backend::Pwrite);
            eprintln!("io_uring NOT available here ({e}); checked that the fallback is reported");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes that straddle page boundaries, touch both ends of the segment, and overwrite.
const WRITES: &[(u64, usize, u8)] = &[
    (0, 32, 1),
    (32, 5000, 2),
    (4090, 20, 3),
    (8192, 4096, 4),
    (65536 - 7, 7, 5),
    (100, 3, 6),
];
const SEGMENT_BYTES: u64 = 65536;

fn expected_image() -> Vec<u8> {
    let mut image = vec![0u8; SEGMENT_BYTES as usize];
    for &(offset, len, fill) in WRITES {
        image[offset as usize..offset as usize + len].fill(fill);
    }
    image
}

#[test]
fn each_backend_writes_frames_at_their_offsets() {
    for sync in [SyncMode::Data, SyncMode::None] {
        for backend in Backend::ALL {
            let dir = temp_dir(&format!("offsets-{backend}-{sync:?}"));
            let mut storage = open_storage(&dir, sync, backend);
            let mut segment = storage.create("seg", SEGMENT_BYTES).unwrap();
            assert_eq!(segment.size(), SEGMENT_BYTES);
            // Written in two halves, the second through a reopened segment.
            let (first, second) = WRITES.split_at(3);
            for &(offset, len, fill) in first {
                segment.write_durable(offset, &vec![fill; len]).unwrap();
            }
            drop(segment);
            let mut segment = storage.open("seg").unwrap();
            assert_eq!(segment.size(), SEGMENT_BYTES);
            for &(offset, len, fill) in second {
                segment.write_durable(offset, &vec![fill; len]).unwrap();
            }
            let image = std::fs::read(dir.join("seg")).unwrap();
            assert!(
                image == expected_image(),
                "{backend} {sync:?}: file differs"
            );
            assert!(*storage.read("seg").unwrap() == *expected_image());
            assert!(!dir.join("seg.tmp").exists());
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}

#[test]
fn bytes_survive_a_process_that_never_closes_or_unmaps() {
    for backend in Backend::ALL {
        let dir = temp_dir(&format!("forget-{backend}"));
        let mut storage = open_storage(&dir, SyncMode::Data, backend);
        let mut segment = storage.create("seg", SEGMENT_BYTES).unwrap();
        for &(offset, len, fill) in WRITES {
            segment.write_durable(offset, &vec![fill; len]).unwrap();
        }
        // As at a kill -9: no close, no munmap, no ring teardown, no destructor at all.
        std::mem::forget(segment);
        std::mem::forget(storage);
        let image = std::fs::read(dir.join("seg")).unwrap();
        assert!(image == expected_image(), "{backend}: file differs");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

fn txn(zxid: i64) -> Txn {
    Txn {
        zxid,
        time_ms: zxid * 3,
        session_id: 0x1234,
        cxid: zxid as i32,
        body: TxnBody::SetData {
            path: format!("/bench/n{}", zxid % 100),
            data: Some(vec![(zxid % 251) as u8; 700]),
            version: zxid as i32,
        },
    }
}

fn batch(first: i64, count: i64) -> Vec<Txn> {
    (first..first + count).map(txn).collect()
}

/// 1 MiB is the writer's smallest segment; 300 batches of 16 × ~800 bytes roll it at least twice.
const LOG_SEGMENT_BYTES: u64 = 1024 * 1024;

#[test]
fn recovery_reads_and_continues_each_backends_log() {
    for backend in Backend::ALL {
        let dir = temp_dir(&format!("recover-{backend}"));
        let storage = open_storage(&dir, SyncMode::Data, backend);
        let recovered = recover(&storage, 0).unwrap();
        let mut writer = WalWriter::open(Box::new(storage), &recovered, LOG_SEGMENT_BYTES).unwrap();
        let mut next = 1;
        for _ in 0..300 {
            writer.append(&batch(next, 16)).unwrap();
            next += 16;
        }
        // Dropped without a close, as a crash would: WalWriter's Drop only joins the thread
        // preallocating the next segment (leaked, it could still be writing when the
        // directory is removed at the end).
        drop(writer);
        let reader = FileStorage::open(&dir, SyncMode::Data).unwrap();
        let recovered = recover(&reader, 0).unwrap();
        assert!(
            recovered.segments.len() >= 3,
            "{backend}: the log rolled segments"
        );
        assert!(recovered.torn.is_none(), "{backend}: no torn tail");
        assert_eq!(recovered.last_zxid, next - 1, "{backend}");
        assert!(
            recovered.txns == batch(1, next - 1),
            "{backend}: recovered txns differ"
        );

        // Continue the same log on every backend in turn: the tail segment is reopened.
        for other in Backend::ALL {
            let storage = open_storage(&dir, SyncMode::Data, other);
            let recovered = recover(&storage, 0).unwrap();
            let mut writer =
                WalWriter::open(Box::new(storage), &recovered, LOG_SEGMENT_BYTES).unwrap();
            for count in [1, 7, 40] {
                writer.append(&batch(next, count)).unwrap();
                next += count;
            }
        }
        let recovered = recover(&FileStorage::open(&dir, SyncMode::Data).unwrap(), 0).unwrap();
        assert_eq!(recovered.last_zxid, next - 1, "{backend}");
        assert!(
            recovered.txns == batch(1, next - 1),
            "{backend}: continued log differs"
        );
        // Recovery after a snapshot point reads only what follows it.
        let after = recover(&FileStorage::open(&dir, SyncMode::Data).unwrap(), 1000).unwrap();
        assert!(after.txns == batch(1001, next - 1001), "{backend}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_torn_tail_left_by_one_backend_is_zeroed_by_each_backend() {
    for backend in Backend::ALL {
        let dir = temp_dir(&format!("torn-{backend}"));
        let storage = open_storage(&dir, SyncMode::Data, Backend::Pwrite);
        let recovered = recover(&storage, 0).unwrap();
        let mut writer = WalWriter::open(Box::new(storage), &recovered, LOG_SEGMENT_BYTES).unwrap();
        writer.append(&batch(1, 5)).unwrap();
        writer.append(&batch(6, 5)).unwrap();
        drop(writer);
        let segment = dir.join("log.0000000000000001");
        let clean_end = recover(&FileStorage::open(&dir, SyncMode::Data).unwrap(), 0)
            .unwrap()
            .tail
            .unwrap()
            .offset;
        // A torn third frame: its first 100 bytes look like a batch header and records.
        let mut image = std::fs::read(&segment).unwrap();
        let mut torn = Vec::new();
        rzk_wal::format::encode_batch(&batch(11, 5), &mut torn);
        image[clean_end as usize..clean_end as usize + 100].copy_from_slice(&torn[..100]);
        std::fs::write(&segment, &image).unwrap();

        let storage = open_storage(&dir, SyncMode::Data, backend);
        let recovered = recover(&storage, 0).unwrap();
        assert!(
            recovered.torn.is_some(),
            "{backend}: the torn frame is found"
        );
        assert_eq!(recovered.last_zxid, 10);
        let mut writer = WalWriter::open(Box::new(storage), &recovered, LOG_SEGMENT_BYTES).unwrap();
        writer.append(&batch(11, 3)).unwrap();
        drop(writer);
        let recovered = recover(&FileStorage::open(&dir, SyncMode::Data).unwrap(), 0).unwrap();
        assert!(
            recovered.torn.is_none(),
            "{backend}: the torn bytes were zeroed"
        );
        assert!(recovered.txns == batch(1, 13), "{backend}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
