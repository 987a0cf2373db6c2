//! The log stage: a thread that makes batches of transactions durable and reports the highest
//! durable zxid back to the core. Whatever queued up while the previous write and sync were in
//! progress goes out as one batch (group commit): an idle server adds no delay, a busy one
//! amortises each sync over many transactions.

use std::io;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use rzk_proto::Txn;
use rzk_wal::WalWriter;
use tracing::{error, info, warn};

/// What the core thread and the snapshotter ask of the log stage.
pub enum LogCommand {
    Append(Vec<Txn>),
    /// Delete segments whose every transaction is ≤ zxid (a retained snapshot covers them).
    PurgeBefore(i64),
}

/// The log made every transaction up to `zxid` durable; its write and sync ended at `at`.
#[derive(Debug, Clone, Copy)]
pub struct Durable {
    pub zxid: i64,
    pub at: Instant,
}

/// Runs the log stage until `commands` closes. Reports durability as the highest zxid. A
/// failed write poisons the writer: the stage stops acknowledging and says why, once.
pub fn spawn(
    mut wal: WalWriter,
    commands: Receiver<LogCommand>,
    durable: Sender<Durable>,
    fsync_warning_ms: u64,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rzk-log".into())
        .spawn(move || {
            let mut group: Vec<Txn> = Vec::new();
            let mut poisoned = false;
            while let Ok(first) = commands.recv() {
                group.clear();
                let mut purge = None;
                let mut absorb = |command: LogCommand, group: &mut Vec<Txn>| match command {
                    LogCommand::Append(batch) => group.extend(batch),
                    LogCommand::PurgeBefore(zxid) => purge = Some(zxid),
                };
                absorb(first, &mut group);
                while let Ok(more) = commands.try_recv() {
                    absorb(more, &mut group);
                }
                if let Some(last) = group.last().map(|t| t.zxid) {
                    if poisoned {
                        continue;
                    }
                    let started = Instant::now();
                    let written = wal.append(&group);
                    let finished = Instant::now();
                    let bytes = match written {
                        Ok(bytes) => bytes,
                        Err(e) => {
                        // A failed sync may have lost pages the kernel claimed to hold: never
                        // retry, never acknowledge. The core stops hearing `Durable`.
                            error!(error = %e, "transaction log write failed: the server no longer acknowledges writes; restart it after fixing the disk");
                            poisoned = true;
                            continue;
                        }
                    };
                    let metrics = rzk_metrics::metrics();
                    metrics.log_write.observe_duration(finished - started);
                    metrics.batch_txns.observe(group.len() as f64);
                    metrics.batch_bytes.observe(bytes as f64);
                    let elapsed_ms = (finished - started).as_millis() as u64;
                    if elapsed_ms >= fsync_warning_ms {
                        warn!(elapsed_ms, txns = group.len(), threshold_ms = fsync_warning_ms,
                            "slow log write and fsync (fsync.warningthresholdms)");
                    }
                    if durable
                        .send(Durable {
                            zxid: last,
                            at: finished,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
                if let Some(zxid) = purge {
                    for path in wal.purge_before(zxid) {
                        info!(file = %path, "purged a log segment covered by a retained snapshot");
                    }
                }
            }
        })
}
