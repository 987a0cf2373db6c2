//! The frame every byte between two rzk servers travels in, and the body of each message.
//!
//! ```text
//! frame := length:u32  crc32c:u32  kind:u8  body
//!          length counts what follows it (checksum, kind and body); the checksum covers
//!          kind and body; integers are big-endian, strings and buffers jute-encoded.
//! ```
//!
//! The first frame on any connection is a `Hello` (kind 0): the magic `rzkP`, the wire
//! version and the sender's server id and channel. A reader refuses a peer that sends
//! anything else first, speaks another version, or is not in its membership, before it
//! reads a single message: a frame from a stranger never reaches the quorum core.
//!
//! With quorum SASL (quorum.auth.*) the handshake has more frames, all before the link
//! forms and none after it (`Handshake`): a dialer that authenticates opens with a
//! `SaslHello` instead of a `Hello`, then sends `SaslToken`s, and the acceptor answers each
//! with a `SaslAnswer` (in progress, success, error), its `Hello` coming only after success.
//!
//! rzk's own format, not ZooKeeper's: rzk servers form ensembles only with rzk servers, and
//! a checksum per frame catches what TCP's 16-bit one lets through.

use std::sync::Arc;

use rzk_pipeline::{Forwarded, ForwardedOp};
use rzk_proto::{decode_request, encode_request, DecodeError, Id, Reader, Request, Writer, Zxid};
use rzk_quorum::{Entry, Message, PeerState, Sid, Vote};

/// The wire version this build speaks. A peer that speaks another is refused at its hello.
pub const VERSION: i32 = 3;
const MAGIC: &[u8; 4] = b"rzkP";

/// A boolean as this wire writes it, 0 or 1. Jute's reader takes any non-zero byte as true;
/// here that would let two byte strings mean one frame, and a frame must re-encode to the
/// very bytes it was read from (the fuzz target `peer` checks it).
fn flag(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.byte()? {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(DecodeError::Unknown {
            what: "boolean byte",
            value: i32::from(value),
        }),
    }
}

/// The largest frame a reader accepts from a linked peer: one announcing more is refused
/// before anything of it is buffered. A proposal batch is far smaller; a SNAP travels in one
/// frame today (its compressed snapshot), which bounds the tree an ensemble can resync.
pub const MAX_FRAME_BYTES: usize = 1 << 30;

/// A SNAP travels as frames of at most this much of the snapshot each: no frame is larger
/// than a proposal batch, and the transport admits them to the socket as it drains.
pub const SNAP_CHUNK_BYTES: usize = 4 << 20;

/// The largest snapshot a learner assembles from chunks (its size is announced first).
pub const MAX_SNAPSHOT_BYTES: u64 = 64 << 30;

/// The largest frame before the hello names a listed server: a stranger gets no more.
pub const MAX_HELLO_BYTES: usize = 1024;

/// The largest handshake frame once the hello names a listed server that authenticates: a
/// SASL token (at most `rzk_sasl::TOKEN_BYTES_MAX`, as the JDK's) and its framing.
pub const MAX_SASL_FRAME_BYTES: usize = MAX_HELLO_BYTES + rzk_sasl::TOKEN_BYTES_MAX;

/// Checksum and kind.
const FRAME_OVERHEAD: usize = 4 + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// electionPort: fast leader election's notifications.
    Election,
    /// quorumPort: discovery, synchronisation, broadcast, and learners' forwarded requests.
    Quorum,
}

/// The opening frame of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub sid: Sid,
    pub channel: Channel,
}

