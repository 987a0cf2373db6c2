//! Goal: applying transactions keeps ZooKeeper's Stat rules and the tree's invariants.
//! Method: hand-built transactions against a fresh tree, plus a seeded random model check.

use super::*;

fn txn(zxid: i64, body: TxnBody) -> Txn {
    Txn {
        zxid,
        time_ms: 1000 + zxid,
        session_id: 0x11,
        cxid: 1,
        body,
    }
}

fn create(path: &str, owner: i64, parent_cversion: i32) -> TxnBody {
    TxnBody::Create {
        path: path.into(),
        data: Some(b"d".to_vec()),
        acl: Acl::open_unsafe(),
        ephemeral_owner: owner,
        parent_cversion,
        reply_stat: true,
    }
}

#[test]
fn fresh_tree_has_zookeeper_system_nodes() {
    let tree = Tree::new();
    let root = tree.get("/").unwrap();
    assert_eq!(root.children().len(), 1);
    assert_eq!(root.stat().num_children, 1);
    assert_eq!(tree.get("/zookeeper").unwrap().children().len(), 2);
    assert!(tree.get("/zookeeper/config").is_some());
    assert_eq!(tree.node_count(), 4);
}

#[test]
fn the_config_node_holds_the_membership_outside_the_digest() {
    let mut tree = Tree::new();
    let digest = tree.digest();
    let text = b"server.1=h:1:2:participant\nversion=0";
    tree.set_config_node(text, 77);
    let node = tree.get("/zookeeper/config").unwrap();
    assert_eq!(node.data_bytes(), text);
    assert_eq!(
        (node.stat().version, node.stat().mzxid, node.stat().mtime),
        (-1, 0, 77)
    );
    assert_eq!(node.stat().data_length as usize, text.len());
    assert_eq!(tree.data_bytes(), text.len() as u64);
    assert_eq!(
        tree.digest(),
        digest,
        "servers' files may differ in spelling"
    );
    assert_eq!(tree.digest(), tree.recompute_digest());
}

#[test]
fn create_sets_stat_and_parent_cversion_pzxid() {
    let mut tree = Tree::new();
    let mut out = Applied::default();
    tree.apply(&txn(5, create("/a", 0, 1)), &mut out);
    let a = tree.get("/a").unwrap();
    assert_eq!(a.stat().czxid, 5);
    assert_eq!(a.stat().mzxid, 5);
    assert_eq!(a.stat().pzxid, 5);
    assert_eq!(a.stat().data_length, 1);
    let root = tree.get("/").unwrap();
    assert_eq!(root.stat().cversion, 1);
    assert_eq!(root.stat().pzxid, 5);
    assert_eq!(out.triggers.len(), 1);
    assert_eq!(out.triggers[0].kind, TriggerKind::Created);
    assert_eq!(&*out.triggers[0].path, "/a");
}

#[test]
fn delete_bumps_parent_pzxid_not_cversion() {
    let mut tree = Tree::new();
    let mut out = Applied::default();
    tree.apply(&txn(1, create("/a", 0, 1)), &mut out);
    tree.apply(&txn(2, create("/a/b", 0, 1)), &mut out);
    tree.apply(
        &txn(
            3,
            TxnBody::Delete {
                path: "/a/b".into(),
            },
        ),
        &mut out,
    );
    let a = tree.get("/a").unwrap();
    assert_eq!(a.stat().cversion, 1);
    assert_eq!(a.stat().pzxid, 3);
    assert_eq!(a.stat().num_children, 0);
}

#[test]
fn close_session_deletes_its_ephemerals_only() {
    let mut tree = Tree::new();
    let mut out = Applied::default();
    tree.apply(&txn(1, create("/e1", 0x11, 1)), &mut out);
    tree.apply(&txn(2, create("/e2", 0x22, 2)), &mut out);
    assert_eq!(tree.ephemeral_count(), 2);
    tree.apply(&txn(3, TxnBody::CloseSession), &mut out);
    assert!(tree.get("/e1").is_none());
    assert!(tree.get("/e2").is_some());
    assert_eq!(tree.ephemeral_count(), 1);
}

