//! Goal: a snapshot decodes to exactly the tree and sessions it was encoded from.
//! Method: a hand-built tree with every node kind, null vs empty data and assorted ACLs;
//! compare every Stat field, data, ACL and child set, and the derived node-kind indexes.

mod common;

use common::*;
use rzk_proto::Acl;
use rzk_snapshot::{decode, encode, SessionRecord};
use rzk_tree::{NodeKind, Tree};

#[test]
fn round_trip_every_node_kind_and_null_vs_empty_data() {
    let tree = every_kind_tree();
    let sessions = sessions();
    let snapshot = decode(&encode(&tree, &sessions)).unwrap();
    assert_same_snapshot(&tree, &sessions, &snapshot);

    let got = &snapshot.tree;
    assert_eq!(got.get("/app/null").unwrap().data(), None);
    assert_eq!(got.get("/app/eph").unwrap().data(), None);
    assert_eq!(got.get("/app/container").unwrap().data(), Some(&[][..]));
    assert_eq!(got.get("/").unwrap().data(), Some(&[][..]));
    assert_eq!(
        got.get("/app/eph").unwrap().kind(),
        NodeKind::Ephemeral {
            session_id: EPHEMERAL_OWNER
        }
    );
    assert_eq!(
        got.get("/app/container").unwrap().kind(),
        NodeKind::Container
    );
    assert_eq!(
        got.get("/app/ttl").unwrap().kind(),
        NodeKind::Ttl { ttl_ms: 60_000 }
    );
    assert!(got
        .ephemerals_of(EPHEMERAL_OWNER)
        .unwrap()
        .contains("/app/eph"));
    assert!(got.containers().contains("/app/container"));
    assert!(got.ttls().contains("/app/ttl"));
    assert!(got.get("/app/no-acl").unwrap().acl().is_empty());
    assert_eq!(
        &**got.get("/zookeeper/config").unwrap().acl(),
        &Acl::read_unsafe()[..]
    );
}

#[test]
fn round_trip_fresh_tree_without_sessions() {
    let tree = Tree::new();
    let snapshot = decode(&encode(&tree, &[])).unwrap();
    assert_same_snapshot(&tree, &[], &snapshot);
}

#[test]
fn acl_lists_are_written_once_each() {
    // 2000 nodes sharing one ACL cost about as much as their paths and stats, not 2000 ACLs.
    let mut nodes = every_kind_nodes();
    let root = nodes.iter_mut().find(|n| n.0 == "/").unwrap();
    root.1.num_children += 1;
    let long_acl: Vec<Acl> = (0..20)
        .map(|i| Acl {
            perms: 31,
            id: rzk_proto::Id::new("digest", &format!("user{i}:{}", "x".repeat(28))),
        })
        .collect();
    nodes.push(("/many".into(), stat(50, 0, 0, 2000), None, long_acl.clone()));
    for i in 0..2000 {
        nodes.push((
            format!("/many/n{i}"),
            stat(i, 0, 0, 0),
            None,
            long_acl.clone(),
        ));
    }
    let tree = Tree::from_nodes(7, nodes).unwrap();
    let bytes = encode(&tree, &[]);
    let (_, body) = unframe(&bytes);
    let list_bytes = 4 + 20 * (4 + 4 + 6 + 4 + 33);
    assert!(
        body.len() < 2002 * (4 + 12 + 68 + 4 + 4) + 4 * list_bytes,
        "body of {} bytes holds the ACL list more than a few times",
        body.len()
    );
    assert_same_tree(&tree, &decode(&bytes).unwrap().tree);
}

#[test]
fn many_sessions_round_trip() {
    let sessions: Vec<SessionRecord> = (0..5000)
        .map(|i| SessionRecord {
            id: i * 0x1_0001,
            timeout_ms: (i % 40_000) as i32,
            passwd: [(i % 251) as u8; 16],
        })
        .collect();
    let tree = every_kind_tree();
    let snapshot = decode(&encode(&tree, &sessions)).unwrap();
    assert_same_snapshot(&tree, &sessions, &snapshot);
}

#[test]
fn body_built_by_the_format_doc_decodes() {
    // The format doc alone is enough to write a snapshot: this body follows it by hand.
    let open = Acl::open_unsafe();
    let mut b = BodyBuilder::default();
    b.session(&sessions()[0]);
    b.node(b"/", &stat(0, 0, 0, 1), Some(b""), 0, Some(&open));
    b.node(b"/a", &stat(1, 0, 3, 0), Some(b"abc"), 0, None);
    let snapshot = decode(&frame(99, 2, 1, &b.bytes)).unwrap();
    assert_eq!(snapshot.zxid, 99);
    assert_eq!(snapshot.sessions, &sessions()[..1]);
    assert_eq!(snapshot.tree.get("/a").unwrap().data(), Some(&b"abc"[..]));
    assert_eq!(snapshot.tree.get("/a").unwrap().stat(), stat(1, 0, 3, 0));
}

/// Big enough that decoding runs on its own thread while the tree is built.
fn big_tree() -> Tree {
    let mut nodes = every_kind_nodes();
    let parents = 3;
    let per_parent = rzk_tree::PARALLEL_LOAD_MIN_NODES;
    let root = nodes.iter_mut().find(|n| n.0 == "/").unwrap();
    root.1.num_children += parents;
    for p in 0..parents {
        nodes.push((
            format!("/big{p}"),
            stat(p as i64, 0, 0, per_parent as i32),
            None,
            Acl::open_unsafe(),
        ));
        for i in 0..per_parent {
            nodes.push((
                format!("/big{p}/member_{i:010}"),
                stat(i as i64, 0, 3, 0),
                Some(b"abc".to_vec()),
                Acl::open_unsafe(),
            ));
        }
    }
    Tree::from_nodes(0x42, nodes).unwrap()
}

#[test]
fn big_snapshot_round_trips_with_decoding_on_its_own_thread() {
    let tree = big_tree();
    let sessions = sessions();
    let snapshot = decode(&encode(&tree, &sessions)).unwrap();
    assert_same_snapshot(&tree, &sessions, &snapshot);
}

#[test]
fn big_snapshot_with_a_bad_node_or_record_is_rejected() {
    let tree = big_tree();
    let (header, body) = unframe(&encode(&tree, &[]));
    // Tree error near the start: the builder stops while the decoder has batches to send.
    let mut bad_tree = BodyBuilder::default();
    let n = header.node_count as u32;
    bad_tree.node(
        b"/no/parent",
        &stat(1, 0, 0, 0),
        None,
        0,
        Some(&Acl::open_unsafe()),
    );
    for i in 1..n {
        let path = format!("/orphan{i}/x");
        bad_tree.node(path.as_bytes(), &stat(1, 0, 0, 0), None, 0, None);
    }
    let err = decode(&frame(header.zxid, n as u64, 0, &bad_tree.bytes)).unwrap_err();
    assert!(err.to_string().contains("valid tree"), "{err}");
    // A record cut off at the end: the parse error wins over what the builder made of it.
    let cut = &body[..body.len() - 3];
    let err = decode(&frame(header.zxid, header.node_count, 0, cut)).unwrap_err();
    assert!(err.to_string().contains("runs past"), "{err}");
}
