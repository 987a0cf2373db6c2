//! The io_uring backend: a write and an fdatasync go to the kernel in one `io_uring_enter`,
//! the fsync linked (`IOSQE_IO_LINK`) behind the write so it starts only after the write
//! completed in full; a failed or short write cancels it. One small ring per segment: the
//! writer has one batch in flight at a time, so a ring never holds more than two entries.
//!
//! Holds: `write_durable` returns only after the kernel has posted a completion for every
//! entry it took, so it never touches the caller's bytes after we return. A short write or a
//! negative result is an `io::Error` (the writer then poisons the log); nothing is retried.
//! Not here: choosing this backend or falling back (`FileStorage::with_backend`).

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

use io_uring::{opcode, squeue, types, IoUring, Probe};
use tracing::error;

use super::{Segment, SyncMode};

/// Submission queue slots per ring; a write needs at most two (write + fsync).
const RING_ENTRIES: u32 = 4;
const WRITE_USER_DATA: u64 = 1;
const FSYNC_USER_DATA: u64 = 2;
const PROBE_USER_DATA: u64 = 3;
/// How often a wait that the kernel answers with EAGAIN/EBUSY is retried while it still
/// holds our buffer, before we give up on the process (see `reap`).
const BUSY_RETRIES_MAX: u32 = 100_000;

/// Sets up a ring, checks the opcodes we use, and completes one no-op through it.
pub(super) fn probe() -> io::Result<()> {
    let mut ring = IoUring::new(RING_ENTRIES)?;
    let mut probe = Probe::new();
    // IORING_REGISTER_PROBE exists since 5.6, as IORING_OP_WRITE does: failing here means the
    // kernel is too old for this backend anyway.
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [
        (opcode::Write::CODE, "IORING_OP_WRITE"),
        (opcode::Fsync::CODE, "IORING_OP_FSYNC"),
        (opcode::Nop::CODE, "IORING_OP_NOP"),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the kernel's io_uring does not support {name}"),
            ));
        }
    }
    let nop = opcode::Nop::new().build().user_data(PROBE_USER_DATA);
    // SAFETY: a no-op names no file and no memory; the ring outlives its completion.
    #[allow(unsafe_code)]
    let pushed = unsafe { ring.submission().push(&nop) };
    pushed.map_err(|_| io::Error::other("a fresh io_uring has no room for one entry"))?;
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if let Some(cqe) = ring.completion().next() {
            assert_eq!(cqe.user_data(), PROBE_USER_DATA);
            if cqe.result() < 0 {
                return Err(io::Error::from_raw_os_error(-cqe.result()));
            }
            return Ok(());
        }
    }
}

pub(super) struct UringSegment {
    /// `None` after a submission the kernel refused: its entries may still sit in the
    /// submission queue pointing at a buffer that is gone, so the ring must never be entered
    /// again. Dropping it discards them unread.
    ring: Option<IoUring>,
    file: File,
    size: u64,
    sync: SyncMode,
}

impl UringSegment {
    pub(super) fn new(file: File, size: u64, sync: SyncMode) -> io::Result<Self> {
        Ok(UringSegment {
            ring: Some(IoUring::new(RING_ENTRIES)?),
            file,
            size,
            sync,
        })
    }
}

impl Segment for UringSegment {
    fn write_durable(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let Some(ring) = self.ring.as_mut() else {
            return Err(io::Error::other(
                "an earlier io_uring submission failed; this segment takes no more writes",
            ));
        };
        // Frames are at most BATCH_BYTES_MAX plus a header, far below 4 GiB.
        let len = u32::try_from(bytes.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a single write of 4 GiB or more",
            )
        })?;
        let fd = types::Fd(self.file.as_raw_fd());
        let with_sync = self.sync == SyncMode::Data;
        let mut write = opcode::Write::new(fd, bytes.as_ptr(), len)
            .offset(offset)
            .build()
            .user_data(WRITE_USER_DATA);
        if with_sync {
            write = write.flags(squeue::Flags::IO_LINK);
        }
        let fsync = opcode::Fsync::new(fd)
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(FSYNC_USER_DATA);
        let entries = [write, fsync];
        let entries = if with_sync {
            &entries[..]
        } else {
            &entries[..1]
        };

        assert!(
            ring.submission().is_empty(),
            "a previous write left entries behind"
        );
        // SAFETY: the write entry points at `bytes` (and the entries at our open `self.file`),
        // and the kernel may read `bytes` from the moment it takes the entry until it posts
        // the entry's completion. `bytes` is borrowed for this whole call, so it can neither
        // move nor be freed before we return, and `reap` returns only once every entry the
        // kernel took has completed (it aborts the process rather than return early). Entries
        // the kernel never took are dropped with the ring on the error path below, never
        // submitted later.
        #[allow(unsafe_code)]
        let pushed = unsafe { ring.submission().push_multiple(entries) };
        pushed.expect("an empty ring of RING_ENTRIES has room for two entries");

        let results = match reap(ring, entries.len()) {
            Ok(results) => results,
            Err(e) => {
                self.ring = None;
                return Err(e);
            }
        };
        let written = results[0].expect("reap returns every completion");
        if written < 0 {
            return Err(io::Error::from_raw_os_error(-written));
        }
        if written as u64 != u64::from(len) {
            // The linked fsync was cancelled; the tail of the frame is not on disk.
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {written} of {len} bytes at offset {offset}"),
            ));
        }
        if with_sync {
            let synced = results[1].expect("reap returns every completion");
            if synced < 0 {
                return Err(io::Error::from_raw_os_error(-synced));
            }
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }
}

