//! Goal: the standalone core keeps ZooKeeper's ordering and session rules.
//! Method: drive `Core` with inputs, deliver `Durable` by hand, decode the frames it
//! sends with the proto codec.

use super::*;
use std::collections::HashMap;

use rzk_proto::{decode_response, EventType, MultiOp, Reader, WatcherEvent};

const CONN: ConnId = 1;
const OTHER: ConnId = 2;

pub(super) fn config(seed: u64) -> CoreConfig {
    CoreConfig {
        limits: TimeoutLimits {
            min_ms: 4000,
            max_ms: 40000,
        },
        extended_types: true,
        container_check_interval_ms: 100,
        server_id: 0,
        seed,
        tick_ms: 1,
        local_sessions: false,
        upgrade_local_sessions: false,
        config_node: None,
    }
}

fn core() -> Core {
    Core::new(config(1), Tree::new(), Now::both(1_000))
}

fn connect(core: &mut Core, conn: ConnId, now: u64) -> i64 {
    let mut actions = Actions::default();
    core.step(
        Now::both(now),
        Input::Connect {
            conn,
            request: ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                timeout_ms: 10_000,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: Some(false),
            },
            auth_ids: vec![Id::new("ip", "127.0.0.1")],
        },
        &mut actions,
    );
    assert_eq!(actions.append.len(), 1, "createSession is a txn");
    let zxid = actions.append[0].zxid;
    actions.clear();
    core.step(Now::both(now), Input::Committed { zxid }, &mut actions);
    actions
        .outputs
        .iter()
        .find_map(|o| match o {
            Output::Established { session_id, .. } => Some(*session_id),
            _ => None,
        })
        .expect("established after durable")
}

/// Sends a request and makes everything durable; returns the frames sent to `conn`.
fn roundtrip(core: &mut Core, conn: ConnId, xid: i32, request: Request) -> Vec<Vec<u8>> {
    let mut actions = Actions::default();
    core.step(
        Now::both(2_000),
        Input::Request { conn, xid, request },
        &mut actions,
    );
    let mut frames = sent_to(&actions, conn);
    if let Some(last) = actions.append.last() {
        let zxid = last.zxid;
        actions.clear();
        core.step(Now::both(2_000), Input::Committed { zxid }, &mut actions);
        frames.extend(sent_to(&actions, conn));
    }
    frames
}