#[test]
fn replayed_create_never_rolls_parent_back() {
    let mut tree = Tree::new();
    let mut out = Applied::default();
    tree.apply(&txn(1, create("/a", 0, 1)), &mut out);
    tree.apply(&txn(2, create("/b", 0, 2)), &mut out);
    // A fuzzy snapshot taken after zxid 2 replays zxid 2 again under a new zxid label.
    tree.apply(&txn(3, create("/b", 0, 2)), &mut out);
    let root = tree.get("/").unwrap();
    assert_eq!(root.stat().cversion, 2);
    assert_eq!(root.stat().pzxid, 2);
    assert_eq!(root.stat().num_children, 3);
}

#[test]
fn published_clone_is_unaffected_by_later_writes() {
    let mut tree = Tree::new();
    let mut out = Applied::default();
    tree.apply(&txn(1, create("/a", 0, 1)), &mut out);
    let published = tree.clone();
    tree.apply(
        &txn(
            2,
            TxnBody::SetData {
                path: "/a".into(),
                data: Some(b"new".to_vec()),
                version: 1,
            },
        ),
        &mut out,
    );
    assert_eq!(published.get("/a").unwrap().data_bytes(), b"d");
    assert_eq!(tree.get("/a").unwrap().data_bytes(), b"new");
    assert_eq!(published.last_zxid(), 1);
}

#[test]
fn node_kinds_decode_from_ephemeral_owner() {
    assert_eq!(NodeKind::of_owner(0), NodeKind::Persistent);
    assert_eq!(
        NodeKind::of_owner(CONTAINER_EPHEMERAL_OWNER),
        NodeKind::Container
    );
    assert_eq!(
        NodeKind::of_owner(ttl_ephemeral_owner(5000)),
        NodeKind::Ttl { ttl_ms: 5000 }
    );
    assert_eq!(
        NodeKind::of_owner(0x1234),
        NodeKind::Ephemeral { session_id: 0x1234 }
    );
}

#[test]
fn descendant_count_counts_all_levels() {
    let mut tree = Tree::new();
    let mut out = Applied::default();
    tree.apply(&txn(1, create("/a", 0, 1)), &mut out);
    tree.apply(&txn(2, create("/a/b", 0, 1)), &mut out);
    tree.apply(&txn(3, create("/a/b/c", 0, 1)), &mut out);
    assert_eq!(tree.descendant_count("/a"), 2);
    assert_eq!(tree.descendant_count("/"), 6);
}

#[test]
fn from_nodes_rebuilds_an_equal_tree() {
    let mut tree = Tree::new();
    let mut out = Applied::default();
    tree.apply(&txn(1, create("/a", 0, 1)), &mut out);
    tree.apply(&txn(2, create("/a/e", 0x11, 1)), &mut out);
    tree.apply(
        &txn(3, create("/c", CONTAINER_EPHEMERAL_OWNER, 2)),
        &mut out,
    );
    let nodes: Vec<_> = tree
        .paths()
        .map(|(p, n)| {
            (
                p.to_string(),
                n.stat(),
                n.data().map(<[u8]>::to_vec),
                n.acl().to_vec(),
            )
        })
        .collect();
    let rebuilt = Tree::from_nodes(tree.last_zxid(), nodes).unwrap();
    assert_eq!(rebuilt.node_count(), tree.node_count());
    assert_eq!(rebuilt.ephemeral_count(), 1);
    assert_eq!(rebuilt.containers().len(), 1);
    assert_eq!(rebuilt.data_bytes(), tree.data_bytes());
    for (p, n) in tree.paths() {
        let r = rebuilt.get(p).unwrap();
        assert_eq!(r.stat(), n.stat());
        assert_eq!(r.children(), n.children());
    }
}

