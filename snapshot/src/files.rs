//! Snapshot files in the data dir: `snapshot.<zxid as 16 lowercase hex digits>`, written
//! through a temp file so that a name without suffix always means a complete, durable file.
//! The only module of this crate that does file I/O; the bytes themselves are `format`'s.
//!
//! Crash scenario the write order guards against: 1) the temp file is written and fsynced;
//! 2) it is renamed to its final name; 3) the directory is fsynced. A crash before 2 leaves
//! only a temp file, which `list` never returns and a later `purge` deletes; a crash between
//! 2 and 3 leaves either the complete file or nothing under the final name, never a partial
//! one, because the rename is atomic and the data was durable before it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rzk_tree::Tree;

use crate::format::{self, HEADER_BYTES, TRAILER_BYTES};
use crate::{SessionRecord, Snapshot, SnapshotError};

/// ZooKeeper's floor for `autopurge.snapRetainCount`: `purge` never keeps fewer snapshots,
/// so one corrupt newest snapshot still leaves older ones to recover from.
pub const SNAP_RETAIN_COUNT_MIN: usize = 3;

const FILE_PREFIX: &str = "snapshot.";
const ZXID_HEX_DIGITS: usize = 16;
/// Temp files are `snapshot.<zxid hex>.tmp.<pid>.<sequence>`: the pid tells a stale file
/// (left by a crashed earlier process) from one this process is still writing.
const TEMP_MARKER: &str = ".tmp.";

/// Distinguishes temp files of concurrent writes within one process.
static TEMP_SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn file_name(zxid: i64) -> String {
    format!("{FILE_PREFIX}{:016x}", zxid as u64)
}

/// The zxid of a final snapshot file name; `None` for anything else (temp files included).
fn parse_name(name: &str) -> Option<i64> {
    let hex = name.strip_prefix(FILE_PREFIX)?;
    if hex.len() != ZXID_HEX_DIGITS || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|zxid| zxid as i64)
}

/// The pid embedded in a temp file name made by `write`.
fn parse_temp_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(FILE_PREFIX)?;
    let (hex, rest) = rest.split_at_checked(ZXID_HEX_DIGITS)?;
    parse_name(&format!("{FILE_PREFIX}{hex}"))?;
    let (pid, sequence) = rest.strip_prefix(TEMP_MARKER)?.split_once('.')?;
    sequence.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Where the snapshot of `zxid` lives once complete.
pub(crate) fn final_path(dir: &Path, zxid: i64) -> PathBuf {
    dir.join(file_name(zxid))
}