/// What travels on a connection before it is a link: the hellos and, with quorum SASL, the
/// exchange between them. Never a `Frame`: the quorum core never sees any of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    Hello(Hello),
    /// The dialer's hello when it authenticates (quorum.auth.learnerRequireSasl): SASL
    /// tokens follow, and the acceptor answers with its hello only after success.
    SaslHello(Hello),
    /// The dialer's next DIGEST-MD5 token (the first is empty).
    SaslToken(Vec<u8>),
    /// The acceptor's answer to a token, as ZooKeeper's QuorumAuthPacket status.
    SaslAnswer {
        status: SaslStatus,
        token: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslStatus {
    /// `token` is a challenge: answer it.
    InProgress,
    /// `token` is the rspauth; the acceptor's hello follows.
    Success,
    /// Refused; the acceptor closes the connection.
    Error,
}

#[derive(Debug)]
pub enum Frame {
    Hello(Hello),
    Message(Message),
    /// A learner's client write or new session, for the leader (rides the quorum channel, so
    /// it keeps its order with the learner's other messages).
    Forward(Forwarded),
    /// The leader refused a learner's forwarded write `cxid` of `session_id`: the session
    /// had attached on another server since (ZooKeeper's SessionMoved).
    Moved {
        session_id: i64,
        cxid: i32,
    },
    /// A piece of a SNAP: bytes `offset..offset + data.len()` of the `total`-byte snapshot
    /// at `zxid`. `encode` cuts a `Message::Snap` into these; a `SnapAssembler` puts them
    /// back together, and only the whole SNAP reaches the quorum core.
    SnapChunk {
        zxid: Zxid,
        total: u64,
        offset: u64,
        data: Vec<u8>,
    },
}

/// Puts a SNAP's chunks back together, checking that they come in order and add up.
#[derive(Debug)]
pub struct SnapAssembler {
    zxid: Zxid,
    total: u64,
    data: Vec<u8>,
}

impl SnapAssembler {
    /// Takes the next chunk of the stream in `slot` (starting one if empty); returns the
    /// whole SNAP with its last chunk. Any inconsistency is final for the connection.
    pub fn push(
        slot: &mut Option<SnapAssembler>,
        zxid: Zxid,
        total: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<Option<Message>, WireError> {
        let invalid = |reason| WireError::Invalid {
            kind: "SNAP chunk",
            reason,
        };
        let assembler = match slot {
            Some(a) => {
                if a.zxid != zxid || a.total != total {
                    return Err(invalid("a chunk of another snapshot inside a SNAP"));
                }
                a
            }
            None => {
                if total > MAX_SNAPSHOT_BYTES {
                    return Err(invalid("the snapshot is over the size a learner accepts"));
                }
                // Grown as chunks arrive: an announced size is not yet a received one.
                let capacity = total.min(SNAP_CHUNK_BYTES as u64 * 4) as usize;
                slot.insert(SnapAssembler {
                    zxid,
                    total,
                    data: Vec::with_capacity(capacity),
                })
            }
        };
        if offset != assembler.data.len() as u64 {
            return Err(invalid("a SNAP chunk out of order"));
        }
        if offset + data.len() as u64 > total {
            return Err(invalid("SNAP chunks past the announced size"));
        }
        assembler.data.extend_from_slice(data);
        if (assembler.data.len() as u64) < total {
            return Ok(None);
        }
        let done = slot.take().expect("assembling");
        Ok(Some(Message::Snap {
            zxid: done.zxid,
            data: Arc::from(done.data),
        }))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("frame of {length} bytes is over the {limit}-byte limit")]
    TooLarge { length: usize, limit: usize },
    #[error("frame of {length} bytes is too short to hold a checksum and a kind")]
    TooShort { length: usize },
    #[error("frame checksum {found:#010x} does not match its contents ({computed:#010x})")]
    Checksum { found: u32, computed: u32 },
    #[error("unknown frame kind {kind}")]
    UnknownKind { kind: u8 },
    #[error("not an rzk server: its hello lacks the magic")]
    NotRzk,
    #[error("wire version {theirs}, this server speaks {ours}")]
    Version { theirs: i32, ours: i32 },
    #[error("malformed {kind} frame: {source}")]
    Malformed {
        kind: &'static str,
        source: DecodeError,
    },
    #[error("a {kind} frame {when}")]
    Unexpected {
        kind: &'static str,
        when: &'static str,
    },
    #[error("malformed {kind} frame: {reason}")]
    Invalid {
        kind: &'static str,
        reason: &'static str,
    },
}

mod kind {
    pub const HELLO: u8 = 0;
    pub const NOTIFICATION: u8 = 1;
    pub const FOLLOWER_INFO: u8 = 2;
    pub const LEADER_INFO: u8 = 3;
    pub const ACK_EPOCH: u8 = 4;
    pub const TRUNC: u8 = 5;
    pub const SNAP: u8 = 6;
    pub const DIFF: u8 = 7;
    pub const NEW_LEADER: u8 = 8;
    pub const ACK_NEW_LEADER: u8 = 9;
    pub const UP_TO_DATE: u8 = 10;
    pub const PROPOSAL: u8 = 11;
    pub const ACK: u8 = 12;
    pub const COMMIT: u8 = 13;
    pub const INFORM: u8 = 14;
    pub const PING: u8 = 15;
    pub const PING_REPLY: u8 = 16;
    pub const SYNC_REQUEST: u8 = 17;
    pub const SYNC_REPLY: u8 = 18;
    pub const NEW_EPOCH: u8 = 19;
    pub const ACK_NEW_EPOCH: u8 = 20;
    pub const FORWARD: u8 = 30;
    pub const MOVED: u8 = 31;
    pub const SASL_HELLO: u8 = 40;
    pub const SASL_TOKEN: u8 = 41;
    pub const SASL_ANSWER: u8 = 42;
}

/// Appends `frame`, whole, to `out` (a SNAP as its chunk frames, back to back).
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    for bytes in encode_frames(frame) {
        out.extend_from_slice(&bytes);
    }
}

/// `frame` as the frames it travels in, each in its own buffer: one, or a SNAP's chunks.
pub fn encode_frames(frame: &Frame) -> Vec<Vec<u8>> {
    let Frame::Message(Message::Snap { zxid, data }) = frame else {
        let mut out = Vec::new();
        encode_one(frame, &mut out);
        return vec![out];
    };
    let total = data.len() as u64;
    let mut frames = Vec::with_capacity(data.len() / SNAP_CHUNK_BYTES + 1);
    let mut offset = 0usize;
    loop {
        let end = (offset + SNAP_CHUNK_BYTES).min(data.len());
        let mut out = Vec::with_capacity(end - offset + 64);
        encode_one(
            &Frame::SnapChunk {
                zxid: *zxid,
                total,
                offset: offset as u64,
                data: data[offset..end].to_vec(),
            },
            &mut out,
        );
        frames.push(out);
        offset = end;
        if offset == data.len() {
            return frames;
        }
    }
}

fn encode_one(frame: &Frame, out: &mut Vec<u8>) {
    let mut w = Writer::new();
    let kind = match frame {
        Frame::Hello(hello) => {
            encode_hello(hello, &mut w);
            kind::HELLO
        }
        Frame::Message(message) => encode_message(message, &mut w),
        Frame::Forward(forwarded) => {
            encode_forwarded(forwarded, &mut w);
            kind::FORWARD
        }
        Frame::Moved { session_id, cxid } => {
            w.long(*session_id);
            w.int(*cxid);
            kind::MOVED
        }
        Frame::SnapChunk {
            zxid: z,
            total,
            offset,
            data,
        } => {
            zxid(&mut w, *z);
            w.long(*total as i64);
            w.long(*offset as i64);
            w.buffer(Some(data));
            kind::SNAP
        }
    };
    frame_out(kind, &w.bytes, out);
}

fn frame_out(kind: u8, body: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32c::crc32c(&[kind]);
    crc = crc32c::crc32c_append(crc, body);
    let length = (FRAME_OVERHEAD + body.len()) as u32;
    out.reserve(4 + length as usize);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&crc.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
}

fn encode_hello(hello: &Hello, w: &mut Writer) {
    w.bytes.extend_from_slice(MAGIC);
    w.int(VERSION);
    w.long(hello.sid as i64);
    w.bool(hello.channel == Channel::Quorum);
}

/// Appends one handshake frame to `out`.
pub fn encode_handshake(handshake: &Handshake, out: &mut Vec<u8>) {
    let mut w = Writer::new();
    let kind = match handshake {
        Handshake::Hello(hello) => {
            encode_hello(hello, &mut w);
            kind::HELLO
        }
        Handshake::SaslHello(hello) => {
            encode_hello(hello, &mut w);
            kind::SASL_HELLO
        }
        Handshake::SaslToken(token) => {
            w.buffer(Some(token));
            kind::SASL_TOKEN
        }
        Handshake::SaslAnswer { status, token } => {
            // ZooKeeper's QuorumAuth.Status values.
            w.int(match status {
                SaslStatus::InProgress => 0,
                SaslStatus::Success => 1,
                SaslStatus::Error => -1,
            });
            w.buffer(Some(token));
            kind::SASL_ANSWER
        }
    };
    frame_out(kind, &w.bytes, out);
}

/// The first whole frame in `buf` and how many bytes it took; `None` while `buf` holds only
/// part of one. Every error is final for the connection: the stream cannot be resynchronised
/// after a bad length or checksum.
pub fn decode(buf: &[u8], limit: usize) -> Result<Option<(Frame, usize)>, WireError> {
    let Some((kind, body, used)) = split_frame(buf, limit)? else {
        return Ok(None);
    };
    if let Some(name) = sasl_kind_name(kind) {
        return Err(WireError::Unexpected {
            kind: name,
            when: "after the hellos",
        });
    }
    Ok(Some((decode_body(kind, body)?, used)))
}

/// `decode` for a connection that is not yet a link: the first whole handshake frame in
/// `buf`. Anything else there is refused, as every error is final.
pub fn decode_handshake(buf: &[u8], limit: usize) -> Result<Option<(Handshake, usize)>, WireError> {
    let Some((kind, body, used)) = split_frame(buf, limit)? else {
        return Ok(None);
    };
    let name = match kind_name(kind).or_else(|| sasl_kind_name(kind)) {
        Some(name) => name,
        None => return Err(WireError::UnknownKind { kind }),
    };
    let malformed = |source| WireError::Malformed { kind: name, source };
    let mut r = Reader::new(body);
    let handshake = match kind {
        // decode_hello reads the whole body itself.
        kind::HELLO => return Ok(Some((Handshake::Hello(decode_hello(body, name)?), used))),
        kind::SASL_HELLO => {
            return Ok(Some((
                Handshake::SaslHello(decode_hello(body, name)?),
                used,
            )))
        }
        kind::SASL_TOKEN => Handshake::SaslToken(read_token(&mut r, name)?),
        kind::SASL_ANSWER => {
            let status = match r.int().map_err(malformed)? {
                0 => SaslStatus::InProgress,
                1 => SaslStatus::Success,
                -1 => SaslStatus::Error,
                _ => {
                    return Err(WireError::Invalid {
                        kind: name,
                        reason: "unknown status",
                    })
                }
            };
            Handshake::SaslAnswer {
                status,
                token: read_token(&mut r, name)?,
            }
        }
        _ => {
            return Err(WireError::Unexpected {
                kind: name,
                when: "before the hellos",
            })
        }
    };
    r.finish().map_err(malformed)?;
    Ok(Some((handshake, used)))
}

fn sasl_kind_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        kind::SASL_HELLO => "SASL hello",
        kind::SASL_TOKEN => "SASL token",
        kind::SASL_ANSWER => "SASL answer",
        _ => return None,
    })
}

