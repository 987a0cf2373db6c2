//! How the stages are wired into one server's core, for every role (read this first).
//!
//! One `Core` value is the whole core: the driver feeds it `Input`s and the current time and
//! carries out the `Actions` it returns. It is composed of three parts:
//! - the **front end** (`front.rs`), which every role runs: connections, session attach,
//!   reads, watches and each session's reply order;
//! - the **proposer** (`proposer.rs`), which only a leader runs: prep, zxid assignment, the
//!   speculative tree, session expiry and the reaper;
//! - the **release path** (here): committed transactions are applied (a learner) or their
//!   prepared results taken (a leader), watches fire, and each is matched to the request
//!   waiting for it by (session id, cxid).
//!
//! A standalone server is a leader whose quorum is itself: its log's "durable" is the
//! quorum's "committed", so every existing test runs the leader's code. The actions:
//! 1. `actions.append` (leader): txns to propose, in zxid order; the driver has them
//!    committed (standalone: group-committed to its own log) and later reports
//!    `Input::Committed { zxid }`.
//! 2. `actions.forward` (learner): writes and session creations for the leader, which
//!    replicates them back as `Input::Replicated`.
//! 3. `actions.outputs`: frames for connections (watch events, replies), connections to mark
//!    established or to close, in the order they must happen per connection.
//! 4. `actions.publish`: a new tree version for the event loops' lock-free reads. The driver
//!    publishes it BEFORE handing out the outputs, so that any client that has a reply can
//!    read what it acknowledged, from any connection; and it marks the version "delivered"
//!    only after the outputs are queued, so an event loop answers a read from a version only
//!    once that version's watch events are in its queue (otherwise the read goes to the
//!    core). An event thus always reaches its client before the reply of a read that
//!    observes the change.
//!
//! A leader's prep applies each txn to the speculative `working` tree at once (so the next
//! request is validated against it, ZooKeeper's "outstanding changes") and keeps an O(1)
//! clone of the tree at each seal; `Committed` releases those clones in order as the visible
//! `released` tree. A learner applies each replicated txn to its `released` tree in place.
//! Nothing a client can observe happens before its txn is committed.

mod front;
mod proposer;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;

use rzk_proto::{
    ConnectRequest, ConnectResponse, CreateRequest, ErrorCode, Id, OpCode, ReplyHeader, Request,
    Response, Txn, TxnBody,
};
use rzk_session::{DurableSession, Now, SessionTable, TimeoutLimits, Touch};
use rzk_tree::watch::WatchRegistry;
use rzk_tree::{Applied, OpOutcome, Tree};

use crate::apply;
use crate::commit::{Queued, ReadyAction, TxnKind, WriteReply};
use front::Front;
use proposer::Proposer;

/// A connection, named by the driver (unique for the server's lifetime).
pub type ConnId = u64;

#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub limits: TimeoutLimits,
    /// zookeeper.extendedTypesEnabled: TTL nodes.
    pub extended_types: bool,
    /// How often containers and TTL nodes are checked (znode.container.checkIntervalMs).
    pub container_check_interval_ms: u64,
    pub server_id: u8,
    pub seed: u64,
    /// Session expiry is checked per this interval (ZooKeeper's tickTime).
    pub tick_ms: u64,
    /// localSessionsEnabled (an ensemble only, as in ZooKeeper): a new session lives on the
    /// server it connected to alone, with no txn, until it creates an ephemeral.
    pub local_sessions: bool,
    /// localSessionsUpgradingEnabled: a local session that creates an ephemeral becomes
    /// global (a createSession txn first); without it the create fails with
    /// EphemeralOnLocalSession.
    pub upgrade_local_sessions: bool,
    /// An ensemble server's /zookeeper/config text (its membership, as ZooKeeper writes
    /// it), set in every tree this core starts from or installs. None: standalone, empty.
    pub config_node: Option<Vec<u8>>,
}

/// A learner's write (or new session) for the leader, with what the leader needs to prep it
/// as if the client had sent it there: the session, the client's cxid and its identities.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub session_id: i64,
    pub cxid: i32,
    pub auth_ids: Vec<Id>,
    pub op: ForwardedOp,
}

#[derive(Debug, Clone)]
pub enum ForwardedOp {
    Request(Request),
    /// The learner allocated the id and password (ids carry its server id, so they never
    /// collide); the leader makes it a transaction and starts tracking its expiry.
    CreateSession {
        timeout_ms: i32,
        passwd: [u8; 16],
    },
    /// A client re-attached the session on the learner (ZooKeeper's REVALIDATE): the
    /// leader touches the session and makes that server its owner, so a write still sent
    /// on the connection the client left is refused. Rides the same link as the learner's
    /// writes, so every write it forwards after the attach comes after it.
    Attach {
        timeout_ms: i32,
    },
}

#[derive(Debug)]
pub enum Input {
    /// A fresh connection's ConnectRequest; `auth_ids` starts with its ip identity.
    Connect {
        conn: ConnId,
        request: ConnectRequest,
        auth_ids: Vec<Id>,
    },
    /// A request the event loop did not answer itself.
    Request {
        conn: ConnId,
        xid: i32,
        request: Request,
    },
    /// The connection's identities changed (an `auth` packet succeeded).
    AuthChanged {
        conn: ConnId,
        auth_ids: Vec<Id>,
    },
    Disconnected {
        conn: ConnId,
    },
    /// Leader: every txn up to `zxid` is committed (standalone: durable in its own log).
    Committed {
        zxid: i64,
    },
    /// Learner: txns the leader committed, in zxid order, to apply and answer, with the
    /// leader's tree digest after the last of them (ZooKeeper's TxnDigest), if it sent one.
    Replicated {
        txns: Vec<Txn>,
        digest: Option<u64>,
    },
    /// Leader: a learner's write, new session or re-attach, from server `from`.
    Forwarded {
        from: u64,
        forwarded: Forwarded,
    },
    /// Learner: the leader refused the write `cxid` of `session_id` because the session had
    /// attached on another server since; the connection that sent it closes.
    Moved {
        session_id: i64,
        cxid: i32,
    },
    /// Leader: learners heard from these sessions (carried in their pings).
    Touches {
        session_ids: Vec<i64>,
    },
    /// Time passed: a leader expires sessions and reaps containers and TTL nodes.
    Tick,
    /// Ensemble: the quorum round of `actions.syncs` `id` is over. `ok` false: this server
    /// could not confirm it is in touch with a leader, so the client's connection closes
    /// (it reconnects elsewhere) rather than being told its view is current.
    Synced {
        id: u64,
        ok: bool,
    },
}

