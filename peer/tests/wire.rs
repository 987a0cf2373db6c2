//! Goal: every message one rzk server sends another arrives as it was sent, or not at all:
//! a frame that was cut, corrupted, oversized or sent by a stranger is refused, never
//! misread. Method: generated messages of every kind through encode → decode (whole, in
//! pieces, and with one bit flipped), and hand-made frames for each refusal.

use std::sync::Arc;

use proptest::prelude::*;
use rzk_peer::wire::{
    decode, decode_handshake, encode, encode_handshake, Channel, Frame, Handshake, Hello,
    SaslStatus, WireError, MAX_FRAME_BYTES, MAX_HELLO_BYTES, MAX_SASL_FRAME_BYTES, VERSION,
};
use rzk_pipeline::{Forwarded, ForwardedOp};
use rzk_proto::{Id, Request, Zxid};
use rzk_quorum::{Entry, Message, PeerState, Vote};

fn zxid() -> impl Strategy<Value = Zxid> {
    (any::<u32>(), any::<u32>()).prop_map(|(e, c)| Zxid::new(e, c))
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec(
        (zxid(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(zxid, data)| Entry {
            zxid,
            data: Arc::from(data),
        }),
        0..6,
    )
}

fn message() -> impl Strategy<Value = Message> {
    let state = prop_oneof![
        Just(PeerState::Looking),
        Just(PeerState::Following),
        Just(PeerState::Leading),
        Just(PeerState::Observing),
    ];
    prop_oneof![
        (any::<u32>(), zxid(), any::<u64>(), any::<u64>(), state).prop_map(
            |(epoch, zxid, leader, round, state)| Message::Notification {
                vote: Vote {
                    epoch,
                    zxid,
                    leader
                },
                round,
                state
            }
        ),
        (any::<u32>(), zxid(), any::<bool>()).prop_map(|(accepted_epoch, last_zxid, observer)| {
            Message::FollowerInfo {
                accepted_epoch,
                last_zxid,
                observer,
            }
        }),
        any::<u32>().prop_map(|epoch| Message::LeaderInfo { epoch }),
        (
            any::<u32>(),
            any::<bool>(),
            any::<u32>(),
            zxid(),
            any::<bool>()
        )
            .prop_map(
                |(epoch, fresh, current_epoch, last_zxid, snap)| Message::AckEpoch {
                    epoch,
                    fresh,
                    current_epoch,
                    last_zxid,
                    snap
                }
            ),
        zxid().prop_map(|after| Message::Trunc { after }),
        (zxid(), prop::collection::vec(any::<u8>(), 0..256)).prop_map(|(zxid, data)| {
            Message::Snap {
                zxid,
                data: Arc::from(data),
            }
        }),
        entries().prop_map(|entries| Message::Diff { entries }),
        (any::<u32>(), zxid(), zxid()).prop_map(|(epoch, last, committed)| {
            Message::NewLeader {
                epoch,
                last,
                committed,
            }
        }),
        any::<u32>().prop_map(|epoch| Message::AckNewLeader { epoch }),
        zxid().prop_map(|committed| Message::UpToDate { committed }),
        entries().prop_map(|entries| Message::Proposal { entries }),
        zxid().prop_map(|zxid| Message::Ack { zxid }),
        zxid().prop_map(|zxid| Message::Commit { zxid }),
        entries().prop_map(|entries| Message::Inform { entries }),
        any::<u64>().prop_map(|round| Message::Ping { round }),
        (any::<u64>(), prop::collection::vec(any::<i64>(), 0..8))
            .prop_map(|(round, touches)| Message::PingReply { round, touches }),
        any::<u64>().prop_map(|id| Message::SyncRequest { id }),
        (any::<u64>(), zxid()).prop_map(|(id, zxid)| Message::SyncReply { id, zxid }),
        any::<u32>().prop_map(|epoch| Message::NewEpoch { epoch }),
        (any::<u32>(), any::<bool>())
            .prop_map(|(epoch, fresh)| Message::AckNewEpoch { epoch, fresh }),
    ]
}

fn forwarded() -> impl Strategy<Value = Forwarded> {
    let op = prop_oneof![
        (
            "/[a-z]{1,8}",
            prop::collection::vec(any::<u8>(), 0..32),
            any::<i32>()
        )
            .prop_map(
                |(path, data, version)| ForwardedOp::Request(Request::SetData {
                    path,
                    data: Some(data),
                    version
                })
            ),
        "/[a-z]{1,8}".prop_map(
            |path| ForwardedOp::Request(rzk_pipeline::roles::create_request(&path, b"v", 1))
        ),
        Just(ForwardedOp::Request(Request::CloseSession)),
        (any::<i32>(), any::<[u8; 16]>())
            .prop_map(|(timeout_ms, passwd)| ForwardedOp::CreateSession { timeout_ms, passwd }),
        any::<i32>().prop_map(|timeout_ms| ForwardedOp::Attach { timeout_ms }),
    ];
    (
        any::<i64>(),
        any::<i32>(),
        prop::collection::vec(("[a-z]{1,6}", "[a-z0-9.:]{0,12}"), 0..3),
        op,
    )
        .prop_map(|(session_id, cxid, ids, op)| Forwarded {
            session_id,
            cxid,
            auth_ids: ids
                .into_iter()
                .map(|(scheme, id)| Id { scheme, id })
                .collect(),
            op,
        })
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u64>(), any::<bool>()).prop_map(|(sid, quorum)| Frame::Hello(Hello {
            sid,
            channel: if quorum {
                Channel::Quorum
            } else {
                Channel::Election
            }
        })),
        message().prop_map(Frame::Message),
        forwarded().prop_map(Frame::Forward),
        (any::<i64>(), any::<i32>())
            .prop_map(|(session_id, cxid)| Frame::Moved { session_id, cxid }),
    ]
}

