//! The checks behind the libFuzzer targets in `fuzz_targets/`, one `check_*` function per
//! target. Each takes arbitrary bytes, runs them through every `rzk-proto` decoder of network
//! (or disk) bytes that the target covers, and panics only when the decoder itself panics or
//! when a successful decode does not survive encode → decode unchanged.
//!
//! Kept in a library (rather than inline in the targets) so that `cargo test` on a stable
//! toolchain can write the seed corpus and replay `corpus/` and `artifacts/` through exactly
//! the same assertions without libFuzzer.

use std::sync::OnceLock;

use rzk_proto::{
    decode_request, decode_request_header, decode_response, encode_reply, encode_request,
    four_letter_word, ConnectRequest, ConnectResponse, OpCode, Reader, ReplyHeader, Request, Txn,
    WatcherEvent, Writer, FRAME_HEADER_BYTES, JUTE_MAXBUFFER_DEFAULT_BYTES,
};

/// Checks that a frame produced by an encoder carries its own length correctly and returns
/// the body after the prefix.
fn frame_body(frame: &[u8]) -> &[u8] {
    assert!(
        frame.len() >= FRAME_HEADER_BYTES,
        "encoded frame shorter than its prefix"
    );
    let length = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    assert_eq!(
        length,
        frame.len() - FRAME_HEADER_BYTES,
        "frame length prefix is wrong"
    );
    &frame[FRAME_HEADER_BYTES..]
}

/// Target `request`: one request frame body (no length prefix) through `decode_request`.
///
/// Invariants checked:
/// - `decode_request` never panics;
/// - a decoded request re-encodes (`encode_request`) and decodes to the same xid and
///   request, with the header op equal to `Request::op()`; skipped for `Unknown`,
///   `Reconfig`, whose body is not kept;
/// - the header seen by `decode_request` is the one `decode_request_header` reads, and
///   `decode_request_header` fails exactly on frames shorter than 8 bytes (the event loop
///   relies on it to answer a malformed body with MarshallingError).
pub fn check_request(frame: &[u8]) {
    request_frame(frame);
}

/// [`check_request`]; returns whether the server would keep the connection after this
/// frame (the frame has at least a readable header).
fn request_frame(frame: &[u8]) -> bool {
    let header_only = decode_request_header(frame);
    assert_eq!(
        header_only.is_ok(),
        frame.len() >= 8,
        "header decode vs frame length"
    );
    let keeps_connection = header_only.is_ok();
    let Ok((header, request)) = decode_request(frame) else {
        return keeps_connection;
    };
    assert_eq!(
        Ok(header),
        header_only,
        "decode_request and decode_request_header disagree"
    );
    if matches!(request, Request::Unknown(_) | Request::Reconfig) {
        return keeps_connection;
    }
    assert!(
        !matches!(request, Request::Malformed(_)),
        "decode_request built Request::Malformed"
    );
    assert_eq!(
        header.op,
        request.op(),
        "Request::op() differs from the header op"
    );
    let frame2 = encode_request(header.xid, &request);
    let (header2, request2) = match decode_request(frame_body(&frame2)) {
        Ok(decoded) => decoded,
        Err(e) => panic!("re-encoded request does not decode: {e}; request {request:?}"),
    };
    assert_eq!(header2.xid, header.xid, "round trip changed the xid");
    assert_eq!(header2.op, request.op(), "round trip header op");
    assert_eq!(request2, request, "round trip changed the request");
    keeps_connection
}

/// Target `connect`: the same bytes as a `ConnectRequest` (server side: the first frame of
/// a connection) and as a `ConnectResponse` (client side), each round-tripped through its
/// `encode_frame` when it decodes.
pub fn check_connect(frame: &[u8]) {
    if let Ok(request) = ConnectRequest::decode(frame) {
        let encoded = request.encode_frame();
        match ConnectRequest::decode(frame_body(&encoded)) {
            Ok(again) => assert_eq!(again, request, "ConnectRequest round trip"),
            Err(e) => panic!("re-encoded ConnectRequest does not decode: {e}; {request:?}"),
        }
    }
    if let Ok(response) = ConnectResponse::decode(frame) {
        let encoded = response.encode_frame();
        match ConnectResponse::decode(frame_body(&encoded)) {
            Ok(again) => assert_eq!(again, response, "ConnectResponse round trip"),
            Err(e) => panic!("re-encoded ConnectResponse does not decode: {e}; {response:?}"),
        }
    }
}