#[derive(Debug)]
pub enum Output {
    /// One whole frame. `reply` is false for watch events, which answer no request. `zxid` is
    /// the tree version the frame reflects (for events, the txn that fired them): a reader
    /// that has seen it must not be answered from an older version.
    Send {
        conn: ConnId,
        frame: Vec<u8>,
        reply: bool,
        zxid: i64,
    },
    Established {
        conn: ConnId,
        session_id: i64,
        timeout_ms: i32,
        touch: Touch,
    },
    /// Close after everything sent before it.
    Close { conn: ConnId, reason: &'static str },
}

#[derive(Default)]
pub struct Actions {
    pub append: Vec<Txn>,
    pub forward: Vec<Forwarded>,
    pub outputs: Vec<Output>,
    pub publish: Option<Tree>,
    /// Sessions whose timeout passed this step, with that timeout in ms: the driver logs
    /// each one, as ZooKeeper does, and counts them.
    pub expired: Vec<(i64, i32)>,
    /// A learner's tree no longer matches its leader's: it must not serve from it. The
    /// driver logs it loudly, counts it (mntr's zk_digest_mismatches_count) and has the
    /// learner resynchronised.
    pub diverged: Option<Divergence>,
    /// Ensemble: clients' syncs, each a quorum round for the driver to run and report as
    /// `Input::Synced`. Once reported, every write committed before the round began is in
    /// the released tree.
    pub syncs: Vec<u64>,
    /// Leader: writes forwarded by learners and refused because their session moved to
    /// another server; each goes back to the learner `server` as `Input::Moved`.
    pub refused: Vec<Refused>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub server: u64,
    pub session_id: i64,
    pub cxid: i32,
}

/// Where a learner found its tree digest differing from its leader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Divergence {
    pub zxid: i64,
    pub ours: u64,
    pub leaders: u64,
}

/// ZooKeeper logs the digest every this many zxids (DataTree's digest log), for `hash`.
const DIGEST_LOG_INTERVAL: i64 = 128;
/// And keeps this many entries.
const DIGEST_LOG_LIMIT: usize = 1024;

impl Actions {
    pub fn clear(&mut self) {
        self.append.clear();
        self.forward.clear();
        self.outputs.clear();
        self.publish = None;
        self.expired.clear();
        self.diverged = None;
        self.syncs.clear();
        self.refused.clear();
    }
}

/// What a committed transaction does to the set of sessions. One function derives it, for
/// the leader's release, a learner's apply and recovery alike, so every server's session set
/// follows the same transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionChange {
    Created(DurableSession),
    Closed(i64),
}

impl SessionChange {
    pub fn of(txn: &Txn) -> Option<SessionChange> {
        match &txn.body {
            TxnBody::CreateSession { timeout_ms, passwd } => {
                Some(SessionChange::Created(DurableSession {
                    id: txn.session_id,
                    timeout_ms: *timeout_ms,
                    passwd: *passwd,
                }))
            }
            TxnBody::CloseSession => Some(SessionChange::Closed(txn.session_id)),
            _ => None,
        }
    }

    pub fn apply(self, sessions: &mut BTreeMap<i64, DurableSession>) {
        match self {
            SessionChange::Created(s) => {
                sessions.insert(s.id, s);
            }
            SessionChange::Closed(id) => {
                sessions.remove(&id);
            }
        }
    }
}

enum Role {
    Leader(Box<Proposer>),
    Learner,
}

pub struct Core {
    config: CoreConfig,
    now: Now,
    /// Every committed txn applied: what clients see.
    released: Tree,
    /// Live sessions: on the leader the authority for expiry, on a learner a mirror of the
    /// committed ones plus those it is creating (for re-attach checks).
    sessions: SessionTable,
    /// Sessions as of the released tree: what a snapshot of `released` must hold.
    committed_sessions: BTreeMap<i64, DurableSession>,
    front: Front,
    role: Role,
    /// (zxid, tree digest) at every released zxid that is a multiple of
    /// `DIGEST_LOG_INTERVAL`, newest last: what the AdminServer's `hash` answers.
    digest_log: VecDeque<(i64, u64)>,
    /// Set by `join_ensemble`: None for a standalone server.
    ensemble: Option<Ensemble>,
    /// Sessions a leader found expired when its epoch had no room for their closeSession.
    expiry_backlog: Vec<i64>,
    /// ZooKeeper's read-only mode: a learner cut off from any quorum serves reads to clients
    /// that asked for a read-only session, from its last state (`set_read_only`).
    read_only: bool,
    /// Sessions that live on this server alone (local sessions): created and expired here,
    /// with no txn, lost if the client moves or the server changes role.
    local: std::collections::HashSet<i64>,
    /// Leader: sessions whose next write, taken up again inside the core (held behind a
    /// sync or an upgrade), found the epoch with no room: retried when it rolls over.
    stalled: Vec<i64>,
    /// Local sessions past their timeout whose requests are still being answered: they end
    /// at a tick once nothing of theirs is queued.
    expiring_local: Vec<i64>,
}

/// What differs for a core that is one server of an ensemble.
#[derive(Debug, Clone, Copy)]
struct Ensemble {
    /// The highest counter a leader numbers a txn with: the quorum moves the ensemble to the
    /// next epoch (`set_epoch`) before the counter would overflow.
    counter_limit: u32,
}

fn frame(xid: i32, zxid: i64, err: ErrorCode, response: &Response) -> Vec<u8> {
    rzk_proto::encode_reply(
        ReplyHeader {
            xid,
            zxid,
            err: err.code(),
        },
        response,
    )
}

impl Core {
    /// A standalone server: the leader of a quorum of itself, numbering txns in the epoch of
    /// its history (ZooKeeper's standalone zxids stay in epoch 0).
    pub fn new(config: CoreConfig, mut tree: Tree, now: Now) -> Self {
        if let Some(text) = &config.config_node {
            tree.set_config_node(text, now.wall_ms as i64);
        }
        let epoch = rzk_proto::Zxid::from_i64(tree.last_zxid()).epoch;
        let sessions =
            SessionTable::new(config.server_id, now.wall_ms, config.seed, config.tick_ms);
        let proposer = Proposer::new(
            &tree,
            epoch,
            now.mono_ms + config.container_check_interval_ms,
        );
        Core {
            config,
            now,
            released: tree,
            sessions,
            committed_sessions: BTreeMap::new(),
            front: Front::default(),
            role: Role::Leader(Box::new(proposer)),
            digest_log: VecDeque::new(),
            ensemble: None,
            expiry_backlog: Vec::new(),
            read_only: false,
            local: std::collections::HashSet::new(),
            stalled: Vec::new(),
            expiring_local: Vec::new(),
        }
    }

    /// Rebuilds the core after a restart: `tree` and `sessions` from a snapshot (or empty),
    /// then every logged transaction after it. Sessions restart their timeout now: a client
    /// that re-attaches within it keeps its session, others expire and lose their ephemerals.
    pub fn recover(
        config: CoreConfig,
        mut tree: Tree,
        sessions: Vec<DurableSession>,
        txns: &[Txn],
        now: Now,
    ) -> Self {
        let mut committed: BTreeMap<i64, DurableSession> =
            sessions.into_iter().map(|s| (s.id, s)).collect();
        let mut applied = Applied::default();
        for txn in txns {
            if txn.zxid <= tree.last_zxid() {
                continue;
            }
            applied.outcomes.clear();
            applied.triggers.clear();
            tree.apply(txn, &mut applied);
            if let Some(change) = SessionChange::of(txn) {
                change.apply(&mut committed);
            }
        }
        let mut core = Core::new(config, tree, now);
        for s in committed.values() {
            core.sessions
                .insert(s.id, s.timeout_ms, s.passwd, now.mono_ms);
        }
        core.committed_sessions = committed;
        core
    }

