//! The snapshot byte format as pure functions on bytes, plus a generic `Write` sink so that
//! `files::write` can stream the compressed body straight into a file. The layout, field by
//! field, is the byte diagram in docs/FORMAT-snapshot.md; change both together.
//!
//! Holds: `decode` never panics and never sizes an allocation from a length it has not yet
//! seen backed by real bytes (buffers grow only as decompressed bytes arrive); every count is
//! bounded by the bytes available; the file must end exactly at the trailer.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use rzk_proto::{Acl, Id, Stat};
use rzk_tree::{NodeRecord, Tree, Znode};

use crate::{SessionRecord, Snapshot, SnapshotError};

/// The first four bytes of every snapshot file.
pub const MAGIC: [u8; 4] = *b"RZKS";
/// Bumped on any change to the layout; a reader refuses versions it does not know.
pub const FORMAT_VERSION: u32 = 1;
/// magic 4 + version 4 + zxid 8 + node count 8 + session count 8 + uncompressed body length 8
/// + compressed body length 8 + header crc32c 4.
pub const HEADER_BYTES: usize = 52;
/// crc32c of the compressed body.
pub const TRAILER_BYTES: usize = 4;

const HEADER_CRC_OFFSET: usize = 48;
const _: () = assert!(HEADER_CRC_OFFSET + 4 == HEADER_BYTES);

/// zstd level 1: the body is mostly stats and repeated path prefixes, which level 1 already
/// shrinks well; higher levels cost more CPU on the background thread than they save in disk.
const ZSTD_LEVEL: i32 = 1;
/// The largest zstd window a frame may use (1 MiB). The encoder sets it; the decoder refuses
/// frames asking for more, so a forged frame header cannot make it allocate a big window.
const ZSTD_WINDOW_LOG: u32 = 20;
/// The uncompressed body is cut into chunks of about this size (whole records, so a chunk
/// may run over by one record), each compressed as its own zstd frame straight from the
/// encoder's buffer: no copy into zstd's streaming window, and chunks that could later be
/// compressed or decompressed in parallel.
const CHUNK_BYTES: usize = 512 * 1024;
const _: () = assert!(CHUNK_BYTES <= 1 << ZSTD_WINDOW_LOG);
/// Nodes whose memory the encoder touches ahead of copying them (see `warm`).
const WARM_BATCH_NODES: usize = 64;

const SESSION_RECORD_BYTES: usize = 8 + 4 + 16;
/// The 11 Stat fields: six i64 and five i32.
const STAT_BYTES: usize = 6 * 8 + 5 * 4;
const _: () = assert!(STAT_BYTES == Stat::ENCODED_BYTES);
/// The smallest node record: path length, a 1-byte path, stat, data length, ACL reference.
const NODE_RECORD_BYTES_MIN: u64 = 4 + 1 + STAT_BYTES as u64 + 4 + 4;
/// Data length value meaning "null data" (ZooKeeper keeps null distinct from empty).
const DATA_NULL: u32 = u32::MAX;

/// The decoder's first read buffer; it grows (doubling) only when a single record is larger.
const READ_BUFFER_BYTES_INITIAL: usize = 256 * 1024;

/// The fixed header, as written at byte 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub zxid: i64,
    pub node_count: u64,
    pub session_count: u64,
    pub body_uncompressed_bytes: u64,
    pub body_compressed_bytes: u64,
}

impl Header {
    pub(crate) fn to_bytes(self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.zxid.to_le_bytes());
        b[16..24].copy_from_slice(&self.node_count.to_le_bytes());
        b[24..32].copy_from_slice(&self.session_count.to_le_bytes());
        b[32..40].copy_from_slice(&self.body_uncompressed_bytes.to_le_bytes());
        b[40..48].copy_from_slice(&self.body_compressed_bytes.to_le_bytes());
        let crc = crc32c::crc32c(&b[..HEADER_CRC_OFFSET]);
        b[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The file length this header promises: header, compressed body, trailer.
    fn file_bytes(&self) -> Option<u64> {
        (HEADER_BYTES as u64)
            .checked_add(self.body_compressed_bytes)?
            .checked_add(TRAILER_BYTES as u64)
    }
}

/// A decode failure before the file name is known: the file offset and what was wrong there.
#[derive(Debug)]
pub(crate) struct Corrupt {
    pub offset: u64,
    pub reason: String,
}

impl Corrupt {
    pub(crate) fn into_error(self, path: PathBuf) -> SnapshotError {
        SnapshotError::Corrupt {
            path,
            offset: self.offset,
            reason: self.reason,
        }
    }
}

fn corrupt(offset: usize, reason: String) -> Corrupt {
    Corrupt {
        offset: offset as u64,
        reason,
    }
}

fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array(b, at))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(array(b, at))
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(array(b, at))
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(array(b, at))
}

