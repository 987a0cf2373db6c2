//! The client front end every role runs: connections and their identities, answers to
//! requests that change no data, watches, and each session's reply order.
//!
//! Never: decide a zxid or what a write does (the proposer does), or apply a transaction
//! (the release path does); it answers only from the tree it is handed.

use std::collections::HashMap;

use rzk_proto::{ConnectRequest, ErrorCode, Id, Request, Response, WatcherEvent, WatcherType};
use rzk_tree::watch::{Fired, WatchRegistry};
use rzk_tree::Tree;

use super::{frame, Actions, ConnId, Output};
use crate::commit::{Ready, SessionQueues};
use crate::read::{self, WatchRegistration};

pub(super) struct Conn {
    pub session_id: i64,
    pub auth_ids: Vec<Id>,
}

#[derive(Default)]
pub(super) struct Front {
    pub conns: HashMap<ConnId, Conn>,
    pub session_conn: HashMap<i64, ConnId>,
    pub queues: SessionQueues,
    pub watches: WatchRegistry,
    pub fired: Vec<Fired>,
    /// Requests whose write (or sync) was released, waiting for the tree they must be
    /// answered at, or to be replayed.
    pub deferred: Vec<Ready>,
    /// Each unanswered sync round's session.
    pub syncs: HashMap<u64, i64>,
    pub next_sync_id: u64,
    /// Learner: re-attaches to a session this server did not know, each waiting for its
    /// sync round (by id) before it is decided again.
    pub revalidating: HashMap<u64, Revalidating>,
}

/// A connect held until this learner has caught up with its leader.
pub(super) struct Revalidating {
    pub conn: ConnId,
    pub request: ConnectRequest,
    pub auth_ids: Vec<Id>,
}

impl Front {
    pub fn attach(&mut self, conn: ConnId, session_id: i64, auth_ids: Vec<Id>) {
        self.conns.insert(
            conn,
            Conn {
                session_id,
                auth_ids,
            },
        );
        self.session_conn.insert(session_id, conn);
    }

    /// `session_id` now lives on `conn`: its old connection (if another) is closed, and its
    /// watches die with it; the client re-registers them on this one with setWatches.
    pub fn move_session(
        &mut self,
        conn: ConnId,
        session_id: i64,
        auth_ids: Vec<Id>,
        actions: &mut Actions,
    ) {
        if let Some(old) = self.session_conn.insert(session_id, conn) {
            if old != conn {
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
    }

    pub fn disconnected(&mut self, conn: ConnId) {
        self.revalidating.retain(|_, r| r.conn != conn);
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if self.session_conn.get(&c.session_id) == Some(&conn) {
            self.session_conn.remove(&c.session_id);
            self.watches.remove_session(c.session_id);
        }
    }

    /// The session ended: its queue, watches and connection go.
    pub fn end_session(&mut self, session_id: i64, actions: &mut Actions) {
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

    /// Every client connection closes (a role change): what they waited for may never be
    /// answered here, and their clients reconnect and re-register their watches.
    pub fn close_all(&mut self, reason: &'static str, actions: &mut Actions) {
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns.extend(self.revalidating.drain().map(|(_, r)| r.conn));
        conns.sort_unstable();
        for conn in conns {
            actions.outputs.push(Output::Close { conn, reason });
        }
        self.conns.clear();
        self.session_conn.clear();
        self.queues.clear();
        self.deferred.clear();
        self.syncs.clear();
        self.watches = WatchRegistry::new();
    }

    /// Queues the events `zxid` fired. Labelled with that zxid, not the released tree's:
    /// between seals the released tree lags the txn being released.
    pub fn deliver_events(&mut self, zxid: i64, actions: &mut Actions) {
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

    /// Answers a request that changes no data, against `tree` (the released one).
    pub fn answer(
        &mut self,
        tree: &Tree,
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
        let zxid = tree.last_zxid();
        let reply = |err: ErrorCode, response: &Response| Output::Send {
            conn,
            frame: frame(xid, zxid, err, response),
            reply: true,
            zxid,
        };
        if read::is_read(&request) {
            let result = read::serve(tree, &request, session_id, &c.auth_ids);
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
                self.set_watches(tree, conn, session_id, &sw, actions);
                (ErrorCode::Ok, Response::Empty)
            }
            // The event loop answers SASL tokens itself; one reaching the core is a bug there.
            Request::Sasl { .. } => (ErrorCode::Unimplemented, Response::Empty),
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
        tree: &Tree,
        conn: ConnId,
        session_id: i64,
        sw: &rzk_proto::SetWatchesRequest,
        actions: &mut Actions,
    ) {
        use rzk_proto::EventType as E;
        let mut events: Vec<(E, &str)> = Vec::new();
        for path in &sw.data {
            match tree.get(path) {
                None => events.push((E::NodeDeleted, path)),
                Some(n) if n.stat().mzxid > sw.relative_zxid => {
                    events.push((E::NodeDataChanged, path))
                }
                Some(_) => self.watches.add_data_watch(path, session_id),
            }
        }
        for path in &sw.exist {
            match tree.get(path) {
                Some(_) => events.push((E::NodeCreated, path)),
                None => self.watches.add_data_watch(path, session_id),
            }
        }
        for path in &sw.child {
            match tree.get(path) {
                None => events.push((E::NodeDeleted, path)),
                Some(n) if n.stat().pzxid > sw.relative_zxid => {
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
                zxid: tree.last_zxid(),
            });
        }
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
