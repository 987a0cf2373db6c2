//! The znode tree: ZooKeeper's DataTree as a persistent (structurally shared) map, so the single
//! writer can publish a new version per applied batch and readers on any thread read a
//! consistent version without taking a lock the writer holds.
//!
//! Owns: znodes and their Stat, the ephemeral/container/TTL indexes, applying transactions
//! (deterministically; a [`Txn`] never fails here because prep decided every outcome), the
//! watch registry (`watch`), path rules (`path`) and ACL matching (`acl`).
//!
//! Never: decide a ZooKeeper outcome (that is prep's job), do I/O, read a clock.
//! Invariants: every node but "/" has its parent in the map and is listed among the parent's
//! children (a Stat's numChildren and dataLength are read off the node, never stored apart).
//! Layout: each znode is one allocation (`node`), kept in a persistent hash trie keyed by the
//! path inside it (`map`); `tests/memory.rs` guards the bytes per znode.

pub mod acl;
pub mod children;
mod map;
pub mod name;
mod node;
pub mod path;
pub mod quota;
pub mod watch;

use std::sync::Arc;

use imbl::{HashMap, OrdSet};
use rzk_proto::{Acl, ErrorCode, Stat, Txn, TxnBody};

pub use children::Children;
use map::NodeMap;
pub use name::ChildName;
pub use node::Znode;

