//! A node's children: a persistent B+tree of names whose leaves are filled up when names come
//! in ascending order (how ZooKeeper's sequential nodes arrive).
//!
//! Why not imbl's `OrdSet` (which this replaced): its B-tree splits a full leaf at the median
//! even when the new name goes at the end, so a parent whose children are created in order
//! (`lock-0000000001`, `-0000000002`, ...) keeps every leaf half empty: about 61 B per child
//! for a 24-byte name. Here a name appended past the last leaf starts a new leaf and leaves
//! the full one full (about 26 B per child); names inserted in the middle split at the median
//! as usual.
//!
//! Persistence: a clone shares every node; a change copies the nodes on its path that a
//! published version still shares (`Arc::make_mut`) and edits the others in place.
//! Removals never rebalance: an emptied leaf or branch is dropped, a half-empty one stays.

use std::sync::Arc;

use crate::ChildName;

/// Names per leaf, and children per branch, at most. The unit tests use a small one, so
/// that a few hundred names make a deep tree and every kind of split happens.
#[cfg(not(test))]
const FANOUT: usize = 64;
#[cfg(test)]
const FANOUT: usize = 4;

#[derive(Clone, Default)]
pub struct Children {
    root: Option<Node>,
    len: usize,
}

#[derive(Clone)]
enum Node {
    Leaf(Arc<Vec<ChildName>>),
    Branch(Arc<Branch>),
}

/// `keys[i]` separates `nodes[i]` (all names below it) from `nodes[i + 1]` (all at or above).
#[derive(Clone)]
struct Branch {
    keys: Vec<ChildName>,
    nodes: Vec<Node>,
}

/// What an insert that overflowed a node hands up: the separator and the new right sibling.
type Split = Option<(ChildName, Node)>;

impl Children {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, name: &str) -> bool {
        let mut node = match &self.root {
            Some(root) => root,
            None => return false,
        };
        loop {
            match node {
                Node::Leaf(names) => {
                    return names.binary_search_by(|n| n.as_str().cmp(name)).is_ok();
                }
                Node::Branch(b) => node = &b.nodes[b.keys.partition_point(|k| k.as_str() <= name)],
            }
        }
    }

    /// In name order.
    pub fn iter(&self) -> Iter<'_> {
        let mut iter = Iter {
            stack: Vec::new(),
            leaf: [].iter(),
        };
        if let Some(root) = &self.root {
            iter.descend(root);
        }
        iter
    }

    /// Adds `name`; false if it was there.
    pub fn insert(&mut self, name: ChildName) -> bool {
        let Some(root) = &mut self.root else {
            self.root = Some(Node::Leaf(Arc::new(vec![name])));
            self.len = 1;
            return true;
        };
        let (added, split) = insert(root, name);
        if let Some((key, right)) = split {
            let left = self.root.take().expect("split a root that is there");
            self.root = Some(Node::Branch(Arc::new(Branch {
                keys: vec![key],
                nodes: vec![left, right],
            })));
        }
        self.len += usize::from(added);
        added
    }

    /// Drops `name`; false if it was not there.
    pub fn remove(&mut self, name: &str) -> bool {
        if !self.contains(name) {
            // A miss copies nothing.
            return false;
        }
        let root = self.root.as_mut().expect("contains found a root");
        let emptied = remove(root, name);
        self.len -= 1;
        if emptied {
            self.root = None;
        } else if let Some(Node::Branch(b)) = &self.root {
            if b.nodes.len() == 1 {
                self.root = Some(b.nodes[0].clone());
            }
        }
        true
    }

    /// Children from names in ascending order with no repeats, in full leaves (a load).
    pub fn from_sorted(names: Vec<ChildName>) -> Children {
        debug_assert!(names.windows(2).all(|w| w[0] < w[1]));
        let len = names.len();
        if len == 0 {
            return Children::default();
        }
        // Each level as (its first name, node).
        let mut level: Vec<(ChildName, Node)> = names
            .chunks(FANOUT)
            .map(|chunk| (chunk[0].clone(), Node::Leaf(Arc::new(chunk.to_vec()))))
            .collect();
        while level.len() > 1 {
            level = level
                .chunks(FANOUT)
                .map(|chunk| {
                    let branch = Branch {
                        keys: chunk[1..].iter().map(|(first, _)| first.clone()).collect(),
                        nodes: chunk.iter().map(|(_, node)| node.clone()).collect(),
                    };
                    (chunk[0].0.clone(), Node::Branch(Arc::new(branch)))
                })
                .collect();
        }
        let (_, root) = level.pop().expect("one node left");
        Children {
            root: Some(root),
            len,
        }
    }
}

