//! The proposer: what only a leader (or a standalone server, a leader whose quorum is itself)
//! runs. It validates each write against the speculative tree, fixes every value and its
//! zxid, and keeps what the release path needs once the txn is committed.
//!
//! Never: release anything (the release path does, on the quorum's commit), or answer a
//! client (the front end does).

use std::collections::{HashMap, VecDeque};

use rzk_proto::{ErrorCode, Id, Request, Txn, TxnBody, Zxid};
use rzk_session::SessionTable;
use rzk_tree::{Applied, NodeKind, Tree};

use super::SessionChange;
use crate::prep::{self, Caller};

pub(super) struct Pending {
    pub zxid: i64,
    pub session_id: i64,
    pub cxid: i32,
    pub change: Option<SessionChange>,
    /// Whether a write in this server's session queues waits for it (false for expiry, the
    /// reaper and requests forwarded by learners, whose servers answer them).
    pub queued: bool,
    /// The tree right after this txn, kept only at a *seal*: the end of a batch handed to the
    /// log, or a point a queued read must be answered at. Cloning per txn made every apply
    /// copy the persistent map's path (about 10x the apply itself); per seal it is once per
    /// batch. Releases stop only at seals, so the released tree is always one of these.
    pub tree_after: Option<Tree>,
    pub applied: Applied,
    /// The tree digest right after this txn.
    pub digest: u64,
}

pub(super) struct Proposer {
    /// The released tree plus every txn prepped since (ZooKeeper's "outstanding changes").
    pub working: Tree,
    pub pending: VecDeque<Pending>,
    /// The epoch this leader numbers its txns in.
    pub epoch: u32,
    pub next_reap_ms: u64,
    /// The server each session last attached on (ZooKeeper's session owner). Not replicated:
    /// a new leader starts with none, and a session's next request names it.
    pub owners: HashMap<i64, u64>,
}

impl Proposer {
    pub fn new(released: &Tree, epoch: u32, next_reap_ms: u64) -> Self {
        let last = Zxid::from_i64(released.last_zxid());
        assert!(
            last.epoch <= epoch,
            "a leader of epoch {epoch} cannot follow history of epoch {}",
            last.epoch
        );
        Proposer {
            working: released.clone(),
            pending: VecDeque::new(),
            epoch,
            next_reap_ms,
            owners: HashMap::new(),
        }
    }

    /// Whether a request of `session_id` from a client on server `from` must be refused
    /// because the session has since attached on another server (ZooKeeper's
    /// SessionMoved): a request sent on a connection the client has left must not be
    /// applied after what it sends where it went. A session with no owner yet (a new
    /// leader) takes `from`.
    pub fn moved_away(&mut self, session_id: i64, from: u64) -> bool {
        *self.owners.entry(session_id).or_insert(from) != from
    }

    /// The zxid the next txn gets. A standalone server moves to the next epoch itself when the
    /// counter is exhausted (there is nobody to agree with); an ensemble's leader is moved to
    /// the next epoch by its quorum core before that (see `Core::set_epoch`).
    fn next_zxid(&self) -> Zxid {
        let last = Zxid::from_i64(self.working.last_zxid());
        let next = if last.epoch < self.epoch {
            Zxid::new(self.epoch, 1)
        } else {
            last.next(u32::MAX).unwrap_or(Zxid::new(self.epoch + 1, 1))
        };
        assert!(next > last, "zxids only grow: {next:?} after {last:?}");
        next
    }

    /// How many more txns fit in this epoch below `counter_limit`.
    pub fn room(&self, counter_limit: u32) -> u32 {
        let last = Zxid::from_i64(self.working.last_zxid());
        if last.epoch < self.epoch {
            counter_limit
        } else {
            counter_limit.saturating_sub(last.counter)
        }
    }

