//! Goal: a learner runs the same front end and release path as the leader: its clients'
//! writes go to the leader and are answered when they come back committed, in each session's
//! order, after the events they fire; sessions created anywhere are known everywhere; only
//! the leader expires them.
//! Method: a leader core and a learner core wired by hand (forwards in, committed txns out,
//! as the quorum core will carry them), with frames decoded by the proto codec.

use super::tests::{config, decode, get_data, set_data};
use super::*;
use rzk_proto::{EventType, Reader, WatcherEvent};

const LEADER_CONN: ConnId = 10;
const LEARNER_CONN: ConnId = 20;
const LEARNER_CONN_2: ConnId = 21;
const LEARNER_SID: u64 = 2;

struct Pair {
    leader: Core,
    learner: Core,
    now: u64,
    /// Every txn the leader committed, in order (what the learner has been sent).
    log: Vec<Txn>,
    /// Changes a batch on its way to the learner (a simulated bug or corruption).
    tamper: Option<fn(&mut Vec<Txn>)>,
    divergences: Vec<Divergence>,
}

/// What one `pump` produced on each side.
#[derive(Default)]
struct Seen {
    leader: Vec<Output>,
    learner: Vec<Output>,
}

impl Pair {
    fn new() -> Self {
        let leader = Core::new(config(1), Tree::new(), Now::both(1_000));
        let mut learner_config = config(2);
        learner_config.server_id = 2;
        let mut learner = Core::new(learner_config, Tree::new(), Now::both(1_000));
        learner.become_learner(&mut Actions::default());
        Pair {
            leader,
            learner,
            now: 1_000,
            log: Vec::new(),
            tamper: None,
            divergences: Vec::new(),
        }
    }

    fn clock(&self) -> Now {
        Now::both(self.now)
    }

    /// Carries out actions until nothing moves: forwards go to the leader, the leader's
    /// txns commit at once and are replicated to the learner in one batch.
    fn settle(&mut self, mut leader: Actions, mut learner: Actions) -> Seen {
        let mut seen = Seen::default();
        for _ in 0..16 {
            seen.learner.append(&mut learner.outputs);
            seen.leader.append(&mut leader.outputs);
            assert!(learner.append.is_empty(), "a learner proposes nothing");
            let forwards = std::mem::take(&mut learner.forward);
            for forwarded in forwards {
                self.leader.step(
                    self.clock(),
                    Input::Forwarded {
                        from: LEARNER_SID,
                        forwarded,
                    },
                    &mut leader,
                );
            }
            for refused in std::mem::take(&mut leader.refused) {
                assert_eq!(refused.server, LEARNER_SID);
                self.learner.step(
                    self.clock(),
                    Input::Moved {
                        session_id: refused.session_id,
                        cxid: refused.cxid,
                    },
                    &mut learner,
                );
            }
            seen.leader.append(&mut leader.outputs);
            seen.learner.append(&mut learner.outputs);
            if leader.append.is_empty() {
                return seen;
            }
            let mut txns = std::mem::take(&mut leader.append);
            let digest = self.leader.proposed_digest();
            self.leader.seal_batch();
            let zxid = txns.last().expect("not empty").zxid;
            self.log.extend(txns.iter().cloned());
            self.leader
                .step(self.clock(), Input::Committed { zxid }, &mut leader);
            if let Some(tamper) = self.tamper {
                tamper(&mut txns);
            }
            self.learner.step(
                self.clock(),
                Input::Replicated { txns, digest },
                &mut learner,
            );
            self.divergences.extend(learner.diverged.take());
        }
        panic!("the pair did not settle");
    }

    fn on_learner(&mut self, input: Input) -> Seen {
        let mut actions = Actions::default();
        self.learner.step(self.clock(), input, &mut actions);
        self.settle(Actions::default(), actions)
    }

    fn on_leader(&mut self, input: Input) -> Seen {
        let mut actions = Actions::default();
        self.leader.step(self.clock(), input, &mut actions);
        self.settle(actions, Actions::default())
    }
}

fn connect_request(session_id: i64, passwd: Vec<u8>) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 10_000,
        session_id,
        passwd,
        read_only: Some(false),
    }
}

fn connect_input(conn: ConnId, session_id: i64, passwd: Vec<u8>) -> Input {
    Input::Connect {
        conn,
        request: connect_request(session_id, passwd),
        auth_ids: vec![Id::new("ip", "127.0.0.1")],
    }
}

fn established(outputs: &[Output], conn: ConnId) -> Option<i64> {
    outputs.iter().find_map(|o| match o {
        Output::Established {
            conn: c,
            session_id,
            ..
        } if *c == conn => Some(*session_id),
        _ => None,
    })
}

/// Frames sent to `conn`: (is_reply, frame).
fn frames(outputs: &[Output], conn: ConnId) -> Vec<(bool, Vec<u8>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                conn: c,
                frame,
                reply,
                ..
            } if *c == conn => Some((*reply, frame.clone())),
            _ => None,
        })
        .collect()
}

fn closed(outputs: &[Output], conn: ConnId) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, Output::Close { conn: c, .. } if *c == conn))
}

fn request(conn: ConnId, xid: i32, request: Request) -> Input {
    Input::Request { conn, xid, request }
}

fn assert_same_trees(pair: &Pair) {
    let (a, b) = (pair.leader.released(), pair.learner.released());
    assert_eq!(a.last_zxid(), b.last_zxid());
    let mut paths_a: Vec<_> = a.paths().map(|(p, n)| (p, n.stat())).collect();
    let mut paths_b: Vec<_> = b.paths().map(|(p, n)| (p, n.stat())).collect();
    paths_a.sort_by(|x, y| x.0.cmp(y.0));
    paths_b.sort_by(|x, y| x.0.cmp(y.0));
    assert_eq!(paths_a, paths_b);
    assert_eq!(
        pair.leader.committed_sessions(),
        pair.learner.committed_sessions()
    );
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.digest(), a.recompute_digest());
    assert!(pair.divergences.is_empty());
}

