//! The node map: a persistent hash array mapped trie of znodes, keyed by the path each node
//! holds, so no key is stored beside the node.
//!
//! Why not imbl's HashMap (which this replaced): its leaves are fixed 16- or 32-slot arrays of
//! 32-byte (key, value, hash) entries, about 96 B per znode at 200,000 znodes and 135 B at a
//! million, plus a separate `Arc<str>` key. Here a branch is one allocation sized to the slots
//! it has (a 32-bit bitmap says which of the 32 are present), and a slot is 16 bytes: about
//! 20 B per znode.
//!
//! Persistence: cloning the map is O(1) (the root is shared). A write copies the branches on
//! its path that a published version still shares and edits in place those it alone holds,
//! so the writer pays one copy per branch per published version, not per write.
//!
//! Shape: the trie is canonical. A branch other than the root holds at least two nodes; a
//! branch left with a single leaf is replaced by that leaf, so deletes give memory back.
//! Iteration order depends only on the hashes (and, for nodes whose 60 hashed bits collide,
//! on the order they were added), never on the order of other inserts and deletes.

use triomphe::ThinArc;

use crate::node::{ExactLen, Znode};

const BITS: u32 = 5;
const MASK: u64 = (1 << BITS) - 1;
/// Shifts past this have used 60 of the hash's 64 bits: nodes that agree in all of them
/// share a collision list.
const MAX_SHIFT: u32 = 60;

#[derive(Clone)]
enum Slot {
    Leaf(Znode),
    Branch(Branch),
    Collision(ThinArc<(), Znode>),
}

/// The header is the bitmap of the slots present, in chunk order.
#[derive(Clone)]
struct Branch(ThinArc<u32, Slot>);

impl Branch {
    fn empty() -> Branch {
        Branch(ThinArc::from_header_and_iter(0, std::iter::empty()))
    }

    fn bitmap(&self) -> u32 {
        self.0.header.header
    }

    fn slots(&self) -> &[Slot] {
        &self.0.slice
    }

    fn from_slots(bitmap: u32, slots: impl ExactSizeIterator<Item = Slot>) -> Branch {
        let branch = Branch(ThinArc::from_header_and_iter(bitmap, slots));
        debug_assert_eq!(branch.bitmap().count_ones() as usize, branch.slots().len());
        branch
    }

    /// This branch with `slot` added at `index` for `bit`.
    fn with_slot(&self, index: usize, bit: u32, slot: Slot) -> Branch {
        let slots = self.slots();
        let all = slots[..index]
            .iter()
            .cloned()
            .chain(std::iter::once(slot))
            .chain(slots[index..].iter().cloned());
        Branch::from_slots(self.bitmap() | bit, ExactLen(all, slots.len() + 1))
    }

    /// This branch without the slot at `index` for `bit`.
    fn without_slot(&self, index: usize, bit: u32) -> Branch {
        let slots = self.slots();
        let rest = slots[..index]
            .iter()
            .chain(slots[index + 1..].iter())
            .cloned();
        Branch::from_slots(self.bitmap() & !bit, ExactLen(rest, slots.len() - 1))
    }

    /// `edit` the slot at `index`, copying this branch first if a published version shares it.
    fn edit_slot<R>(&mut self, index: usize, edit: impl FnOnce(&mut Slot) -> R) -> R {
        if ThinArc::strong_count(&self.0) != 1 {
            *self = Branch::from_slots(self.bitmap(), self.slots().iter().cloned());
        }
        self.0.with_arc_mut(|arc| {
            let inner = triomphe::Arc::get_mut(arc).expect("the only reference, or a fresh copy");
            edit(&mut inner.slice_mut()[index])
        })
    }

    /// The slot for `hash` at `shift`: its bit and, if present, its index.
    fn locate(&self, hash: u64, shift: u32) -> (u32, Option<usize>) {
        let bit = 1u32 << ((hash >> shift) & MASK);
        let bitmap = self.bitmap();
        let index = (bitmap & bit != 0).then(|| (bitmap & (bit - 1)).count_ones() as usize);
        (bit, index)
    }
}

#[derive(Clone)]
pub(crate) struct NodeMap {
    root: Branch,
    len: usize,
    hasher: ahash::RandomState,
    /// All ones, except in tests that squeeze the hash to force deep branches and
    /// collisions.
    hash_mask: u64,
}

impl NodeMap {
    pub(crate) fn with_hasher(hasher: ahash::RandomState) -> NodeMap {
        NodeMap {
            root: Branch::empty(),
            len: 0,
            hasher,
            hash_mask: u64::MAX,
        }
    }

