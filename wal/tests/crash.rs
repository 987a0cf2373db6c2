//! Goal: kill the machine at any sync and lose nothing acknowledged, half-apply nothing.
//! Method (after redb's crash_consistency test): an in-memory disk that stops making writes
//! durable after the N-th sync and lets a torn prefix of the in-flight write land. Append
//! random batches, crash at a random sync, recover from the durable image, and compare with
//! what `append` acknowledged. Many seeds; `SEED=<n>` replays one.

use rzk_proto::{Txn, TxnBody};
use rzk_wal::{recover, MemStorage, WalWriter};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn txn(zxid: i64, rng: &mut Rng) -> Txn {
    let len = rng.below(300) as usize;
    Txn {
        zxid,
        time_ms: zxid * 7,
        session_id: 1,
        cxid: zxid as i32,
        body: TxnBody::SetData {
            path: format!("/n{}", zxid % 17),
            data: Some(vec![(zxid % 251) as u8; len]),
            version: 1,
        },
    }
}

fn run(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let disk = MemStorage::new();
    // Small segments so crashes also land around segment rolls.
    let segment_bytes = 1024 * 1024 + rng.below(8) * 4096;
    let recovered = recover(&disk, 0).unwrap();
    let mut writer = WalWriter::open(Box::new(disk.clone()), &recovered, segment_bytes).unwrap();
    let batches = 20 + rng.below(200);
    let crash_at_sync = rng.below(batches + 10);
    let torn_bytes = rng.below(20_000) as usize;
    disk.freeze_after(crash_at_sync, torn_bytes);
    let mut next_zxid = 1;
    let mut acknowledged = 0;
    for _ in 0..batches {
        let count = 1 + rng.below(40);
        let batch: Vec<Txn> = (0..count)
            .map(|i| txn(next_zxid + i as i64, &mut rng))
            .collect();
        next_zxid += count as i64;
        writer.append(&batch).unwrap();
        // The disk froze mid-run: appends after that are what was in flight at the crash.
        if !disk_frozen_before_this_append(&disk) {
            acknowledged = next_zxid - 1;
        }
    }
    let image = disk.crash_image();
    let after = recover(&image, 0).unwrap_or_else(|e| panic!("seed {seed}: recovery failed: {e}"));
    let zxids: Vec<i64> = after.txns.iter().map(|t| t.zxid).collect();
    assert!(
        zxids.iter().copied().eq(1..=zxids.len() as i64),
        "seed {seed}: recovered log is not a gap-free prefix"
    );
    assert!(
        after.last_zxid >= acknowledged,
        "seed {seed}: acknowledged up to {acknowledged} but recovered only {}",
        after.last_zxid
    );
    for t in &after.txns {
        assert_eq!(t, &txn_again(t.zxid, seed, &after), "seed {seed}");
    }
    // The recovered log is writable again from its end.
    let mut writer = WalWriter::open(Box::new(image.clone()), &after, segment_bytes).unwrap();
    let z = after.last_zxid + 1;
    writer.append(&[txn(z, &mut Rng(5))]).unwrap();
    assert_eq!(recover(&image, 0).unwrap().last_zxid, z, "seed {seed}");
}

/// Transactions are deterministic per (seed, zxid) only through the Rng sequence, so compare
/// structurally: the zxid-dependent fields must match what `txn` would have produced.
fn txn_again(zxid: i64, _seed: u64, recovered: &rzk_wal::Recovered) -> Txn {
    let found = recovered
        .txns
        .iter()
        .find(|t| t.zxid == zxid)
        .unwrap()
        .clone();
    assert_eq!(found.time_ms, zxid * 7);
    assert_eq!(found.cxid, zxid as i32);
    if let TxnBody::SetData { path, data, .. } = &found.body {
        assert_eq!(path, &format!("/n{}", zxid % 17));
        assert!(data
            .as_ref()
            .unwrap()
            .iter()
            .all(|&b| b == (zxid % 251) as u8));
    } else {
        panic!("unexpected body");
    }
    found
}

/// The crash point is "after sync N": a completed append whose sync came before the freeze
/// is acknowledged. MemStorage counts one sync per frame write.
fn disk_frozen_before_this_append(disk: &MemStorage) -> bool {
    disk.frozen_before_last_sync()
}

#[test]
fn nothing_acknowledged_is_lost_at_any_crash_point() {
    if let Ok(seed) = std::env::var("SEED") {
        run(seed.parse().expect("SEED is a number"));
        return;
    }
    for seed in 1..=300 {
        run(seed);
    }
}
