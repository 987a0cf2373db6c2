//! A znode in one allocation: its fixed fields, then its path and its value.
//!
//! A node used to be four allocations (the node, its value, the map's path key and the map's
//! slot); most of a 100-byte znode's cost was their headers, pointers and rounding. Here the
//! node is one thin pointer to `[count | fixed fields | length | path | value]`, which the node
//! map keys by the path inside it, so the path is stored once and the value needs no pointer.
//!
//! A node is immutable once shared: `Tree` changes one by `Znode::edit`, which edits in
//! place while the writer holds the only reference (within a batch) and copies otherwise (a
//! published version still holds the old one).

use std::sync::{Arc, LazyLock};

use rzk_proto::{Acl, Stat};
use triomphe::ThinArc;

use crate::{Children, NodeKind};

/// The Stat's own fields (dataLength and numChildren follow from the value and the children)
/// and what the tree keeps beside them.
#[derive(Clone)]
pub(crate) struct Fixed {
    pub(crate) czxid: i64,
    pub(crate) mzxid: i64,
    pub(crate) pzxid: i64,
    pub(crate) ctime: i64,
    pub(crate) mtime: i64,
    pub(crate) ephemeral_owner: i64,
    pub(crate) version: i32,
    /// Counts child creates only; clients see creates + deletes (`Znode::client_stat`).
    pub(crate) cversion: i32,
    pub(crate) aversion: i32,
    pub(crate) acl: Arc<[Acl]>,
    /// Boxed: nearly every node is a leaf, and an empty box is a null pointer where an empty
    /// set would take 24 bytes.
    pub(crate) children: Option<Box<Children>>,
    /// The bytes after the fixed fields are the path (this many), then the value; the top
    /// bit says the value is null (`data == None`, which differs from an empty one on the
    /// wire).
    path_len: u32,
}

/// In `Fixed::path_len`: the value is null.
const NULL_DATA: u32 = 1 << 31;

// 88 bytes: a node of a 100-byte value and a 50-byte path (what `rzk bench` creates) then
// fits jemalloc's 256-byte class; 8 bytes more and it took the 320-byte one. The tree's
// digest share is therefore not cached in the node (ZooKeeper caches it): the node is one
// allocation that a change reads anyway, so recomputing it costs a CRC of bytes in cache.
const _: () = assert!(size_of::<Fixed>() == 88);

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A scratch buffer grown past this by a large value is dropped, not kept per thread.
const SCRATCH_KEPT_BYTES: usize = 64 << 10;

fn path_len(path_bytes: usize, has_data: bool) -> u32 {
    let len = u32::try_from(path_bytes)
        .ok()
        .filter(|len| len & NULL_DATA == 0)
        .expect("a path is shorter than 2 GiB");
    if has_data {
        len
    } else {
        len | NULL_DATA
    }
}

static NO_CHILDREN: LazyLock<Children> = LazyLock::new(Children::default);

#[derive(Clone)]
pub struct Znode(ThinArc<Fixed, u8>);

impl std::fmt::Debug for Znode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Znode")
            .field("path", &self.path())
            .field("stat", &self.stat())
            .field("data_len", &self.data_bytes().len())
            .field("acl", &self.acl())
            .finish()
    }
}

impl Znode {
    /// The start of this node's allocation (for prefetching it).
    pub(crate) fn heap_address(&self) -> *const std::ffi::c_void {
        self.0.as_ptr()
    }

    /// A node with no children yet.
    pub(crate) fn new(path: &str, stat: &Stat, data: Option<&[u8]>, acl: Arc<[Acl]>) -> Znode {
        let fixed = Fixed {
            czxid: stat.czxid,
            mzxid: stat.mzxid,
            pzxid: stat.pzxid,
            ctime: stat.ctime,
            mtime: stat.mtime,
            ephemeral_owner: stat.ephemeral_owner,
            version: stat.version,
            cversion: stat.cversion,
            aversion: stat.aversion,
            acl,
            children: None,
            path_len: path_len(path.len(), data.is_some()),
        };
        Znode::assemble(fixed, path.as_bytes(), data.unwrap_or(&[]))
    }

    fn assemble(fixed: Fixed, path: &[u8], data: &[u8]) -> Znode {
        if data.is_empty() {
            return Znode(ThinArc::from_header_and_slice(fixed, path));
        }
        // triomphe copies one slice with a memcpy but an iterator byte by byte (a tenth of a
        // restart's CPU), so path and value are joined in a scratch buffer first.
        SCRATCH.with_borrow_mut(|joined| {
            joined.clear();
            joined.extend_from_slice(path);
            joined.extend_from_slice(data);
            let node = Znode(ThinArc::from_header_and_slice(fixed, joined));
            if joined.capacity() > SCRATCH_KEPT_BYTES {
                *joined = Vec::new();
            }
            node
        })
    }