#[test]
fn a_session_created_on_a_learner_is_established_when_its_creation_commits() {
    let mut pair = Pair::new();
    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        connect_input(LEARNER_CONN, 0, vec![0; 16]),
        &mut actions,
    );
    assert!(
        established(&actions.outputs, LEARNER_CONN).is_none(),
        "nothing before the leader commits it"
    );
    assert_eq!(actions.forward.len(), 1);
    let seen = pair.settle(Actions::default(), actions);
    let session = established(&seen.learner, LEARNER_CONN).expect("established");
    assert_eq!(session >> 56, 2, "the id carries the learner's server id");
    assert!(
        pair.leader.sessions().get(session).is_some(),
        "the leader tracks it"
    );
    assert_same_trees(&pair);
}

#[test]
fn writes_on_a_learner_are_answered_in_order_after_the_events_they_fire() {
    let mut pair = Pair::new();
    let session = {
        let seen = pair.on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]));
        established(&seen.learner, LEARNER_CONN).unwrap()
    };
    let watcher = {
        let seen = pair.on_learner(connect_input(LEARNER_CONN_2, 0, vec![0; 16]));
        established(&seen.learner, LEARNER_CONN_2).unwrap()
    };
    assert_ne!(session, watcher);
    pair.on_learner(request(LEARNER_CONN, 1, create_request("/a", b"1", 0)));
    // The watcher reads /a with a watch on the learner; the writer changes it there.
    let seen = pair.on_learner(request(LEARNER_CONN_2, 1, get_data("/a", true)));
    assert_eq!(frames(&seen.learner, LEARNER_CONN_2).len(), 1);

    let mut actions = Actions::default();
    for (xid, value) in [(2, b"2"), (3, b"3")] {
        pair.learner.step(
            pair.clock(),
            request(LEARNER_CONN, xid, set_data("/a", value)),
            &mut actions,
        );
    }
    // A read behind the writes waits for them and sees the last one.
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN, 4, get_data("/a", false)),
        &mut actions,
    );
    assert!(frames(&actions.outputs, LEARNER_CONN).is_empty());
    let seen = pair.settle(Actions::default(), actions);
    let replies = frames(&seen.learner, LEARNER_CONN);
    let xids: Vec<i32> = replies
        .iter()
        .map(|(_, f)| decode(f, OpCode::SetData).0.xid)
        .collect();
    assert_eq!(xids, vec![2, 3, 4]);
    let (header, response) = decode(&replies[2].1, OpCode::GetData);
    assert_eq!(header.zxid, pair.learner.released().last_zxid());
    match response {
        Response::GetData { data, .. } => assert_eq!(data.as_deref(), Some(&b"3"[..])),
        other => panic!("{other:?}"),
    }
    // The watcher heard of the change, as an event (not a reply).
    let events = frames(&seen.learner, LEARNER_CONN_2);
    assert_eq!(events.len(), 1);
    assert!(!events[0].0);
    let mut r = Reader::new(&events[0].1[4..]);
    let _ = ReplyHeader::decode(&mut r).unwrap();
    let event = WatcherEvent::decode(&mut r).unwrap();
    assert_eq!(event.event_type, EventType::NodeDataChanged.code());
    // The event left before the reply of the write that fired it.
    let event_at = seen
        .learner
        .iter()
        .position(
            |o| matches!(o, Output::Send { conn, reply: false, .. } if *conn == LEARNER_CONN_2),
        )
        .unwrap();
    let reply_at = seen
        .learner
        .iter()
        .position(|o| matches!(o, Output::Send { conn, reply: true, .. } if *conn == LEARNER_CONN))
        .unwrap();
    assert!(event_at < reply_at);
    assert_same_trees(&pair);
}

#[test]
fn a_read_queued_between_two_writes_of_one_replicated_batch_sees_only_the_first() {
    let mut pair = Pair::new();
    pair.on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]));
    pair.on_learner(request(LEARNER_CONN, 1, create_request("/a", b"0", 0)));
    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN, 2, set_data("/a", b"first")),
        &mut actions,
    );
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN, 3, get_data("/a", false)),
        &mut actions,
    );
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN, 4, set_data("/a", b"second")),
        &mut actions,
    );
    let seen = pair.settle(Actions::default(), actions);
    let replies = frames(&seen.learner, LEARNER_CONN);
    assert_eq!(replies.len(), 3);
    match decode(&replies[1].1, OpCode::GetData).1 {
        Response::GetData { data, .. } => assert_eq!(data.as_deref(), Some(&b"first"[..])),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_session_moves_between_leader_and_learner_with_its_ephemerals() {
    let mut pair = Pair::new();
    let seen = pair.on_leader(connect_input(LEADER_CONN, 0, vec![0; 16]));
    let session = established(&seen.leader, LEADER_CONN).unwrap();
    pair.on_leader(request(
        LEADER_CONN,
        1,
        create_request("/e", b"", rzk_proto::CreateMode::Ephemeral as i32),
    ));
    let passwd = pair.leader.sessions().get(session).unwrap().passwd.to_vec();
    // Re-attach on the learner: it learned the session from the committed createSession.
    let seen = pair.on_learner(connect_input(LEARNER_CONN, session, passwd));
    assert_eq!(established(&seen.learner, LEARNER_CONN), Some(session));
    // Its close goes through the leader; the ephemeral goes on both.
    let seen = pair.on_learner(request(LEARNER_CONN, 2, Request::CloseSession));
    assert!(closed(&seen.learner, LEARNER_CONN));
    assert!(pair.learner.released().get("/e").is_none());
    assert!(pair.leader.sessions().get(session).is_none());
    assert!(pair.learner.sessions().get(session).is_none());
    assert_same_trees(&pair);
}

#[test]
fn only_the_leader_expires_sessions_and_learner_heartbeats_keep_them() {
    let mut pair = Pair::new();
    let kept = {
        let seen = pair.on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]));
        established(&seen.learner, LEARNER_CONN).unwrap()
    };
    let silent = {
        let seen = pair.on_learner(connect_input(LEARNER_CONN_2, 0, vec![0; 16]));
        established(&seen.learner, LEARNER_CONN_2).unwrap()
    };
    pair.on_learner(request(
        LEARNER_CONN_2,
        1,
        create_request("/gone", b"", rzk_proto::CreateMode::Ephemeral as i32),
    ));
    // Time passes; the learner's clients are heard from only on the learner.
    for step in 1..=30u64 {
        pair.now = 1_000 + step * 500;
        let touch_at = pair.now;
        pair.learner
            .sessions()
            .get(kept)
            .unwrap()
            .touch
            .store(touch_at, Ordering::Relaxed);
        let heard = pair.learner.local_sessions_heard_since(touch_at - 500);
        assert_eq!(heard, vec![kept]);
        pair.on_leader(Input::Touches { session_ids: heard });
        // A learner's tick expires nothing, however long it goes unheard.
        let seen = pair.on_learner(Input::Tick);
        assert!(seen.learner.is_empty() && seen.leader.is_empty());
        pair.on_leader(Input::Tick);
    }
    assert!(
        pair.leader.sessions().get(kept).is_some(),
        "heartbeats reached the leader"
    );
    assert!(
        pair.leader.sessions().get(silent).is_none(),
        "expired by the leader"
    );
    assert!(
        pair.learner.sessions().get(silent).is_none(),
        "its close was replicated"
    );
    assert!(pair.learner.released().get("/gone").is_none());
    assert_same_trees(&pair);
}