/// Every `OpCode` the proto crate knows, in code order. Built by probing `from_i32` over a
/// range wider than ZooKeeper's codes, so an opcode added to `consts.rs` is fuzzed too.
pub fn response_ops() -> &'static [OpCode] {
    static OPS: OnceLock<Vec<OpCode>> = OnceLock::new();
    OPS.get_or_init(|| (-128..=255).filter_map(OpCode::from_i32).collect())
}

/// Target `response`: byte 0 picks the op (`response_ops()[byte % len]`); the rest is a
/// reply frame body: `ReplyHeader` then the op's response record, as a client reads it.
///
/// The same header is also read as a watch notification (`WatcherEvent` after the header).
/// A decoded response is re-encoded with `encode_reply` (the server's encoder) and must
/// decode to the same header and response with no byte left over; likewise a decoded event
/// through `WatcherEvent::encode_frame`.
pub fn check_response(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let ops = response_ops();
    let op = ops[selector as usize % ops.len()];
    let mut r = Reader::new(body);
    let Ok(header) = ReplyHeader::decode(&mut r) else {
        return;
    };
    let after_header = &body[r.offset()..];

    if let Ok(response) = decode_response(op, &mut r) {
        let frame = encode_reply(header, &response);
        let mut r2 = Reader::new(frame_body(&frame));
        let header2 = ReplyHeader::decode(&mut r2).expect("re-encoded reply header");
        assert_eq!(header2, header, "ReplyHeader round trip");
        match decode_response(op, &mut r2) {
            Ok(again) => assert_eq!(again, response, "response round trip for {op:?}"),
            Err(e) => panic!("re-encoded {op:?} reply does not decode: {e}; {response:?}"),
        }
        assert_eq!(
            r2.finish(),
            Ok(()),
            "re-encoded {op:?} reply has trailing bytes"
        );
    }

    let mut re = Reader::new(after_header);
    if let Ok(event) = WatcherEvent::decode(&mut re) {
        let frame = event.encode_frame(header.zxid);
        let mut r2 = Reader::new(frame_body(&frame));
        let header2 = ReplyHeader::decode(&mut r2).expect("re-encoded event header");
        assert_eq!(
            (header2.xid, header2.zxid, header2.err),
            (rzk_proto::xid::WATCH_EVENT, header.zxid, 0),
            "watch event header"
        );
        match WatcherEvent::decode(&mut r2) {
            Ok(again) => assert_eq!(again, event, "WatcherEvent round trip"),
            Err(e) => panic!("re-encoded WatcherEvent does not decode: {e}; {event:?}"),
        }
        assert_eq!(
            r2.finish(),
            Ok(()),
            "re-encoded WatcherEvent has trailing bytes"
        );
    }
}

/// Target `txn`: bytes as one logged transaction (`Txn::decode`), as they will be read back
/// from disk; a decoded txn must survive `Txn::encode` → `Txn::decode` unchanged, consuming
/// exactly the encoded bytes.
pub fn check_txn(data: &[u8]) {
    let mut r = Reader::new(data);
    let Ok(txn) = Txn::decode(&mut r) else {
        return;
    };
    let mut w = Writer::new();
    txn.encode(&mut w);
    let mut r2 = Reader::new(&w.bytes);
    match Txn::decode(&mut r2) {
        Ok(again) => assert_eq!(again, txn, "Txn round trip"),
        Err(e) => panic!("re-encoded txn does not decode: {e}; {txn:?}"),
    }
    assert_eq!(r2.finish(), Ok(()), "re-encoded txn has trailing bytes");
}

