//! The server's own code around the replication core, as each simulated server runs it: a
//! real `pipeline::Core` (a leader's prep, zxids, speculative tree and release path; a
//! learner's forwarding and apply), ZooKeeper transactions as the log's entries, and real
//! snapshot images (`rzk_snapshot`) for the host's own snapshots and for SNAP.
//!
//! Never: decide an outcome itself. What a write does is the pipeline's prep, and the
//! simulator's model only judges the clients' history afterwards.

use std::sync::Arc;

use rzk_pipeline::{Core, CoreConfig};
use rzk_session::{DurableSession, Now, TimeoutLimits};
use rzk_snapshot::SessionRecord;
use rzk_tree::{NodeHasher, Tree};

/// The hasher seed every simulated server shares: the same history gives the same trees
/// and snapshot bytes on all of them.
const TREE_SEED: u64 = 0x51ed_7ee5;

pub const MIN_SESSION_TIMEOUT_MS: u64 = 4_000;

pub fn empty_tree() -> Tree {
    Tree::with_hasher(NodeHasher::seeded(TREE_SEED))
}

/// A learner core over `tree` and `sessions` (a restart, or a server before it knows its
/// role), one server of an ensemble whose leader numbers up to `counter_limit` per epoch.
pub fn learner_core(
    server_id: u64,
    tree: Tree,
    sessions: Vec<DurableSession>,
    counter_limit: u32,
    local_sessions: bool,
    now: Now,
) -> Core {
    let config = CoreConfig {
        limits: TimeoutLimits {
            min_ms: MIN_SESSION_TIMEOUT_MS as i32,
            max_ms: 40_000,
        },
        extended_types: false,
        container_check_interval_ms: 60_000,
        server_id: server_id as u8,
        seed: TREE_SEED ^ server_id,
        tick_ms: 100,
        local_sessions,
        upgrade_local_sessions: true,
        config_node: None,
    };
    let mut core = Core::recover(config, tree, sessions, &[], now);
    core.join_ensemble(counter_limit);
    core.become_learner(&mut rzk_pipeline::Actions::default());
    core
}

/// A host snapshot: the released tree and the committed sessions as a real snapshot file.
pub fn encode_snapshot(core: &Core) -> Arc<[u8]> {
    let sessions: Vec<SessionRecord> = core
        .committed_sessions()
        .into_iter()
        .map(|s| rzk_snapshot::SessionRecord::from(&s))
        .collect();
    rzk_snapshot::encode(core.released(), &sessions).into()
}

/// The tree and sessions of a host snapshot (empty ones for an empty image).
pub fn decode_snapshot(bytes: &[u8]) -> (Tree, Vec<DurableSession>) {
    if bytes.is_empty() {
        return (empty_tree(), Vec::new());
    }
    let snapshot = rzk_snapshot::decode_with(bytes, NodeHasher::seeded(TREE_SEED))
        .expect("a snapshot this simulator encoded decodes");
    let sessions = snapshot.sessions.iter().map(DurableSession::from).collect();
    (snapshot.tree, sessions)
}

/// Ephemeral nodes of sessions that are not open: ZooKeeper deletes a session's ephemerals
/// in the same transaction that closes it, so on any server, at any applied prefix, none.
pub fn orphaned_ephemerals(core: &Core) -> Vec<String> {
    let sessions = core.committed_sessions();
    core.released()
        .paths()
        .filter(|(_, node)| {
            let owner = node.stat().ephemeral_owner;
            owner != 0 && !sessions.iter().any(|s| s.id == owner)
        })
        .map(|(path, _)| path.to_string())
        .collect()
}

/// Every node as (path, stat, data), sorted: what two servers at the same zxid must agree on.
pub fn contents(tree: &Tree) -> Vec<(String, rzk_proto::Stat, Option<Vec<u8>>)> {
    let mut nodes: Vec<_> = tree
        .paths()
        .map(|(path, node)| {
            (
                path.to_string(),
                node.stat(),
                node.data().map(<[u8]>::to_vec),
            )
        })
        .collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;
    use rzk_pipeline::{Actions, Input};
    use rzk_proto::{ConnectRequest, CreateMode};

    /// The checker fires on a tree that keeps an ephemeral past its session, and only then.
    #[test]
    fn an_ephemeral_without_its_session_is_reported() {
        let now = Now::both(1_000);
        let mut leader = learner_core(1, empty_tree(), Vec::new(), u32::MAX - 1, false, now);
        leader.become_leader(1, &mut Actions::default());
        let mut actions = Actions::default();
        let connect = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 10_000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: None,
        };
        leader.step(
            now,
            Input::Connect {
                conn: 1,
                request: connect,
                auth_ids: Vec::new(),
            },
            &mut actions,
        );
        let request =
            rzk_pipeline::roles::create_request("/e-", b"", CreateMode::EphemeralSequential as i32);
        leader.step(
            now,
            Input::Request {
                conn: 1,
                xid: 1,
                request,
            },
            &mut actions,
        );
        let last = actions.append.last().expect("two txns").zxid;
        leader.seal_batch();
        leader.step(now, Input::Committed { zxid: last }, &mut actions);
        assert!(orphaned_ephemerals(&leader).is_empty());

        // A learner that installed the tree without the sessions holds an orphan.
        let image = encode_snapshot(&leader);
        let (tree, sessions) = decode_snapshot(&image);
        assert_eq!(sessions.len(), 1);
        let mut learner = learner_core(2, empty_tree(), Vec::new(), u32::MAX - 1, false, now);
        learner.install(tree, Vec::new(), &mut Actions::default());
        assert_eq!(
            orphaned_ephemerals(&learner),
            vec!["/e-0000000000".to_owned()]
        );
        assert_eq!(contents(learner.released()), contents(leader.released()));
    }
}
