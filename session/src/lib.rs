//! Sessions: the table of live sessions, timeout negotiation, expiry driven by the driver's
//! monotonic clock through expiry buckets (ZooKeeper's ExpiryQueue), session id and password
//! generation, and the authentication schemes a client can add with `auth` (digest, ip).
//!
//! Owns: which sessions exist, their timeouts and passwords, when each was last heard from.
//! Never: reads a clock (times come in as arguments: `Now::mono_ms` for everything here but
//! the id base, which is wall-clock time), touches sockets, or changes the tree —
//! an expired session becomes a closeSession transaction that prep turns into deletes.

pub mod auth;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Last time (monotonic ms, `Now::mono_ms`) a session was heard from. The event loop stores
/// into it on every frame it reads, without a message to the core: the core reads it only when
/// the session's expiry bucket comes due.
pub type Touch = Arc<AtomicU64>;

/// The two clocks a core is given. Expiry and every schedule run on `mono_ms`, which never
/// jumps: on the wall clock, a step forward (NTP, a resumed VM) would expire every session at
/// once. `wall_ms` is only what clients see: a transaction's time, hence ctime and mtime, and
/// the TTL of TTL nodes, which ZooKeeper compares with mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    pub mono_ms: u64,
    pub wall_ms: u64,
}

impl Now {
    /// One clock for both, for tests and simulations, which have no wall clock to step.
    pub const fn both(ms: u64) -> Now {
        Now {
            mono_ms: ms,
            wall_ms: ms,
        }
    }
}

/// A session as the log and snapshots hold it: what survives a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableSession {
    pub id: i64,
    pub timeout_ms: i32,
    pub passwd: [u8; 16],
}

#[derive(Debug)]
pub struct Session {
    pub id: i64,
    pub timeout_ms: i32,
    pub passwd: [u8; 16],
    pub touch: Touch,
    /// A closeSession (by the client or by expiry) is in flight; nothing else may start.
    pub closing: bool,
    /// The expiry bucket the session is filed under (see `SessionTable::expired`), or
    /// `UNFILED` once its bucket came due and it was reported expired or is closing.
    bucket_ms: u64,
}

/// `Session::bucket_ms` of a session in no bucket. Never a real bucket: those are multiples of
/// the interval strictly after a deadline, so at least the interval (>= 1).
const UNFILED: u64 = 0;

/// Timeout limits as ZooKeeper derives them: min 2 × tickTime and max 20 × tickTime unless
/// configured.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLimits {
    pub min_ms: i32,
    pub max_ms: i32,
}

impl TimeoutLimits {
    pub fn negotiate(&self, requested_ms: i32) -> i32 {
        requested_ms.clamp(self.min_ms, self.max_ms.max(self.min_ms))
    }
}

pub use rzk_proto::Prng;

pub struct SessionTable {
    sessions: HashMap<i64, Session>,
    /// Sessions by the end of the interval their deadline falls in (ZooKeeper's ExpiryQueue,
    /// bucketed by tickTime). A session moved to another bucket (re-attach) or removed stays
    /// listed in the old one until it comes due: its `bucket_ms` says which listing is
    /// current, and a listing that is not current is dropped then. A session is listed at
    /// most once under its current bucket.
    buckets: BTreeMap<u64, Vec<i64>>,
    bucket_interval_ms: u64,
    /// Bucket listings `expired` has looked at, over the table's life: the cost of expiry,
    /// which tests compare with the number of sessions.
    examined_count: u64,
    next_id: i64,
    /// The top byte of every id this table creates: ids never collide across the servers of
    /// an ensemble, each creating its own clients' sessions.
    server_id: u8,
    prng: Prng,
}

impl SessionTable {
    /// Session ids start from the wall clock as ZooKeeper's do (`(now << 24) >>> 8 | sid <<
    /// 56`), so ids from before a restart are not reused. Expiry is checked per
    /// `bucket_interval_ms` (ZooKeeper's tickTime): a session expires at most that late.
    pub fn new(server_id: u8, wall_ms: u64, seed: u64, bucket_interval_ms: u64) -> Self {
        let base = ((wall_ms << 24) >> 8) as i64 | ((server_id as i64) << 56);
        SessionTable {
            sessions: HashMap::new(),
            buckets: BTreeMap::new(),
            bucket_interval_ms: bucket_interval_ms.max(1),
            examined_count: 0,
            next_id: base.max(1),
            server_id,
            prng: Prng::new(seed),
        }
    }

