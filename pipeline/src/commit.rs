//! Commit stage: keeps each session's replies in the order its requests arrived, and matches
//! committed transactions to the requests that wait for them.
//!
//! A write takes its place in its session's queue when it is prepped (leader) or forwarded
//! (learner); any later request of that session that the core answers itself (reads with
//! watches, sync, watch management) queues behind it and is answered right after the write
//! is released, against the tree that includes it. A session with an empty queue is answered
//! at once. A committed transaction is matched to the head of its session's queue by cxid and
//! kind: on a learner it may come from a request this server never saw (the session moved
//! here, or the leader expired it), and then nobody here waits for it.
//! Not here: deciding durability or commitment, or the zxid order of writes.

use std::collections::{HashMap, VecDeque};

use rzk_proto::Request;

/// What a committed transaction does to sessions, which is all a queued write is matched by
/// besides its cxid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    CreateSession,
    CloseSession,
    Other,
}

use crate::ConnId;

/// What a released write answers: a client request, or the connect that created a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteReply {
    Request {
        is_multi: bool,
        is_close: bool,
    },
    Connect {
        timeout_ms: i32,
        read_only: Option<bool>,
    },
}

impl WriteReply {
    /// Whether a transaction with `body` can be the answer: the cxid alone is not enough on
    /// a learner, where the leader's expiry closes a session with cxid 0, the cxid of a
    /// connect (and of a client's first request, for clients that start at 0).
    fn answered_by(&self, kind: TxnKind) -> bool {
        let expected = match self {
            WriteReply::Connect { .. } => TxnKind::CreateSession,
            WriteReply::Request { is_close: true, .. } => TxnKind::CloseSession,
            WriteReply::Request {
                is_close: false, ..
            } => TxnKind::Other,
        };
        kind == expected
    }
}

#[derive(Debug)]
pub enum Queued {
    Write {
        cxid: i32,
        conn: ConnId,
        reply: WriteReply,
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

    /// A transaction of `session_id` with `cxid` and `kind` was committed. If it answers the
    /// write at the head of the session's queue, removes that write, moves the requests that
    /// waited only for it to `ready` (with their session) and says whom to answer. The
    /// emptied queue stays until the session ends: dropping it made every write of a
    /// one-at-a-time client allocate a new one.
    pub fn release_write(
        &mut self,
        session_id: i64,
        cxid: i32,
        kind: TxnKind,
        ready: &mut Vec<(ConnId, i64, i32, Request)>,
    ) -> Option<(ConnId, WriteReply)> {
        let queue = self.queues.get_mut(&session_id)?;
        let answered = match queue.front() {
            Some(Queued::Write {
                cxid: head,
                conn,
                reply,
            }) if *head == cxid && reply.answered_by(kind) => (*conn, *reply),
            _ => return None,
        };
        queue.pop_front();
        while let Some(Queued::Request { .. }) = queue.front() {
            if let Some(Queued::Request { conn, xid, request }) = queue.pop_front() {
                ready.push((conn, session_id, xid, *request));
            }
        }
        Some(answered)
    }

    pub fn remove_session(&mut self, session_id: i64) {
        self.queues.remove(&session_id);
    }

    pub fn clear(&mut self) {
        self.queues.clear();
    }

    pub fn queued_count(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }
}