    /// What a client's write does, decided against the speculative tree: a txn body, or the
    /// error txn that answers it (errors are logged and replicated too, as in ZooKeeper, so
    /// the reply keeps its place in the session's order on every server).
    /// `vouched`: the session is a learner's local session, unknown here but valid.
    #[allow(clippy::too_many_arguments)]
    pub fn prep(
        &self,
        sessions: &SessionTable,
        vouched: bool,
        session_id: i64,
        auth_ids: &[Id],
        request: &Request,
        extended_types: bool,
        wall_ms: u64,
    ) -> TxnBody {
        let is_close = matches!(request, Request::CloseSession);
        let closing = !vouched && sessions.get(session_id).is_none_or(|s| s.closing);
        if closing && !is_close {
            return TxnBody::Error {
                err: ErrorCode::SessionExpired.code(),
            };
        }
        let caller = Caller {
            session_id,
            auth_ids,
            extended_types,
        };
        let tree = &self.working;
        let zxid = self.next_zxid().as_i64();
        let prepped = match request {
            Request::Create(req) => prep::create(tree, req, &caller),
            Request::Delete { path, version } => prep::delete(tree, path, *version, &caller),
            Request::SetData {
                path,
                data,
                version,
            } => prep::set_data(tree, path, data, *version, &caller),
            Request::SetAcl { path, acl, version } => {
                prep::set_acl(tree, path, acl, *version, &caller)
            }
            Request::Check { path, version } => prep::check(tree, path, *version, &caller),
            // The zxid only names sequential nodes' parents' versions; the next txn's is
            // what a multi's sub-ops see, whatever its epoch.
            Request::Multi(ops) => Ok(prep::multi(tree, ops, &caller, zxid, wall_ms as i64)),
            Request::CloseSession => Ok(TxnBody::CloseSession),
            Request::Reconfig => Err(ErrorCode::ReconfigDisabled),
            other => unreachable!("not a write: {other:?}"),
        };
        prepped.unwrap_or_else(|err| TxnBody::Error { err: err.code() })
    }

    /// Numbers `body`, applies it to the speculative tree and keeps it until it is committed.
    pub fn push(
        &mut self,
        session_id: i64,
        cxid: i32,
        body: TxnBody,
        wall_ms: u64,
        queued: bool,
    ) -> Txn {
        let zxid = self.next_zxid();
        self.epoch = zxid.epoch;
        let txn = Txn {
            zxid: zxid.as_i64(),
            time_ms: wall_ms as i64,
            session_id,
            cxid,
            body,
        };
        let mut applied = Applied::default();
        self.working.apply(&txn, &mut applied);
        self.pending.push_back(Pending {
            zxid: txn.zxid,
            session_id,
            cxid,
            change: SessionChange::of(&txn),
            queued,
            tree_after: None,
            applied,
            digest: self.working.digest(),
        });
        txn
    }

    /// Marks the end of a batch (or a point a queued read must be answered at).
    pub fn seal(&mut self) {
        if let Some(last) = self.pending.back_mut() {
            if last.tree_after.is_none() {
                debug_assert_eq!(last.zxid, self.working.last_zxid());
                last.tree_after = Some(self.working.clone());
            }
        }
    }

    /// How many pending txns the commit of everything up to `zxid` releases: up to the last
    /// seal it covers.
    pub fn releasable(&mut self, zxid: i64) -> usize {
        if self.pending.back().is_some_and(|p| p.zxid <= zxid) {
            // Everything pending is committed, and the working tree is exactly its end.
            self.seal();
        }
        let covered = self.pending.partition_point(|p| p.zxid <= zxid);
        self.pending
            .range(..covered)
            .rposition(|p| p.tree_after.is_some())
            .map_or(0, |end| end + 1)
    }

    /// ZooKeeper's ContainerManager: containers that had children and have none left, and
    /// TTL nodes without children not modified within their TTL, as delete txn bodies.
    pub fn reapable(&self, wall_ms: u64) -> Vec<TxnBody> {
        // TTLs compare with mtime, which is wall-clock time, as in ZooKeeper.
        let now = wall_ms as i64;
        let mut candidates = Vec::new();
        for path in self.working.containers().iter() {
            if let Some(n) = self.working.get(path) {
                if n.children().is_empty() && n.stat().cversion > 0 {
                    candidates.push(path.clone());
                }
            }
        }
        for path in self.working.ttls().iter() {
            if let Some(n) = self.working.get(path) {
                if let NodeKind::Ttl { ttl_ms } = n.kind() {
                    if n.children().is_empty() && now - n.stat().mtime > ttl_ms {
                        candidates.push(path.clone());
                    }
                }
            }
        }
        candidates
            .iter()
            .filter_map(|path| prep::delete_container(&self.working, path).ok())
            .collect()
    }
}