/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER`: containers carry this as their ephemeralOwner.
pub const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;
/// TTL nodes carry `0xFF << 56 | ttl_ms` as their ephemeralOwner (extended types).
const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000_u64 as i64;
const EXTENDED_RESERVED_MASK: i64 = 0x00ff_ff00_0000_0000;
/// The largest TTL ZooKeeper can encode (about 34 years).
pub const TTL_MAX_MS: i64 = !(EXTENDED_MASK | EXTENDED_RESERVED_MASK);

pub fn ttl_ephemeral_owner(ttl_ms: i64) -> i64 {
    debug_assert!(ttl_ms > 0 && ttl_ms <= TTL_MAX_MS);
    EXTENDED_MASK | ttl_ms
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    Ephemeral { session_id: i64 },
    Container,
    Ttl { ttl_ms: i64 },
}

impl NodeKind {
    pub fn of_owner(ephemeral_owner: i64) -> NodeKind {
        if ephemeral_owner == 0 {
            NodeKind::Persistent
        } else if ephemeral_owner == CONTAINER_EPHEMERAL_OWNER {
            NodeKind::Container
        } else if ephemeral_owner & EXTENDED_MASK == EXTENDED_MASK {
            NodeKind::Ttl {
                ttl_ms: ephemeral_owner & TTL_MAX_MS,
            }
        } else {
            NodeKind::Ephemeral {
                session_id: ephemeral_owner,
            }
        }
    }
}

/// What applying one op (or one sub-op of a multi) produced, in the shape replies need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    SessionCreated,
    SessionClosed,
    Created {
        path: Arc<str>,
        stat: Stat,
        reply_stat: bool,
    },
    Deleted,
    DataSet {
        stat: Stat,
    },
    AclSet {
        stat: Stat,
    },
    Checked,
    Error(ErrorCode),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    Created,
    Deleted,
    DataChanged,
}

/// A change that may fire watches; the watch registry expands it as ZooKeeper's DataTree does.
/// The ACLs travel along because an event reaches only sessions that may READ the node (its
/// parent for NodeChildrenChanged), as in ZooKeeper since the CVE-2024-23944 fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub path: Arc<str>,
    pub acl: Arc<[Acl]>,
    pub parent_acl: Arc<[Acl]>,
}

#[derive(Debug, Default)]
pub struct Applied {
    pub outcomes: Vec<OpOutcome>,
    pub triggers: Vec<Trigger>,
}

/// One version of the whole tree. Cloning is O(1); the clone shares every node.
#[derive(Clone)]
pub struct Tree {
    /// Keyed by the path in each node, hashed by `NodeHasher`.
    nodes: NodeMap,
    ephemerals: HashMap<i64, OrdSet<Arc<str>>>,
    containers: OrdSet<Arc<str>>,
    ttls: OrdSet<Arc<str>>,
    /// ZooKeeper's tree digest (3.6+): the wrapping sum of every node's `node_digest`, kept
    /// as nodes change, so two servers that applied the same txns hold the same value.
    digest: u64,
    /// Paths with a quota (ZooKeeper's pTrie): `/zookeeper/quota{P}/zookeeper_limits` exists.
    quota_paths: OrdSet<Arc<str>>,
    last_zxid: i64,
    data_bytes: u64,
    /// The ACL list last given to a node that was not its parent's: the next create or
    /// setACL with an equal list shares it (see `shared_acl`).
    recent_acl: Option<Arc<[Acl]>>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

fn system_node(path: &str, acl: Vec<Acl>, aversion: i32) -> Znode {
    let stat = Stat {
        aversion,
        ..Stat::default()
    };
    Znode::new(path, &stat, Some(&[]), Arc::from(acl))
}

/// Keeps one `Arc` per distinct ACL list while a tree is rebuilt: most nodes share a few.
#[derive(Default)]
struct AclInterner {
    last: Option<Arc<[Acl]>>,
    seen: std::collections::HashMap<Vec<Acl>, Arc<[Acl]>>,
}

impl AclInterner {
    fn intern<A: AsRef<[Acl]> + Into<Arc<[Acl]>>>(&mut self, acl: A) -> Arc<[Acl]> {
        let list = acl.as_ref();
        // Neighbours usually share a list, and the snapshot decoder hands in the same Arc
        // for the same list: compare the pointer, then the contents, before hashing.
        if let Some(last) = &self.last {
            if std::ptr::eq(last.as_ptr(), list.as_ptr()) && last.len() == list.len()
                || **last == *list
            {
                return last.clone();
            }
        }
        let shared = match self.seen.get(list) {
            Some(shared) => shared.clone(),
            None => {
                let key = list.to_vec();
                let shared: Arc<[Acl]> = acl.into();
                self.seen.insert(key, shared.clone());
                shared
            }
        };
        self.last = Some(shared.clone());
        shared
    }
}

/// The children set of each node that has children, in index order: `grouped[first[p]..
/// first[p + 1]]` are the indexes of node `p`'s children, `names[c]` is child `c`'s name.
fn children_sets(names: &[ChildName], grouped: &[u32], first: &[u32]) -> Vec<Children> {
    let mut sets = Vec::new();
    let mut run: Vec<ChildName> = Vec::new();
    for bounds in first.windows(2) {
        let children = &grouped[bounds[0] as usize..bounds[1] as usize];
        if children.is_empty() {
            continue;
        }
        run.clear();
        run.extend(children.iter().map(|&c| names[c as usize].clone()));
        run.sort_unstable();
        // A repeated name is a repeated path: the map refuses it with its path.
        run.dedup();
        sets.push(Children::from_sorted(std::mem::take(&mut run)));
    }
    sets
}

const NO_PARENT: u32 = u32::MAX;

/// From this many nodes on, a load builds the children sets on a second thread;
/// below it the thread costs more than it saves (and the fuzzer decodes many tiny
/// snapshots).
pub const PARALLEL_LOAD_MIN_NODES: usize = 4096;

/// The index of each node's parent in `entries` (`NO_PARENT` for "/"), checking that "/" is
/// there and that every other node's parent is. Only nodes that claim children (`claimed`)
/// can be parents, so only they are indexed: a million leaves would make the index itself
/// the slowest part of a load (every insert a cache miss), while the parents are usually
/// few. A child whose parent claims none is reported here; duplicate paths among the parents
/// here, among the rest when they go into the map.
fn parent_indexes(entries: &[(u64, Znode)], claimed: &[u32]) -> Result<Vec<u32>, String> {
    if entries.len() >= NO_PARENT as usize {
        return Err(format!(
            "{} nodes are more than a tree holds",
            entries.len()
        ));
    }
    if !entries.iter().any(|(_, n)| n.path() == "/") {
        return Err("no root node".into());
    }
    let mut index: std::collections::HashMap<&str, u32, ahash::RandomState> =
        std::collections::HashMap::with_hasher(ahash::RandomState::new());
    for (i, (_, node)) in entries.iter().enumerate() {
        if claimed[i] != 0 && index.insert(node.path(), i as u32).is_some() {
            return Err(format!("{} appears twice", node.path()));
        }
    }
    let mut last: Option<(&str, u32)> = None;
    entries
        .iter()
        .map(|(_, n)| match path::parent(n.path()) {
            None => Ok(NO_PARENT),
            // Siblings often follow each other: skip the hash for a repeated parent.
            Some(parent) => match last {
                Some((last_path, i)) if last_path == parent => Ok(i),
                _ => {
                    let i = index.get(parent).copied().ok_or_else(|| {
                        format!(
                            "{}: its parent is missing or claims numChildren 0",
                            n.path()
                        )
                    })?;
                    last = Some((parent, i));
                    Ok(i)
                }
            },
        })
        .collect()
}

/// A node as a loader decoded it, already in its one allocation, with what the rebuild
/// checks against the tree it finds (`Tree::from_records`).
pub struct NodeRecord {
    /// The path's hash by the tree's [`NodeHasher`].
    hash: u64,
    node: Znode,
    /// The numChildren and dataLength the source stated: a rebuild refuses a tree that
    /// disagrees.
    num_children: i32,
    data_length: i32,
}

impl NodeRecord {
    pub fn new(
        hash: u64,
        path: &str,
        stat: &Stat,
        data: Option<&[u8]>,
        acl: Arc<[Acl]>,
    ) -> NodeRecord {
        NodeRecord {
            hash,
            node: Znode::new(path, stat, data, acl),
            num_children: stat.num_children,
            data_length: stat.data_length,
        }
    }

    /// Gives the node its ACL list (a snapshot stores it after the value). The digest does
    /// not cover ACLs, so it stays valid.
    pub fn set_acl(&mut self, acl: Arc<[Acl]>) {
        self.node.edit(|f| f.acl = acl);
    }
}

/// The hasher of a tree's node map, made before the tree so that a loader can hash each
/// path where it has it in cache anyway (the snapshot decoder, as it allocates the path):
/// the rebuild orders its inserts by these hashes, and computing them there spares it a
/// cache miss per node. A wrong hash would only cost speed; the map hashes every key itself.
#[derive(Clone)]
pub struct NodeHasher(ahash::RandomState);

impl NodeHasher {
    /// ahash with per-process random keys: several times faster than SipHash on paths, and
    /// still resistant to clients choosing colliding paths.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NodeHasher(ahash::RandomState::new())
    }

    /// ahash keyed from `seed`: the map's layout, and so the order a snapshot writes nodes
    /// in, then depends only on the seed and the paths. A server draws its seed at random
    /// (colliding paths stay unpredictable to clients); the simulator and tests fix it, so
    /// the same history gives the same bytes.
    pub fn seeded(seed: u64) -> Self {
        let mut prng = rzk_proto::Prng::new(seed);
        NodeHasher(ahash::RandomState::with_seeds(
            prng.next_u64(),
            prng.next_u64(),
            prng.next_u64(),
            prng.next_u64(),
        ))
    }

    pub fn hash(&self, path: &str) -> u64 {
        self.0.hash_one(path)
    }
}

