//! The quorum core's disk requests, carried out in order on the disk thread: appends through
//! the WAL with one sync for as many consecutive appends as are queued (group commit), a
//! TRUNC as `rzk_wal::truncate_after`, the epoch files, and an installed SNAP as a snapshot
//! file that replaces the whole log. Each request's completion is reported once it is
//! durable, in request order: the core sends ACKs and acts on epochs only then.
//!
//! A failed write or sync is final: the stage reports `Failed` and carries out nothing more,
//! as the WAL poisons itself (the kernel may have dropped the dirty pages). The server then
//! must stop rather than go on voting with a log it cannot trust.

use std::path::PathBuf;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use rzk_proto::Txn;
use rzk_quorum::DiskRequest;
use rzk_snapshot::EpochFile;
use rzk_wal::{Storage, WalWriter};
use tracing::{error, info};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskDone {
    /// The oldest outstanding request is durable.
    Done,
    /// The disk failed; nothing more will be done.
    Failed(String),
}

/// What the disk thread is asked: the quorum core's requests, reported in order, and purges
/// of old log segments (a snapshot covers them), which report nothing.
enum Job {
    Quorum(DiskRequest),
    PurgeBefore(i64),
    /// Finish what came before, then end (purgers may still hold the channel).
    Stop,
}

/// Asks the disk thread to delete log segments a retained snapshot covers.
#[derive(Clone)]
pub struct Purger(Sender<Job>);

impl Purger {
    pub fn purge_before(&self, zxid: i64) {
        let _ = self.0.send(Job::PurgeBefore(zxid));
    }
}

pub struct DiskStage {
    requests: Option<Sender<Job>>,
    done: Receiver<DiskDone>,
    thread: Option<JoinHandle<()>>,
}

impl DiskStage {
    /// Starts the disk thread. `wal` appends where recovery left the log; `storage` is
    /// another handle on the log's directory (for TRUNC and SNAP, which reopen the writer);
    /// `snap_dir` holds the snapshots and the epoch files.
    pub fn spawn(
        wal: WalWriter,
        storage: Box<dyn Storage>,
        snap_dir: PathBuf,
        segment_bytes: u64,
    ) -> std::io::Result<DiskStage> {
        let (requests, request_rx) = crossbeam_channel::unbounded();
        let (done_tx, done) = crossbeam_channel::unbounded();
        let mut worker = Worker {
            wal: Some(wal),
            storage,
            snap_dir,
            segment_bytes,
            done: done_tx,
        };
        let thread = std::thread::Builder::new()
            .name("rzk-quorum-disk".into())
            .spawn(move || worker.run(request_rx))?;
        Ok(DiskStage {
            requests: Some(requests),
            done,
            thread: Some(thread),
        })
    }

    pub fn submit(&self, request: DiskRequest) {
        if let Some(requests) = &self.requests {
            // A stage that stopped on a failure said so in its last `Failed`.
            let _ = requests.send(Job::Quorum(request));
        }
    }

    pub fn purger(&self) -> Purger {
        Purger(
            self.requests
                .clone()
                .expect("the stage is running while its owner holds it"),
        )
    }

    /// One `Done` per request, in order (or a final `Failed`).
    pub fn completions(&self) -> &Receiver<DiskDone> {
        &self.done
    }

