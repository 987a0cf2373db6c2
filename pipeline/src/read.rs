//! Reads, as ZooKeeper's FinalRequestProcessor answers them, against one published tree
//! version. Pure: the caller decides which version (the event loop's latest publication or the
//! core's released tree) and registers any watch the result asks for.

use rzk_proto::{perms, Acl, ErrorCode, Id, MultiOp, MultiResult, Request, Response};
use rzk_session::auth;
use rzk_tree::{acl, Tree, Znode};

/// A watch the read asked for and earned (ZooKeeper registers it only once the ACL check
/// passed; exists registers it even when the node is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchRegistration {
    Data(String),
    Child(String),
}

#[derive(Debug)]
pub struct ReadResult {
    pub err: ErrorCode,
    pub response: Response,
    pub watch: Option<WatchRegistration>,
}

impl ReadResult {
    fn ok(response: Response) -> Self {
        ReadResult {
            err: ErrorCode::Ok,
            response,
            watch: None,
        }
    }

    fn err(err: ErrorCode) -> Self {
        ReadResult {
            err,
            response: Response::Empty,
            watch: None,
        }
    }
}

/// True for requests `serve` answers.
pub fn is_read(request: &Request) -> bool {
    matches!(
        request,
        Request::Exists { .. }
            | Request::GetData { .. }
            | Request::GetChildren { .. }
            | Request::GetChildren2 { .. }
            | Request::GetAcl { .. }
            | Request::GetAllChildrenNumber { .. }
            | Request::GetEphemerals { .. }
            | Request::MultiRead(_)
            | Request::WhoAmI
    )
}

/// True for reads that may register a watch (those must run where the watch registry lives).
pub fn sets_watch(request: &Request) -> bool {
    matches!(
        request,
        Request::Exists { watch: true, .. }
            | Request::GetData { watch: true, .. }
            | Request::GetChildren { watch: true, .. }
            | Request::GetChildren2 { watch: true, .. }
    )
}

/// Reads do not validate paths; ZooKeeper keeps the root under "" as well as "/", so "" reads
/// the root.
fn lookup<'t>(tree: &'t Tree, path: &str) -> Option<&'t Znode> {
    let path = if path.is_empty() { "/" } else { path };
    tree.get(path)
}

fn readable<'t>(tree: &'t Tree, path: &str, ids: &[Id]) -> Result<&'t Znode, ErrorCode> {
    let node = lookup(tree, path).ok_or(ErrorCode::NoNode)?;
    if acl::allowed(node.acl(), perms::READ, ids) {
        Ok(node)
    } else {
        Err(ErrorCode::NoAuth)
    }
}

fn children(node: &Znode) -> Vec<String> {
    node.children().iter().map(|c| c.to_string()).collect()
}

fn data(node: &Znode) -> Option<Vec<u8>> {
    node.data().map(<[u8]>::to_vec)
}

/// Answers a read. Panics if `request` is not one (`is_read` says which are).
pub fn serve(tree: &Tree, request: &Request, session_id: i64, ids: &[Id]) -> ReadResult {
    let result = |r: Result<ReadResult, ErrorCode>| r.unwrap_or_else(ReadResult::err);
    match request {
        Request::Exists { path, watch } => {
            if path.contains('\0') {
                return ReadResult::err(ErrorCode::BadArguments);
            }
            // No ACL check: Apache ZooKeeper 3.8.0, the reference we test against, answers
            // exists without one (ZOOKEEPER-2590 added a READ check in later releases).
            let registration = watch.then(|| WatchRegistration::Data(path.clone()));
            match lookup(tree, path) {
                Some(node) => ReadResult {
                    watch: registration,
                    ..ReadResult::ok(Response::Stat(node.client_stat()))
                },
                None => ReadResult {
                    watch: registration,
                    ..ReadResult::err(ErrorCode::NoNode)
                },
            }
        }
        Request::GetData { path, watch } => {
            result(readable(tree, path, ids).map(|node| ReadResult {
                watch: watch.then(|| WatchRegistration::Data(path.clone())),
                ..ReadResult::ok(Response::GetData {
                    data: data(node),
                    stat: node.client_stat(),
                })
            }))
        }
        Request::GetChildren { path, watch } => {
            result(readable(tree, path, ids).map(|node| ReadResult {
                watch: watch.then(|| WatchRegistration::Child(path.clone())),
                ..ReadResult::ok(Response::GetChildren {
                    children: children(node),
                })
            }))
        }
        Request::GetChildren2 { path, watch } => {
            result(readable(tree, path, ids).map(|node| ReadResult {
                watch: watch.then(|| WatchRegistration::Child(path.clone())),
                ..ReadResult::ok(Response::GetChildren2 {
                    children: children(node),
                    stat: node.client_stat(),
                })
            }))
        }
        Request::GetAcl { path } => {
            let Some(node) = lookup(tree, path) else {
                return ReadResult::err(ErrorCode::NoNode);
            };
            if !acl::allowed(node.acl(), perms::READ | perms::ADMIN, ids) {
                return ReadResult::err(ErrorCode::NoAuth);
            }
            // Without ADMIN a reader sees digest ids with the hash masked, as ZooKeeper does.
            let list: Vec<Acl> = if acl::allowed(node.acl(), perms::ADMIN, ids) {
                node.acl().to_vec()
            } else {
                node.acl()
                    .iter()
                    .map(|a| {
                        let mut a = a.clone();
                        if a.id.scheme == "digest" {
                            if let Some((user, _)) = a.id.id.split_once(':') {
                                a.id.id = format!("{user}:x");
                            }
                        }
                        a
                    })
                    .collect()
            };
            ReadResult::ok(Response::GetAcl {
                acl: list,
                stat: node.client_stat(),
            })
        }
        Request::GetAllChildrenNumber { path } => result(readable(tree, path, ids).map(|_| {
            // ZooKeeper counts map keys starting with `path + "/"`: for "" that includes "/".
            let count = if path.is_empty() {
                tree.node_count()
            } else {
                tree.descendant_count(path)
            };
            ReadResult::ok(Response::AllChildrenNumber(count as i32))
        })),
        Request::GetEphemerals { prefix } => {
            let trimmed = prefix.trim();
            let all = trimmed.is_empty() || trimmed == "/";
            let list = tree
                .ephemerals_of(session_id)
                .map(|set| {
                    set.iter()
                        .filter(|p| all || p.starts_with(prefix.as_str()))
                        .map(|p| p.to_string())
                        .collect()
                })
                .unwrap_or_default();
            ReadResult::ok(Response::Ephemerals(list))
        }
        Request::MultiRead(ops) => {
            let results = ops
                .iter()
                .map(|op| match op {
                    MultiOp::GetChildren { path } => match readable(tree, path, ids) {
                        Ok(node) => MultiResult::GetChildren {
                            children: children(node),
                        },
                        Err(err) => MultiResult::Error { err },
                    },
                    MultiOp::GetData { path } => match readable(tree, path, ids) {
                        Ok(node) => MultiResult::GetData {
                            data: data(node),
                            stat: node.client_stat(),
                        },
                        Err(err) => MultiResult::Error { err },
                    },
                    _ => MultiResult::Error {
                        err: ErrorCode::MarshallingError,
                    },
                })
                .collect();
            ReadResult::ok(Response::Multi(results))
        }
        Request::WhoAmI => ReadResult::ok(Response::WhoAmI(
            ids.iter().map(auth::client_info).collect(),
        )),
        other => panic!("not a read: {other:?}"),
    }
}