    pub(crate) fn hasher(&self) -> &ahash::RandomState {
        &self.hasher
    }

    /// Hashed as a str, the way `NodeHasher::hash` hashes it: a loader's hashes must agree.
    fn hash(&self, path: &str) -> u64 {
        self.hasher.hash_one(path) & self.hash_mask
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, path: &str) -> Option<&Znode> {
        self.find(self.hash(path), path.as_bytes())
    }

    fn find(&self, hash: u64, path: &[u8]) -> Option<&Znode> {
        let mut branch = &self.root;
        let mut shift = 0;
        loop {
            let index = branch.locate(hash, shift).1?;
            match &branch.slots()[index] {
                Slot::Leaf(node) => return (node.path_bytes() == path).then_some(node),
                Slot::Branch(below) => branch = below,
                Slot::Collision(list) => return list.slice.iter().find(|n| n.path_bytes() == path),
            }
            shift += BITS;
        }
    }

    /// Adds `node` under its path; returns the node it replaced.
    pub(crate) fn insert(&mut self, node: Znode) -> Option<Znode> {
        let hash = self.hash(node.path());
        let (hasher, mask) = (&self.hasher, self.hash_mask);
        let hash_of = |path: &str| hasher.hash_one(path) & mask;
        let replaced = insert(&mut self.root, 0, hash, node, &hash_of);
        if replaced.is_none() {
            self.len += 1;
        }
        replaced
    }

    pub(crate) fn remove(&mut self, path: &str) -> Option<Znode> {
        // Looked up first, so a miss copies no branch.
        let hash = self.hash(path);
        self.find(hash, path.as_bytes())?;
        let removed = remove(&mut self.root, 0, hash, path.as_bytes());
        assert!(removed.is_some(), "{path}: found, then not removed");
        self.len -= 1;
        removed
    }

    /// `change` the node at `path` (which must keep its path); None if there is none.
    pub(crate) fn update<R>(
        &mut self,
        path: &str,
        change: impl FnOnce(&mut Znode) -> R,
    ) -> Option<R> {
        let hash = self.hash(path);
        self.find(hash, path.as_bytes())?;
        let mut change = Some(change);
        let result = update(&mut self.root, 0, hash, path.as_bytes(), &mut |node| {
            let change = change.take().expect("one node per path");
            change(node)
        });
        assert!(result.is_some(), "{path}: found, then not updated");
        result
    }

    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter {
            stack: vec![self.root.slots().iter()],
            collision: [].iter(),
        }
    }

    /// A map of `nodes`, each with its path's hash by this map's hasher and sorted by
    /// [`trie_order`] of it, built bottom-up in one pass (no branch is copied or grown): what
    /// a snapshot load needs. Two nodes with one path are an error.
    pub(crate) fn from_trie_ordered(
        hasher: ahash::RandomState,
        nodes: Vec<(u64, Znode)>,
    ) -> Result<NodeMap, String> {
        debug_assert!(nodes.is_sorted_by_key(|(hash, _)| trie_order(*hash)));
        let len = nodes.len();
        let (hashes, nodes): (Vec<u64>, Vec<Znode>) = nodes.into_iter().unzip();
        // The nodes move into the trie in order; cloning them would touch each one's count,
        // a cache miss per node on a large load.
        let root = build(&hashes, 0, &mut nodes.into_iter())?;
        Ok(NodeMap {
            root,
            len,
            hasher,
            hash_mask: u64::MAX,
        })
    }
}

/// A key whose order is the trie's (and its iteration's): the first level's 5 bits most
/// significant, and so on.
pub(crate) fn trie_order(hash: u64) -> u64 {
    let mut key = 0;
    let mut shift = 0;
    while shift < MAX_SHIFT {
        key = (key << BITS) | ((hash >> shift) & MASK);
        shift += BITS;
    }
    (key << (64 - MAX_SHIFT)) | (hash >> MAX_SHIFT)
}

/// The branch of the nodes whose hashes are `hashes` (in trie order, all agreeing below
/// `shift`); `nodes` yields them in the same order.
fn build(
    hashes: &[u64],
    shift: u32,
    nodes: &mut std::vec::IntoIter<Znode>,
) -> Result<Branch, String> {
    let mut bitmap = 0u32;
    let mut slots = Vec::new();
    let mut rest = hashes;
    while let Some(&hash) = rest.first() {
        let chunk = (hash >> shift) & MASK;
        let run = rest
            .iter()
            .take_while(|h| (*h >> shift) & MASK == chunk)
            .count();
        let (group, after) = rest.split_at(run);
        rest = after;
        bitmap |= 1 << chunk;
        slots.push(match group {
            [_] => Slot::Leaf(nodes.next().expect("a node per hash")),
            _ if shift + BITS >= MAX_SHIFT => {
                collision(nodes.by_ref().take(group.len()).collect())?
            }
            _ => Slot::Branch(build(group, shift + BITS, nodes)?),
        });
    }
    Ok(Branch::from_slots(bitmap, slots.into_iter()))
}

