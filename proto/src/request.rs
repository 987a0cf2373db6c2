//! Client requests: `RequestHeader` followed by the op's record.

use crate::codec::{DecodeError, Reader, Writer};
use crate::consts::OpCode;
use crate::records::{Acl, RequestHeader};

/// `CreateRequest` / `CreateTTLRequest`; `op` says which of create, create2, createContainer
/// and createTTL carried it, since that decides the reply's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub op: OpCode,
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    /// Only createTTL carries a ttl; -1 otherwise.
    pub ttl_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetWatchesRequest {
    /// setWatches2 (105) rather than setWatches (101): only it carries persistent lists.
    pub v2: bool,
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    /// Only setWatches2 carries the persistent lists.
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// One operation inside multi (14) or multiRead (22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    GetChildren {
        path: String,
    },
    GetData {
        path: String,
    },
}

impl MultiOp {
    pub fn op(&self) -> OpCode {
        match self {
            MultiOp::Create(c) => c.op,
            MultiOp::Delete { .. } => OpCode::Delete,
            MultiOp::SetData { .. } => OpCode::SetData,
            MultiOp::Check { .. } => OpCode::Check,
            MultiOp::GetChildren { .. } => OpCode::GetChildren,
            MultiOp::GetData { .. } => OpCode::GetData,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(c) => &c.path,
            MultiOp::Delete { path, .. }
            | MultiOp::SetData { path, .. }
            | MultiOp::Check { path, .. }
            | MultiOp::GetChildren { path }
            | MultiOp::GetData { path } => path,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    GetChildren2 {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<MultiOp>),
    MultiRead(Vec<MultiOp>),
    Reconfig,
    CheckWatches {
        path: String,
        watcher_type: i32,
    },
    RemoveWatches {
        path: String,
        watcher_type: i32,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    SetWatches(SetWatchesRequest),
    Auth {
        auth_type: i32,
        scheme: String,
        auth: Vec<u8>,
    },
    /// GetSASLRequest: one token of a SASL exchange (empty to start DIGEST-MD5).
    Sasl {
        token: Vec<u8>,
    },
    WhoAmI,
    CloseSession,
    /// A type this server does not know; ZooKeeper answers Unimplemented and closes.
    Unknown(i32),
    /// A known type whose body did not decode (the event loop builds this, never the
    /// decoder); ZooKeeper answers MarshallingError and keeps the connection.
    Malformed(i32),
}

impl Request {
    pub fn op(&self) -> i32 {
        match self {
            Request::Create(c) => c.op.code(),
            Request::Delete { .. } => OpCode::Delete.code(),
            Request::Exists { .. } => OpCode::Exists.code(),
            Request::GetData { .. } => OpCode::GetData.code(),
            Request::SetData { .. } => OpCode::SetData.code(),
            Request::GetAcl { .. } => OpCode::GetAcl.code(),
            Request::SetAcl { .. } => OpCode::SetAcl.code(),
            Request::GetChildren { .. } => OpCode::GetChildren.code(),
            Request::GetChildren2 { .. } => OpCode::GetChildren2.code(),
            Request::Sync { .. } => OpCode::Sync.code(),
            Request::Ping => OpCode::Ping.code(),
            Request::Check { .. } => OpCode::Check.code(),
            Request::Multi(_) => OpCode::Multi.code(),
            Request::MultiRead(_) => OpCode::MultiRead.code(),
            Request::Reconfig => OpCode::Reconfig.code(),
            Request::CheckWatches { .. } => OpCode::CheckWatches.code(),
            Request::RemoveWatches { .. } => OpCode::RemoveWatches.code(),
            Request::GetEphemerals { .. } => OpCode::GetEphemerals.code(),
            Request::GetAllChildrenNumber { .. } => OpCode::GetAllChildrenNumber.code(),
            Request::AddWatch { .. } => OpCode::AddWatch.code(),
            Request::SetWatches(s) => {
                if s.v2 {
                    OpCode::SetWatches2.code()
                } else {
                    OpCode::SetWatches.code()
                }
            }
            Request::Auth { .. } => OpCode::Auth.code(),
            Request::Sasl { .. } => OpCode::Sasl.code(),
            Request::WhoAmI => OpCode::WhoAmI.code(),
            Request::CloseSession => OpCode::CloseSession.code(),
            Request::Unknown(op) | Request::Malformed(op) => *op,
        }
    }

    /// True for requests that change the tree or the session table and so go through the log.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Delete { .. }
                | Request::SetData { .. }
                | Request::SetAcl { .. }
                | Request::Check { .. }
                | Request::Multi(_)
                | Request::CloseSession
        )
    }
}

fn decode_create(op: OpCode, r: &mut Reader<'_>) -> Result<CreateRequest, DecodeError> {
    Ok(CreateRequest {
        op,
        path: r.ustring()?,
        data: r.buffer()?.map(<[u8]>::to_vec),
        acl: Acl::decode_list(r)?,
        flags: r.int()?,
        ttl_ms: if op == OpCode::CreateTtl {
            r.long()?
        } else {
            -1
        },
    })
}

fn encode_create(c: &CreateRequest, w: &mut Writer) {
    w.ustring(&c.path);
    w.buffer(c.data.as_deref());
    Acl::encode_list(&c.acl, w);
    w.int(c.flags);
    if c.op == OpCode::CreateTtl {
        w.long(c.ttl_ms);
    }
}

/// `MultiHeader`: type, done, err.
fn decode_multi(r: &mut Reader<'_>, read_only: bool) -> Result<Vec<MultiOp>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let op_type = r.int()?;
        let done = r.bool()?;
        let _err = r.int()?;
        if done {
            return Ok(ops);
        }
        let op = OpCode::from_i32(op_type);
        let item = match (op, read_only) {
            (
                Some(
                    op @ (OpCode::Create
                    | OpCode::Create2
                    | OpCode::CreateContainer
                    | OpCode::CreateTtl),
                ),
                false,
            ) => MultiOp::Create(decode_create(op, r)?),
            (Some(OpCode::Delete), false) => MultiOp::Delete {
                path: r.ustring()?,
                version: r.int()?,
            },
            (Some(OpCode::SetData), false) => MultiOp::SetData {
                path: r.ustring()?,
                data: r.buffer()?.map(<[u8]>::to_vec),
                version: r.int()?,
            },
            (Some(OpCode::Check), false) => MultiOp::Check {
                path: r.ustring()?,
                version: r.int()?,
            },
            (Some(OpCode::GetChildren), true) => {
                let path = r.ustring()?;
                let _watch = r.bool()?;
                MultiOp::GetChildren { path }
            }
            (Some(OpCode::GetData), true) => {
                let path = r.ustring()?;
                let _watch = r.bool()?;
                MultiOp::GetData { path }
            }
            _ => {
                return Err(DecodeError::Unknown {
                    what: if read_only {
                        "multiRead op"
                    } else {
                        "multi op"
                    },
                    value: op_type,
                })
            }
        };
        ops.push(item);
    }
}

