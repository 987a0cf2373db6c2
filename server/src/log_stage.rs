//! The log stage: a thread that makes batches of transactions durable and reports the highest
//! durable zxid back to the core. Whatever queued up while the previous write was in progress
//! goes out as one batch (group commit): an idle server adds no delay, a busy one amortises
//! each sync over many transactions.
//!
//! Until the storage engine lands, the only log is `MemoryLog`: it encodes every transaction
//! as the real log will and keeps nothing, so NOTHING IS DURABLE across a restart.

use std::io;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use rzk_proto::{Txn, Writer};
use tracing::{error, warn};

/// A transaction log. `append` returns once every txn in `batch` is durable.
pub trait TxnLog: Send {
    fn append(&mut self, batch: &[Txn]) -> io::Result<()>;
}

/// Encodes and discards: the log stage's shape without durability.
#[derive(Default)]
pub struct MemoryLog {
    pub bytes_encoded: u64,
    scratch: Writer,
}

impl TxnLog for MemoryLog {
    fn append(&mut self, batch: &[Txn]) -> io::Result<()> {
        for txn in batch {
            self.scratch.bytes.clear();
            txn.encode(&mut self.scratch);
            self.bytes_encoded += self.scratch.bytes.len() as u64;
        }
        Ok(())
    }
}

/// Runs the log stage until `batches` closes. Reports durability as the highest zxid.
pub fn spawn(
    mut log: Box<dyn TxnLog>,
    batches: Receiver<Vec<Txn>>,
    durable: Sender<i64>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rzk-log".into())
        .spawn(move || {
            let mut group: Vec<Txn> = Vec::new();
            while let Ok(first) = batches.recv() {
                group.clear();
                group.extend(first);
                while let Ok(more) = batches.try_recv() {
                    group.extend(more);
                }
                let Some(last) = group.last().map(|t| t.zxid) else {
                    continue;
                };
                if let Err(e) = log.append(&group) {
                    // A failed sync may have lost data the kernel claimed to hold: never retry,
                    // never acknowledge. The core stops hearing `Durable` and writes stall.
                    error!(error = %e, "transaction log write failed; the log is poisoned and no further write will be acknowledged");
                    return;
                }
                if durable.send(last).is_err() {
                    warn!("core stopped; log stage exiting");
                    return;
                }
            }
        })
}