    /// Finishes what was submitted, then stops the thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(requests) = self.requests.take() {
            let _ = requests.send(Job::Stop);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DiskStage {
    fn drop(&mut self) {
        self.shut_down();
    }
}

struct Worker {
    /// None only while a TRUNC or SNAP reopens it.
    wal: Option<WalWriter>,
    storage: Box<dyn Storage>,
    snap_dir: PathBuf,
    segment_bytes: u64,
    done: Sender<DiskDone>,
}

impl Worker {
    fn run(&mut self, jobs: Receiver<Job>) {
        let mut queued = Vec::new();
        while let Ok(first) = jobs.recv() {
            queued.push(first);
            queued.extend(jobs.try_iter());
            let mut requests = Vec::new();
            let mut stop = false;
            for job in std::mem::take(&mut queued) {
                match job {
                    Job::Stop => stop = true,
                    Job::Quorum(request) => requests.push(request),
                    Job::PurgeBefore(zxid) => {
                        // Between requests (never inside a TRUNC or SNAP, which run below).
                        let removed = self.wal().purge_before(zxid);
                        if !removed.is_empty() {
                            info!(
                                segments = removed.len(),
                                "purged log segments a snapshot covers"
                            );
                        }
                    }
                }
            }
            let mut pending = requests.into_iter().peekable();
            while let Some(request) = pending.next() {
                let (result, count) = match request {
                    DiskRequest::Append(entries) => {
                        // Every append queued right behind it goes out in the same write
                        // and sync.
                        let mut batches = vec![entries];
                        while let Some(DiskRequest::Append(_)) = pending.peek() {
                            if let Some(DiskRequest::Append(more)) = pending.next() {
                                batches.push(more);
                            }
                        }
                        let count = batches.len();
                        (self.append(batches), count)
                    }
                    other => (self.other(other), 1),
                };
                if let Err(reason) = result {
                    error!(%reason, "quorum disk stage failed: this server acknowledges nothing more; restart it after fixing the disk");
                    let _ = self.done.send(DiskDone::Failed(reason));
                    return;
                }
                for _ in 0..count {
                    let _ = self.done.send(DiskDone::Done);
                }
            }
            if stop {
                return;
            }
        }
    }

    fn wal(&mut self) -> &mut WalWriter {
        self.wal.as_mut().expect("open between requests")
    }

    fn append(&mut self, batches: Vec<Vec<rzk_quorum::Entry>>) -> Result<(), String> {
        let mut txns: Vec<Txn> = Vec::with_capacity(batches.iter().map(Vec::len).sum());
        for entry in batches.iter().flatten() {
            let (txn, _digest) = rzk_pipeline::entry::decode(&entry.data)
                .map_err(|e| format!("entry {} does not decode: {e}", entry.zxid))?;
            assert_eq!(
                txn.zxid,
                entry.zxid.as_i64(),
                "an entry's txn carries another zxid than the entry"
            );
            txns.push(txn);
        }
        if txns.is_empty() {
            return Ok(());
        }
        self.wal()
            .append(&txns)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn other(&mut self, request: DiskRequest) -> Result<(), String> {
        match request {
            DiskRequest::Append(_) => unreachable!("handled by append"),
            DiskRequest::WriteAcceptedEpoch(epoch) => {
                rzk_snapshot::write_epoch(&self.snap_dir, EpochFile::Accepted, epoch)
                    .map_err(|e| e.to_string())
            }
            DiskRequest::WriteCurrentEpoch(epoch) => {
                rzk_snapshot::write_epoch(&self.snap_dir, EpochFile::Current, epoch)
                    .map_err(|e| e.to_string())
            }
            DiskRequest::Truncate { after } => {
                let after = after.as_i64();
                self.wal = None;
                let truncated = rzk_wal::truncate_after(&mut *self.storage, after)
                    .map_err(|e| e.to_string())?;
                info!(
                    after = format_args!("{after:#x}"),
                    dropped_txns = truncated.dropped_txns,
                    removed_segments = truncated.removed_segments.len(),
                    "log truncated for the leader (TRUNC)"
                );
                self.reopen(after)
            }
            DiskRequest::InstallSnapshot { zxid, data } => {
                let zxid = zxid.as_i64();
                let path = rzk_snapshot::write_image(&self.snap_dir, zxid, &data)
                    .map_err(|e| e.to_string())?;
                // The snapshot replaces the history: every entry the log holds is either in
                // it or was never committed (the leader's SNAP says so).
                self.wal = None;
                rzk_wal::truncate_after(&mut *self.storage, i64::MIN).map_err(|e| e.to_string())?;
                info!(file = %path.display(), bytes = data.len(), "snapshot installed from the leader (SNAP)");
                self.reopen(zxid)
            }
        }
    }

    /// Opens the writer again after the log was cut at (or restarted from) `last_zxid`.
    fn reopen(&mut self, last_zxid: i64) -> Result<(), String> {
        let mut recovered =
            rzk_wal::recover(&*self.storage, last_zxid).map_err(|e| e.to_string())?;
        recovered.last_zxid = recovered.last_zxid.max(last_zxid);
        let wal = WalWriter::open(self.storage.handle(), &recovered, self.segment_bytes)
            .map_err(|e| e.to_string())?;
        self.wal = Some(wal);
        Ok(())
    }
}