/// Decodes one request frame (without its length prefix).
pub fn decode_request(frame: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
    let mut r = Reader::new(frame);
    let header = RequestHeader {
        xid: r.int()?,
        op: r.int()?,
    };
    let request = match OpCode::from_i32(header.op) {
        Some(
            op @ (OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl),
        ) => Request::Create(decode_create(op, &mut r)?),
        Some(OpCode::Delete) => Request::Delete {
            path: r.ustring()?,
            version: r.int()?,
        },
        Some(OpCode::Exists) => Request::Exists {
            path: r.ustring()?,
            watch: r.bool()?,
        },
        Some(OpCode::GetData) => Request::GetData {
            path: r.ustring()?,
            watch: r.bool()?,
        },
        Some(OpCode::SetData) => Request::SetData {
            path: r.ustring()?,
            data: r.buffer()?.map(<[u8]>::to_vec),
            version: r.int()?,
        },
        Some(OpCode::GetAcl) => Request::GetAcl { path: r.ustring()? },
        Some(OpCode::SetAcl) => Request::SetAcl {
            path: r.ustring()?,
            acl: Acl::decode_list(&mut r)?,
            version: r.int()?,
        },
        Some(OpCode::GetChildren) => Request::GetChildren {
            path: r.ustring()?,
            watch: r.bool()?,
        },
        Some(OpCode::GetChildren2) => Request::GetChildren2 {
            path: r.ustring()?,
            watch: r.bool()?,
        },
        Some(OpCode::Sync) => Request::Sync { path: r.ustring()? },
        Some(OpCode::Ping) => Request::Ping,
        Some(OpCode::Check) => Request::Check {
            path: r.ustring()?,
            version: r.int()?,
        },
        Some(OpCode::Multi) => Request::Multi(decode_multi(&mut r, false)?),
        Some(OpCode::MultiRead) => Request::MultiRead(decode_multi(&mut r, true)?),
        Some(OpCode::Reconfig) => {
            // The body is irrelevant while reconfig is disabled; accept any.
            return Ok((header, Request::Reconfig));
        }
        Some(OpCode::CheckWatches) => Request::CheckWatches {
            path: r.ustring()?,
            watcher_type: r.int()?,
        },
        Some(OpCode::RemoveWatches) => Request::RemoveWatches {
            path: r.ustring()?,
            watcher_type: r.int()?,
        },
        Some(OpCode::GetEphemerals) => Request::GetEphemerals {
            prefix: r.ustring_opt()?.unwrap_or_default(),
        },
        Some(OpCode::GetAllChildrenNumber) => Request::GetAllChildrenNumber { path: r.ustring()? },
        Some(OpCode::AddWatch) => Request::AddWatch {
            path: r.ustring()?,
            mode: r.int()?,
        },
        Some(op @ (OpCode::SetWatches | OpCode::SetWatches2)) => {
            let relative_zxid = r.long()?;
            let data = r.strings()?;
            let exist = r.strings()?;
            let child = r.strings()?;
            let (persistent, persistent_recursive) = if op == OpCode::SetWatches2 {
                (r.strings()?, r.strings()?)
            } else {
                (Vec::new(), Vec::new())
            };
            Request::SetWatches(SetWatchesRequest {
                v2: op == OpCode::SetWatches2,
                relative_zxid,
                data,
                exist,
                child,
                persistent,
                persistent_recursive,
            })
        }
        Some(OpCode::Auth) => Request::Auth {
            auth_type: r.int()?,
            scheme: r.ustring_opt()?.unwrap_or_default(),
            auth: r.buffer()?.unwrap_or_default().to_vec(),
        },
        Some(OpCode::Sasl) => Request::Sasl {
            token: r.buffer()?.unwrap_or_default().to_vec(),
        },
        Some(OpCode::WhoAmI) => Request::WhoAmI,
        Some(OpCode::CloseSession) => Request::CloseSession,
        _ => return Ok((header, Request::Unknown(header.op))),
    };
    // Trailing bytes are ignored, as ZooKeeper's deserializer does.
    Ok((header, request))
}

