//! Point reads from the published tree while a writer publishes new versions, with 1, 8 and
//! 32 reader threads: `read_during_writes/<readers>`, in reads per second over all readers.
//!
//! A read is what an event loop does for a getData that sets no watch (net/src/event_loop.rs
//! and pipeline/src/read.rs): `load_full` of the published `ArcSwap<Tree>`, look the path
//! up, check READ in its ACL, copy the data out and compute the client's Stat. The tree
//! holds 100,000 znodes (100 groups of 1000, 100 bytes each) and reads pick nodes at random.
//!
//! The writer does what the core did before it sealed once per batch (pipeline/src/roles.rs,
//! server/src/driver.rs): applies each txn to its working tree and keeps a clone of it per
//! txn, then publishes the batch's last version (the heavier case for readers' caches). Its txns cycle setData, create, setData, delete (the delete removes an
//! earlier create, so the tree keeps its size), in batches of WRITER_BATCH_TXN_COUNT with a
//! WRITER_PAUSE between batches, which is about the publish rate of a server under a
//! write-heavy load on this disk. It prints the rate it achieved beside each case.
//! `read_no_writer/1` is the same read with no writer, for reference.
//!
//! The machine these figures come from has 2 cores: with 8 or 32 readers (plus the writer)
//! the threads take turns on them, so the aggregate rate shows how reads scale past the
//! core count (contention on the published pointer and its reference count), not how they
//! would scale on a machine with 32 cores.
//!
//! Run: `cargo bench -p rzk-tree --bench read`. `cargo test --benches` runs each case once
//! (one read per thread) on a tree of 1000 nodes.

// A timing harness, not the core: it reads the clock and may use threads and files.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rzk_proto::{perms, TxnBody};
use rzk_tree::{acl, Tree};

mod fixtures;
use fixtures::*;

const READER_COUNTS: [usize; 3] = [1, 8, 32];
const WRITER_BATCH_TXN_COUNT: usize = 16;
const WRITER_PAUSE: Duration = Duration::from_micros(200);
/// Bounds the writer even if a case never ends (criterion runs each for seconds).
const WRITER_RUN_MAX: Duration = Duration::from_secs(600);

/// The core's side: a working tree, the zxid counter and the extra nodes in flight.
struct Writer {
    tree: Tree,
    node_count: usize,
    next_zxid: i64,
    created: u64,
    deleted: u64,
    rng: u64,
}

impl Writer {
    fn new(node_count: usize) -> Writer {
        let (tree, next_zxid) = build(node_count);
        Writer {
            tree,
            node_count,
            next_zxid,
            created: 0,
            deleted: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn apply(&mut self, body: TxnBody) {
        self.next_zxid += 1;
        apply_checked(&mut self.tree, &txn(self.next_zxid - 1, body));
    }

    /// The `seq`th txn of the cycle setData, create, setData, delete.
    fn next_body(&mut self, seq: u64) -> TxnBody {
        match seq % 4 {
            1 => {
                self.created += 1;
                create(extra_path(self.node_count, self.created - 1))
            }
            3 if self.deleted < self.created => {
                self.deleted += 1;
                TxnBody::Delete {
                    path: extra_path(self.node_count, self.deleted - 1),
                }
            }
            _ => {
                let i = (xorshift(&mut self.rng) % self.node_count as u64) as usize;
                TxnBody::SetData {
                    path: node_path(self.node_count, i),
                    data: Some(vec![b'y'; DATA_BYTES]),
                    version: 1,
                }
            }
        }
    }

    /// Applies and publishes batches until `stop`; returns (txns, publishes).
    fn run(&mut self, published: &ArcSwap<Tree>, stop: &AtomicBool) -> (u64, u64) {
        let started = Instant::now();
        let mut seq = 0;
        let mut publishes = 0;
        let mut pending: Vec<Tree> = Vec::with_capacity(WRITER_BATCH_TXN_COUNT);
        while !stop.load(Ordering::Relaxed) && started.elapsed() < WRITER_RUN_MAX {
            for _ in 0..WRITER_BATCH_TXN_COUNT {
                let body = self.next_body(seq);
                seq += 1;
                self.apply(body);
                pending.push(self.tree.clone());
            }
            let last = pending.pop().expect("a batch has txns");
            published.store(Arc::new(last));
            publishes += 1;
            pending.clear();
            std::thread::sleep(WRITER_PAUSE);
        }
        (seq, publishes)
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One getData as an event loop serves it; returns what the reply would carry.
fn read(published: &ArcSwap<Tree>, path: &str) -> (Option<Vec<u8>>, rzk_proto::Stat) {
    let tree = published.load_full();
    let node = tree
        .get(path)
        .expect("readers read only nodes the writer keeps");
    assert!(acl::allowed(node.acl(), perms::READ, &[]));
    (node.data().map(<[u8]>::to_vec), node.client_stat())
}

/// Wall time for `reader_count` threads to do `iters` reads each, started together.
fn read_on_threads(
    published: &ArcSwap<Tree>,
    paths: &[String],
    reader_count: usize,
    iters: u64,
) -> Duration {
    let barrier = Barrier::new(reader_count + 1);
    let mut start = None;
    // The scope joins every reader before it returns, so the time runs until the last ends.
    std::thread::scope(|s| {
        for r in 0..reader_count {
            let barrier = &barrier;
            s.spawn(move || {
                let mut rng = 0x2545_f491_4f6c_dd1d ^ (r as u64 + 1).wrapping_mul(0x9e37_79b9);
                barrier.wait();
                for _ in 0..iters {
                    let i = (xorshift(&mut rng) % paths.len() as u64) as usize;
                    black_box(read(published, &paths[i]));
                }
            });
        }
        barrier.wait();
        start = Some(Instant::now());
    });
    start.expect("set once the readers are released").elapsed()
}

fn bench_read(c: &mut Criterion) {
    let node_count = if quick() {
        NODE_COUNT_QUICK
    } else {
        NODE_COUNT_REAL
    };
    let mut writer = Writer::new(node_count);
    let published = ArcSwap::from_pointee(writer.tree.clone());
    let paths: Vec<String> = (0..node_count).map(|i| node_path(node_count, i)).collect();

    let mut group = c.benchmark_group("read_no_writer");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::from_parameter(1), |b| {
        b.iter_custom(|iters| read_on_threads(&published, &paths, 1, iters))
    });
    group.finish();

    let mut group = c.benchmark_group("read_during_writes");
    for reader_count in READER_COUNTS {
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        let txn_count = AtomicU64::new(0);
        let publish_count = AtomicU64::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let (txns, publishes) = writer.run(&published, &stop);
                txn_count.store(txns, Ordering::Relaxed);
                publish_count.store(publishes, Ordering::Relaxed);
            });
            group.throughput(Throughput::Elements(reader_count as u64));
            group.bench_function(BenchmarkId::from_parameter(reader_count), |b| {
                b.iter_custom(|iters| read_on_threads(&published, &paths, reader_count, iters))
            });
            stop.store(true, Ordering::Relaxed);
        });
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "read_during_writes/{reader_count}: the writer applied {:.0} txns/s and published {:.0} versions/s",
            txn_count.load(Ordering::Relaxed) as f64 / seconds,
            publish_count.load(Ordering::Relaxed) as f64 / seconds,
        );
    }
    group.finish();
}

criterion_group!(benches, bench_read);
criterion_main!(benches);