#[test]
fn from_nodes_rejects_orphans_and_wrong_child_counts() {
    let root = (
        "/".to_string(),
        Stat::default(),
        None::<Vec<u8>>,
        Acl::open_unsafe(),
    );
    let orphan = (
        "/x/y".to_string(),
        Stat::default(),
        None,
        Acl::open_unsafe(),
    );
    assert!(Tree::from_nodes(0, vec![root.clone(), orphan]).is_err());
    let lying_root = (
        "/".to_string(),
        Stat {
            num_children: 3,
            ..Stat::default()
        },
        None::<Vec<u8>>,
        Acl::open_unsafe(),
    );
    assert!(Tree::from_nodes(0, vec![lying_root]).is_err());
    assert!(Tree::from_nodes(0, vec![root.clone(), root.clone()])
        .err()
        .unwrap()
        .contains("appears twice"));
    let two_children = Stat {
        num_children: 2,
        ..Stat::default()
    };
    let leaf = (
        "/a".to_string(),
        Stat::default(),
        None::<Vec<u8>>,
        Acl::open_unsafe(),
    );
    let parent_of_twins = ("/".to_string(), two_children, None, Acl::open_unsafe());
    assert!(
        Tree::from_nodes(0, vec![parent_of_twins, leaf.clone(), leaf.clone()])
            .err()
            .unwrap()
            .contains("appears twice")
    );
    let child_of_leaf = (
        "/a/b".to_string(),
        Stat::default(),
        None,
        Acl::open_unsafe(),
    );
    let one_child = Stat {
        num_children: 1,
        ..Stat::default()
    };
    let root_of_a = ("/".to_string(), one_child, None, Acl::open_unsafe());
    assert!(Tree::from_nodes(0, vec![root_of_a, leaf, child_of_leaf])
        .err()
        .unwrap()
        .contains("/a/b"));
    let no_root = (
        "/x".to_string(),
        Stat::default(),
        None::<Vec<u8>>,
        Acl::open_unsafe(),
    );
    assert!(Tree::from_nodes(0, vec![no_root])
        .err()
        .unwrap()
        .contains("no root"));
}

/// Many parents, names inline and shared, nodes handed in shuffled, ACLs as `Arc`s shared
/// by some nodes and equal lists given apart: the rebuilt tree equals the applied one.
#[test]
fn from_nodes_rebuilds_many_parents_from_any_order() {
    let mut tree = Tree::new();
    let mut out = Applied::default();
    let mut zxid = 0;
    let mut cversions = std::collections::HashMap::new();
    let mut paths: Vec<String> = vec![];
    for i in 0..40 {
        let parent = match i % 4 {
            0 => "/".to_string(),
            _ => paths[(i * 7) % paths.len().max(1)].clone(),
        };
        let name = if i % 3 == 0 {
            format!("a-long-child-name-beyond-the-inline-bytes-{i}")
        } else {
            format!("n{}", 97 - i)
        };
        let path = path::join(&parent, &name);
        let cv = cversions.entry(parent).or_insert(0);
        *cv += 1;
        zxid += 1;
        tree.apply(&txn(zxid, create(&path, 0, *cv)), &mut out);
        paths.push(path);
    }
    let shared_acl: Arc<[Acl]> = Arc::from(Acl::open_unsafe());
    let mut nodes: Vec<_> = tree
        .paths()
        .enumerate()
        .map(|(i, (p, n))| {
            let acl = if i % 2 == 0 && **n.acl() == *shared_acl {
                shared_acl.clone()
            } else {
                Arc::from(n.acl().to_vec())
            };
            (p.to_string(), n.stat(), n.data().map(<[u8]>::to_vec), acl)
        })
        .collect();
    nodes.reverse();
    nodes.swap(3, 17);
    let rebuilt = Tree::from_nodes(tree.last_zxid(), nodes).unwrap();
    assert_eq!(rebuilt.node_count(), tree.node_count());
    for (p, n) in tree.paths() {
        let r = rebuilt.get(p).unwrap();
        assert_eq!(r.stat(), n.stat(), "{p}");
        assert_eq!(r.children(), n.children(), "{p}");
        assert_eq!(*r.acl(), *n.acl(), "{p}");
        let listed: Vec<&str> = r.children().iter().map(|c| c.as_str()).collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(listed, sorted, "{p}");
    }
    let world = rebuilt.get("/").unwrap().acl().clone();
    for (p, n) in rebuilt.paths() {
        if **n.acl() == *world {
            assert!(
                Arc::ptr_eq(n.acl(), &world),
                "{p} keeps its own copy of a shared ACL"
            );
        }
    }
}