#[test]
fn a_write_forwarded_before_the_session_moved_and_arriving_after_is_refused() {
    let mut pair = Pair::new();
    let session = {
        let seen = pair.on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]));
        established(&seen.learner, LEARNER_CONN).unwrap()
    };
    let passwd = pair
        .learner
        .sessions()
        .get(session)
        .unwrap()
        .passwd
        .to_vec();
    // The learner forwards a write, but the client moves to the leader before it commits.
    let mut learner_actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN, 1, create_request("/x", b"", 0)),
        &mut learner_actions,
    );
    let forwarded = learner_actions.forward.pop().unwrap();
    let mut leader_actions = Actions::default();
    pair.leader.step(
        pair.clock(),
        connect_input(LEADER_CONN, session, passwd),
        &mut leader_actions,
    );
    assert_eq!(
        established(&leader_actions.outputs, LEADER_CONN),
        Some(session)
    );
    pair.leader.step(
        pair.clock(),
        Input::Forwarded {
            from: LEARNER_SID,
            forwarded,
        },
        &mut leader_actions,
    );
    pair.leader.step(
        pair.clock(),
        request(LEADER_CONN, 2, create_request("/y", b"", 0)),
        &mut leader_actions,
    );
    let seen = pair.settle(leader_actions, learner_actions);
    // The leader answers only its own request. The forwarded write reached it after the
    // session moved: refused (ZooKeeper's SessionMoved), and the learner closes the
    // connection it came from instead of answering.
    let leader_replies = frames(&seen.leader, LEADER_CONN);
    assert_eq!(
        leader_replies.len(),
        2,
        "connect response and the reply to xid 2"
    );
    assert_eq!(decode(&leader_replies[1].1, OpCode::Create).0.xid, 2);
    assert!(frames(&seen.learner, LEARNER_CONN).is_empty());
    assert!(closed(&seen.learner, LEARNER_CONN));
    assert!(!exists(&pair.leader, "/x") && exists(&pair.leader, "/y"));
    assert_same_trees(&pair);
}

#[test]
fn a_role_change_drops_uncommitted_txns_and_numbers_in_the_new_epoch() {
    let mut pair = Pair::new();
    pair.on_leader(connect_input(LEADER_CONN, 0, vec![0; 16]));
    pair.on_leader(request(LEADER_CONN, 1, create_request("/kept", b"", 0)));
    let mut actions = Actions::default();
    pair.leader.step(
        pair.clock(),
        request(LEADER_CONN, 2, create_request("/lost", b"", 0)),
        &mut actions,
    );
    assert_eq!(actions.append.len(), 1, "prepped, never committed");
    // The leader loses its quorum; the learner is elected in epoch 1.
    let mut actions = Actions::default();
    pair.leader.become_learner(&mut actions);
    assert!(closed(&actions.outputs, LEADER_CONN));
    assert_eq!(pair.leader.outstanding_count(), 0);
    let mut actions = Actions::default();
    pair.learner.become_leader(1, &mut actions);
    std::mem::swap(&mut pair.leader, &mut pair.learner);
    let seen = pair.on_leader(connect_input(LEADER_CONN, 0, vec![0; 16]));
    let zxid = seen
        .leader
        .iter()
        .find_map(|o| match o {
            Output::Send { conn, zxid, .. } if *conn == LEADER_CONN => Some(*zxid),
            _ => None,
        })
        .unwrap();
    assert_eq!(rzk_proto::Zxid::from_i64(zxid), rzk_proto::Zxid::new(1, 1));
    assert!(pair.leader.released().get("/kept").is_some());
    assert!(pair.learner.released().get("/lost").is_none());
    pair.on_leader(request(LEADER_CONN, 1, create_request("/new", b"", 0)));
    assert_same_trees(&pair);
}

#[test]
fn a_learner_that_applies_something_else_reports_the_divergence() {
    let mut pair = Pair::new();
    pair.on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]));
    pair.on_learner(request(LEARNER_CONN, 1, create_request("/a", b"1", 0)));
    assert!(pair.divergences.is_empty());
    // The learner applies a value the leader never wrote.
    pair.tamper = Some(|txns| {
        for txn in txns {
            if let TxnBody::SetData { data, .. } = &mut txn.body {
                *data = Some(b"not what the leader wrote".to_vec());
            }
        }
    });
    pair.on_learner(request(LEARNER_CONN, 2, set_data("/a", b"2")));
    let divergence = pair.divergences.first().expect("detected");
    assert_eq!(divergence.zxid, pair.leader.released().last_zxid());
    assert_eq!(divergence.leaders, pair.leader.released().digest());
    assert_eq!(divergence.ours, pair.learner.released().digest());
}

