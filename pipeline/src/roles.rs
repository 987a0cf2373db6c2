//! How the stages are wired for a standalone server (read this first).
//!
//! One `Standalone` value is the whole core: the driver feeds it `Input`s and the current time
//! and carries out the `Actions` it returns:
//! 1. `actions.append`: txns to make durable, in zxid order; the driver group-commits them and
//!    later reports `Input::Durable { zxid }`.
//! 2. `actions.outputs`: frames for connections (watch events, replies), connections to mark
//!    established or to close, in the order they must happen per connection.
//! 3. `actions.publish`: a new tree version for the event loops' lock-free reads. The driver
//!    publishes it BEFORE handing out the outputs, so that any client that has a reply can
//!    read what it acknowledged, from any connection; and it marks the version "delivered"
//!    only after the outputs are queued, so an event loop answers a read from a version only
//!    once that version's watch events are in its queue (otherwise the read goes to the
//!    core). An event thus always reaches its client before the reply of a read that
//!    observes the change.
//!
//! Prep applies each txn to the speculative `working` tree at once (so the next request is
//! validated against it, ZooKeeper's "outstanding changes") and keeps an O(1) clone of the
//! tree after it; `Durable` releases those clones in order as the visible `released` tree.
//! Nothing a client can observe happens before its txn is durable.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;

use rzk_proto::{
    ConnectRequest, ConnectResponse, CreateRequest, ErrorCode, Id, OpCode, ReplyHeader, Request,
    Response, Txn, TxnBody, WatcherEvent, WatcherType,
};
use rzk_session::{DurableSession, Now, SessionTable, TimeoutLimits, Touch};
use rzk_tree::watch::{Fired, WatchRegistry};
use rzk_tree::{Applied, NodeKind, Tree};

use crate::apply;
use crate::commit::{Queued, SessionQueues};
use crate::prep::{self, Caller};
use crate::read::{self, WatchRegistration};

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
    /// The log made every txn up to `zxid` durable.
    Durable {
        zxid: i64,
    },
    /// Time passed: expire sessions, reap containers and TTL nodes.
    Tick,
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
    pub outputs: Vec<Output>,
    pub publish: Option<Tree>,
    /// Sessions whose timeout passed this step, with that timeout in ms: the driver logs
    /// each one, as ZooKeeper does, and counts them.
    pub expired: Vec<(i64, i32)>,
}

impl Actions {
    pub fn clear(&mut self) {
        self.append.clear();
        self.outputs.clear();
        self.publish = None;
        self.expired.clear();
    }
}

struct Conn {
    session_id: i64,
    auth_ids: Vec<Id>,
}

#[derive(Debug)]
enum Origin {
    Request {
        conn: ConnId,
        xid: i32,
        is_multi: bool,
        is_close: bool,
    },
    Connect {
        conn: ConnId,
        timeout_ms: i32,
        read_only: Option<bool>,
    },
    Expiry,
    Reaper,
}

struct Pending {
    zxid: i64,
    session_id: i64,
    /// The tree right after this txn, kept only at a *seal*: the end of a batch handed to the
    /// log, or a point a queued read must be answered at. Cloning per txn made every apply
    /// copy the persistent map's path (about 10x the apply itself); per seal it is once per
    /// batch. Releases stop only at seals, so the released tree is always one of these.
    tree_after: Option<Tree>,
    applied: Applied,
    origin: Origin,
}