fn insert(node: &mut Node, name: ChildName) -> (bool, Split) {
    match node {
        Node::Leaf(names) => {
            let Err(at) = names.binary_search(&name) else {
                return (false, None);
            };
            let names = Arc::make_mut(names);
            if names.len() < FANOUT {
                if names.len() == names.capacity() {
                    // Doubling, but never past a full leaf.
                    names.reserve_exact(names.len().clamp(1, FANOUT - names.len()));
                }
                names.insert(at, name);
                return (true, None);
            }
            if at == names.len() {
                // Past the last name: a new leaf, and this one stays full.
                return (true, Some((name.clone(), Node::Leaf(Arc::new(vec![name])))));
            }
            let mut right = names.split_off(FANOUT / 2);
            if at < FANOUT / 2 {
                names.insert(at, name);
            } else {
                right.insert(at - FANOUT / 2, name);
            }
            let key = right[0].clone();
            (true, Some((key, Node::Leaf(Arc::new(right)))))
        }
        Node::Branch(b) => {
            let at = b.keys.partition_point(|k| *k <= name);
            if let Node::Leaf(names) = &b.nodes[at] {
                if names.binary_search(&name).is_ok() {
                    // Already there: copy nothing on the way down.
                    return (false, None);
                }
            }
            let b = Arc::make_mut(b);
            let (added, split) = insert(&mut b.nodes[at], name);
            let Some((key, right)) = split else {
                return (added, None);
            };
            b.keys.insert(at, key);
            b.nodes.insert(at + 1, right);
            if b.nodes.len() <= FANOUT {
                return (added, None);
            }
            if at + 2 == b.nodes.len() {
                // The split was of the last child: the new one starts a branch of its own.
                let last = b.nodes.pop().expect("overfull");
                let key = b.keys.pop().expect("overfull");
                let right = Branch {
                    keys: Vec::new(),
                    nodes: vec![last],
                };
                return (added, Some((key, Node::Branch(Arc::new(right)))));
            }
            let half = b.nodes.len() / 2;
            let nodes = b.nodes.split_off(half);
            let mut keys = b.keys.split_off(half - 1);
            let key = keys.remove(0);
            b.nodes.shrink_to_fit();
            b.keys.shrink_to_fit();
            (
                added,
                Some((key, Node::Branch(Arc::new(Branch { keys, nodes })))),
            )
        }
    }
}

/// Removes `name`, which is there; true if `node` is left empty (its parent drops it).
fn remove(node: &mut Node, name: &str) -> bool {
    match node {
        Node::Leaf(names) => {
            let at = names
                .binary_search_by(|n| n.as_str().cmp(name))
                .expect("contains found it");
            let names = Arc::make_mut(names);
            names.remove(at);
            names.is_empty()
        }
        Node::Branch(b) => {
            let b = Arc::make_mut(b);
            let at = b.keys.partition_point(|k| k.as_str() <= name);
            if remove(&mut b.nodes[at], name) {
                b.nodes.remove(at);
                if !b.keys.is_empty() {
                    b.keys.remove(at.saturating_sub(1));
                }
            }
            b.nodes.is_empty()
        }
    }
}

impl PartialEq for Children {
    fn eq(&self, other: &Children) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for Children {}

impl std::fmt::Debug for Children {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.iter().map(|n| n.as_str()))
            .finish()
    }
}

pub struct Iter<'a> {
    stack: Vec<std::slice::Iter<'a, Node>>,
    leaf: std::slice::Iter<'a, ChildName>,
}

