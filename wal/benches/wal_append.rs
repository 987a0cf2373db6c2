//! `WalWriter::append` (one batch frame, one write, one sync) per backend and batch size:
//! 1, 16 and 256 setData txns of 100 data bytes each, on real files, with fsync on
//! (`wal_append/<backend>/<batch>`) and off (`wal_append_nosync/...`, the CPU and page-cache
//! cost alone). Criterion's throughput is txns per second; beside it each case prints an
//! hdrhistogram of single appends, to compare with `fsync_latency`.
//!
//! Last, an interleaved run (backends take turns, append by append) prints the same
//! histograms with disk noise spread evenly over the three; rank the backends by that.
//!
//! Segment rolls (zero-filling a new 64 MiB segment) are kept out of the timings: the rig
//! starts a fresh log before a batch would not fit, untimed, and primes its first segment.
//!
//! Run: `cargo bench -p rzk-wal --bench wal_append`. RZK_BENCH_DIR=dir picks the disk
//! (default: the workspace's target/, the filesystem the repo and a default dataDir are on).
//! `cargo test --benches` runs each case once; RZK_BENCH_QUICK=1 shortens a real run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hdrhistogram::Histogram;

use rzk_proto::{Txn, TxnBody};
use rzk_wal::backend::{probe_io_uring, Backend};
use rzk_wal::format::{encode_batch, SEGMENT_HEADER_BYTES};
use rzk_wal::{recover, FileStorage, SyncMode, WalWriter};

const BATCH_TXN_COUNTS: [usize; 3] = [1, 16, 256];
const DATA_BYTES: usize = 100;
/// ZooKeeper's default preAllocSize.
const SEGMENT_BYTES_REAL: u64 = 64 * 1024 * 1024;
/// The writer's minimum; keeps `cargo test --benches` from zero-filling 64 MiB per case.
const SEGMENT_BYTES_QUICK: u64 = 1024 * 1024;
/// Appends per backend and batch size in the interleaved comparison.
const INTERLEAVED_ROUNDS: usize = 3000;

fn bench_root() -> PathBuf {
    let root = std::env::var_os("RZK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&root).expect("create the bench directory");
    root.canonicalize().expect("canonical bench directory")
}

/// `cargo bench` passes `--bench`; `cargo test --benches` does not (criterion's test mode).
fn quick() -> bool {
    std::env::var("RZK_BENCH_QUICK").is_ok_and(|v| v == "1")
        || !std::env::args().any(|a| a == "--bench")
}

fn set_data(zxid: i64) -> Txn {
    Txn {
        zxid,
        time_ms: 1_700_000_000_000 + zxid,
        session_id: 0x0100_0000_0000_0001,
        cxid: zxid as i32,
        body: TxnBody::SetData {
            path: format!("/bench/node{:04}", zxid % 1000),
            data: Some(vec![b'x'; DATA_BYTES]),
            version: 1,
        },
    }
}

/// One log on one backend; starts over (untimed) before a segment would have to roll.
struct Rig {
    dir: PathBuf,
    backend: Backend,
    sync: SyncMode,
    segment_bytes: u64,
    writer: Option<WalWriter>,
    next_zxid: i64,
    offset: u64,
    frame: Vec<u8>,
}

impl Rig {
    fn new(backend: Backend, sync: SyncMode, segment_bytes: u64) -> Rig {
        let dir = bench_root().join(format!("rzk-wal-append-{backend}-{}", std::process::id()));
        let mut rig = Rig {
            dir,
            backend,
            sync,
            segment_bytes,
            writer: None,
            next_zxid: 1,
            offset: 0,
            frame: Vec::new(),
        };
        rig.restart();
        rig
    }

    fn restart(&mut self) {
        self.writer = None;
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir).unwrap();
        let (storage, used) =
            FileStorage::with_backend(&self.dir, self.sync, self.backend).unwrap();
        if used != self.backend {
            assert!(self.backend == Backend::Uring && probe_io_uring().is_err());
            eprintln!(
                "wal_append: io_uring unavailable, the io_uring case measures the pwrite fallback"
            );
        }
        let recovered = recover(&storage, 0).unwrap();
        let mut writer =
            WalWriter::open(Box::new(storage), &recovered, self.segment_bytes).unwrap();
        // The first append creates the segment; keep that out of the measurement.
        writer.append(&[set_data(1)]).unwrap();
        self.frame.clear();
        encode_batch(&[set_data(1)], &mut self.frame);
        self.offset = SEGMENT_HEADER_BYTES as u64 + self.frame.len() as u64;
        self.next_zxid = 2;
        self.writer = Some(writer);
    }

    fn renumber(&self, batch: &mut [Txn]) {
        for (i, txn) in batch.iter_mut().enumerate() {
            txn.zxid = self.next_zxid + i as i64;
        }
    }

    /// Appends `batch` renumbered to continue the log; returns the time `append` took.
    fn append(&mut self, batch: &mut [Txn]) -> Duration {
        self.renumber(batch);
        self.frame.clear();
        encode_batch(batch, &mut self.frame);
        let frame_bytes = self.frame.len() as u64;
        if self.offset + frame_bytes > self.segment_bytes {
            self.restart();
            self.renumber(batch);
        }
        let writer = self.writer.as_mut().expect("restart opens a writer");
        let start = Instant::now();
        writer.append(batch).unwrap();
        let took = start.elapsed();
        self.offset += frame_bytes;
        self.next_zxid += batch.len() as i64;
        took
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.writer = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn print_histogram(id: &str, batch_txn_count: usize, h: &Histogram<u64>) {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{id:<28} appends={:<7} per append p50={:>8.1}us p99={:>8.1}us p99.9={:>8.1}us max={:>8.1}us | per txn p50={:>7.2}us",
        h.len(),
        us(0.5),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0,
        us(0.5) / batch_txn_count as f64,
    );
}

fn run_group(c: &mut Criterion, group_name: &str, sync: SyncMode) {
    let quick = quick();
    let segment_bytes = if quick {
        SEGMENT_BYTES_QUICK
    } else {
        SEGMENT_BYTES_REAL
    };
    let mut group = c.benchmark_group(group_name);
    if quick {
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(500));
    } else {
        group
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(6));
    }
    for backend in Backend::ALL {
        let mut rig = Rig::new(backend, sync, segment_bytes);
        for batch_txn_count in BATCH_TXN_COUNTS {
            let mut batch: Vec<Txn> = (0..batch_txn_count as i64).map(set_data).collect();
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
            group.throughput(Throughput::Elements(batch_txn_count as u64));
            group.bench_with_input(
                BenchmarkId::new(backend.name(), batch_txn_count),
                &batch_txn_count,
                |b, _| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let took = rig.append(&mut batch);
                            histogram.saturating_record(took.as_nanos() as u64);
                            total += took;
                        }
                        total
                    })
                },
            );
            let id = format!("{group_name}/{backend}/{batch_txn_count}");
            print_histogram(&id, batch_txn_count, &histogram);
        }
    }
    group.finish();
}