fn read_token(r: &mut Reader<'_>, kind: &'static str) -> Result<Vec<u8>, WireError> {
    let malformed = |source| WireError::Malformed { kind, source };
    let at = r.offset();
    let token = r
        .buffer()
        .map_err(malformed)?
        .ok_or(malformed(DecodeError::Null { offset: at }))?;
    if token.len() > rzk_sasl::TOKEN_BYTES_MAX {
        return Err(WireError::Invalid {
            kind,
            reason: "a SASL token over the JDK's limit",
        });
    }
    Ok(token.to_vec())
}

fn decode_hello(body: &[u8], name: &'static str) -> Result<Hello, WireError> {
    let malformed = |source| WireError::Malformed { kind: name, source };
    if body.get(..4) != Some(&MAGIC[..]) {
        return Err(WireError::NotRzk);
    }
    let mut r = Reader::new(&body[4..]);
    let theirs = r.int().map_err(malformed)?;
    if theirs != VERSION {
        return Err(WireError::Version {
            theirs,
            ours: VERSION,
        });
    }
    let sid = r.long().map_err(malformed)? as u64;
    let channel = if flag(&mut r).map_err(malformed)? {
        Channel::Quorum
    } else {
        Channel::Election
    };
    r.finish().map_err(malformed)?;
    Ok(Hello { sid, channel })
}

