//! Startup recovery and background snapshots: wiring the `wal` and `snapshot` crates to real
//! directories, and the snapshot thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use rzk_session::DurableSession;
use rzk_snapshot::SessionRecord;
use rzk_tree::Tree;
use rzk_wal::{FileStorage, Recovered, SyncMode};
use tracing::{info, warn};

use crate::log_stage::LogCommand;

pub fn snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("rzk")
}

pub fn log_dir(data_log_dir: &Path) -> PathBuf {
    data_log_dir.join("rzk")
}

pub struct Loaded {
    pub tree: Tree,
    pub sessions: Vec<DurableSession>,
    pub recovered: Recovered,
    pub storage: FileStorage,
    pub snapshot_zxid: i64,
    /// Time spent loading the snapshot and reading the log after it, for the startup line.
    pub snapshot_elapsed: std::time::Duration,
    pub log_elapsed: std::time::Duration,
}

/// Loads the newest valid snapshot and reads the log after it. A snapshot that fails its
/// checks is skipped for an older one only if the log still covers the gap; otherwise, as for
/// any damage to the log, startup fails with the file and offset.
pub fn load(
    data_dir: &Path,
    data_log_dir: &Path,
    sync: SyncMode,
    backend: rzk_wal::Backend,
    hasher: rzk_tree::NodeHasher,
) -> Result<Loaded, String> {
    let snap_dir = snapshot_dir(data_dir);
    let log_dir = log_dir(data_log_dir);
    std::fs::create_dir_all(&snap_dir)
        .map_err(|e| format!("cannot create {}: {e}", snap_dir.display()))?;
    let (storage, backend) = FileStorage::with_backend(&log_dir, sync, backend)
        .map_err(|e| format!("cannot open the log directory {}: {e}", log_dir.display()))?;
    info!(backend = %backend, dir = %log_dir.display(), "transaction log backend");
    let snapshots = rzk_snapshot::list(&snap_dir)
        .map_err(|e| format!("cannot list snapshots in {}: {e}", snap_dir.display()))?;
    let mut skipped: Vec<String> = Vec::new();
    let mut chosen = None;
    let started = Instant::now();
    for (_, path) in &snapshots {
        match rzk_snapshot::load_with(path, hasher.clone()) {
            Ok(s) => {
                chosen = Some(s);
                break;
            }
            Err(e) => {
                warn!(error = %e, "snapshot failed its checks; trying an older one if the log covers the gap");
                skipped.push(e.to_string());
            }
        }
    }
    let (tree, sessions, snapshot_zxid) = match chosen {
        Some(s) => {
            let sessions = s.sessions.iter().map(DurableSession::from).collect();
            (s.tree, sessions, s.zxid)
        }
        None => (Tree::with_hasher(hasher), Vec::new(), 0),
    };
    let snapshot_elapsed = started.elapsed();
    let recovered = rzk_wal::recover(&storage, snapshot_zxid).map_err(|e| {
        if skipped.is_empty() {
            e.to_string()
        } else {
            format!(
                "{e} (after skipping damaged snapshots: {})",
                skipped.join("; ")
            )
        }
    })?;
    if let Some((path, offset, reason)) = &recovered.torn {
        warn!(file = %path, offset, reason, "the log ended in a torn write; it is truncated (it was never acknowledged)");
    }
    Ok(Loaded {
        tree,
        sessions,
        recovered,
        storage,
        snapshot_zxid,
        snapshot_elapsed,
        log_elapsed: started.elapsed() - snapshot_elapsed,
    })
}

/// A snapshot request: a published tree version and the sessions as of it.
pub struct SnapshotJob {
    pub tree: Tree,
    pub sessions: Vec<DurableSession>,
}

pub struct Snapshotter {
    pub jobs: Sender<SnapshotJob>,
    pub busy: Arc<AtomicBool>,
    pub thread: Option<JoinHandle<()>>,
}

impl Snapshotter {
    /// Closes the job channel (the thread ends after the job it has) and hands back the
    /// thread to wait for; later jobs are refused.
    pub fn stop(&mut self) -> Option<JoinHandle<()>> {
        let (closed, _) = crossbeam_channel::bounded(0);
        drop(std::mem::replace(&mut self.jobs, closed));
        self.busy.store(true, Ordering::Release);
        self.thread.take()
    }
}

/// The snapshot thread: writes each job, then (when autopurge is on) keeps the newest
/// `retain` snapshots and has the log stage drop segments older than the oldest of them.
pub fn spawn_snapshotter(
    data_dir: &Path,
    retain: usize,
    purge: bool,
    log: Sender<LogCommand>,
) -> std::io::Result<Snapshotter> {
    let dir = snapshot_dir(data_dir);
    let (jobs, rx): (Sender<SnapshotJob>, Receiver<SnapshotJob>) = crossbeam_channel::bounded(1);
    let busy = Arc::new(AtomicBool::new(false));
    let busy_flag = busy.clone();
    let thread = std::thread::Builder::new()
        .name("rzk-snapshot".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                let started = Instant::now();
                let sessions: Vec<SessionRecord> = job
                    .sessions
                    .iter()
                    .map(SessionRecord::from)
                    .collect();
                match rzk_snapshot::write(&dir, &job.tree, &sessions) {
                    Ok((path, bytes)) => {
                        let metrics = rzk_metrics::metrics();
                        metrics.snapshot_time.observe_duration(started.elapsed());
                        metrics.snapshot_bytes.observe(bytes as f64);
                        metrics.snapshots_taken.inc();
                        info!(
                            file = %path.display(),
                            zxid = format_args!("{:#x}", job.tree.last_zxid()),
                            nodes = job.tree.node_count(),
                            bytes,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "snapshot written"
                        )
                    }
                    Err(e) => warn!(error = %e, dir = %dir.display(), "snapshot failed; the log keeps everything, retrying at the next threshold"),
                }
                if purge {
                    match rzk_snapshot::purge(&dir, retain) {
                        Ok((oldest, removed)) => {
                            for path in removed {
                                info!(file = %path.display(), "purged an old snapshot");
                            }
                            if let Some(zxid) = oldest {
                                let _ = log.send(LogCommand::PurgeBefore(zxid));
                            }
                        }
                        Err(e) => warn!(error = %e, "snapshot purge failed"),
                    }
                }
                busy_flag.store(false, Ordering::Release);
            }
        })?;
    Ok(Snapshotter {
        jobs,
        busy,
        thread: Some(thread),
    })
}