pub struct Standalone {
    config: CoreConfig,
    now: Now,
    working: Tree,
    released: Tree,
    pending: VecDeque<Pending>,
    sessions: SessionTable,
    conns: HashMap<ConnId, Conn>,
    session_conn: HashMap<i64, ConnId>,
    queues: SessionQueues,
    watches: WatchRegistry,
    next_reap_ms: u64,
    fired: Vec<Fired>,
    /// Requests whose write was released, waiting for the seal that ends the release.
    deferred: Vec<(ConnId, i64, i32, Request)>,
    /// Sessions as of the released tree: what a snapshot of `released` must hold.
    durable_sessions: BTreeMap<i64, DurableSession>,
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

impl Standalone {
    pub fn new(config: CoreConfig, tree: Tree, now: Now) -> Self {
        let sessions =
            SessionTable::new(config.server_id, now.wall_ms, config.seed, config.tick_ms);
        Standalone {
            next_reap_ms: now.mono_ms + config.container_check_interval_ms,
            config,
            now,
            working: tree.clone(),
            released: tree,
            pending: VecDeque::new(),
            sessions,
            conns: HashMap::new(),
            session_conn: HashMap::new(),
            queues: SessionQueues::default(),
            watches: WatchRegistry::new(),
            fired: Vec::new(),
            deferred: Vec::new(),
            durable_sessions: BTreeMap::new(),
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
        let mut durable: BTreeMap<i64, DurableSession> =
            sessions.into_iter().map(|s| (s.id, s)).collect();
        let mut applied = Applied::default();
        for txn in txns {
            if txn.zxid <= tree.last_zxid() {
                continue;
            }
            applied.outcomes.clear();
            applied.triggers.clear();
            tree.apply(txn, &mut applied);
            track_session(&mut durable, txn);
        }
        let mut core = Standalone::new(config, tree, now);
        for s in durable.values() {
            core.sessions
                .insert(s.id, s.timeout_ms, s.passwd, now.mono_ms);
        }
        core.durable_sessions = durable;
        core
    }

    /// Sessions that exist in the released tree's history, for a snapshot of it.
    pub fn durable_sessions(&self) -> Vec<DurableSession> {
        self.durable_sessions.values().copied().collect()
    }

    pub fn released(&self) -> &Tree {
        &self.released
    }

    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    pub fn watches(&self) -> &WatchRegistry {
        &self.watches
    }

    /// Requests prepped but not yet released, plus requests queued behind them.
    pub fn outstanding_count(&self) -> usize {
        self.pending.len() + self.queues.queued_count()
    }

    pub fn session_of(&self, conn: ConnId) -> Option<i64> {
        self.conns
            .get(&conn)
            .map(|c| c.session_id)
            .filter(|&s| s != 0)
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
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.auth_ids = auth_ids;
                }
            }
            Input::Disconnected { conn } => self.disconnected(conn),
            Input::Durable { zxid } => self.durable(zxid, actions),
            Input::Tick => self.tick(actions),
        }
    }

    fn connect(
        &mut self,
        conn: ConnId,
        request: ConnectRequest,
        auth_ids: Vec<Id>,
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
        if request.session_id == 0 {
            let session = self.sessions.create(timeout_ms, self.now.mono_ms);
            let (session_id, passwd) = (session.id, session.passwd);
            self.conns.insert(
                conn,
                Conn {
                    session_id,
                    auth_ids,
                },
            );
            self.session_conn.insert(session_id, conn);
            self.submit(
                session_id,
                0,
                TxnBody::CreateSession { timeout_ms, passwd },
                Origin::Connect {
                    conn,
                    timeout_ms,
                    read_only: request.read_only,
                },
                actions,
            );
            return;
        }
        let valid = self
            .sessions
            .get(request.session_id)
            .is_some_and(|s| !s.closing && s.passwd.as_slice() == request.passwd.as_slice());
        if !valid {
            let response = ConnectResponse {
                protocol_version: 0,
                timeout_ms: 0,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: request.read_only.map(|_| false),
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
            return;
        }
        let session_id = request.session_id;
        if let Some(old) = self.session_conn.insert(session_id, conn) {
            if old != conn {
                // The old connection's watches die with it; the client re-registers them on
                // this one with setWatches.
                self.conns.remove(&old);
                self.watches.remove_session(session_id);
                actions.outputs.push(Output::Close {
                    conn: old,
                    reason: "session moved to a new connection",
                });
            }
        }
        self.conns.insert(
            conn,
            Conn {
                session_id,
                auth_ids,
            },
        );
        self.sessions
            .reattach(session_id, timeout_ms, self.now.mono_ms);
        let session = self.sessions.get(session_id).expect("checked above");
        let response = ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id,
            passwd: session.passwd.to_vec(),
            read_only: request.read_only.map(|_| false),
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

    fn disconnected(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if self.session_conn.get(&c.session_id) == Some(&conn) {
            self.session_conn.remove(&c.session_id);
            self.watches.remove_session(c.session_id);
        }
    }

    /// Preps `body`, applies it to the speculative tree and queues it for the log.
    fn submit(
        &mut self,
        session_id: i64,
        cxid: i32,
        body: TxnBody,
        origin: Origin,
        actions: &mut Actions,
    ) {
        // A request of this session waits behind its earlier write and must be answered
        // against a tree without this txn (it was sent first): seal the tree as it is now.
        if self.queues.tail_is_request(session_id) {
            self.seal_batch();
        }
        let zxid = self.working.last_zxid() + 1;
        let txn = Txn {
            zxid,
            time_ms: self.now.wall_ms as i64,
            session_id,
            cxid,
            body,
        };
        let mut applied = Applied::default();
        self.working.apply(&txn, &mut applied);
        if matches!(origin, Origin::Request { .. } | Origin::Connect { .. }) {
            self.queues.push(session_id, Queued::Write { zxid });
        }
        self.pending.push_back(Pending {
            zxid,
            session_id,
            tree_after: None,
            applied,
            origin,
        });
        actions.append.push(txn);
    }

    fn request(&mut self, conn: ConnId, xid: i32, request: Request, actions: &mut Actions) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let session_id = c.session_id;
        let closing = self.sessions.get(session_id).is_none_or(|s| s.closing);
        if request.is_write() || matches!(request, Request::Reconfig) {
            let caller = Caller {
                session_id,
                auth_ids: &c.auth_ids,
                extended_types: self.config.extended_types,
            };
            let is_close = matches!(request, Request::CloseSession);
            let body = if closing && !is_close {
                TxnBody::Error {
                    err: ErrorCode::SessionExpired.code(),
                }
            } else {
                let zxid = self.working.last_zxid() + 1;
                let tree = &self.working;
                let prepped = match &request {
                    Request::Create(req) => prep::create(tree, req, &caller),
                    Request::Delete { path, version } => {
                        prep::delete(tree, path, *version, &caller)
                    }
                    Request::SetData {
                        path,
                        data,
                        version,
                    } => prep::set_data(tree, path, data, *version, &caller),
                    Request::SetAcl { path, acl, version } => {
                        prep::set_acl(tree, path, acl, *version, &caller)
                    }
                    Request::Check { path, version } => prep::check(tree, path, *version, &caller),
                    Request::Multi(ops) => Ok(prep::multi(
                        tree,
                        ops,
                        &caller,
                        zxid,
                        self.now.wall_ms as i64,
                    )),
                    Request::CloseSession => Ok(TxnBody::CloseSession),
                    Request::Reconfig => Err(ErrorCode::ReconfigDisabled),
                    _ => unreachable!("not a write"),
                };
                prepped.unwrap_or_else(|err| TxnBody::Error { err: err.code() })
            };
            if is_close {
                if let Some(s) = self.sessions.get_mut(session_id) {
                    s.closing = true;
                }
            }
            let origin = Origin::Request {
                conn,
                xid,
                is_multi: matches!(request, Request::Multi(_)),
                is_close,
            };
            self.submit(session_id, xid, body, origin, actions);
            return;
        }
        if self.queues.is_idle(session_id) {
            self.answer(conn, session_id, xid, request, actions);
        } else {
            self.queues.push(
                session_id,
                Queued::Request {
                    conn,
                    xid,
                    request: Box::new(request),
                },
            );
        }
    }

    /// Answers a request that changes no data, against the released tree.
    fn answer(
        &mut self,
        conn: ConnId,
        session_id: i64,
        xid: i32,
        request: Request,
        actions: &mut Actions,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            // The connection went away while the request waited; nobody to answer.
            return;
        };
        let zxid = self.released.last_zxid();
        let reply = |err: ErrorCode, response: &Response| Output::Send {
            conn,
            frame: frame(xid, zxid, err, response),
            reply: true,
            zxid,
        };
        if read::is_read(&request) {
            let result = read::serve(&self.released, &request, session_id, &c.auth_ids);
            match &result.watch {
                Some(WatchRegistration::Data(path)) => {
                    self.watches.add_data_watch(path, session_id)
                }
                Some(WatchRegistration::Child(path)) => {
                    self.watches.add_child_watch(path, session_id)
                }
                None => {}
            }
            actions.outputs.push(reply(result.err, &result.response));
            return;
        }
        let (err, response) = match request {
            Request::Sync { path } => (ErrorCode::Ok, Response::Sync { path }),
            Request::Ping => (ErrorCode::Ok, Response::Empty),
            Request::AddWatch { path, mode } => match mode {
                0 | 1 => {
                    self.watches.add_persistent(&path, session_id, mode == 1);
                    (ErrorCode::Ok, Response::ErrorResponse(0))
                }
                // ZooKeeper's WatcherMode.fromZooDef throws, which surfaces as MarshallingError.
                _ => (ErrorCode::MarshallingError, Response::Empty),
            },
            Request::CheckWatches { path, watcher_type } => {
                let found = WatcherType::from_i32(watcher_type)
                    .and_then(|t| self.watches.contains(&path, session_id, t));
                watch_answer(found)
            }
            Request::RemoveWatches { path, watcher_type } => {
                let removed = WatcherType::from_i32(watcher_type)
                    .and_then(|t| self.watches.remove(&path, session_id, t));
                watch_answer(removed)
            }
            Request::SetWatches(sw) => {
                self.set_watches(conn, session_id, &sw, actions);
                (ErrorCode::Ok, Response::Empty)
            }
            Request::Sasl => (ErrorCode::Unimplemented, Response::Empty),
            Request::Malformed(_) => (ErrorCode::MarshallingError, Response::Empty),
            Request::Unknown(_) => {
                // ZooKeeper's UnimplementedRequestProcessor: answer with the request's unset
                // zxid (-1), then close.
                actions.outputs.push(Output::Send {
                    conn,
                    frame: frame(xid, -1, ErrorCode::Unimplemented, &Response::Empty),
                    reply: true,
                    zxid,
                });
                actions.outputs.push(Output::Close {
                    conn,
                    reason: "unknown request type",
                });
                return;
            }
            other => unreachable!("not answered by the core: {other:?}"),
        };
        actions.outputs.push(reply(err, &response));
    }

    /// setWatches/setWatches2 after a reconnect: fires what the client missed since
    /// `relative_zxid` and registers the rest (DataTree.setWatches).
    fn set_watches(
        &mut self,
        conn: ConnId,
        session_id: i64,
        sw: &rzk_proto::SetWatchesRequest,
        actions: &mut Actions,
    ) {
        use rzk_proto::EventType as E;
        let mut events: Vec<(E, &str)> = Vec::new();
        for path in &sw.data {
            match self.released.get(path) {
                None => events.push((E::NodeDeleted, path)),
                Some(n) if n.stat.mzxid > sw.relative_zxid => {
                    events.push((E::NodeDataChanged, path))
                }
                Some(_) => self.watches.add_data_watch(path, session_id),
            }
        }
        for path in &sw.exist {
            match self.released.get(path) {
                Some(_) => events.push((E::NodeCreated, path)),
                None => self.watches.add_data_watch(path, session_id),
            }
        }
        for path in &sw.child {
            match self.released.get(path) {
                None => events.push((E::NodeDeleted, path)),
                Some(n) if n.stat.pzxid > sw.relative_zxid => {
                    events.push((E::NodeChildrenChanged, path))
                }
                Some(_) => self.watches.add_child_watch(path, session_id),
            }
        }
        for path in &sw.persistent {
            self.watches.add_persistent(path, session_id, false);
        }
        for path in &sw.persistent_recursive {
            self.watches.add_persistent(path, session_id, true);
        }
        for (event_type, path) in events {
            actions.outputs.push(Output::Send {
                conn,
                frame: WatcherEvent {
                    event_type: event_type.code(),
                    state: rzk_proto::KeeperState::SyncConnected.code(),
                    path: path.to_owned(),
                }
                .encode_frame(-1),
                reply: false,
                zxid: self.released.last_zxid(),
            });
        }
    }

    /// Marks the end of a batch: the driver calls it before handing the batch to the log, so
    /// every zxid the log reports durable ends at a seal.
    pub fn seal_batch(&mut self) {
        if let Some(last) = self.pending.back_mut() {
            if last.tree_after.is_none() {
                debug_assert_eq!(last.zxid, self.working.last_zxid());
                last.tree_after = Some(self.working.clone());
            }
        }
    }

    fn durable(&mut self, zxid: i64, actions: &mut Actions) {
        if self.pending.back().is_some_and(|p| p.zxid <= zxid) {
            // Everything pending is durable, and the working tree is exactly its end.
            self.seal_batch();
        }
        let covered = self.pending.partition_point(|p| p.zxid <= zxid);
        let Some(end) = self
            .pending
            .range(..covered)
            .rposition(|p| p.tree_after.is_some())
        else {
            return;
        };
        for _ in 0..=end {
            let pending = self.pending.pop_front().expect("counted above");
            self.release(pending, actions);
        }
        debug_assert!(self.deferred.is_empty(), "a release range ends at a seal");
        actions.publish = Some(self.released.clone());
    }

    /// Queues the events `zxid` fired. Labelled with that zxid, not the released tree's:
    /// between seals the released tree lags the txn being released.
    fn deliver_events(&mut self, zxid: i64, actions: &mut Actions) {
        for fired in self.fired.drain(..) {
            let Some(&conn) = self.session_conn.get(&fired.session_id) else {
                continue;
            };
            // Only sessions that may read the node hear about it (CVE-2024-23944).
            let may_read = self.conns.get(&conn).is_some_and(|c| {
                rzk_tree::acl::allowed(&fired.acl, rzk_proto::perms::READ, &c.auth_ids)
            });
            if !may_read {
                continue;
            }
            actions.outputs.push(Output::Send {
                conn,
                frame: WatcherEvent {
                    event_type: fired.event_type.code(),
                    state: rzk_proto::KeeperState::SyncConnected.code(),
                    path: fired.path.to_string(),
                }
                .encode_frame(-1),
                reply: false,
                zxid,
            });
        }
    }

    fn release(&mut self, pending: Pending, actions: &mut Actions) {
        let Pending {
            zxid,
            session_id,
            tree_after,
            applied,
            origin,
        } = pending;
        if let Some(txn_body) = applied.outcomes.iter().find(|o| {
            matches!(
                o,
                rzk_tree::OpOutcome::SessionCreated | rzk_tree::OpOutcome::SessionClosed
            )
        }) {
            match txn_body {
                rzk_tree::OpOutcome::SessionCreated => {
                    if let Some(s) = self.sessions.get(session_id) {
                        self.durable_sessions.insert(
                            session_id,
                            DurableSession {
                                id: session_id,
                                timeout_ms: s.timeout_ms,
                                passwd: s.passwd,
                            },
                        );
                    }
                }
                _ => {
                    self.durable_sessions.remove(&session_id);
                }
            }
        }
        // Events first: ZooKeeper queues them on the connections while applying, before the
        // reply of the request that caused them.
        for trigger in &applied.triggers {
            self.watches.fire(trigger, &mut self.fired);
        }
        self.deliver_events(zxid, actions);
        let closed = applied
            .outcomes
            .iter()
            .any(|o| matches!(o, rzk_tree::OpOutcome::SessionClosed));
        match origin {
            Origin::Connect {
                conn,
                timeout_ms,
                read_only,
            } => {
                if let Some(session) = self.sessions.get(session_id) {
                    if self.session_conn.get(&session_id) == Some(&conn) {
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
            Origin::Request {
                conn,
                xid,
                is_multi,
                is_close,
            } => {
                if self.conns.contains_key(&conn) {
                    let (err, response) = apply::reply(&applied.outcomes, is_multi);
                    actions.outputs.push(Output::Send {
                        conn,
                        frame: frame(xid, zxid, err, &response),
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
            }
            Origin::Expiry | Origin::Reaper => {}
        }
        if closed {
            self.end_session(session_id, actions);
        } else {
            self.queues
                .release_write(session_id, zxid, &mut self.deferred);
        }
        // Requests that waited for a write are answered at the next seal, against its tree:
        // it has their write and not their session's next one (submit seals before that),
        // and every event of the txns up to it is already queued ahead of the answer.
        if let Some(tree) = tree_after {
            debug_assert_eq!(tree.last_zxid(), zxid);
            self.released = tree;
            for (conn, session_id, xid, request) in std::mem::take(&mut self.deferred) {
                self.answer(conn, session_id, xid, request, actions);
            }
        }
    }

    fn end_session(&mut self, session_id: i64, actions: &mut Actions) {
        self.sessions.remove(session_id);
        self.queues.remove_session(session_id);
        self.watches.remove_session(session_id);
        if let Some(conn) = self.session_conn.remove(&session_id) {
            self.conns.remove(&conn);
            actions.outputs.push(Output::Close {
                conn,
                reason: "session closed",
            });
        }
    }

    fn tick(&mut self, actions: &mut Actions) {
        for session_id in self.sessions.expired(self.now.mono_ms) {
            if let Some(s) = self.sessions.get_mut(session_id) {
                s.closing = true;
                actions.expired.push((session_id, s.timeout_ms));
            }
            self.submit(
                session_id,
                0,
                TxnBody::CloseSession,
                Origin::Expiry,
                actions,
            );
        }
        if self.now.mono_ms >= self.next_reap_ms {
            self.next_reap_ms = self.now.mono_ms + self.config.container_check_interval_ms;
            self.reap(actions);
        }
    }

    /// ZooKeeper's ContainerManager: deletes containers that had children and have none
    /// left, and TTL nodes without children not modified within their TTL.
    fn reap(&mut self, actions: &mut Actions) {
        // TTLs compare with mtime, which is wall-clock time, as in ZooKeeper.
        let now = self.now.wall_ms as i64;
        let mut candidates = Vec::new();
        for path in self.working.containers().iter() {
            if let Some(n) = self.working.get(path) {
                if n.children.is_empty() && n.stat.cversion > 0 {
                    candidates.push(path.clone());
                }
            }
        }
        for path in self.working.ttls().iter() {
            if let Some(n) = self.working.get(path) {
                if let NodeKind::Ttl { ttl_ms } = n.kind() {
                    if n.children.is_empty() && now - n.stat.mtime > ttl_ms {
                        candidates.push(path.clone());
                    }
                }
            }
        }
        for path in candidates {
            if let Ok(body) = prep::delete_container(&self.working, &path) {
                self.submit(0, 0, body, Origin::Reaper, actions);
            }
        }
    }
}

/// Keeps the session set in step with a logged transaction during recovery.
fn track_session(sessions: &mut BTreeMap<i64, DurableSession>, txn: &Txn) {
    match &txn.body {
        TxnBody::CreateSession { timeout_ms, passwd } => {
            sessions.insert(
                txn.session_id,
                DurableSession {
                    id: txn.session_id,
                    timeout_ms: *timeout_ms,
                    passwd: *passwd,
                },
            );
        }
        TxnBody::CloseSession => {
            sessions.remove(&txn.session_id);
        }
        _ => {}
    }
}

/// checkWatches/removeWatches: found, not found, or a watcher type ZooKeeper 3.8 rejects.
fn watch_answer(found: Option<bool>) -> (ErrorCode, Response) {
    match found {
        Some(true) => (ErrorCode::Ok, Response::Empty),
        Some(false) => (ErrorCode::NoWatcher, Response::Empty),
        None => (ErrorCode::MarshallingError, Response::Empty),
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
mod tests;