fn parse_header(bytes: &[u8]) -> Result<Header, Corrupt> {
    let len = bytes.len();
    let magic_len = len.min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(corrupt(
            0,
            format!("not an rzk snapshot: magic {:02x?}", &bytes[..magic_len]),
        ));
    }
    // The version decides the rest of the layout, so it is read before the header checksum.
    if len >= 8 && u32_at(bytes, 4) != FORMAT_VERSION {
        return Err(corrupt(
            4,
            format!(
                "unsupported format version {} (this build reads {FORMAT_VERSION})",
                u32_at(bytes, 4)
            ),
        ));
    }
    if len < HEADER_BYTES {
        return Err(corrupt(
            len,
            format!("file ends at byte {len}, inside the {HEADER_BYTES}-byte header"),
        ));
    }
    let stored = u32_at(bytes, HEADER_CRC_OFFSET);
    let computed = crc32c::crc32c(&bytes[..HEADER_CRC_OFFSET]);
    if stored != computed {
        return Err(corrupt(
            HEADER_CRC_OFFSET,
            format!("header fails its crc32c: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    Ok(Header {
        zxid: i64_at(bytes, 8),
        node_count: u64_at(bytes, 16),
        session_count: u64_at(bytes, 24),
        body_uncompressed_bytes: u64_at(bytes, 32),
        body_compressed_bytes: u64_at(bytes, 40),
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Serializes `tree` (its `last_zxid` names the snapshot) and `sessions` to snapshot bytes.
/// Pure; `files::write` streams the same bytes into a file instead.
pub fn encode(tree: &Tree, sessions: &[SessionRecord]) -> Vec<u8> {
    // A guess that avoids most regrowth: compressed bodies run at roughly half the data.
    let guess = (tree.data_bytes() / 2) as usize + tree.node_count() * 32;
    let mut out = Vec::with_capacity(HEADER_BYTES + guess);
    out.resize(HEADER_BYTES, 0);
    let body = write_body(tree, sessions, &mut out).expect("writing to a Vec cannot fail");
    out[..HEADER_BYTES].copy_from_slice(&body.header.to_bytes());
    out.extend_from_slice(&body.crc.to_le_bytes());
    debug_assert_eq!(Some(out.len() as u64), body.header.file_bytes());
    out
}

/// What `write_body` produced: the header to write at byte 0 and the trailer's checksum.
pub(crate) struct BodyWritten {
    pub header: Header,
    pub crc: u32,
}

/// Streams the compressed body into `sink` (which sees only the body bytes) and returns the
/// header and trailer that frame it.
pub(crate) fn write_body<W: Write>(
    tree: &Tree,
    sessions: &[SessionRecord],
    sink: W,
) -> io::Result<BodyWritten> {
    let mut zstd = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
    zstd.set_parameter(zstd::zstd_safe::CParameter::WindowLog(ZSTD_WINDOW_LOG))?;
    let mut stage = Stage {
        buf: Vec::with_capacity(CHUNK_BYTES * 2),
        compressed: Vec::new(),
        uncompressed_bytes: 0,
        zstd,
        sink: CrcWriter {
            inner: sink,
            crc: 0,
            bytes: 0,
        },
    };

    for session in sessions {
        stage.put(&session.id.to_le_bytes());
        stage.put(&session.timeout_ms.to_le_bytes());
        stage.put(&session.passwd);
        stage.flush_if_full()?;
    }

    let mut acls = AclRefs::default();
    let mut node_count: u64 = 0;
    let mut paths = tree.paths();
    let mut batch = Vec::with_capacity(WARM_BATCH_NODES);
    loop {
        batch.clear();
        batch.extend(paths.by_ref().take(WARM_BATCH_NODES));
        if batch.is_empty() {
            break;
        }
        warm(&batch);
        for &(path, node) in &batch {
            stage.put_u32(len_u32(path.len()));
            stage.put(path.as_bytes());
            stage.put(&stat_bytes(&node.stat()));
            match &node.data() {
                None => stage.put_u32(DATA_NULL),
                Some(data) => {
                    let data_len = len_u32(data.len());
                    assert_ne!(data_len, DATA_NULL, "{path}: data too large for a snapshot");
                    stage.put_u32(data_len);
                    stage.put(data);
                }
            }
            let (acl_ref, first_use) = acls.lookup(node.acl());
            stage.put_u32(acl_ref);
            if first_use {
                stage.put_u32(len_u32(node.acl().len()));
                for acl in node.acl().iter() {
                    stage.put(&acl.perms.to_le_bytes());
                    stage.put_u32(len_u32(acl.id.scheme.len()));
                    stage.put(acl.id.scheme.as_bytes());
                    stage.put_u32(len_u32(acl.id.id.len()));
                    stage.put(acl.id.id.as_bytes());
                }
            }
            stage.flush_if_full()?;
            node_count += 1;
        }
    }
    // The tree is an immutable version: its count and its iteration agree.
    assert_eq!(node_count, tree.node_count() as u64);

    stage.flush()?;
    Ok(BodyWritten {
        header: Header {
            zxid: tree.last_zxid(),
            node_count,
            session_count: sessions.len() as u64,
            body_uncompressed_bytes: stage.uncompressed_bytes,
            body_compressed_bytes: stage.sink.bytes,
        },
        crc: stage.sink.crc,
    })
}

/// Reads one byte of every node, path and data in the batch before the batch is copied. These
/// loads do not depend on each other, so the CPU overlaps their cache misses; taken one by
/// one inside the copy loop (the nodes of a big tree lie all over the heap) they were about
/// a third of the encode time.
fn warm(batch: &[(&str, &Znode)]) {
    let mut sum = 0u64;
    for (path, node) in batch {
        let first = path.as_bytes().first().copied().unwrap_or(0);
        sum = sum.wrapping_add(node.stat().mzxid as u64 ^ u64::from(first));
    }
    for (_, node) in batch {
        let data = node.data_bytes();
        let ends = [data.first(), data.last()];
        sum = sum.wrapping_add(
            ends.into_iter()
                .flatten()
                .map(|&b| u64::from(b))
                .sum::<u64>(),
        );
    }
    std::hint::black_box(sum);
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("a path, ACL or data length fits in u32")
}

fn stat_bytes(stat: &Stat) -> [u8; STAT_BYTES] {
    let mut b = [0u8; STAT_BYTES];
    b[0..8].copy_from_slice(&stat.czxid.to_le_bytes());
    b[8..16].copy_from_slice(&stat.mzxid.to_le_bytes());
    b[16..24].copy_from_slice(&stat.ctime.to_le_bytes());
    b[24..32].copy_from_slice(&stat.mtime.to_le_bytes());
    b[32..36].copy_from_slice(&stat.version.to_le_bytes());
    b[36..40].copy_from_slice(&stat.cversion.to_le_bytes());
    b[40..44].copy_from_slice(&stat.aversion.to_le_bytes());
    b[44..52].copy_from_slice(&stat.ephemeral_owner.to_le_bytes());
    b[52..56].copy_from_slice(&stat.data_length.to_le_bytes());
    b[56..60].copy_from_slice(&stat.num_children.to_le_bytes());
    b[60..68].copy_from_slice(&stat.pzxid.to_le_bytes());
    b
}

fn parse_stat(b: &[u8]) -> Stat {
    Stat {
        czxid: i64_at(b, 0),
        mzxid: i64_at(b, 8),
        ctime: i64_at(b, 16),
        mtime: i64_at(b, 24),
        version: i32_at(b, 32),
        cversion: i32_at(b, 36),
        aversion: i32_at(b, 40),
        ephemeral_owner: i64_at(b, 44),
        data_length: i32_at(b, 52),
        num_children: i32_at(b, 56),
        pzxid: i64_at(b, 60),
    }
}

/// Counts and checksums the compressed bytes on their way to the real sink, so neither
/// `encode` nor `files::write` needs a second pass over them.
struct CrcWriter<W> {
    inner: W,
    crc: u32,
    bytes: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Stage<W: Write> {
    /// Uncompressed records not yet compressed: at most one chunk plus one record.
    buf: Vec<u8>,
    /// The last chunk's zstd frame, reused to avoid an allocation per chunk.
    compressed: Vec<u8>,
    uncompressed_bytes: u64,
    zstd: zstd::bulk::Compressor<'static>,
    sink: CrcWriter<W>,
}

impl<W: Write> Stage<W> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    #[inline]
    fn put_u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }

    #[inline]
    fn flush_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Compresses the buffered records as one zstd frame and passes it to the sink.
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(self.buf.len()));
        self.zstd
            .compress_to_buffer(&self.buf, &mut self.compressed)?;
        self.sink.write_all(&self.compressed)?;
        self.uncompressed_bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// Numbers the distinct ACL lists in order of first use; a node refers to its list by that
/// number, and the list's entries follow the first reference only. Most nodes share one
/// `Arc<[Acl]>` (the tree interns them), so lookups go by pointer and compare contents only
/// once per distinct allocation.
#[derive(Default)]
struct AclRefs<'t> {
    by_ptr: HashMap<usize, u32>,
    by_content: HashMap<&'t [Acl], u32>,
    last: Option<(usize, u32)>,
}

impl<'t> AclRefs<'t> {
    /// The list's number, and whether this is its first use (so its entries must follow).
    #[inline]
    fn lookup(&mut self, acl: &'t Arc<[Acl]>) -> (u32, bool) {
        // Identity only: every Arc lives as long as the borrowed tree, so equal addresses
        // mean the same allocation and hence the same contents.
        let ptr = Arc::as_ptr(acl).cast::<Acl>() as usize;
        if let Some((last_ptr, acl_ref)) = self.last {
            if last_ptr == ptr {
                return (acl_ref, false);
            }
        }
        let mut first_use = false;
        let acl_ref = match self.by_ptr.get(&ptr) {
            Some(&acl_ref) => acl_ref,
            None => {
                let next = len_u32(self.by_content.len());
                let acl_ref = *self.by_content.entry(&acl[..]).or_insert(next);
                first_use = acl_ref == next;
                self.by_ptr.insert(ptr, acl_ref);
                acl_ref
            }
        };
        self.last = Some((ptr, acl_ref));
        (acl_ref, first_use)
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Parses snapshot bytes. Never panics; any inconsistency is `SnapshotError::Corrupt` with an
/// empty path.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    decode_with(bytes, rzk_tree::NodeHasher::new())
}

/// `decode`, with the tree's map hashing by `hasher`: with a seeded hasher, the tree writes
/// its snapshots back byte for byte as they were.
pub fn decode_with(bytes: &[u8], hasher: rzk_tree::NodeHasher) -> Result<Snapshot, SnapshotError> {
    decode_bytes(bytes, hasher).map_err(|c| c.into_error(PathBuf::new()))
}

pub(crate) fn decode_bytes(
    bytes: &[u8],
    hasher: rzk_tree::NodeHasher,
) -> Result<Snapshot, Corrupt> {
    let header = parse_header(bytes)?;
    let len = bytes.len() as u64;
    let expected = match header.file_bytes() {
        Some(expected) if expected <= len => expected,
        _ => {
            return Err(Corrupt {
                offset: len,
                reason: format!(
                    "file ends at byte {len}, but the header promises a {}-byte compressed \
                     body and a {TRAILER_BYTES}-byte trailer after the {HEADER_BYTES}-byte header",
                    header.body_compressed_bytes
                ),
            })
        }
    };
    if expected < len {
        return Err(Corrupt {
            offset: expected,
            reason: format!(
                "{} bytes of trailing garbage after the trailer",
                len - expected
            ),
        });
    }
    // expected <= len, so these casts are exact.
    let body_end = expected as usize - TRAILER_BYTES;
    let body = &bytes[HEADER_BYTES..body_end];
    let stored = u32_at(bytes, body_end);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(corrupt(
            HEADER_BYTES,
            format!(
                "compressed body (bytes {HEADER_BYTES}..{body_end}) fails its crc32c: \
                 stored {stored:#010x} at byte {body_end}, computed {computed:#010x}"
            ),
        ));
    }
    // Past both checksums, a fault means a writer bug or a forged file; the body is
    // compressed, so the uncompressed offset is the most precise place we can name.
    parse_body(body, &header, hasher).map_err(|e| {
        corrupt(
            HEADER_BYTES,
            format!("at uncompressed body byte {}: {}", e.offset, e.reason),
        )
    })
}

struct BodyError {
    /// Offset in the uncompressed body.
    offset: u64,
    reason: String,
}

fn parse_body(
    compressed: &[u8],
    header: &Header,
    hasher: rzk_tree::NodeHasher,
) -> Result<Snapshot, BodyError> {
    let declared = header.body_uncompressed_bytes;
    // Counts are bounded by the bytes they need before anything is read or allocated.
    let records_min = header
        .session_count
        .checked_mul(SESSION_RECORD_BYTES as u64)
        .zip(header.node_count.checked_mul(NODE_RECORD_BYTES_MIN))
        .and_then(|(s, n)| s.checked_add(n));
    if !matches!(records_min, Some(min) if min <= declared) {
        return Err(BodyError {
            offset: 0,
            reason: format!(
                "{} sessions and {} nodes cannot fit in a {declared}-byte body",
                header.session_count, header.node_count
            ),
        });
    }
    let mut r = BodyReader::new(compressed, declared)?;

    let mut sessions = Vec::new();
    for _ in 0..header.session_count {
        let b = r.take(SESSION_RECORD_BYTES)?;
        sessions.push(SessionRecord {
            id: i64_at(b, 0),
            timeout_ms: i32_at(b, 8),
            passwd: array(b, 12),
        });
    }

    let mut nodes = NodeIter {
        r: &mut r,
        acl_lists: Vec::new(),
        hasher: hasher.clone(),
        path: String::new(),
        remaining: header.node_count,
        error: None,
    };
    let built = if header.node_count >= rzk_tree::PARALLEL_LOAD_MIN_NODES as u64 {
        build_while_decoding(header.zxid, hasher, &mut nodes)
    } else {
        Tree::from_records(header.zxid, hasher, &mut nodes)
    };
    let NodeIter {
        error, remaining, ..
    } = nodes;
    if let Some(e) = error {
        return Err(e);
    }
    let tree = built.map_err(|reason| BodyError {
        offset: r.offset(),
        reason: format!("the nodes do not form a valid tree: {reason}"),
    })?;
    // from_nodes drains the iterator unless it fails, and it did not.
    debug_assert_eq!(remaining, 0);
    r.finish()?;
    Ok(Snapshot {
        zxid: header.zxid,
        tree,
        sessions,
    })
}

/// Nodes handed from the decoding thread to the building one at a time: few enough that
/// the batches in flight stay small, enough that the hand-off costs nothing per node.
const DECODE_BATCH_NODES: usize = 4096;

/// Decodes the nodes on a thread of their own while `Tree::from_nodes` gathers them on this
/// one, so decompression and parsing overlap the tree's allocations. If no thread can be
/// had, decodes here. Leaves `nodes` as the sequential path would: drained, or holding the
/// parse error that ended it.
fn build_while_decoding(
    zxid: i64,
    hasher: rzk_tree::NodeHasher,
    nodes: &mut NodeIter<'_, '_>,
) -> Result<Tree, String> {
    let (batches, received) = std::sync::mpsc::sync_channel::<Vec<NodeRecord>>(4);
    let decoding = &mut *nodes;
    let fallback = hasher.clone();
    let built = std::thread::scope(|scope| {
        let decoder = std::thread::Builder::new()
            .name("rzk-load-decode".into())
            // Owns the sender, so the builder's loop ends when the decoder does.
            .spawn_scoped(scope, move || {
                let nodes = decoding;
                loop {
                    let batch: Vec<NodeRecord> = nodes.by_ref().take(DECODE_BATCH_NODES).collect();
                    // A failed send means the builder stopped early: the tree is invalid.
                    if batch.is_empty() || batches.send(batch).is_err() {
                        break;
                    }
                }
            });
        let Ok(decoder) = decoder else {
            return None;
        };
        let built = {
            let received = received;
            Tree::from_records(zxid, hasher, received.iter().flatten())
        };
        // Dropping the receiver above ends the decoder at its next send if from_nodes
        // stopped early; a panic in it (a bug) is passed on.
        if let Err(panic) = decoder.join() {
            std::panic::resume_unwind(panic);
        }
        Some(built)
    });
    // No thread to be had: decode here (the failed spawn decoded nothing).
    built.unwrap_or_else(|| Tree::from_records(zxid, fallback, nodes))
}

/// Feeds nodes to `Tree::from_nodes` as they are parsed, so no intermediate Vec of a million
/// nodes exists. A parse error ends the iteration and is kept for the caller, who reports it
/// in preference to whatever `from_nodes` made of the truncated input.
struct NodeIter<'r, 'a> {
    r: &'r mut BodyReader<'a>,
    /// The ACL lists defined so far, by number; every node naming one gets a clone of the
    /// same `Arc`.
    acl_lists: Vec<Arc<[Acl]>>,
    hasher: rzk_tree::NodeHasher,
    /// The path being read, kept while its value is read after it: reused, so a node costs
    /// one allocation, its own.
    path: String,
    remaining: u64,
    error: Option<BodyError>,
}

impl Iterator for NodeIter<'_, '_> {
    type Item = NodeRecord;

    fn next(&mut self) -> Option<NodeRecord> {
        if self.remaining == 0 || self.error.is_some() {
            return None;
        }
        match read_node(self.r, &mut self.acl_lists, &self.hasher, &mut self.path) {
            Ok(node) => {
                self.remaining -= 1;
                Some(node)
            }
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// Reads one node into its one allocation (the node's own, made here on the decoding thread
/// while its bytes are in cache), hashing its path for the map on the way.
fn read_node(
    r: &mut BodyReader<'_>,
    acl_lists: &mut Vec<Arc<[Acl]>>,
    hasher: &rzk_tree::NodeHasher,
    path: &mut String,
) -> Result<NodeRecord, BodyError> {
    r.str("path", |s| {
        path.clear();
        path.push_str(s);
    })?;
    let stat = parse_stat(r.take(STAT_BYTES)?);
    let data_len = r.u32()?;
    let data = if data_len == DATA_NULL {
        None
    } else {
        Some(r.take(data_len as usize)?)
    };
    // The ACL list follows the value: the node gets it once read.
    let no_acl: Arc<[Acl]> = acl_lists.first().cloned().unwrap_or_else(|| Arc::from([]));
    let mut record = NodeRecord::new(hasher.hash(path), path, &stat, data, no_acl);
    let at = r.offset();
    let acl_ref = r.u32()? as usize;
    if acl_ref == acl_lists.len() {
        // First use: the list's entries follow. Its Vec grows only as entries parse.
        let entry_count = r.u32()?;
        let mut list = Vec::new();
        for _ in 0..entry_count {
            let perms = r.i32()?;
            let scheme = r.string("ACL scheme")?;
            let id = r.string("ACL id")?;
            list.push(Acl {
                perms,
                id: Id { scheme, id },
            });
        }
        acl_lists.push(Arc::from(list));
    }
    let Some(acl) = acl_lists.get(acl_ref) else {
        return Err(BodyError {
            offset: at,
            reason: format!(
                "{path}: ACL reference {acl_ref} but only {} lists are defined",
                acl_lists.len()
            ),
        });
    };
    record.set_acl(acl.clone());
    Ok(record)
}

/// Pulls decompressed bytes on demand into a buffer that grows only when one field is larger
/// than it, and never past what zstd has actually produced: a forged length cannot make it
/// allocate more than the data that really follows.
struct BodyReader<'a> {
    zstd: zstd::stream::read::Decoder<'static, &'a [u8]>,
    buf: Vec<u8>,
    /// Unconsumed decompressed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Uncompressed body offset of `buf[start]`.
    consumed_bytes: u64,
    produced_bytes: u64,
    declared_bytes: u64,
}

impl<'a> BodyReader<'a> {
    fn new(compressed: &'a [u8], declared_bytes: u64) -> Result<Self, BodyError> {
        let zstd_error = |e: io::Error| BodyError {
            offset: 0,
            reason: format!("zstd: {e}"),
        };
        let mut zstd = zstd::stream::read::Decoder::with_buffer(compressed).map_err(zstd_error)?;
        zstd.window_log_max(ZSTD_WINDOW_LOG).map_err(zstd_error)?;
        Ok(BodyReader {
            zstd,
            buf: Vec::new(),
            start: 0,
            end: 0,
            consumed_bytes: 0,
            produced_bytes: 0,
            declared_bytes,
        })
    }

    fn offset(&self) -> u64 {
        self.consumed_bytes
    }

    fn error(&self, reason: String) -> BodyError {
        BodyError {
            offset: self.consumed_bytes,
            reason,
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&[u8], BodyError> {
        if self.end - self.start < n {
            self.fill(n)?;
        }
        let at = self.start;
        self.start += n;
        self.consumed_bytes += n as u64;
        Ok(&self.buf[at..at + n])
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, BodyError> {
        Ok(u32_at(self.take(4)?, 0))
    }

    #[inline]
    fn i32(&mut self) -> Result<i32, BodyError> {
        Ok(i32_at(self.take(4)?, 0))
    }

    fn string(&mut self, what: &str) -> Result<String, BodyError> {
        self.str(what, str::to_owned)
    }

    /// A length-prefixed UTF-8 string, made into a `T` straight from the buffer.
    fn str<T>(&mut self, what: &str, make: impl FnOnce(&str) -> T) -> Result<T, BodyError> {
        let len = self.u32()? as usize;
        let at = self.offset();
        match std::str::from_utf8(self.take(len)?) {
            Ok(s) => Ok(make(s)),
            Err(e) => Err(BodyError {
                offset: at,
                reason: format!("{what} is not UTF-8: {e}"),
            }),
        }
    }

    /// Makes at least `n` bytes available at `buf[start..]`.
    #[cold]
    fn fill(&mut self, n: usize) -> Result<(), BodyError> {
        let wanted_end = self.consumed_bytes.checked_add(n as u64);
        if !matches!(wanted_end, Some(end) if end <= self.declared_bytes) {
            return Err(self.error(format!(
                "a {n}-byte field runs past the declared {}-byte body",
                self.declared_bytes
            )));
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        while self.end < n {
            if self.end == self.buf.len() {
                // Full of real bytes: doubling keeps the buffer within twice what arrived.
                let grown = (self.buf.len() * 2).max(READ_BUFFER_BYTES_INITIAL);
                self.buf.resize(grown, 0);
            }
            let got = match self.zstd.read(&mut self.buf[self.end..]) {
                Ok(got) => got,
                Err(e) => return Err(self.error(format!("zstd: {e}"))),
            };
            if got == 0 {
                return Err(self.error(format!(
                    "the body ends after {} bytes, inside a {n}-byte field (declared {})",
                    self.produced_bytes, self.declared_bytes
                )));
            }
            self.end += got;
            self.produced_bytes += got as u64;
            if self.produced_bytes > self.declared_bytes {
                return Err(self.error(format!(
                    "the body decompresses to more than the declared {} bytes",
                    self.declared_bytes
                )));
            }
        }
        Ok(())
    }

    /// The records must end exactly at the declared length, which must be where the last
    /// zstd frame ends, which must be where the compressed body ends.
    fn finish(mut self) -> Result<(), BodyError> {
        if self.consumed_bytes != self.declared_bytes {
            return Err(self.error(format!(
                "the records end at byte {} of a body declared as {} bytes",
                self.consumed_bytes, self.declared_bytes
            )));
        }
        debug_assert_eq!(self.start, self.end);
        let mut probe = [0u8; 1];
        match self.zstd.read(&mut probe) {
            Ok(0) => {}
            Ok(_) => {
                return Err(self.error(format!(
                    "the body decompresses to more than the declared {} bytes",
                    self.declared_bytes
                )))
            }
            Err(e) => return Err(self.error(format!("zstd: {e}"))),
        }
        let rest = self.zstd.finish();
        if !rest.is_empty() {
            return Err(BodyError {
                offset: self.consumed_bytes,
                reason: format!("{} compressed bytes follow the last zstd frame", rest.len()),
            });
        }
        Ok(())
    }
}