fn sent_to(actions: &Actions, conn: ConnId) -> Vec<Vec<u8>> {
    actions
        .outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { conn: c, frame, .. } if *c == conn => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn decode(frame: &[u8], op: OpCode) -> (ReplyHeader, Response) {
    let mut r = Reader::new(&frame[4..]);
    let header = ReplyHeader::decode(&mut r).unwrap();
    let response = if header.err == 0 || op == OpCode::Multi {
        decode_response(op, &mut r).unwrap()
    } else {
        Response::Empty
    };
    (header, response)
}

#[test]
fn nothing_is_visible_before_it_is_durable() {
    let mut core = core();
    connect(&mut core, CONN, 1_000);
    let mut actions = Actions::default();
    core.step(
        Now::both(1_500),
        Input::Request {
            conn: CONN,
            xid: 1,
            request: create_request("/a", b"x", 0),
        },
        &mut actions,
    );
    assert!(
        sent_to(&actions, CONN).is_empty(),
        "no reply before durable"
    );
    assert!(actions.publish.is_none());
    assert!(core.released().get("/a").is_none());
    let zxid = actions.append[0].zxid;
    actions.clear();
    core.step(Now::both(1_500), Input::Committed { zxid }, &mut actions);
    let frames = sent_to(&actions, CONN);
    assert_eq!(frames.len(), 1);
    let (header, response) = decode(&frames[0], OpCode::Create);
    assert_eq!(header.xid, 1);
    assert_eq!(header.zxid, zxid);
    assert_eq!(response, Response::Create { path: "/a".into() });
    assert!(actions.publish.unwrap().get("/a").is_some());
}

#[test]
fn a_read_behind_a_write_waits_for_it_and_sees_it() {
    let mut core = core();
    connect(&mut core, CONN, 1_000);
    let mut actions = Actions::default();
    core.step(
        Now::both(1_500),
        Input::Request {
            conn: CONN,
            xid: 1,
            request: create_request("/a", b"x", 0),
        },
        &mut actions,
    );
    core.step(
        Now::both(1_500),
        Input::Request {
            conn: CONN,
            xid: 2,
            request: Request::GetData {
                path: "/a".into(),
                watch: true,
            },
        },
        &mut actions,
    );
    assert!(sent_to(&actions, CONN).is_empty());
    let zxid = actions.append[0].zxid;
    actions.clear();
    core.step(Now::both(1_500), Input::Committed { zxid }, &mut actions);
    let frames = sent_to(&actions, CONN);
    assert_eq!(frames.len(), 2);
    let (h1, _) = decode(&frames[0], OpCode::Create);
    let (h2, r2) = decode(&frames[1], OpCode::GetData);
    assert_eq!((h1.xid, h2.xid), (1, 2));
    assert!(matches!(r2, Response::GetData { data: Some(d), .. } if d == b"x"));
}

#[test]
fn watch_event_precedes_the_reply_that_caused_it() {
    let mut core = core();
    connect(&mut core, CONN, 1_000);
    let frames = roundtrip(
        &mut core,
        CONN,
        1,
        Request::Exists {
            path: "/w".into(),
            watch: true,
        },
    );
    assert_eq!(
        decode(&frames[0], OpCode::Exists).0.err,
        ErrorCode::NoNode.code()
    );
    let frames = roundtrip(&mut core, CONN, 2, create_request("/w", b"", 0));
    assert_eq!(frames.len(), 2);
    let mut r = Reader::new(&frames[0][4..]);
    let header = ReplyHeader::decode(&mut r).unwrap();
    assert_eq!(header.xid, -1);
    let event = WatcherEvent::decode(&mut r).unwrap();
    assert_eq!(event.event_type, EventType::NodeCreated.code());
    assert_eq!(event.path, "/w");
    assert_eq!(decode(&frames[1], OpCode::Create).0.xid, 2);
}

#[test]
fn failed_multi_reports_ok_error_and_runtime_inconsistency() {
    let mut core = core();
    connect(&mut core, CONN, 1_000);
    let ops = vec![
        MultiOp::Create(rzk_proto::CreateRequest {
            op: OpCode::Create,
            path: "/m".into(),
            data: None,
            acl: rzk_proto::Acl::open_unsafe(),
            flags: 0,
            ttl_ms: -1,
        }),
        MultiOp::Delete {
            path: "/missing".into(),
            version: -1,
        },
        MultiOp::Check {
            path: "/m".into(),
            version: 0,
        },
    ];
    let frames = roundtrip(&mut core, CONN, 5, Request::Multi(ops));
    let (header, response) = decode(&frames[0], OpCode::Multi);
    assert_eq!(header.err, 0);
    assert_eq!(
        response,
        Response::Multi(vec![
            rzk_proto::MultiResult::Error { err: ErrorCode::Ok },
            rzk_proto::MultiResult::Error {
                err: ErrorCode::NoNode
            },
            rzk_proto::MultiResult::Error {
                err: ErrorCode::RuntimeInconsistency
            },
        ])
    );
    assert!(
        core.released().get("/m").is_none(),
        "a failed multi changes nothing"
    );
}

#[test]
fn sequential_names_come_from_parent_cversion() {
    let mut core = core();
    connect(&mut core, CONN, 1_000);
    roundtrip(&mut core, CONN, 1, create_request("/s", b"", 0));
    roundtrip(&mut core, CONN, 2, create_request("/s/x", b"", 0));
    roundtrip(
        &mut core,
        CONN,
        3,
        Request::Delete {
            path: "/s/x".into(),
            version: -1,
        },
    );
    let frames = roundtrip(&mut core, CONN, 4, create_request("/s/q-", b"", 2));
    let (_, response) = decode(&frames[0], OpCode::Create);
    assert_eq!(
        response,
        Response::Create {
            path: "/s/q-0000000001".into()
        }
    );
}

#[test]
fn expiry_deletes_ephemerals_and_notifies_watchers() {
    let mut core = core();
    let owner = connect(&mut core, CONN, 1_000);
    connect(&mut core, OTHER, 1_000);
    roundtrip(&mut core, CONN, 1, create_request("/e", b"", 1));
    assert_eq!(
        core.released().get("/e").unwrap().stat().ephemeral_owner,
        owner
    );
    roundtrip(
        &mut core,
        OTHER,
        1,
        Request::Exists {
            path: "/e".into(),
            watch: true,
        },
    );
    // Keep OTHER alive; let CONN's 10 s timeout pass.
    core.sessions()
        .get(core.session_of(OTHER).unwrap())
        .unwrap()
        .touch
        .store(20_000, Ordering::Relaxed);
    let mut actions = Actions::default();
    core.step(Now::both(20_000), Input::Tick, &mut actions);
    assert_eq!(actions.append.len(), 1);
    assert_eq!(actions.append[0].body, TxnBody::CloseSession);
    let zxid = actions.append[0].zxid;
    actions.clear();
    core.step(Now::both(20_000), Input::Committed { zxid }, &mut actions);
    assert!(core.released().get("/e").is_none());
    let events = sent_to(&actions, OTHER);
    assert_eq!(events.len(), 1);
    assert!(actions
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Close { conn, .. } if *conn == CONN)));
    assert!(core.sessions().get(owner).is_none());
}

