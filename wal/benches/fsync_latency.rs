//! The floor under every durable write: this disk's fdatasync latency, measured the two ways
//! a log can use it, so BENCHMARKS.md can set `wal_append` beside it.
//!   overwrite: 4 KiB pwrite + fdatasync, advancing through a zero-filled preallocated file
//!              (what rzk's segments do: no file-size metadata to commit);
//!   append:    4 KiB write at the end of a growing file + fdatasync (the size changes every
//!              time, so the journal commits metadata too).
//! Both record the write + fdatasync pair and the fdatasync alone, in hdrhistogram.
//!
//! Run: `cargo bench -p rzk-wal --bench fsync_latency` (RZK_FSYNC_SAMPLES=n, default 5000
//! per case; RZK_BENCH_DIR=dir, default the workspace's target/ so it is the disk the repo,
//! and a default dataDir, live on). `cargo test --benches` or RZK_BENCH_QUICK=1 takes 50.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

const BLOCK_BYTES: usize = 4096;
const PREALLOC_BYTES: u64 = 64 * 1024 * 1024;
const SAMPLES_DEFAULT: usize = 5000;
const SAMPLES_QUICK: usize = 50;
const _: () = assert!(SAMPLES_DEFAULT as u64 * BLOCK_BYTES as u64 <= PREALLOC_BYTES);

/// The directory benchmarks write into: RZK_BENCH_DIR, else the workspace's target/.
fn bench_root() -> PathBuf {
    let root = std::env::var_os("RZK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&root).expect("create the bench directory");
    root.canonicalize().expect("canonical bench directory")
}

/// "mount point (fstype, device)" of the filesystem holding `path`, from /proc/self/mounts.
fn filesystem_of(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} ({}, {})", f[1], f[2], f[0])))
        })
        .max()
        .map_or_else(|| "unknown".to_owned(), |(_, s)| s)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_nanos() as u64);
}

fn print(name: &str, h: &Histogram<u64>) {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<34} n={:<6} p50={:>8.1}us p90={:>8.1}us p99={:>8.1}us p99.9={:>8.1}us max={:>8.1}us mean={:>8.1}us",
        h.len(),
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0,
        h.mean() / 1000.0
    );
}

fn preallocated(path: &Path) -> File {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..PREALLOC_BYTES / zeros.len() as u64 {
        file.write_all(&zeros).unwrap();
    }
    file.sync_all().unwrap();
    file
}

/// Times `samples` rounds of a 4 KiB write at `offset(i)` followed by fdatasync.
fn measure(
    file: &File,
    samples: usize,
    offset: impl Fn(usize) -> u64,
) -> (Histogram<u64>, Histogram<u64>) {
    let block = vec![0xa5u8; BLOCK_BYTES];
    let (mut pair, mut sync_only) = (histogram(), histogram());
    for i in 0..samples {
        let start = Instant::now();
        file.write_all_at(&block, offset(i)).unwrap();
        let written = Instant::now();
        file.sync_data().unwrap();
        let done = Instant::now();
        record(&mut pair, done - start);
        record(&mut sync_only, done - written);
    }
    (pair, sync_only)
}

fn main() {
    let quick = std::env::var("RZK_BENCH_QUICK").is_ok_and(|v| v == "1")
        || !std::env::args().any(|a| a == "--bench");
    let samples = match std::env::var("RZK_FSYNC_SAMPLES") {
        Ok(n) => n.parse().expect("RZK_FSYNC_SAMPLES is a count"),
        Err(_) if quick => SAMPLES_QUICK,
        Err(_) => SAMPLES_DEFAULT,
    };
    assert!(
        samples as u64 * BLOCK_BYTES as u64 <= PREALLOC_BYTES,
        "samples fit the preallocation"
    );
    let root = bench_root();
    let dir = root.join(format!("rzk-fsync-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "fsync_latency: kernel {}, dir {} on {}, {samples} samples per case",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        dir.display(),
        filesystem_of(&dir),
    );

    let file = preallocated(&dir.join("prealloc"));
    let (pair, sync_only) = measure(&file, samples, |i| (i * BLOCK_BYTES) as u64);
    print("overwrite_prealloc write+fdatasync", &pair);
    print("overwrite_prealloc fdatasync", &sync_only);
    drop(file);

    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("growing"))
        .unwrap();
    file.sync_all().unwrap();
    let (pair, sync_only) = measure(&file, samples, |i| (i * BLOCK_BYTES) as u64);
    print("append_growing write+fdatasync", &pair);
    print("append_growing fdatasync", &sync_only);
    drop(file);

    std::fs::remove_dir_all(&dir).unwrap();
}
