//! Goal: recovery on real files truncates a torn tail and refuses real corruption.
//! Method: write a log with the pwrite backend, then (a) cut the last frame at every byte
//! offset, both by zeroing the rest and by shortening the file, and (b) flip single bits in
//! earlier frames; recovery must keep every earlier transaction in case (a) and fail naming
//! the file and offset in case (b).

use std::path::{Path, PathBuf};

use rzk_proto::{Txn, TxnBody};
use rzk_wal::{recover, FileStorage, RecoverError, SyncMode, WalWriter};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rzk-wal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn txn(zxid: i64) -> Txn {
    Txn {
        zxid,
        time_ms: 0,
        session_id: 1,
        cxid: 0,
        body: TxnBody::Create {
            path: format!("/node{zxid}"),
            data: Some(vec![7; 40]),
            acl: rzk_proto::Acl::open_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: zxid as i32,
            reply_stat: false,
        },
    }
}

const SEGMENT_BYTES: u64 = 1024 * 1024;

/// Writes batches [1..=3], [4..=5], [6..=8]; returns the segment path and each frame's end.
fn write_log(dir: &Path) -> (PathBuf, Vec<u64>) {
    let storage = FileStorage::open(dir, SyncMode::None).unwrap();
    let recovered = recover(&storage, 0).unwrap();
    let mut writer = WalWriter::open(Box::new(storage), &recovered, SEGMENT_BYTES).unwrap();
    let mut ends = Vec::new();
    for batch in [1..=3, 4..=5, 6..=8] {
        let txns: Vec<Txn> = batch.map(txn).collect();
        writer.append(&txns).unwrap();
        let storage = FileStorage::open(dir, SyncMode::None).unwrap();
        ends.push(recover(&storage, 0).unwrap().tail.unwrap().offset);
    }
    let segment = dir.join("log.0000000000000001");
    (segment, ends)
}

#[test]
fn every_cut_of_the_last_frame_is_truncated_and_logged() {
    let dir = temp_dir("torn");
    let (segment, ends) = write_log(&dir);
    let pristine = std::fs::read(&segment).unwrap();
    let (last_start, last_end) = (ends[1], ends[2]);
    // Cutting off bytes that are zero anyway changes nothing; stop at the last non-zero one.
    let last_nonzero = (last_start..last_end)
        .rev()
        .find(|&i| pristine[i as usize] != 0)
        .unwrap();
    for cut in last_start..=last_nonzero {
        for shorten in [false, true] {
            let mut image = pristine.clone();
            if shorten {
                image.truncate(cut as usize);
            } else {
                image[cut as usize..last_end as usize].fill(0);
            }
            std::fs::write(&segment, &image).unwrap();
            // A shortened segment makes the writer roll to a new one; start each case clean.
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path != segment {
                    std::fs::remove_file(path).unwrap();
                }
            }
            let storage = FileStorage::open(&dir, SyncMode::None).unwrap();
            let recovered = recover(&storage, 0).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            assert_eq!(recovered.last_zxid, 5, "cut {cut} shorten {shorten}");
            let tail = recovered.tail.clone().unwrap();
            assert_eq!(tail.offset, last_start);
            if cut > last_start {
                assert!(
                    recovered.torn.is_some(),
                    "cut {cut}: a torn tail is reported"
                );
            }
            // Reopening zeroes the torn bytes; the next append lands where the torn one was.
            let mut writer = WalWriter::open(Box::new(storage), &recovered, SEGMENT_BYTES).unwrap();
            writer.append(&[txn(6)]).unwrap();
            let storage = FileStorage::open(&dir, SyncMode::None).unwrap();
            assert_eq!(recover(&storage, 0).unwrap().last_zxid, 6, "cut {cut}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_flipped_bit_in_an_earlier_frame_names_file_and_offset() {
    let dir = temp_dir("flip");
    let (segment, ends) = write_log(&dir);
    let pristine = std::fs::read(&segment).unwrap();
    for at in (32..ends[1] as usize).step_by(7) {
        let mut image = pristine.clone();
        image[at] ^= 0x04;
        std::fs::write(&segment, &image).unwrap();
        let storage = FileStorage::open(&dir, SyncMode::None).unwrap();
        match recover(&storage, 0) {
            Err(RecoverError::Corrupt { path, offset, .. }) => {
                assert!(path.ends_with("log.0000000000000001"), "{path}");
                assert!(
                    offset <= at as u64,
                    "offset {offset} after the flip at {at}"
                );
            }
            other => panic!("flip at {at}: expected corruption, got {other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_middle_segment_is_a_gap() {
    let dir = temp_dir("gap");
    let storage = FileStorage::open(&dir, SyncMode::None).unwrap();
    let recovered = recover(&storage, 0).unwrap();
    // Segments of the minimum size roll after a few frames of large data.
    let mut writer = WalWriter::open(Box::new(storage), &recovered, 0).unwrap();
    let big = |zxid: i64| Txn {
        body: TxnBody::SetData {
            path: "/big".into(),
            data: Some(vec![1; 300_000]),
            version: 1,
        },
        ..txn(zxid)
    };
    for z in 1..=12 {
        writer.append(&[big(z)]).unwrap();
    }
    // Joins the thread preallocating the next segment: still writing when the directory is
    // removed below, it made remove_dir_all fail now and then (DirectoryNotEmpty).
    drop(writer);
    let storage = FileStorage::open(&dir, SyncMode::None).unwrap();
    let segments = recover(&storage, 0).unwrap().segments;
    assert!(segments.len() >= 3, "{segments:?}");
    std::fs::remove_file(dir.join(&segments[1].1)).unwrap();
    match recover(&storage, 0) {
        Err(RecoverError::Gap { .. }) => {}
        other => panic!("expected a gap, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An ensemble's history may go from the snapshot's (e, n) straight to (e + 1, 1): what
/// followed (e, n) was never committed, or a learner installed a SNAP and appends after it.
/// A log that starts later within the snapshot's own epoch still lacks something.
#[test]
fn a_log_may_start_a_new_epoch_right_after_the_snapshot_but_not_skip_within_one() {
    let dir = temp_dir("epoch-start");
    let storage = FileStorage::open(&dir, SyncMode::None).unwrap();
    let recovered = recover(&storage, 0).unwrap();
    let mut writer = WalWriter::open(Box::new(storage), &recovered, 0).unwrap();
    let (e1, e2) = (1i64 << 32, 2i64 << 32);
    writer.append(&[txn(e2 + 1), txn(e2 + 2)]).unwrap();
    drop(writer);
    let storage = FileStorage::open(&dir, SyncMode::None).unwrap();
    let snapshot_at = e1 + 9;
    let got: Vec<i64> = recover(&storage, snapshot_at)
        .unwrap()
        .txns
        .iter()
        .map(|t| t.zxid)
        .collect();
    assert_eq!(got, vec![e2 + 1, e2 + 2]);
    // Within one epoch a log that starts past the snapshot's next zxid lacks something.
    std::fs::remove_dir_all(&dir).unwrap();
    let dir = temp_dir("epoch-skip");
    let storage = FileStorage::open(&dir, SyncMode::None).unwrap();
    let recovered = recover(&storage, 0).unwrap();
    let mut writer = WalWriter::open(Box::new(storage), &recovered, 0).unwrap();
    writer.append(&[txn(e2 + 3)]).unwrap();
    drop(writer);
    let storage = FileStorage::open(&dir, SyncMode::None).unwrap();
    match recover(&storage, e2 + 1) {
        Err(RecoverError::Gap { expected, .. }) => assert_eq!(expected, e2 + 2),
        other => panic!("expected a gap, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