/// A wall clock stepped forward by an hour (NTP, a resumed VM) expires nothing: expiry runs
/// on the monotonic clock. The txn times follow the wall clock.
#[test]
fn a_wall_clock_jump_expires_no_session() {
    let mut core = core();
    let session = connect(&mut core, CONN, 1_000);
    let mut actions = Actions::default();
    let jumped = Now {
        mono_ms: 2_000,
        wall_ms: 1_000 + 3_600_000,
    };
    core.step(jumped, Input::Tick, &mut actions);
    assert!(actions.append.is_empty(), "{:?}", actions.append);
    assert!(actions.expired.is_empty());
    core.step(
        jumped,
        Input::Request {
            conn: CONN,
            xid: 1,
            request: create_request("/t", b"", 0),
        },
        &mut actions,
    );
    assert_eq!(
        actions.append[0].time_ms, 3_601_000,
        "ctime is wall-clock time"
    );
    // The monotonic clock passing the timeout does expire it.
    actions.clear();
    core.step(
        Now {
            mono_ms: 1_000 + 40_001,
            wall_ms: 3_700_000,
        },
        Input::Tick,
        &mut actions,
    );
    assert!(actions.expired.iter().any(|(id, _)| *id == session));
}

/// ZooKeeper's default tickTime: sessions are bucketed by it, unlike `config`'s 1 ms.
const TICK_MS: u64 = 2_000;

/// The timeout `connect` asks for (within `config`'s limits).
const TIMEOUT_MS: u64 = 10_000;

fn ticked_core(seed: u64) -> Core {
    let config = CoreConfig {
        tick_ms: TICK_MS,
        ..config(seed)
    };
    Core::new(config, Tree::new(), Now::both(1_000))
}

/// Re-attaches `session_id` on `conn` at `now` (no txn: the session exists).
fn reconnect(core: &mut Core, conn: ConnId, session_id: i64, now: Now) {
    let passwd = core.sessions().get(session_id).unwrap().passwd.to_vec();
    let mut actions = Actions::default();
    core.step(
        now,
        Input::Connect {
            conn,
            request: ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                timeout_ms: TIMEOUT_MS as i32,
                session_id,
                passwd,
                read_only: None,
            },
            auth_ids: vec![],
        },
        &mut actions,
    );
    assert!(actions.append.is_empty());
    assert!(actions
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Established { conn: c, .. } if *c == conn)));
}

/// A tick at `now`; returns the sessions it closed, in the order of their closeSession txns,
/// after checking that each closed session has exactly one.
fn tick(core: &mut Core, now: Now) -> Vec<i64> {
    let mut actions = Actions::default();
    core.step(now, Input::Tick, &mut actions);
    let closed: Vec<i64> = actions
        .append
        .iter()
        .filter(|t| t.body == TxnBody::CloseSession)
        .map(|t| t.session_id)
        .collect();
    let reported: Vec<i64> = actions.expired.iter().map(|(id, _)| *id).collect();
    assert_eq!(closed, reported, "one closeSession per expired session");
    closed
}