    /// Stops leading (the quorum elected another leader, or lost its quorum): txns prepped
    /// and not committed are dropped (the new leader commits or truncates them and
    /// replicates what it commits), and every client connection closes, as ZooKeeper's do
    /// when their server changes role; clients reconnect and re-register their watches.
    /// Makes this core one server of an ensemble: syncs become quorum rounds
    /// (`Actions::syncs`), and as a leader it numbers no txn past `counter_limit` in an epoch
    /// (`room`). A standalone server answers syncs itself, its own quorum, and moves to the
    /// next epoch alone when the counter is exhausted.
    pub fn join_ensemble(&mut self, counter_limit: u32) {
        self.ensemble = Some(Ensemble { counter_limit });
    }

    /// Leader: how many more txns it may number in its epoch. The driver feeds no client
    /// input while this is 0 (each makes at most one txn), and the core defers expiry to a
    /// later tick. u32::MAX for a standalone server; 0 for a learner.
    pub fn room(&self) -> u32 {
        let Role::Leader(proposer) = &self.role else {
            return 0;
        };
        match self.ensemble {
            None => u32::MAX,
            Some(e) => proposer.room(e.counter_limit),
        }
    }

    /// Enters or leaves read-only mode (readonlymode.enabled, a server that has found no
    /// leader for a while). In it, only clients that connect with readOnly=true are taken,
    /// each in a session local to this server (no txn, expired here); reads are answered
    /// from the last released tree, however stale; writes and syncs get NotReadOnly. Leaving
    /// it closes every connection and forgets the local sessions, as ZooKeeper's read-only
    /// server does when it shuts down for the real one.
    pub fn set_read_only(&mut self, on: bool, actions: &mut Actions) {
        assert!(
            !(on && self.is_leader()),
            "a leader has a quorum: it is never read-only"
        );
        if self.read_only == on {
            return;
        }
        self.read_only = on;
        self.front
            .close_all("server changed role: reconnect", actions);
        self.drop_local_sessions();
        self.forget_uncommitted_sessions();
    }

    /// Sessions no committed txn created (being created here, local, or a read-only
    /// server's own) are gone: every server's are only those its committed txns made.
    fn forget_uncommitted_sessions(&mut self) {
        let uncommitted: Vec<i64> = self
            .sessions
            .iter()
            .map(|s| s.id)
            .filter(|id| !self.committed_sessions.contains_key(id))
            .collect();
        for id in uncommitted {
            self.sessions.remove(id);
        }
    }

    /// How many sessions live on this server alone (mntr's zk_local_sessions).
    pub fn local_session_count(&self) -> usize {
        self.local.len()
    }

    /// Local sessions do not outlive the role they were made in (ZooKeeper builds a new
    /// session tracker per role): their clients find them expired and start new ones.
    fn drop_local_sessions(&mut self) {
        self.expiring_local.clear();
        for id in std::mem::take(&mut self.local) {
            self.sessions.remove(id);
        }
    }

    fn local_sessions_on(&self) -> bool {
        self.config.local_sessions && self.ensemble.is_some()
    }

    pub fn become_learner(&mut self, actions: &mut Actions) {
        self.drop_local_sessions();
        self.stalled.clear();
        self.role = Role::Learner;
        self.expiry_backlog.clear();
        self.front
            .close_all("server changed role: reconnect", actions);
        // Sessions this server was still creating may never commit under the next leader:
        // until one replicates, a client re-attaching here must not find it (the new leader
        // would not know it). Those that do commit come back with their txn.
        self.forget_uncommitted_sessions();
        for s in self.sessions.iter_mut() {
            s.closing = false;
        }
    }

    /// Starts leading in `epoch` from the committed state: every session gets a full timeout
    /// from now (its heartbeats went to servers this one did not hear from), as a new
    /// ZooKeeper leader's session tracker does.
    pub fn become_leader(&mut self, epoch: u32, actions: &mut Actions) {
        self.drop_local_sessions();
        self.stalled.clear();
        self.front
            .close_all("server changed role: reconnect", actions);
        let next_reap_ms = self.now.mono_ms + self.config.container_check_interval_ms;
        self.role = Role::Leader(Box::new(Proposer::new(&self.released, epoch, next_reap_ms)));
        let ids: Vec<(i64, i32)> = self
            .committed_sessions
            .values()
            .map(|s| (s.id, s.timeout_ms))
            .collect();
        // Sessions a learner was still creating never committed: they do not exist.
        self.forget_uncommitted_sessions();
        for (id, timeout_ms) in ids {
            self.sessions.reattach(id, timeout_ms, self.now.mono_ms);
            if let Some(s) = self.sessions.get_mut(id) {
                s.closing = false;
            }
        }
    }

    /// Moves a leader's numbering to `epoch` (the quorum rolled the epoch over), and takes
    /// up the writes that waited for room.
    pub fn set_epoch(&mut self, epoch: u32, actions: &mut Actions) {
        if let Role::Leader(p) = &mut self.role {
            assert!(
                epoch >= p.epoch,
                "epochs only grow: {} after {}",
                epoch,
                p.epoch
            );
            p.epoch = epoch;
        }
        for session_id in std::mem::take(&mut self.stalled) {
            self.front
                .queues
                .drain_head(session_id, &mut self.front.deferred);
        }
        self.answer_deferred(actions);
    }

    /// A learner takes the leader's snapshot (SNAP): the released tree and sessions are
    /// replaced, and every client connection closes (what it saw may be gone).
    pub fn install(
        &mut self,
        mut tree: Tree,
        sessions: Vec<DurableSession>,
        actions: &mut Actions,
    ) {
        assert!(
            matches!(self.role, Role::Learner),
            "only a learner installs a snapshot"
        );
        self.front
            .close_all("server resynchronised with its leader: reconnect", actions);
        if let Some(text) = &self.config.config_node {
            tree.set_config_node(text, self.now.wall_ms as i64);
        }
        self.released = tree;
        self.committed_sessions = sessions.into_iter().map(|s| (s.id, s)).collect();
        self.sessions = SessionTable::new(
            self.config.server_id,
            self.now.wall_ms,
            self.config.seed,
            self.config.tick_ms,
        );
        for s in self.committed_sessions.values() {
            self.sessions
                .insert(s.id, s.timeout_ms, s.passwd, self.now.mono_ms);
        }
        actions.publish = Some(self.released.clone());
    }

    /// ZooKeeper's digest log: (zxid, digest) pairs, oldest first.
    pub fn digest_log(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.digest_log.iter().copied()
    }

