//! The mmap backend: the whole preallocated segment is mapped shared and read-write; a write
//! is a copy into the mapping, durability is `msync(MS_SYNC)` of the pages the copy touched.
//! On Linux that msync is `vfs_fsync_range(.., datasync = 1)`: the same data-only flush as
//! fdatasync, limited to those pages.
//!
//! Holds: a segment is never written past its preallocated size (the writer rolls first),
//! so the mapping never has to grow.
//! Limits: an I/O error while the kernel reads a page in for the copy arrives as SIGBUS,
//! not as an `Err`, as with any mmap writer. Pages of a segment this process created are
//! already in the page cache; only a segment reopened after a restart is read in on first
//! touch.

use std::fs::File;
use std::io;

use memmap2::{MmapMut, MmapOptions};

use super::{Segment, SyncMode};

/// The alignment msync wants. memmap2 aligns the start down to the real page size again,
/// so a larger page (64 KiB on some arm64 kernels) is still handled.
const PAGE_BYTES: usize = 4096;

pub(super) struct MmapSegment {
    map: MmapMut,
    sync: SyncMode,
}

impl MmapSegment {
    /// Maps `file`, which must already be `size` bytes long (zero-filled and synced by
    /// `FileStorage::create`, or an existing segment).
    #[allow(unsafe_code)]
    pub(super) fn new(file: File, size: u64, sync: SyncMode) -> io::Result<Self> {
        let len = usize::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large to map"))?;
        // SAFETY: memmap2 requires that nobody truncates or modifies the file behind the
        // mapping while it lives (a truncation makes touching the cut-off pages SIGBUS; an
        // outside writer would change memory Rust thinks it owns). Segment files live in
        // rzk's own dataDir; rzk preallocates them to `size` before mapping (create) or maps
        // the size they have (open), and never truncates or rewrites them through another
        // handle while a segment is open: recovery reads them before the writer opens them,
        // and removal (purging old segments) only unlinks, which leaves a mapped inode intact.
        // The file handle may be closed after mapping; the mapping keeps the inode alive.
        let map = unsafe { MmapOptions::new().len(len).map_mut(&file)? };
        Ok(MmapSegment { map, sync })
    }
}

impl Segment for MmapSegment {
    fn write_durable(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let start = usize::try_from(offset).expect("offset inside a mapped segment");
        let end = start
            .checked_add(bytes.len())
            .expect("write end fits in usize");
        // The writer rolls to a new segment before a frame would not fit, so this is a bug
        // in the caller, not a condition of the disk.
        assert!(
            end <= self.map.len(),
            "write of {} bytes at offset {start} runs past the preallocated segment ({} bytes)",
            bytes.len(),
            self.map.len()
        );
        self.map[start..end].copy_from_slice(bytes);
        if self.sync == SyncMode::Data {
            let page_start = start - start % PAGE_BYTES;
            self.map.flush_range(page_start, end - page_start)?;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.map.len() as u64
    }
}

#[cfg(test)]
mod tests {
    //! Goal: the mapping is exactly the file, and a write past the preallocation is refused
    //! loudly rather than growing or corrupting anything.

    use super::*;
    use std::io::Write;

    fn zero_file(name: &str, size: usize) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("rzk-wal-mmap-{name}-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.write_all(&vec![0; size]).unwrap();
        (path, file)
    }

    #[test]
    fn writes_land_in_the_file_across_page_boundaries() {
        let (path, file) = zero_file("pages", 3 * PAGE_BYTES);
        let mut segment = MmapSegment::new(file, 3 * PAGE_BYTES as u64, SyncMode::Data).unwrap();
        assert_eq!(segment.size(), 3 * PAGE_BYTES as u64);
        let bytes: Vec<u8> = (0..=255).cycle().take(PAGE_BYTES + 100).collect();
        segment
            .write_durable(PAGE_BYTES as u64 - 50, &bytes)
            .unwrap();
        segment.write_durable(0, b"head").unwrap();
        let image = std::fs::read(&path).unwrap();
        assert_eq!(&image[..4], b"head");
        assert_eq!(&image[PAGE_BYTES - 50..2 * PAGE_BYTES + 50], &bytes[..]);
        assert!(image[2 * PAGE_BYTES + 50..].iter().all(|&b| b == 0));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    #[should_panic(expected = "runs past the preallocated segment")]
    fn a_write_past_the_preallocation_is_a_bug() {
        let (path, file) = zero_file("past", PAGE_BYTES);
        let mut segment = MmapSegment::new(file, PAGE_BYTES as u64, SyncMode::None).unwrap();
        std::fs::remove_file(&path).unwrap();
        let _ = segment.write_durable(PAGE_BYTES as u64 - 2, b"abc");
    }
}