/// Equal ACL lists share one allocation: a node's with its parent's, or with the last list
/// made; an unequal list is never shared.
#[test]
fn equal_acls_share_one_allocation() {
    let mut tree = Tree::new();
    let mut out = Applied::default();
    tree.apply(&txn(1, create("/a", 0, 1)), &mut out);
    let root_acl = tree.get("/").unwrap().acl().clone();
    assert!(Arc::ptr_eq(tree.get("/a").unwrap().acl(), &root_acl));
    let read_only = |path: &str| TxnBody::Create {
        path: path.into(),
        data: None,
        acl: Acl::read_unsafe(),
        ephemeral_owner: 0,
        parent_cversion: 2,
        reply_stat: false,
    };
    tree.apply(&txn(2, read_only("/b")), &mut out);
    tree.apply(&txn(3, read_only("/a/c")), &mut out);
    let b = tree.get("/b").unwrap().acl().clone();
    assert_eq!(*b, *Acl::read_unsafe());
    assert!(Arc::ptr_eq(&b, tree.get("/a/c").unwrap().acl()));
    assert!(!Arc::ptr_eq(&b, &root_acl));
    tree.apply(
        &txn(
            4,
            TxnBody::SetAcl {
                path: "/a".into(),
                acl: Acl::read_unsafe(),
                aversion: 1,
            },
        ),
        &mut out,
    );
    assert!(Arc::ptr_eq(&b, tree.get("/a").unwrap().acl()));
    assert_eq!(**tree.get("/").unwrap().acl(), *Acl::open_unsafe());
}

/// A tree big enough that `from_nodes` builds the children sets on a second thread, with
/// several big parents, rebuilds equal to the applied one.
#[test]
fn from_nodes_rebuilds_a_big_tree_on_two_threads() {
    let mut tree = Tree::new();
    let mut out = Applied::default();
    let mut zxid = 0;
    for p in 0..3 {
        zxid += 1;
        tree.apply(&txn(zxid, create(&format!("/p{p}"), 0, p + 1)), &mut out);
    }
    let n = PARALLEL_LOAD_MIN_NODES * 2;
    for i in 0..n {
        zxid += 1;
        let path = format!("/p{}/s{:05}-{:010}", i % 3, i % 16, i);
        tree.apply(&txn(zxid, create(&path, 0, (i / 3) as i32 + 1)), &mut out);
    }
    let nodes: Vec<_> = tree
        .paths()
        .map(|(p, n)| {
            (
                p.to_string(),
                n.stat(),
                n.data().map(<[u8]>::to_vec),
                n.acl().clone(),
            )
        })
        .collect();
    let rebuilt = Tree::from_nodes(tree.last_zxid(), nodes).unwrap();
    assert_eq!(rebuilt.node_count(), n + 7);
    assert_eq!(rebuilt.data_bytes(), tree.data_bytes());
    for (p, n) in tree.paths() {
        let r = rebuilt.get(p).unwrap();
        assert_eq!(r.stat(), n.stat(), "{p}");
        assert_eq!(r.children(), n.children(), "{p}");
    }
}

#[test]
fn a_node_digest_is_zookeepers_crc32_layout() {
    let mut tree = Tree::new();
    tree.apply(&txn(5, create("/a", 0, 1)), &mut Applied::default());
    // zlib.crc32(b"/a" + b"d" + struct.pack(">qqqqqiiiq", 5, 5, 5, 1005, 1005, 0, 0, 0, 0))
    assert_eq!(node_digest(tree.get("/a").unwrap()), 2_085_762_356);
    assert_eq!(node_digest(tree.get("/zookeeper/quota").unwrap()), 0);
    assert_ne!(node_digest(tree.get("/zookeeper").unwrap()), 0);
}

