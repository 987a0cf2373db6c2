//! Transactions: the outcome of prep with every value fixed, ready to log, replicate and apply.
//!
//! Applying a transaction is deterministic and never fails: prep decided every ZooKeeper
//! outcome (including errors, which are transactions too, as in ZooKeeper, so zxids line up
//! with Apache ZooKeeper's for the same request sequence).

use crate::codec::{DecodeError, Reader, Writer};
use crate::records::Acl;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub zxid: i64,
    pub time_ms: i64,
    pub session_id: i64,
    pub cxid: i32,
    pub body: TxnBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnBody {
    /// The password travels with the session so recovery and followers can validate a
    /// client that re-attaches.
    CreateSession {
        timeout_ms: i32,
        passwd: [u8; 16],
    },
    /// Deletes the session's ephemerals (the list is read from the tree at apply time, which
    /// is deterministic because every replica applies the same prefix).
    CloseSession,
    Create {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        /// Session id, 0, the container marker or the TTL marker, as ZooKeeper encodes it.
        ephemeral_owner: i64,
        /// The parent's cversion after this create: replay sets it, never increments it, so
        /// replaying a create onto a fuzzy snapshot cannot roll the parent backwards.
        parent_cversion: i32,
        /// create2/createContainer/createTTL reply with a Stat.
        reply_stat: bool,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        aversion: i32,
    },
    Check {
        path: String,
    },
    Multi(Vec<TxnBody>),
    Error {
        err: i32,
    },
}

const TAG_CREATE_SESSION: i32 = -10;
const TAG_CLOSE_SESSION: i32 = -11;
const TAG_CREATE: i32 = 1;
const TAG_DELETE: i32 = 2;
const TAG_SET_DATA: i32 = 5;
const TAG_SET_ACL: i32 = 7;
const TAG_CHECK: i32 = 13;
const TAG_MULTI: i32 = 14;
const TAG_ERROR: i32 = -1;

impl TxnBody {
    pub fn encode(&self, w: &mut Writer) {
        match self {
            TxnBody::CreateSession { timeout_ms, passwd } => {
                w.int(TAG_CREATE_SESSION);
                w.int(*timeout_ms);
                w.buffer(Some(passwd));
            }
            TxnBody::CloseSession => w.int(TAG_CLOSE_SESSION),
            TxnBody::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
                reply_stat,
            } => {
                w.int(TAG_CREATE);
                w.ustring(path);
                w.buffer(data.as_deref());
                Acl::encode_list(acl, w);
                w.long(*ephemeral_owner);
                w.int(*parent_cversion);
                w.bool(*reply_stat);
            }
            TxnBody::Delete { path } => {
                w.int(TAG_DELETE);
                w.ustring(path);
            }
            TxnBody::SetData {
                path,
                data,
                version,
            } => {
                w.int(TAG_SET_DATA);
                w.ustring(path);
                w.buffer(data.as_deref());
                w.int(*version);
            }
            TxnBody::SetAcl {
                path,
                acl,
                aversion,
            } => {
                w.int(TAG_SET_ACL);
                w.ustring(path);
                Acl::encode_list(acl, w);
                w.int(*aversion);
            }
            TxnBody::Check { path } => {
                w.int(TAG_CHECK);
                w.ustring(path);
            }
            TxnBody::Multi(ops) => {
                w.int(TAG_MULTI);
                w.int(ops.len() as i32);
                for op in ops {
                    op.encode(w);
                }
            }
            TxnBody::Error { err } => {
                w.int(TAG_ERROR);
                w.int(*err);
            }
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_nested(r, 0)
    }

    fn decode_nested(r: &mut Reader<'_>, depth: u32) -> Result<Self, DecodeError> {
        let tag = r.int()?;
        Ok(match tag {
            TAG_CREATE_SESSION => {
                let timeout_ms = r.int()?;
                let offset = r.offset();
                let bytes = r.buffer()?.unwrap_or_default();
                let passwd: [u8; 16] = bytes.try_into().map_err(|_| DecodeError::Unknown {
                    what: "session password length at byte",
                    value: offset as i32,
                })?;
                TxnBody::CreateSession { timeout_ms, passwd }
            }
            TAG_CLOSE_SESSION => TxnBody::CloseSession,
            TAG_CREATE => TxnBody::Create {
                path: r.ustring()?,
                data: r.buffer()?.map(<[u8]>::to_vec),
                acl: Acl::decode_list(r)?,
                ephemeral_owner: r.long()?,
                parent_cversion: r.int()?,
                reply_stat: r.bool()?,
            },
            TAG_DELETE => TxnBody::Delete { path: r.ustring()? },
            TAG_SET_DATA => TxnBody::SetData {
                path: r.ustring()?,
                data: r.buffer()?.map(<[u8]>::to_vec),
                version: r.int()?,
            },
            TAG_SET_ACL => TxnBody::SetAcl {
                path: r.ustring()?,
                acl: Acl::decode_list(r)?,
                aversion: r.int()?,
            },
            TAG_CHECK => TxnBody::Check { path: r.ustring()? },
            // A multi never nests another multi.
            TAG_MULTI if depth == 0 => {
                let n = r.vec_len()?;
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    ops.push(Self::decode_nested(r, depth + 1)?);
                }
                TxnBody::Multi(ops)
            }
            TAG_ERROR => TxnBody::Error { err: r.int()? },
            other => {
                return Err(DecodeError::Unknown {
                    what: "txn type",
                    value: other,
                })
            }
        })
    }
}

