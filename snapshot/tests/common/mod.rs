//! Shared by the snapshot tests: a small tree holding every node kind, a comparison that checks
//! every field, and a hand-written framer that follows docs/FORMAT-snapshot.md independently
//! of the crate's encoder (so tests can build bodies the encoder never would).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rzk_proto::{perms, Acl, Id, Stat};
use rzk_snapshot::{SessionRecord, Snapshot};
use rzk_tree::{ttl_ephemeral_owner, Tree, CONTAINER_EPHEMERAL_OWNER};

pub type NodeParts = (String, Stat, Option<Vec<u8>>, Vec<Acl>);

pub const EPHEMERAL_OWNER: i64 = 0x0100_0000_0000_0042;

/// A Stat whose every field differs from its neighbours', so a swapped field shows.
pub fn stat(seed: i64, ephemeral_owner: i64, data_length: i32, num_children: i32) -> Stat {
    Stat {
        czxid: 0x1_0000_0000 + seed,
        mzxid: 0x1_0000_0100 + seed,
        ctime: 1_700_000_000_000 + seed,
        mtime: 1_700_000_001_000 + seed,
        version: 10 + seed as i32,
        cversion: 20 + seed as i32,
        aversion: 30 + seed as i32,
        ephemeral_owner,
        data_length,
        num_children,
        pzxid: 0x1_0000_0200 + seed,
    }
}

fn node(
    path: &str,
    seed: i64,
    owner: i64,
    data: Option<&[u8]>,
    children: i32,
    acl: Vec<Acl>,
) -> NodeParts {
    let len = data.map_or(0, <[u8]>::len) as i32;
    (
        path.to_owned(),
        stat(seed, owner, len, children),
        data.map(<[u8]>::to_vec),
        acl,
    )
}

pub fn digest_acl() -> Vec<Acl> {
    vec![
        Acl {
            perms: perms::ALL,
            id: Id::new("digest", "alice:XH6cCzD6aMqK0nO7qT5E0DqE0Fc="),
        },
        Acl {
            perms: perms::READ,
            id: Id::new("ip", "10.0.0.0/8"),
        },
    ]
}

/// Every node kind (persistent, ephemeral, container, TTL), null and empty data, binary data,
/// a multi-entry ACL, an empty ACL list, and a non-ASCII name.
pub fn every_kind_nodes() -> Vec<NodeParts> {
    let open = Acl::open_unsafe();
    vec![
        node("/", 0, 0, Some(b""), 2, open.clone()),
        node("/zookeeper", 1, 0, Some(b""), 2, open.clone()),
        node("/zookeeper/quota", 2, 0, Some(b""), 0, open.clone()),
        node("/zookeeper/config", 3, 0, Some(b""), 0, Acl::read_unsafe()),
        node("/app", 4, 0, Some(b"hello"), 6, digest_acl()),
        node("/app/eph", 5, EPHEMERAL_OWNER, None, 0, open.clone()),
        node(
            "/app/container",
            6,
            CONTAINER_EPHEMERAL_OWNER,
            Some(b""),
            1,
            open.clone(),
        ),
        node("/app/container/c", 7, 0, Some(b"x"), 0, open.clone()),
        node(
            "/app/ttl",
            8,
            ttl_ephemeral_owner(60_000),
            Some(&[0, 0xff, 1, 0xfe]),
            0,
            open.clone(),
        ),
        node("/app/null", 9, 0, None, 0, open.clone()),
        node("/app/no-acl", 10, 0, Some(b"e"), 0, vec![]),
        node("/app/grüße", 11, 0, Some("ü".as_bytes()), 0, digest_acl()),
    ]
}

pub fn every_kind_tree() -> Tree {
    Tree::from_nodes(0x1_0000_0abc, every_kind_nodes()).unwrap()
}

pub fn sessions() -> Vec<SessionRecord> {
    vec![
        SessionRecord {
            id: EPHEMERAL_OWNER,
            timeout_ms: 30_000,
            passwd: *b"0123456789abcdef",
        },
        SessionRecord {
            id: 0x0100_0000_0000_0043,
            timeout_ms: 4_000,
            passwd: [0xff; 16],
        },
    ]
}

/// Every node of `expected` is in `got` with the same Stat, data (null stays null) and ACL,
/// and nothing else is.
pub fn assert_same_tree(expected: &Tree, got: &Tree) {
    assert_eq!(got.last_zxid(), expected.last_zxid());
    assert_eq!(got.node_count(), expected.node_count());
    assert_eq!(got.data_bytes(), expected.data_bytes());
    for (path, node) in expected.paths() {
        let other = got.get(path).unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(other.stat(), node.stat(), "{path}");
        assert_eq!(other.data(), node.data(), "{path}");
        assert_eq!(other.acl(), node.acl(), "{path}");
        assert_eq!(other.children(), node.children(), "{path}");
    }
}