/// A whole frame, its length and checksum checked: kind, body, and the bytes it took.
type RawFrame<'a> = (u8, &'a [u8], usize);

/// The first whole frame in `buf`; `None` while only part of one is there.
fn split_frame(buf: &[u8], limit: usize) -> Result<Option<RawFrame<'_>>, WireError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let length = u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
    if length > limit {
        return Err(WireError::TooLarge { length, limit });
    }
    if length < FRAME_OVERHEAD {
        return Err(WireError::TooShort { length });
    }
    let Some(rest) = buf.get(4..4 + length) else {
        return Ok(None);
    };
    let found = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(&rest[4..]);
    if found != computed {
        return Err(WireError::Checksum { found, computed });
    }
    Ok(Some((rest[4], &rest[5..], 4 + length)))
}

fn decode_body(kind: u8, body: &[u8]) -> Result<Frame, WireError> {
    let name = kind_name(kind).ok_or(WireError::UnknownKind { kind })?;
    let malformed = |source| WireError::Malformed { kind: name, source };
    let mut r = Reader::new(body);
    let frame = match kind {
        kind::HELLO => return Ok(Frame::Hello(decode_hello(body, name)?)),
        kind::FORWARD => Frame::Forward(decode_forwarded(&mut r, name)?),
        kind::MOVED => Frame::Moved {
            session_id: r.long().map_err(malformed)?,
            cxid: r.int().map_err(malformed)?,
        },
        kind::SNAP => {
            let zxid = read_zxid(&mut r).map_err(malformed)?;
            let total = r.long().map_err(malformed)? as u64;
            let offset = r.long().map_err(malformed)? as u64;
            let at = r.offset();
            let data = r
                .buffer()
                .map_err(malformed)?
                .ok_or(malformed(DecodeError::Null { offset: at }))?;
            Frame::SnapChunk {
                zxid,
                total,
                offset,
                data: data.to_vec(),
            }
        }
        _ => Frame::Message(decode_message(kind, &mut r).map_err(malformed)?),
    };
    r.finish().map_err(malformed)?;
    Ok(frame)
}