    pub(crate) fn fixed(&self) -> &Fixed {
        &self.0.header.header
    }

    fn path_end(&self) -> usize {
        (self.fixed().path_len & !NULL_DATA) as usize
    }

    pub fn path(&self) -> &str {
        let path = &self.0.slice[..self.path_end()];
        // Only `Znode::new` sets these bytes, from a &str.
        std::str::from_utf8(path).expect("a node's path is the bytes of a str")
    }

    /// The path's bytes without the UTF-8 check: the node map compares keys with these.
    pub(crate) fn path_bytes(&self) -> &[u8] {
        &self.0.slice[..self.path_end()]
    }

    pub fn data(&self) -> Option<&[u8]> {
        (self.fixed().path_len & NULL_DATA == 0).then(|| self.data_bytes())
    }

    pub fn data_bytes(&self) -> &[u8] {
        &self.0.slice[self.path_end()..]
    }

    pub fn acl(&self) -> &Arc<[Acl]> {
        &self.fixed().acl
    }

    pub fn children(&self) -> &Children {
        self.fixed().children.as_deref().unwrap_or(&NO_CHILDREN)
    }

    pub fn has_children(&self) -> bool {
        self.fixed()
            .children
            .as_ref()
            .is_some_and(|c| !c.is_empty())
    }

    pub fn child_count(&self) -> usize {
        self.fixed().children.as_ref().map_or(0, |c| c.len())
    }

    /// The Stat as stored (cversion counting child creates only).
    pub fn stat(&self) -> Stat {
        let f = self.fixed();
        Stat {
            czxid: f.czxid,
            mzxid: f.mzxid,
            ctime: f.ctime,
            mtime: f.mtime,
            version: f.version,
            cversion: f.cversion,
            aversion: f.aversion,
            ephemeral_owner: f.ephemeral_owner,
            data_length: self.data_bytes().len() as i32,
            num_children: self.child_count() as i32,
            pzxid: f.pzxid,
        }
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::of_owner(self.fixed().ephemeral_owner)
    }

    /// The Stat as clients see it (DataNode.copyStat): the stored cversion counts child
    /// creates only, and clients get creates + deletes (`2 × creates − children`); containers
    /// and TTL nodes report ephemeralOwner 0.
    pub fn client_stat(&self) -> Stat {
        let mut stat = self.stat();
        stat.cversion = stat.cversion * 2 - stat.num_children;
        if !matches!(self.kind(), NodeKind::Ephemeral { .. }) {
            stat.ephemeral_owner = 0;
        }
        stat
    }

    /// This node's share of the tree digest (`node_digest`).
    pub(crate) fn digest(&self) -> u32 {
        crate::node_digest(self)
    }

    /// Changes the fixed fields: in place when this is the only reference, else on a copy (a
    /// published version keeps the old node).
    pub(crate) fn edit<R>(&mut self, edit: impl FnOnce(&mut Fixed) -> R) -> R {
        if ThinArc::strong_count(&self.0) != 1 {
            let copy = Znode::assemble(self.fixed().clone(), self.path_bytes(), self.data_bytes());
            *self = copy;
        }
        self.0.with_arc_mut(|arc| {
            let inner = triomphe::Arc::get_mut(arc).expect("the only reference, or a fresh copy");
            edit(inner.header_mut())
        })
    }

    /// Replaces the value: a new allocation, since the node's size changes with it.
    pub(crate) fn set_data(&mut self, data: Option<&[u8]>) {
        let mut fixed = self.fixed().clone();
        fixed.path_len = path_len(self.path_end(), data.is_some());
        *self = Znode::assemble(fixed, self.path_bytes(), data.unwrap_or(&[]));
    }

    /// The size of this node's allocation as requested from the allocator: the count, the
    /// fixed fields, the length and the bytes (what a memory test attributes to the node).
    pub fn allocation_bytes(&self) -> usize {
        (2 * size_of::<usize>() + size_of::<Fixed>() + self.0.slice.len())
            .next_multiple_of(align_of::<Fixed>())
    }

    /// Whether two handles are the same allocation.
    pub fn ptr_eq(&self, other: &Znode) -> bool {
        std::ptr::eq(self.0.ptr(), other.0.ptr())
    }
}

/// An iterator with the length it is known to have (`Chain` does not say).
pub(crate) struct ExactLen<I>(pub(crate) I, pub(crate) usize);

impl<I: Iterator> Iterator for ExactLen<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.0.next()?;
        self.1 -= 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.1, Some(self.1))
    }
}

impl<I: Iterator> ExactSizeIterator for ExactLen<I> {}