fn collision(group: Vec<Znode>) -> Result<Slot, String> {
    for (i, a) in group.iter().enumerate() {
        if group[..i].iter().any(|b| b.path_bytes() == a.path_bytes()) {
            return Err(format!("{} appears twice", a.path()));
        }
    }
    let len = group.len();
    Ok(Slot::Collision(ThinArc::from_header_and_iter(
        (),
        ExactLen(group.into_iter(), len),
    )))
}

/// A slot holding `a` and `b` (different paths) below `shift`.
fn pair(shift: u32, a: Znode, a_hash: u64, b: Znode, b_hash: u64) -> Slot {
    if shift >= MAX_SHIFT {
        return Slot::Collision(ThinArc::from_header_and_iter((), [a, b].into_iter()));
    }
    let (a_chunk, b_chunk) = ((a_hash >> shift) & MASK, (b_hash >> shift) & MASK);
    let branch = if a_chunk == b_chunk {
        let below = pair(shift + BITS, a, a_hash, b, b_hash);
        Branch::from_slots(1 << a_chunk, std::iter::once(below))
    } else {
        let bitmap = (1 << a_chunk) | (1 << b_chunk);
        let slots = if a_chunk < b_chunk { [a, b] } else { [b, a] };
        Branch::from_slots(bitmap, slots.into_iter().map(Slot::Leaf))
    };
    Slot::Branch(branch)
}

fn insert(
    branch: &mut Branch,
    shift: u32,
    hash: u64,
    node: Znode,
    hash_of: &dyn Fn(&str) -> u64,
) -> Option<Znode> {
    let (bit, index) = branch.locate(hash, shift);
    let Some(index) = index else {
        let index = (branch.bitmap() & (bit - 1)).count_ones() as usize;
        *branch = branch.with_slot(index, bit, Slot::Leaf(node));
        return None;
    };
    branch.edit_slot(index, |slot| match slot {
        Slot::Leaf(existing) if existing.path_bytes() == node.path_bytes() => {
            Some(std::mem::replace(existing, node))
        }
        Slot::Leaf(existing) => {
            let existing = existing.clone();
            let existing_hash = hash_of(existing.path());
            *slot = pair(shift + BITS, existing, existing_hash, node, hash);
            None
        }
        Slot::Branch(below) => insert(below, shift + BITS, hash, node, hash_of),
        Slot::Collision(list) => {
            let mut nodes: Vec<Znode> = list.slice.to_vec();
            let replaced = match nodes
                .iter_mut()
                .find(|n| n.path_bytes() == node.path_bytes())
            {
                Some(same) => Some(std::mem::replace(same, node)),
                None => {
                    nodes.push(node);
                    None
                }
            };
            *list = ThinArc::from_header_and_iter((), nodes.into_iter());
            replaced
        }
    })
}

fn remove(branch: &mut Branch, shift: u32, hash: u64, path: &[u8]) -> Option<Znode> {
    let (bit, index) = branch.locate(hash, shift);
    let index = index?;
    if let Slot::Leaf(node) = &branch.slots()[index] {
        if node.path_bytes() != path {
            return None;
        }
        let removed = node.clone();
        *branch = branch.without_slot(index, bit);
        return Some(removed);
    }
    branch.edit_slot(index, |slot| {
        let removed = match slot {
            Slot::Leaf(_) => unreachable!("handled above"),
            Slot::Branch(below) => remove(below, shift + BITS, hash, path),
            Slot::Collision(list) => {
                let at = list.slice.iter().position(|n| n.path_bytes() == path)?;
                let removed = list.slice[at].clone();
                let rest = list.slice[..at]
                    .iter()
                    .chain(&list.slice[at + 1..])
                    .cloned();
                *list = ThinArc::from_header_and_iter((), ExactLen(rest, list.slice.len() - 1));
                Some(removed)
            }
        };
        // Keep the trie canonical: a branch or list left with one node becomes that node.
        let single = match slot {
            Slot::Branch(below) if below.slots().len() == 1 => match &below.slots()[0] {
                Slot::Leaf(node) => Some(node.clone()),
                _ => None,
            },
            Slot::Collision(list) if list.slice.len() == 1 => Some(list.slice[0].clone()),
            _ => None,
        };
        if let Some(node) = single {
            *slot = Slot::Leaf(node);
        }
        removed
    })
}