fn kind_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        kind::HELLO => "hello",
        kind::NOTIFICATION => "notification",
        kind::FOLLOWER_INFO => "FOLLOWERINFO",
        kind::LEADER_INFO => "LEADERINFO",
        kind::ACK_EPOCH => "ACKEPOCH",
        kind::TRUNC => "TRUNC",
        kind::SNAP => "SNAP chunk",
        kind::DIFF => "DIFF",
        kind::NEW_LEADER => "NEWLEADER",
        kind::ACK_NEW_LEADER => "ACK of NEWLEADER",
        kind::UP_TO_DATE => "UPTODATE",
        kind::PROPOSAL => "PROPOSAL",
        kind::ACK => "ACK",
        kind::COMMIT => "COMMIT",
        kind::INFORM => "INFORM",
        kind::PING => "PING",
        kind::PING_REPLY => "PING reply",
        kind::SYNC_REQUEST => "SYNC request",
        kind::SYNC_REPLY => "SYNC reply",
        kind::NEW_EPOCH => "NEWEPOCH",
        kind::ACK_NEW_EPOCH => "ACK of NEWEPOCH",
        kind::FORWARD => "forwarded request",
        kind::MOVED => "session moved",
        _ => return None,
    })
}

fn zxid(w: &mut Writer, zxid: Zxid) {
    w.long(zxid.as_i64());
}