/// The event loop heard from `session` at `mono_ms`.
fn heard_from(core: &Core, session: i64, mono_ms: u64) {
    core.sessions()
        .get(session)
        .unwrap()
        .touch
        .store(mono_ms, Ordering::Relaxed);
}

/// A session the event loop keeps hearing from lives on through many timeouts, while the wall
/// clock is stepped forward by an hour every minute.
#[test]
fn a_session_heard_from_keeps_living() {
    let mut core = ticked_core(1);
    let session = connect(&mut core, CONN, 1_000);
    let mut mono_ms = 1_000;
    while mono_ms < 1_000 + 30 * TIMEOUT_MS {
        mono_ms += TICK_MS / 4; // the driver's tick period
        heard_from(&core, session, mono_ms);
        let wall_ms = mono_ms + (mono_ms / 60_000) * 3_600_000;
        let closed = tick(&mut core, Now { mono_ms, wall_ms });
        assert!(closed.is_empty(), "expired at {mono_ms} though heard from");
    }
    assert!(core.sessions().get(session).is_some());
}

/// A session not heard from expires after its timeout, never before, and at most one tick
/// late, whatever the wall clock does (here it runs backwards).
#[test]
fn a_silent_session_expires_after_its_timeout_at_most_one_tick_late() {
    for created_ms in [1_000, 1_999, 2_000, 2_001, 3_333] {
        let mut core = ticked_core(1);
        let session = connect(&mut core, CONN, created_ms);
        let deadline_ms = created_ms + TIMEOUT_MS;
        let mut mono_ms = created_ms;
        let expired_at = loop {
            mono_ms += 10;
            let now = Now {
                mono_ms,
                wall_ms: 1_000_000 - (mono_ms - created_ms) / 2,
            };
            let closed = tick(&mut core, now);
            if !closed.is_empty() {
                assert_eq!(closed, vec![session]);
                break mono_ms;
            }
            assert!(mono_ms < deadline_ms + 2 * TICK_MS, "never expired");
        };
        assert!(
            expired_at > deadline_ms,
            "early: {expired_at} for {created_ms}"
        );
        assert!(
            expired_at <= deadline_ms + TICK_MS,
            "late: {expired_at} for {created_ms}"
        );
        // Expired once: the next ticks close nothing more.
        assert!(tick(&mut core, Now::both(mono_ms + 10 * TICK_MS)).is_empty());
    }
}

/// Sessions created within one tick share a bucket and close in one tick, in deadline then
/// id order: the same txns whatever order the core's hash maps hold them in.
#[test]
fn many_sessions_in_one_bucket_close_in_one_tick_in_a_fixed_order() {
    let run = |seed: u64| -> Vec<Txn> {
        let mut core = ticked_core(seed);
        let mut sessions = Vec::new();
        for i in 0..200u64 {
            // Created at 1_000..=1_199: deadlines 11_000..=11_199, all in bucket 12_000.
            sessions.push(connect(&mut core, 100 + i, 1_000 + i));
        }
        assert!(tick(&mut core, Now::both(11_999)).is_empty());
        let mut actions = Actions::default();
        core.step(Now::both(12_000), Input::Tick, &mut actions);
        let closed: Vec<i64> = actions.append.iter().map(|t| t.session_id).collect();
        assert_eq!(
            closed, sessions,
            "in deadline order, which is creation order"
        );
        actions.append.clone()
    };
    let first = run(1);
    for seed in 2..5 {
        let again = run(seed);
        assert_eq!(again.len(), first.len());
        for (a, b) in first.iter().zip(&again) {
            assert_eq!(
                (a.zxid, a.session_id, &a.body),
                (b.zxid, b.session_id, &b.body)
            );
        }
    }
}

