//! Prep stage (ZooKeeper's PrepRequestProcessor): validates a write against the latest
//! speculative tree (the applied tree plus every prepped-but-not-yet-durable transaction) and
//! turns it into a transaction body with every value fixed.
//!
//! In: a write request, the session and its identities. Out: a `TxnBody` (an `Error` body when
//! ZooKeeper would answer with an error: failed writes take a zxid in ZooKeeper too).
//! Holds: checks run in ZooKeeper's order, so the first failing check decides the error code
//! exactly as Apache ZooKeeper's would.
//! Not here: assigning zxids, logging, applying.

use rzk_proto::{perms, Acl, CreateMode, CreateRequest, ErrorCode, Id, MultiOp, TxnBody};
use rzk_tree::{acl, path, NodeKind, Tree, Znode, CONTAINER_EPHEMERAL_OWNER, TTL_MAX_MS};

/// What prep needs to know about the caller.
pub struct Caller<'a> {
    pub session_id: i64,
    pub auth_ids: &'a [Id],
    pub extended_types: bool,
}

type Prepped = Result<TxnBody, ErrorCode>;

fn node<'t>(tree: &'t Tree, path: &str) -> Result<&'t Znode, ErrorCode> {
    tree.get(path).ok_or(ErrorCode::NoNode)
}

fn check_acl(node: &Znode, perm: i32, caller: &Caller<'_>) -> Result<(), ErrorCode> {
    if acl::allowed(node.acl(), perm, caller.auth_ids) {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}

fn validate(path: &str) -> Result<(), ErrorCode> {
    path::validate_path(path).map_err(|_| ErrorCode::BadArguments)
}

/// `checkAndIncVersion`, including ZOOKEEPER-4743's skip over -1 on wrap-around.
fn next_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(match current.wrapping_add(1) {
        -1 => 0,
        v => v,
    })
}

/// The parent of a path as prep's `lastIndexOf('/')` sees it ("" is the root).
fn parent_of(path: &str) -> Result<&str, ErrorCode> {
    match path.rfind('/') {
        None => Err(ErrorCode::BadArguments),
        Some(0) => Ok("/"),
        Some(i) => Ok(&path[..i]),
    }
}

