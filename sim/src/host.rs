//! The parts of a simulated server that run the server's own code around the replication
//! core: each committed entry is applied to a real `pipeline::Core` (as a learner's
//! `Replicated` batch: the tree, its digest, the release path), and a SNAP ships the tree as a
//! real snapshot file image (`rzk_snapshot::encode`, installed with `Core::install`).
//!
//! The leader still decides outcomes with the model (model.rs), not the pipeline's prep, so
//! each entry carries a model `Record`; here it becomes the txn that has the same effect on
//! the tree, decided against the tree itself. Every server translates independently, so
//! trees that saw the same entries in the same order agree, which the digest checker tests.

use std::sync::Arc;

use rzk_pipeline::{Actions, Core, CoreConfig, Input};
use rzk_proto::{Acl, ErrorCode, Txn, TxnBody, Zxid};
use rzk_session::{Now, TimeoutLimits};
use rzk_tree::{NodeHasher, Tree};

use crate::model::{Key, Record, State};

/// The hasher seed every simulated server shares: the same history gives the same trees
/// and snapshot bytes on all of them.
const TREE_SEED: u64 = 0x51ed_7ee5;

pub fn key_path(key: Key) -> String {
    format!("/k{key}")
}

pub fn empty_tree() -> Tree {
    Tree::with_hasher(NodeHasher::seeded(TREE_SEED))
}

/// A learner core over `tree`: what every simulated server applies committed entries with.
pub fn learner_core(server_id: u64, tree: Tree) -> Core {
    let config = CoreConfig {
        limits: TimeoutLimits {
            min_ms: 4_000,
            max_ms: 40_000,
        },
        extended_types: false,
        container_check_interval_ms: 60_000,
        server_id: server_id as u8,
        seed: TREE_SEED ^ server_id,
        tick_ms: 100,
    };
    let mut core = Core::new(config, tree, Now::both(0));
    core.become_learner(&mut Actions::default());
    core
}

/// The txn with the effect of `record` on `tree` (which must be the state before it).
pub fn txn_for(record: &Record, zxid: Zxid, tree: &Tree) -> Txn {
    let path = key_path(record.key);
    let current = tree.get(&path);
    let body = match (record.value, current) {
        (None, Some(_)) => TxnBody::Delete { path },
        (Some((data, _)), None) => TxnBody::Create {
            path,
            data: Some(data.to_be_bytes().to_vec()),
            acl: Acl::open_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: tree.get("/").map_or(0, |root| root.stat.cversion) + 1,
            reply_stat: false,
        },
        (Some((data, version)), Some(node))
            if node.stat.version != version
                || node.data.as_deref() != Some(&data.to_be_bytes()[..]) =>
        {
            TxnBody::SetData {
                path,
                data: Some(data.to_be_bytes().to_vec()),
                version,
            }
        }
        // The op failed (or changed nothing): it still takes its zxid, as in ZooKeeper.
        _ => TxnBody::Error {
            err: ErrorCode::BadVersion.code(),
        },
    };
    Txn {
        zxid: zxid.as_i64(),
        // Any value the same on every server: the entry's own zxid.
        time_ms: zxid.as_i64(),
        session_id: 0,
        cxid: 0,
        body,
    }
}

/// Applies one committed entry's record to `core`, as a learner applies a replicated batch.
pub fn apply(core: &mut Core, record: &Record, zxid: Zxid) {
    let txn = txn_for(record, zxid, core.released());
    let mut actions = Actions::default();
    core.step(
        Now::both(0),
        Input::Replicated {
            txns: vec![txn],
            digest: None,
        },
        &mut actions,
    );
}

/// A host snapshot: the model state and the tree as a real snapshot file image.
pub fn encode_snapshot(state: &State, core: &Core) -> Arc<[u8]> {
    let state = state.encode();
    let tree = rzk_snapshot::encode(core.released(), &[]);
    let mut out = Vec::with_capacity(4 + state.len() + tree.len());
    out.extend_from_slice(&(state.len() as u32).to_be_bytes());
    out.extend_from_slice(&state);
    out.extend_from_slice(&tree);
    out.into()
}

/// The model state and the tree of a host snapshot (empty ones for an empty image).
pub fn decode_snapshot(bytes: &[u8]) -> (State, Tree) {
    if bytes.is_empty() {
        return (State::default(), empty_tree());
    }
    let state_len = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    let state = State::decode(&bytes[4..4 + state_len]);
    let snapshot =
        rzk_snapshot::decode_with(&bytes[4 + state_len..], NodeHasher::seeded(TREE_SEED))
            .expect("a snapshot this simulator encoded decodes");
    (state, snapshot.tree)
}

/// Whether the tree holds what the model state says, key by key.
pub fn tree_matches(state: &State, tree: &Tree, keys: Key) -> Result<(), String> {
    for key in 0..keys {
        let path = key_path(key);
        let node = tree.get(&path);
        let ok = match (state.get(key), node) {
            (None, None) => true,
            (Some((data, version)), Some(node)) => {
                node.stat.version == version
                    && node.data.as_deref() == Some(&data.to_be_bytes()[..])
            }
            _ => false,
        };
        if !ok {
            return Err(format!(
                "{path}: the model holds {:?}, the tree {:?}",
                state.get(key),
                node.map(|n| (n.data.clone(), n.stat.version))
            ));
        }
    }
    if tree.digest() != tree.recompute_digest() {
        return Err("the tree's digest does not match its nodes".into());
    }
    Ok(())
}