fn update<R>(
    branch: &mut Branch,
    shift: u32,
    hash: u64,
    path: &[u8],
    change: &mut dyn FnMut(&mut Znode) -> R,
) -> Option<R> {
    let index = branch.locate(hash, shift).1?;
    branch.edit_slot(index, |slot| match slot {
        Slot::Leaf(node) if node.path_bytes() == path => Some(apply(node, change)),
        Slot::Leaf(_) => None,
        Slot::Branch(below) => update(below, shift + BITS, hash, path, change),
        Slot::Collision(list) => {
            let at = list.slice.iter().position(|n| n.path_bytes() == path)?;
            let mut nodes = list.slice.to_vec();
            let result = apply(&mut nodes[at], change);
            *list = ThinArc::from_header_and_iter((), nodes.into_iter());
            Some(result)
        }
    })
}

fn apply<R>(node: &mut Znode, change: &mut dyn FnMut(&mut Znode) -> R) -> R {
    let path_len = node.path_bytes().len();
    let result = change(node);
    debug_assert_eq!(
        node.path_bytes().len(),
        path_len,
        "an update keeps the path"
    );
    result
}

pub(crate) struct Iter<'a> {
    stack: Vec<std::slice::Iter<'a, Slot>>,
    collision: std::slice::Iter<'a, Znode>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Znode;

    fn next(&mut self) -> Option<&'a Znode> {
        loop {
            if let Some(node) = self.collision.next() {
                return Some(node);
            }
            let top = self.stack.last_mut()?;
            match top.next() {
                None => {
                    self.stack.pop();
                }
                Some(Slot::Leaf(node)) => {
                    if let Some(Slot::Leaf(ahead)) = top.as_slice().get(PREFETCH_AHEAD - 1) {
                        prefetch_node(ahead);
                    }
                    return Some(node);
                }
                Some(Slot::Branch(below)) => {
                    for slot in below.slots().iter().take(PREFETCH_AHEAD) {
                        if let Slot::Leaf(ahead) = slot {
                            prefetch_node(ahead);
                        }
                    }
                    self.stack.push(below.slots().iter())
                }
                Some(Slot::Collision(list)) => self.collision = list.slice.iter(),
            }
        }
    }
}

/// How many leaves ahead of the one it returns the iteration asks for a node's bytes. A
/// whole-tree walk (a snapshot, a digest, a SNAP to a learner) visits nodes in hash order,
/// which is no order in memory, so without this each node is a cache miss the caller waits
/// for: a quarter of the snapshot thread's time at a million znodes (BENCHMARKS.md).
const PREFETCH_AHEAD: usize = 4;

/// The lines a whole-node reader touches first: the fixed part, the path and (for the
/// common small node) the value.
const PREFETCH_BYTES: usize = 256;