/// Submits what is queued and waits until `pushed` completions have been posted; returns
/// each entry's result, indexed write = 0, fsync = 1.
///
/// An error is returned only while the kernel holds none of our entries (it refused them
/// all); the caller must then discard the ring. If waiting fails for good while the kernel
/// still holds an entry, returning would let the caller free a buffer the kernel may still
/// read, so the process aborts instead: that is a broken kernel interface, not a disk error.
fn reap(ring: &mut IoUring, pushed: usize) -> io::Result<[Option<i32>; 2]> {
    let mut results = [None, None];
    let mut reaped = 0;
    let mut busy_retries = 0;
    loop {
        for cqe in ring.completion() {
            let index = match cqe.user_data() {
                WRITE_USER_DATA => 0,
                FSYNC_USER_DATA => 1,
                other => panic!("a completion we never submitted: user_data {other}"),
            };
            assert!(results[index].is_none(), "two completions for one entry");
            results[index] = Some(cqe.result());
            reaped += 1;
        }
        if reaped == pushed {
            return Ok(results);
        }
        // submit_and_wait can return after submitting without having waited (a signal), so
        // completions are counted, never assumed.
        let error = match ring.submit_and_wait(pushed - reaped) {
            Ok(_) => continue,
            Err(e) => e,
        };
        if error.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        let unsubmitted = ring.submission().len();
        if reaped + unsubmitted == pushed {
            return Err(error);
        }
        let busy = matches!(error.raw_os_error(), Some(code) if code == 11 || code == 16); // EAGAIN, EBUSY
        if busy && busy_retries < BUSY_RETRIES_MAX {
            busy_retries += 1;
            std::thread::yield_now();
            continue;
        }
        error!(error = %error, "io_uring wait failed while the kernel still holds a log write; aborting");
        eprintln!("rzk: io_uring wait failed while the kernel still holds a log write ({error}); aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    //! Goal: write + linked fsync lands the bytes, and a refused write is an error, not a
    //! silent success. Skipped (and said so) where io_uring is not available; the fallback
    //! itself is tested in `file.rs` and `tests/backends.rs`.

    use super::*;

    fn available() -> bool {
        match probe() {
            Ok(()) => true,
            Err(e) => {
                eprintln!("io_uring not available here ({e}); this unit test checks nothing");
                false
            }
        }
    }

    fn file(name: &str, read_only: bool) -> (std::path::PathBuf, File) {
        let path =
            std::env::temp_dir().join(format!("rzk-wal-uring-{name}-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(&path)
            .unwrap();
        (path, file)
    }

    #[test]
    fn linked_write_and_fsync_land_the_bytes() {
        if !available() {
            return;
        }
        for sync in [SyncMode::Data, SyncMode::None] {
            let (path, file) = file("land", false);
            let mut segment = UringSegment::new(file, 8192, sync).unwrap();
            segment.write_durable(4000, &[9u8; 200]).unwrap();
            segment.write_durable(0, b"head").unwrap();
            let image = std::fs::read(&path).unwrap();
            assert_eq!(&image[..4], b"head");
            assert!(image[4000..4200].iter().all(|&b| b == 9));
            assert!(image[4200..].iter().all(|&b| b == 0));
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn a_failed_write_is_an_error_and_the_ring_stays_usable() {
        if !available() {
            return;
        }
        // A read-only descriptor: the write completes with -EBADF, the fsync is cancelled.
        let (path, file) = file("ebadf", true);
        let mut segment = UringSegment::new(file, 8192, SyncMode::Data).unwrap();
        let e = segment.write_durable(0, b"nope").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(9), "{e}"); // EBADF
        assert!(
            segment.ring.is_some(),
            "every entry completed, so the ring is clean"
        );
        let e = segment.write_durable(0, b"again").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(9), "{e}");
        std::fs::remove_file(&path).unwrap();
    }
}