impl Txn {
    pub fn encode(&self, w: &mut Writer) {
        w.long(self.zxid);
        w.long(self.time_ms);
        w.long(self.session_id);
        w.int(self.cxid);
        self.body.encode(w);
    }

    /// The length of `encode`'s output: the log record body and a proposal's payload, sized
    /// without encoding (the batcher caps batches by bytes).
    pub fn encoded_len(&self) -> usize {
        const HEADER: usize = 8 + 8 + 8 + 4; // zxid, time, session id, cxid
        HEADER + encoded_body_len(&self.body)
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Txn {
            zxid: r.long()?,
            time_ms: r.long()?,
            session_id: r.long()?,
            cxid: r.int()?,
            body: TxnBody::decode(r)?,
        })
    }
}

fn encoded_body_len(body: &TxnBody) -> usize {
    fn buffer(b: Option<&[u8]>) -> usize {
        4 + b.map_or(0, <[u8]>::len)
    }
    fn acls(acl: &[Acl]) -> usize {
        4 + acl
            .iter()
            .map(|a| 4 + 4 + a.id.scheme.len() + 4 + a.id.id.len())
            .sum::<usize>()
    }
    const TAG: usize = 4;
    TAG + match body {
        TxnBody::CreateSession { passwd, .. } => 4 + buffer(Some(passwd)),
        TxnBody::CloseSession => 0,
        TxnBody::Create {
            path, data, acl, ..
        } => buffer(Some(path.as_bytes())) + buffer(data.as_deref()) + acls(acl) + 8 + 4 + 1,
        TxnBody::Delete { path } | TxnBody::Check { path } => buffer(Some(path.as_bytes())),
        TxnBody::SetData { path, data, .. } => {
            buffer(Some(path.as_bytes())) + buffer(data.as_deref()) + 4
        }
        TxnBody::SetAcl { path, acl, .. } => buffer(Some(path.as_bytes())) + acls(acl) + 4,
        TxnBody::Multi(ops) => 4 + ops.iter().map(encoded_body_len).sum::<usize>(),
        TxnBody::Error { .. } => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_txn_round_trips() {
        let txn = Txn {
            zxid: 0x1_0000_0002,
            time_ms: 7,
            session_id: 9,
            cxid: 3,
            body: TxnBody::Multi(vec![
                TxnBody::Create {
                    path: "/a".into(),
                    data: None,
                    acl: Acl::open_unsafe(),
                    ephemeral_owner: 9,
                    parent_cversion: 4,
                    reply_stat: true,
                },
                TxnBody::Error { err: -101 },
            ]),
        };
        let mut w = Writer::new();
        txn.encode(&mut w);
        let mut r = Reader::new(&w.bytes);
        assert_eq!(Txn::decode(&mut r).unwrap(), txn);
        r.finish().unwrap();
    }

    #[test]
    fn encoded_len_is_the_encoded_size() {
        use crate::records::Id;
        let acl = vec![Acl {
            perms: 31,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }];
        let bodies = vec![
            TxnBody::CreateSession {
                timeout_ms: 30_000,
                passwd: [7; 16],
            },
            TxnBody::CloseSession,
            TxnBody::Create {
                path: "/a/b".into(),
                data: Some(vec![1; 100]),
                acl: acl.clone(),
                ephemeral_owner: 0,
                parent_cversion: 3,
                reply_stat: true,
            },
            TxnBody::Create {
                path: "/c".into(),
                data: None,
                acl: vec![],
                ephemeral_owner: 9,
                parent_cversion: 1,
                reply_stat: false,
            },
            TxnBody::Delete { path: "/a".into() },
            TxnBody::Check {
                path: "/abc".into(),
            },
            TxnBody::SetData {
                path: "/a".into(),
                data: Some(vec![0; 33]),
                version: 2,
            },
            TxnBody::SetAcl {
                path: "/a".into(),
                acl: acl.clone(),
                aversion: 1,
            },
            TxnBody::Error { err: -101 },
        ];
        let multi = TxnBody::Multi(bodies.clone());
        for body in bodies.into_iter().chain([multi]) {
            let txn = Txn {
                zxid: 5,
                time_ms: 6,
                session_id: 7,
                cxid: 8,
                body,
            };
            let mut w = Writer::new();
            txn.encode(&mut w);
            assert_eq!(txn.encoded_len(), w.bytes.len(), "{:?}", txn.body);
        }
    }
}