#[test]
fn the_digest_log_keeps_every_128th_zxid_on_leader_and_learner_alike() {
    let mut pair = Pair::new();
    pair.on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]));
    for xid in 1..=300 {
        pair.on_learner(request(
            LEARNER_CONN,
            xid,
            create_request(&format!("/n{xid}"), b"v", 0),
        ));
    }
    let leader: Vec<(i64, u64)> = pair.leader.digest_log().collect();
    let learner: Vec<(i64, u64)> = pair.learner.digest_log().collect();
    assert_eq!(
        leader.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![128, 256]
    );
    assert_eq!(leader, learner);
    assert_same_trees(&pair);
}

/// A tree like `Tree::new()`'s whose history ends at `last`.
fn tree_at(last: rzk_proto::Zxid) -> Tree {
    let fresh = Tree::new();
    Tree::from_nodes(
        last.as_i64(),
        fresh.paths().map(|(p, n)| {
            (
                p.to_string(),
                n.stat(),
                n.data().map(<[u8]>::to_vec),
                n.acl().to_vec(),
            )
        }),
    )
    .unwrap()
}

fn first_appended_zxid(core: &mut Core) -> rzk_proto::Zxid {
    let mut actions = Actions::default();
    core.step(
        Now::both(1_000),
        connect_input(LEADER_CONN, 0, vec![0; 16]),
        &mut actions,
    );
    rzk_proto::Zxid::from_i64(actions.append[0].zxid)
}

#[test]
fn the_counter_never_overflows_into_the_epoch() {
    use rzk_proto::Zxid;
    // Standalone at the end of the counter: it moves to the next epoch itself.
    let mut core = Core::new(config(1), tree_at(Zxid::new(0, u32::MAX)), Now::both(1_000));
    assert_eq!(first_appended_zxid(&mut core), Zxid::new(1, 1));
    // A leader's epoch comes from its quorum: after a rollover it numbers from there.
    let mut core = Core::new(config(1), tree_at(Zxid::new(3, 7)), Now::both(1_000));
    core.become_leader(4, &mut Actions::default());
    assert_eq!(first_appended_zxid(&mut core), Zxid::new(4, 1));
    core.set_epoch(5, &mut Actions::default());
    let mut actions = Actions::default();
    core.step(
        Now::both(1_000),
        connect_input(LEADER_CONN + 1, 0, vec![0; 16]),
        &mut actions,
    );
    assert_eq!(
        Zxid::from_i64(actions.append[0].zxid),
        Zxid::new(5, 1),
        "the txn after a rollover starts the new epoch"
    );
}

/// Both cores as servers of an ensemble: syncs are quorum rounds.
fn ensemble_pair() -> Pair {
    let mut pair = Pair::new();
    pair.leader.join_ensemble(u32::MAX - 1);
    pair.learner.join_ensemble(u32::MAX - 1);
    pair
}

fn xids(outputs: &[Output], conn: ConnId) -> Vec<i32> {
    frames(outputs, conn)
        .iter()
        .filter(|(reply, _)| *reply)
        .map(|(_, f)| decode(f, OpCode::Sync).0.xid)
        .collect()
}

#[test]
fn a_sync_waits_for_its_quorum_round_and_holds_what_follows_in_order() {
    let mut pair = ensemble_pair();
    pair.on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]));
    pair.on_learner(request(LEARNER_CONN, 1, create_request("/a", b"0", 0)));
    let mut actions = Actions::default();
    let steps = [
        (2, set_data("/a", b"1")),
        (
            3,
            Request::Sync {
                path: "/a".to_owned(),
            },
        ),
        (4, set_data("/a", b"2")),
        (5, get_data("/a", false)),
    ];
    for (xid, r) in steps {
        pair.learner
            .step(pair.clock(), request(LEARNER_CONN, xid, r), &mut actions);
    }
    let syncs = std::mem::take(&mut actions.syncs);
    assert_eq!(syncs.len(), 1, "one round for the driver");
    assert_eq!(
        actions.forward.len(),
        1,
        "the write behind the sync is held, not forwarded before the round is over"
    );
    let seen = pair.settle(Actions::default(), actions);
    assert_eq!(xids(&seen.learner, LEARNER_CONN), vec![2]);

    let seen = pair.on_learner(Input::Synced {
        id: syncs[0],
        ok: true,
    });
    assert_eq!(xids(&seen.learner, LEARNER_CONN), vec![3, 4, 5]);
    let replies = frames(&seen.learner, LEARNER_CONN);
    match decode(&replies[2].1, OpCode::GetData).1 {
        Response::GetData { data, .. } => assert_eq!(data.as_deref(), Some(&b"2"[..])),
        other => panic!("{other:?}"),
    }
    assert_same_trees(&pair);
}

#[test]
fn a_sync_confirmed_before_the_write_ahead_of_it_is_answered_after_that_write() {
    let mut pair = ensemble_pair();
    pair.on_leader(connect_input(LEADER_CONN, 0, vec![0; 16]));
    let mut actions = Actions::default();
    pair.leader.step(
        pair.clock(),
        request(LEADER_CONN, 1, create_request("/a", b"0", 0)),
        &mut actions,
    );
    pair.leader.step(
        pair.clock(),
        request(
            LEADER_CONN,
            2,
            Request::Sync {
                path: "/".to_owned(),
            },
        ),
        &mut actions,
    );
    let id = actions.syncs[0];
    // The round ends before the create commits: the sync still answers after it.
    pair.leader
        .step(pair.clock(), Input::Synced { id, ok: true }, &mut actions);
    assert!(xids(&actions.outputs, LEADER_CONN).is_empty());
    pair.leader.step(
        pair.clock(),
        request(LEADER_CONN, 3, set_data("/a", b"1")),
        &mut actions,
    );
    let seen = pair.settle(actions, Actions::default());
    assert_eq!(xids(&seen.leader, LEADER_CONN), vec![1, 2, 3]);
    assert_same_trees(&pair);
}