/// A tick costs what expires and what moves: sessions whose bucket is not due are not looked
/// at, however many there are.
#[test]
fn a_tick_does_not_look_at_every_session() {
    let mut core = ticked_core(1);
    let sessions: Vec<i64> = (0..1_000)
        .map(|i| connect(&mut core, 100 + i, 1_000))
        .collect();
    let mut mono_ms = 1_000;
    while mono_ms < 11_500 {
        mono_ms += TICK_MS / 4;
        assert!(tick(&mut core, Now::both(mono_ms)).is_empty());
    }
    assert_eq!(
        core.sessions().examined_count(),
        0,
        "no bucket came due, so no session was looked at"
    );
    // Half were heard from: the due bucket moves them and closes the rest.
    for s in sessions.iter().step_by(2) {
        heard_from(&core, *s, 11_000);
    }
    let closed = tick(&mut core, Now::both(12_000));
    assert_eq!(closed.len(), 500);
    assert_eq!(core.sessions().examined_count(), 1_000);
    // Their next bucket (22_000) is not due for a while: ticks until then look at nothing.
    while mono_ms < 21_500 {
        mono_ms += TICK_MS / 4;
        tick(&mut core, Now::both(mono_ms));
    }
    assert_eq!(core.sessions().examined_count(), 1_000);
}

/// A client that reconnects twice within one tick still has one session: it expires once,
/// with one closeSession.
#[test]
fn reconnecting_within_one_tick_expires_the_session_once() {
    let mut core = ticked_core(1);
    let session = connect(&mut core, CONN, 1_000);
    reconnect(&mut core, OTHER, session, Now::both(1_100));
    reconnect(&mut core, CONN, session, Now::both(1_200));
    assert_eq!(tick(&mut core, Now::both(13_000)), vec![session]);
    assert!(tick(&mut core, Now::both(30_000)).is_empty());
}

/// After a restart every session gets a full timeout from the monotonic clock at recovery,
/// however old its createSession's wall-clock time is.
#[test]
fn recovery_gives_every_session_a_full_timeout_from_the_monotonic_now() {
    let log: Vec<Txn> = [7i64, 8]
        .iter()
        .enumerate()
        .map(|(i, &id)| Txn {
            zxid: i as i64 + 1,
            time_ms: 1_000,
            session_id: id,
            cxid: 0,
            body: TxnBody::CreateSession {
                timeout_ms: TIMEOUT_MS as i32,
                passwd: [id as u8; 16],
            },
        })
        .collect();
    let config = CoreConfig {
        tick_ms: TICK_MS,
        ..config(1)
    };
    // A fresh process: its monotonic clock starts near 0, the wall clock is days later.
    let at = Now {
        mono_ms: 50,
        wall_ms: 1_000 + 5 * 86_400_000,
    };
    let mut core = Core::recover(config, Tree::new(), Vec::new(), &log, at);
    let later = |mono_ms: u64| Now {
        mono_ms,
        wall_ms: at.wall_ms + mono_ms,
    };
    assert!(tick(&mut core, later(50 + TIMEOUT_MS)).is_empty());
    assert_eq!(
        tick(&mut core, later(50 + TIMEOUT_MS + TICK_MS)),
        vec![7, 8]
    );
}

#[test]
fn reattach_with_wrong_password_is_expired() {
    let mut core = core();
    let session_id = connect(&mut core, CONN, 1_000);
    let mut actions = Actions::default();
    core.step(
        Now::both(1_000),
        Input::Connect {
            conn: OTHER,
            request: ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                timeout_ms: 10_000,
                session_id,
                passwd: vec![1; 16],
                read_only: None,
            },
            auth_ids: vec![],
        },
        &mut actions,
    );
    let frame = sent_to(&actions, OTHER).pop().unwrap();
    let response = ConnectResponse::decode(&frame[4..]).unwrap();
    assert_eq!(response.timeout_ms, 0);
    assert_eq!(response.session_id, 0);
    assert_eq!(response.read_only, None);
}

#[test]
fn containers_are_reaped_after_their_last_child_goes() {
    let mut core = core();
    connect(&mut core, CONN, 1_000);
    roundtrip(&mut core, CONN, 1, create_request("/c", b"", 4));
    roundtrip(&mut core, CONN, 2, create_request("/c/x", b"", 0));
    roundtrip(
        &mut core,
        CONN,
        3,
        Request::Delete {
            path: "/c/x".into(),
            version: -1,
        },
    );
    let session = core.session_of(CONN).unwrap();
    core.sessions()
        .get(session)
        .unwrap()
        .touch
        .store(5_000, Ordering::Relaxed);
    let mut actions = Actions::default();
    core.step(Now::both(5_000), Input::Tick, &mut actions);
    assert_eq!(actions.append.len(), 1);
    let zxid = actions.append[0].zxid;
    actions.clear();
    core.step(Now::both(5_000), Input::Committed { zxid }, &mut actions);
    assert!(core.released().get("/c").is_none());
}