#[test]
fn the_tree_digest_follows_every_change_and_rebuild() {
    let mut tree = Tree::new();
    assert_eq!(tree.digest(), tree.recompute_digest());
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    let paths = ["/a", "/b", "/a/x", "/a/y", "/b/z", "/zookeeper/quota/a"];
    let mut published = Vec::new();
    for zxid in 1..=400i64 {
        let path = paths[next(paths.len() as u64) as usize].to_owned();
        let body = match next(6) {
            0 | 1 => create(&path, if next(2) == 0 { 0 } else { 0x11 }, zxid as i32),
            2 => TxnBody::Delete { path },
            3 => TxnBody::SetData {
                path,
                data: Some(vec![zxid as u8; next(40) as usize]),
                version: zxid as i32,
            },
            4 => TxnBody::SetAcl {
                path,
                acl: Acl::read_unsafe(),
                aversion: zxid as i32,
            },
            _ => TxnBody::CloseSession,
        };
        // A create over an existing node or a delete of a missing one is what prep rejects;
        // only apply what prep would let through.
        let exists = match &body {
            TxnBody::Create { path, .. } => tree.get(path).is_some(),
            TxnBody::Delete { path } | TxnBody::SetData { path, .. } => {
                tree.get(path).is_none_or(|n| !n.children().is_empty())
            }
            _ => false,
        };
        let parent_missing = match &body {
            TxnBody::Create { path, .. } => tree.get(path::parent(path).unwrap()).is_none(),
            _ => false,
        };
        if exists || parent_missing {
            continue;
        }
        if zxid % 50 == 0 {
            published.push((tree.clone(), tree.digest()));
        }
        tree.apply(&txn(zxid, body), &mut Applied::default());
        assert_eq!(tree.digest(), tree.recompute_digest(), "after zxid {zxid}");
    }
    for (version, digest) in &published {
        assert_eq!(
            version.digest(),
            *digest,
            "a published version keeps its digest"
        );
    }
    let rebuilt = Tree::from_nodes(
        tree.last_zxid(),
        tree.paths().map(|(p, n)| {
            (
                p.to_string(),
                n.stat(),
                n.data().map(<[u8]>::to_vec),
                n.acl().to_vec(),
            )
        }),
    )
    .unwrap();
    assert_eq!(rebuilt.digest(), tree.digest());
    assert!(tree.node_count() > 4, "the walk built something");
}

/// Goal: every version of the tree, the writer's and each one a reader still holds, answers
/// as a plain model of the log's prefix it was published at.
/// Method: random create/delete/setData/setACL/closeSession/multi sequences (multis that fail
/// as prep marks them: every sub-op an error) made valid against a model, a `BTreeMap` of
/// paths to Stat, data and ACL with ZooKeeper's Stat rules written out directly; versions
/// cloned along the way are checked against the model as it was when they were cloned, after
/// the writer has gone on.
mod model {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct ModelNode {
        /// The stored Stat (cversion counts creates, as the tree keeps it).
        stat: Stat,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
    }

    type Model = BTreeMap<String, ModelNode>;

    /// Paths /a .. /b/b/b: two names, three levels, so that sequences often reach a node
    /// again.
    fn universe() -> Vec<String> {
        let names = ["a", "b"];
        let mut paths = vec![];
        for x in names {
            paths.push(format!("/{x}"));
            for y in names {
                paths.push(format!("/{x}/{y}"));
                for z in names {
                    paths.push(format!("/{x}/{y}/{z}"));
                }
            }
        }
        paths
    }

    #[derive(Debug, Clone)]
    enum Op {
        Create {
            path: usize,
            session: i64,
            data: Option<Vec<u8>>,
            read_only: bool,
        },
        Delete {
            path: usize,
        },
        SetData {
            path: usize,
            data: Option<Vec<u8>>,
        },
        SetAcl {
            path: usize,
            read_only: bool,
        },
        CloseSession {
            session: i64,
        },
        Multi(Vec<Op>),
        /// A reader takes the current version and keeps it.
        Hold,
    }