    /// Leader: the tree digest after the last txn handed out in `actions.append`, which the
    /// ensemble sends with it so learners can check theirs.
    pub fn proposed_digest(&self) -> Option<u64> {
        match &self.role {
            Role::Leader(p) => Some(p.working.digest()),
            Role::Learner => None,
        }
    }

    /// This server's id, as the quorum and session owners name it.
    fn me(&self) -> u64 {
        u64::from(self.config.server_id)
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// Sessions as of the released tree, for a snapshot of it.
    pub fn committed_sessions(&self) -> Vec<DurableSession> {
        self.committed_sessions.values().copied().collect()
    }

    pub fn released(&self) -> &Tree {
        &self.released
    }

    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    pub fn watches(&self) -> &WatchRegistry {
        &self.front.watches
    }

    /// Requests prepped (or forwarded) but not yet released, plus requests queued behind them.
    pub fn outstanding_count(&self) -> usize {
        let pending = match &self.role {
            Role::Leader(p) => p.pending.len(),
            Role::Learner => 0,
        };
        pending + self.front.queues.queued_count()
    }

    pub fn session_of(&self, conn: ConnId) -> Option<i64> {
        self.front
            .conns
            .get(&conn)
            .map(|c| c.session_id)
            .filter(|&s| s != 0)
    }

    /// A learner's sessions whose clients were heard from after `mono_ms`, in id order: what
    /// its next ping tells the leader, which alone expires sessions.
    pub fn local_sessions_heard_since(&self, mono_ms: u64) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .front
            .session_conn
            .keys()
            .copied()
            .filter(|id| {
                // The leader does not know local sessions; they expire here.
                !self.local.contains(id)
                    && self
                        .sessions
                        .get(*id)
                        .is_some_and(|s| s.touch.load(Ordering::Relaxed) > mono_ms)
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    pub fn step(&mut self, now: Now, input: Input, actions: &mut Actions) {
        // Neither clock goes back here: a wall clock stepped back must not give a txn an
        // older time than the one before it.
        self.now.mono_ms = self.now.mono_ms.max(now.mono_ms);
        self.now.wall_ms = self.now.wall_ms.max(now.wall_ms);
        match input {
            Input::Connect {
                conn,
                request,
                auth_ids,
            } => self.connect(conn, request, auth_ids, actions),
            Input::Request { conn, xid, request } => self.request(conn, xid, request, actions),
            Input::AuthChanged { conn, auth_ids } => {
                if let Some(c) = self.front.conns.get_mut(&conn) {
                    c.auth_ids = auth_ids;
                }
            }
            Input::Disconnected { conn } => self.front.disconnected(conn),
            Input::Committed { zxid } => self.committed(zxid, actions),
            Input::Replicated { txns, digest } => self.replicated(txns, digest, actions),
            Input::Forwarded { from, forwarded } => self.forwarded(from, forwarded, actions),
            Input::Moved { session_id, cxid } => {
                self.front
                    .queues
                    .refuse(session_id, cxid, &mut self.front.deferred);
                self.answer_deferred(actions);
            }
            Input::Touches { session_ids } => {
                if self.is_leader() {
                    for id in session_ids {
                        if let Some(s) = self.sessions.get(id) {
                            s.touch.store(self.now.mono_ms, Ordering::Relaxed);
                        }
                    }
                }
            }
            Input::Tick => self.tick(actions),
            Input::Synced { id, ok } => self.synced(id, ok, actions),
        }
    }

    fn synced(&mut self, id: u64, ok: bool, actions: &mut Actions) {
        if let Some(held) = self.front.revalidating.remove(&id) {
            if ok {
                self.connect_once(held.conn, held.request, held.auth_ids, true, actions);
            } else {
                actions.outputs.push(Output::Close {
                    conn: held.conn,
                    reason: "session could not be revalidated with a leader",
                });
            }
            return;
        }
        let Some(session_id) = self.front.syncs.remove(&id) else {
            return;
        };
        if !ok {
            if let Some(&conn) = self.front.session_conn.get(&session_id) {
                actions.outputs.push(Output::Close {
                    conn,
                    reason: "sync could not be confirmed with a leader",
                });
                // Nothing more goes to it: what it waited for is dropped below.
                self.front.disconnected(conn);
            }
        }
        self.front
            .queues
            .sync_done(session_id, id, &mut self.front.deferred);
        self.answer_deferred(actions);
    }

    /// Answers what waited and is ready, in order, against the released tree; replays what
    /// was held behind a sync as if it arrived now.
    fn answer_deferred(&mut self, actions: &mut Actions) {
        // Per session, what must wait again because a write ahead of it found no room.
        let mut waiting: BTreeMap<i64, Vec<Queued>> = BTreeMap::new();
        for ready in std::mem::take(&mut self.front.deferred) {
            let no_room = matches!(&ready.action, ReadyAction::Replay(r) if r.is_write() || matches!(r, Request::Reconfig))
                && self.is_leader()
                && self.room() == 0;
            if no_room || waiting.contains_key(&ready.session_id) {
                let item = match ready.action {
                    ReadyAction::Replay(request) => Queued::Held {
                        conn: ready.conn,
                        xid: ready.xid,
                        request: Box::new(request),
                    },
                    ReadyAction::Answer(request) => Queued::Request {
                        conn: ready.conn,
                        xid: ready.xid,
                        request: Box::new(request),
                    },
                    ReadyAction::Refused => Queued::Write {
                        cxid: ready.xid,
                        conn: ready.conn,
                        reply: WriteReply::Upgrade,
                        refused: true,
                    },
                };
                waiting.entry(ready.session_id).or_default().push(item);
                continue;
            }
            match ready.action {
                ReadyAction::Replay(request) => {
                    self.request(ready.conn, ready.xid, request, actions)
                }
                ReadyAction::Answer(request) => self.front.answer(
                    &self.released,
                    ready.conn,
                    ready.session_id,
                    ready.xid,
                    request,
                    actions,
                ),
                ReadyAction::Refused => {
                    if self.front.conns.contains_key(&ready.conn) {
                        actions.outputs.push(Output::Close {
                            conn: ready.conn,
                            reason: "session moved to another server",
                        });
                        self.front.disconnected(ready.conn);
                    }
                }
            }
        }
        // Back into their session's queue, in order. Nothing of that session is behind
        // them there (what followed a held request was held too, and drained with it) but
        // what this pass queued for the requests ahead of them, which must go first.
        for (session_id, items) in waiting {
            for item in items {
                self.front.queues.push(session_id, item);
            }
            self.stalled.push(session_id);
        }
    }

    fn connect(
        &mut self,
        conn: ConnId,
        request: ConnectRequest,
        auth_ids: Vec<Id>,
        actions: &mut Actions,
    ) {
        self.connect_once(conn, request, auth_ids, false, actions)
    }

    /// `connect`; `caught_up` once a learner has synced with its leader for this connect.
    fn connect_once(
        &mut self,
        conn: ConnId,
        request: ConnectRequest,
        auth_ids: Vec<Id>,
        caught_up: bool,
        actions: &mut Actions,
    ) {
        if request.last_zxid_seen > self.released.last_zxid() {
            // The client has seen a newer state than ours (it talked to another server); it
            // must not go back in time, so refuse as ZooKeeper does.
            actions.outputs.push(Output::Close {
                conn,
                reason: "client has seen a zxid newer than this server's",
            });
            return;
        }
        let timeout_ms = self.config.limits.negotiate(request.timeout_ms);
        if self.read_only {
            return self.connect_read_only(conn, request, timeout_ms, auth_ids, actions);
        }
        if request.session_id == 0 && self.local_sessions_on() {
            // No txn: established at once, like a re-attach.
            let session_id = self.sessions.create(timeout_ms, self.now.mono_ms).id;
            self.local.insert(session_id);
            self.front.move_session(conn, session_id, auth_ids, actions);
            let read_only = request.read_only.map(|_| false);
            return self.established(conn, session_id, timeout_ms, read_only, actions);
        }
        if request.session_id == 0 {
            let session = self.sessions.create(timeout_ms, self.now.mono_ms);
            let (session_id, passwd) = (session.id, session.passwd);
            self.front.attach(conn, session_id, auth_ids);
            let reply = WriteReply::Connect {
                timeout_ms,
                read_only: request.read_only,
            };
            let me = self.me();
            match &mut self.role {
                Role::Leader(proposer) => {
                    proposer.owners.insert(session_id, me);
                    self.submit(
                        session_id,
                        0,
                        TxnBody::CreateSession { timeout_ms, passwd },
                        Some((conn, reply)),
                        actions,
                    )
                }
                Role::Learner => self.forward(
                    Forwarded {
                        session_id,
                        cxid: 0,
                        auth_ids: Vec::new(),
                        op: ForwardedOp::CreateSession { timeout_ms, passwd },
                    },
                    conn,
                    reply,
                    actions,
                ),
            }
            return;
        }
        let known = self.sessions.get(request.session_id);
        let valid =
            known.is_some_and(|s| !s.closing && s.passwd.as_slice() == request.passwd.as_slice());
        if known.is_none()
            && !caught_up
            && self.ensemble.is_some()
            && matches!(self.role, Role::Learner)
        {
            // The session may have been created through another server a moment ago, its
            // createSession not yet applied here: ZooKeeper's learner asks its leader
            // (REVALIDATE). A sync round does it here: once it is over, every session
            // committed before it is in this server's table, and the connect is decided
            // again (`synced`).
            let id = self.front.next_sync_id;
            self.front.next_sync_id += 1;
            self.front.revalidating.insert(
                id,
                front::Revalidating {
                    conn,
                    request,
                    auth_ids,
                },
            );
            actions.syncs.push(id);
            return;
        }
        if !valid {
            return Self::refuse_session(conn, request.read_only.map(|_| false), actions);
        }
        let session_id = request.session_id;
        self.front.move_session(conn, session_id, auth_ids, actions);
        self.sessions
            .reattach(session_id, timeout_ms, self.now.mono_ms);
        let me = self.me();
        match &mut self.role {
            // A local session never moves: another server does not know it.
            _ if self.local.contains(&session_id) => {}
            Role::Leader(proposer) => {
                proposer.owners.insert(session_id, me);
            }
            Role::Learner => actions.forward.push(Forwarded {
                session_id,
                cxid: 0,
                auth_ids: Vec::new(),
                op: ForwardedOp::Attach { timeout_ms },
            }),
        }
        let read_only = request.read_only.map(|_| false);
        self.established(conn, session_id, timeout_ms, read_only, actions);
    }

    /// ZooKeeper's answer to a re-attach it cannot honour: a ConnectResponse with session 0
    /// (the client reports its session expired), then the connection closes.
    fn refuse_session(conn: ConnId, read_only: Option<bool>, actions: &mut Actions) {
        let response = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: vec![0; 16],
            read_only,
        };
        actions.outputs.push(Output::Send {
            conn,
            frame: response.encode_frame(),
            reply: false,
            zxid: 0,
        });
        actions.outputs.push(Output::Close {
            conn,
            reason: "session expired or password wrong",
        });
    }

    /// Answers a connect at once with a session this server has (re-attached, local, or
    /// read-only). `read_only` is the response's flag, absent for a client that sent none.
    fn established(
        &mut self,
        conn: ConnId,
        session_id: i64,
        timeout_ms: i32,
        read_only: Option<bool>,
        actions: &mut Actions,
    ) {
        let session = self.sessions.get(session_id).expect("the caller has it");
        let response = ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id,
            passwd: session.passwd.to_vec(),
            read_only,
        };
        let touch = session.touch.clone();
        actions.outputs.push(Output::Send {
            conn,
            frame: response.encode_frame(),
            reply: false,
            zxid: self.released.last_zxid(),
        });
        actions.outputs.push(Output::Established {
            conn,
            session_id,
            timeout_ms,
            touch,
        });
    }

    /// A request of a local session that does not simply go to the leader: a closeSession
    /// ends it here with no txn; an ephemeral create upgrades it to a global session first
    /// (or fails with EphemeralOnLocalSession). Returns whether the request was dealt with.
    /// Both wait for what the session sent before (held, then replayed in order).
    fn local_session_request(
        &mut self,
        conn: ConnId,
        session_id: i64,
        xid: i32,
        request: &Request,
        actions: &mut Actions,
    ) -> bool {
        let is_close = matches!(request, Request::CloseSession);
        let ephemeral = creates_ephemeral(request);
        if !is_close && !ephemeral {
            return false;
        }
        if ephemeral && self.config.upgrade_local_sessions {
            // The createSession goes ahead of the create on the same path to the leader.
            self.local.remove(&session_id);
            let session = self.sessions.get(session_id).expect("a live local session");
            let body = TxnBody::CreateSession {
                timeout_ms: session.timeout_ms,
                passwd: session.passwd,
            };
            match &self.role {
                Role::Leader(_) => {
                    // Two txns for one input would overrun an epoch with one txn of room
                    // left: the write waits, held, for the session's createSession to commit,
                    // and is prepped then (or when the next epoch has room).
                    self.submit(
                        session_id,
                        0,
                        body,
                        Some((conn, WriteReply::Upgrade)),
                        actions,
                    );
                    self.front.queues.push(
                        session_id,
                        Queued::Held {
                            conn,
                            xid,
                            request: Box::new(request.clone()),
                        },
                    );
                    return true;
                }
                Role::Learner => {
                    let TxnBody::CreateSession { timeout_ms, passwd } = body else {
                        unreachable!("built above");
                    };
                    actions.forward.push(Forwarded {
                        session_id,
                        cxid: 0,
                        auth_ids: Vec::new(),
                        op: ForwardedOp::CreateSession { timeout_ms, passwd },
                    });
                }
            }
            return false;
        }
        if !self.front.queues.is_idle(session_id) {
            self.front.queues.push(
                session_id,
                Queued::Held {
                    conn,
                    xid,
                    request: Box::new(request.clone()),
                },
            );
            return true;
        }
        let zxid = self.released.last_zxid();
        if ephemeral {
            actions.outputs.push(Output::Send {
                conn,
                frame: frame(
                    xid,
                    zxid,
                    ErrorCode::EphemeralOnLocalSession,
                    &Response::Empty,
                ),
                reply: true,
                zxid,
            });
            return true;
        }
        actions.outputs.push(Output::Send {
            conn,
            frame: frame(xid, zxid, ErrorCode::Ok, &Response::Empty),
            reply: true,
            zxid,
        });
        self.end_local_session(session_id, actions);
        true
    }

    /// A local session ends here (closed by its client, or expired): no txn, nothing of it
    /// anywhere else.
    fn end_local_session(&mut self, session_id: i64, actions: &mut Actions) {
        self.local.remove(&session_id);
        self.sessions.remove(session_id);
        self.front.end_session(session_id, actions);
    }

    /// A connection to a read-only server: only a client that asked for read-only is taken,
    /// in a new session of this server's own (a client that has seen only read-only servers
    /// asks for a new one each time, as ZooKeeper's clients do) or a session it knows.
    fn connect_read_only(
        &mut self,
        conn: ConnId,
        request: ConnectRequest,
        timeout_ms: i32,
        auth_ids: Vec<Id>,
        actions: &mut Actions,
    ) {
        if request.read_only != Some(true) {
            actions.outputs.push(Output::Close {
                conn,
                reason: "read-only server: refusing a client that did not ask for read-only",
            });
            return;
        }
        let known = self
            .sessions
            .get(request.session_id)
            .is_some_and(|s| s.passwd.as_slice() == request.passwd.as_slice());
        let session_id = if request.session_id == 0 {
            self.sessions.create(timeout_ms, self.now.mono_ms).id
        } else if known {
            self.sessions
                .reattach(request.session_id, timeout_ms, self.now.mono_ms);
            request.session_id
        } else {
            return Self::refuse_session(conn, Some(true), actions);
        };
        self.front.move_session(conn, session_id, auth_ids, actions);
        self.established(conn, session_id, timeout_ms, Some(true), actions);
    }

    /// A read-only server's answer to anything that would change state or needs a quorum
    /// (ZooKeeper's ReadOnlyRequestProcessor): NotReadOnly; a closeSession ends a local
    /// session here and only the connection of a global one (the leader expires it later).
    fn request_read_only(
        &mut self,
        conn: ConnId,
        session_id: i64,
        xid: i32,
        request: &Request,
        actions: &mut Actions,
    ) {
        let zxid = self.released.last_zxid();
        if matches!(request, Request::CloseSession) {
            actions.outputs.push(Output::Send {
                conn,
                frame: frame(xid, zxid, ErrorCode::Ok, &Response::Empty),
                reply: true,
                zxid,
            });
            actions.outputs.push(Output::Close {
                conn,
                reason: "client closed its session",
            });
            self.front.disconnected(conn);
            if !self.committed_sessions.contains_key(&session_id) {
                self.sessions.remove(session_id);
                self.front.end_session(session_id, actions);
            }
            return;
        }
        actions.outputs.push(Output::Send {
            conn,
            frame: frame(xid, zxid, ErrorCode::NotReadOnly, &Response::Empty),
            reply: true,
            zxid,
        });
    }

    /// Leader: preps `body`, applies it to the speculative tree and queues it for the log.
    /// `waiter` is the connection here that the txn answers, if any.
    fn submit(
        &mut self,
        session_id: i64,
        cxid: i32,
        body: TxnBody,
        waiter: Option<(ConnId, WriteReply)>,
        actions: &mut Actions,
    ) {
        if let Some(e) = self.ensemble {
            assert!(
                self.room() > 0,
                "a leader numbered a txn past the counter limit {}: the quorum must move it to \
                 the next epoch first",
                e.counter_limit
            );
        }
        let Role::Leader(proposer) = &mut self.role else {
            unreachable!("only a leader submits");
        };
        // A request of this session waits behind its earlier write and must be answered
        // against a tree without this txn (it was sent first): seal the tree as it is now.
        if self.front.queues.tail_is_request(session_id) {
            proposer.seal();
        }
        if let Some((conn, reply)) = waiter {
            self.front.queues.push(
                session_id,
                Queued::Write {
                    cxid,
                    conn,
                    reply,
                    refused: false,
                },
            );
        }
        let txn = proposer.push(session_id, cxid, body, self.now.wall_ms, waiter.is_some());
        actions.append.push(txn);
    }

    /// Learner: hands a write to the leader; `conn` waits for it in its session's order.
    fn forward(
        &mut self,
        forwarded: Forwarded,
        conn: ConnId,
        reply: WriteReply,
        actions: &mut Actions,
    ) {
        self.front.queues.push(
            forwarded.session_id,
            Queued::Write {
                cxid: forwarded.cxid,
                conn,
                reply,
                refused: false,
            },
        );
        actions.forward.push(forwarded);
    }

    fn request(&mut self, conn: ConnId, xid: i32, request: Request, actions: &mut Actions) {
        let Some(session_id) = self.front.conns.get(&conn).map(|c| c.session_id) else {
            return;
        };
        if self.read_only
            && (request.is_write() || matches!(request, Request::Sync { .. } | Request::Reconfig))
        {
            return self.request_read_only(conn, session_id, xid, &request, actions);
        }
        if self.ensemble.is_some() {
            if self.front.queues.must_hold(session_id) {
                self.front.queues.push(
                    session_id,
                    Queued::Held {
                        conn,
                        xid,
                        request: Box::new(request),
                    },
                );
                return;
            }
            if self.local.contains(&session_id)
                && self.local_session_request(conn, session_id, xid, &request, actions)
            {
                return;
            }
            if let Request::Sync { path } = request {
                let id = self.front.next_sync_id;
                self.front.next_sync_id += 1;
                self.front.syncs.insert(id, session_id);
                self.front.queues.push(
                    session_id,
                    Queued::Sync {
                        conn,
                        xid,
                        path,
                        id,
                        done: false,
                    },
                );
                actions.syncs.push(id);
                return;
            }
        }
        if request.is_write() || matches!(request, Request::Reconfig) {
            let c = self.front.conns.get(&conn).expect("looked up above");
            let is_close = matches!(request, Request::CloseSession);
            let reply = WriteReply::Request {
                is_multi: matches!(request, Request::Multi(_)),
                is_close,
            };
            let me = self.me();
            let moved = match &mut self.role {
                Role::Leader(proposer) => !is_close && proposer.moved_away(session_id, me),
                Role::Learner => false,
            };
            if moved {
                // Still queued in the session's order, so what it sent before is answered
                // first; then its connection closes.
                self.front.queues.push(
                    session_id,
                    Queued::Write {
                        cxid: xid,
                        conn,
                        reply,
                        refused: true,
                    },
                );
                self.front
                    .queues
                    .refuse(session_id, xid, &mut self.front.deferred);
                self.answer_deferred(actions);
                return;
            }
            match &self.role {
                Role::Leader(proposer) => {
                    let body = proposer.prep(
                        &self.sessions,
                        false,
                        session_id,
                        &c.auth_ids,
                        &request,
                        self.config.extended_types,
                        self.now.wall_ms,
                    );
                    self.mark_closing(session_id, is_close);
                    self.submit(session_id, xid, body, Some((conn, reply)), actions);
                }
                Role::Learner => {
                    let forwarded = Forwarded {
                        session_id,
                        cxid: xid,
                        auth_ids: c.auth_ids.clone(),
                        op: ForwardedOp::Request(request),
                    };
                    self.mark_closing(session_id, is_close);
                    self.forward(forwarded, conn, reply, actions);
                }
            }
            return;
        }
        if self.front.queues.is_idle(session_id) {
            self.front
                .answer(&self.released, conn, session_id, xid, request, actions);
        } else {
            self.front.queues.push(
                session_id,
                Queued::Request {
                    conn,
                    xid,
                    request: Box::new(request),
                },
            );
        }
    }

    fn mark_closing(&mut self, session_id: i64, is_close: bool) {
        if is_close {
            if let Some(s) = self.sessions.get_mut(session_id) {
                s.closing = true;
            }
        }
    }

    /// Leader: a learner's write, prepped as if its client had sent it here; the learner
    /// answers the client once the txn comes back committed.
    fn forwarded(&mut self, from: u64, forwarded: Forwarded, actions: &mut Actions) {
        let Role::Leader(proposer) = &mut self.role else {
            // Sent to this server while it led; the learner closes its clients' connections
            // when it hears of the new leader, so nobody waits for it.
            return;
        };
        let Forwarded {
            session_id,
            cxid,
            auth_ids,
            op,
        } = forwarded;
        // A session the leader does not track, made by another server while local sessions
        // are on, is that server's local session: it vouches for it (ZooKeeper's
        // LeaderSessionTracker lets such requests through). It cannot move, so no owner.
        let foreign_local = self.config.local_sessions
            && self.sessions.get(session_id).is_none()
            && (session_id as u64 >> 56) != u64::from(self.config.server_id);
        let body = match op {
            ForwardedOp::CreateSession { timeout_ms, passwd } => {
                proposer.owners.insert(session_id, from);
                self.sessions
                    .insert(session_id, timeout_ms, passwd, self.now.mono_ms);
                TxnBody::CreateSession { timeout_ms, passwd }
            }
            ForwardedOp::Attach { timeout_ms } => {
                // A session closing or gone stays so: its client learns it at its next
                // request there.
                if self.sessions.get(session_id).is_some_and(|s| !s.closing) {
                    proposer.owners.insert(session_id, from);
                    self.sessions
                        .reattach(session_id, timeout_ms, self.now.mono_ms);
                }
                return;
            }
            ForwardedOp::Request(request)
                if !foreign_local
                    && !matches!(request, Request::CloseSession)
                    && proposer.moved_away(session_id, from) =>
            {
                actions.refused.push(Refused {
                    server: from,
                    session_id,
                    cxid,
                });
                return;
            }
            // An ephemeral needs a session the leader tracks and will expire: a learner
            // upgrades a local session first; one it vouches for unknown here is refused.
            ForwardedOp::Request(request) if foreign_local && creates_ephemeral(&request) => {
                TxnBody::Error {
                    err: ErrorCode::EphemeralOnLocalSession.code(),
                }
            }
            ForwardedOp::Request(request) => {
                let body = proposer.prep(
                    &self.sessions,
                    foreign_local,
                    session_id,
                    &auth_ids,
                    &request,
                    self.config.extended_types,
                    self.now.wall_ms,
                );
                self.mark_closing(session_id, matches!(request, Request::CloseSession));
                body
            }
        };
        self.submit(session_id, cxid, body, None, actions);
    }

    /// Marks the end of a batch: the driver calls it before handing the batch to the log, so
    /// every zxid the log reports committed ends at a seal.
    pub fn seal_batch(&mut self) {
        if let Role::Leader(proposer) = &mut self.role {
            proposer.seal();
        }
    }

    /// Leader: releases its own txns up to `zxid`, at the last seal that covers.
    fn committed(&mut self, zxid: i64, actions: &mut Actions) {
        let Role::Leader(proposer) = &mut self.role else {
            panic!("a learner was told its own txns up to {zxid:#x} committed");
        };
        let count = proposer.releasable(zxid);
        if count == 0 {
            return;
        }
        for _ in 0..count {
            let Role::Leader(proposer) = &mut self.role else {
                unreachable!("checked above");
            };
            let pending = proposer.pending.pop_front().expect("counted above");
            self.log_digest(pending.zxid, pending.digest);
            let found = self.release(
                pending.zxid,
                pending.session_id,
                pending.cxid,
                pending.change,
                &pending.applied,
                pending.queued,
                actions,
            );
            assert_eq!(
                found, pending.queued,
                "txn {:#x} of session {:#x} (cxid {}) was queued but not matched in order",
                pending.zxid, pending.session_id, pending.cxid
            );
            // Requests that waited for a write are answered at the next seal, against its
            // tree: it has their write and not their session's next one (submit seals
            // before that), and every event of the txns up to it is already queued ahead.
            if let Some(tree) = pending.tree_after {
                debug_assert_eq!(tree.last_zxid(), pending.zxid);
                self.released = tree;
                self.answer_deferred(actions);
            }
        }
        debug_assert!(
            self.front.deferred.is_empty(),
            "a release range ends at a seal"
        );
        actions.publish = Some(self.released.clone());
    }

    /// Learner: applies txns the leader committed, in order, through the same release path.
    fn replicated(&mut self, txns: Vec<Txn>, digest: Option<u64>, actions: &mut Actions) {
        assert!(
            !self.is_leader(),
            "a leader was sent replicated txns; it commits its own"
        );
        if txns.is_empty() {
            return;
        }
        let mut applied = Applied::default();
        for txn in &txns {
            assert!(
                txn.zxid > self.released.last_zxid(),
                "zxids only grow: replicated {:#x} after {:#x}",
                txn.zxid,
                self.released.last_zxid()
            );
            applied.outcomes.clear();
            applied.triggers.clear();
            self.released.apply(txn, &mut applied);
            let change = SessionChange::of(txn);
            if let Some(SessionChange::Created(s)) = change {
                // Created elsewhere: this server must know it so the client can move here.
                if self.sessions.get(s.id).is_none() {
                    self.sessions
                        .insert(s.id, s.timeout_ms, s.passwd, self.now.mono_ms);
                }
            }
            self.log_digest(txn.zxid, self.released.digest());
            self.release(
                txn.zxid,
                txn.session_id,
                txn.cxid,
                change,
                &applied,
                true,
                actions,
            );
            // The released tree is exactly this txn's end: what waited for it is answered
            // now, before the session's next write is applied.
            self.answer_deferred(actions);
        }
        let ours = self.released.digest();
        if let Some(leaders) = digest.filter(|d| *d != ours) {
            actions.diverged = Some(Divergence {
                zxid: self.released.last_zxid(),
                ours,
                leaders,
            });
        }
        actions.publish = Some(self.released.clone());
    }

    fn log_digest(&mut self, zxid: i64, digest: u64) {
        if zxid % DIGEST_LOG_INTERVAL == 0 {
            if self.digest_log.len() == DIGEST_LOG_LIMIT {
                self.digest_log.pop_front();
            }
            self.digest_log.push_back((zxid, digest));
        }
    }

    /// The part of releasing one committed txn that every role shares: session bookkeeping,
    /// watches, and the reply to whoever waits for it here. Returns whether someone did.
    #[allow(clippy::too_many_arguments)]
    fn release(
        &mut self,
        zxid: i64,
        session_id: i64,
        cxid: i32,
        change: Option<SessionChange>,
        applied: &Applied,
        may_wait: bool,
        actions: &mut Actions,
    ) -> bool {
        let kind = match change {
            Some(SessionChange::Created(_)) => TxnKind::CreateSession,
            Some(SessionChange::Closed(_)) => TxnKind::CloseSession,
            None => TxnKind::Other,
        };
        if let Some(change) = change {
            change.apply(&mut self.committed_sessions);
        }
        // Events first: ZooKeeper queues them on the connections while applying, before the
        // reply of the request that caused them.
        for trigger in &applied.triggers {
            self.front.watches.fire(trigger, &mut self.front.fired);
        }
        self.front.deliver_events(zxid, actions);
        let waiter = if may_wait {
            self.front
                .queues
                .release_write(session_id, cxid, kind, &mut self.front.deferred)
        } else {
            None
        };
        match waiter {
            Some((
                conn,
                WriteReply::Connect {
                    timeout_ms,
                    read_only,
                },
            )) => {
                if let Some(session) = self.sessions.get(session_id) {
                    if self.front.session_conn.get(&session_id) == Some(&conn) {
                        let response = ConnectResponse {
                            protocol_version: 0,
                            timeout_ms,
                            session_id,
                            passwd: session.passwd.to_vec(),
                            read_only: read_only.map(|_| false),
                        };
                        session.touch.store(self.now.mono_ms, Ordering::Relaxed);
                        actions.outputs.push(Output::Send {
                            conn,
                            frame: response.encode_frame(),
                            reply: false,
                            zxid,
                        });
                        actions.outputs.push(Output::Established {
                            conn,
                            session_id,
                            timeout_ms,
                            touch: session.touch.clone(),
                        });
                    }
                }
            }
            Some((conn, WriteReply::Request { is_multi, is_close }))
                if self.front.conns.contains_key(&conn) =>
            {
                let (err, response) = apply::reply(&applied.outcomes, is_multi);
                actions.outputs.push(Output::Send {
                    conn,
                    frame: frame(cxid, zxid, err, &response),
                    reply: true,
                    zxid,
                });
                if is_close {
                    actions.outputs.push(Output::Close {
                        conn,
                        reason: "client closed its session",
                    });
                }
            }
            Some(_) | None => {}
        }
        let closed = applied
            .outcomes
            .iter()
            .any(|o| matches!(o, OpOutcome::SessionClosed));
        if closed {
            if let Role::Leader(proposer) = &mut self.role {
                proposer.owners.remove(&session_id);
            }
            self.sessions.remove(session_id);
            self.front.end_session(session_id, actions);
        }
        waiter.is_some()
    }

    fn tick(&mut self, actions: &mut Actions) {
        let expired = self.sessions.expired(self.now.mono_ms);
        if self.read_only {
            // A read-only server's own sessions are its alone to expire, with no txn; the
            // global ones wait for a leader.
            for id in expired {
                if !self.committed_sessions.contains_key(&id) {
                    actions
                        .expired
                        .push((id, self.sessions.get(id).map_or(0, |s| s.timeout_ms)));
                    self.sessions.remove(id);
                    self.front.end_session(id, actions);
                }
            }
            return;
        }
        // Local sessions are this server's to expire, in any role, with no txn, once what
        // they sent before is answered (their writes may still be at the leader).
        let (local, expired): (Vec<i64>, Vec<i64>) =
            expired.into_iter().partition(|id| self.local.contains(id));
        for id in local {
            if let Some(s) = self.sessions.get_mut(id) {
                s.closing = true;
                actions.expired.push((id, s.timeout_ms));
            }
            self.expiring_local.push(id);
        }
        let expiring = std::mem::take(&mut self.expiring_local);
        for id in expiring {
            if !self.local.contains(&id) {
                continue;
            }
            if self.front.queues.is_idle(id) {
                self.end_local_session(id, actions);
            } else {
                self.expiring_local.push(id);
            }
        }
        let Role::Leader(proposer) = &mut self.role else {
            // Only the leader expires sessions; a learner drains its expiry buckets so they
            // do not grow, and keeps every session until the leader's closeSession arrives.
            return;
        };
        let reap = self.now.mono_ms >= proposer.next_reap_ms;
        let mut expired = expired;
        // Expired while the epoch had no room left: still expired, closed now.
        let backlog = std::mem::take(&mut self.expiry_backlog);
        expired.extend(
            backlog
                .into_iter()
                .filter(|&id| self.sessions.get(id).is_some_and(|s| !s.closing)),
        );
        for session_id in expired {
            if self.room() == 0 {
                self.expiry_backlog.push(session_id);
                continue;
            }
            if let Some(s) = self.sessions.get_mut(session_id) {
                s.closing = true;
                actions.expired.push((session_id, s.timeout_ms));
            }
            self.submit(session_id, 0, TxnBody::CloseSession, None, actions);
        }
        if reap {
            let room = self.room() as usize;
            let Role::Leader(proposer) = &mut self.role else {
                unreachable!("checked above");
            };
            proposer.next_reap_ms = self.now.mono_ms + self.config.container_check_interval_ms;
            // What finds no room this epoch is found again at the next check.
            for body in proposer.reapable(self.now.wall_ms).into_iter().take(room) {
                self.submit(0, 0, body, None, actions);
            }
        }
    }
}

/// Whether `request` creates an ephemeral node (alone or in a multi).
fn creates_ephemeral(request: &Request) -> bool {
    let ephemeral =
        |flags: i32| rzk_proto::CreateMode::from_flags(flags).is_some_and(|m| m.is_ephemeral());
    match request {
        Request::Create(create) => ephemeral(create.flags),
        Request::Multi(ops) => ops
            .iter()
            .any(|op| matches!(op, rzk_proto::MultiOp::Create(create) if ephemeral(create.flags))),
        _ => false,
    }
}

/// The smallest request that creates a node; tests and the simulator use it.
pub fn create_request(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create(CreateRequest {
        op: OpCode::Create,
        path: path.to_owned(),
        data: Some(data.to_vec()),
        acl: rzk_proto::Acl::open_unsafe(),
        flags,
        ttl_ms: -1,
    })
}

#[cfg(test)]
mod learner_tests;
#[cfg(test)]
mod tests;
