//! Storage backends: the only code in this crate that touches files. A `Storage` is a
//! directory of segments; a `Segment` writes bytes at an offset and makes them durable.

mod file;
mod mem;

use std::io;

pub use file::FileStorage;
pub use mem::MemStorage;

/// What "durable" costs. `None` is `forceSync=no`: for tests only, loud in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fdatasync after every batch (the default).
    Data,
    None,
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
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Creates a zero-filled segment of `size` bytes, durable (file and directory entry)
    /// before it returns, so later syncs never have to commit file-size metadata.
    fn create(&mut self, name: &str, size: u64) -> io::Result<Box<dyn Segment>>;
    /// Opens an existing segment for appending.
    fn open(&mut self, name: &str) -> io::Result<Box<dyn Segment>>;
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Where a segment lives, for messages.
    fn describe(&self, name: &str) -> String;
}
