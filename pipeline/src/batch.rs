//! Batching: when a batch of transactions closes (DESIGN.md §3, "batch").
//!
//! In: transactions as they leave prep, each with its encoded size and the time it became
//! ready to go out; the driver's clock as microseconds. Out: a decision, "close a batch of the
//! first N now" or "wait until T for more". The server's log stage uses it for group commit
//! (one batch = one log write + one fsync); a leader's proposals to followers will use the
//! same [`BatchLimits`] (one batch = one proposal message per follower).
//!
//! Holds: a batch never exceeds `max_txns`, nor `max_bytes` unless it is one transaction
//! larger than that; with `max_delay_us == 0` nothing ever waits, so an idle server adds no
//! latency; items leave in the order they arrived.
//! Not here: the write, the sync, the clock, the channel (the driver's).

use std::collections::VecDeque;

/// Default cap on transactions per batch: above what one core step produces under the
/// default globalOutstandingLimit (1000), so it does not limit the default server, yet it
/// bounds how much one sync carries.
pub const BATCH_TXNS_MAX_DEFAULT: usize = 4096;
/// Default cap on encoded bytes per batch: 4 MiB, four maximal (jute.maxbuffer) znodes.
pub const BATCH_BYTES_MAX_DEFAULT: usize = 4 * 1024 * 1024;
/// A longer delay would hold writes for a sizeable part of a session timeout.
pub const BATCH_DELAY_US_LIMIT: u64 = 1_000_000;

/// The batching flags (`--batch-max-txns`, `--batch-max-bytes`, `--batch-max-delay-micros`).
/// The log's group commit uses them now; a leader's proposals to followers will use the same
/// limits, so one batch is one fsync and one proposal message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Close a batch once it holds this many transactions; the rest go in the next one.
    pub max_txns: usize,
    /// Close a batch before it would pass this many encoded bytes. A single larger
    /// transaction still goes, alone.
    pub max_bytes: usize,
    /// How long a batch may wait for more transactions while the log is idle, counted from
    /// when its first transaction could have been written. 0: never wait (close as soon as
    /// the log is idle: an idle server adds no latency, a busy one batches what queued
    /// during the previous write).
    pub max_delay_us: u64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_txns: BATCH_TXNS_MAX_DEFAULT,
            max_bytes: BATCH_BYTES_MAX_DEFAULT,
            max_delay_us: 0,
        }
    }
}

impl BatchLimits {
    /// Names the first limit out of range; the caller adds the flag or key.
    pub fn check(&self) -> Result<(), String> {
        if self.max_txns == 0 {
            return Err("the maximum transactions per batch must be at least 1".into());
        }
        if self.max_bytes == 0 {
            return Err("the maximum bytes per batch must be at least 1".into());
        }
        if self.max_delay_us > BATCH_DELAY_US_LIMIT {
            return Err(format!(
                "the maximum batch delay must not exceed {BATCH_DELAY_US_LIMIT} µs"
            ));
        }
        Ok(())
    }
}

/// What the driver should do next with the queued transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing queued.
    Empty,
    /// Write a batch now: call [`Batcher::close`].
    Close,
    /// Wait for more until this time (µs, the driver's clock), then ask again.
    WaitUntil(u64),
}

struct Queued<T> {
    item: T,
    bytes: usize,
    ready_us: u64,
}

/// Queued transactions (or anything with a size) and the rule for closing a batch. Pure: the
/// driver pushes items with the time they became ready, asks [`Batcher::decide`] whenever its
/// sink (the log) is idle, and waits or closes as told.
pub struct Batcher<T> {
    limits: BatchLimits,
    queue: VecDeque<Queued<T>>,
    queued_bytes: usize,
}

