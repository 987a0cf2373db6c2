//! Files on a real disk: pwrite + fdatasync into zero-filled preallocated segments.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{Segment, Storage, SyncMode};

const ZERO_CHUNK_BYTES: usize = 1024 * 1024;

pub struct FileStorage {
    dir: PathBuf,
    sync: SyncMode,
}

impl FileStorage {
    pub fn open(dir: &Path, sync: SyncMode) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(FileStorage {
            dir: dir.to_owned(),
            sync,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.dir.join(name))
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
        Ok(Box::new(FileSegment {
            file,
            size,
            sync: self.sync,
        }))
    }

    fn open(&mut self, name: &str) -> io::Result<Box<dyn Segment>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(name))?;
        let size = file.metadata()?.len();
        Ok(Box::new(FileSegment {
            file,
            size,
            sync: self.sync,
        }))
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.dir.join(name))?;
        self.sync_dir()
    }

    fn describe(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}
