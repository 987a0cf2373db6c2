//! The log stage: a thread that makes batches of transactions durable and reports the highest
//! durable zxid back to the core. Whatever queued up while the previous write and sync were in
//! progress goes out as one batch (group commit): an idle server adds no delay, a busy one
//! amortises each sync over many transactions. The batching flags (pipeline's `batch`) cap a
//! batch's transactions and bytes, and may hold a batch open for a while when the log is idle.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use rzk_pipeline::batch::{BatchLimits, Batcher, Decision};
use rzk_proto::Txn;
use rzk_wal::{WalError, WalWriter};
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

/// Runs the log stage until `commands` closes, then writes what is still queued. Reports
/// durability as the highest zxid, once per batch. A failed write poisons the writer: the
/// stage stops acknowledging and says why, once.
pub fn spawn(
    log: SharedLog,
    commands: Receiver<LogCommand>,
    durable: Sender<Durable>,
    limits: BatchLimits,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rzk-log".into())
        .spawn(move || {
            info!(
                max_txns = limits.max_txns,
                max_bytes = limits.max_bytes,
                max_delay_us = limits.max_delay_us,
                "log stage batching"
            );
            LogStage {
                log,
                durable,
                batcher: Batcher::new(limits),
                purge: None,
                epoch: Instant::now(),
            }
            .run(commands)
        })
}

/// The log's writer. The log thread writes through it, and so does the core thread when
/// nothing is in flight (see driver.rs): a closed-loop client then pays no hand-off to and
/// from the log thread. The core writes only when it has no batch at the log thread, so the
/// lock is never contended by writes, and zxid order holds.
pub struct LogWriter {
    wal: WalWriter,
    fsync_warning_ms: u64,
}

pub type SharedLog = Arc<Mutex<LogWriter>>;

pub fn shared(wal: WalWriter, fsync_warning_ms: u64) -> SharedLog {
    Arc::new(Mutex::new(LogWriter {
        wal,
        fsync_warning_ms,
    }))
}

/// A panic while writing leaves the writer as it was (every failure poisons it first), so a
/// poisoned mutex is still usable.
pub fn lock(log: &SharedLog) -> MutexGuard<'_, LogWriter> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogWriter {
    /// One write and one sync for the batch. None when nothing was written: an empty batch,
    /// or the log is poisoned (a failed write or sync: never retried, never acknowledged).
    pub fn write(&mut self, group: &[Txn]) -> Option<Durable> {
        let last = group.last()?.zxid;
        let started = Instant::now();
        let written = self.wal.append(group);
        let finished = Instant::now();
        let bytes = match written {
            Ok(bytes) => bytes,
            // Said when it was poisoned; the WAL writes nothing more.
            Err(WalError::Poisoned(_)) => return None,
            Err(e) => {
                // A failed sync may have lost pages the kernel claimed to hold: never retry,
                // never acknowledge. The core stops hearing `Durable`.
                error!(error = %e, "transaction log write failed: the server no longer acknowledges writes; restart it after fixing the disk");
                return None;
            }
        };
        let metrics = rzk_metrics::metrics();
        metrics.log_write.observe_duration(finished - started);
        metrics.batch_txns.observe(group.len() as f64);
        metrics.batch_bytes.observe(bytes as f64);
        let elapsed_ms = (finished - started).as_millis() as u64;
        if elapsed_ms >= self.fsync_warning_ms {
            warn!(
                elapsed_ms,
                txns = group.len(),
                threshold_ms = self.fsync_warning_ms,
                "slow log write and fsync (fsync.warningthresholdms)"
            );
        }
        Some(Durable {
            zxid: last,
            at: finished,
        })
    }

    fn purge_before(&mut self, zxid: i64) {
        for path in self.wal.purge_before(zxid) {
            info!(file = %path, "purged a log segment covered by a retained snapshot");
        }
    }
}

struct LogStage {
    log: SharedLog,
    durable: Sender<Durable>,
    batcher: Batcher<Txn>,
    purge: Option<i64>,
    /// The batcher's clock is microseconds since this instant.
    epoch: Instant,
}