fn epoch(w: &mut Writer, epoch: u32) {
    w.int(epoch as i32);
}

fn entries(w: &mut Writer, entries: &[Entry]) {
    w.int(entries.len() as i32);
    for entry in entries {
        zxid(w, entry.zxid);
        w.buffer(Some(&entry.data));
    }
}

fn encode_message(message: &Message, w: &mut Writer) -> u8 {
    match message {
        Message::Notification { vote, round, state } => {
            epoch(w, vote.epoch);
            zxid(w, vote.zxid);
            w.long(vote.leader as i64);
            w.long(*round as i64);
            w.int(match state {
                PeerState::Looking => 0,
                PeerState::Following => 1,
                PeerState::Leading => 2,
                PeerState::Observing => 3,
            });
            kind::NOTIFICATION
        }
        Message::FollowerInfo {
            accepted_epoch,
            last_zxid,
            observer,
        } => {
            epoch(w, *accepted_epoch);
            zxid(w, *last_zxid);
            w.bool(*observer);
            kind::FOLLOWER_INFO
        }
        Message::LeaderInfo { epoch: e } => {
            epoch(w, *e);
            kind::LEADER_INFO
        }
        Message::AckEpoch {
            epoch: e,
            fresh,
            current_epoch,
            last_zxid,
            snap,
        } => {
            epoch(w, *e);
            w.bool(*fresh);
            epoch(w, *current_epoch);
            zxid(w, *last_zxid);
            w.bool(*snap);
            kind::ACK_EPOCH
        }
        Message::Trunc { after } => {
            zxid(w, *after);
            kind::TRUNC
        }
        Message::Snap { .. } => unreachable!("a SNAP travels as SnapChunk frames"),
        Message::Diff { entries: e } => {
            entries(w, e);
            kind::DIFF
        }
        Message::NewLeader {
            epoch: e,
            last,
            committed,
        } => {
            epoch(w, *e);
            zxid(w, *last);
            zxid(w, *committed);
            kind::NEW_LEADER
        }
        Message::AckNewLeader { epoch: e } => {
            epoch(w, *e);
            kind::ACK_NEW_LEADER
        }
        Message::UpToDate { committed } => {
            zxid(w, *committed);
            kind::UP_TO_DATE
        }
        Message::Proposal { entries: e } => {
            entries(w, e);
            kind::PROPOSAL
        }
        Message::Ack { zxid: z } => {
            zxid(w, *z);
            kind::ACK
        }
        Message::Commit { zxid: z } => {
            zxid(w, *z);
            kind::COMMIT
        }
        Message::Inform { entries: e } => {
            entries(w, e);
            kind::INFORM
        }
        Message::Ping { round } => {
            w.long(*round as i64);
            kind::PING
        }
        Message::PingReply { round, touches } => {
            w.long(*round as i64);
            w.int(touches.len() as i32);
            for &session in touches {
                w.long(session);
            }
            kind::PING_REPLY
        }
        Message::SyncRequest { id } => {
            w.long(*id as i64);
            kind::SYNC_REQUEST
        }
        Message::SyncReply { id, zxid: z } => {
            w.long(*id as i64);
            zxid(w, *z);
            kind::SYNC_REPLY
        }
        Message::NewEpoch { epoch: e } => {
            epoch(w, *e);
            kind::NEW_EPOCH
        }
        Message::AckNewEpoch { epoch: e, fresh } => {
            epoch(w, *e);
            w.bool(*fresh);
            kind::ACK_NEW_EPOCH
        }
    }
}