    /// The bucket a deadline is filed under: the end of its interval, strictly after it, so a
    /// bucket that is due holds only sessions whose deadline has passed or that were heard
    /// from since.
    fn bucket_of(&self, deadline_ms: u64) -> u64 {
        (deadline_ms / self.bucket_interval_ms + 1) * self.bucket_interval_ms
    }

    fn file(&mut self, id: i64, deadline_ms: u64) {
        let bucket = self.bucket_of(deadline_ms);
        debug_assert_ne!(bucket, UNFILED);
        if let Some(s) = self.sessions.get_mut(&id) {
            // Already listed there (a re-attach within the same interval): a second listing
            // would report the session expired twice, and twice the closeSession.
            if s.bucket_ms == bucket {
                return;
            }
            s.bucket_ms = bucket;
            self.buckets.entry(bucket).or_default().push(id);
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn get_mut(&mut self, id: i64) -> Option<&mut Session> {
        self.sessions.get_mut(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Session> {
        self.sessions.values_mut()
    }

    /// Allocates an id and password for a new session; the session exists from here on.
    /// `mono_ms` is `Now::mono_ms`, as every time the table takes after `new`.
    pub fn create(&mut self, timeout_ms: i32, mono_ms: u64) -> &Session {
        let id = self.next_id;
        self.next_id += 1;
        let mut passwd = [0u8; 16];
        passwd[..8].copy_from_slice(&self.prng.next_u64().to_be_bytes());
        passwd[8..].copy_from_slice(&self.prng.next_u64().to_be_bytes());
        self.insert(id, timeout_ms, passwd, mono_ms);
        &self.sessions[&id]
    }

    /// Re-creates a session with a known id (log replay, followers).
    pub fn insert(&mut self, id: i64, timeout_ms: i32, passwd: [u8; 16], mono_ms: u64) {
        // Only this server's own ids move its counter: a session created on a server with a
        // higher id would otherwise carry this one into that server's range, and the next
        // session created here would take an id that server already gave out.
        if (id >> 56) as u8 == self.server_id {
            self.next_id = self.next_id.max(id + 1);
        }
        self.sessions.insert(
            id,
            Session {
                id,
                timeout_ms,
                passwd,
                touch: Arc::new(AtomicU64::new(mono_ms)),
                closing: false,
                bucket_ms: UNFILED,
            },
        );
        self.file(id, mono_ms + timeout_ms.max(0) as u64);
    }

    /// A client re-attached with `timeout_ms` (renegotiated) at `mono_ms`: its deadline moves
    /// with it, earlier or later.
    pub fn reattach(&mut self, id: i64, timeout_ms: i32, mono_ms: u64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.timeout_ms = timeout_ms;
            s.touch.store(mono_ms, Ordering::Relaxed);
            self.file(id, mono_ms + timeout_ms.max(0) as u64);
        }
    }

    pub fn remove(&mut self, id: i64) -> Option<Session> {
        self.sessions.remove(&id)
    }

    /// Sessions not heard from within their timeout and not already closing, oldest deadline
    /// first (then by id, so the order never depends on the hash map). Only the buckets that
    /// came due are looked at: a session heard from since it was filed moves to the bucket of
    /// its new deadline, so a call costs what expires and what moves, not the number of
    /// sessions. Each expired session is reported once and leaves the buckets: the caller
    /// closes it (marks it `closing` and proposes closeSession).
    ///
    /// Never early: a bucket is due only once `mono_ms` reaches it, and it lies strictly after
    /// every deadline filed in it. At most one interval late, plus the caller's tick period.
    pub fn expired(&mut self, mono_ms: u64) -> Vec<i64> {
        let mut out: Vec<(u64, i64)> = Vec::new();
        let mut refile: Vec<(i64, u64)> = Vec::new();
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > mono_ms {
                break;
            }
            let (bucket, ids) = entry.remove_entry();
            self.examined_count += ids.len() as u64;
            for id in ids {
                let Some(s) = self.sessions.get_mut(&id) else {
                    continue; // removed since it was filed
                };
                if s.bucket_ms != bucket {
                    continue; // moved (listed under its current bucket) or unfiled since
                }
                // Out of the bucket before anything else, so that a second listing under the
                // same bucket (an id removed and inserted again) cannot match.
                s.bucket_ms = UNFILED;
                if s.closing {
                    continue; // its closeSession is in flight; it leaves the table with it
                }
                let deadline = s.touch.load(Ordering::Relaxed) + s.timeout_ms.max(0) as u64;
                if mono_ms > deadline {
                    out.push((deadline, id));
                } else {
                    refile.push((id, deadline));
                }
            }
        }
        for (id, deadline) in refile {
            self.file(id, deadline);
        }
        out.sort_unstable();
        out.into_iter().map(|(_, id)| id).collect()
    }

    /// How many bucket listings are held (moved sessions count until their old bucket is due).
    pub fn bucket_listings(&self) -> usize {
        self.buckets.values().map(Vec::len).sum()
    }

    /// Bucket listings `expired` has looked at so far (what its calls cost in total).
    pub fn examined_count(&self) -> u64 {
        self.examined_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_clamps_to_limits() {
        let limits = TimeoutLimits {
            min_ms: 4000,
            max_ms: 40000,
        };
        assert_eq!(limits.negotiate(1000), 4000);
        assert_eq!(limits.negotiate(10000), 10000);
        assert_eq!(limits.negotiate(100000), 40000);
    }

    #[test]
    fn sessions_learned_from_other_servers_never_move_this_servers_ids() {
        let mut learner = SessionTable::new(1, 1_000, 7, 1);
        let mut leader = SessionTable::new(3, 1_000, 8, 1);
        let theirs = leader.create(4000, 1_000).id;
        learner.insert(theirs, 4000, [0; 16], 1_000);
        let ours = learner.create(4000, 1_000).id;
        assert_eq!(ours >> 56, 1, "{ours:#x} carries this server's id");
        assert_ne!(leader.create(4000, 1_000).id, ours);
        // Its own ids, replayed from the log after a restart, still move it on.
        let mut restarted = SessionTable::new(1, 1_000, 7, 1);
        restarted.insert(ours, 4000, [0; 16], 1_000);
        assert!(restarted.create(4000, 1_000).id > ours);
    }

    #[test]
    fn sessions_expire_after_their_timeout_unless_touched() {
        let mut table = SessionTable::new(0, 1_000, 7, 1);
        let a = table.create(4000, 1_000).id;
        let b = table.create(4000, 1_000).id;
        assert_ne!(a, b);
        table.get(b).unwrap().touch.store(4_000, Ordering::Relaxed);
        assert!(table.expired(5_000).is_empty());
        assert_eq!(table.expired(5_001), vec![a]);
        table.get_mut(a).unwrap().closing = true;
        assert_eq!(table.expired(8_001), vec![b]);
    }

    /// Never early, at most one interval late, whatever the interval.
    #[test]
    fn expiry_is_never_early_and_at_most_one_bucket_late() {
        for interval in [1, 7, 100, 2000] {
            let mut table = SessionTable::new(0, 0, 1, interval);
            let id = table.create(4000, 1_234).id;
            let deadline = 1_234 + 4000;
            let mut expired_at = None;
            for now in (0..deadline + interval + 10).step_by(1) {
                if !table.expired(now).is_empty() {
                    expired_at = Some(now);
                    break;
                }
            }
            let at = expired_at.unwrap_or_else(|| panic!("interval {interval}: never expired"));
            assert!(at > deadline, "interval {interval}: expired early at {at}");
            assert!(
                at <= deadline + interval,
                "interval {interval}: expired late at {at}"
            );
            assert!(table.get(id).is_some(), "expiry reports; the caller closes");
        }
    }

    /// A touched session moves on; a tick looks only at the buckets that came due.
    #[test]
    fn a_tick_looks_only_at_due_buckets() {
        let mut table = SessionTable::new(0, 0, 1, 100);
        let ids: Vec<i64> = (0..1000).map(|i| table.create(10_000 + i, 0).id).collect();
        assert_eq!(table.bucket_listings(), 1000);
        // Every session spread over buckets 10_100..=11_000: nothing is due before 10_100.
        assert!(table.expired(10_000).is_empty());
        assert_eq!(
            table.bucket_listings(),
            1000,
            "nothing was looked at or moved"
        );
        // Keep half alive; the other half expires bucket by bucket.
        for id in ids.iter().step_by(2) {
            table
                .get(*id)
                .unwrap()
                .touch
                .store(5_000, Ordering::Relaxed);
        }
        let expired = table.expired(11_000);
        assert_eq!(expired.len(), 500);
        assert!(expired
            .iter()
            .all(|id| (ids.iter().position(|x| x == id).unwrap()) % 2 == 1));
        assert_eq!(
            table.bucket_listings(),
            500,
            "the touched half was filed again"
        );
    }

    /// Clients that reconnect quickly re-attach several times within one interval: the
    /// session stays listed once, and expires once (one closeSession, not one per re-attach).
    #[test]
    fn reattaching_within_one_bucket_lists_the_session_once() {
        let mut table = SessionTable::new(0, 0, 1, 2000);
        let id = table.create(4000, 100).id;
        table.reattach(id, 4000, 200);
        table.reattach(id, 4000, 300);
        assert_eq!(table.bucket_listings(), 1);
        // Heard from until 5_000: filed again once, not once per re-attach.
        table.get(id).unwrap().touch.store(5_000, Ordering::Relaxed);
        assert!(table.expired(6_000).is_empty());
        assert_eq!(table.bucket_listings(), 1);
        assert_eq!(table.expired(10_000), vec![id]);
        assert!(table.expired(100_000).is_empty(), "reported once");
        assert_eq!(table.bucket_listings(), 0);
    }

    /// A re-attach with a shorter timeout moves the deadline earlier; the old listing is
    /// dropped when its bucket comes due.
    #[test]
    fn a_reattach_can_move_the_deadline_earlier() {
        let mut table = SessionTable::new(0, 0, 1, 1000);
        let id = table.create(30_000, 0).id;
        table.reattach(id, 4_000, 1_000);
        assert!(table.expired(5_000).is_empty(), "never early");
        assert_eq!(table.expired(6_000), vec![id]);
        assert!(
            table.expired(40_000).is_empty(),
            "the stale listing reports nothing"
        );
    }

    /// An id removed and inserted again (a closed session replayed) is reported once, even
    /// when its stale listing shares the bucket of its new one.
    #[test]
    fn an_id_inserted_again_expires_once() {
        let mut table = SessionTable::new(0, 0, 1, 1000);
        table.insert(42, 4000, [0; 16], 100);
        assert!(table.remove(42).is_some());
        table.insert(42, 4000, [0; 16], 200);
        assert_eq!(table.bucket_listings(), 2);
        assert_eq!(table.expired(5_000), vec![42]);
        assert_eq!(table.bucket_listings(), 0);
    }

    /// Many sessions share a bucket; one tick expires them all, oldest deadline first, then by
    /// id, whatever order the hash map holds them in.
    #[test]
    fn many_sessions_in_one_bucket_expire_in_one_tick_in_a_fixed_order() {
        let mut table = SessionTable::new(0, 0, 1, 2000);
        // Ids in reverse order of deadline: 10_000 sessions, deadlines 4_000..=5_999 (one
        // bucket: 6_000), inserted so that hash order, id order and deadline order differ.
        let mut want: Vec<(u64, i64)> = Vec::new();
        for i in 0..10_000i64 {
            let id = 50_000 - i;
            let created = (i as u64 * 7919) % 2000;
            table.insert(id, 4000, [0; 16], created);
            want.push((created + 4000, id));
        }
        assert_eq!(table.buckets.len(), 1, "one bucket holds them all");
        assert!(table.expired(5_999).is_empty());
        assert_eq!(
            table.examined_count(),
            0,
            "a bucket not yet due is not looked at"
        );
        want.sort_unstable();
        let want: Vec<i64> = want.into_iter().map(|(_, id)| id).collect();
        assert_eq!(table.expired(6_000), want);
        assert_eq!(table.examined_count(), 10_000);
    }

    /// A session heard from often lives on, however long; each tick looks only at the bucket
    /// that came due, not at every session.
    #[test]
    fn a_touched_session_lives_and_ticks_do_not_scan_every_session() {
        let interval = 2000;
        let mut table = SessionTable::new(0, 0, 1, interval);
        let live = table.create(4000, 0).id;
        // Idle sessions far from expiry: a tick must not look at them.
        for _ in 0..10_000 {
            table.create(1_000_000, 0);
        }
        let mut now = 0;
        while now < 300_000 {
            now += 500; // the driver ticks at tickTime / 4
            table.get(live).unwrap().touch.store(now, Ordering::Relaxed);
            assert!(
                table.expired(now).is_empty(),
                "touched, yet expired at {now}"
            );
        }
        assert!(table.get(live).is_some());
        // The live session was looked at about once per interval, the others never.
        let looked = table.examined_count();
        assert!(
            looked <= 300_000 / interval + 1,
            "{looked} listings looked at for one live session"
        );
        // Untouched from now on: it expires after its timeout, rounded up to the interval.
        let mut at = now;
        while table.expired(at).is_empty() {
            at += 1;
        }
        assert!(at > now + 4000, "early: {at}");
        assert!(at <= now + 4000 + interval, "late: {at}");
    }

    #[test]
    fn ids_are_distinct_and_passwords_differ() {
        let mut table = SessionTable::new(0, 1_000, 7, 1);
        let p1 = table.create(4000, 0).passwd;
        let p2 = table.create(4000, 0).passwd;
        assert_ne!(p1, p2);
    }
}