#[test]
fn an_unconfirmed_sync_closes_the_connection_and_answers_nothing_after_it() {
    let mut pair = ensemble_pair();
    pair.on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]));
    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        request(
            LEARNER_CONN,
            1,
            Request::Sync {
                path: "/".to_owned(),
            },
        ),
        &mut actions,
    );
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN, 2, get_data("/", false)),
        &mut actions,
    );
    let id = actions.syncs[0];
    assert!(xids(&actions.outputs, LEARNER_CONN).is_empty());
    let seen = pair.on_learner(Input::Synced { id, ok: false });
    assert!(closed(&seen.learner, LEARNER_CONN));
    assert!(
        xids(&seen.learner, LEARNER_CONN).is_empty(),
        "a client must not take an unconfirmed sync for a current view"
    );
}

#[test]
fn a_leader_numbers_nothing_past_the_counter_limit_and_expires_in_the_next_epoch() {
    use rzk_proto::Zxid;
    let mut core = Core::new(config(1), tree_at(Zxid::new(3, 7)), Now::both(1_000));
    core.join_ensemble(3);
    core.become_leader(4, &mut Actions::default());
    assert_eq!(core.room(), 3);
    let mut actions = Actions::default();
    for conn in 0..3 {
        core.step(
            Now::both(1_000),
            connect_input(LEADER_CONN + conn, 0, vec![0; 16]),
            &mut actions,
        );
    }
    let zxids: Vec<Zxid> = actions
        .append
        .iter()
        .map(|t| Zxid::from_i64(t.zxid))
        .collect();
    assert_eq!(zxids.last(), Some(&Zxid::new(4, 3)));
    assert_eq!(core.room(), 0);
    core.seal_batch();
    core.step(
        Now::both(1_000),
        Input::Committed {
            zxid: Zxid::new(4, 3).as_i64(),
        },
        &mut actions,
    );
    // Every session's timeout passes while the epoch is full: expiry waits for room.
    let mut actions = Actions::default();
    core.step(Now::both(100_000), Input::Tick, &mut actions);
    assert!(actions.append.is_empty());
    core.set_epoch(5, &mut Actions::default());
    assert_eq!(core.room(), 3);
    core.step(Now::both(100_100), Input::Tick, &mut actions);
    let closes: Vec<Zxid> = actions
        .append
        .iter()
        .filter(|t| matches!(t.body, TxnBody::CloseSession))
        .map(|t| Zxid::from_i64(t.zxid))
        .collect();
    assert_eq!(
        closes,
        vec![Zxid::new(5, 1), Zxid::new(5, 2), Zxid::new(5, 3)]
    );
    assert_eq!(core.room(), 0);
    assert_eq!(
        Core::new(config(1), Tree::new(), Now::both(0)).room(),
        u32::MAX
    );
}

fn exists(core: &Core, path: &str) -> bool {
    core.released().get(path).is_some()
}

fn passwd(core: &Core, session: i64) -> Vec<u8> {
    core.sessions().get(session).unwrap().passwd.to_vec()
}

#[test]
fn a_write_on_the_learner_connection_a_session_left_for_the_leader_is_refused_and_closes_it() {
    let mut pair = Pair::new();
    let session = {
        let seen = pair.on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]));
        established(&seen.learner, LEARNER_CONN).unwrap()
    };
    // A write the learner forwarded before the client moved is still on its way.
    let mut learner_actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN, 1, create_request("/before", b"", 0)),
        &mut learner_actions,
    );
    let seen = pair.on_leader(connect_input(
        LEADER_CONN,
        session,
        passwd(&pair.leader, session),
    ));
    assert_eq!(established(&seen.leader, LEADER_CONN), Some(session));
    // Then the old connection sends another; both arrive after the move.
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN, 2, create_request("/stale", b"", 0)),
        &mut learner_actions,
    );
    let seen = pair.settle(Actions::default(), learner_actions);
    assert!(
        closed(&seen.learner, LEARNER_CONN),
        "the old connection closes"
    );
    assert!(
        frames(&seen.learner, LEARNER_CONN).is_empty(),
        "and is not answered"
    );
    assert!(!exists(&pair.leader, "/before") && !exists(&pair.leader, "/stale"));
    // The session goes on where it moved; the learner's queue for it is not stuck.
    let seen = pair.on_leader(request(LEADER_CONN, 3, create_request("/after", b"", 0)));
    assert_eq!(frames(&seen.leader, LEADER_CONN).len(), 1);
    assert!(exists(&pair.learner, "/after"));
    assert_same_trees(&pair);
}