fn read_zxid(r: &mut Reader<'_>) -> Result<Zxid, DecodeError> {
    Ok(Zxid::from_i64(r.long()?))
}

fn read_epoch(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    Ok(r.int()? as u32)
}

fn read_entries(r: &mut Reader<'_>) -> Result<Vec<Entry>, DecodeError> {
    let count = r.vec_len()?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let zxid = read_zxid(r)?;
        let offset = r.offset();
        let data = r.buffer()?.ok_or(DecodeError::Null { offset })?;
        out.push(Entry {
            zxid,
            data: Arc::from(data),
        });
    }
    Ok(out)
}

fn decode_message(kind: u8, r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    Ok(match kind {
        kind::NOTIFICATION => {
            let vote = Vote {
                epoch: read_epoch(r)?,
                zxid: read_zxid(r)?,
                leader: r.long()? as u64,
            };
            let round = r.long()? as u64;
            let state = match r.int()? {
                0 => PeerState::Looking,
                1 => PeerState::Following,
                2 => PeerState::Leading,
                3 => PeerState::Observing,
                value => {
                    return Err(DecodeError::Unknown {
                        what: "peer state",
                        value,
                    })
                }
            };
            Message::Notification { vote, round, state }
        }
        kind::FOLLOWER_INFO => Message::FollowerInfo {
            accepted_epoch: read_epoch(r)?,
            last_zxid: read_zxid(r)?,
            observer: flag(r)?,
        },
        kind::LEADER_INFO => Message::LeaderInfo {
            epoch: read_epoch(r)?,
        },
        kind::ACK_EPOCH => Message::AckEpoch {
            epoch: read_epoch(r)?,
            fresh: flag(r)?,
            current_epoch: read_epoch(r)?,
            last_zxid: read_zxid(r)?,
            snap: flag(r)?,
        },
        kind::TRUNC => Message::Trunc {
            after: read_zxid(r)?,
        },
        kind::DIFF => Message::Diff {
            entries: read_entries(r)?,
        },
        kind::NEW_LEADER => Message::NewLeader {
            epoch: read_epoch(r)?,
            last: read_zxid(r)?,
            committed: read_zxid(r)?,
        },
        kind::ACK_NEW_LEADER => Message::AckNewLeader {
            epoch: read_epoch(r)?,
        },
        kind::UP_TO_DATE => Message::UpToDate {
            committed: read_zxid(r)?,
        },
        kind::PROPOSAL => Message::Proposal {
            entries: read_entries(r)?,
        },
        kind::ACK => Message::Ack {
            zxid: read_zxid(r)?,
        },
        kind::COMMIT => Message::Commit {
            zxid: read_zxid(r)?,
        },
        kind::INFORM => Message::Inform {
            entries: read_entries(r)?,
        },
        kind::PING => Message::Ping {
            round: r.long()? as u64,
        },
        kind::PING_REPLY => {
            let round = r.long()? as u64;
            let count = r.vec_len()?;
            let mut touches = Vec::with_capacity(count);
            for _ in 0..count {
                touches.push(r.long()?);
            }
            Message::PingReply { round, touches }
        }
        kind::SYNC_REQUEST => Message::SyncRequest {
            id: r.long()? as u64,
        },
        kind::SYNC_REPLY => Message::SyncReply {
            id: r.long()? as u64,
            zxid: read_zxid(r)?,
        },
        kind::NEW_EPOCH => Message::NewEpoch {
            epoch: read_epoch(r)?,
        },
        kind::ACK_NEW_EPOCH => Message::AckNewEpoch {
            epoch: read_epoch(r)?,
            fresh: flag(r)?,
        },
        other => unreachable!("kind {other} is named but not a message"),
    })
}

