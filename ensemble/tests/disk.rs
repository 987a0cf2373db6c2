//! Goal: the disk stage carries out the quorum core's requests in order, reports each only
//! once it is durable, and leaves exactly the log the requests describe: appends (grouped),
//! a TRUNC inside what was appended, epochs, and a SNAP that replaces the log.
//! Method: a real data dir per test; what the stage wrote is read back by recovery.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rzk_ensemble::{DiskDone, DiskStage};
use rzk_proto::{Txn, TxnBody, Zxid};
use rzk_quorum::{DiskRequest, Entry};
use rzk_snapshot::EpochFile;
use rzk_wal::{FileStorage, Storage, SyncMode, WalWriter};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "rzk-ensemble-{name}-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(dir.join("log")).unwrap();
        std::fs::create_dir_all(dir.join("snap")).unwrap();
        TempDir(dir)
    }

    fn log(&self) -> PathBuf {
        self.0.join("log")
    }

    fn snap(&self) -> PathBuf {
        self.0.join("snap")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SEGMENT: u64 = 1 << 20;

fn start(dir: &TempDir) -> DiskStage {
    let storage = FileStorage::open(&dir.log(), SyncMode::Data).unwrap();
    let recovered = rzk_wal::recover(&storage, 0).unwrap();
    let wal = WalWriter::open(storage.handle(), &recovered, SEGMENT).unwrap();
    DiskStage::spawn(wal, storage.handle(), dir.snap(), SEGMENT).unwrap()
}

fn entry(epoch: u32, counter: u32) -> Entry {
    let zxid = Zxid::new(epoch, counter);
    let txn = Txn {
        zxid: zxid.as_i64(),
        time_ms: 1,
        session_id: 0,
        cxid: 0,
        body: TxnBody::Delete {
            path: format!("/n{counter}"),
        },
    };
    Entry {
        zxid,
        data: rzk_pipeline::entry::encode(&txn, Some(9)).into(),
    }
}

fn await_done(stage: &DiskStage, count: usize) {
    for i in 0..count {
        let done = stage
            .completions()
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("completion {i} of {count} within the bound"));
        assert_eq!(done, DiskDone::Done);
    }
    assert!(
        stage.completions().try_recv().is_err(),
        "one completion per request"
    );
}

fn logged(log: &Path) -> Vec<Zxid> {
    let storage = FileStorage::open(log, SyncMode::Data).unwrap();
    rzk_wal::recover(&storage, 0)
        .unwrap()
        .txns
        .iter()
        .map(|t| Zxid::from_i64(t.zxid))
        .collect()
}

#[test]
fn appends_a_trunc_and_epochs_are_done_in_order_and_leave_that_log() {
    let dir = TempDir::new("order");
    let stage = start(&dir);
    let requests = vec![
        DiskRequest::WriteAcceptedEpoch(1),
        DiskRequest::WriteCurrentEpoch(1),
        DiskRequest::Append(vec![entry(1, 1), entry(1, 2)]),
        DiskRequest::Append(vec![entry(1, 3)]),
        DiskRequest::Append(vec![entry(1, 4), entry(1, 5)]),
        // The cut falls inside the batch group above.
        DiskRequest::Truncate {
            after: Zxid::new(1, 3),
        },
        DiskRequest::WriteAcceptedEpoch(2),
        DiskRequest::Append(vec![entry(2, 1)]),
    ];
    let count = requests.len();
    for r in requests {
        stage.submit(r);
    }
    await_done(&stage, count);
    stage.stop();
    assert_eq!(
        logged(&dir.log()),
        vec![
            Zxid::new(1, 1),
            Zxid::new(1, 2),
            Zxid::new(1, 3),
            Zxid::new(2, 1)
        ]
    );
    assert_eq!(
        rzk_snapshot::read_epoch(&dir.snap(), EpochFile::Accepted).unwrap(),
        Some(2)
    );
    assert_eq!(
        rzk_snapshot::read_epoch(&dir.snap(), EpochFile::Current).unwrap(),
        Some(1)
    );
}

#[test]
fn an_installed_snapshot_replaces_the_log_and_appends_go_on_after_it() {
    let dir = TempDir::new("snap");
    let stage = start(&dir);
    stage.submit(DiskRequest::Append(vec![entry(1, 1), entry(1, 2)]));
    let at = Zxid::new(3, 5);
    let tree = rzk_tree_at(at);
    let image: Arc<[u8]> = rzk_snapshot::encode(&tree, &[]).into();
    stage.submit(DiskRequest::InstallSnapshot {
        zxid: at,
        data: image,
    });
    stage.submit(DiskRequest::Append(vec![entry(3, 6)]));
    await_done(&stage, 3);
    stage.stop();
    assert_eq!(logged(&dir.log()), vec![Zxid::new(3, 6)]);
    let snapshots = rzk_snapshot::list(&dir.snap()).unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].0, at.as_i64());
    rzk_snapshot::load(&snapshots[0].1).unwrap();
}

fn rzk_tree_at(zxid: Zxid) -> rzk_tree::Tree {
    let fresh = rzk_tree::Tree::new();
    rzk_tree::Tree::from_nodes(
        zxid.as_i64(),
        fresh.paths().map(|(p, n)| {
            (
                p.to_string(),
                n.stat(),
                n.data().map(<[u8]>::to_vec),
                n.acl().to_vec(),
            )
        }),
    )
    .unwrap()
}

#[test]
fn an_undecodable_entry_stops_the_stage_with_a_reason() {
    let dir = TempDir::new("bad");
    let stage = start(&dir);
    stage.submit(DiskRequest::Append(vec![Entry {
        zxid: Zxid::new(1, 1),
        data: Arc::from(&b"not a txn"[..]),
    }]));
    stage.submit(DiskRequest::Append(vec![entry(1, 2)]));
    match stage
        .completions()
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
    {
        DiskDone::Failed(reason) => assert!(reason.contains("does not decode"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(
        stage
            .completions()
            .recv_timeout(Duration::from_millis(200))
            .is_err(),
        "nothing is done after a failure"
    );
}
