//! An in-memory disk for crash tests: it keeps, per segment, the bytes a live reader sees and
//! the bytes that survived the last sync, and can stop making writes durable after the N-th
//! sync (the moment of a simulated crash), optionally persisting a torn prefix of the write
//! that was in progress.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use super::{Segment, SegmentImage, Storage};

#[derive(Default)]
struct Disk {
    live: BTreeMap<String, Vec<u8>>,
    durable: BTreeMap<String, Vec<u8>>,
    syncs: u64,
    /// Syncs after this many no longer make anything durable.
    freeze_after: Option<u64>,
    /// When the freeze hits, this many bytes of the in-progress write still reach the disk.
    torn_bytes: usize,
    torn_done: bool,
}

impl Disk {
    fn frozen(&self) -> bool {
        self.freeze_after.is_some_and(|n| self.syncs >= n)
    }
}

/// Cloning shares the disk, so a test can crash it while a writer holds it.
#[derive(Clone, Default)]
pub struct MemStorage {
    disk: Arc<Mutex<Disk>>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// After `syncs` more completed syncs, nothing becomes durable any more; `torn_bytes` of
    /// the next write still land (a torn write).
    pub fn freeze_after(&self, syncs: u64, torn_bytes: usize) {
        let mut d = self.disk.lock().unwrap();
        d.freeze_after = Some(d.syncs + syncs);
        d.torn_bytes = torn_bytes;
        d.torn_done = false;
    }

    /// True if the last completed sync no longer made anything durable (the crash point has
    /// passed): the append it belonged to was in flight at the crash, not acknowledged.
    pub fn frozen_before_last_sync(&self) -> bool {
        let d = self.disk.lock().unwrap();
        d.freeze_after.is_some_and(|n| d.syncs > n)
    }

    /// The disk as it would be found after a crash now.
    pub fn crash_image(&self) -> MemStorage {
        let d = self.disk.lock().unwrap();
        MemStorage {
            disk: Arc::new(Mutex::new(Disk {
                live: d.durable.clone(),
                durable: d.durable.clone(),
                ..Disk::default()
            })),
        }
    }

    /// Direct access for tests that damage bytes.
    pub fn with_image<R>(&self, name: &str, f: impl FnOnce(&mut Vec<u8>) -> R) -> Option<R> {
        let mut d = self.disk.lock().unwrap();
        let r = d.live.get_mut(name).map(f);
        let live = d.live.get(name).cloned();
        if let Some(live) = live {
            d.durable.insert(name.to_owned(), live);
        }
        r
    }
}

struct MemSegment {
    disk: Arc<Mutex<Disk>>,
    name: String,
    size: u64,
}

fn write_into(image: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    if image.len() < offset + bytes.len() {
        image.resize(offset + bytes.len(), 0);
    }
    image[offset..offset + bytes.len()].copy_from_slice(bytes);
}

impl Segment for MemSegment {
    fn write_durable(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut d = self.disk.lock().unwrap();
        let offset = offset as usize;
        let live = d.live.entry(self.name.clone()).or_default();
        write_into(live, offset, bytes);
        if d.frozen() {
            if !d.torn_done {
                d.torn_done = true;
                let n = d.torn_bytes.min(bytes.len());
                // Only into a file whose creation was durable.
                if let Some(durable) = d.durable.get_mut(&self.name) {
                    write_into(durable, offset, &bytes[..n]);
                }
            }
        } else {
            let durable = d.durable.entry(self.name.clone()).or_default();
            write_into(durable, offset, bytes);
        }
        d.syncs += 1;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }
}

impl Storage for MemStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.disk.lock().unwrap().live.keys().cloned().collect())
    }

    fn read(&self, name: &str) -> io::Result<SegmentImage> {
        self.disk
            .lock()
            .unwrap()
            .live
            .get(name)
            .cloned()
            .map(SegmentImage::Owned)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_owned()))
    }

    fn create(&mut self, name: &str, size: u64) -> io::Result<Box<dyn Segment>> {
        let mut d = self.disk.lock().unwrap();
        let zeros = vec![0u8; size as usize];
        d.live.insert(name.to_owned(), zeros.clone());
        if !d.frozen() {
            d.durable.insert(name.to_owned(), zeros);
        }
        Ok(Box::new(MemSegment {
            disk: self.disk.clone(),
            name: name.to_owned(),
            size,
        }))
    }

    fn open(&mut self, name: &str) -> io::Result<Box<dyn Segment>> {
        let size = self.read(name)?.len() as u64;
        Ok(Box::new(MemSegment {
            disk: self.disk.clone(),
            name: name.to_owned(),
            size,
        }))
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        let mut d = self.disk.lock().unwrap();
        d.live.remove(name);
        // A removal after the crash point does not survive it.
        if !d.frozen() {
            d.durable.remove(name);
        }
        Ok(())
    }

    fn describe(&self, name: &str) -> String {
        format!("mem:{name}")
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        let mut d = self.disk.lock().unwrap();
        let live = d
            .live
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, from.to_owned()))?;
        d.live.insert(to.to_owned(), live);
        // A rename after the crash point does not survive it.
        if !d.frozen() {
            if let Some(durable) = d.durable.remove(from) {
                d.durable.insert(to.to_owned(), durable);
            }
        }
        Ok(())
    }

    fn handle(&self) -> Box<dyn Storage> {
        Box::new(self.clone())
    }
}