/// Decodes just the header, for answering a request whose body is malformed.
pub fn decode_request_header(frame: &[u8]) -> Result<RequestHeader, DecodeError> {
    let mut r = Reader::new(frame);
    Ok(RequestHeader {
        xid: r.int()?,
        op: r.int()?,
    })
}

/// Encodes a request frame with its length prefix (client side: `rzk bench`, tests).
pub fn encode_request(xid: i32, request: &Request) -> Vec<u8> {
    let mut w = Writer::frame();
    w.int(xid);
    w.int(request.op());
    match request {
        Request::Create(c) => encode_create(c, &mut w),
        Request::Delete { path, version } | Request::Check { path, version } => {
            w.ustring(path);
            w.int(*version);
        }
        Request::Exists { path, watch }
        | Request::GetData { path, watch }
        | Request::GetChildren { path, watch }
        | Request::GetChildren2 { path, watch } => {
            w.ustring(path);
            w.bool(*watch);
        }
        Request::SetData {
            path,
            data,
            version,
        } => {
            w.ustring(path);
            w.buffer(data.as_deref());
            w.int(*version);
        }
        Request::GetAcl { path }
        | Request::Sync { path }
        | Request::GetAllChildrenNumber { path }
        | Request::GetEphemerals { prefix: path } => w.ustring(path),
        Request::SetAcl { path, acl, version } => {
            w.ustring(path);
            Acl::encode_list(acl, &mut w);
            w.int(*version);
        }
        Request::Multi(ops) | Request::MultiRead(ops) => {
            for op in ops {
                w.int(op.op().code());
                w.bool(false);
                w.int(-1);
                match op {
                    MultiOp::Create(c) => encode_create(c, &mut w),
                    MultiOp::Delete { path, version } | MultiOp::Check { path, version } => {
                        w.ustring(path);
                        w.int(*version);
                    }
                    MultiOp::SetData {
                        path,
                        data,
                        version,
                    } => {
                        w.ustring(path);
                        w.buffer(data.as_deref());
                        w.int(*version);
                    }
                    MultiOp::GetChildren { path } | MultiOp::GetData { path } => {
                        w.ustring(path);
                        w.bool(false);
                    }
                }
            }
            w.int(-1);
            w.bool(true);
            w.int(-1);
        }
        Request::CheckWatches { path, watcher_type }
        | Request::RemoveWatches { path, watcher_type } => {
            w.ustring(path);
            w.int(*watcher_type);
        }
        Request::AddWatch { path, mode } => {
            w.ustring(path);
            w.int(*mode);
        }
        Request::SetWatches(s) => {
            w.long(s.relative_zxid);
            w.strings(&s.data);
            w.strings(&s.exist);
            w.strings(&s.child);
            if s.v2 {
                w.strings(&s.persistent);
                w.strings(&s.persistent_recursive);
            }
        }
        Request::Auth {
            auth_type,
            scheme,
            auth,
        } => {
            w.int(*auth_type);
            w.ustring(scheme);
            w.buffer(Some(auth));
        }
        Request::Sasl { token } => w.buffer(Some(token)),
        Request::Ping
        | Request::Reconfig
        | Request::WhoAmI
        | Request::CloseSession
        | Request::Unknown(_)
        | Request::Malformed(_) => {}
    }
    w.finish_frame()
}