/// Target `frames`: bytes as the inbound stream of one connection, split the way the
/// server's event loop (`net/src/event_loop.rs`) does it: a four-letter word in place of
/// the first length ends the stream; otherwise 4-byte big-endian length, a negative length
/// or one above `JUTE_MAXBUFFER_DEFAULT_BYTES` closes the connection, an incomplete frame
/// waits for more bytes (here: ends). Every complete frame is decoded as a request with the
/// `request` target's checks (so a malformed body with a readable header goes on, as the
/// server answers MarshallingError and keeps the connection; a frame too short for a header
/// closes it). The first frame also goes through the `connect` target's checks, since the
/// server decodes it as a `ConnectRequest`.
pub fn check_frames(data: &[u8]) {
    let mut pending = data;
    let mut first_frame = true;
    while pending.len() >= FRAME_HEADER_BYTES {
        let first4 = [pending[0], pending[1], pending[2], pending[3]];
        if first_frame && four_letter_word(first4).is_some() {
            return;
        }
        let length = i32::from_be_bytes(first4);
        if length < 0 || length as usize > JUTE_MAXBUFFER_DEFAULT_BYTES {
            return;
        }
        let length = length as usize;
        if pending.len() < FRAME_HEADER_BYTES + length {
            return;
        }
        let frame = &pending[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + length];
        pending = &pending[FRAME_HEADER_BYTES + length..];
        let is_connect_frame = std::mem::replace(&mut first_frame, false);
        if is_connect_frame {
            // The server reads the first frame as a ConnectRequest; fuzz that decoder on
            // it too, but go on decoding it as a request so requests need no valid connect.
            check_connect(frame);
        }
        if !request_frame(frame) {
            return;
        }
    }
}

/// Log recovery on arbitrary bytes: `scan_segment` never panics, and skipping a snapshot's
/// transactions (`scan_segment_after`) drops exactly the leading ones. Then a structured case: a
/// valid segment built from the input, cut inside its last frame at an input-chosen offset
/// and zero-padded back (a torn last write), must scan to exactly the transactions of the
/// earlier frames, and never to corruption.
pub fn check_wal_segment(data: &[u8]) {
    let full = rzk_wal::format::scan_segment(data);
    if data.len() < 4 {
        return;
    }
    // Skipping what a snapshot holds leaves out only a prefix and changes nothing else
    // (where the whole scan found a record that fails to decode, the skipping one may not
    // decode it: the snapshot holds it).
    let skip_through = i64::from(data[0]) - 2;
    if let (Ok(full), Ok(skipped)) = (
        &full,
        rzk_wal::format::scan_segment_after(data, skip_through),
    ) {
        assert_eq!(skipped.first_zxid, full.first_zxid);
        if !matches!(full.end, rzk_wal::format::SegmentEnd::Corrupt { .. }) {
            assert_eq!(skipped.end, full.end);
            let leading = full
                .txns
                .iter()
                .take_while(|(_, t)| t.zxid <= skip_through)
                .count();
            assert_eq!(skipped.txns, full.txns[leading..]);
        }
    }
    let batch_count = 1 + (data[0] % 6) as usize;
    let mut image = rzk_wal::format::encode_segment_header(1).to_vec();
    let mut written = Vec::new();
    let mut before_last_frame = 0;
    let mut last_start = image.len();
    let mut zxid = 1i64;
    for b in 0..batch_count {
        let count = 1 + (data[1 + b % 3] % 5) as usize;
        let txns: Vec<rzk_proto::Txn> = (0..count)
            .map(|i| {
                let payload = data[(b + i) % data.len()..]
                    .iter()
                    .take(40)
                    .copied()
                    .collect();
                let t = rzk_proto::Txn {
                    zxid,
                    time_ms: zxid,
                    session_id: 7,
                    cxid: i as i32,
                    body: rzk_proto::TxnBody::SetData {
                        path: format!("/k{}", zxid % 5),
                        data: Some(payload),
                        version: zxid as i32,
                    },
                };
                zxid += 1;
                t
            })
            .collect();
        before_last_frame = written.len();
        last_start = image.len();
        rzk_wal::format::encode_batch(&txns, &mut image);
        written.extend(txns);
    }
    let full_len = image.len() + 64;
    let span = image.len() - last_start;
    // Strictly inside the last frame: at least one of its bytes is lost.
    let cut = last_start + (u16::from_be_bytes([data[2], data[3]]) as usize % span);
    image.truncate(cut);
    image.resize(full_len, 0);
    let scanned = rzk_wal::format::scan_segment(&image).expect("the header is intact");
    assert!(
        !matches!(scanned.end, rzk_wal::format::SegmentEnd::Corrupt { .. }),
        "a torn last write was called corruption: {:?}",
        scanned.end
    );
    let recovered: Vec<&rzk_proto::Txn> = scanned.txns.iter().map(|(_, t)| t).collect();
    assert_eq!(recovered.len(), before_last_frame, "cut at {cut}");
    for (got, want) in recovered.iter().zip(&written) {
        assert_eq!(
            *got, want,
            "recovery returned something that was not written"
        );
    }
}