fn wal_append(c: &mut Criterion) {
    println!(
        "wal_append: kernel {}, dir {}, io_uring {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        bench_root().display(),
        match probe_io_uring() {
            Ok(()) => "available".to_owned(),
            Err(e) => format!("unavailable ({e}): the io_uring rows are the pwrite fallback"),
        }
    );
    run_group(c, "wal_append", SyncMode::Data);
    run_group(c, "wal_append_nosync", SyncMode::None);
    interleaved();
}

/// The criterion groups run one backend after another, so a noisy neighbour on the disk
/// (another process's fsyncs) can land on one backend only. Here the three backends take
/// turns append by append, so each sees the same disk; the ranking to trust comes from this.
fn interleaved() {
    let quick = quick();
    let segment_bytes = if quick {
        SEGMENT_BYTES_QUICK
    } else {
        SEGMENT_BYTES_REAL
    };
    let rounds = if quick { 3 } else { INTERLEAVED_ROUNDS };
    println!("interleaved: {rounds} rounds, each one append per backend in turn (fsync on)");
    let mut rigs: Vec<Rig> = Backend::ALL
        .into_iter()
        .map(|backend| Rig::new(backend, SyncMode::Data, segment_bytes))
        .collect();
    for batch_txn_count in BATCH_TXN_COUNTS {
        let mut batch: Vec<Txn> = (0..batch_txn_count as i64).map(set_data).collect();
        let mut histograms: Vec<Histogram<u64>> = rigs
            .iter()
            .map(|_| Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap())
            .collect();
        for round in 0..rounds {
            // Rotate who goes first, so no backend always follows the same one.
            for turn in 0..rigs.len() {
                let index = (round + turn) % rigs.len();
                let took = rigs[index].append(&mut batch);
                histograms[index].saturating_record(took.as_nanos() as u64);
            }
        }
        for (rig, histogram) in rigs.iter().zip(&histograms) {
            let id = format!("interleaved/{}/{batch_txn_count}", rig.backend);
            print_histogram(&id, batch_txn_count, histogram);
        }
    }
}

criterion_group!(benches, wal_append);
criterion_main!(benches);
