//! The group-commit writer: each `append` is one batch frame, one write and one sync.
//! Segments roll over when a frame does not fit; a new segment is zero-filled before use.

use thiserror::Error;
use tracing::{error, info, warn};

use rzk_proto::Txn;

use crate::backend::{Segment, Storage};
use crate::format::{self, BATCH_BYTES_MAX, SEGMENT_HEADER_BYTES};
use crate::recover::Recovered;

#[derive(Debug, Error)]
pub enum WalError {
    #[error("the log is poisoned by an earlier failure ({0}); no write is accepted")]
    Poisoned(String),
    #[error("writing {path} failed: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

struct Current {
    segment: Box<dyn Segment>,
    name: String,
    offset: u64,
}

/// The next segment, zero-filled on a helper thread while the current one fills up, so a
/// roll costs a rename instead of writing and syncing a whole segment on the commit path.
const SPARE_NAME: &str = "log.spare";

pub struct WalWriter {
    storage: Box<dyn Storage>,
    spare: Option<std::thread::JoinHandle<std::io::Result<u64>>>,
    current: Option<Current>,
    segment_bytes: u64,
    last_zxid: i64,
    poisoned: Option<String>,
    frame: Vec<u8>,
    segments: Vec<(i64, String)>,
}

impl WalWriter {
    /// Opens the log for appending where recovery left it, zeroing a torn tail first.
    pub fn open(
        mut storage: Box<dyn Storage>,
        recovered: &Recovered,
        segment_bytes: u64,
    ) -> Result<WalWriter, WalError> {
        let mut current = None;
        if let Some(name) = &recovered.discard {
            let path = storage.describe(name);
            storage.remove(name).map_err(|source| WalError::Io {
                path: path.clone(),
                source,
            })?;
            warn!(file = %path, "removed a log segment whose creation was interrupted (it held nothing)");
        }
        if let Some(tail) = &recovered.tail {
            let path = storage.describe(&tail.segment);
            let io = |source| WalError::Io {
                path: path.clone(),
                source,
            };
            let mut segment = storage.open(&tail.segment).map_err(io)?;
            if tail.zero_until > tail.offset {
                let len = (tail.zero_until - tail.offset) as usize;
                segment
                    .write_durable(tail.offset, &vec![0u8; len])
                    .map_err(io)?;
                warn!(file = %path, offset = tail.offset, bytes = len,
                    "truncated a torn write at the end of the log (it was never acknowledged)");
            }
            current = Some(Current {
                segment,
                name: tail.segment.clone(),
                offset: tail.offset,
            });
        }
        // A spare left by an earlier run may be half-made: start a fresh one.
        if storage
            .list()
            .is_ok_and(|names| names.iter().any(|n| n == SPARE_NAME))
        {
            let _ = storage.remove(SPARE_NAME);
        }
        let mut writer = WalWriter {
            storage,
            spare: None,
            current,
            segment_bytes: segment_bytes.max(1024 * 1024),
            last_zxid: recovered.last_zxid,
            poisoned: None,
            frame: Vec::new(),
            segments: recovered.segments.clone(),
        };
        writer.prepare_spare();
        Ok(writer)
    }

    fn prepare_spare(&mut self) {
        let mut storage = self.storage.handle();
        let size = self.segment_bytes;
        self.spare = std::thread::Builder::new()
            .name("rzk-wal-prealloc".into())
            .spawn(move || storage.create(SPARE_NAME, size).map(|s| s.size()))
            .ok();
    }

