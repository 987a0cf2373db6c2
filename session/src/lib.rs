//! Sessions: the table of live sessions, timeout negotiation, expiry driven by the driver's
//! clock, session id and password generation, and the authentication schemes a client can
//! add with `auth` (digest, ip).
//!
//! Owns: which sessions exist, their timeouts and passwords, when each was last heard from.
//! Never: reads a clock (times come in as `now_ms`), touches sockets, or changes the tree —
//! an expired session becomes a closeSession transaction that prep turns into deletes.

pub mod auth;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Last time (driver ms) a session was heard from. The event loop stores into it on every
/// frame it reads, without a message to the core: the core only reads it when it ticks.
pub type Touch = Arc<AtomicU64>;

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
}

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

/// splitmix64: the session table's source of passwords. Seeded by the driver so the simulator
/// can replay a run; passwords only need to be unguessable by other clients of a test, not by
/// an attacker who can read server memory.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Self {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

pub struct SessionTable {
    sessions: HashMap<i64, Session>,
    next_id: i64,
    prng: Prng,
}

impl SessionTable {
    /// Session ids start from the clock as ZooKeeper's do (`(now << 24) >>> 8 | sid << 56`),
    /// so ids from before a restart are not reused.
    pub fn new(server_id: u8, now_ms: u64, seed: u64) -> Self {
        let base = ((now_ms << 24) >> 8) as i64 | ((server_id as i64) << 56);
        SessionTable {
            sessions: HashMap::new(),
            next_id: base.max(1),
            prng: Prng::new(seed),
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

    /// Allocates an id and password for a new session; the session exists from here on.
    pub fn create(&mut self, timeout_ms: i32, now_ms: u64) -> &Session {
        let id = self.next_id;
        self.next_id += 1;
        let mut passwd = [0u8; 16];
        passwd[..8].copy_from_slice(&self.prng.next_u64().to_be_bytes());
        passwd[8..].copy_from_slice(&self.prng.next_u64().to_be_bytes());
        self.insert(id, timeout_ms, passwd, now_ms);
        &self.sessions[&id]
    }

    /// Re-creates a session with a known id (log replay, followers).
    pub fn insert(&mut self, id: i64, timeout_ms: i32, passwd: [u8; 16], now_ms: u64) {
        self.next_id = self.next_id.max(id + 1);
        self.sessions.insert(
            id,
            Session {
                id,
                timeout_ms,
                passwd,
                touch: Arc::new(AtomicU64::new(now_ms)),
                closing: false,
            },
        );
    }

    pub fn remove(&mut self, id: i64) -> Option<Session> {
        self.sessions.remove(&id)
    }

    /// Sessions not heard from within their timeout and not already closing, oldest first.
    pub fn expired(&self, now_ms: u64) -> Vec<i64> {
        let mut out: Vec<(u64, i64)> = self
            .sessions
            .values()
            .filter(|s| !s.closing)
            .filter_map(|s| {
                let last = s.touch.load(Ordering::Relaxed);
                let deadline = last + s.timeout_ms.max(0) as u64;
                (now_ms > deadline).then_some((deadline, s.id))
            })
            .collect();
        out.sort_unstable();
        out.into_iter().map(|(_, id)| id).collect()
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
    fn sessions_expire_after_their_timeout_unless_touched() {
        let mut table = SessionTable::new(0, 1_000, 7);
        let a = table.create(4000, 1_000).id;
        let b = table.create(4000, 1_000).id;
        assert_ne!(a, b);
        table.get(b).unwrap().touch.store(4_000, Ordering::Relaxed);
        assert!(table.expired(5_000).is_empty());
        assert_eq!(table.expired(5_001), vec![a]);
        table.get_mut(a).unwrap().closing = true;
        assert_eq!(table.expired(8_001), vec![b]);
    }

    #[test]
    fn ids_are_distinct_and_passwords_differ() {
        let mut table = SessionTable::new(0, 1_000, 7);
        let p1 = table.create(4000, 0).passwd;
        let p2 = table.create(4000, 0).passwd;
        assert_ne!(p1, p2);
    }
}
