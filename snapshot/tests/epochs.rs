//! Goal: an ensemble server's epoch files read back what was last written, hold ZooKeeper's
//! decimal text, never leave a temp file behind, and refuse to read damage as an epoch.
//! Method: a fresh directory per test.

mod common;

use std::fs;

use common::TempDir;
use rzk_snapshot::{list, read_epoch, write_epoch, EpochFile};

#[test]
fn epochs_read_back_as_written_in_zookeepers_format() {
    let dir = TempDir::new("epochs");
    assert_eq!(read_epoch(dir.path(), EpochFile::Accepted).unwrap(), None);
    write_epoch(dir.path(), EpochFile::Accepted, 7).unwrap();
    write_epoch(dir.path(), EpochFile::Current, 6).unwrap();
    write_epoch(dir.path(), EpochFile::Accepted, u32::MAX).unwrap();
    assert_eq!(
        read_epoch(dir.path(), EpochFile::Accepted).unwrap(),
        Some(u32::MAX)
    );
    assert_eq!(read_epoch(dir.path(), EpochFile::Current).unwrap(), Some(6));
    assert_eq!(
        fs::read_to_string(dir.path().join("currentEpoch")).unwrap(),
        "6"
    );
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["acceptedEpoch", "currentEpoch"],
        "no temp file left"
    );
    assert!(list(dir.path()).unwrap().is_empty(), "never a snapshot");
    // A file ZooKeeper wrote (it may end with a newline) reads the same.
    fs::write(dir.path().join("currentEpoch"), "12\n").unwrap();
    assert_eq!(
        read_epoch(dir.path(), EpochFile::Current).unwrap(),
        Some(12)
    );
}

#[test]
fn a_damaged_epoch_file_is_an_error_naming_it() {
    let dir = TempDir::new("epochs-damaged");
    for damage in ["", "x1", "-1", "4294967296"] {
        fs::write(dir.path().join("acceptedEpoch"), damage).unwrap();
        let err = read_epoch(dir.path(), EpochFile::Accepted).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("acceptedEpoch") && text.contains("not an epoch"),
            "{damage:?}: {text}"
        );
    }
}

#[test]
fn a_received_snapshot_image_is_written_as_a_snapshot_file() {
    let dir = TempDir::new("image");
    let tree = rzk_tree::Tree::from_nodes(0x3_0000_0009, common::every_kind_nodes()).unwrap();
    let image = rzk_snapshot::encode(&tree, &[]);
    let path = rzk_snapshot::write_image(dir.path(), 0x3_0000_0009, &image).unwrap();
    assert_eq!(fs::read(&path).unwrap(), image);
    let listed = list(dir.path()).unwrap();
    assert_eq!(listed.len(), 1);
    let loaded = rzk_snapshot::load(&listed[0].1).unwrap();
    assert_eq!(loaded.tree.digest(), tree.digest());
}
