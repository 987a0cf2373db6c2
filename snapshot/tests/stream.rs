//! Goal: a snapshot streamed to a learner in chunks becomes, on the learner, the same
//! snapshot file `write` makes and the same tree, and a damaged stream never becomes a
//! snapshot (no file under a real name, no temp file left).
//! Method: a tree of a few thousand nodes streamed; the chunks re-cut at random sizes (as a
//! transport may deliver them) and installed into a scratch dir; then one byte flipped, or
//! the wrong zxid announced.

mod common;

use std::fs;
use std::path::Path;

use common::TempDir;

use rzk_proto::{Acl, Txn, TxnBody};
use rzk_snapshot::{encode, list, stream, Install, SessionRecord, SnapshotError};
use rzk_tree::{Applied, NodeHasher, Tree};

fn tree() -> Tree {
    let mut tree = Tree::with_hasher(NodeHasher::seeded(5));
    let mut applied = Applied::default();
    for zxid in 1..=3_000i64 {
        let txn = Txn {
            zxid,
            time_ms: zxid,
            session_id: 3,
            cxid: 0,
            body: TxnBody::Create {
                path: format!("/n{zxid}"),
                // Incompressible enough that the body spans several chunks.
                data: Some((0..200).map(|i| (zxid * 31 + i * 7) as u8).collect()),
                acl: Acl::open_unsafe(),
                ephemeral_owner: 0,
                parent_cversion: zxid as i32,
                reply_stat: false,
            },
        };
        tree.apply(&txn, &mut applied);
    }
    tree
}

fn sessions() -> Vec<SessionRecord> {
    vec![SessionRecord {
        id: 3,
        timeout_ms: 30_000,
        passwd: [1; 16],
    }]
}

/// The streamed body, as delivered.
fn streamed(tree: &Tree) -> (Vec<Vec<u8>>, rzk_snapshot::Framing) {
    let mut chunks = Vec::new();
    let framing = stream(tree, &sessions(), |c| {
        chunks.push(c.to_vec());
        Ok(())
    })
    .unwrap();
    (chunks, framing)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_streamed_snapshot_is_encode_byte_for_byte() {
    let tree = tree();
    let (chunks, framing) = streamed(&tree);
    assert!(chunks.len() > 1, "the body comes in pieces");
    let mut file = framing.header.to_vec();
    for c in &chunks {
        file.extend_from_slice(c);
    }
    file.extend_from_slice(&framing.trailer);
    assert!(file == encode(&tree, &sessions()));
}

#[test]
fn an_installed_stream_is_a_snapshot_file_with_the_same_tree() {
    let dir = TempDir::new("stream-install");
    let tree = tree();
    let (chunks, framing) = streamed(&tree);
    let body: Vec<u8> = chunks.concat();
    let mut install = Install::begin(dir.path(), tree.last_zxid()).unwrap();
    // Re-cut as a transport might deliver it.
    let mut at = 0;
    let mut size = 1;
    while at < body.len() {
        let end = (at + size).min(body.len());
        install.chunk(&body[at..end]).unwrap();
        at = end;
        size = size * 3 % 65_537 + 1;
    }
    let (path, snapshot) = install.finish(&framing, NodeHasher::seeded(5)).unwrap();
    assert_eq!(list(dir.path()).unwrap(), vec![(tree.last_zxid(), path)]);
    assert_eq!(snapshot.tree.digest(), tree.digest());
    assert_eq!(snapshot.tree.node_count(), tree.node_count());
    assert_eq!(snapshot.sessions, sessions());
    assert_eq!(names(dir.path()).len(), 1, "no temp file left");
}

#[test]
fn a_damaged_or_mislabelled_stream_leaves_nothing() {
    let tree = tree();
    let (chunks, framing) = streamed(&tree);
    let mut body: Vec<u8> = chunks.concat();
    let middle = body.len() / 2;
    body[middle] ^= 0x40;
    let dir = TempDir::new("stream-damaged");
    let mut install = Install::begin(dir.path(), tree.last_zxid()).unwrap();
    install.chunk(&body).unwrap();
    match install.finish(&framing, NodeHasher::seeded(5)) {
        Err(SnapshotError::Corrupt { .. }) => {}
        other => panic!("a flipped byte must be refused: {:?}", other.map(|r| r.0)),
    }
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));

    let dir = TempDir::new("stream-mislabelled");
    let mut install = Install::begin(dir.path(), tree.last_zxid() + 1).unwrap();
    install.chunk(&chunks.concat()).unwrap();
    assert!(install.finish(&framing, NodeHasher::seeded(5)).is_err());
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}