/// Snapshot loading: `rzk_snapshot::decode` never panics, on the raw input and on the input
/// used as an uncompressed body framed with a valid header, compression and checksums (so
/// the fuzzer reaches the record parser instead of stopping at a checksum). Layout of the
/// frame: docs/FORMAT-snapshot.md.
pub fn check_snapshot(data: &[u8]) {
    let _ = rzk_snapshot::decode(data);
    if data.len() < 8 {
        return;
    }
    let node_count = u64::from(data[0]) | (u64::from(data[1]) << 8);
    let session_count = u64::from(data[2]);
    let zxid = i64::from(data[3]);
    let body = &data[4..];
    let compressed = zstd::bulk::compress(body, 1).expect("zstd compresses any input");
    let mut framed = Vec::with_capacity(compressed.len() + 64);
    framed.extend_from_slice(b"RZKS");
    framed.extend_from_slice(&1u32.to_le_bytes());
    framed.extend_from_slice(&zxid.to_le_bytes());
    framed.extend_from_slice(&node_count.to_le_bytes());
    framed.extend_from_slice(&session_count.to_le_bytes());
    framed.extend_from_slice(&(body.len() as u64).to_le_bytes());
    framed.extend_from_slice(&(compressed.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c(&framed);
    framed.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(framed.len(), rzk_snapshot::HEADER_BYTES);
    framed.extend_from_slice(&compressed);
    framed.extend_from_slice(&crc32c::crc32c(&compressed).to_le_bytes());
    if let Ok(snapshot) = rzk_snapshot::decode(&framed) {
        // Whatever decodes is a consistent tree that encodes and decodes to itself.
        let sessions = snapshot.sessions.clone();
        let again = rzk_snapshot::decode(&rzk_snapshot::encode(&snapshot.tree, &sessions))
            .expect("an encoded snapshot decodes");
        assert_eq!(again.tree.node_count(), snapshot.tree.node_count());
        assert_eq!(again.sessions, sessions);
    }
}

/// Target `peer`: a byte stream from another server (or a stranger) on the quorum or
/// election port, through `rzk_peer::decode` frame after frame, as the transport reads it.
///
/// Invariants checked:
/// - `decode` never panics and never claims more bytes than it was given;
/// - a decoded frame re-encodes to exactly the bytes it was read from (the encoding is
///   canonical, so nothing was misread or dropped);
/// - the stream stops at the first error or incomplete frame, as the transport closes the
///   connection or waits.
pub fn check_peer(data: &[u8]) {
    let mut pending = data;
    // The limit as a server applies it, and a small one so oversized frames are exercised.
    for limit in [rzk_peer::MAX_FRAME_BYTES, 64] {
        pending = data;
        while let Ok(Some((frame, used))) = rzk_peer::decode(pending, limit) {
            assert!(
                used <= pending.len(),
                "decode claimed more bytes than given"
            );
            let mut again = Vec::new();
            rzk_peer::encode(&frame, &mut again);
            assert_eq!(again, &pending[..used], "a frame re-encodes to other bytes");
            pending = &pending[used..];
        }
    }
    let _ = pending;
}

/// Target `sasl`: a client's SASL token (opcode 102's body) into the DIGEST-MD5 server,
/// after the server's challenge, as the event loop feeds it.
///
/// Invariants checked:
/// - `evaluate` never panics, on the response or on a token sent after it;
/// - arbitrary bytes never complete the exchange (they cannot carry the nonce the server
///   just drew, let alone the right digest of it);
/// - once a response failed, the exchange stays failed.
pub fn check_sasl(data: &[u8]) {
    use std::sync::{Arc, OnceLock};
    static USERS: OnceLock<Arc<rzk_sasl::Credentials>> = OnceLock::new();
    let users = USERS
        .get_or_init(|| Arc::new(rzk_sasl::Credentials::from_users([("bob", "bobsecret")])));
    let mut server = rzk_sasl::DigestMd5Server::new(users.clone());
    match server.evaluate(&[]) {
        Ok(rzk_sasl::Step::Challenge(_)) => {}
        other => panic!("no challenge for an empty first token: {other:?}"),
    }
    let first = server.evaluate(data);
    assert!(
        !matches!(first, Ok(rzk_sasl::Step::Complete { .. })),
        "random bytes completed a DIGEST-MD5 exchange"
    );
    if first.is_err() {
        assert!(
            server.evaluate(data).is_err(),
            "a failed exchange accepted another token"
        );
    }
}
