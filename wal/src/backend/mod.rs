//! Storage backends: the only code in this crate that touches files. A `Storage` is a
//! directory of segments; a `Segment` writes bytes at an offset and makes them durable.
//!
//! `FileStorage` moves bytes to a real disk in one of three ways (`Backend`, the server's
//! `--wal-backend`): pwrite + fdatasync (`file.rs`), a shared mapping + msync (`mmap.rs`), or
//! a write and an fdatasync linked in one io_uring submission (`uring.rs`). All three write
//! the same bytes at the same offsets, so a log written by one is read and continued by any
//! other. `MemStorage` (`mem.rs`) is the fault-injecting disk of the crash tests.
//! The only `unsafe` of the crate is in `mmap.rs` and `uring.rs`.

mod file;
mod mem;
mod mmap;
#[cfg(target_os = "linux")]
mod uring;

use std::fmt;
use std::io;
use std::str::FromStr;

pub use file::FileStorage;
pub use mem::MemStorage;

/// How `FileStorage` makes a write durable (`--wal-backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// `pwrite` then `fdatasync`: two system calls per batch.
    #[default]
    Pwrite,
    /// Copy into a shared mapping of the whole segment, then `msync(MS_SYNC)` of the touched
    /// pages (on Linux a data-only sync of that range).
    Mmap,
    /// One io_uring submission: a write linked to an fsync with `IORING_FSYNC_DATASYNC`.
    /// Probed at startup; falls back to `Pwrite` (logged) where the kernel or a seccomp
    /// filter refuses io_uring.
    Uring,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Pwrite, Backend::Mmap, Backend::Uring];

    /// The flag value: `pwrite`, `mmap` or `io_uring`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Pwrite => "pwrite",
            Backend::Mmap => "mmap",
            Backend::Uring => "io_uring",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| format!("unknown WAL backend {s:?}: expected pwrite, mmap or io_uring"))
    }
}

/// Whether this process can use io_uring for the log: sets up a small ring, checks that the
/// kernel knows the write and fsync opcodes, and completes a no-op. Fails on kernels before
/// 5.6, with `kernel.io_uring_disabled`, and under seccomp filters (containers) that refuse
/// the io_uring system calls. The error says which.
pub fn probe_io_uring() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        uring::probe()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring exists only on Linux",
        ))
    }
}

/// What "durable" costs. `None` is `forceSync=no`: for tests only, loud in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fdatasync after every batch (the default).
    Data,
    None,
}

/// A segment's bytes as recovery reads them: a read-only mapping of a real file, so a scan
/// touches the page cache in place (a 64 MiB segment is mostly preallocated zeros, and
/// copying it into fresh memory cost recovery tens of milliseconds), or an owned copy.
pub enum SegmentImage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for SegmentImage {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            SegmentImage::Mapped(map) => map,
            SegmentImage::Owned(bytes) => bytes,
        }
    }
}

pub trait Segment: Send {
    /// Writes `bytes` at `offset` and returns once they are durable (one write, one sync).
    fn write_durable(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// The preallocated size.
    fn size(&self) -> u64;
}

pub trait Storage: Send {
    /// Segment names in the directory (any order).
    fn list(&self) -> io::Result<Vec<String>>;
    /// A segment's whole image.
    fn read(&self, name: &str) -> io::Result<SegmentImage>;
    /// Creates a zero-filled segment of `size` bytes, durable (file and directory entry)
    /// before it returns, so later syncs never have to commit file-size metadata.
    fn create(&mut self, name: &str, size: u64) -> io::Result<Box<dyn Segment>>;
    /// Opens an existing segment for appending.
    fn open(&mut self, name: &str) -> io::Result<Box<dyn Segment>>;
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Where a segment lives, for messages.
    fn describe(&self, name: &str) -> String;
    /// Renames a file, durably (the directory entry is synced).
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()>;
    /// Another handle on the same directory, for preparing a segment on another thread.
    fn handle(&self) -> Box<dyn Storage>;
}