pub fn assert_same_snapshot(tree: &Tree, sessions: &[SessionRecord], got: &Snapshot) {
    assert_eq!(got.zxid, tree.last_zxid());
    assert_same_tree(tree, &got.tree);
    assert_eq!(got.sessions, sessions);
}

/// Builds an uncompressed body by hand, record by record, as the format doc describes.
#[derive(Default)]
pub struct BodyBuilder {
    pub bytes: Vec<u8>,
}

impl BodyBuilder {
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(b);
        self
    }

    pub fn session(&mut self, s: &SessionRecord) -> &mut Self {
        self.raw(&s.id.to_le_bytes())
            .raw(&s.timeout_ms.to_le_bytes())
            .raw(&s.passwd)
    }

    /// An ACL list's entries, as they follow its first reference.
    pub fn acl_list(&mut self, list: &[Acl]) -> &mut Self {
        self.u32(list.len() as u32);
        for a in list {
            self.raw(&a.perms.to_le_bytes())
                .u32(a.id.scheme.len() as u32)
                .raw(a.id.scheme.as_bytes())
                .u32(a.id.id.len() as u32)
                .raw(a.id.id.as_bytes());
        }
        self
    }

    pub fn stat(&mut self, s: &Stat) -> &mut Self {
        self.raw(&s.czxid.to_le_bytes())
            .raw(&s.mzxid.to_le_bytes())
            .raw(&s.ctime.to_le_bytes())
            .raw(&s.mtime.to_le_bytes())
            .raw(&s.version.to_le_bytes())
            .raw(&s.cversion.to_le_bytes())
            .raw(&s.aversion.to_le_bytes())
            .raw(&s.ephemeral_owner.to_le_bytes())
            .raw(&s.data_length.to_le_bytes())
            .raw(&s.num_children.to_le_bytes())
            .raw(&s.pzxid.to_le_bytes())
    }

    /// A node record; `new_acl` is the list's entries when this is its first reference.
    pub fn node(
        &mut self,
        path: &[u8],
        stat: &Stat,
        data: Option<&[u8]>,
        acl_ref: u32,
        new_acl: Option<&[Acl]>,
    ) -> &mut Self {
        self.u32(path.len() as u32).raw(path).stat(stat);
        match data {
            None => self.u32(u32::MAX),
            Some(d) => self.u32(d.len() as u32).raw(d),
        };
        self.u32(acl_ref);
        if let Some(list) = new_acl {
            self.acl_list(list);
        }
        self
    }
}

/// Header fields, in file order after magic and version.
#[derive(Clone, Copy)]
pub struct HeaderFields {
    pub zxid: i64,
    pub node_count: u64,
    pub session_count: u64,
    pub body_uncompressed_bytes: u64,
}

/// Frames an already compressed body with a valid header and trailer.
pub fn frame_compressed(h: HeaderFields, compressed: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"RZKS");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&h.zxid.to_le_bytes());
    out.extend_from_slice(&h.node_count.to_le_bytes());
    out.extend_from_slice(&h.session_count.to_le_bytes());
    out.extend_from_slice(&h.body_uncompressed_bytes.to_le_bytes());
    out.extend_from_slice(&(compressed.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(out.len(), rzk_snapshot::HEADER_BYTES);
    out.extend_from_slice(compressed);
    out.extend_from_slice(&crc32c::crc32c(compressed).to_le_bytes());
    out
}

/// Compresses `body` and frames it with valid checksums, declaring its true length.
pub fn frame(zxid: i64, node_count: u64, session_count: u64, body: &[u8]) -> Vec<u8> {
    let compressed = zstd::bulk::compress(body, 1).unwrap();
    frame_compressed(
        HeaderFields {
            zxid,
            node_count,
            session_count,
            body_uncompressed_bytes: body.len() as u64,
        },
        &compressed,
    )
}

/// The uncompressed body of a snapshot this crate encoded, and its header fields.
pub fn unframe(bytes: &[u8]) -> (HeaderFields, Vec<u8>) {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let h = HeaderFields {
        zxid: u64_at(8) as i64,
        node_count: u64_at(16),
        session_count: u64_at(24),
        body_uncompressed_bytes: u64_at(32),
    };
    let compressed_len = u64_at(40) as usize;
    let body = zstd::stream::decode_all(&bytes[52..52 + compressed_len]).unwrap();
    assert_eq!(body.len() as u64, h.body_uncompressed_bytes);
    (h, body)
}

/// A small seeded PRNG (xorshift64*), so failures replay with `SEED=`.
pub struct Rng(pub u64);

impl Rng {
    pub fn from_env() -> Rng {
        let seed = std::env::var("SEED")
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        eprintln!("seed: SEED={seed:#x}");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A unique scratch dir, removed on drop (also when the test fails).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "rzk-snapshot-{name}-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
