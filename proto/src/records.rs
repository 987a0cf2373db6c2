//! Jute records shared by requests and replies (`zookeeper.jute`, modules `data` and `proto`).

use crate::codec::{DecodeError, Reader, Writer};

/// `org.apache.zookeeper.data.Stat`, field order as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl Stat {
    pub const ENCODED_BYTES: usize = 8 * 4 + 4 * 3 + 8 + 4 * 2 + 8;

    pub fn encode(&self, w: &mut Writer) {
        w.long(self.czxid);
        w.long(self.mzxid);
        w.long(self.ctime);
        w.long(self.mtime);
        w.int(self.version);
        w.int(self.cversion);
        w.int(self.aversion);
        w.long(self.ephemeral_owner);
        w.int(self.data_length);
        w.int(self.num_children);
        w.long(self.pzxid);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Stat {
            czxid: r.long()?,
            mzxid: r.long()?,
            ctime: r.long()?,
            mtime: r.long()?,
            version: r.int()?,
            cversion: r.int()?,
            aversion: r.int()?,
            ephemeral_owner: r.long()?,
            data_length: r.int()?,
            num_children: r.int()?,
            pzxid: r.long()?,
        })
    }
}

/// An identity: scheme plus scheme-specific id (`digest` → `user:base64(sha1)`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: &str, id: &str) -> Self {
        Id {
            scheme: scheme.to_owned(),
            id: id.to_owned(),
        }
    }

    pub fn encode(&self, w: &mut Writer) {
        w.ustring(&self.scheme);
        w.ustring(&self.id);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Id {
            // kazoo writes "" as null; ZooKeeper stores it as null, compared like "".
            scheme: r.ustring_opt()?.unwrap_or_default(),
            id: r.ustring_opt()?.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    pub fn encode(&self, w: &mut Writer) {
        w.int(self.perms);
        self.id.encode(w);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Acl {
            perms: r.int()?,
            id: Id::decode(r)?,
        })
    }

    pub fn encode_list(acl: &[Acl], w: &mut Writer) {
        w.int(acl.len() as i32);
        for a in acl {
            a.encode(w);
        }
    }

    pub fn decode_list(r: &mut Reader<'_>) -> Result<Vec<Acl>, DecodeError> {
        let n = r.vec_len()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(Acl::decode(r)?);
        }
        Ok(out)
    }

    /// `ZooDefs.Ids.OPEN_ACL_UNSAFE`.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: crate::perms::ALL,
            id: Id::new("world", "anyone"),
        }]
    }

    /// `ZooDefs.Ids.READ_ACL_UNSAFE`.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: crate::perms::READ,
            id: Id::new("world", "anyone"),
        }]
    }
}

/// The first frame of a client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// `None` when an old client left the trailing byte out; the reply then omits it too.
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    pub fn decode(frame: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(frame);
        let req = ConnectRequest {
            protocol_version: r.int()?,
            last_zxid_seen: r.long()?,
            timeout_ms: r.int()?,
            session_id: r.long()?,
            passwd: r.buffer()?.unwrap_or_default().to_vec(),
            read_only: if r.is_empty() { None } else { Some(r.bool()?) },
        };
        // Trailing bytes are ignored, as ZooKeeper's deserializer does.
        Ok(req)
    }

    pub fn encode_frame(&self) -> Vec<u8> {
        let mut w = Writer::frame();
        w.int(self.protocol_version);
        w.long(self.last_zxid_seen);
        w.int(self.timeout_ms);
        w.long(self.session_id);
        w.buffer(Some(&self.passwd));
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
        w.finish_frame()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// Sent only when the request carried the readOnly byte.
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    pub fn encode_frame(&self) -> Vec<u8> {
        let mut w = Writer::frame();
        w.int(self.protocol_version);
        w.int(self.timeout_ms);
        w.long(self.session_id);
        w.buffer(Some(&self.passwd));
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
        w.finish_frame()
    }

    pub fn decode(frame: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(frame);
        let resp = ConnectResponse {
            protocol_version: r.int()?,
            timeout_ms: r.int()?,
            session_id: r.long()?,
            passwd: r.buffer()?.unwrap_or_default().to_vec(),
            read_only: if r.is_empty() { None } else { Some(r.bool()?) },
        };
        r.finish()?;
        Ok(resp)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub op: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

impl ReplyHeader {
    pub fn encode(&self, w: &mut Writer) {
        w.int(self.xid);
        w.long(self.zxid);
        w.int(self.err);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReplyHeader {
            xid: r.int()?,
            zxid: r.long()?,
            err: r.int()?,
        })
    }
}

/// A watch notification, sent with xid -1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

impl WatcherEvent {
    /// The whole frame: ReplyHeader(xid -1, zxid, 0) then the event.
    pub fn encode_frame(&self, zxid: i64) -> Vec<u8> {
        let mut w = Writer::frame();
        ReplyHeader {
            xid: crate::xid::WATCH_EVENT,
            zxid,
            err: 0,
        }
        .encode(&mut w);
        w.int(self.event_type);
        w.int(self.state);
        w.ustring(&self.path);
        w.finish_frame()
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(WatcherEvent {
            event_type: r.int()?,
            state: r.int()?,
            path: r.ustring()?,
        })
    }
}

/// One entry of a `whoAmI` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub auth_scheme: String,
    pub user: String,
}