impl LogStage {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Everything taken off the channel now is ready now: what queued during the last write
    /// could not have been written earlier, so a delay never counts the write's own time.
    fn absorb(&mut self, command: LogCommand, now_us: u64) {
        match command {
            LogCommand::Append(txns) => {
                for txn in txns {
                    let bytes = txn.encoded_len();
                    self.batcher.push(txn, bytes, now_us);
                }
            }
            LogCommand::PurgeBefore(zxid) => self.purge = Some(zxid),
        }
    }

    fn run(mut self, commands: Receiver<LogCommand>) {
        let mut group: Vec<Txn> = Vec::new();
        let mut open = true;
        loop {
            let now_us = self.now_us();
            while open {
                match commands.try_recv() {
                    Ok(command) => self.absorb(command, now_us),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            // Once the core is gone nothing more can join a batch: write the rest at once.
            let decision = match self.batcher.decide(now_us) {
                Decision::WaitUntil(_) if !open => Decision::Close,
                decision => decision,
            };
            match decision {
                Decision::Close => {
                    group.clear();
                    self.batcher.close(&mut group);
                    if !self.write(&group) {
                        return;
                    }
                    self.purge_if_asked();
                }
                Decision::WaitUntil(deadline_us) => {
                    let deadline = self.epoch + Duration::from_micros(deadline_us);
                    match commands.recv_deadline(deadline) {
                        Ok(command) => self.absorb(command, self.now_us()),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => open = false,
                    }
                }
                Decision::Empty => {
                    self.purge_if_asked();
                    if !open {
                        return;
                    }
                    match commands.recv() {
                        Ok(command) => self.absorb(command, self.now_us()),
                        Err(_) => open = false,
                    }
                }
            }
        }
    }

    /// Writes the batch, then reports `Durable` for its last zxid. False when the core no
    /// longer listens.
    fn write(&mut self, group: &[Txn]) -> bool {
        match lock(&self.log).write(group) {
            Some(durable) => self.durable.send(durable).is_ok(),
            None => true,
        }
    }

    fn purge_if_asked(&mut self) {
        if let Some(zxid) = self.purge.take() {
            lock(&self.log).purge_before(zxid);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Goal: the log stage carries out the batcher's splits: one `Durable` per batch, in
    //! order, and everything reaches the log. Method: an in-memory disk, one `Append` holding
    //! more than a cap, so the split does not depend on thread timing.

    use rzk_proto::TxnBody;
    use rzk_wal::{recover, MemStorage};

    use super::*;

    fn txn(zxid: i64) -> Txn {
        Txn {
            zxid,
            time_ms: 0,
            session_id: 1,
            cxid: zxid as i32,
            body: TxnBody::SetData {
                path: "/a".into(),
                data: Some(vec![7; 100]),
                version: zxid as i32,
            },
        }
    }

    #[test]
    fn a_batch_over_the_cap_is_written_in_capped_parts() {
        let disk = MemStorage::new();
        let recovered = recover(&disk, 0).unwrap();
        let wal = WalWriter::open(Box::new(disk.clone()), &recovered, 1024 * 1024).unwrap();
        let (to_log, commands) = crossbeam_channel::unbounded();
        let (durable_tx, durable) = crossbeam_channel::unbounded();
        let limits = BatchLimits {
            max_txns: 3,
            ..BatchLimits::default()
        };
        let thread = spawn(shared(wal, 1000), commands, durable_tx, limits).unwrap();
        to_log
            .send(LogCommand::Append((1..=8).map(txn).collect()))
            .unwrap();
        drop(to_log);
        thread.join().unwrap();
        let reported: Vec<i64> = durable.iter().map(|d| d.zxid).collect();
        assert_eq!(reported, vec![3, 6, 8]);
        let after = recover(&disk.crash_image(), 0).unwrap();
        assert_eq!(after.last_zxid, 8);
        assert_eq!(after.txns.len(), 8);
    }
}