#[test]
fn recovery_replays_the_log_into_an_equal_tree_and_session_table() {
    let mut core = core();
    let owner = connect(&mut core, CONN, 1_000);
    // connect() made its createSession durable without keeping it: log it here.
    let mut log: Vec<Txn> = vec![Txn {
        zxid: 1,
        time_ms: 1_000,
        session_id: owner,
        cxid: 0,
        body: TxnBody::CreateSession {
            timeout_ms: 10_000,
            passwd: core.sessions().get(owner).unwrap().passwd,
        },
    }];
    let mut step = |core: &mut Core, input: Input| {
        let mut actions = Actions::default();
        core.step(Now::both(2_000), input, &mut actions);
        let appended: Vec<Txn> = actions.append.clone();
        log.extend(appended.iter().cloned());
        if let Some(last) = appended.last() {
            actions.clear();
            core.step(
                Now::both(2_000),
                Input::Committed { zxid: last.zxid },
                &mut actions,
            );
        }
    };
    step(
        &mut core,
        Input::Request {
            conn: CONN,
            xid: 1,
            request: create_request("/a", b"x", 0),
        },
    );
    step(
        &mut core,
        Input::Request {
            conn: CONN,
            xid: 2,
            request: create_request("/a/e", b"", 1),
        },
    );
    let recovered = Core::recover(config(2), Tree::new(), Vec::new(), &log, Now::both(50_000));
    assert_eq!(
        recovered.released().last_zxid(),
        core.released().last_zxid()
    );
    for (path, node) in core.released().paths() {
        assert_eq!(
            recovered.released().get(path).unwrap().stat(),
            node.stat(),
            "{path}"
        );
    }
    let session = recovered.sessions().get(owner).expect("session survives");
    assert_eq!(session.passwd, core.sessions().get(owner).unwrap().passwd);
    assert_eq!(recovered.committed_sessions(), core.committed_sessions());
    // The restart gave the session a fresh timeout from the recovery time.
    assert_eq!(session.touch.load(Ordering::Relaxed), 50_000);
}

fn request_at(core: &mut Core, conn: ConnId, xid: i32, request: Request, actions: &mut Actions) {
    core.step(
        Now::both(2_000),
        Input::Request { conn, xid, request },
        actions,
    );
}

pub(super) fn get_data(path: &str, watch: bool) -> Request {
    Request::GetData {
        path: path.into(),
        watch,
    }
}

pub(super) fn set_data(path: &str, data: &[u8]) -> Request {
    Request::SetData {
        path: path.into(),
        data: Some(data.to_vec()),
        version: -1,
    }
}

/// One batch of three writes, with a read of the first writer's session queued between its
/// two writes and a watch on what the other session changes. The read is answered at a seal
/// after the other session's write (so that write's event reaches the reader first) and
/// before the reader's own next write, which it must not see.
#[test]
fn a_queued_read_is_answered_between_its_sessions_writes_after_the_events_it_reflects() {
    let mut core = core();
    connect(&mut core, CONN, 1_000);
    connect(&mut core, OTHER, 1_000);
    roundtrip(&mut core, CONN, 1, create_request("/a", b"0", 0));
    roundtrip(&mut core, CONN, 2, create_request("/b", b"0", 0));
    roundtrip(&mut core, CONN, 3, get_data("/b", true));
    let mut actions = Actions::default();
    request_at(&mut core, CONN, 4, set_data("/a", b"1"), &mut actions);
    request_at(&mut core, CONN, 5, get_data("/a", false), &mut actions);
    request_at(&mut core, OTHER, 1, set_data("/b", b"1"), &mut actions);
    request_at(&mut core, CONN, 6, set_data("/a", b"2"), &mut actions);
    assert_eq!(actions.append.len(), 3);
    core.seal_batch();
    let last = actions.append[2].zxid;
    actions.clear();
    core.step(
        Now::both(2_000),
        Input::Committed { zxid: last },
        &mut actions,
    );
    let frames = sent_to(&actions, CONN);
    let xids: Vec<i32> = frames
        .iter()
        .map(|f| ReplyHeader::decode(&mut Reader::new(&f[4..])).unwrap().xid)
        .collect();
    assert_eq!(xids, vec![4, -1, 5, 6], "write, event, read, write");
    let (header, response) = decode(&frames[2], OpCode::GetData);
    assert_eq!(
        header.zxid,
        last - 1,
        "answered at the seal before its session's next write"
    );
    assert!(matches!(response, Response::GetData { data: Some(d), .. } if d == b"1"));
    assert_eq!(actions.publish.unwrap().last_zxid(), last);
}

