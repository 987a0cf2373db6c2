//! Where each request's time went on the core thread, kept beside the core rather than in
//! it: the sans-IO core never reads a clock, so the driver notes when it took each request,
//! when each batch went to the log, when the log made it durable, and matches replies to
//! those moments as they go out.
//!
//! Replies to one connection leave in the order its requests arrived (the commit stage
//! keeps session order), so a FIFO of arrival times per connection is enough to find a
//! reply's request; a reply's zxid finds the batch that carried its write.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rzk_metrics::CoreStages;
use rzk_pipeline::ConnId;

struct Batch {
    last_zxid: i64,
    handed: Instant,
    durable: Option<(Instant, Instant)>,
}

#[derive(Default)]
pub struct StageClock {
    taken: HashMap<ConnId, VecDeque<Instant>>,
    batches: VecDeque<Batch>,
}

impl StageClock {
    /// The core is about to prep a request of `conn`.
    pub fn taken(&mut self, conn: ConnId, at: Instant) {
        self.taken.entry(conn).or_default().push_back(at);
    }

    pub fn disconnected(&mut self, conn: ConnId) {
        self.taken.remove(&conn);
    }

    /// A batch whose last transaction is `last_zxid` went to the log.
    pub fn batch_handed(&mut self, last_zxid: i64, at: Instant) {
        debug_assert!(self.batches.back().is_none_or(|b| b.last_zxid < last_zxid));
        self.batches.push_back(Batch {
            last_zxid,
            handed: at,
            durable: None,
        });
    }

    /// The log made everything up to `zxid` durable at `written`; the core heard at `seen`.
    pub fn durable(&mut self, zxid: i64, written: Instant, seen: Instant) {
        for batch in self.batches.iter_mut().take_while(|b| b.last_zxid <= zxid) {
            batch.durable.get_or_insert((written, seen));
        }
    }

    /// A reply to `conn` reflecting `zxid` is handed to its event loop at `now`.
    pub fn reply(&mut self, conn: ConnId, zxid: i64, now: Instant) -> Option<CoreStages> {
        // The connection's (empty) queue stays until it disconnects: removing it here made
        // every request of a one-at-a-time client allocate a new one.
        let taken = self.taken.get_mut(&conn)?.pop_front()?;
        let index = self.batches.partition_point(|b| b.last_zxid < zxid);
        let carried = self
            .batches
            .get(index)
            .filter(|b| b.handed >= taken)
            .and_then(|b| b.durable.map(|(written, seen)| (b.handed, written, seen)));
        Some(match carried {
            Some((handed, written, seen)) => CoreStages {
                prep: handed - taken,
                log: written.saturating_duration_since(handed),
                quorum: seen.saturating_duration_since(written),
                apply: now.saturating_duration_since(seen),
                handed: now,
            },
            // Answered by the core without waiting for the log (a read with a watch, sync).
            None => CoreStages {
                prep: Duration::ZERO,
                log: Duration::ZERO,
                quorum: Duration::ZERO,
                apply: now.saturating_duration_since(taken),
                handed: now,
            },
        })
    }

    /// Forgets batches whose replies have all gone out: a durable batch's replies leave in
    /// the same core step that hears of it.
    pub fn retire(&mut self) {
        while self.batches.front().is_some_and(|b| b.durable.is_some()) {
            self.batches.pop_front();
        }
    }

    #[cfg(test)]
    fn tracked_requests(&self) -> usize {
        self.taken.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, us: u64) -> Instant {
        base + Duration::from_micros(us)
    }

    #[test]
    fn a_write_is_split_into_prep_log_quorum_apply() {
        let t = Instant::now();
        let mut clock = StageClock::default();
        clock.taken(1, at(t, 0));
        clock.batch_handed(10, at(t, 20));
        clock.durable(10, at(t, 120), at(t, 130));
        let stages = clock.reply(1, 10, at(t, 150)).unwrap();
        assert_eq!(stages.prep, Duration::from_micros(20));
        assert_eq!(stages.log, Duration::from_micros(100));
        assert_eq!(stages.quorum, Duration::from_micros(10));
        assert_eq!(stages.apply, Duration::from_micros(20));
        clock.retire();
        assert_eq!(clock.tracked_requests(), 0);
        assert!(clock.batches.is_empty());
    }

    #[test]
    fn a_read_taken_after_the_batch_left_is_all_apply() {
        let t = Instant::now();
        let mut clock = StageClock::default();
        clock.batch_handed(10, at(t, 0));
        clock.taken(2, at(t, 50));
        clock.durable(10, at(t, 100), at(t, 110));
        let stages = clock.reply(2, 10, at(t, 130)).unwrap();
        assert_eq!(stages.log, Duration::ZERO);
        assert_eq!(stages.apply, Duration::from_micros(80));
    }

    #[test]
    fn replies_match_requests_in_order_per_connection_and_batches_by_zxid() {
        let t = Instant::now();
        let mut clock = StageClock::default();
        clock.taken(1, at(t, 0));
        clock.taken(1, at(t, 5));
        clock.batch_handed(10, at(t, 10));
        clock.taken(1, at(t, 15));
        clock.batch_handed(11, at(t, 20));
        clock.durable(11, at(t, 200), at(t, 210));
        assert_eq!(
            clock.reply(1, 9, at(t, 220)).unwrap().prep,
            Duration::from_micros(10)
        );
        assert_eq!(
            clock.reply(1, 10, at(t, 220)).unwrap().prep,
            Duration::from_micros(5)
        );
        assert_eq!(
            clock.reply(1, 11, at(t, 220)).unwrap().prep,
            Duration::from_micros(5)
        );
        assert!(
            clock.reply(1, 11, at(t, 220)).is_none(),
            "no fourth request"
        );
        clock.disconnected(1);
    }
}