#[cfg(test)]
mod tests {
    //! Goal: every request we can encode decodes to itself. Method: a hand-picked list of one
    //! request per opcode; the fuzz target covers arbitrary bytes.
    use super::*;

    fn sample_requests() -> Vec<Request> {
        let create = CreateRequest {
            op: OpCode::CreateTtl,
            path: "/a".into(),
            data: Some(b"x".to_vec()),
            acl: Acl::open_unsafe(),
            flags: 5,
            ttl_ms: 1000,
        };
        vec![
            Request::Create(create.clone()),
            Request::Create(CreateRequest {
                op: OpCode::Create2,
                data: None,
                ttl_ms: -1,
                ..create.clone()
            }),
            Request::Delete {
                path: "/a".into(),
                version: -1,
            },
            Request::Exists {
                path: "/a".into(),
                watch: true,
            },
            Request::SetData {
                path: "/a".into(),
                data: Some(vec![1, 2]),
                version: 3,
            },
            Request::SetAcl {
                path: "/a".into(),
                acl: Acl::read_unsafe(),
                version: 0,
            },
            Request::GetChildren2 {
                path: "/".into(),
                watch: false,
            },
            Request::Multi(vec![
                MultiOp::Check {
                    path: "/a".into(),
                    version: 1,
                },
                MultiOp::Create(CreateRequest {
                    op: OpCode::Create,
                    ttl_ms: -1,
                    flags: 0,
                    ..create.clone()
                }),
            ]),
            Request::MultiRead(vec![MultiOp::GetData { path: "/a".into() }]),
            Request::SetWatches(SetWatchesRequest {
                v2: true,
                relative_zxid: 9,
                data: vec!["/a".into()],
                exist: vec![],
                child: vec!["/b".into()],
                persistent: vec!["/c".into()],
                persistent_recursive: vec![],
            }),
            Request::Auth {
                auth_type: 0,
                scheme: "digest".into(),
                auth: b"u:p".to_vec(),
            },
            Request::AddWatch {
                path: "/".into(),
                mode: 1,
            },
            Request::WhoAmI,
            Request::CloseSession,
            Request::Ping,
        ]
    }

    #[test]
    fn every_sample_request_round_trips() {
        for request in sample_requests() {
            let frame = encode_request(7, &request);
            let (header, decoded) = decode_request(&frame[4..]).unwrap();
            assert_eq!(header.xid, 7);
            assert_eq!(header.op, request.op());
            assert_eq!(decoded, request);
        }
    }

    #[test]
    fn truncated_frames_are_errors_not_panics() {
        for request in sample_requests() {
            let frame = encode_request(7, &request);
            for cut in 4..frame.len() - 1 {
                let _ = decode_request(&frame[4..cut]);
            }
        }
    }

    #[test]
    fn unknown_opcode_decodes_as_unknown() {
        let mut w = Writer::new();
        w.int(1);
        w.int(999);
        assert_eq!(decode_request(&w.bytes).unwrap().1, Request::Unknown(999));
    }
}
