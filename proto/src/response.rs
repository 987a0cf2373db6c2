//! Replies: `ReplyHeader` followed by the op's response record. An error reply carries only
//! the header, except multi, whose body lists per-op results.

use crate::codec::{DecodeError, Reader, Writer};
use crate::consts::{ErrorCode, OpCode};
use crate::records::{Acl, ClientInfo, ReplyHeader, Stat};

/// One result inside a multi or multiRead reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    Create { path: String },
    Create2 { path: String, stat: Stat },
    Delete,
    SetData { stat: Stat },
    Check,
    GetChildren { children: Vec<String> },
    GetData { data: Option<Vec<u8>>, stat: Stat },
    Error { err: ErrorCode },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Header only: delete, check, setWatches, removeWatches, checkWatches, addWatch, auth,
    /// closeSession and every error.
    Empty,
    Create {
        path: String,
    },
    Create2 {
        path: String,
        stat: Stat,
    },
    /// exists, setData, setACL.
    Stat(Stat),
    GetData {
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    GetChildren2 {
        children: Vec<String>,
        stat: Stat,
    },
    Sync {
        path: String,
    },
    Multi(Vec<MultiResult>),
    Ephemerals(Vec<String>),
    AllChildrenNumber(i32),
    WhoAmI(Vec<ClientInfo>),
    /// `ErrorResponse`: addWatch replies with one carrying 0.
    ErrorResponse(i32),
    /// SetSASLResponse: the server's next SASL token; none once a failed exchange ends.
    Sasl(Option<Vec<u8>>),
}

fn multi_header(w: &mut Writer, op: i32, done: bool, err: i32) {
    w.int(op);
    w.bool(done);
    w.int(err);
}

/// Encodes a whole reply frame with its length prefix.
pub fn encode_reply(header: ReplyHeader, response: &Response) -> Vec<u8> {
    let mut w = Writer::frame();
    header.encode(&mut w);
    match response {
        Response::Empty => {}
        Response::Create { path } | Response::Sync { path } => w.ustring(path),
        Response::Create2 { path, stat } => {
            w.ustring(path);
            stat.encode(&mut w);
        }
        Response::Sasl(token) => w.buffer(token.as_deref()),
        Response::Stat(stat) => stat.encode(&mut w),
        Response::GetData { data, stat } => {
            w.buffer(data.as_deref());
            stat.encode(&mut w);
        }
        Response::GetAcl { acl, stat } => {
            Acl::encode_list(acl, &mut w);
            stat.encode(&mut w);
        }
        Response::GetChildren { children } | Response::Ephemerals(children) => w.strings(children),
        Response::GetChildren2 { children, stat } => {
            w.strings(children);
            stat.encode(&mut w);
        }
        Response::Multi(results) => {
            for result in results {
                match result {
                    MultiResult::Create { path } => {
                        multi_header(&mut w, OpCode::Create.code(), false, 0);
                        w.ustring(path);
                    }
                    MultiResult::Create2 { path, stat } => {
                        multi_header(&mut w, OpCode::Create2.code(), false, 0);
                        w.ustring(path);
                        stat.encode(&mut w);
                    }
                    MultiResult::Delete => multi_header(&mut w, OpCode::Delete.code(), false, 0),
                    MultiResult::SetData { stat } => {
                        multi_header(&mut w, OpCode::SetData.code(), false, 0);
                        stat.encode(&mut w);
                    }
                    MultiResult::Check => multi_header(&mut w, OpCode::Check.code(), false, 0),
                    MultiResult::GetChildren { children } => {
                        multi_header(&mut w, OpCode::GetChildren.code(), false, 0);
                        w.strings(children);
                    }
                    MultiResult::GetData { data, stat } => {
                        multi_header(&mut w, OpCode::GetData.code(), false, 0);
                        w.buffer(data.as_deref());
                        stat.encode(&mut w);
                    }
                    MultiResult::Error { err } => {
                        // ErrorResult: type -1, and the code both in the header and the body.
                        multi_header(&mut w, OpCode::Error.code(), false, err.code());
                        w.int(err.code());
                    }
                }
            }
            multi_header(&mut w, -1, true, -1);
        }
        Response::AllChildrenNumber(n) | Response::ErrorResponse(n) => w.int(*n),
        Response::WhoAmI(infos) => {
            w.int(infos.len() as i32);
            for info in infos {
                w.ustring(&info.auth_scheme);
                w.ustring(&info.user);
            }
        }
    }
    w.finish_frame()
}

