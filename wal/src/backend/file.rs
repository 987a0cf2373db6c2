//! Files on a real disk: zero-filled preallocated segments in one directory. The segment
//! type depends on the `Backend`: pwrite + fdatasync lives here, mmap and io_uring in
//! `mmap.rs` and `uring.rs`. Creating, listing, reading and removing segments is the same
//! for all three.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::{Backend, Segment, SegmentImage, Storage, SyncMode};

const ZERO_CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct FileStorage {
    dir: PathBuf,
    sync: SyncMode,
    backend: Backend,
}

impl FileStorage {
    /// The pwrite + fdatasync backend.
    pub fn open(dir: &Path, sync: SyncMode) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(FileStorage {
            dir: dir.to_owned(),
            sync,
            backend: Backend::Pwrite,
        })
    }

    /// Storage whose segments use `backend`, and the backend actually in use: asking for
    /// io_uring where the probe fails gives pwrite, with a warning in the log saying why.
    pub fn with_backend(
        dir: &Path,
        sync: SyncMode,
        backend: Backend,
    ) -> io::Result<(FileStorage, Backend)> {
        Self::with_backend_probed(dir, sync, backend, super::probe_io_uring)
    }

    fn with_backend_probed(
        dir: &Path,
        sync: SyncMode,
        backend: Backend,
        probe_io_uring: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<(FileStorage, Backend)> {
        let mut storage = FileStorage::open(dir, sync)?;
        storage.backend = match backend {
            Backend::Uring => match probe_io_uring() {
                Ok(()) => Backend::Uring,
                Err(e) => {
                    warn!(error = %e, dir = %dir.display(),
                        "io_uring is not available for the log; falling back to the pwrite backend (pwrite + fdatasync)");
                    Backend::Pwrite
                }
            },
            other => other,
        };
        let used = storage.backend;
        Ok((storage, used))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The backend the segments use (after any fallback).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Wraps an open, fully preallocated segment file in the chosen backend's segment type.
    fn segment(&self, file: File, size: u64) -> io::Result<Box<dyn Segment>> {
        Ok(match self.backend {
            Backend::Pwrite => Box::new(FileSegment {
                file,
                size,
                sync: self.sync,
            }),
            Backend::Mmap => Box::new(super::mmap::MmapSegment::new(file, size, self.sync)?),
            #[cfg(target_os = "linux")]
            Backend::Uring => Box::new(super::uring::UringSegment::new(file, size, self.sync)?),
            #[cfg(not(target_os = "linux"))]
            Backend::Uring => unreachable!("with_backend falls back to pwrite off Linux"),
        })
    }

    fn sync_dir(&self) -> io::Result<()> {
        if self.sync == SyncMode::None {
            return Ok(());
        }
        File::open(&self.dir)?.sync_all()
    }
}

struct FileSegment {
    file: File,
    size: u64,
    sync: SyncMode,
}

impl Segment for FileSegment {
    fn write_durable(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, offset)?;
        if self.sync == SyncMode::Data {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }
}

impl Storage for FileStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    #[allow(unsafe_code)]
    fn read(&self, name: &str) -> io::Result<SegmentImage> {
        let file = File::open(self.dir.join(name))?;
        if file.metadata()?.len() == 0 {
            return Ok(SegmentImage::Owned(Vec::new()));
        }
        // SAFETY: the mapping is read-only and lives only while recovery (or a dump tool)
        // scans it. Segments live in rzk's own dataDir, recovery runs before this process
        // opens any of them for writing, and rzk never truncates a segment; another process
        // truncating one under us would make the scan SIGBUS, as any mmap reader would.
        match unsafe { memmap2::Mmap::map(&file) } {
            Ok(map) => Ok(SegmentImage::Mapped(map)),
            // A filesystem that cannot map files (some FUSE and network ones) is still
            // readable.
            Err(e) => {
                warn!(error = %e, file = %self.dir.join(name).display(), "cannot map a log segment; reading it into memory instead");
                Ok(SegmentImage::Owned(std::fs::read(self.dir.join(name))?))
            }
        }
    }

    fn create(&mut self, name: &str, size: u64) -> io::Result<Box<dyn Segment>> {
        // Zero-fill under a temporary name, then rename: a crash never leaves a half-filled
        // segment under a real name.
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let zeros = vec![0u8; ZERO_CHUNK_BYTES];
        let mut left = size;
        while left > 0 {
            let n = left.min(ZERO_CHUNK_BYTES as u64) as usize;
            file.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        if self.sync != SyncMode::None {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(name))?;
        self.sync_dir()?;
        self.segment(file, size)
    }

    fn open(&mut self, name: &str) -> io::Result<Box<dyn Segment>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(name))?;
        let size = file.metadata()?.len();
        self.segment(file, size)
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.dir.join(name))?;
        self.sync_dir()
    }

    fn describe(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.dir.join(from), self.dir.join(to))?;
        self.sync_dir()
    }

    fn handle(&self) -> Box<dyn Storage> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    //! Goal: asking for io_uring where it is refused still gives a working log, on pwrite.
    //! Method: inject a failing probe; the reported and the used backend are both pwrite.

    use super::*;

    #[test]
    fn a_refused_io_uring_probe_falls_back_to_pwrite() {
        let dir = std::env::temp_dir().join(format!("rzk-wal-fallback-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let refused = || Err(io::Error::from_raw_os_error(38)); // ENOSYS, as under seccomp
        let (mut storage, used) =
            FileStorage::with_backend_probed(&dir, SyncMode::None, Backend::Uring, refused)
                .unwrap();
        assert_eq!(used, Backend::Pwrite);
        assert_eq!(storage.backend(), Backend::Pwrite);
        let mut segment = storage.create("seg", 8192).unwrap();
        segment.write_durable(10, b"abc").unwrap();
        assert_eq!(&storage.read("seg").unwrap()[10..13], b"abc");
        // Other backends never consult the probe.
        let never = || -> io::Result<()> { panic!("probed io_uring for the mmap backend") };
        let (_, used) =
            FileStorage::with_backend_probed(&dir, SyncMode::None, Backend::Mmap, never).unwrap();
        assert_eq!(used, Backend::Mmap);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn backend_names_round_trip() {
        for backend in Backend::ALL {
            assert_eq!(backend.to_string().parse::<Backend>(), Ok(backend));
        }
        assert_eq!("io_uring".parse::<Backend>(), Ok(Backend::Uring));
        assert!("uring".parse::<Backend>().is_err());
    }
}
