//! Snapshot encode / decode / write of a tree of N znodes with 100 bytes of data each.
//! N comes from `RZK_BENCH_NODES` (default 10_000, so `cargo test --benches` stays quick);
//! the real figure is 1_000_000:
//!   RZK_BENCH_NODES=1000000 cargo bench -p rzk-snapshot -- --sample-size 10
//! `tree_from_nodes` times `Tree::from_nodes` alone on the same (already built) nodes, to
//! tell the tree's rebuild cost apart from the snapshot parsing in `decode`; `write_fsync`
//! is `write` to the system temp dir, fsync and rename included.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rzk_proto::{Acl, Stat};
use rzk_snapshot::SessionRecord;
use rzk_tree::Tree;

const NODES_DEFAULT: usize = 10_000;
const DATA_BYTES: usize = 100;
const CHILDREN_PER_GROUP: usize = 1000;

type NodeParts = (String, Stat, Option<Vec<u8>>, Vec<Acl>);

fn node_count() -> usize {
    std::env::var("RZK_BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(NODES_DEFAULT)
}

fn stat(zxid: i64, data_length: i32, num_children: i32) -> Stat {
    Stat {
        czxid: zxid,
        mzxid: zxid + 7,
        ctime: 1_700_000_000_000 + zxid,
        mtime: 1_700_000_000_000 + zxid + 7,
        version: 1,
        cversion: num_children,
        aversion: 0,
        ephemeral_owner: 0,
        data_length,
        num_children,
        pzxid: zxid,
    }
}

/// Service-registry-like data: JSON with a random token, 100 bytes.
fn data(i: usize, rng: &mut u64) -> Vec<u8> {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let mut d = format!(
        "{{\"id\":{i},\"host\":\"10.{}.{}.{}\",\"port\":2181,\"token\":\"{:016x}{:016x}\"}}",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff,
        *rng,
        rng.rotate_left(29)
    )
    .into_bytes();
    d.resize(DATA_BYTES, b' ');
    d
}

/// "/", the /zookeeper system nodes, /bench, /bench/gK groups of 1000 and the leaves.
fn nodes(n: usize) -> Vec<NodeParts> {
    let open = Acl::open_unsafe();
    let groups = n.div_ceil(CHILDREN_PER_GROUP);
    let mut out: Vec<NodeParts> = vec![
        ("/".into(), stat(0, 0, 2), Some(vec![]), open.clone()),
        (
            "/zookeeper".into(),
            stat(0, 0, 2),
            Some(vec![]),
            open.clone(),
        ),
        (
            "/zookeeper/quota".into(),
            stat(0, 0, 0),
            Some(vec![]),
            open.clone(),
        ),
        (
            "/zookeeper/config".into(),
            stat(0, 0, 0),
            Some(vec![]),
            Acl::read_unsafe(),
        ),
        (
            "/bench".into(),
            stat(1, 0, groups as i32),
            None,
            open.clone(),
        ),
    ];
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for g in 0..groups {
        let children = CHILDREN_PER_GROUP.min(n - g * CHILDREN_PER_GROUP);
        out.push((
            format!("/bench/g{g}"),
            stat(2 + g as i64, 0, children as i32),
            None,
            open.clone(),
        ));
        for c in 0..children {
            let i = g * CHILDREN_PER_GROUP + c;
            let zxid = 0x1_0000_0000 + i as i64;
            out.push((
                format!("/bench/g{g}/n{i:07}"),
                stat(zxid, DATA_BYTES as i32, 0),
                Some(data(i, &mut rng)),
                open.clone(),
            ));
        }
    }
    out
}

fn sessions() -> Vec<SessionRecord> {
    (0..1000)
        .map(|i| SessionRecord {
            id: 0x0100_0000_0000_0000 + i,
            timeout_ms: 30_000,
            passwd: [i as u8; 16],
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let n = node_count();
    let parts = nodes(n);
    let tree = Tree::from_nodes(0x1_0000_0000 + n as i64, parts.clone()).unwrap();
    let sessions = sessions();
    let bytes = rzk_snapshot::encode(&tree, &sessions);
    eprintln!(
        "snapshot of {} nodes, {} sessions: {} bytes ({:.1} bytes/node)",
        tree.node_count(),
        sessions.len(),
        bytes.len(),
        bytes.len() as f64 / tree.node_count() as f64
    );

    let mut group = c.benchmark_group("snapshot");
    group.throughput(Throughput::Elements(tree.node_count() as u64));
    if n >= 100_000 {
        group.measurement_time(Duration::from_secs(20));
    }
    group.bench_function(format!("encode/{n}"), |b| {
        b.iter(|| rzk_snapshot::encode(black_box(&tree), &sessions))
    });
    // Dropping a big tree costs about a third of building it; that is the tree's cost, not
    // the decoder's, so it is left out here (as `tree_from_nodes` leaves it out too).
    group.bench_function(format!("decode/{n}"), |b| {
        b.iter_with_large_drop(|| rzk_snapshot::decode(black_box(&bytes)).unwrap())
    });
    group.bench_function(format!("tree_from_nodes/{n}"), |b| {
        b.iter_batched(
            || parts.clone(),
            |parts| Tree::from_nodes(1, parts).unwrap(),
            BatchSize::PerIteration,
        )
    });
    let dir = std::env::temp_dir().join(format!("rzk-snapshot-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    group.bench_function(format!("write_fsync/{n}"), |b| {
        b.iter(|| rzk_snapshot::write(&dir, &tree, &sessions).unwrap())
    });
    group.finish();
    std::fs::remove_dir_all(&dir).unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