/// Decodes a reply body whose shape the caller knows from the request it sent (client side).
pub fn decode_response(op: OpCode, r: &mut Reader<'_>) -> Result<Response, DecodeError> {
    Ok(match op {
        OpCode::Create => Response::Create { path: r.ustring()? },
        OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => Response::Create2 {
            path: r.ustring()?,
            stat: Stat::decode(r)?,
        },
        OpCode::Exists | OpCode::SetData | OpCode::SetAcl => Response::Stat(Stat::decode(r)?),
        OpCode::GetData => Response::GetData {
            data: r.buffer()?.map(<[u8]>::to_vec),
            stat: Stat::decode(r)?,
        },
        OpCode::GetAcl => Response::GetAcl {
            acl: Acl::decode_list(r)?,
            stat: Stat::decode(r)?,
        },
        OpCode::GetChildren => Response::GetChildren {
            children: r.strings()?,
        },
        OpCode::GetChildren2 => Response::GetChildren2 {
            children: r.strings()?,
            stat: Stat::decode(r)?,
        },
        OpCode::Sync => Response::Sync { path: r.ustring()? },
        OpCode::Sasl => Response::Sasl(r.buffer()?.map(<[u8]>::to_vec)),
        OpCode::GetEphemerals => Response::Ephemerals(r.strings()?),
        OpCode::GetAllChildrenNumber => Response::AllChildrenNumber(r.int()?),
        OpCode::AddWatch => Response::ErrorResponse(r.int()?),
        OpCode::Multi | OpCode::MultiRead => {
            let mut results = Vec::new();
            loop {
                let op = r.int()?;
                let done = r.bool()?;
                let err = r.int()?;
                if done {
                    break;
                }
                let result = match OpCode::from_i32(op) {
                    Some(OpCode::Create) => MultiResult::Create { path: r.ustring()? },
                    Some(OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl) => {
                        MultiResult::Create2 {
                            path: r.ustring()?,
                            stat: Stat::decode(r)?,
                        }
                    }
                    Some(OpCode::Delete) => MultiResult::Delete,
                    Some(OpCode::SetData) => MultiResult::SetData {
                        stat: Stat::decode(r)?,
                    },
                    Some(OpCode::Check) => MultiResult::Check,
                    Some(OpCode::GetChildren) => MultiResult::GetChildren {
                        children: r.strings()?,
                    },
                    Some(OpCode::GetData) => MultiResult::GetData {
                        data: r.buffer()?.map(<[u8]>::to_vec),
                        stat: Stat::decode(r)?,
                    },
                    Some(OpCode::Error) => {
                        let body = r.int()?;
                        let err = ErrorCode::from_i32(body)
                            .or(ErrorCode::from_i32(err))
                            .ok_or(DecodeError::Unknown {
                                what: "error code",
                                value: body,
                            })?;
                        MultiResult::Error { err }
                    }
                    _ => {
                        return Err(DecodeError::Unknown {
                            what: "multi result type",
                            value: op,
                        })
                    }
                };
                results.push(result);
            }
            Response::Multi(results)
        }
        OpCode::WhoAmI => {
            let n = r.vec_len()?;
            let mut infos = Vec::with_capacity(n);
            for _ in 0..n {
                infos.push(ClientInfo {
                    auth_scheme: r.ustring()?,
                    user: r.ustring_opt()?.unwrap_or_default(),
                });
            }
            Response::WhoAmI(infos)
        }
        _ => Response::Empty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_multi_encodes_error_results_and_terminator() {
        let frame = encode_reply(
            ReplyHeader {
                xid: 1,
                zxid: 5,
                err: 0,
            },
            &Response::Multi(vec![
                MultiResult::Error { err: ErrorCode::Ok },
                MultiResult::Error {
                    err: ErrorCode::NoNode,
                },
            ]),
        );
        let mut r = Reader::new(&frame[4..]);
        let header = ReplyHeader::decode(&mut r).unwrap();
        assert_eq!(header.zxid, 5);
        let decoded = decode_response(OpCode::Multi, &mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(
            decoded,
            Response::Multi(vec![
                MultiResult::Error { err: ErrorCode::Ok },
                MultiResult::Error {
                    err: ErrorCode::NoNode
                },
            ])
        );
    }
}