impl<T> Batcher<T> {
    pub fn new(limits: BatchLimits) -> Self {
        assert!(limits.check().is_ok(), "limits checked by the config");
        Batcher {
            limits,
            queue: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues an item. `ready_us` is when it could first have been written: items that queued
    /// while the sink was busy are ready when the sink becomes idle, not when they arrived, so
    /// the delay is time the sink spends idle waiting, never time it spent working.
    pub fn push(&mut self, item: T, bytes: usize, ready_us: u64) {
        if let Some(last) = self.queue.back() {
            assert!(ready_us >= last.ready_us, "the driver's clock is monotonic");
        }
        self.queued_bytes += bytes;
        self.queue.push_back(Queued {
            item,
            bytes,
            ready_us,
        });
    }

    /// Whether the first batch is full: closing now cannot make it bigger.
    fn full(&self) -> bool {
        // Either the queue holds max_txns, or the byte total reached the cap: then the batch
        // that `close` takes ends at a cap (or is one oversized transaction).
        self.queue.len() >= self.limits.max_txns || self.queued_bytes >= self.limits.max_bytes
    }

    /// Decides, at `now_us`, whether to close a batch. Call it whenever the sink is idle.
    pub fn decide(&self, now_us: u64) -> Decision {
        let Some(first) = self.queue.front() else {
            return Decision::Empty;
        };
        if self.full() {
            return Decision::Close;
        }
        let deadline_us = first.ready_us.saturating_add(self.limits.max_delay_us);
        if now_us >= deadline_us {
            Decision::Close
        } else {
            Decision::WaitUntil(deadline_us)
        }
    }

    /// Moves the next batch into `out`, oldest first: as many items as fit under both caps,
    /// at least one. What does not fit stays queued, still ready since its original time, so
    /// it closes as soon as the sink is idle again. Returns the batch's bytes.
    pub fn close(&mut self, out: &mut Vec<T>) -> usize {
        let mut count = 0;
        let mut bytes = 0;
        while let Some(next) = self.queue.front() {
            if count == self.limits.max_txns {
                break;
            }
            if count > 0 && bytes + next.bytes > self.limits.max_bytes {
                break;
            }
            let next = self.queue.pop_front().expect("front exists");
            count += 1;
            bytes += next.bytes;
            self.queued_bytes -= next.bytes;
            out.push(next.item);
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    //! Goal: the closing rule as the issue states it (caps split, delay closes early at caps,
    //! zero delay never waits), checked on plain values: no threads, no sleeps, no clock.

    use super::*;

    fn limits(max_txns: usize, max_bytes: usize, max_delay_us: u64) -> BatchLimits {
        BatchLimits {
            max_txns,
            max_bytes,
            max_delay_us,
        }
    }

    fn drain(batcher: &mut Batcher<u32>) -> Vec<u32> {
        let mut out = Vec::new();
        batcher.close(&mut out);
        out
    }

    #[test]
    fn zero_delay_never_waits() {
        let mut b = Batcher::new(BatchLimits::default());
        assert_eq!(b.decide(0), Decision::Empty);
        b.push(1, 100, 50);
        assert_eq!(b.decide(50), Decision::Close);
        b.push(2, 100, 60);
        assert_eq!(b.decide(60), Decision::Close);
        assert_eq!(drain(&mut b), vec![1, 2]);
        assert_eq!(b.decide(60), Decision::Empty);
    }

    #[test]
    fn the_default_takes_everything_queued_in_one_batch() {
        let mut b = Batcher::new(BatchLimits::default());
        for i in 0..1024 {
            b.push(i, 150, 0);
        }
        assert_eq!(b.decide(0), Decision::Close);
        assert_eq!(drain(&mut b).len(), 1024);
        assert!(b.is_empty());
    }

    #[test]
    fn txn_cap_splits_and_the_rest_closes_next_without_waiting() {
        let mut b = Batcher::new(limits(3, usize::MAX, 1000));
        for i in 0..7 {
            b.push(i, 10, 100);
        }
        assert_eq!(b.decide(100), Decision::Close, "full: no wait");
        assert_eq!(drain(&mut b), vec![0, 1, 2]);
        assert_eq!(b.decide(100), Decision::Close);
        assert_eq!(drain(&mut b), vec![3, 4, 5]);
        // One left, under the caps: it waits out the delay from when it became ready (100).
        assert_eq!(b.decide(200), Decision::WaitUntil(1100));
        assert_eq!(b.decide(1100), Decision::Close);
        assert_eq!(drain(&mut b), vec![6]);
    }

    #[test]
    fn byte_cap_splits_before_the_item_that_would_pass_it() {
        let mut b = Batcher::new(limits(100, 250, 0));
        for (i, bytes) in [100, 100, 100, 30].into_iter().enumerate() {
            b.push(i as u32, bytes, 0);
        }
        assert_eq!(b.close(&mut Vec::new()), 200);
        assert_eq!(drain(&mut b), vec![2, 3]);
    }

    #[test]
    fn an_item_larger_than_the_byte_cap_goes_alone() {
        let mut b = Batcher::new(limits(100, 250, 5000));
        b.push(1, 1000, 0);
        b.push(2, 10, 0);
        assert_eq!(b.decide(0), Decision::Close, "over the byte cap: full");
        assert_eq!(drain(&mut b), vec![1]);
        assert_eq!(b.decide(0), Decision::WaitUntil(5000));
    }

    #[test]
    fn delay_waits_from_the_first_item_and_closes_at_the_deadline() {
        let mut b = Batcher::new(limits(10, usize::MAX, 1000));
        b.push(1, 10, 500);
        assert_eq!(b.decide(500), Decision::WaitUntil(1500));
        b.push(2, 10, 900);
        // A later item does not push the deadline back.
        assert_eq!(b.decide(900), Decision::WaitUntil(1500));
        assert_eq!(b.decide(1499), Decision::WaitUntil(1500));
        assert_eq!(b.decide(1500), Decision::Close);
        assert_eq!(drain(&mut b), vec![1, 2]);
    }

    #[test]
    fn delay_closes_early_when_a_cap_is_reached() {
        let mut b = Batcher::new(limits(4, usize::MAX, 1_000_000));
        for i in 0..3 {
            b.push(i, 10, 0);
            assert_eq!(b.decide(1), Decision::WaitUntil(1_000_000));
        }
        b.push(3, 10, 2);
        assert_eq!(b.decide(2), Decision::Close);
        assert_eq!(drain(&mut b), vec![0, 1, 2, 3]);

        let mut b = Batcher::new(limits(100, 64, 1_000_000));
        b.push(0, 40, 0);
        assert_eq!(b.decide(0), Decision::WaitUntil(1_000_000));
        b.push(1, 40, 1);
        assert_eq!(b.decide(1), Decision::Close, "80 bytes queued, cap 64");
        assert_eq!(drain(&mut b), vec![0]);
        // The one that did not fit has been ready since 1: it waits only its own delay.
        assert_eq!(b.decide(2), Decision::WaitUntil(1_000_001));
    }

    #[test]
    fn limits_are_checked() {
        assert!(BatchLimits::default().check().is_ok());
        assert!(limits(0, 1, 0).check().is_err());
        assert!(limits(1, 0, 0).check().is_err());
        assert!(limits(1, 1, BATCH_DELAY_US_LIMIT).check().is_ok());
        assert!(limits(1, 1, BATCH_DELAY_US_LIMIT + 1).check().is_err());
    }
}
