//! Jute encode and decode of the frames that carry rzk's throughput, in bytes per second:
//!   request_decode / request_encode: create, setData, getData, exists, multi of 10 ops
//!     (the server decodes these; `rzk bench` and the tests encode them);
//!   reply_encode / reply_decode: create, setData's Stat (ReplyHeader + Stat, as exists and
//!     setData answer), getData, getChildren2 with 100 children, the multi's 10 results,
//!     and a WatcherEvent (the server encodes these; clients decode them);
//!   txn_encode / txn_decode: the create, setData and 10-op multi transactions the log writes
//!     and recovery (and followers) read back.
//! Data is 100 bytes per znode, as in the wal and snapshot benches. Encode timings include
//! allocating the frame, as the real API returns a fresh `Vec`.
//!
//! Every case is checked once before it is timed (decode gives back what was encoded), so
//! `cargo test --benches`, which runs each body once, fails if the codec breaks.
//!
//! Run: `cargo bench -p rzk-proto --bench codec`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rzk_proto::{
    decode_request, decode_response, encode_reply, encode_request, Acl, CreateRequest, EventType,
    KeeperState, MultiOp, MultiResult, OpCode, Reader, ReplyHeader, Request, Response, Stat, Txn,
    TxnBody, WatcherEvent, Writer, FRAME_HEADER_BYTES,
};

const DATA_BYTES: usize = 100;
const CHILD_COUNT: usize = 100;
const MULTI_OP_COUNT: usize = 10;
const SESSION_ID: i64 = 0x0100_0000_0000_0001;
const ZXID: i64 = 0x1_0000_2710;

/// Sequential-node names, as queues and locks produce them.
fn node_path(i: usize) -> String {
    format!("/bench/node{i:010}")
}

fn data() -> Option<Vec<u8>> {
    Some(vec![b'x'; DATA_BYTES])
}

fn stat() -> Stat {
    Stat {
        czxid: ZXID - 7,
        mzxid: ZXID,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_007,
        version: 3,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: DATA_BYTES as i32,
        num_children: 0,
        pzxid: ZXID - 7,
    }
}

fn create_request(i: usize) -> CreateRequest {
    CreateRequest {
        op: OpCode::Create,
        path: node_path(i),
        data: data(),
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl_ms: -1,
    }
}

/// The multi's ops, 10 in all: 4 creates, 4 setData, a delete and a check.
fn multi_ops() -> Vec<MultiOp> {
    let mut ops = Vec::with_capacity(MULTI_OP_COUNT);
    for i in 0..4 {
        ops.push(MultiOp::Create(create_request(i)));
    }
    for i in 4..8 {
        ops.push(MultiOp::SetData {
            path: node_path(i),
            data: data(),
            version: -1,
        });
    }
    ops.push(MultiOp::Delete {
        path: node_path(8),
        version: -1,
    });
    ops.push(MultiOp::Check {
        path: node_path(9),
        version: 3,
    });
    assert_eq!(ops.len(), MULTI_OP_COUNT);
    ops
}

fn multi_results() -> Vec<MultiResult> {
    multi_ops()
        .iter()
        .map(|op| match op {
            MultiOp::Create(c) => MultiResult::Create {
                path: c.path.clone(),
            },
            MultiOp::SetData { .. } => MultiResult::SetData { stat: stat() },
            MultiOp::Delete { .. } => MultiResult::Delete,
            _ => MultiResult::Check,
        })
        .collect()
}

fn requests() -> Vec<(&'static str, Request)> {
    vec![
        ("create", Request::Create(create_request(1))),
        (
            "setData",
            Request::SetData {
                path: node_path(1),
                data: data(),
                version: -1,
            },
        ),
        (
            "getData",
            Request::GetData {
                path: node_path(1),
                watch: false,
            },
        ),
        (
            "exists",
            Request::Exists {
                path: node_path(1),
                watch: true,
            },
        ),
        ("multi10", Request::Multi(multi_ops())),
    ]
}

/// (name, the op the client sent, reply).
fn replies() -> Vec<(&'static str, OpCode, Response)> {
    let mut parent = stat();
    parent.num_children = CHILD_COUNT as i32;
    parent.cversion = CHILD_COUNT as i32;
    vec![
        (
            "create",
            OpCode::Create,
            Response::Create { path: node_path(1) },
        ),
        ("stat", OpCode::SetData, Response::Stat(stat())),
        (
            "getData",
            OpCode::GetData,
            Response::GetData {
                data: data(),
                stat: stat(),
            },
        ),
        (
            "getChildren2_100",
            OpCode::GetChildren2,
            Response::GetChildren2 {
                children: (0..CHILD_COUNT).map(|i| format!("node{i:010}")).collect(),
                stat: parent,
            },
        ),
        ("multi10", OpCode::Multi, Response::Multi(multi_results())),
    ]
}

fn txn(body: TxnBody) -> Txn {
    Txn {
        zxid: ZXID,
        time_ms: 1_700_000_000_000,
        session_id: SESSION_ID,
        cxid: 42,
        body,
    }
}

fn txn_create(i: usize) -> TxnBody {
    TxnBody::Create {
        path: node_path(i),
        data: data(),
        acl: Acl::open_unsafe(),
        ephemeral_owner: 0,
        parent_cversion: i as i32 + 1,
        reply_stat: false,
    }
}