impl<'a> Iter<'a> {
    fn descend(&mut self, mut node: &'a Node) {
        loop {
            match node {
                Node::Leaf(names) => {
                    self.leaf = names.iter();
                    return;
                }
                Node::Branch(b) => {
                    let mut nodes = b.nodes.iter();
                    let first = nodes.next().expect("a branch has a node");
                    self.stack.push(nodes);
                    node = first;
                }
            }
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a ChildName;

    fn next(&mut self) -> Option<&'a ChildName> {
        loop {
            if let Some(name) = self.leaf.next() {
                return Some(name);
            }
            let next = loop {
                let top = self.stack.last_mut()?;
                match top.next() {
                    Some(node) => break node,
                    None => {
                        self.stack.pop();
                    }
                }
            };
            self.descend(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// The B+tree's rules; returns (names below, lowest, highest).
    fn check(node: &Node, lower: Option<&ChildName>, upper: Option<&ChildName>) -> usize {
        let within = |n: &ChildName| lower.is_none_or(|l| l <= n) && upper.is_none_or(|u| n < u);
        match node {
            Node::Leaf(names) => {
                assert!(!names.is_empty() && names.len() <= FANOUT);
                assert!(names.windows(2).all(|w| w[0] < w[1]));
                assert!(names.iter().all(within));
                names.len()
            }
            Node::Branch(b) => {
                assert!(!b.nodes.is_empty() && b.nodes.len() <= FANOUT);
                assert_eq!(b.keys.len() + 1, b.nodes.len());
                assert!(b.keys.windows(2).all(|w| w[0] < w[1]));
                assert!(b.keys.iter().all(within));
                (0..b.nodes.len())
                    .map(|i| {
                        let lo = if i == 0 { lower } else { Some(&b.keys[i - 1]) };
                        let hi = b.keys.get(i).or(upper);
                        check(&b.nodes[i], lo, hi)
                    })
                    .sum()
            }
        }
    }

    fn name(i: u16) -> ChildName {
        ChildName::from(format!("n-{i:05}").as_str())
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16),
        Remove(u16),
        Publish,
    }

    fn op(keys: u16) -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..keys).prop_map(Op::Insert),
            3 => (0..keys).prop_map(Op::Remove),
            1 => Just(Op::Publish),
        ]
    }

    fn run(ops: Vec<Op>, ascending: bool) -> Result<(), TestCaseError> {
        let mut set = Children::default();
        let mut model = BTreeSet::new();
        let mut published: Vec<(Children, BTreeSet<ChildName>)> = Vec::new();
        let mut next = 0u16;
        for op in ops {
            match op {
                Op::Insert(k) => {
                    let k = if ascending {
                        next += 1;
                        next
                    } else {
                        k
                    };
                    prop_assert_eq!(set.insert(name(k)), model.insert(name(k)));
                }
                Op::Remove(k) => {
                    prop_assert_eq!(set.remove(name(k).as_str()), model.remove(&name(k)));
                }
                Op::Publish => published.push((set.clone(), model.clone())),
            }
            prop_assert_eq!(set.len(), model.len());
        }
        if let Some(root) = &set.root {
            prop_assert_eq!(check(root, None, None), model.len());
        }
        prop_assert!(set.iter().eq(model.iter()));
        for k in 0..300 {
            prop_assert_eq!(set.contains(name(k).as_str()), model.contains(&name(k)));
        }
        prop_assert_eq!(
            &Children::from_sorted(model.iter().cloned().collect()),
            &set
        );
        for (old, old_model) in &published {
            prop_assert!(old.iter().eq(old_model.iter()));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn behaves_as_a_sorted_set(ops in proptest::collection::vec(op(300), 1..2000)) {
            run(ops, false)?;
        }

        #[test]
        fn behaves_as_a_sorted_set_under_appends(ops in proptest::collection::vec(op(300), 1..2000)) {
            run(ops, true)?;
        }
    }

    #[test]
    fn appended_names_fill_their_leaves() {
        let mut set = Children::default();
        for i in 0..10_000 {
            set.insert(name(i));
        }
        // Nodes per level, from the root down.
        let mut levels: Vec<usize> = Vec::new();
        let mut level = vec![set.root.as_ref().unwrap()];
        while !level.is_empty() {
            levels.push(level.len());
            level = level
                .iter()
                .flat_map(|node| match node {
                    Node::Leaf(_) => [].iter(),
                    Node::Branch(b) => b.nodes.iter(),
                })
                .collect();
        }
        // Every level as few nodes as its fanout allows: leaves and branches full.
        let mut want = vec![10_000usize.div_ceil(FANOUT)];
        while *want.last().unwrap() > 1 {
            want.push(want.last().unwrap().div_ceil(FANOUT));
        }
        want.reverse();
        assert_eq!(levels, want);
        check(set.root.as_ref().unwrap(), None, None);
    }
}
