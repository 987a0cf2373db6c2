//! Goal: snapshot files are written atomically under the right name, listed newest first,
//! loaded with errors naming file and offset, and purged by count; temp files are never
//! taken for snapshots.
//! Method: a fresh directory under the system temp dir per test, removed afterwards.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use rzk_snapshot::{list, load, purge, write, SnapshotError, HEADER_BYTES};
use rzk_tree::Tree;

fn tree_at(zxid: i64) -> Tree {
    Tree::from_nodes(zxid, every_kind_nodes()).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn write_list_load_purge() {
    let dir = TempDir::new("cycle");
    assert_eq!(purge(dir.path(), 3).unwrap(), (None, vec![]));
    assert!(list(dir.path()).unwrap().is_empty());

    let zxids = [0x1_0000_0003_i64, 1, 0x2_0000_0001, 2, 0x1_0000_0007];
    for zxid in zxids {
        let (path, size_bytes) = write(dir.path(), &tree_at(zxid), &sessions()).unwrap();
        assert_eq!(path, dir.path().join(format!("snapshot.{zxid:016x}")));
        assert_eq!(fs::metadata(&path).unwrap().len(), size_bytes);
    }
    // Only final names: no temp file survives a successful write.
    assert_eq!(names(dir.path()).len(), zxids.len());

    let listed = list(dir.path()).unwrap();
    let listed_zxids: Vec<i64> = listed.iter().map(|s| s.0).collect();
    assert_eq!(
        listed_zxids,
        [0x2_0000_0001, 0x1_0000_0007, 0x1_0000_0003, 2, 1]
    );
    for (zxid, path) in &listed {
        let snapshot = load(path).unwrap();
        assert_eq!(snapshot.zxid, *zxid);
        assert_same_snapshot(&tree_at(*zxid), &sessions(), &snapshot);
    }

    // Fewer than 3 is raised to 3, ZooKeeper's floor.
    let (oldest, deleted) = purge(dir.path(), 1).unwrap();
    assert_eq!(oldest, Some(0x1_0000_0003));
    assert_eq!(deleted, [listed[3].1.clone(), listed[4].1.clone()]);
    let kept: Vec<i64> = list(dir.path()).unwrap().iter().map(|s| s.0).collect();
    assert_eq!(kept, [0x2_0000_0001, 0x1_0000_0007, 0x1_0000_0003]);

    let (oldest, deleted) = purge(dir.path(), 5).unwrap();
    assert_eq!(oldest, Some(0x1_0000_0003));
    assert!(deleted.is_empty());

    // Writing the same zxid again replaces the file whole.
    let (path, _) = write(dir.path(), &tree_at(0x1_0000_0007), &[]).unwrap();
    assert!(load(&path).unwrap().sessions.is_empty());
    assert_eq!(names(dir.path()).len(), 3);
}

#[test]
fn load_errors_name_the_file_and_offset() {
    let dir = TempDir::new("load-errors");
    let (path, size_bytes) = write(dir.path(), &tree_at(9), &sessions()).unwrap();

    // A flipped byte in the body.
    let mut bytes = fs::read(&path).unwrap();
    bytes[HEADER_BYTES + 3] ^= 0x10;
    fs::write(&path, &bytes).unwrap();
    match load(&path) {
        Err(SnapshotError::Corrupt {
            path: p, offset, ..
        }) => {
            assert_eq!(p, path);
            assert_eq!(offset, HEADER_BYTES as u64);
        }
        other => panic!("{other:?}"),
    }
    let message = load(&path).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("byte 52"), "{message}");

    // A torn tail.
    bytes[HEADER_BYTES + 3] ^= 0x10;
    fs::write(&path, &bytes[..size_bytes as usize - 10]).unwrap();
    match load(&path) {
        Err(SnapshotError::Corrupt { offset, .. }) => assert_eq!(offset, size_bytes - 10),
        other => panic!("{other:?}"),
    }

    // A good file under another zxid's name.
    fs::write(&path, &bytes).unwrap();
    load(&path).unwrap();
    let renamed = dir.path().join("snapshot.000000000000000a");
    fs::rename(&path, &renamed).unwrap();
    match load(&renamed) {
        Err(SnapshotError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, 8);
            assert!(reason.contains("file name"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // No file at all.
    match load(&path) {
        Err(SnapshotError::Io { path: p, source }) => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn stale_temp_files_are_ignored_and_purged() {
    let dir = TempDir::new("stale-temp");
    for zxid in [1, 2, 3] {
        write(dir.path(), &tree_at(zxid), &[]).unwrap();
    }
    // A crashed earlier process left a half-written temp file with a higher zxid, and this
    // process has a write of its own in progress.
    let other_pid = std::process::id().wrapping_add(1);
    let stale = dir
        .path()
        .join(format!("snapshot.0000000000000009.tmp.{other_pid}.0"));
    fs::write(&stale, b"RZKS\x01\0\0\0 half a header").unwrap();
    let ours = dir.path().join(format!(
        "snapshot.000000000000000a.tmp.{}.99",
        std::process::id()
    ));
    fs::write(&ours, b"").unwrap();
    // Unrelated files are left alone too.
    fs::write(dir.path().join("log.0000000000000001"), b"").unwrap();
    fs::create_dir(dir.path().join("snapshot.000000000000000b")).unwrap();

    let listed: Vec<i64> = list(dir.path()).unwrap().iter().map(|s| s.0).collect();
    assert_eq!(listed, [3, 2, 1]);
    assert_eq!(load(&list(dir.path()).unwrap()[0].1).unwrap().zxid, 3);

    let (oldest, deleted) = purge(dir.path(), 3).unwrap();
    assert_eq!(oldest, Some(1));
    assert_eq!(deleted, std::slice::from_ref(&stale));
    assert!(!stale.exists());
    assert!(
        ours.exists(),
        "a temp file of this process may still be being written"
    );
    assert!(dir.path().join("log.0000000000000001").exists());
}

#[test]
fn write_into_a_missing_dir_fails_cleanly() {
    let dir = TempDir::new("missing");
    let missing = dir.path().join("nope");
    let e = write(&missing, &tree_at(1), &[]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(e.to_string().contains("nope"), "{e}");
    assert!(list(&missing).is_err());
}