fn txns() -> Vec<(&'static str, Txn)> {
    let mut multi: Vec<TxnBody> = (0..4).map(txn_create).collect();
    multi.extend((4..8).map(|i| TxnBody::SetData {
        path: node_path(i),
        data: data(),
        version: 4,
    }));
    multi.push(TxnBody::Delete { path: node_path(8) });
    multi.push(TxnBody::Check { path: node_path(9) });
    assert_eq!(multi.len(), MULTI_OP_COUNT);
    vec![
        ("create", txn(txn_create(1))),
        (
            "setData",
            txn(TxnBody::SetData {
                path: node_path(1),
                data: data(),
                version: 4,
            }),
        ),
        ("multi10", txn(TxnBody::Multi(multi))),
    ]
}

fn decode_reply(op: OpCode, body: &[u8]) -> (ReplyHeader, Response) {
    let mut r = Reader::new(body);
    let header = ReplyHeader::decode(&mut r).unwrap();
    let response = decode_response(op, &mut r).unwrap();
    (header, response)
}

fn encode_txn(txn: &Txn) -> Vec<u8> {
    let mut w = Writer::new();
    txn.encode(&mut w);
    w.bytes
}

fn bench_requests(c: &mut Criterion) {
    let mut decode = c.benchmark_group("request_decode");
    for (name, request) in requests() {
        let frame = encode_request(7, &request);
        let body = &frame[FRAME_HEADER_BYTES..];
        assert_eq!(decode_request(body).unwrap().1, request, "{name}");
        decode.throughput(Throughput::Bytes(frame.len() as u64));
        decode.bench_function(name, |b| {
            b.iter(|| decode_request(black_box(body)).unwrap())
        });
    }
    decode.finish();

    let mut encode = c.benchmark_group("request_encode");
    for (name, request) in requests() {
        let frame = encode_request(7, &request);
        encode.throughput(Throughput::Bytes(frame.len() as u64));
        encode.bench_function(name, |b| b.iter(|| encode_request(7, black_box(&request))));
    }
    encode.finish();
}

fn bench_replies(c: &mut Criterion) {
    let header = ReplyHeader {
        xid: 7,
        zxid: ZXID,
        err: 0,
    };
    let event = WatcherEvent {
        event_type: EventType::NodeDataChanged.code(),
        state: KeeperState::SyncConnected.code(),
        path: node_path(1),
    };

    let mut encode = c.benchmark_group("reply_encode");
    for (name, op, response) in replies() {
        let frame = encode_reply(header, &response);
        let decoded = decode_reply(op, &frame[FRAME_HEADER_BYTES..]);
        assert_eq!(decoded, (header, response.clone()), "{name}");
        encode.throughput(Throughput::Bytes(frame.len() as u64));
        encode.bench_function(name, |b| {
            b.iter(|| encode_reply(black_box(header), black_box(&response)))
        });
    }
    let frame = event.encode_frame(ZXID);
    encode.throughput(Throughput::Bytes(frame.len() as u64));
    encode.bench_function("watcherEvent", |b| {
        b.iter(|| black_box(&event).encode_frame(ZXID))
    });
    encode.finish();

    let mut decode = c.benchmark_group("reply_decode");
    for (name, op, response) in replies() {
        let frame = encode_reply(header, &response);
        let body = &frame[FRAME_HEADER_BYTES..];
        decode.throughput(Throughput::Bytes(frame.len() as u64));
        decode.bench_function(name, |b| b.iter(|| decode_reply(op, black_box(body))));
    }
    let frame = event.encode_frame(ZXID);
    let body = &frame[FRAME_HEADER_BYTES..];
    let decode_event = |body: &[u8]| {
        let mut r = Reader::new(body);
        let header = ReplyHeader::decode(&mut r).unwrap();
        (header, WatcherEvent::decode(&mut r).unwrap())
    };
    let (event_header, decoded) = decode_event(body);
    assert_eq!(event_header.xid, rzk_proto::xid::WATCH_EVENT);
    assert_eq!(decoded, event);
    decode.throughput(Throughput::Bytes(frame.len() as u64));
    decode.bench_function("watcherEvent", |b| b.iter(|| decode_event(black_box(body))));
    decode.finish();
}

fn bench_txns(c: &mut Criterion) {
    let mut encode = c.benchmark_group("txn_encode");
    for (name, txn) in txns() {
        let bytes = encode_txn(&txn);
        encode.throughput(Throughput::Bytes(bytes.len() as u64));
        encode.bench_function(name, |b| b.iter(|| encode_txn(black_box(&txn))));
    }
    encode.finish();

    let mut decode = c.benchmark_group("txn_decode");
    for (name, txn) in txns() {
        let bytes = encode_txn(&txn);
        let mut r = Reader::new(&bytes);
        assert_eq!(Txn::decode(&mut r).unwrap(), txn, "{name}");
        r.finish().unwrap();
        decode.throughput(Throughput::Bytes(bytes.len() as u64));
        decode.bench_function(name, |b| {
            b.iter(|| Txn::decode(&mut Reader::new(black_box(&bytes))).unwrap())
        });
    }
    decode.finish();
}

criterion_group!(benches, bench_requests, bench_replies, bench_txns);
criterion_main!(benches);