fn is_special_path(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

fn fixup_acl(list: &[Acl], caller: &Caller<'_>) -> Result<Vec<Acl>, ErrorCode> {
    acl::fixup(list, caller.auth_ids).ok_or(ErrorCode::InvalidAcl)
}

pub fn create(tree: &Tree, req: &CreateRequest, caller: &Caller<'_>) -> Prepped {
    let mode = CreateMode::from_flags(req.flags).ok_or(ErrorCode::BadArguments)?;
    if mode.is_ttl() && !caller.extended_types {
        return Err(ErrorCode::Unimplemented);
    }
    // createTTL with a non-TTL mode: Apache ZooKeeper 3.8 accepts it and then fails applying
    // it; refuse it up front.
    if req.op == rzk_proto::OpCode::CreateTtl && !mode.is_ttl() {
        return Err(ErrorCode::BadArguments);
    }
    let ttl_ok = if mode.is_ttl() {
        req.ttl_ms > 0 && req.ttl_ms <= TTL_MAX_MS
    } else {
        req.ttl_ms < 0
    };
    if !ttl_ok {
        return Err(ErrorCode::BadArguments);
    }
    if req.path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    let parent_path = parent_of(&req.path)?;
    let acl = fixup_acl(&req.acl, caller)?;
    let parent = node(tree, parent_path)?;
    check_acl(parent, perms::CREATE, caller)?;
    let path = if mode.is_sequential() {
        format!("{}{:010}", req.path, parent.stat().cversion)
    } else {
        req.path.clone()
    };
    validate(&path)?;
    if tree.get(&path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if matches!(parent.kind(), NodeKind::Ephemeral { .. }) {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let ephemeral_owner = if mode.is_container() {
        CONTAINER_EPHEMERAL_OWNER
    } else if mode.is_ttl() {
        rzk_tree::ttl_ephemeral_owner(req.ttl_ms)
    } else if mode.is_ephemeral() {
        caller.session_id
    } else {
        0
    };
    Ok(TxnBody::Create {
        path,
        data: req.data.clone(),
        acl,
        ephemeral_owner,
        parent_cversion: parent.stat().cversion + 1,
        reply_stat: req.op != rzk_proto::OpCode::Create,
    })
}

pub fn delete(tree: &Tree, path: &str, version: i32, caller: &Caller<'_>) -> Prepped {
    if path.contains('\0') || is_special_path(path) {
        return Err(ErrorCode::BadArguments);
    }
    let parent = node(tree, parent_of(path)?)?;
    check_acl(parent, perms::DELETE, caller)?;
    let target = node(tree, path)?;
    next_version(target.stat().version, version)?;
    if !target.children().is_empty() {
        return Err(ErrorCode::NotEmpty);
    }
    Ok(TxnBody::Delete {
        path: path.to_owned(),
    })
}

/// The container manager's delete (ZooKeeper's deleteContainer op): only empty containers
/// and TTL nodes, never a plain node that took a container's place.
pub fn delete_container(tree: &Tree, path: &str) -> Prepped {
    if path.contains('\0') || is_special_path(path) {
        return Err(ErrorCode::BadArguments);
    }
    let target = node(tree, path)?;
    if !target.children().is_empty() {
        return Err(ErrorCode::NotEmpty);
    }
    if matches!(
        target.kind(),
        NodeKind::Ephemeral { .. } | NodeKind::Persistent
    ) {
        return Err(ErrorCode::BadVersion);
    }
    node(tree, parent_of(path)?)?;
    Ok(TxnBody::Delete {
        path: path.to_owned(),
    })
}

pub fn set_data(
    tree: &Tree,
    path: &str,
    data: &Option<Vec<u8>>,
    version: i32,
    caller: &Caller<'_>,
) -> Prepped {
    validate(path)?;
    let target = node(tree, path)?;
    check_acl(target, perms::WRITE, caller)?;
    let version = next_version(target.stat().version, version)?;
    Ok(TxnBody::SetData {
        path: path.to_owned(),
        data: data.clone(),
        version,
    })
}

pub fn set_acl(
    tree: &Tree,
    path: &str,
    list: &[Acl],
    version: i32,
    caller: &Caller<'_>,
) -> Prepped {
    validate(path)?;
    let acl = fixup_acl(list, caller)?;
    let target = node(tree, path)?;
    check_acl(target, perms::ADMIN, caller)?;
    let aversion = next_version(target.stat().aversion, version)?;
    Ok(TxnBody::SetAcl {
        path: path.to_owned(),
        acl,
        aversion,
    })
}

pub fn check(tree: &Tree, path: &str, version: i32, caller: &Caller<'_>) -> Prepped {
    validate(path)?;
    let target = node(tree, path)?;
    check_acl(target, perms::READ, caller)?;
    next_version(target.stat().version, version)?;
    Ok(TxnBody::Check {
        path: path.to_owned(),
    })
}

/// Preps one op of a multi against `tree`.
pub fn multi_op(tree: &Tree, op: &MultiOp, caller: &Caller<'_>) -> Prepped {
    match op {
        MultiOp::Create(req) => create(tree, req, caller),
        MultiOp::Delete { path, version } => delete(tree, path, *version, caller),
        MultiOp::SetData {
            path,
            data,
            version,
        } => set_data(tree, path, data, *version, caller),
        MultiOp::Check { path, version } => check(tree, path, *version, caller),
        // Reads inside a write multi: ZooKeeper's decoder rejects them before prep.
        MultiOp::GetChildren { .. } | MultiOp::GetData { .. } => Err(ErrorCode::MarshallingError),
    }
}

/// Preps a whole multi. Each op sees the effects of the ops before it (applied to a scratch
/// copy of the tree, an O(1) clone). On the first failure every op becomes an error result as
/// ZooKeeper reports them: Ok for the ops before, the code for the failing op,
/// RuntimeInconsistency for the ops after.
pub fn multi(
    tree: &Tree,
    ops: &[MultiOp],
    caller: &Caller<'_>,
    zxid: i64,
    time_ms: i64,
) -> TxnBody {
    let mut scratch = tree.clone();
    let mut bodies = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        match multi_op(&scratch, op, caller) {
            Ok(mut body) => {
                // Apache ZooKeeper 3.8 answers create2 inside a multi with a plain create
                // result (path only).
                if let (MultiOp::Create(req), TxnBody::Create { reply_stat, .. }) = (op, &mut body)
                {
                    if req.op == rzk_proto::OpCode::Create2 {
                        *reply_stat = false;
                    }
                }
                scratch.apply_within_multi(zxid, time_ms, caller.session_id, &body);
                bodies.push(body);
            }
            Err(err) => {
                let mut failed = Vec::with_capacity(ops.len());
                failed.extend((0..index).map(|_| TxnBody::Error {
                    err: ErrorCode::Ok.code(),
                }));
                failed.push(TxnBody::Error { err: err.code() });
                failed.extend((index + 1..ops.len()).map(|_| TxnBody::Error {
                    err: ErrorCode::RuntimeInconsistency.code(),
                }));
                return TxnBody::Multi(failed);
            }
        }
    }
    TxnBody::Multi(bodies)
}
