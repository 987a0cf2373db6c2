//! `Tree::apply` of one transaction on a tree of 100,000 znodes (100 groups of 1000, 100 bytes
//! of data each): create, setData, delete, and a multi of 10 ops (4 creates, 4 setData,
//! 2 deletes). Each runs two ways:
//!   apply/<op>:       the tree is not shared, so apply updates its path in place;
//!   clone_apply/<op>: a clone of the tree is kept before each txn, so the apply copies
//!                     the nodes on its path (hash-map chunks, the parent znode and its
//!                     children B-tree node), and dropping the version frees them again.
//! The difference between the two is what a kept version costs. The core used to keep one
//! per txn; since it seals once per batch (pipeline/src/roles.rs `seal_batch`), a batch pays
//! it once, and clone_apply is the cost of a batch of one.
//!
//! The tree keeps its size: nodes a create adds are deleted again, and nodes a delete removes
//! are created first, in untimed chunks between the timed ones.
//!
//! Run: `cargo bench -p rzk-tree --bench apply`. `cargo test --benches` runs each case once
//! on a tree of 1000 nodes.

// A timing harness, not the core: it reads the clock and may use threads and files.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rzk_proto::{Txn, TxnBody};
use rzk_tree::{Applied, OpOutcome, Tree};

mod fixtures;
use fixtures::*;

/// Ops (a multi counts 10) timed between two untimed set-up/clean-up steps. Counted in ops
/// so a chunk's txns fit in cache whatever the op: 256 multis (about 700 KB of paths and
/// data) did not, and applying them measured 2.3x slower than 26 at a time, while the core
/// applies each txn just after prep built it.
const CHUNK_OP_COUNT: u64 = 256;
const MULTI_OP_COUNT: u64 = 10;

struct Rig {
    tree: Tree,
    next_zxid: i64,
    node_count: usize,
    /// Numbers the extra nodes, so every create names a node that does not exist.
    next_extra: u64,
    /// Counts setData ops, to pick the next node to set.
    next_set: u64,
}

impl Rig {
    fn new(node_count: usize) -> Rig {
        let (tree, next_zxid) = build(node_count);
        Rig {
            tree,
            next_zxid,
            node_count,
            next_extra: 0,
            next_set: 0,
        }
    }

    fn txn(&mut self, body: TxnBody) -> Txn {
        self.next_zxid += 1;
        txn(self.next_zxid - 1, body)
    }

    /// Untimed: applies and checks nothing went wrong.
    fn apply(&mut self, body: TxnBody) {
        let txn = self.txn(body);
        apply_checked(&mut self.tree, &txn);
    }
}

/// One op kind: what to set up before a timed chunk, the timed txns, and the clean-up after.
/// `k` is the chunk's first extra-node number, `i` a txn's index within the chunk.
#[derive(Clone, Copy)]
enum Op {
    Create,
    SetData,
    Delete,
    Multi10,
}

impl Op {
    const ALL: [Op; 4] = [Op::Create, Op::SetData, Op::Delete, Op::Multi10];

    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::SetData => "setData",
            Op::Delete => "delete",
            Op::Multi10 => "multi10",
        }
    }

    /// Extra nodes each txn creates and deletes; the set-up creates the deleted ones first,
    /// the clean-up deletes the created ones.
    fn extra_counts(self) -> (u64, u64) {
        match self {
            Op::Create => (1, 0),
            Op::SetData => (0, 0),
            Op::Delete => (0, 1),
            Op::Multi10 => (4, 2),
        }
    }

    fn chunk_txn_count(self) -> u64 {
        match self {
            Op::Multi10 => CHUNK_OP_COUNT / MULTI_OP_COUNT,
            Op::Create | Op::SetData | Op::Delete => CHUNK_OP_COUNT,
        }
    }

    fn extras_per_txn(self) -> u64 {
        let (creates, deletes) = self.extra_counts();
        creates + deletes
    }

    /// The extra nodes txn `i` of the chunk at `k` creates, then those it deletes.
    fn extras(self, rig: &Rig, k: u64, i: u64) -> (Vec<String>, Vec<String>) {
        let (creates, deletes) = self.extra_counts();
        let first = k + i * self.extras_per_txn();
        let path = |e| extra_path(rig.node_count, first + e);
        (
            (0..creates).map(path).collect(),
            (creates..creates + deletes).map(path).collect(),
        )
    }

    fn timed(self, rig: &mut Rig, k: u64, i: u64) -> TxnBody {
        let (created, deleted) = self.extras(rig, k, i);
        let set_count = match self {
            Op::SetData => 1,
            Op::Multi10 => 4,
            Op::Create | Op::Delete => 0,
        };
        let mut ops: Vec<TxnBody> = created.into_iter().map(create).collect();
        for _ in 0..set_count {
            // Stride through the nodes so successive setData txns do not share a warm path.
            let index = (rig.next_set as usize).wrapping_mul(7919) % rig.node_count;
            rig.next_set += 1;
            ops.push(set_data(node_path(rig.node_count, index), 1));
        }
        ops.extend(deleted.into_iter().map(|path| TxnBody::Delete { path }));
        match self {
            Op::Multi10 => {
                assert_eq!(ops.len() as u64, MULTI_OP_COUNT);
                TxnBody::Multi(ops)
            }
            _ => {
                assert_eq!(ops.len(), 1);
                ops.pop().expect("one op")
            }
        }
    }
}

/// Runs `iters` timed txns of `op` in chunks; `keep_clone` mimics roles.rs's pending versions.
fn run(rig: &mut Rig, op: Op, keep_clone: bool, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let count = op.chunk_txn_count().min(iters - done);
        let k = rig.next_extra;
        rig.next_extra += count * op.extras_per_txn();
        for i in 0..count {
            for path in op.extras(rig, k, i).1 {
                rig.apply(create(path));
            }
        }
        let txns: Vec<Txn> = (0..count)
            .map(|i| {
                let body = op.timed(rig, k, i);
                rig.txn(body)
            })
            .collect();
        let mut kept: Option<Tree> = None;
        let mut failed = false;
        let start = Instant::now();
        for txn in &txns {
            let mut applied = Applied::default();
            if keep_clone {
                // The previous version goes (as a released one does) and this one stays
                // shared while the txn applies.
                kept = Some(rig.tree.clone());
            }
            rig.tree.apply(txn, &mut applied);
            failed |= applied
                .outcomes
                .iter()
                .any(|o| matches!(o, OpOutcome::Error(_)));
            black_box(&applied);
        }
        drop(kept);
        total += start.elapsed();
        assert!(!failed, "a timed {} txn failed", op.name());
        for i in 0..count {
            for path in op.extras(rig, k, i).0 {
                rig.apply(TxnBody::Delete { path });
            }
        }
        done += count;
    }
    total
}

fn bench_apply(c: &mut Criterion) {
    let node_count = if quick() {
        NODE_COUNT_QUICK
    } else {
        NODE_COUNT_REAL
    };
    let mut rig = Rig::new(node_count);
    let nodes_before = rig.tree.node_count();
    for (group_name, keep_clone) in [("apply", false), ("clone_apply", true)] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(1));
        for op in Op::ALL {
            group.bench_function(op.name(), |b| {
                b.iter_custom(|iters| run(&mut rig, op, keep_clone, iters))
            });
            assert_eq!(rig.tree.node_count(), nodes_before, "{}", op.name());
        }
        group.finish();
    }
}

criterion_group!(benches, bench_apply);
criterion_main!(benches);