fn encode_forwarded(f: &Forwarded, w: &mut Writer) {
    w.long(f.session_id);
    w.int(f.cxid);
    w.int(f.auth_ids.len() as i32);
    for id in &f.auth_ids {
        w.ustring(&id.scheme);
        w.ustring(&id.id);
    }
    match &f.op {
        ForwardedOp::Request(request) => {
            w.int(0);
            // The client's own frame, without its length prefix: the leader decodes it with
            // the decoder every client request goes through.
            let frame = encode_request(f.cxid, request);
            w.buffer(Some(&frame[4..]));
        }
        ForwardedOp::CreateSession { timeout_ms, passwd } => {
            w.int(1);
            w.int(*timeout_ms);
            w.buffer(Some(passwd));
        }
        ForwardedOp::Attach { timeout_ms } => {
            w.int(2);
            w.int(*timeout_ms);
        }
    }
}

fn decode_forwarded(r: &mut Reader<'_>, kind: &'static str) -> Result<Forwarded, WireError> {
    let malformed = |source| WireError::Malformed { kind, source };
    let invalid = |reason| WireError::Invalid { kind, reason };
    let session_id = r.long().map_err(malformed)?;
    let cxid = r.int().map_err(malformed)?;
    let count = r.vec_len().map_err(malformed)?;
    let mut auth_ids = Vec::with_capacity(count);
    for _ in 0..count {
        let scheme = r.ustring().map_err(malformed)?;
        let id = r.ustring().map_err(malformed)?;
        auth_ids.push(Id { scheme, id });
    }
    let op = match r.int().map_err(malformed)? {
        0 => {
            let offset = r.offset();
            let body = r
                .buffer()
                .map_err(malformed)?
                .ok_or(malformed(DecodeError::Null { offset }))?;
            let (header, request) = decode_request(body).map_err(malformed)?;
            if header.xid != cxid {
                return Err(invalid("the request's xid is not the forwarded cxid"));
            }
            // A learner forwards only writes it decoded itself.
            if !(request.is_write() || matches!(request, Request::Reconfig)) {
                return Err(invalid("not a write"));
            }
            ForwardedOp::Request(request)
        }
        1 => {
            let timeout_ms = r.int().map_err(malformed)?;
            let offset = r.offset();
            let passwd = r
                .buffer()
                .map_err(malformed)?
                .ok_or(malformed(DecodeError::Null { offset }))?;
            let passwd: [u8; 16] = passwd
                .try_into()
                .map_err(|_| invalid("a session password is 16 bytes"))?;
            ForwardedOp::CreateSession { timeout_ms, passwd }
        }
        2 => ForwardedOp::Attach {
            timeout_ms: r.int().map_err(malformed)?,
        },
        _ => return Err(invalid("unknown forwarded operation")),
    };
    Ok(Forwarded {
        session_id,
        cxid,
        auth_ids,
        op,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `peer` fuzz target: a boolean byte of 0xa1 decoded as true and
    /// re-encoded as 1, so two byte strings meant one frame.
    #[test]
    fn a_boolean_byte_other_than_0_or_1_is_refused() {
        let mut w = Writer::new();
        let kind = encode_message(
            &Message::FollowerInfo {
                accepted_epoch: 3,
                last_zxid: Zxid::from_i64(0x3_0000_0007),
                observer: true,
            },
            &mut w,
        );
        let mut body = w.bytes.clone();
        let mut out = Vec::new();
        frame_out(kind, &body, &mut out);
        let (frame, _) = decode(&out, MAX_FRAME_BYTES).unwrap().unwrap();
        assert!(
            matches!(
                frame,
                Frame::Message(Message::FollowerInfo { observer: true, .. })
            ),
            "{frame:?}"
        );
        *body.last_mut().unwrap() = 0xa1;
        let mut out = Vec::new();
        frame_out(kind, &body, &mut out);
        assert!(decode(&out, MAX_FRAME_BYTES).is_err());
    }
}