/// The log may report a zxid inside a batch; nothing is released until a seal is durable,
/// because only sealed trees exist to publish.
#[test]
fn releases_stop_at_seals() {
    let mut core = core();
    connect(&mut core, CONN, 1_000);
    connect(&mut core, OTHER, 1_000);
    let mut actions = Actions::default();
    request_at(
        &mut core,
        CONN,
        1,
        create_request("/x", b"", 0),
        &mut actions,
    );
    core.seal_batch();
    request_at(
        &mut core,
        OTHER,
        1,
        create_request("/y", b"", 0),
        &mut actions,
    );
    request_at(
        &mut core,
        OTHER,
        2,
        create_request("/z", b"", 0),
        &mut actions,
    );
    core.seal_batch();
    let zxids: Vec<i64> = actions.append.iter().map(|t| t.zxid).collect();
    actions.clear();
    core.step(
        Now::both(2_000),
        Input::Committed { zxid: zxids[1] },
        &mut actions,
    );
    assert_eq!(
        sent_to(&actions, CONN).len(),
        1,
        "the first batch is released"
    );
    assert!(
        sent_to(&actions, OTHER).is_empty(),
        "the second is not sealed at zxids[1]"
    );
    assert_eq!(actions.publish.take().unwrap().last_zxid(), zxids[0]);
    assert!(core.released().get("/y").is_none());
    actions.clear();
    core.step(
        Now::both(2_000),
        Input::Committed { zxid: zxids[2] },
        &mut actions,
    );
    assert_eq!(sent_to(&actions, OTHER).len(), 2);
    assert!(core.released().get("/z").is_some());
}

/// Goal: whatever the batch boundaries and durable points, each connection sees its replies
/// in request order, never a frame older than one before it (an event before any reply that
/// reflects its change), reads that see exactly the writes up to their zxid, and never its
/// own later write. Method: three sessions send random setData/getData (some with watches)
/// over five nodes; seals and durable reports (at seals and inside batches) come at random;
/// every frame is decoded and checked. `SEED=n` replays one seed.
#[test]
fn random_batches_keep_session_order_and_event_order() {
    let seeds: Vec<u64> = match std::env::var("SEED") {
        Ok(s) => vec![s.parse().expect("SEED is a number")],
        Err(_) => (1..=200).collect(),
    };
    for seed in seeds {
        check_random_batches(seed);
    }
}

enum Asked {
    Write { path: usize, value: Vec<u8> },
    Read { path: usize },
}

const PATHS: [&str; 5] = ["/k0", "/k1", "/k2", "/k3", "/k4"];