#[test]
fn a_write_answered_before_the_move_is_answered_and_the_refused_one_after_it_closes() {
    let mut pair = Pair::new();
    let session = {
        let seen = pair.on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]));
        established(&seen.learner, LEARNER_CONN).unwrap()
    };
    // The first write reaches the leader and is proposed, but not yet committed, when the
    // client moves and the second is refused: the first is still answered, then the close.
    let mut learner_actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN, 1, create_request("/first", b"", 0)),
        &mut learner_actions,
    );
    let mut leader_actions = Actions::default();
    for forwarded in learner_actions.forward.drain(..) {
        pair.leader.step(
            pair.clock(),
            Input::Forwarded {
                from: LEARNER_SID,
                forwarded,
            },
            &mut leader_actions,
        );
    }
    pair.leader.step(
        pair.clock(),
        connect_input(LEADER_CONN, session, passwd(&pair.leader, session)),
        &mut leader_actions,
    );
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN, 2, create_request("/second", b"", 0)),
        &mut learner_actions,
    );
    let seen = pair.settle(leader_actions, learner_actions);
    let replies = frames(&seen.learner, LEARNER_CONN);
    assert_eq!(replies.len(), 1, "the write the leader took is answered");
    assert_eq!(decode(&replies[0].1, OpCode::Create).0.xid, 1);
    let reply_at = seen
        .learner
        .iter()
        .position(|o| matches!(o, Output::Send { conn, .. } if *conn == LEARNER_CONN))
        .unwrap();
    let close_at = seen
        .learner
        .iter()
        .position(|o| matches!(o, Output::Close { conn, .. } if *conn == LEARNER_CONN))
        .expect("then the connection closes");
    assert!(reply_at < close_at);
    assert!(exists(&pair.leader, "/first") && !exists(&pair.leader, "/second"));
    assert_same_trees(&pair);
}

#[test]
fn a_write_on_the_leader_connection_a_session_left_for_a_learner_is_refused_and_closes_it() {
    let mut pair = Pair::new();
    let session = {
        let seen = pair.on_leader(connect_input(LEADER_CONN, 0, vec![0; 16]));
        established(&seen.leader, LEADER_CONN).unwrap()
    };
    let seen = pair.on_learner(connect_input(
        LEARNER_CONN,
        session,
        passwd(&pair.learner, session),
    ));
    assert_eq!(established(&seen.learner, LEARNER_CONN), Some(session));
    let seen = pair.on_leader(request(LEADER_CONN, 5, create_request("/stale", b"", 0)));
    assert!(closed(&seen.leader, LEADER_CONN));
    assert!(frames(&seen.leader, LEADER_CONN).is_empty());
    assert!(!exists(&pair.leader, "/stale"));
    let seen = pair.on_learner(request(LEARNER_CONN, 6, create_request("/moved", b"", 0)));
    assert_eq!(frames(&seen.learner, LEARNER_CONN).len(), 1);
    assert!(exists(&pair.leader, "/moved"));
    // Closing the session is never refused: it is the session's last word wherever sent.
    assert_same_trees(&pair);
}

#[test]
fn a_new_leader_knows_no_owner_and_takes_the_first_server_it_hears_from() {
    let mut pair = Pair::new();
    let session = {
        let seen = pair.on_leader(connect_input(LEADER_CONN, 0, vec![0; 16]));
        established(&seen.leader, LEADER_CONN).unwrap()
    };
    // The leader is re-elected: owners are not replicated and start empty.
    pair.leader.become_leader(2, &mut Actions::default());
    let write = request_after_attach(&mut pair, session);
    let seen = pair.on_learner(write);
    assert_eq!(frames(&seen.learner, LEARNER_CONN).len(), 1);
    assert!(exists(&pair.leader, "/on-learner"));
}

/// Attaches `session` on the learner without the leader hearing of it (a lost attach) and
/// returns a write for it there.
fn request_after_attach(pair: &mut Pair, session: i64) -> Input {
    let mut actions = Actions::default();
    let passwd = passwd(&pair.learner, session);
    pair.learner.step(
        pair.clock(),
        connect_input(LEARNER_CONN, session, passwd),
        &mut actions,
    );
    assert_eq!(established(&actions.outputs, LEARNER_CONN), Some(session));
    request(LEARNER_CONN, 1, create_request("/on-learner", b"", 0))
}

fn read_only_connect(conn: ConnId, session_id: i64, passwd: Vec<u8>, read_only: bool) -> Input {
    Input::Connect {
        conn,
        request: ConnectRequest {
            read_only: Some(read_only),
            ..connect_request(session_id, passwd)
        },
        auth_ids: vec![Id::new("ip", "127.0.0.1")],
    }
}

#[test]
fn a_read_only_learner_serves_reads_refuses_writes_and_forgets_its_sessions_when_it_rejoins() {
    let mut pair = Pair::new();
    pair.on_leader(connect_input(LEADER_CONN, 0, vec![0; 16]));
    pair.on_leader(request(LEADER_CONN, 1, create_request("/a", b"v", 0)));
    let global = established(
        &pair
            .on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]))
            .learner,
        LEARNER_CONN,
    )
    .unwrap();
    let global_passwd = passwd(&pair.learner, global);

    let mut actions = Actions::default();
    pair.learner.set_read_only(true, &mut actions);
    assert!(
        closed(&actions.outputs, LEARNER_CONN),
        "entering it closes every connection"
    );

    // A client that did not ask for read-only is refused.
    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        read_only_connect(LEARNER_CONN, 0, vec![0; 16], false),
        &mut actions,
    );
    assert!(closed(&actions.outputs, LEARNER_CONN));
    assert!(established(&actions.outputs, LEARNER_CONN).is_none());

    // A read-only client gets a session of this server's, with no txn.
    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        read_only_connect(LEARNER_CONN_2, 0, vec![0; 16], true),
        &mut actions,
    );
    let local = established(&actions.outputs, LEARNER_CONN_2).expect("a local session");
    assert!(actions.forward.is_empty(), "nothing goes to a leader");
    let response =
        ConnectResponse::decode(&frames(&actions.outputs, LEARNER_CONN_2)[0].1[4..]).unwrap();
    assert_eq!(response.read_only, Some(true));

    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN_2, 1, get_data("/a", false)),
        &mut actions,
    );
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN_2, 2, set_data("/a", b"w")),
        &mut actions,
    );
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN_2, 3, Request::Sync { path: "/".into() }),
        &mut actions,
    );
    assert!(actions.forward.is_empty() && actions.syncs.is_empty());
    let replies = frames(&actions.outputs, LEARNER_CONN_2);
    let errs: Vec<i32> = replies
        .iter()
        .map(|(_, f)| decode(f, OpCode::GetData).0.err)
        .collect();
    assert_eq!(
        errs,
        vec![
            0,
            ErrorCode::NotReadOnly.code(),
            ErrorCode::NotReadOnly.code()
        ]
    );

    // A global session it knows may re-attach, read-only.
    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        read_only_connect(LEARNER_CONN, global, global_passwd, true),
        &mut actions,
    );
    assert_eq!(established(&actions.outputs, LEARNER_CONN), Some(global));

    // Rejoining closes the connections and forgets the local session, not the global one.
    let mut actions = Actions::default();
    pair.learner.set_read_only(false, &mut actions);
    assert!(closed(&actions.outputs, LEARNER_CONN) && closed(&actions.outputs, LEARNER_CONN_2));
    assert!(pair.learner.sessions().get(local).is_none());
    assert!(pair.learner.sessions().get(global).is_some());
    assert_same_trees(&pair);
}