#[allow(unsafe_code)]
fn prefetch_node(node: &Znode) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = node.heap_address().cast::<i8>();
        for offset in (0..PREFETCH_BYTES).step_by(64) {
            // SAFETY: a prefetch is only a hint: it reads nothing into the program, writes
            // no memory and never faults, whatever the address, so lines past the end of a
            // small node are harmless. `wrapping_add` keeps the address arithmetic defined.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = node;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use proptest::prelude::*;
    use rzk_proto::Stat;

    use super::*;

    fn node(path: &str, version: i32) -> Znode {
        let stat = Stat {
            version,
            ..Stat::default()
        };
        Znode::new(path, &stat, Some(path.as_bytes()), Arc::from(&[][..]))
    }

    /// The trie's shape rules; returns the nodes below `branch`.
    fn check_shape(branch: &Branch, shift: u32, is_root: bool) -> usize {
        assert_eq!(branch.bitmap().count_ones() as usize, branch.slots().len());
        let mut nodes = 0;
        for slot in branch.slots() {
            nodes += match slot {
                Slot::Leaf(_) => 1,
                Slot::Branch(below) => check_shape(below, shift + BITS, false),
                Slot::Collision(list) => {
                    assert_eq!(shift + BITS, MAX_SHIFT, "a list only below the last level");
                    assert!(list.slice.len() >= 2, "a list of one is a leaf");
                    list.slice.len()
                }
            };
        }
        assert!(
            is_root || nodes >= 2,
            "a branch of {nodes} node(s) is collapsed"
        );
        nodes
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, i32),
        Remove(u8),
        Update(u8),
        Publish,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u8>(), any::<i32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => any::<u8>().prop_map(Op::Remove),
            2 => any::<u8>().prop_map(Op::Update),
            1 => Just(Op::Publish),
        ]
    }

    fn version(map: &NodeMap, path: &str) -> Option<i32> {
        map.get(path).map(|n| n.stat().version)
    }

    proptest! {
        /// Against a BTreeMap, with the hash squeezed to a few bits (deep branches and
        /// collision lists) or whole; versions published along the way must not change.
        #[test]
        fn behaves_as_a_map(
            ops in proptest::collection::vec(op(), 1..300),
            mask in prop_oneof![Just(u64::MAX), Just(0x3f_u64), Just(0x7_u64), Just(0_u64)],
        ) {
            let mut map = NodeMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4));
            map.hash_mask = mask;
            let mut model: BTreeMap<String, i32> = BTreeMap::new();
            let mut published: Vec<(NodeMap, BTreeMap<String, i32>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let path = format!("/n{k}");
                        let old = map.insert(node(&path, v)).map(|n| n.stat().version);
                        prop_assert_eq!(old, model.insert(path, v));
                    }
                    Op::Remove(k) => {
                        let path = format!("/n{k}");
                        let old = map.remove(&path).map(|n| n.stat().version);
                        prop_assert_eq!(old, model.remove(&path));
                    }
                    Op::Update(k) => {
                        let path = format!("/n{k}");
                        let done = map.update(&path, |n| n.edit(|f| f.version += 1));
                        prop_assert_eq!(done.is_some(), model.contains_key(&path));
                        if let Some(v) = model.get_mut(&path) {
                            *v += 1;
                        }
                    }
                    Op::Publish => published.push((map.clone(), model.clone())),
                }
                prop_assert_eq!(map.len(), model.len());
            }
            check_shape(&map.root, 0, true);
            for (path, v) in &model {
                prop_assert_eq!(version(&map, path), Some(*v));
            }
            prop_assert_eq!(map.iter().count(), model.len());
            for k in 0..=u8::MAX {
                let path = format!("/n{k}");
                prop_assert_eq!(version(&map, &path), model.get(&path).copied());
            }
            for (old, old_model) in &published {
                check_shape(&old.root, 0, true);
                let mut seen: Vec<(String, i32)> = old
                    .iter()
                    .map(|n| (n.path().to_string(), n.stat().version))
                    .collect();
                seen.sort();
                let want: Vec<(String, i32)> =
                    old_model.iter().map(|(p, v)| (p.clone(), *v)).collect();
                prop_assert_eq!(seen, want);
            }
            // Built in one pass from the same nodes, the map is the same trie: same order.
            let mut nodes: Vec<(u64, Znode)> =
                map.iter().map(|n| (map.hash(n.path()), n.clone())).collect();
            nodes.sort_by_key(|(hash, _)| trie_order(*hash));
            let built = NodeMap::from_trie_ordered(map.hasher.clone(), nodes).unwrap();
            check_shape(&built.root, 0, true);
            let order = |m: &NodeMap| m.iter().map(|n| n.path().to_string()).collect::<Vec<_>>();
            let (a, b) = (order(&map), order(&built));
            if mask == u64::MAX {
                prop_assert_eq!(a, b);
            } else {
                // Collision lists keep insertion order; compare as sets.
                let (mut a, mut b) = (a, b);
                a.sort();
                b.sort();
                prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn a_load_refuses_a_path_twice() {
        let hasher = ahash::RandomState::with_seeds(1, 2, 3, 4);
        let map = NodeMap::with_hasher(hasher.clone());
        let a = node("/a", 1);
        let hash = map.hash("/a");
        let err = NodeMap::from_trie_ordered(hasher, vec![(hash, a.clone()), (hash, a)])
            .err()
            .expect("refused");
        assert!(err.contains("/a appears twice"), "{err}");
    }

    #[test]
    fn a_write_copies_only_what_a_published_version_shares() {
        let mut map = NodeMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4));
        for i in 0..1000 {
            map.insert(node(&format!("/n{i}"), 0));
        }
        let published = map.clone();
        map.update("/n7", |n| n.edit(|f| f.version = 9));
        assert_eq!(version(&published, "/n7"), Some(0));
        assert_eq!(version(&map, "/n7"), Some(9));
        let before = map.get("/n7").unwrap().clone();
        // Now unshared: a second change edits the same allocation.
        drop(published);
        drop(before);
        let at = map.get("/n7").unwrap() as *const Znode;
        let first = map.get("/n7").unwrap().path().as_ptr();
        map.update("/n7", |n| n.edit(|f| f.version = 10));
        assert_eq!(map.get("/n7").unwrap().path().as_ptr(), first);
        assert_eq!(map.get("/n7").unwrap() as *const Znode, at);
    }
}
