//! A snapshot sent to a learner (ZooKeeper's SNAP) as a stream: the leader's encoder hands
//! out the compressed body a chunk at a time while it walks a published tree version (no
//! whole-file buffer, and the pipeline goes on), then the framing (header and trailer); the
//! learner's installer writes the chunks into a temp file in its data dir and, once the
//! framing arrives, completes it as a snapshot file exactly as `write` would (fsync, rename,
//! directory fsync) and loads it with every check `load` makes.
//!
//! Never: trust the stream. Per-chunk checksums belong to the transport; the installed file
//! is accepted only if the body checksum in the trailer, the header checksum and every count
//! add up, as for a snapshot read from disk. An abandoned install leaves only a temp file,
//! which `list` never returns and `purge` removes.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rzk_tree::{NodeHasher, Tree};

use crate::files::{self, load_with, sync_dir, with_path};
use crate::format::{self, HEADER_BYTES};
use crate::{SessionRecord, Snapshot, SnapshotError};

/// What closes a streamed snapshot: the header (byte 0 of the file) and the trailer (after the
/// body), known only once the body is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    pub header: [u8; HEADER_BYTES],
    pub trailer: [u8; format::TRAILER_BYTES],
}

/// Streams the snapshot of `tree` and `sessions`: `chunk` gets the compressed body in order,
/// in pieces of the encoder's choosing; the framing is returned at the end. The chunks and
/// the framing, put together as header, body, trailer, are byte for byte `encode`'s output.
pub fn stream(
    tree: &Tree,
    sessions: &[SessionRecord],
    chunk: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<Framing> {
    let body = format::write_body(tree, sessions, ChunkSink(chunk))?;
    Ok(Framing {
        header: body.header.to_bytes(),
        trailer: body.crc.to_le_bytes(),
    })
}

struct ChunkSink<F>(F);

impl<F: FnMut(&[u8]) -> io::Result<()>> Write for ChunkSink<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (self.0)(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A learner's side of a streamed snapshot: a temp file in the snapshot dir being filled.
pub struct Install {
    dir: PathBuf,
    temp: PathBuf,
    file: File,
    zxid: i64,
}

impl Install {
    /// Starts receiving the snapshot of the leader's tree at `zxid`.
    pub fn begin(dir: &Path, zxid: i64) -> io::Result<Install> {
        let temp = files::temp_path(dir, zxid);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(with_path(&temp))?;
        // Byte 0 holds zeros until the header comes last: never a valid magic before.
        file.write_all(&[0u8; HEADER_BYTES])
            .map_err(with_path(&temp))?;
        Ok(Install {
            dir: dir.to_owned(),
            temp,
            file,
            zxid,
        })
    }

    /// The next piece of the body, in order.
    pub fn chunk(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes).map_err(with_path(&self.temp))
    }

    /// Completes the file with `framing`, makes it durable under its final name and loads it
    /// (checking everything `load` checks). On any failure the temp file is removed and no
    /// snapshot file exists for it.
    pub fn finish(
        mut self,
        framing: &Framing,
        hasher: NodeHasher,
    ) -> Result<(PathBuf, Snapshot), SnapshotError> {
        let io_error = |path: &Path, source: io::Error| SnapshotError::Io {
            path: path.to_owned(),
            source,
        };
        let temp = self.temp.clone();
        let done = (|| -> io::Result<()> {
            self.file.write_all(&framing.trailer)?;
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(&framing.header)?;
            self.file.sync_all()
        })();
        if let Err(e) = done {
            let _ = std::fs::remove_file(&temp);
            return Err(io_error(&temp, e));
        }
        // Checked before it gets a real name: a damaged stream never becomes a snapshot.
        let checked = load_with(&temp, hasher);
        let snapshot = match checked {
            Ok(s) if s.zxid == self.zxid => s,
            Ok(s) => {
                let _ = std::fs::remove_file(&temp);
                return Err(SnapshotError::Corrupt {
                    path: temp,
                    offset: 0,
                    reason: format!(
                        "streamed snapshot is of zxid {:#x}, the leader announced {:#x}",
                        s.zxid, self.zxid
                    ),
                });
            }
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
        };
        let final_path = files::final_path(&self.dir, self.zxid);
        std::fs::rename(&temp, &final_path).map_err(|e| io_error(&final_path, e))?;
        sync_dir(&self.dir).map_err(|e| io_error(&self.dir, e))?;
        Ok((final_path, snapshot))
    }
}