/// A fresh temp file name for a snapshot of `zxid` being written (never listed).
pub(crate) fn temp_path(dir: &Path, zxid: i64) -> PathBuf {
    dir.join(format!(
        "{}{TEMP_MARKER}{}.{}",
        file_name(zxid),
        std::process::id(),
        TEMP_SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Adds the path to an I/O error, so an operator sees which file failed.
pub(crate) fn with_path(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(with_path(dir))
}

/// Writes `<dir>/snapshot.<zxid>` (zxid = `tree.last_zxid()`) via a temp file in the same
/// dir: write, fsync the file, rename, fsync the dir. Returns the final path and its size in
/// bytes. The compressed body streams into the file; no whole-file buffer is built.
/// On error the temp file is removed and no final file is claimed to exist.
pub fn write(dir: &Path, tree: &Tree, sessions: &[SessionRecord]) -> io::Result<(PathBuf, u64)> {
    let final_path = final_path(dir, tree.last_zxid());
    let temp_path = temp_path(dir, tree.last_zxid());
    let written = write_temp(&temp_path, tree, sessions).and_then(|size_bytes| {
        fs::rename(&temp_path, &final_path).map_err(with_path(&final_path))?;
        sync_dir(dir)?;
        Ok(size_bytes)
    });
    match written {
        Ok(size_bytes) => Ok((final_path, size_bytes)),
        Err(e) => {
            // Best effort: after a failed rename the temp file is still there; after a
            // failed dir fsync it is already gone.
            let _ = fs::remove_file(&temp_path);
            Err(e)
        }
    }
}

/// Writes a whole snapshot image (a leader's SNAP, already decoded and checked by the
/// caller with [`crate::decode`]) as `<dir>/snapshot.<zxid>`, the same atomic way as [`write`].
/// `zxid` must be the image's own (its header's), or `load` refuses the file.
pub fn write_image(dir: &Path, zxid: i64, image: &[u8]) -> io::Result<PathBuf> {
    let final_path = final_path(dir, zxid);
    let temp_path = temp_path(dir, zxid);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(with_path(&temp_path))?;
        file.write_all(image)
            .and_then(|()| file.sync_all())
            .map_err(with_path(&temp_path))?;
        fs::rename(&temp_path, &final_path).map_err(with_path(&final_path))?;
        sync_dir(dir)
    })();
    match written {
        Ok(()) => Ok(final_path),
        Err(e) => {
            let _ = fs::remove_file(&temp_path);
            Err(e)
        }
    }
}

fn write_temp(path: &Path, tree: &Tree, sessions: &[SessionRecord]) -> io::Result<u64> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(with_path(path))?;
    let mut write_all = || -> io::Result<u64> {
        // The header is written last: until then byte 0 holds zeros, never a valid magic.
        file.write_all(&[0u8; HEADER_BYTES])?;
        let body = format::write_body(tree, sessions, &mut file)?;
        file.write_all(&body.crc.to_le_bytes())?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&body.header.to_bytes())?;
        file.sync_all()?;
        Ok(HEADER_BYTES as u64 + body.header.body_compressed_bytes + TRAILER_BYTES as u64)
    };
    write_all().map_err(with_path(path))
}

/// The snapshot files in `dir`, newest (highest zxid) first. Temp files and anything else
/// not named exactly `snapshot.<16 lowercase hex digits>` are skipped.
pub fn list(dir: &Path) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut snapshots = Vec::new();
    for entry in fs::read_dir(dir).map_err(with_path(dir))? {
        let entry = entry.map_err(with_path(dir))?;
        let Some(zxid) = entry.file_name().to_str().and_then(parse_name) else {
            continue;
        };
        if entry
            .file_type()
            .map_err(with_path(&entry.path()))?
            .is_file()
        {
            snapshots.push((zxid, entry.path()));
        }
    }
    snapshots.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    Ok(snapshots)
}

/// Loads and fully checks one snapshot file. Errors name the file and the byte offset where
/// it went wrong. A file whose name and header disagree on the zxid is corrupt too: recovery
/// chooses snapshots by name and must get the state that name promises.
pub fn load(path: &Path) -> Result<Snapshot, SnapshotError> {
    load_with(path, rzk_tree::NodeHasher::new())
}

/// `load`, with the tree's map hashing by `hasher` (see `format::decode_with`).
pub fn load_with(path: &Path, hasher: rzk_tree::NodeHasher) -> Result<Snapshot, SnapshotError> {
    let bytes = fs::read(path).map_err(|source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    })?;
    let snapshot =
        format::decode_bytes(&bytes, hasher).map_err(|c| c.into_error(path.to_owned()))?;
    let name_zxid = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_name);
    if let Some(name_zxid) = name_zxid {
        if name_zxid != snapshot.zxid {
            return Err(SnapshotError::Corrupt {
                path: path.to_owned(),
                offset: 8,
                reason: format!(
                    "the file name says zxid {name_zxid:#x} but the header says {:#x}",
                    snapshot.zxid
                ),
            });
        }
    }
    Ok(snapshot)
}