fn check_random_batches(seed: u64) {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let conns: [ConnId; 3] = [1, 2, 3];
    let mut core = core();
    for &c in &conns {
        connect(&mut core, c, 1_000);
    }
    for (i, p) in PATHS.iter().enumerate() {
        roundtrip(&mut core, 1, 1000 + i as i32, create_request(p, b"init", 0));
    }
    let mut asked: HashMap<ConnId, Vec<(i32, Asked)>> = HashMap::new();
    // Each frame with the zxid the core says it reflects (events carry -1 on the wire).
    let mut frames: HashMap<ConnId, Vec<(Vec<u8>, i64)>> = HashMap::new();
    let mut handed_to = core.released().last_zxid();
    let mut durable_to = handed_to;
    let mut actions = Actions::default();
    let collect = |actions: &mut Actions, frames: &mut HashMap<ConnId, Vec<(Vec<u8>, i64)>>| {
        for o in actions.outputs.drain(..) {
            if let Output::Send {
                conn, frame, zxid, ..
            } = o
            {
                frames.entry(conn).or_default().push((frame, zxid));
            }
        }
        actions.publish = None;
    };
    for xid in 1..=300 {
        match next(10) {
            0..=5 => {
                let conn = conns[next(3) as usize];
                let path = next(PATHS.len() as u64) as usize;
                let (request, what) = if next(2) == 0 {
                    let value = format!("{conn}:{xid}").into_bytes();
                    (set_data(PATHS[path], &value), Asked::Write { path, value })
                } else {
                    (get_data(PATHS[path], next(2) == 0), Asked::Read { path })
                };
                asked.entry(conn).or_default().push((xid, what));
                request_at(&mut core, conn, xid, request, &mut actions);
            }
            6 | 7 => {
                if let Some(last) = actions.append.last().map(|t| t.zxid) {
                    core.seal_batch();
                    handed_to = last;
                    actions.append.clear();
                }
            }
            _ => {
                // Durable at a seal or inside a batch, as a log splitting a batch reports.
                if handed_to > durable_to {
                    durable_to += 1 + next((handed_to - durable_to) as u64) as i64;
                    let zxid = durable_to;
                    core.step(Now::both(2_000), Input::Committed { zxid }, &mut actions);
                }
            }
        }
        collect(&mut actions, &mut frames);
    }
    core.seal_batch();
    let end = i64::MAX;
    core.step(
        Now::both(2_000),
        Input::Committed { zxid: end },
        &mut actions,
    );
    collect(&mut actions, &mut frames);

    // Every write's zxid and value, from the write replies.
    let mut written: Vec<(i64, usize, Vec<u8>)> = Vec::new();
    let mut headers: HashMap<ConnId, Vec<(ReplyHeader, &Vec<u8>)>> = HashMap::new();
    for (&conn, list) in &frames {
        let mut last_key = (i64::MIN, 0);
        for (f, zxid) in list {
            let h = ReplyHeader::decode(&mut Reader::new(&f[4..])).unwrap();
            // Events (xid -1) before replies of the same zxid; nothing goes back in time.
            let key = (*zxid, i32::from(h.xid != -1));
            if key < last_key {
                let seq: Vec<(i32, i64)> = list
                    .iter()
                    .map(|(f, z)| {
                        (
                            ReplyHeader::decode(&mut Reader::new(&f[4..])).unwrap().xid,
                            *z,
                        )
                    })
                    .collect();
                panic!("seed {seed}: conn {conn}: {key:?} after {last_key:?}: {seq:?}");
            }
            last_key = key;
            if h.xid > 0 && h.xid < 1000 {
                headers.entry(conn).or_default().push((h, f));
            }
        }
    }
    for (&conn, list) in &asked {
        let got = &headers[&conn];
        let xids: Vec<i32> = got.iter().map(|(h, _)| h.xid).collect();
        let sent: Vec<i32> = list.iter().map(|(x, _)| *x).collect();
        assert_eq!(
            xids, sent,
            "seed {seed}: conn {conn}: replies not in request order"
        );
        for ((_, what), (h, _)) in list.iter().zip(got) {
            assert_eq!(h.err, 0, "seed {seed}");
            if let Asked::Write { path, value } = what {
                written.push((h.zxid, *path, value.clone()));
            }
        }
    }
    for (&conn, list) in &asked {
        let got = &headers[&conn];
        for (i, ((_, what), (h, frame))) in list.iter().zip(got).enumerate() {
            let Asked::Read { path } = what else { continue };
            let (_, response) = decode(frame, OpCode::GetData);
            let Response::GetData {
                data: Some(data), ..
            } = response
            else {
                panic!("seed {seed}: not a getData reply");
            };
            let expected = written
                .iter()
                .filter(|(z, p, _)| p == path && *z <= h.zxid)
                .max_by_key(|(z, _, _)| *z)
                .map_or(b"init".to_vec(), |(_, _, v)| v.clone());
            assert_eq!(
                data, expected,
                "seed {seed}: read at {:#x} of {}",
                h.zxid, PATHS[*path]
            );
            // Never its own later write.
            if let Some((later, _)) = list[i + 1..]
                .iter()
                .zip(&got[i + 1..])
                .find(|((_, w), _)| matches!(w, Asked::Write { .. }))
                .map(|(_, (h2, _))| (h2.zxid, ()))
            {
                assert!(
                    h.zxid < later,
                    "seed {seed}: a read saw its session's later write"
                );
            }
        }
    }
}