fn hello() -> impl Strategy<Value = Hello> {
    (any::<u64>(), any::<bool>()).prop_map(|(sid, quorum)| Hello {
        sid,
        channel: if quorum {
            Channel::Quorum
        } else {
            Channel::Election
        },
    })
}

/// Every frame that travels before a link: the hellos and quorum SASL's.
fn handshake() -> impl Strategy<Value = Handshake> {
    let token = prop::collection::vec(any::<u8>(), 0..300);
    let status = prop_oneof![
        Just(SaslStatus::InProgress),
        Just(SaslStatus::Success),
        Just(SaslStatus::Error),
    ];
    prop_oneof![
        hello().prop_map(Handshake::Hello),
        hello().prop_map(Handshake::SaslHello),
        token.clone().prop_map(Handshake::SaslToken),
        (status, token).prop_map(|(status, token)| Handshake::SaslAnswer { status, token }),
    ]
}

fn handshake_bytes(handshake: &Handshake) -> Vec<u8> {
    let mut out = Vec::new();
    encode_handshake(handshake, &mut out);
    out
}

fn bytes_of(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    encode(frame, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Decoding gives back the frame (compared by its encoding, which is canonical), and a
    /// frame that has not fully arrived is waited for, whatever byte it was cut at.
    #[test]
    fn every_frame_survives_encode_and_decode_and_waits_when_cut(frame in frame(), cut in any::<prop::sample::Index>()) {
        let bytes = bytes_of(&frame);
        let (decoded, used) = decode(&bytes, MAX_FRAME_BYTES).unwrap().expect("whole");
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(bytes_of(&decoded), bytes.clone());
        let cut = cut.index(bytes.len());
        prop_assert!(decode(&bytes[..cut], MAX_FRAME_BYTES).unwrap().is_none());
        // Two frames back to back: the first is taken, the rest left for the next call.
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        let (_, used) = decode(&two, MAX_FRAME_BYTES).unwrap().expect("whole");
        prop_assert_eq!(used, bytes.len());
    }

    /// One flipped bit anywhere is refused, or (in the length) waited for or refused: never
    /// read as another message.
    #[test]
    fn a_flipped_bit_is_never_misread(frame in frame(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = bytes_of(&frame);
        let at = at.index(bytes.len());
        bytes[at] ^= 1 << bit;
        match decode(&bytes, MAX_FRAME_BYTES) {
            Err(_) | Ok(None) => {}
            Ok(Some((decoded, _))) => prop_assert!(false, "misread as {decoded:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The handshake frames: decoded as they were sent, waited for when cut, never misread
    /// with a flipped bit, and refused by the reader of a link (none travels after the
    /// hellos).
    #[test]
    fn every_handshake_frame_survives_and_a_flipped_bit_is_never_misread(
        handshake in handshake(),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let bytes = handshake_bytes(&handshake);
        prop_assert!(bytes.len() <= MAX_SASL_FRAME_BYTES);
        let (decoded, used) = decode_handshake(&bytes, MAX_SASL_FRAME_BYTES).unwrap().expect("whole");
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(&decoded, &handshake);
        let cut = cut.index(bytes.len());
        prop_assert!(decode_handshake(&bytes[..cut], MAX_SASL_FRAME_BYTES).unwrap().is_none());
        match (&handshake, decode(&bytes, MAX_FRAME_BYTES)) {
            (Handshake::Hello(h), Ok(Some((Frame::Hello(d), _)))) => prop_assert_eq!(*h, d),
            (Handshake::Hello(_), other) => prop_assert!(false, "hello decoded as {other:?}"),
            (_, Err(WireError::Unexpected { when, .. })) => prop_assert_eq!(when, "after the hellos"),
            (_, other) => prop_assert!(false, "a SASL frame after the hellos read as {other:?}"),
        }
        let mut flipped = bytes.clone();
        let at = at.index(flipped.len());
        flipped[at] ^= 1 << bit;
        match decode_handshake(&flipped, MAX_SASL_FRAME_BYTES) {
            Err(_) | Ok(None) => {}
            Ok(Some((decoded, _))) => prop_assert!(false, "misread as {decoded:?}"),
        }
    }

    /// Before the hellos, every message frame is refused, not read.
    #[test]
    fn no_message_is_read_before_the_hellos(frame in frame()) {
        let bytes = bytes_of(&frame);
        match (&frame, decode_handshake(&bytes, MAX_FRAME_BYTES)) {
            (Frame::Hello(h), Ok(Some((Handshake::Hello(d), _)))) => prop_assert_eq!(*h, d),
            (Frame::Hello(_), other) => prop_assert!(false, "hello decoded as {other:?}"),
            (_, Err(WireError::Unexpected { when, .. })) => prop_assert_eq!(when, "before the hellos"),
            (_, other) => prop_assert!(false, "a message before the hellos read as {other:?}"),
        }
    }

    /// Arbitrary bytes never panic the handshake reader.
    #[test]
    fn arbitrary_bytes_before_the_hellos_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_handshake(&bytes, MAX_SASL_FRAME_BYTES);
    }
}

#[test]
fn malformed_sasl_frames_are_refused() {
    let answer = handshake_bytes(&Handshake::SaslAnswer {
        status: SaslStatus::Success,
        token: b"rspauth=x".to_vec(),
    });
    let mut body = answer[9..].to_vec();
    body[..4].copy_from_slice(&7i32.to_be_bytes());
    assert_eq!(
        decode_handshake(&framed(answer[8], &body), MAX_SASL_FRAME_BYTES).unwrap_err(),
        WireError::Invalid {
            kind: "SASL answer",
            reason: "unknown status"
        }
    );
    // A null token, and one over the JDK's 4096 bytes.
    let token = handshake_bytes(&Handshake::SaslToken(Vec::new()));
    assert!(matches!(
        decode_handshake(
            &framed(token[8], &(-1i32).to_be_bytes()),
            MAX_SASL_FRAME_BYTES
        ),
        Err(WireError::Malformed {
            kind: "SASL token",
            ..
        })
    ));
    let long = handshake_bytes(&Handshake::SaslToken(vec![b'a'; 4097]));
    assert_eq!(
        decode_handshake(&long, MAX_SASL_FRAME_BYTES).unwrap_err(),
        WireError::Invalid {
            kind: "SASL token",
            reason: "a SASL token over the JDK's limit"
        }
    );
    // Before a hello names a listed server, a SASL token is over the stranger's limit.
    let big = handshake_bytes(&Handshake::SaslToken(vec![b'a'; 2000]));
    assert!(matches!(
        decode_handshake(&big, MAX_HELLO_BYTES),
        Err(WireError::TooLarge { .. })
    ));
    // The SASL hello checks version and magic as the hello does.
    let sasl_hello = handshake_bytes(&Handshake::SaslHello(Hello {
        sid: 3,
        channel: Channel::Election,
    }));
    let mut other_version = sasl_hello[9..].to_vec();
    other_version[4..8].copy_from_slice(&(VERSION - 1).to_be_bytes());
    assert_eq!(
        decode_handshake(&framed(sasl_hello[8], &other_version), MAX_HELLO_BYTES).unwrap_err(),
        WireError::Version {
            theirs: VERSION - 1,
            ours: VERSION
        }
    );
}

#[test]
fn a_lying_length_is_refused_before_its_bytes_arrive() {
    let huge = (MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
    assert_eq!(
        decode(&huge, MAX_FRAME_BYTES).unwrap_err(),
        WireError::TooLarge {
            length: MAX_FRAME_BYTES + 1,
            limit: MAX_FRAME_BYTES
        }
    );
    assert_eq!(
        decode(&[0, 0, 0, 2, 0, 0], MAX_FRAME_BYTES).unwrap_err(),
        WireError::TooShort { length: 2 }
    );
}

/// Re-frames `body` under `kind` with a valid checksum: what a buggy or hostile peer that
/// knows the format could send.
fn framed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut crc = crc32c::crc32c(&[kind]);
    crc = crc32c::crc32c_append(crc, body);
    let mut out = ((5 + body.len()) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&crc.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

#[test]
fn strangers_and_other_versions_are_refused_at_the_hello() {
    let hello = bytes_of(&Frame::Hello(Hello {
        sid: 3,
        channel: Channel::Quorum,
    }));
    let body = &hello[9..];
    let mut other_version = body.to_vec();
    let theirs = VERSION - 1;
    other_version[4..8].copy_from_slice(&theirs.to_be_bytes());
    assert_eq!(
        decode(&framed(0, &other_version), MAX_FRAME_BYTES).unwrap_err(),
        WireError::Version {
            theirs,
            ours: VERSION
        }
    );
    let mut not_rzk = body.to_vec();
    not_rzk[..4].copy_from_slice(b"ZKxx");
    assert_eq!(
        decode(&framed(0, &not_rzk), MAX_FRAME_BYTES).unwrap_err(),
        WireError::NotRzk
    );
    assert_eq!(
        decode(&framed(77, b""), MAX_FRAME_BYTES).unwrap_err(),
        WireError::UnknownKind { kind: 77 }
    );
    // Trailing bytes after a whole message: another version's field this one cannot read.
    let ack = bytes_of(&Frame::Message(Message::Ack {
        zxid: Zxid::new(1, 2),
    }));
    let mut longer = ack[9..].to_vec();
    longer.push(0);
    assert!(matches!(
        decode(&framed(ack[8], &longer), MAX_FRAME_BYTES).unwrap_err(),
        WireError::Malformed { kind: "ACK", .. }
    ));
}

#[test]
fn a_forwarded_read_or_mismatched_xid_is_refused() {
    let forwarded = |request: Request| {
        bytes_of(&Frame::Forward(Forwarded {
            session_id: 1,
            cxid: 5,
            auth_ids: Vec::new(),
            op: ForwardedOp::Request(request),
        }))
    };
    let read = forwarded(Request::GetData {
        path: "/a".into(),
        watch: false,
    });
    assert_eq!(
        decode(&read, MAX_FRAME_BYTES).unwrap_err(),
        WireError::Invalid {
            kind: "forwarded request",
            reason: "not a write"
        }
    );
    let write = forwarded(Request::Delete {
        path: "/a".into(),
        version: -1,
    });
    // Change the cxid (bytes 8+9+8..) but not the request's own xid, and re-checksum.
    let mut body = write[9..].to_vec();
    body[8..12].copy_from_slice(&6i32.to_be_bytes());
    assert_eq!(
        decode(&framed(write[8], &body), MAX_FRAME_BYTES).unwrap_err(),
        WireError::Invalid {
            kind: "forwarded request",
            reason: "the request's xid is not the forwarded cxid"
        }
    );
}

#[test]
fn a_snapshot_travels_in_chunks_and_is_put_back_together_only_in_order() {
    use rzk_peer::wire::{encode_frames, SnapAssembler, MAX_SNAPSHOT_BYTES, SNAP_CHUNK_BYTES};
    let data: Vec<u8> = (0..2 * SNAP_CHUNK_BYTES + 7).map(|i| i as u8).collect();
    let snap = Frame::Message(Message::Snap {
        zxid: Zxid::new(2, 9),
        data: data.clone().into(),
    });
    let frames = encode_frames(&snap);
    assert_eq!(frames.len(), 3);
    let chunks: Vec<Frame> = frames
        .iter()
        .map(|f| decode(f, MAX_FRAME_BYTES).unwrap().unwrap().0)
        .collect();
    let mut slot = None;
    let mut whole = None;
    for chunk in &chunks {
        let Frame::SnapChunk {
            zxid,
            total,
            offset,
            data,
        } = chunk
        else {
            panic!("{chunk:?}");
        };
        assert!(data.len() <= SNAP_CHUNK_BYTES);
        assert!(whole.is_none(), "nothing before the last chunk");
        whole = SnapAssembler::push(&mut slot, *zxid, *total, *offset, data).unwrap();
    }
    match whole {
        Some(Message::Snap { zxid, data: got }) => {
            assert_eq!(zxid, Zxid::new(2, 9));
            assert!(got[..] == data[..]);
        }
        other => panic!("{other:?}"),
    }
    // Out of order, another snapshot's chunk, past the size, too large: refused.
    let parts = |c: &Frame| match c {
        Frame::SnapChunk {
            zxid,
            total,
            offset,
            data,
        } => (*zxid, *total, *offset, data.clone()),
        other => panic!("{other:?}"),
    };
    let (z, t, _, d) = parts(&chunks[1]);
    assert!(SnapAssembler::push(&mut None, z, t, SNAP_CHUNK_BYTES as u64, &d).is_err());
    let mut slot = None;
    let (z, t, o, d) = parts(&chunks[0]);
    SnapAssembler::push(&mut slot, z, t, o, &d).unwrap();
    assert!(SnapAssembler::push(&mut slot, Zxid::new(2, 10), t, o + d.len() as u64, &d).is_err());
    assert!(SnapAssembler::push(&mut None, z, 3, 0, &[1, 2, 3, 4]).is_err());
    assert!(SnapAssembler::push(&mut None, z, MAX_SNAPSHOT_BYTES + 1, 0, &[1]).is_err());
    // An empty snapshot is one empty chunk.
    let empty = encode_frames(&Frame::Message(Message::Snap {
        zxid: z,
        data: Vec::new().into(),
    }));
    assert_eq!(empty.len(), 1);
}