#[test]
fn a_read_only_learner_expires_its_own_sessions_and_not_the_global_ones() {
    let mut pair = Pair::new();
    let global = established(
        &pair
            .on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]))
            .learner,
        LEARNER_CONN,
    )
    .unwrap();
    pair.learner.set_read_only(true, &mut Actions::default());
    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        read_only_connect(LEARNER_CONN_2, 0, vec![0; 16], true),
        &mut actions,
    );
    let local = established(&actions.outputs, LEARNER_CONN_2).unwrap();
    pair.now += 60_000;
    let mut actions = Actions::default();
    pair.learner.step(pair.clock(), Input::Tick, &mut actions);
    assert_eq!(
        actions.expired.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![local]
    );
    assert!(closed(&actions.outputs, LEARNER_CONN_2));
    assert!(actions.forward.is_empty() && actions.append.is_empty());
    assert!(
        pair.learner.sessions().get(global).is_some(),
        "the leader decides that one"
    );
}

/// A pair whose servers run local sessions (localSessionsEnabled; `upgrade`:
/// localSessionsUpgradingEnabled).
fn local_sessions_pair(upgrade: bool) -> Pair {
    let mut pair = Pair::new();
    for core in [&mut pair.leader, &mut pair.learner] {
        core.config.local_sessions = true;
        core.config.upgrade_local_sessions = upgrade;
        core.join_ensemble(u32::MAX - 1);
    }
    pair
}

fn reply_errs(outputs: &[Output], conn: ConnId) -> Vec<i32> {
    frames(outputs, conn)
        .iter()
        .filter(|(reply, _)| *reply)
        .map(|(_, f)| ReplyHeader::decode(&mut Reader::new(&f[4..])).unwrap().err)
        .collect()
}

#[test]
fn a_local_session_lives_on_its_server_alone_and_closes_with_no_txn() {
    let mut pair = local_sessions_pair(true);
    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        connect_input(LEARNER_CONN, 0, vec![0; 16]),
        &mut actions,
    );
    let session = established(&actions.outputs, LEARNER_CONN).expect("established at once");
    assert!(
        actions.forward.is_empty(),
        "no createSession for the leader"
    );
    assert_eq!(pair.learner.local_session_count(), 1);
    assert!(pair.leader.sessions().get(session).is_none());
    // Its writes go to the leader, which takes the learner's word for the session.
    let seen = pair.on_learner(request(LEARNER_CONN, 1, create_request("/p", b"", 0)));
    assert_eq!(reply_errs(&seen.learner, LEARNER_CONN), vec![0]);
    assert!(exists(&pair.leader, "/p"));
    let zxid = pair.leader.released().last_zxid();
    // Closing it is this server's business alone.
    let seen = pair.on_learner(request(LEARNER_CONN, 2, Request::CloseSession));
    assert_eq!(reply_errs(&seen.learner, LEARNER_CONN), vec![0]);
    assert!(closed(&seen.learner, LEARNER_CONN));
    assert_eq!(pair.leader.released().last_zxid(), zxid, "no txn");
    assert!(pair.learner.sessions().get(session).is_none());
    assert_eq!(pair.learner.local_session_count(), 0);
    // Another server does not know it: it cannot move.
    let mut actions = Actions::default();
    pair.leader.step(
        pair.clock(),
        connect_input(LEADER_CONN, session, vec![0; 16]),
        &mut actions,
    );
    assert!(established(&actions.outputs, LEADER_CONN).is_none());
    assert_same_trees(&pair);
}

#[test]
fn an_ephemeral_upgrades_a_local_session_to_a_global_one_first() {
    let mut pair = local_sessions_pair(true);
    let session = established(
        &pair
            .on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]))
            .learner,
        LEARNER_CONN,
    )
    .unwrap();
    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN, 1, create_request("/e", b"", 1)),
        &mut actions,
    );
    let ops: Vec<bool> = actions
        .forward
        .iter()
        .map(|f| matches!(f.op, ForwardedOp::CreateSession { .. }))
        .collect();
    assert_eq!(ops, vec![true, false], "the createSession goes first");
    let seen = pair.settle(Actions::default(), actions);
    assert_eq!(reply_errs(&seen.learner, LEARNER_CONN), vec![0]);
    let node = pair.leader.released().get("/e").expect("created");
    assert_eq!(node.stat().ephemeral_owner, session);
    assert_eq!(pair.learner.local_session_count(), 0);
    assert!(pair.leader.sessions().get(session).is_some(), "global now");
    assert!(pair
        .learner
        .committed_sessions()
        .iter()
        .any(|s| s.id == session));
    assert_same_trees(&pair);
}

#[test]
fn without_upgrading_an_ephemeral_on_a_local_session_fails() {
    let mut pair = local_sessions_pair(false);
    established(
        &pair
            .on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]))
            .learner,
        LEARNER_CONN,
    )
    .unwrap();
    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        request(LEARNER_CONN, 1, create_request("/e", b"", 1)),
        &mut actions,
    );
    assert!(actions.forward.is_empty());
    assert_eq!(
        reply_errs(&actions.outputs, LEARNER_CONN),
        vec![ErrorCode::EphemeralOnLocalSession.code()]
    );
    assert_eq!(pair.learner.local_session_count(), 1);
}

