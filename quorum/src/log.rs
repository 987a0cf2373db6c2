//! The replicated history as this server holds it in memory: the entries after `base`, the
//! durable tail among them, and nothing else. The disk holds the same entries (the driver
//! carries out `DiskRequest`s in order); this copy is what DIFFs and applies are served from.

use std::collections::VecDeque;

use crate::{Entry, Zxid};

#[derive(Debug, Clone, Default)]
pub struct Log {
    /// Everything up to `base` is summarised by the pipeline's state (a snapshot, or entries
    /// already applied and trimmed): no entry at or below it is held.
    base: Zxid,
    entries: VecDeque<Entry>,
    /// The last entry known to be fsynced here: the only tail a vote or FOLLOWERINFO names.
    durable: Zxid,
}

impl Log {
    /// A log whose entries after `base` are all durable (what a restart reads back).
    pub fn recovered(base: Zxid, entries: Vec<Entry>) -> Log {
        let mut log = Log {
            base,
            entries: VecDeque::with_capacity(entries.len()),
            durable: base,
        };
        for entry in entries {
            log.push(entry);
        }
        log.durable = log.last();
        log
    }

    pub fn base(&self) -> Zxid {
        self.base
    }

    pub fn last(&self) -> Zxid {
        self.entries.back().map_or(self.base, |e| e.zxid)
    }

    pub fn durable(&self) -> Zxid {
        self.durable
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the history up to `zxid` is known here: `zxid` is the base or a held entry.
    pub fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.base || self.index_of(zxid).is_ok()
    }

    fn index_of(&self, zxid: Zxid) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| e.zxid.cmp(&zxid))
    }

    /// Appends one entry. A zxid either follows the last one in its epoch or starts a later
    /// epoch at counter 1: a gap here would become a hole in every DIFF served from this log
    /// (ZOOKEEPER-2418, ZOOKEEPER-4925), so it stops the server.
    pub fn push(&mut self, entry: Entry) {
        let last = self.last();
        if entry.zxid.epoch == last.epoch {
            assert_eq!(
                entry.zxid.counter,
                last.counter + 1,
                "log gap in epoch {}: {} after {}",
                last.epoch,
                entry.zxid,
                last
            );
        } else {
            assert!(
                entry.zxid.epoch > last.epoch,
                "log epoch goes back: {} after {}",
                entry.zxid,
                last
            );
            assert_eq!(
                entry.zxid.counter, 1,
                "epoch starts mid-way: {}",
                entry.zxid
            );
        }
        self.entries.push_back(entry);
    }

    /// Entries after `after` up to and including `upto`, in order.
    pub fn range(&self, after: Zxid, upto: Zxid) -> impl Iterator<Item = &Entry> + '_ {
        assert!(
            after >= self.base,
            "range from {after} below base {}",
            self.base
        );
        let start = match self.index_of(after) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.entries
            .range(start..)
            .take_while(move |e| e.zxid <= upto)
    }

    /// The greatest held zxid (or the base) that is at most `zxid`.
    pub fn floor(&self, zxid: Zxid) -> Zxid {
        match self.index_of(zxid) {
            Ok(i) => self.entries[i].zxid,
            Err(0) => self.base,
            Err(i) => self.entries[i - 1].zxid,
        }
    }

    /// The disk reports entries up to `zxid` durable.
    pub fn set_durable(&mut self, zxid: Zxid) {
        assert!(
            zxid >= self.durable,
            "durable tail goes back: {zxid} after {}",
            self.durable
        );
        assert!(
            zxid <= self.last(),
            "durable {zxid} beyond the log's last {}",
            self.last()
        );
        self.durable = zxid;
    }

    /// Drops every entry after `after` (TRUNC). The disk is asked to do the same; until it
    /// reports done the durable tail may still name a dropped entry, so it is lowered now: a
    /// vote never names it again.
    pub fn truncate_after(&mut self, after: Zxid) {
        assert!(
            after >= self.base,
            "truncate to {after} below base {}",
            self.base
        );
        while self.entries.back().is_some_and(|e| e.zxid > after) {
            self.entries.pop_back();
        }
        self.durable = self.durable.min(after);
    }

    /// Replaces everything with a snapshot at `zxid` (SNAP). Durable once the disk says so.
    pub fn reset(&mut self, zxid: Zxid) {
        self.entries.clear();
        self.base = zxid;
        self.durable = self.durable.min(zxid);
    }

    /// Forgets committed entries beyond the newest `keep`, none above `applied`.
    pub fn trim(&mut self, applied: Zxid, keep: usize) {
        while self.entries.len() > keep {
            let front = self.entries.front().expect("longer than keep");
            if front.zxid > applied || front.zxid > self.durable {
                break;
            }
            self.base = front.zxid;
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(epoch: u32, counter: u32) -> Entry {
        Entry {
            zxid: Zxid::new(epoch, counter),
            data: vec![epoch as u8, counter as u8].into(),
        }
    }

    #[test]
    fn push_accepts_the_next_counter_or_a_new_epoch_at_one() {
        let mut log = Log::recovered(Zxid::new(1, 3), vec![entry(1, 4)]);
        log.push(entry(1, 5));
        log.push(entry(3, 1));
        assert_eq!(log.last(), Zxid::new(3, 1));
        assert_eq!(log.durable(), Zxid::new(1, 4));
        assert!(log.contains(Zxid::new(1, 3)));
        assert!(!log.contains(Zxid::new(2, 1)));
        assert_eq!(log.floor(Zxid::new(2, 7)), Zxid::new(1, 5));
        assert_eq!(log.floor(Zxid::new(1, 2)), Zxid::new(1, 3));
    }

    #[test]
    #[should_panic(expected = "log gap")]
    fn push_refuses_a_gap() {
        let mut log = Log::recovered(Zxid::new(1, 3), vec![]);
        log.push(entry(1, 5));
    }

    #[test]
    #[should_panic(expected = "epoch starts mid-way")]
    fn push_refuses_a_new_epoch_that_does_not_start_at_one() {
        let mut log = Log::recovered(Zxid::new(1, 3), vec![]);
        log.push(entry(2, 2));
    }

    #[test]
    fn truncate_lowers_the_durable_tail_and_range_respects_bounds() {
        let mut log = Log::recovered(Zxid::ZERO, (1..=5).map(|c| entry(1, c)).collect());
        log.truncate_after(Zxid::new(1, 3));
        assert_eq!(log.durable(), Zxid::new(1, 3));
        let got: Vec<_> = log
            .range(Zxid::new(1, 1), Zxid::new(1, 9))
            .map(|e| e.zxid)
            .collect();
        assert_eq!(got, vec![Zxid::new(1, 2), Zxid::new(1, 3)]);
        log.trim(Zxid::new(1, 2), 1);
        assert_eq!(log.base(), Zxid::new(1, 2));
        assert_eq!(log.len(), 1);
    }
}