    fn simple_op() -> impl Strategy<Value = Op> {
        let path = 0..universe().len();
        let data = proptest::option::weighted(0.9, proptest::collection::vec(any::<u8>(), 0..8));
        prop_oneof![
            4 => (path.clone(), 0..3i64, data.clone(), any::<bool>()).prop_map(
                |(path, session, data, read_only)| Op::Create { path, session, data, read_only }
            ),
            2 => path.clone().prop_map(|path| Op::Delete { path }),
            2 => (path.clone(), data).prop_map(|(path, data)| Op::SetData { path, data }),
            1 => (path, any::<bool>()).prop_map(|(path, read_only)| Op::SetAcl { path, read_only }),
            1 => (1..3i64).prop_map(|session| Op::CloseSession { session }),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => simple_op(),
            2 => proptest::collection::vec(simple_op(), 1..5).prop_map(Op::Multi),
            1 => Just(Op::Hold),
        ]
    }

    fn children<'m>(model: &'m Model, parent: &str) -> Vec<&'m str> {
        model
            .keys()
            .filter(|p| path::parent(p) == Some(parent))
            .map(|p| path::basename(p))
            .collect()
    }

    fn acl_of(read_only: bool) -> Vec<Acl> {
        if read_only {
            Acl::read_unsafe()
        } else {
            Acl::open_unsafe()
        }
    }

    /// Turns `op` into the txn body prep would make against `model` and applies it to the
    /// model, as the tree must; None when prep would reject it (and the model is unchanged).
    /// CloseSession is not made here: it is a txn of its own, carrying the session.
    fn prep(model: &mut Model, op: &Op, zxid: i64, time_ms: i64) -> Option<TxnBody> {
        let all = universe();
        match op {
            Op::Create {
                path,
                session,
                data,
                read_only,
            } => {
                let path = &all[*path];
                let parent = path::parent(path).unwrap();
                let p = model.get(parent)?;
                if model.contains_key(path.as_str()) || p.stat.ephemeral_owner != 0 {
                    return None;
                }
                let parent_cversion = p.stat.cversion + 1;
                let p = model.get_mut(parent).unwrap();
                p.stat.cversion = parent_cversion;
                p.stat.pzxid = zxid;
                p.stat.num_children += 1;
                let acl = acl_of(*read_only);
                let stat = Stat {
                    czxid: zxid,
                    mzxid: zxid,
                    pzxid: zxid,
                    ctime: time_ms,
                    mtime: time_ms,
                    ephemeral_owner: *session,
                    data_length: data.as_ref().map_or(0, Vec::len) as i32,
                    ..Stat::default()
                };
                model.insert(
                    path.clone(),
                    ModelNode {
                        stat,
                        data: data.clone(),
                        acl: acl.clone(),
                    },
                );
                Some(TxnBody::Create {
                    path: path.clone(),
                    data: data.clone(),
                    acl,
                    ephemeral_owner: *session,
                    parent_cversion,
                    reply_stat: true,
                })
            }
            Op::Delete { path } => {
                let path = &all[*path];
                if model.get(path.as_str())?.stat.num_children != 0 {
                    return None;
                }
                model_delete(model, path, zxid);
                Some(TxnBody::Delete { path: path.clone() })
            }
            Op::SetData { path, data } => {
                let path = &all[*path];
                let node = model.get_mut(path.as_str())?;
                node.stat.version += 1;
                node.stat.mzxid = zxid;
                node.stat.mtime = time_ms;
                node.stat.data_length = data.as_ref().map_or(0, Vec::len) as i32;
                node.data = data.clone();
                Some(TxnBody::SetData {
                    path: path.clone(),
                    data: data.clone(),
                    version: node.stat.version,
                })
            }
            Op::SetAcl { path, read_only } => {
                let path = &all[*path];
                let node = model.get_mut(path.as_str())?;
                node.stat.aversion += 1;
                node.acl = acl_of(*read_only);
                Some(TxnBody::SetAcl {
                    path: path.clone(),
                    acl: node.acl.clone(),
                    aversion: node.stat.aversion,
                })
            }
            Op::Multi(ops) => {
                let mut scratch = model.clone();
                let mut bodies = vec![];
                for op in ops {
                    match prep(&mut scratch, op, zxid, time_ms) {
                        Some(body) => bodies.push(body),
                        None => {
                            // Prep marks every sub-op of a failed multi as an error.
                            let err = ErrorCode::NoNode as i32;
                            return Some(TxnBody::Multi(
                                ops.iter().map(|_| TxnBody::Error { err }).collect(),
                            ));
                        }
                    }
                }
                *model = scratch;
                Some(TxnBody::Multi(bodies))
            }
            Op::CloseSession { .. } | Op::Hold => None,
        }
    }

    fn model_delete(model: &mut Model, path: &str, zxid: i64) {
        model.remove(path);
        let parent = model.get_mut(path::parent(path).unwrap()).unwrap();
        parent.stat.num_children -= 1;
        parent.stat.pzxid = parent.stat.pzxid.max(zxid);
    }

    /// Every node of the model, and no other, is in `tree` with its Stat, data, ACL and
    /// children; the counts and the digest agree.
    fn check(tree: &Tree, model: &Model, last_zxid: i64) -> Result<(), TestCaseError> {
        prop_assert_eq!(tree.node_count(), model.len());
        prop_assert_eq!(tree.last_zxid(), last_zxid);
        let mut bytes = 0u64;
        for (path, m) in model {
            let node = tree.get(path);
            prop_assert!(node.is_some(), "{} is missing", path);
            let node = node.unwrap();
            prop_assert_eq!(node.stat(), m.stat, "{}", path);
            prop_assert_eq!(node.data(), m.data.as_deref(), "{}", path);
            prop_assert_eq!(&**node.acl(), &m.acl[..], "{}", path);
            let listed: Vec<&str> = node.children().iter().map(|c| c.as_str()).collect();
            prop_assert_eq!(listed, children(model, path), "{}", path);
            let client = node.client_stat();
            prop_assert_eq!(client.cversion, 2 * m.stat.cversion - m.stat.num_children);
            bytes += m.data.as_ref().map_or(0, Vec::len) as u64;
        }
        prop_assert_eq!(tree.paths().count(), model.len());
        prop_assert_eq!(tree.data_bytes(), bytes);
        prop_assert_eq!(tree.digest(), tree.recompute_digest());
        let ephemerals = model
            .values()
            .filter(|m| m.stat.ephemeral_owner != 0)
            .count();
        prop_assert_eq!(tree.ephemeral_count(), ephemerals);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn every_version_answers_as_the_model_of_its_prefix(
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let mut tree = Tree::new();
            let mut model: Model = Tree::new()
                .paths()
                .map(|(p, n)| {
                    let m = ModelNode {
                        stat: n.stat(),
                        data: n.data().map(<[u8]>::to_vec),
                        acl: n.acl().to_vec(),
                    };
                    (p.to_string(), m)
                })
                .collect();
            let mut held: Vec<(Tree, Model, i64)> = vec![];
            let mut zxid = 0;
            for op in &ops {
                let time_ms = 1000 + zxid;
                let (session_id, body) = match op {
                    Op::Hold => {
                        held.push((tree.clone(), model.clone(), zxid));
                        continue;
                    }
                    Op::CloseSession { session } => {
                        let mine: Vec<String> = model
                            .iter()
                            .filter(|(_, m)| m.stat.ephemeral_owner == *session)
                            .map(|(p, _)| p.clone())
                            .collect();
                        for path in mine {
                            model_delete(&mut model, &path, zxid + 1);
                        }
                        (*session, TxnBody::CloseSession)
                    }
                    op => match prep(&mut model, op, zxid + 1, time_ms) {
                        Some(body) => (0x11, body),
                        None => continue,
                    },
                };
                zxid += 1;
                let txn = Txn { zxid, time_ms, session_id, cxid: 1, body };
                tree.apply(&txn, &mut Applied::default());
                check(&tree, &model, zxid)?;
            }
            for (version, model, zxid) in &held {
                check(version, model, *zxid)?;
            }
        }
    }
}
