//! The checkers that judge a simulated run. Each names the rule it guards; the first
//! violation stops the run and is reported with the seed that replays it.
//!
//! - one-leader-per-epoch: no two servers ever lead the same epoch.
//! - committed-order: every server applies the same sequence of transactions: the same
//!   payload for a zxid everywhere, the same predecessor before it, no gap, never backwards.
//! - ack-means-durable, epochs-only-grow: checked where the world sees the message or the
//!   disk request (world.rs), against the simulated disk's durable contents.
//! - linearizability: the clients' history of writes, compare-and-sets and sync-then-reads
//!   (lib.rs, with linearizability.rs).
//! - acked-write-lost: every acknowledged write is applied by the final leader.
//! - state-agreement: once healed, servers that applied as far as the leader hold its state.
//! - liveness: after the faults heal, a write invoked afterwards completes within
//!   `LIVENESS_BOUND_MS`.

use std::collections::{BTreeMap, BTreeSet};

use rzk_quorum::{Entry, Sid, Zxid};

/// How long after healing the first new write may take to be acknowledged (simulated time).
pub const LIVENESS_BOUND_MS: u64 = 5_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub checker: &'static str,
    pub detail: String,
}

#[derive(Default)]
pub struct Checks {
    pub violations: Vec<Violation>,
    leaders: BTreeMap<u32, Sid>,
    /// zxid → (payload hash, the zxid applied before it).
    committed: BTreeMap<Zxid, (u64, Zxid)>,
    last_applied: BTreeMap<Sid, Zxid>,
    /// History entries that are reads which never happened (their sync failed).
    pub(crate) dropped_reads: BTreeSet<usize>,
    first_write_after_heal_us: Option<u64>,
}

fn payload_hash(data: &[u8]) -> u64 {
    // FNV-1a: deterministic across processes, unlike std's RandomState.
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Checks {
    pub fn violation(&mut self, checker: &'static str, detail: String) {
        self.violations.push(Violation { checker, detail });
    }

    pub fn has_violation(&self) -> bool {
        !self.violations.is_empty()
    }

    pub fn leader(&mut self, epoch: u32, sid: Sid) {
        match self.leaders.get(&epoch) {
            Some(&other) if other != sid => self.violation(
                "one-leader-per-epoch",
                format!("s{other} and s{sid} both lead epoch {epoch}"),
            ),
            _ => {
                self.leaders.insert(epoch, sid);
            }
        }
    }

    /// A server's state restarts at `zxid` (a snapshot at startup or from the leader).
    pub fn reset(&mut self, sid: Sid, zxid: Zxid) {
        if zxid != Zxid::ZERO && !self.committed.contains_key(&zxid) {
            self.violation(
                "committed-order",
                format!("s{sid} starts from a snapshot at {zxid}, which nobody applied"),
            );
        }
        self.last_applied.insert(sid, zxid);
    }

    pub fn applied(&mut self, sid: Sid, entry: &Entry) {
        let prev = self.last_applied.get(&sid).copied().unwrap_or_default();
        let zxid = entry.zxid;
        let follows = if zxid.epoch == prev.epoch {
            zxid.counter == prev.counter + 1
        } else {
            zxid.epoch > prev.epoch && zxid.counter == 1
        };
        if !follows {
            return self.violation(
                "committed-order",
                format!("s{sid} applies {zxid} right after {prev}"),
            );
        }
        let hash = payload_hash(&entry.data);
        match self.committed.get(&zxid) {
            Some(&(h, _)) if h != hash => self.violation(
                "committed-order",
                format!("s{sid} applies a different transaction at {zxid}"),
            ),
            Some(&(_, p)) if p != prev => self.violation(
                "committed-order",
                format!("s{sid} applies {zxid} after {prev}; another server after {p}"),
            ),
            Some(_) => {}
            None => {
                self.committed.insert(zxid, (hash, prev));
            }
        }
        self.last_applied.insert(sid, zxid);
    }

    pub fn write_after_heal(&mut self, elapsed_us: u64) {
        let first = self.first_write_after_heal_us.get_or_insert(elapsed_us);
        *first = (*first).min(elapsed_us);
    }

    pub fn finish(&mut self, settle_ms: u64) {
        let bound_us = LIVENESS_BOUND_MS.min(settle_ms) * 1_000;
        match self.first_write_after_heal_us {
            Some(us) if us <= bound_us => {}
            Some(us) => self.violation(
                "liveness",
                format!("the first write after healing took {} ms", us / 1_000),
            ),
            None => self.violation(
                "liveness",
                format!("no write completed in the {settle_ms} ms after healing"),
            ),
        }
    }
}

/// ZooKeeper's SessionMoved: once a session's client has moved to a new connection and had a
/// write acknowledged there, nothing it sent on an older connection may commit after that
/// write. (A read there may still miss such a write, as in ZooKeeper.) `committed`: every
/// committed client txn that changes state, as (session, cxid, zxid); `sent_on`: the
/// connection each (session, xid) was sent on; `write_acks`: each session's acknowledged
/// writes as (connection, zxid). Connection ids grow with time.
pub fn session_moved(
    committed: &[(i64, i32, i64)],
    sent_on: &BTreeMap<(i64, i32), u64>,
    write_acks: &BTreeMap<i64, Vec<(u64, i64)>>,
) -> Option<String> {
    committed.iter().find_map(|&(session, cxid, zxid)| {
        let &old = sent_on.get(&(session, cxid))?;
        let &(conn, acked) = write_acks
            .get(&session)?
            .iter()
            .find(|&&(conn, acked)| conn > old && acked < zxid)?;
        Some(format!(
            "session {session:#x}: xid {cxid} sent on conn {old} committed at {zxid:#x}, after \
             the write acknowledged at {acked:#x} on its later conn {conn}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_from_a_left_connection_committed_after_one_acknowledged_on_the_new_is_caught() {
        let sent_on = BTreeMap::from([((7, 1), 100), ((7, 2), 100), ((7, 3), 200)]);
        let acks = BTreeMap::from([(7, vec![(200, 0x10)])]);
        // xid 1 committed before the new connection's write: fine.
        assert_eq!(
            session_moved(&[(7, 1, 0x0f), (7, 3, 0x10)], &sent_on, &acks),
            None
        );
        // xid 2, sent on the old connection, committed after it: caught.
        let found = session_moved(&[(7, 3, 0x10), (7, 2, 0x11)], &sent_on, &acks);
        assert!(found.unwrap().contains("xid 2 sent on conn 100"));
        // Another session's acknowledgements say nothing about this one.
        let other = BTreeMap::from([(8, vec![(200, 0x10)])]);
        assert_eq!(session_moved(&[(7, 2, 0x11)], &sent_on, &other), None);
    }
}