    /// Takes the prepared spare segment under `name`, if it is ready and large enough.
    fn take_spare(&mut self, name: &str, needed: u64) -> Option<Box<dyn Segment>> {
        let spare = self.spare.take()?;
        match spare.join() {
            Ok(Ok(size)) if size >= needed => {}
            Ok(Ok(_)) => return None,
            Ok(Err(e)) => {
                warn!(error = %e, "preparing the next log segment failed; creating it now");
                return None;
            }
            Err(_) => return None,
        }
        self.storage.rename(SPARE_NAME, name).ok()?;
        self.storage.open(name).ok()
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Makes `txns` durable and returns the bytes written. They must continue the log's zxid
    /// sequence.
    pub fn append(&mut self, txns: &[Txn]) -> Result<u64, WalError> {
        if let Some(reason) = &self.poisoned {
            return Err(WalError::Poisoned(reason.clone()));
        }
        let mut written = 0u64;
        let mut start = 0;
        while start < txns.len() {
            // Frames stay under BATCH_BYTES_MAX: recovery's torn-tail rule depends on it.
            self.frame.clear();
            let mut end = start;
            let mut size = format::BATCH_HEADER_BYTES;
            while end < txns.len() {
                let record = format::RECORD_HEADER_BYTES + txns[end].encoded_len();
                if end > start && size + record > BATCH_BYTES_MAX / 2 {
                    break;
                }
                size += record;
                end += 1;
            }
            for txn in &txns[start..end] {
                assert!(
                    txn.zxid > self.last_zxid,
                    "appends arrive in zxid order: {:#x} after {:#x}",
                    txn.zxid,
                    self.last_zxid
                );
                if txn.zxid >> 32 == self.last_zxid >> 32 {
                    assert_eq!(txn.zxid, self.last_zxid + 1, "no zxid gap within an epoch");
                }
                self.last_zxid = txn.zxid;
            }
            format::encode_batch(&txns[start..end], &mut self.frame);
            assert!(self.frame.len() <= BATCH_BYTES_MAX + format::BATCH_HEADER_BYTES);
            if let Err(e) = self.write_frame(txns[start].zxid) {
                let reason = e.to_string();
                error!(error = %reason, "log write failed: poisoning the log");
                self.poisoned = Some(reason);
                return Err(e);
            }
            written += self.frame.len() as u64;
            start = end;
        }
        Ok(written)
    }

    fn write_frame(&mut self, first_zxid: i64) -> Result<(), WalError> {
        let needed = self.frame.len() as u64;
        let fits = self
            .current
            .as_ref()
            .is_some_and(|c| c.offset + needed <= c.segment.size());
        if !fits {
            self.roll(first_zxid, needed)?;
        }
        let current = self.current.as_mut().expect("rolled above");
        current
            .segment
            .write_durable(current.offset, &self.frame)
            .map_err(|source| WalError::Io {
                path: self.storage.describe(&current.name),
                source,
            })?;
        current.offset += needed;
        Ok(())
    }

    fn roll(&mut self, base_zxid: i64, needed: u64) -> Result<(), WalError> {
        let name = format::segment_name(base_zxid);
        let size = self.segment_bytes.max(needed + SEGMENT_HEADER_BYTES as u64);
        let path = self.storage.describe(&name);
        let io = |source| WalError::Io {
            path: path.clone(),
            source,
        };
        let mut segment = match self.take_spare(&name, size) {
            Some(segment) => segment,
            None => self.storage.create(&name, size).map_err(io)?,
        };
        self.prepare_spare();
        segment
            .write_durable(0, &format::encode_segment_header(base_zxid))
            .map_err(io)?;
        info!(file = %path, size, "started a new log segment");
        self.segments.push((base_zxid, name.clone()));
        self.current = Some(Current {
            segment,
            name,
            offset: SEGMENT_HEADER_BYTES as u64,
        });
        Ok(())
    }

    /// Removes segments whose every transaction is ≤ `zxid` (covered by a snapshot).
    pub fn purge_before(&mut self, zxid: i64) -> Vec<String> {
        let mut removed = Vec::new();
        while self.segments.len() > 1 && self.segments[1].0 <= zxid + 1 {
            let (_, name) = self.segments.remove(0);
            match self.storage.remove(&name) {
                Ok(()) => removed.push(self.storage.describe(&name)),
                Err(e) => {
                    warn!(file = %self.storage.describe(&name), error = %e, "could not remove an old log segment");
                    break;
                }
            }
        }
        removed
    }
}

impl Drop for WalWriter {
    /// Waits for the spare segment so no helper thread outlives the log.
    fn drop(&mut self) {
        if let Some(spare) = self.spare.take() {
            let _ = spare.join();
        }
    }
}