/// Deletes all but the newest `retain` snapshots (`retain` is raised to
/// [`SNAP_RETAIN_COUNT_MIN`], as ZooKeeper does), and temp files left by other (crashed)
/// processes. Returns the zxid of the oldest snapshot kept, `None` if there is none, and every
/// path deleted. The caller may purge log segments wholly at or below that zxid: recovery
/// from the oldest kept snapshot replays only records above it.
pub fn purge(dir: &Path, retain: usize) -> io::Result<(Option<i64>, Vec<PathBuf>)> {
    let retain = retain.max(SNAP_RETAIN_COUNT_MIN);
    let snapshots = list(dir)?;
    let kept_count = retain.min(snapshots.len());
    let oldest_kept_zxid = kept_count.checked_sub(1).map(|i| snapshots[i].0);
    let mut deleted = Vec::new();
    for (_, path) in snapshots.into_iter().skip(kept_count) {
        remove(&path, &mut deleted)?;
    }
    let own_pid = std::process::id();
    for entry in fs::read_dir(dir).map_err(with_path(dir))? {
        let entry = entry.map_err(with_path(dir))?;
        let pid = entry.file_name().to_str().and_then(parse_temp_pid);
        if pid.is_some_and(|pid| pid != own_pid) {
            remove(&entry.path(), &mut deleted)?;
        }
    }
    // No dir fsync: a deletion undone by a crash only leaves an old file for the next purge.
    Ok((oldest_kept_zxid, deleted))
}

fn remove(path: &Path, deleted: &mut Vec<PathBuf>) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            deleted.push(path.to_owned());
            Ok(())
        }
        // Someone else (a concurrent purge) got there first.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(with_path(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    //! Goal: file names round-trip and nothing but final snapshot names is taken for one.
    use super::*;

    #[test]
    fn names_round_trip_and_temp_names_are_not_snapshots() {
        for zxid in [0, 1, 0x1_0000_0005, i64::MAX] {
            let name = file_name(zxid);
            assert_eq!(name.len(), FILE_PREFIX.len() + ZXID_HEX_DIGITS);
            assert_eq!(parse_name(&name), Some(zxid));
            let temp = format!("{name}{TEMP_MARKER}1234.7");
            assert_eq!(parse_name(&temp), None);
            assert_eq!(parse_temp_pid(&temp), Some(1234));
        }
        for not_ours in [
            "snapshot.",
            "snapshot.00000000000000zz",
            "snapshot.000000000000000A",
            "snapshot.0000000000000001x",
            "snapshot.000000000000001",
            "log.0000000000000001",
            "snapshot.0000000000000001.tmp.",
            "snapshot.0000000000000001.tmp.12",
            "snapshot.0000000000000001.tmp.x.1",
        ] {
            assert_eq!(parse_name(not_ours), None, "{not_ours}");
            assert_eq!(parse_temp_pid(not_ours), None, "{not_ours}");
        }
    }
}

/// The two epoch files of a server of an ensemble, named as ZooKeeper names them in its data
/// dir: the epoch a server has promised to follow (`acceptedEpoch`), and the one whose
/// history it holds (`currentEpoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochFile {
    Accepted,
    Current,
}

impl EpochFile {
    pub fn name(self) -> &'static str {
        match self {
            EpochFile::Accepted => "acceptedEpoch",
            EpochFile::Current => "currentEpoch",
        }
    }
}

/// Writes `epoch` as decimal text (as ZooKeeper's files hold it) through a temp file: write,
/// fsync, rename, fsync the dir. A crash leaves the old value or the new one, never a torn
/// file: the quorum core relies on an epoch it wrote being durable before it acts on it.
pub fn write_epoch(dir: &Path, which: EpochFile, epoch: u32) -> io::Result<()> {
    let final_path = dir.join(which.name());
    let temp_path = dir.join(format!(
        "{}{TEMP_MARKER}{}",
        which.name(),
        std::process::id()
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp_path)
            .map_err(with_path(&temp_path))?;
        file.write_all(epoch.to_string().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(with_path(&temp_path))?;
        fs::rename(&temp_path, &final_path).map_err(with_path(&final_path))?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    written
}

/// The epoch in that file; None if there is none yet (a server that never joined an
/// ensemble: ZooKeeper then takes the epoch of its last zxid). Anything but a decimal epoch
/// is an error naming the file and what it holds, never read as 0.
pub fn read_epoch(dir: &Path, which: EpochFile) -> io::Result<Option<u32>> {
    let path = dir.join(which.name());
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(with_path(&path)(e)),
    };
    let text = String::from_utf8_lossy(&bytes);
    text.trim().parse::<u32>().map(Some).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: holds {text:?}, not an epoch", path.display()),
        )
    })
}