#[test]
fn a_local_session_expires_on_its_server_with_no_txn() {
    let mut pair = local_sessions_pair(true);
    let session = established(
        &pair
            .on_learner(connect_input(LEARNER_CONN, 0, vec![0; 16]))
            .learner,
        LEARNER_CONN,
    )
    .unwrap();
    pair.now += 60_000;
    let mut actions = Actions::default();
    pair.learner.step(pair.clock(), Input::Tick, &mut actions);
    assert_eq!(
        actions.expired.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![session]
    );
    assert!(closed(&actions.outputs, LEARNER_CONN));
    assert!(actions.forward.is_empty());
    assert_eq!(pair.learner.local_session_count(), 0);
    assert!(pair.learner.local_sessions_heard_since(0).is_empty());
}

/// A leader's local session making its first ephemeral with one txn of room left in the
/// epoch: the createSession takes that room, the create waits for it to commit, finds no
/// room, and is numbered in the next epoch; nothing is numbered past the limit and the
/// client's reply comes in order.
#[test]
fn an_upgrade_at_the_end_of_an_epoch_numbers_the_write_in_the_next_one() {
    use rzk_proto::Zxid;
    let mut leader_config = config(1);
    leader_config.local_sessions = true;
    leader_config.upgrade_local_sessions = true;
    let mut core = Core::new(leader_config, tree_at(Zxid::new(3, 7)), Now::both(1_000));
    core.join_ensemble(2);
    core.become_leader(4, &mut Actions::default());
    let mut actions = Actions::default();
    core.step(
        Now::both(1_000),
        connect_input(LEADER_CONN, 0, vec![0; 16]),
        &mut actions,
    );
    let session = established(&actions.outputs, LEADER_CONN).expect("a local session, at once");
    assert!(actions.append.is_empty());
    core.step(
        Now::both(1_000),
        request(LEADER_CONN, 1, create_request("/p", b"", 0)),
        &mut actions,
    );
    assert_eq!(core.room(), 1);
    let mut actions = Actions::default();
    core.step(
        Now::both(1_000),
        request(LEADER_CONN, 2, create_request("/e", b"", 1)),
        &mut actions,
    );
    let bodies: Vec<bool> = actions
        .append
        .iter()
        .map(|t| matches!(t.body, TxnBody::CreateSession { .. }))
        .collect();
    assert_eq!(bodies, vec![true], "only the createSession fits");
    assert_eq!(core.room(), 0);
    core.seal_batch();
    let mut actions = Actions::default();
    core.step(
        Now::both(1_000),
        Input::Committed {
            zxid: Zxid::new(4, 2).as_i64(),
        },
        &mut actions,
    );
    assert!(actions.append.is_empty(), "no room: the create waits");
    assert_eq!(xids(&actions.outputs, LEADER_CONN), vec![1]);
    let mut actions = Actions::default();
    core.set_epoch(5, &mut actions);
    let zxids: Vec<Zxid> = actions
        .append
        .iter()
        .map(|t| Zxid::from_i64(t.zxid))
        .collect();
    assert_eq!(zxids, vec![Zxid::new(5, 1)]);
    core.seal_batch();
    let mut actions = Actions::default();
    core.step(
        Now::both(1_000),
        Input::Committed {
            zxid: Zxid::new(5, 1).as_i64(),
        },
        &mut actions,
    );
    assert_eq!(xids(&actions.outputs, LEADER_CONN), vec![2]);
    assert_eq!(
        core.released().get("/e").unwrap().stat().ephemeral_owner,
        session
    );
}

/// A client re-attaches on a learner to a session created through the leader whose
/// createSession has not reached the learner yet (ZooKeeper's learner asks the leader,
/// REVALIDATE): the connect waits for a sync round, then is decided against the caught-up
/// table. A session unknown even then is refused.
#[test]
fn a_reattach_to_a_session_the_learner_has_not_applied_yet_waits_for_a_sync() {
    let mut pair = ensemble_pair();
    let mut leader = Actions::default();
    pair.leader.step(
        pair.clock(),
        connect_input(LEADER_CONN, 0, vec![0; 16]),
        &mut leader,
    );
    let txns = std::mem::take(&mut leader.append);
    let digest = pair.leader.proposed_digest();
    pair.leader.seal_batch();
    let zxid = txns.last().expect("a createSession").zxid;
    pair.leader
        .step(pair.clock(), Input::Committed { zxid }, &mut leader);
    let session = established(&leader.outputs, LEADER_CONN).expect("created on the leader");
    let passwd = passwd(&pair.leader, session);

    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        connect_input(LEARNER_CONN, session, passwd.clone()),
        &mut actions,
    );
    assert_eq!(actions.syncs.len(), 1, "one sync round before deciding");
    assert!(
        actions.outputs.is_empty(),
        "neither refused nor established yet: {:?}",
        actions.outputs
    );
    let id = actions.syncs[0];
    pair.learner.step(
        pair.clock(),
        Input::Replicated { txns, digest },
        &mut Actions::default(),
    );
    let mut actions = Actions::default();
    pair.learner
        .step(pair.clock(), Input::Synced { id, ok: true }, &mut actions);
    assert_eq!(established(&actions.outputs, LEARNER_CONN), Some(session));

    // A session nobody created: refused once the round is over.
    let mut actions = Actions::default();
    pair.learner.step(
        pair.clock(),
        connect_input(LEARNER_CONN + 1, 0x7777, passwd),
        &mut actions,
    );
    let id = actions.syncs[0];
    let mut actions = Actions::default();
    pair.learner
        .step(pair.clock(), Input::Synced { id, ok: true }, &mut actions);
    assert_eq!(established(&actions.outputs, LEARNER_CONN + 1), None);
    assert!(closed(&actions.outputs, LEARNER_CONN + 1));
}