/// One node's share of the tree digest, as ZooKeeper 3.6+ computes it (DigestCalculator,
/// digest version 2): CRC-32 over the path ("" for the root), the data, then czxid, mzxid,
/// pzxid, ctime, mtime (8 bytes each, big-endian), version, cversion, aversion (4 bytes each)
/// and ephemeralOwner (8 bytes). Nodes under /zookeeper/ count 0: ZooKeeper updates quota
/// nodes locally, so it leaves that subtree out, and so do we to give the same sums.
///
/// Not cached in the node, unlike ZooKeeper (see `node.rs`): a change reads the node it
/// copies or edits anyway, so the old share is a CRC of bytes already in cache.
pub fn node_digest(node: &Znode) -> u32 {
    let path = node.path_bytes();
    if path.starts_with(b"/zookeeper/") {
        return 0;
    }
    let path = if path == b"/" { &[][..] } else { path };
    let s = node.fixed();
    let mut fixed = [0u8; 60];
    let fields = [s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime];
    for (i, v) in fields.iter().enumerate() {
        fixed[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
    }
    fixed[40..44].copy_from_slice(&s.version.to_be_bytes());
    fixed[44..48].copy_from_slice(&s.cversion.to_be_bytes());
    fixed[48..52].copy_from_slice(&s.aversion.to_be_bytes());
    fixed[52..60].copy_from_slice(&s.ephemeral_owner.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(path);
    if let Some(data) = node.data() {
        crc.update(data);
    }
    crc.update(&fixed);
    crc.finalize()
}

impl Tree {
    /// A fresh tree with ZooKeeper's system nodes: /, /zookeeper, /zookeeper/quota and
    /// /zookeeper/config (read-only to the world, as ZooKeeper creates it).
    pub fn new() -> Self {
        Tree::with_hasher(NodeHasher::new())
    }

    /// A fresh tree (as `new`) whose node map hashes with `hasher`.
    pub fn with_hasher(hasher: NodeHasher) -> Self {
        let mut tree = Tree {
            nodes: NodeMap::with_hasher(hasher.0),
            ephemerals: HashMap::new(),
            containers: OrdSet::new(),
            ttls: OrdSet::new(),
            quota_paths: OrdSet::new(),
            last_zxid: 0,
            data_bytes: 0,
            recent_acl: None,
            digest: 0,
        };
        let root = system_node("/", Acl::open_unsafe(), 0);
        tree.digest = tree.digest.wrapping_add(root.digest() as u64);
        tree.nodes.insert(root);
        // ZooKeeper creates /zookeeper/config with aversion -1 (DataTree.addConfigNode).
        for (path, acl, aversion) in [
            ("/zookeeper", Acl::open_unsafe(), 0),
            ("/zookeeper/quota", Acl::open_unsafe(), 0),
            ("/zookeeper/config", Acl::read_unsafe(), -1),
        ] {
            let parent = path::parent(path).unwrap();
            let name = ChildName::from(path::basename(path));
            tree.change_node(parent, |parent| {
                parent.edit(|f| add_child(f, name));
            });
            let node = system_node(path, acl, aversion);
            tree.digest = tree.digest.wrapping_add(node.digest() as u64);
            tree.nodes.insert(node);
        }
        tree
    }

    /// Rebuilds a tree from its nodes (a snapshot): children, the ephemeral/container/TTL
    /// indexes and the byte count are derived, and every stored `num_children` must match
    /// the children found. The order of `nodes` does not matter.
    ///
    /// Paths, data and ACL lists may come as `Arc`s (the snapshot decoder builds them so,
    /// to allocate each once) or as `String`/`Vec`. Nodes that hand in the same ACL `Arc`
    /// share it without a comparison; equal lists given apart are shared too.
    pub fn from_nodes<P, D, A>(
        last_zxid: i64,
        nodes: impl IntoIterator<Item = (P, Stat, Option<D>, A)>,
    ) -> Result<Tree, String>
    where
        P: AsRef<str>,
        D: AsRef<[u8]>,
        A: AsRef<[Acl]> + Into<Arc<[Acl]>>,
    {
        Self::from_nodes_with(last_zxid, NodeHasher::new(), nodes)
    }

    /// `from_nodes` with the map hashing by `hasher` (see [`NodeHasher::seeded`]).
    pub fn from_nodes_with<P, D, A>(
        last_zxid: i64,
        hasher: NodeHasher,
        nodes: impl IntoIterator<Item = (P, Stat, Option<D>, A)>,
    ) -> Result<Tree, String>
    where
        P: AsRef<str>,
        D: AsRef<[u8]>,
        A: AsRef<[Acl]> + Into<Arc<[Acl]>>,
    {
        let hashing = hasher.clone();
        let nodes = nodes.into_iter().map(move |(path, stat, data, acl)| {
            (hashing.hash(path.as_ref()), path, stat, data, acl)
        });
        Self::from_hashed_nodes(last_zxid, hasher, nodes)
    }

    /// `from_nodes` for nodes whose paths the caller has hashed with `hasher` (see
    /// [`NodeHasher`]).
    pub fn from_hashed_nodes<P, D, A>(
        last_zxid: i64,
        hasher: NodeHasher,
        nodes: impl IntoIterator<Item = (u64, P, Stat, Option<D>, A)>,
    ) -> Result<Tree, String>
    where
        P: AsRef<str>,
        D: AsRef<[u8]>,
        A: AsRef<[Acl]> + Into<Arc<[Acl]>>,
    {
        let mut acls = AclInterner::default();
        let records = nodes.into_iter().map(move |(hash, path, stat, data, acl)| {
            let data = data.as_ref().map(AsRef::as_ref);
            NodeRecord::new(hash, path.as_ref(), &stat, data, acls.intern(acl))
        });
        Self::from_records(last_zxid, hasher, records)
    }

    /// Rebuilds a tree from nodes a loader made as it decoded them (see [`NodeRecord`]), each
    /// already in its one allocation: nothing is copied again. Checks what `from_nodes` does.
    pub fn from_records(
        last_zxid: i64,
        hasher: NodeHasher,
        records: impl IntoIterator<Item = NodeRecord>,
    ) -> Result<Tree, String> {
        let mut tree = Tree {
            nodes: NodeMap::with_hasher(hasher.0.clone()),
            ephemerals: HashMap::new(),
            containers: OrdSet::new(),
            ttls: OrdSet::new(),
            quota_paths: OrdSet::new(),
            last_zxid,
            data_bytes: 0,
            recent_acl: None,
            digest: 0,
        };
        // The nodes are gathered first, and go into the persistent map only once complete:
        // filling in children afterwards would look each parent up again.
        let records = records.into_iter();
        let nodes = &records;
        let mut entries: Vec<(u64, Znode)> = Vec::with_capacity(nodes.size_hint().0);
        // The numChildren each node claims, checked against the children found.
        let mut claimed: Vec<u32> = Vec::with_capacity(nodes.size_hint().0);
        // Each node's name as its parent will list it, made while its path is in cache.
        let mut names: Vec<ChildName> = Vec::with_capacity(nodes.size_hint().0);
        for NodeRecord {
            hash,
            node,
            num_children,
            data_length,
        } in records
        {
            let path = node.path();
            debug_assert_eq!(
                hash,
                hasher.hash(path),
                "{path}: hashed with another hasher"
            );
            if path != "/" && path::validate_path(path).is_err() {
                return Err(format!("invalid path {path:?}"));
            }
            if data_length as usize != node.data_bytes().len() {
                return Err(format!("{path}: dataLength does not match the data"));
            }
            tree.data_bytes += node.data_bytes().len() as u64;
            tree.digest = tree.digest.wrapping_add(node.digest() as u64);
            tree.index(node.kind(), || Arc::from(path));
            if let Some(quoted) = path
                .strip_suffix(quota::LIMIT_NODE)
                .and_then(|dir| dir.strip_suffix('/'))
                .filter(|dir| dir.starts_with(quota::QUOTA_ROOT))
            {
                tree.quota_paths
                    .insert(Arc::from(quota::trim_quota_path(quoted)));
            }
            names.push(ChildName::from(path::basename(path)));
            claimed.push(
                u32::try_from(num_children)
                    .map_err(|_| format!("{path}: numChildren {num_children}"))?,
            );
            entries.push((hash, node));
        }

        let parent_of = parent_indexes(&entries, &claimed)?;
        // Children grouped by parent (a counting sort on the parent's index), so each
        // children set is built from one sorted run instead of growing one insert at a time
        // in snapshot (hash) order.
        let mut first = vec![0u32; entries.len() + 1];
        for &p in &parent_of {
            if p != NO_PARENT {
                first[p as usize + 1] += 1;
            }
        }
        for (i, (_, node)) in entries.iter().enumerate() {
            let found = first[i + 1];
            if claimed[i] != found {
                return Err(format!(
                    "{}: numChildren {} but {found} children",
                    node.path(),
                    claimed[i]
                ));
            }
        }
        for i in 0..entries.len() {
            first[i + 1] += first[i];
        }
        let mut grouped = vec![0u32; first[entries.len()] as usize];
        let mut next = first.clone();
        for (child, &p) in parent_of.iter().enumerate() {
            if p != NO_PARENT {
                grouped[next[p as usize] as usize] = child as u32;
                next[p as usize] += 1;
            }
        }
        drop(next);

        // The children sets are built on a second thread while this one puts the nodes in
        // the map's order (the two slowest steps of a load), then the sets go into their
        // nodes (each still the only reference, so in place) and the map is built in one
        // pass.
        let build_sets = || children_sets(&names, &grouped, &first);
        let spawn = entries.len() >= PARALLEL_LOAD_MIN_NODES;
        let (order, sets) = std::thread::scope(|scope| {
            let sets_thread = if spawn {
                std::thread::Builder::new()
                    .name("rzk-load-children".into())
                    .spawn_scoped(scope, build_sets)
                    .ok()
            } else {
                None
            };
            let mut order: Vec<(u64, u32)> = entries
                .iter()
                .enumerate()
                .map(|(i, (hash, _))| (map::trie_order(*hash), i as u32))
                .collect();
            order.sort_unstable();
            let sets = match sets_thread {
                Some(thread) => thread
                    .join()
                    .expect("building children sets does not panic"),
                // A small tree, or no thread to be had: build them here.
                None => build_sets(),
            };
            (order, sets)
        });
        let parents = first
            .windows(2)
            .enumerate()
            .filter(|(_, bounds)| bounds[0] != bounds[1])
            .map(|(i, _)| i);
        for (parent, set) in parents.zip(sets) {
            entries[parent].1.edit(|f| f.children = Some(Box::new(set)));
        }
        let mut slots: Vec<Option<(u64, Znode)>> = entries.into_iter().map(Some).collect();
        let ordered = order
            .iter()
            .map(|&(_, i)| slots[i as usize].take().expect("each index once"))
            .collect();
        drop(slots);
        tree.nodes = NodeMap::from_trie_ordered(hasher.0, ordered)?;
        Ok(tree)
    }

    pub fn get(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path)
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// The hasher of this tree's node map: a tree loaded or rebuilt from this one with it
    /// lays its nodes out (and writes its snapshots) the same way.
    pub fn node_hasher(&self) -> NodeHasher {
        NodeHasher(self.nodes.hasher().clone())
    }

    /// ZooKeeper's digest of the whole tree (`DataTree.getTreeDigest`): equal on servers that
    /// applied the same txns, so a learner can tell it diverged from its leader.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The digest computed from every node, as `digest` should be: for tests and checks.
    pub fn recompute_digest(&self) -> u64 {
        self.nodes
            .iter()
            .fold(0, |sum, node| sum.wrapping_add(node_digest(node) as u64))
    }

    /// `change` a node in place, keeping the digest: the node's old digest leaves the sum and
    /// its new one joins it. None if there is no such node.
    fn change_node<R>(&mut self, path: &str, change: impl FnOnce(&mut Znode) -> R) -> Option<R> {
        let digest = &mut self.digest;
        self.nodes.update(path, |node| {
            let before = node.digest();
            let result = change(node);
            *digest = digest
                .wrapping_sub(before as u64)
                .wrapping_add(node.digest() as u64);
            result
        })
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Sets /zookeeper/config to this server's view of its ensemble, as each ZooKeeper
    /// server does from its own config at startup and after loading a snapshot
    /// (ZKDatabase.initConfigInZKDatabase): version -1, zxids 0, no txn. Not part of the
    /// digest (nothing under /zookeeper/ is), so servers whose files differ in spelling
    /// do not report a diverged tree.
    pub fn set_config_node(&mut self, text: &[u8], mtime_ms: i64) {
        let Some((old_len, new_len)) = self.change_node("/zookeeper/config", |node| {
            let old_len = node.data_bytes().len() as u64;
            node.set_data(Some(text));
            node.edit(|f| {
                f.version = -1;
                f.mzxid = 0;
                f.mtime = mtime_ms;
            });
            (old_len, text.len() as u64)
        }) else {
            return;
        };
        self.data_bytes = self.data_bytes - old_len + new_len;
    }

    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    pub fn ephemerals_of(&self, session_id: i64) -> Option<&OrdSet<Arc<str>>> {
        self.ephemerals.get(&session_id)
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|s| s.len()).sum()
    }

    pub fn sessions_with_ephemerals(&self) -> impl Iterator<Item = (&i64, &OrdSet<Arc<str>>)> {
        self.ephemerals.iter()
    }

    pub fn containers(&self) -> &OrdSet<Arc<str>> {
        &self.containers
    }

    pub fn ttls(&self) -> &OrdSet<Arc<str>> {
        &self.ttls
    }

    /// Every node with its path, in the map's order (which depends on the hasher and the
    /// paths only).
    pub fn paths(&self) -> impl Iterator<Item = (&str, &Znode)> {
        self.nodes.iter().map(|node| (node.path(), node))
    }

    /// The number of descendants of `path` (not counting itself), as getAllChildrenNumber.
    pub fn descendant_count(&self, path: &str) -> usize {
        let Some(node) = self.nodes.get(path) else {
            return 0;
        };
        let mut count = 0;
        let mut stack: Vec<String> = node
            .children()
            .iter()
            .map(|c| path::join(path, c))
            .collect();
        while let Some(p) = stack.pop() {
            count += 1;
            if let Some(n) = self.nodes.get(p.as_str()) {
                stack.extend(n.children().iter().map(|c| path::join(&p, c)));
            }
        }
        count
    }

    /// Applies one transaction. Deterministic. rzk's snapshots are exact (a published
    /// version) and recovery skips every txn at or below a snapshot's zxid, so nothing is
    /// applied twice; a create still leaves the parent's cversion/pzxid at the larger value,
    /// as ZooKeeper's `createNode` does for its fuzzy snapshots.
    pub fn apply(&mut self, txn: &Txn, out: &mut Applied) {
        assert!(
            txn.zxid > self.last_zxid,
            "txns apply in zxid order: {} after {}",
            txn.zxid,
            self.last_zxid
        );
        self.last_zxid = txn.zxid;
        match &txn.body {
            TxnBody::Multi(ops) => {
                let failed = ops.iter().any(|op| matches!(op, TxnBody::Error { .. }));
                for op in ops {
                    if failed {
                        // Prep already marked every sub-op of a failed multi as an error.
                        debug_assert!(matches!(op, TxnBody::Error { .. }));
                    }
                    self.apply_body(txn, op, out);
                }
            }
            body => self.apply_body(txn, body, out),
        }
    }

    /// Applies one op of a multi that prep is still validating, to a scratch copy: later ops
    /// of the same multi must see it. Carries the multi's zxid, so no ordering check.
    pub fn apply_within_multi(&mut self, zxid: i64, time_ms: i64, session_id: i64, body: &TxnBody) {
        let txn = Txn {
            zxid,
            time_ms,
            session_id,
            cxid: 0,
            body: TxnBody::Check {
                path: String::new(),
            },
        };
        self.apply_body(&txn, body, &mut Applied::default());
    }

    fn apply_body(&mut self, txn: &Txn, body: &TxnBody, out: &mut Applied) {
        let outcome = match body {
            TxnBody::CreateSession { .. } => OpOutcome::SessionCreated,
            TxnBody::CloseSession => {
                let paths: Vec<Arc<str>> = self
                    .ephemerals
                    .get(&txn.session_id)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                for path in paths {
                    self.delete_node(&path, txn.zxid, out);
                }
                self.ephemerals.remove(&txn.session_id);
                OpOutcome::SessionClosed
            }
            TxnBody::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
                reply_stat,
            } => self.create_node(
                path,
                data.as_deref(),
                acl,
                *ephemeral_owner,
                *parent_cversion,
                *reply_stat,
                txn,
                out,
            ),
            TxnBody::Delete { path } => {
                self.delete_node(path, txn.zxid, out);
                OpOutcome::Deleted
            }
            TxnBody::SetData {
                path,
                data,
                version,
            } => {
                let new_len = data.as_deref().map_or(0, <[u8]>::len) as u64;
                let Some((old_len, stat, acl)) = self.change_node(path, |node| {
                    let old_len = node.data_bytes().len() as u64;
                    node.set_data(data.as_deref());
                    node.edit(|f| {
                        f.version = *version;
                        f.mzxid = txn.zxid;
                        f.mtime = txn.time_ms;
                    });
                    (old_len, node.client_stat(), node.acl().clone())
                }) else {
                    return out.outcomes.push(OpOutcome::Error(ErrorCode::NoNode));
                };
                self.data_bytes = self.data_bytes - old_len + stat.data_length as u64;
                out.triggers.push(Trigger {
                    kind: TriggerKind::DataChanged,
                    path: Arc::from(path.as_str()),
                    parent_acl: acl.clone(),
                    acl,
                });
                self.update_quota(path, new_len as i64 - old_len as i64, 0);
                OpOutcome::DataSet { stat }
            }
            TxnBody::SetAcl {
                path,
                acl,
                aversion,
            } => {
                let acl = self.shared_acl(acl, None);
                let Some(stat) = self.change_node(path, |node| {
                    node.edit(|f| {
                        f.acl = acl;
                        f.aversion = *aversion;
                    });
                    node.client_stat()
                }) else {
                    return out.outcomes.push(OpOutcome::Error(ErrorCode::NoNode));
                };
                OpOutcome::AclSet { stat }
            }
            TxnBody::Check { .. } => OpOutcome::Checked,
            TxnBody::Error { err } => {
                OpOutcome::Error(ErrorCode::from_i32(*err).unwrap_or(ErrorCode::SystemError))
            }
            TxnBody::Multi(_) => unreachable!("a multi never nests another multi"),
        };
        out.outcomes.push(outcome);
    }

    /// Adds a node to the index its kind keeps (ephemerals by session, containers, TTLs),
    /// under the path `key` makes (called only for those kinds).
    fn index(&mut self, kind: NodeKind, key: impl FnOnce() -> Arc<str>) {
        match kind {
            NodeKind::Persistent => {}
            NodeKind::Container => {
                self.containers.insert(key());
            }
            NodeKind::Ttl { .. } => {
                self.ttls.insert(key());
            }
            NodeKind::Ephemeral { session_id } => {
                self.ephemerals.entry(session_id).or_default().insert(key());
            }
        }
    }

    /// The longest quota path that is `path` or an ancestor of it (`getMaxPrefixWithQuota`);
    /// never "/" (ZooKeeper keeps no quota on the root).
    fn quota_prefix(&self, path: &str) -> Option<Arc<str>> {
        if self.quota_paths.is_empty() {
            return None;
        }
        let mut candidate = Some(path);
        while let Some(p) = candidate {
            if p == "/" {
                return None;
            }
            if let Some(found) = self.quota_paths.get(p) {
                return Some(found.clone());
            }
            candidate = path::parent(p);
        }
        None
    }

    fn update_quota(&mut self, path: &str, bytes_diff: i64, count_diff: i64) {
        if let Some(prefix) = self.quota_prefix(path) {
            self.set_quota_stats(&prefix, |t| {
                t.count += count_diff;
                t.bytes += bytes_diff;
            });
        }
    }

    /// Rewrites a stats node's data in place: ZooKeeper changes neither its version nor its
    /// mzxid, only the data (and so dataLength).
    fn set_quota_stats(&mut self, quoted: &str, change: impl FnOnce(&mut quota::StatsTrack)) {
        let stat_path = quota::stat_path(quoted);
        let Some(size_change) = self.change_node(&stat_path, |node| {
            let mut track = quota::StatsTrack::parse(node.data_bytes());
            change(&mut track);
            let bytes = track.to_bytes();
            let old_len = node.data_bytes().len() as u64;
            node.set_data(Some(&bytes));
            (old_len, node.data_bytes().len() as u64)
        }) else {
            return;
        };
        self.data_bytes = self.data_bytes - size_change.0 + size_change.1;
    }

    /// Nodes and data bytes in `path`'s subtree, `path` included (`getCounts`).
    fn subtree_counts(&self, path: &str) -> (i64, i64) {
        let Some(node) = self.nodes.get(path) else {
            return (0, 0);
        };
        let mut count = 1;
        let mut bytes = node.data_bytes().len() as i64;
        let mut stack: Vec<String> = node
            .children()
            .iter()
            .map(|c| path::join(path, c))
            .collect();
        while let Some(p) = stack.pop() {
            if let Some(n) = self.nodes.get(p.as_str()) {
                count += 1;
                bytes += n.data_bytes().len() as i64;
                stack.extend(n.children().iter().map(|c| path::join(&p, c)));
            }
        }
        (count, bytes)
    }

    /// The node's ACL as an `Arc` shared with its parent's or the last one made, when equal.
    /// Nearly every node of a tree carries one of a few lists, and a list of its own costs a
    /// node about 130 bytes (the Arc and each entry's two Strings), a fifth of the node.
    fn shared_acl(&mut self, acl: &[Acl], parent_acl: Option<&Arc<[Acl]>>) -> Arc<[Acl]> {
        if let Some(parent_acl) = parent_acl.filter(|p| ***p == *acl) {
            return parent_acl.clone();
        }
        match &self.recent_acl {
            Some(recent) if **recent == *acl => recent.clone(),
            _ => {
                let shared: Arc<[Acl]> = Arc::from(acl);
                self.recent_acl = Some(shared.clone());
                shared
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        ephemeral_owner: i64,
        parent_cversion: i32,
        reply_stat: bool,
        txn: &Txn,
        out: &mut Applied,
    ) -> OpOutcome {
        let Some(parent_path) = path::parent(path) else {
            return OpOutcome::Error(ErrorCode::NodeExists);
        };
        let path_key: Arc<str> = Arc::from(path);
        let Some(parent_acl) = self.change_node(parent_path, |parent| {
            parent.edit(|f| {
                // ZooKeeper's rule for replay onto a fuzzy snapshot, kept: the parent's
                // cversion never goes back in time.
                if parent_cversion > f.cversion {
                    f.cversion = parent_cversion;
                    f.pzxid = txn.zxid;
                }
                add_child(f, ChildName::from(path::basename(path)));
            });
            parent.acl().clone()
        }) else {
            return OpOutcome::Error(ErrorCode::NoNode);
        };
        let data_length = data.map_or(0, <[u8]>::len) as i32;
        let stat = Stat {
            czxid: txn.zxid,
            mzxid: txn.zxid,
            ctime: txn.time_ms,
            mtime: txn.time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner,
            data_length,
            num_children: 0,
            pzxid: txn.zxid,
        };
        let acl = self.shared_acl(acl, Some(&parent_acl));
        let node = Znode::new(path, &stat, data, acl);
        let stat = node.client_stat();
        let acl = node.acl().clone();
        self.digest = self.digest.wrapping_add(node.digest() as u64);
        if let Some(old) = self.nodes.insert(node) {
            self.data_bytes -= old.data_bytes().len() as u64;
            self.digest = self.digest.wrapping_sub(old.digest() as u64);
        }
        self.data_bytes += data_length as u64;
        self.index(NodeKind::of_owner(ephemeral_owner), || path_key.clone());
        out.triggers.push(Trigger {
            kind: TriggerKind::Created,
            path: path_key.clone(),
            acl,
            parent_acl,
        });
        if parent_path.starts_with(quota::QUOTA_ROOT) {
            let quoted = quota::trim_quota_path(parent_path);
            match path::basename(path) {
                quota::LIMIT_NODE => {
                    self.quota_paths.insert(Arc::from(quoted));
                }
                quota::STAT_NODE => {
                    let (count, bytes) = self.subtree_counts(quoted);
                    self.set_quota_stats(quoted, |t| *t = quota::StatsTrack::new(count, bytes));
                }
                _ => {}
            }
        }
        self.update_quota(path, data_length as i64, 1);
        OpOutcome::Created {
            path: path_key,
            stat,
            reply_stat,
        }
    }

    fn delete_node(&mut self, path: &str, zxid: i64, out: &mut Applied) {
        let Some(parent_path) = path::parent(path) else {
            return;
        };
        let parent_acl = self
            .change_node(parent_path, |parent| {
                parent.edit(|f| {
                    remove_child(f, path::basename(path));
                    // ZooKeeper bumps pzxid, not cversion, when a child goes away.
                    if zxid > f.pzxid {
                        f.pzxid = zxid;
                    }
                });
                parent.acl().clone()
            })
            .unwrap_or_else(|| Arc::from(&[][..]));
        let Some(node) = self.nodes.remove(path) else {
            return;
        };
        self.digest = self.digest.wrapping_sub(node.digest() as u64);
        self.data_bytes -= node.data_bytes().len() as u64;
        if parent_path.starts_with("/zookeeper") && path::basename(path) == quota::LIMIT_NODE {
            self.quota_paths.remove(quota::trim_quota_path(parent_path));
        }
        self.update_quota(path, -(node.data_bytes().len() as i64), -1);
        match node.kind() {
            NodeKind::Persistent => {}
            NodeKind::Container => {
                self.containers.remove(path);
            }
            NodeKind::Ttl { .. } => {
                self.ttls.remove(path);
            }
            NodeKind::Ephemeral { session_id } => {
                if let Some(set) = self.ephemerals.get_mut(&session_id) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&session_id);
                    }
                }
            }
        }
        out.triggers.push(Trigger {
            kind: TriggerKind::Deleted,
            path: Arc::from(path),
            acl: node.acl().clone(),
            parent_acl,
        });
    }
}

/// Lists `name` among a node's children (a no-op if it is there).
fn add_child(f: &mut node::Fixed, name: ChildName) {
    f.children.get_or_insert_default().insert(name);
}

/// Drops `name` from a node's children; a node left without children frees its set.
fn remove_child(f: &mut node::Fixed, name: &str) {
    if let Some(children) = &mut f.children {
        children.remove(name);
        if children.is_empty() {
            f.children = None;
        }
    }
}

#[cfg(test)]
mod tests;
