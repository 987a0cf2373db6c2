//! Goal: a TRUNC cuts the log back to any zxid, also inside a group-commit frame and across
//! segments, and a crash at any sync during the cut leaves either the old log or a log that
//! still holds everything up to the cut, never a hole and never the cut-off txns back.
//! Method: logs written by `WalWriter` on the in-memory disk (small segments, frames of
//! random sizes), cut at random zxids; for the crash test, the disk stops making anything
//! durable after the N-th sync of the cut (a torn prefix of the write in flight lands), for
//! every N, and the crash image is recovered.

use rzk_proto::{Txn, TxnBody, Zxid};
use rzk_wal::{recover, truncate_after, MemStorage, WalWriter};

const SEGMENT_BYTES: u64 = 1024 * 1024;

fn txn(zxid: i64) -> Txn {
    Txn {
        zxid,
        time_ms: zxid * 3,
        session_id: 7,
        cxid: zxid as i32,
        body: TxnBody::SetData {
            path: format!("/n{}", zxid % 13),
            // Large enough that a few hundred txns roll several 1 MiB segments.
            data: Some(vec![
                (zxid % 251) as u8;
                9_000 + (zxid as usize * 37) % 2_000
            ]),
            version: zxid as i32,
        },
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A log of zxids 1..=last in frames of random sizes; returns the disk.
fn written(last: i64, rng: &mut Rng) -> MemStorage {
    let disk = MemStorage::new();
    let recovered = recover(&disk, 0).unwrap();
    let mut writer = WalWriter::open(Box::new(disk.clone()), &recovered, SEGMENT_BYTES).unwrap();
    let mut next = 1;
    while next <= last {
        let end = (next + rng.below(12) as i64).min(last);
        let batch: Vec<Txn> = (next..=end).map(txn).collect();
        writer.append(&batch).unwrap();
        next = end + 1;
    }
    drop(writer);
    disk
}

fn zxids(disk: &MemStorage) -> Vec<i64> {
    recover(disk, 0)
        .unwrap()
        .txns
        .iter()
        .map(|t| t.zxid)
        .collect()
}

#[test]
fn a_cut_anywhere_keeps_exactly_the_prefix_and_the_log_stays_writable() {
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let last = 150 + rng.below(250) as i64;
        let disk = written(last, &mut rng);
        let segments_before = recover(&disk, 0).unwrap().segments.len();
        assert!(segments_before >= 2, "seed {seed}: the log spans segments");
        let cut = rng.below(last as u64 + 1) as i64;
        let truncated = truncate_after(&mut disk.clone(), cut).unwrap();
        assert_eq!(
            zxids(&disk),
            (1..=cut).collect::<Vec<_>>(),
            "seed {seed}: cut at {cut} of {last}"
        );
        assert!(truncated.dropped_txns as i64 <= last - cut);
        // Every txn of every original txn up to the cut is intact, byte for byte.
        for t in recover(&disk, 0).unwrap().txns {
            assert_eq!(t, txn(t.zxid), "seed {seed}");
        }
        // The new leader's history continues from the cut, in its epoch.
        let recovered = recover(&disk, 0).unwrap();
        let mut writer =
            WalWriter::open(Box::new(disk.clone()), &recovered, SEGMENT_BYTES).unwrap();
        let next_epoch = Zxid::new(1, 1).as_i64();
        writer.append(&[txn(next_epoch)]).unwrap();
        drop(writer);
        let mut expected: Vec<i64> = (1..=cut).collect();
        expected.push(next_epoch);
        assert_eq!(zxids(&disk), expected, "seed {seed}");
    }
}

#[test]
fn a_cut_at_the_end_or_beyond_changes_nothing() {
    let disk = written(40, &mut Rng(3));
    let truncated = truncate_after(&mut disk.clone(), 40).unwrap();
    assert_eq!(truncated.dropped_txns, 0);
    assert!(truncated.removed_segments.is_empty());
    assert_eq!(zxids(&disk), (1..=40).collect::<Vec<_>>());
    truncate_after(&mut disk.clone(), 1_000).unwrap();
    assert_eq!(zxids(&disk), (1..=40).collect::<Vec<_>>());
}

#[test]
fn a_crash_at_any_sync_of_a_cut_loses_nothing_up_to_it() {
    for seed in 1..=6u64 {
        let mut rng = Rng(seed.wrapping_mul(0xd134_2543_de82_ef95) | 1);
        let last = 120 + rng.below(200) as i64;
        let original = written(last, &mut rng);
        let cut = 1 + rng.below(last as u64 - 1) as i64;
        let mut syncs = 0;
        loop {
            // A fresh copy of the written log for each crash point.
            let disk = original.crash_image();
            disk.freeze_after(syncs, rng.below(5_000) as usize);
            truncate_after(&mut disk.clone(), cut).unwrap();
            let finished = !disk.frozen_before_last_sync() && syncs > 0 && {
                // Did the cut complete before the freeze? Then the image is the cut log.
                zxids(&disk.crash_image()) == (1..=cut).collect::<Vec<_>>()
            };
            let after = zxids(&disk.crash_image());
            let prefix_len = after.len() as i64;
            assert!(
                after.iter().copied().eq(1..=prefix_len),
                "seed {seed} crash at sync {syncs}: not a gap-free prefix: {after:?}"
            );
            assert!(
                prefix_len >= cut,
                "seed {seed} crash at sync {syncs}: lost txns up to the cut {cut}: {prefix_len}"
            );
            for t in recover(&disk.crash_image(), 0).unwrap().txns {
                assert_eq!(t, txn(t.zxid), "seed {seed} crash at sync {syncs}");
            }
            if finished || syncs > 200 {
                assert!(finished, "seed {seed}: the cut never completed");
                break;
            }
            syncs += 1;
        }
    }
}
