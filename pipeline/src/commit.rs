//! Commit stage: keeps each session's replies in the order its requests arrived.
//!
//! A write takes its place in its session's queue when prepped; any later request of that
//! session that the core answers itself (reads with watches, sync, watch management) queues
//! behind it and is answered right after the write is released, against the tree that
//! includes it. A session with an empty queue is answered at once.
//! Not here: deciding durability (wal) or the zxid order of writes (prep assigns it).

use std::collections::{HashMap, VecDeque};

use rzk_proto::Request;

use crate::ConnId;

#[derive(Debug)]
pub enum Queued {
    Write {
        zxid: i64,
    },
    Request {
        conn: ConnId,
        xid: i32,
        /// Boxed: every write of a session is queued too, and a `Request` inline made each
        /// of those pushes copy a few hundred bytes (2% of a set-heavy profile).
        request: Box<Request>,
    },
}

#[derive(Default)]
pub struct SessionQueues {
    queues: HashMap<i64, VecDeque<Queued>>,
}

impl SessionQueues {
    pub fn is_idle(&self, session_id: i64) -> bool {
        self.queues.get(&session_id).is_none_or(VecDeque::is_empty)
    }

    /// Whether the session's last queued item is a request waiting for a write.
    pub fn tail_is_request(&self, session_id: i64) -> bool {
        self.queues
            .get(&session_id)
            .and_then(VecDeque::back)
            .is_some_and(|q| matches!(q, Queued::Request { .. }))
    }

    pub fn push(&mut self, session_id: i64, item: Queued) {
        self.queues.entry(session_id).or_default().push_back(item);
    }

    /// A write was released: removes it from the head of its session's queue and moves the
    /// requests that waited only for it to `ready` (with their session). The emptied queue
    /// stays until the session ends: dropping it made every write of a one-at-a-time client
    /// allocate a new one.
    pub fn release_write(
        &mut self,
        session_id: i64,
        zxid: i64,
        ready: &mut Vec<(ConnId, i64, i32, Request)>,
    ) {
        let Some(queue) = self.queues.get_mut(&session_id) else {
            return;
        };
        match queue.pop_front() {
            Some(Queued::Write { zxid: head }) => {
                assert_eq!(head, zxid, "writes of a session release in zxid order")
            }
            other => panic!("released write {zxid:#x} but queue head is {other:?}"),
        }
        while let Some(Queued::Request { .. }) = queue.front() {
            if let Some(Queued::Request { conn, xid, request }) = queue.pop_front() {
                ready.push((conn, session_id, xid, *request));
            }
        }
    }

    pub fn remove_session(&mut self, session_id: i64) {
        self.queues.remove(&session_id);
    }

    pub fn queued_count(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }
}
