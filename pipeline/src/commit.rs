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
//!
//! In an ensemble a `sync` is a quorum round the driver runs: it waits in the queue like a
//! write, and whatever the session sends while it waits is *held* unprepped, then replayed in
//! order once the sync is answered. A write prepped behind an unanswered sync could be
//! committed first, and its reply would have to overtake the sync's.
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
    /// A local session's createSession on the leader, made global before its ephemeral
    /// write (held behind it) is prepped: nobody is answered.
    Upgrade,
}

impl WriteReply {
    /// Whether a transaction with `body` can be the answer: the cxid alone is not enough on
    /// a learner, where the leader's expiry closes a session with cxid 0, the cxid of a
    /// connect (and of a client's first request, for clients that start at 0).
    fn answered_by(&self, kind: TxnKind) -> bool {
        let expected = match self {
            WriteReply::Connect { .. } | WriteReply::Upgrade => TxnKind::CreateSession,
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
        /// The leader refused it (its session had moved to another server): no txn will
        /// answer it. When it comes to the head of its queue it is dropped and its connection
        /// closed, after everything the session sent before it was answered.
        refused: bool,
    },
    Request {
        conn: ConnId,
        xid: i32,
        /// Boxed: every write of a session is queued too, and a `Request` inline made each
        /// of those pushes copy a few hundred bytes (2% of a set-heavy profile).
        request: Box<Request>,
    },
    /// A quorum round for a client's `sync`; `done` once the driver reported it confirmed.
    Sync {
        conn: ConnId,
        xid: i32,
        path: String,
        id: u64,
        done: bool,
    },
    /// A request that arrived behind an unanswered sync: replayed as if it arrived when the
    /// sync is answered.
    Held {
        conn: ConnId,
        xid: i32,
        request: Box<Request>,
    },
}

/// What waited in a session's queue and may go ahead now, in the session's order.
#[derive(Debug)]
pub struct Ready {
    pub conn: ConnId,
    pub session_id: i64,
    pub xid: i32,
    pub action: ReadyAction,
}

#[derive(Debug)]
pub enum ReadyAction {
    /// Answer it against the released tree.
    Answer(Request),
    /// Hand it to the core again as newly arrived (it was held behind a sync).
    Replay(Request),
    /// A write the leader refused because its session moved to another server: close the
    /// connection that sent it, as ZooKeeper does on SessionMoved.
    Refused,
}

#[derive(Default)]
pub struct SessionQueues {
    queues: HashMap<i64, VecDeque<Queued>>,
}

impl SessionQueues {
    pub fn is_idle(&self, session_id: i64) -> bool {
        self.queues.get(&session_id).is_none_or(VecDeque::is_empty)
    }

    /// Whether what the session sends now must wait unprepped: a sync of it is unanswered, or
    /// something already waits so.
    pub fn must_hold(&self, session_id: i64) -> bool {
        self.queues.get(&session_id).is_some_and(|q| {
            q.iter()
                .any(|item| matches!(item, Queued::Sync { done: false, .. } | Queued::Held { .. }))
        })
    }

    /// The sync round `id` of `session_id` was confirmed. If it heads its session's queue,
    /// it and what waited behind it move to `ready`; otherwise they follow the write ahead.
    pub fn sync_done(&mut self, session_id: i64, id: u64, ready: &mut Vec<Ready>) {
        let Some(queue) = self.queues.get_mut(&session_id) else {
            return;
        };
        for item in queue.iter_mut() {
            if let Queued::Sync {
                id: queued, done, ..
            } = item
            {
                if *queued == id {
                    *done = true;
                }
            }
        }
        drain_ready(queue, session_id, ready);
    }

    /// The leader refused the write `cxid` of `session_id` (the session moved to another
    /// server). Its place in the queue is kept, so what the session sent before it is still
    /// answered first; it then leaves the queue as `ReadyAction::Refused`. A write queued
    /// already refused leaves it here too if nothing is ahead of it.
    pub fn refuse(&mut self, session_id: i64, cxid: i32, ready: &mut Vec<Ready>) {
        let Some(queue) = self.queues.get_mut(&session_id) else {
            return;
        };
        let waiting = queue.iter_mut().find_map(|item| match item {
            Queued::Write {
                cxid: queued,
                refused,
                ..
            } if *queued == cxid && !*refused => Some(refused),
            _ => None,
        });
        if let Some(refused) = waiting {
            *refused = true;
        }
        drain_ready(queue, session_id, ready);
    }

    /// Whether the session's last queued item waits for a write ahead of it to be answered
    /// (a request, or a sync): the write must end at a seal, so that it is answered before
    /// the session's next write is released.
    pub fn tail_is_request(&self, session_id: i64) -> bool {
        self.queues
            .get(&session_id)
            .and_then(VecDeque::back)
            .is_some_and(|q| !matches!(q, Queued::Write { .. }))
    }

    pub fn push(&mut self, session_id: i64, item: Queued) {
        self.queues.entry(session_id).or_default().push_back(item);
    }

    /// Moves what heads the session's queue and waits for nothing to `ready`.
    pub fn drain_head(&mut self, session_id: i64, ready: &mut Vec<Ready>) {
        if let Some(queue) = self.queues.get_mut(&session_id) {
            drain_ready(queue, session_id, ready);
        }
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
        ready: &mut Vec<Ready>,
    ) -> Option<(ConnId, WriteReply)> {
        let queue = self.queues.get_mut(&session_id)?;
        let answered = match queue.front() {
            Some(Queued::Write {
                cxid: head,
                conn,
                reply,
                refused: false,
            }) if *head == cxid && reply.answered_by(kind) => (*conn, *reply),
            _ => return None,
        };
        queue.pop_front();
        drain_ready(queue, session_id, ready);
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

/// Moves what heads `queue` and waits for nothing any more to `ready`, up to the next write
/// a txn will answer or the next unanswered sync. A refused write never stays at the head.
fn drain_ready(queue: &mut VecDeque<Queued>, session_id: i64, ready: &mut Vec<Ready>) {
    loop {
        let item = match queue.front() {
            Some(
                Queued::Request { .. }
                | Queued::Held { .. }
                | Queued::Sync { done: true, .. }
                | Queued::Write { refused: true, .. },
            ) => queue.pop_front().expect("just looked"),
            _ => return,
        };
        let (conn, xid, action) = match item {
            Queued::Request { conn, xid, request } => (conn, xid, ReadyAction::Answer(*request)),
            Queued::Held { conn, xid, request } => (conn, xid, ReadyAction::Replay(*request)),
            Queued::Sync {
                conn, xid, path, ..
            } => (conn, xid, ReadyAction::Answer(Request::Sync { path })),
            Queued::Write { conn, cxid, .. } => (conn, cxid, ReadyAction::Refused),
        };
        ready.push(Ready {
            conn,
            session_id,
            xid,
            action,
        });
    }
}
