//! What a big tree costs to rebuild and to change.
//!
//! `from_nodes/N` rebuilds a tree of N znodes (100-byte values, all children of one parent,
//! named as `rzk bench --workload create` names them) from the parts the snapshot decoder
//! hands in: the restart path without the decompression. `apply_create/N` and
//! `apply_set/N` apply one create / one setData to a tree of N nodes, publishing a version
//! (an O(1) clone) every 64 transactions as the core does per batch, so that the writes pay
//! the copying that structural sharing costs.
//!
//! N comes from `RZK_BENCH_NODES` (default 10_000 so `cargo test --benches` stays quick):
//!   RZK_BENCH_NODES=1000000 cargo bench -p rzk-tree --bench load -- --sample-size 10

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rzk_proto::{Acl, Stat, Txn, TxnBody};
use rzk_tree::{Applied, Tree};

const NODES_DEFAULT: usize = 10_000;
const DATA_BYTES: usize = 100;
const PUBLISH_EVERY: usize = 64;

type Parts = (Arc<str>, Stat, Option<Arc<[u8]>>, Arc<[Acl]>);

fn node_count() -> usize {
    std::env::var("RZK_BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(NODES_DEFAULT)
}

/// The i-th node `rzk bench --workload create` makes: 16 sessions, interleaved.
fn child_path(i: usize) -> String {
    format!("/bench/c/s{:05}-{:010}", i % 16, i / 16)
}

fn create(zxid: i64, path: String, parent_cversion: i32) -> Txn {
    Txn {
        zxid,
        time_ms: 1_700_000_000_000 + zxid,
        session_id: 0x11,
        cxid: 1,
        body: TxnBody::Create {
            path,
            data: Some(vec![b'x'; DATA_BYTES]),
            acl: Acl::open_unsafe(),
            ephemeral_owner: 0,
            parent_cversion,
            reply_stat: false,
        },
    }
}

/// A tree of `n` children of /bench/c, built by applying creates.
fn applied_tree(n: usize) -> Tree {
    let mut tree = Tree::new();
    let mut out = Applied::default();
    tree.apply(&create(1, "/bench".into(), 1), &mut out);
    tree.apply(&create(2, "/bench/c".into(), 1), &mut out);
    for i in 0..n {
        out.outcomes.clear();
        out.triggers.clear();
        tree.apply(&create(3 + i as i64, child_path(i), i as i32 + 1), &mut out);
    }
    tree
}

/// The tree's nodes as the snapshot decoder hands them to `from_nodes`, in the map's order
/// (which is the order a snapshot stores them in).
fn parts(tree: &Tree) -> Vec<Parts> {
    tree.paths()
        .map(|(p, n)| {
            (
                Arc::from(p),
                n.stat(),
                n.data().map(Arc::from),
                n.acl().clone(),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let n = node_count();
    let tree = applied_tree(n);
    let nodes = parts(&tree);
    let mut group = c.benchmark_group("tree");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(format!("from_nodes/{n}"), |b| {
        b.iter_batched(
            || nodes.clone(),
            |parts| Tree::from_nodes(1, parts).unwrap(),
            BatchSize::PerIteration,
        );
    });
    group.finish();

    let mut group = c.benchmark_group("tree");
    let mut live = tree.clone();
    let mut published = tree.clone();
    let mut zxid = live.last_zxid();
    let mut next = n;
    let mut out = Applied::default();
    group.bench_function(format!("apply_create/{n}"), |b| {
        b.iter(|| {
            zxid += 1;
            next += 1;
            out.outcomes.clear();
            out.triggers.clear();
            live.apply(&create(zxid, child_path(next), next as i32), &mut out);
            if next.is_multiple_of(PUBLISH_EVERY) {
                published = live.clone();
            }
        })
    });
    let mut key = 0usize;
    group.bench_function(format!("apply_set/{n}"), |b| {
        b.iter(|| {
            zxid += 1;
            // A stride coprime with n walks every key in an order the map scatters.
            key = (key + 7919) % n;
            out.outcomes.clear();
            out.triggers.clear();
            let txn = Txn {
                zxid,
                time_ms: zxid,
                session_id: 0x11,
                cxid: 1,
                body: TxnBody::SetData {
                    path: child_path(key),
                    data: Some(vec![b'y'; DATA_BYTES]),
                    version: 1,
                },
            };
            live.apply(&txn, &mut out);
            if (zxid as u64).is_multiple_of(PUBLISH_EVERY as u64) {
                published = live.clone();
            }
        })
    });
    group.finish();
    black_box(&published);
}

criterion_group!(benches, bench);
criterion_main!(benches);
