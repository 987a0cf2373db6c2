//! The server's metrics: distributions of where a request's time goes (each pipeline stage,
//! the log's write and sync, batch sizes, snapshots, latency by opcode) and the two forms
//! operators read them in: Prometheus text under ZooKeeper's names plus rzk's own histograms,
//! and the `zk_avg_…`/`zk_min_…` lines ZooKeeper's `mntr` prints.
//!
//! Recording is a few relaxed atomic adds, safe from any thread and never blocking, so the
//! pipeline can record every request. Never here: serving HTTP, reading server state (the
//! caller passes mntr's figures in), or anything that could stall a recording thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};
use rzk_proto::OpCode;

/// The stages a request passes through, in order. Standalone has no quorum wait: its
/// "quorum" is the hop from the log thread back to the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Received by an event loop, waiting for the core thread.
    Queue,
    /// On the core thread: checked, given a zxid, applied to the working tree, batched.
    Prep,
    /// Handed to the log until its batch is written and synced (includes waiting for the
    /// sync before it: that is where group commit batches).
    Log,
    /// Durable locally until the core learns it is committed.
    Quorum,
    /// Committed until the reply is handed to its event loop (the tree is published first).
    Apply,
    /// Handed to the event loop until written to the socket.
    Reply,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Queue,
        Stage::Prep,
        Stage::Log,
        Stage::Quorum,
        Stage::Apply,
        Stage::Reply,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Queue => "queue",
            Stage::Prep => "prep",
            Stage::Log => "log",
            Stage::Quorum => "quorum",
            Stage::Apply => "apply",
            Stage::Reply => "reply",
        }
    }
}

/// Latency buckets: 10 µs doubling to about 10 s. A local fsync is ~100 µs, a loopback read
/// ~20 µs, and anything past seconds is an incident, not a distribution.
fn latency_buckets() -> Vec<f64> {
    (0..=20).map(|k| 10e-6 * f64::from(1u32 << k)).collect()
}

fn count_buckets() -> Vec<f64> {
    (0..=14).map(|k| f64::from(1u32 << k)).collect()
}

fn byte_buckets() -> Vec<f64> {
    (0..=10).map(|k| 64.0 * 4f64.powi(k)).collect()
}

/// A histogram plus the min and max beside it, because ZooKeeper's `mntr` reports
/// avg/min/max/cnt/sum for the same figures and dashboards read them.
pub struct Distribution {
    histogram: Histogram,
    // f64 bit patterns: for non-negative floats their order is the order of the u64s, so
    // fetch_min/fetch_max on the bits are min/max on the values.
    min_bits: AtomicU64,
    max_bits: AtomicU64,
}

impl Distribution {
    fn new(name: &str, help: &str, buckets: Vec<f64>) -> Self {
        Self::with_label(name, help, buckets, None)
    }

    fn with_label(name: &str, help: &str, buckets: Vec<f64>, label: Option<(&str, &str)>) -> Self {
        let mut opts = HistogramOpts::new(name, help).buckets(buckets);
        if let Some((key, value)) = label {
            opts = opts.const_label(key, value);
        }
        Distribution {
            histogram: Histogram::with_opts(opts).expect("static histogram options are valid"),
            min_bits: AtomicU64::new(f64::INFINITY.to_bits()),
            max_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, value: f64) {
        let value = value.max(0.0);
        self.histogram.observe(value);
        self.min_bits.fetch_min(value.to_bits(), Ordering::Relaxed);
        self.max_bits.fetch_max(value.to_bits(), Ordering::Relaxed);
    }

    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(elapsed.as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.histogram.get_sample_count()
    }

    pub fn sum(&self) -> f64 {
        self.histogram.get_sample_sum()
    }

    pub fn min(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            _ => f64::from_bits(self.min_bits.load(Ordering::Relaxed)),
        }
    }

    pub fn max(&self) -> f64 {
        f64::from_bits(self.max_bits.load(Ordering::Relaxed))
    }

    /// The q-quantile estimated from the buckets: linear within the bucket that holds it,
    /// capped by the observed max. Exact enough to tell 100 µs from 1 ms, which is what the
    /// ZooKeeper-style summaries are read for.
    pub fn quantile(&self, q: f64) -> f64 {
        let families = self.histogram.collect();
        let Some(h) = families
            .first()
            .and_then(|f| f.get_metric().first())
            .map(|m| m.get_histogram())
        else {
            return 0.0;
        };
        let total = h.get_sample_count();
        if total == 0 {
            return 0.0;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut lower_bound = 0.0;
        let mut lower_count = 0u64;
        for bucket in h.get_bucket() {
            let count = bucket.cumulative_count();
            let upper = bucket.upper_bound();
            if count as f64 >= rank {
                let within = (rank - lower_count as f64) / (count - lower_count).max(1) as f64;
                let estimate = lower_bound + (upper - lower_bound) * within;
                return estimate.min(self.max()).max(self.min());
            }
            lower_bound = upper;
            lower_count = count;
        }
        self.max()
    }

    /// ZooKeeper's Prometheus form of a summary: `name{quantile="…"}`, `name_sum`,
    /// `name_count`, in ZooKeeper's unit (`scale` converts from this distribution's).
    fn zk_summary(&self, name: &str, help: &str, scale: f64) -> MetricFamily {
        let quantiles = [0.5, 0.9, 0.99]
            .iter()
            .map(|&q| {
                let mut quantile = proto::Quantile::default();
                quantile.set_quantile(q);
                quantile.set_value(self.quantile(q) * scale);
                quantile
            })
            .collect();
        let mut summary = proto::Summary::default();
        summary.set_sample_count(self.count());
        summary.set_sample_sum(self.sum() * scale);
        summary.set_quantile(quantiles);
        let mut metric = proto::Metric::default();
        metric.set_summary(summary);
        family(name, help, MetricType::SUMMARY, vec![metric])
    }

    /// ZooKeeper's mntr lines for a summary: avg, min, max, cnt, sum. ZooKeeper keeps min,
    /// max and sum as whole numbers of its unit (AvgMinMaxCounter's longs); only avg has a
    /// fraction, and JSON readers of the AdminServer see those types.
    fn zk_mntr(&self, name: &str, scale: f64, out: &mut Vec<(String, String)>) {
        let count = self.count();
        let avg = if count == 0 {
            0.0
        } else {
            self.sum() / count as f64
        };
        let whole = |v: f64| format!("{}", (v * scale).round() as i64);
        out.push((format!("zk_avg_{name}"), format_number(avg * scale)));
        out.push((format!("zk_min_{name}"), whole(self.min())));
        out.push((format!("zk_max_{name}"), whole(self.max())));
        out.push((format!("zk_cnt_{name}"), count.to_string()));
        out.push((format!("zk_sum_{name}"), whole(self.sum())));
    }
}

fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value:.4}")
    }
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

/// The opcodes that get their own latency histogram, with the names ZooKeeper's
/// `Request.op2String` gives them.
const OPS: &[(OpCode, &str)] = &[
    (OpCode::Create, "create"),
    (OpCode::Create2, "create2"),
    (OpCode::CreateContainer, "createContainer"),
    (OpCode::CreateTtl, "createTtl"),
    (OpCode::Delete, "delete"),
    (OpCode::DeleteContainer, "deleteContainer"),
    (OpCode::Exists, "exists"),
    (OpCode::GetData, "getData"),
    (OpCode::SetData, "setData"),
    (OpCode::GetAcl, "getACL"),
    (OpCode::SetAcl, "setACL"),
    (OpCode::GetChildren, "getChildren"),
    (OpCode::GetChildren2, "getChildren2"),
    (OpCode::GetAllChildrenNumber, "getAllChildrenNumber"),
    (OpCode::GetEphemerals, "getEphemerals"),
    (OpCode::Sync, "sync"),
    (OpCode::Ping, "ping"),
    (OpCode::Check, "check"),
    (OpCode::Multi, "multi"),
    (OpCode::MultiRead, "multiRead"),
    (OpCode::CheckWatches, "checkWatches"),
    (OpCode::RemoveWatches, "removeWatches"),
    (OpCode::AddWatch, "addWatch"),
    (OpCode::SetWatches, "setWatches"),
    (OpCode::SetWatches2, "setWatches2"),
    (OpCode::WhoAmI, "whoAmI"),
    (OpCode::CloseSession, "closeSession"),
    (OpCode::Reconfig, "reconfig"),
];

/// Opcodes (closeSession is -11, the largest 107) shifted into 0..128, to index `OP_SLOTS`.
const OP_OFFSET: i32 = 16;

/// `OPS`'s index by shifted opcode (`u8::MAX`: none), so recording a reply's latency finds
/// its histogram without a search.
const OP_SLOTS: [u8; 128] = {
    let mut slots = [u8::MAX; 128];
    let mut i = 0;
    while i < OPS.len() {
        slots[(OPS[i].0 as i32 + OP_OFFSET) as usize] = i as u8;
        i += 1;
    }
    slots
};

fn op_slot(op: i32) -> Option<usize> {
    let shifted = usize::try_from(op.checked_add(OP_OFFSET)?).ok()?;
    match OP_SLOTS.get(shifted) {
        Some(&slot) if slot != u8::MAX => Some(usize::from(slot)),
        _ => None,
    }
}

pub fn op_name(op: i32) -> &'static str {
    op_slot(op).map_or("unknown", |i| OPS[i].1)
}

pub struct Metrics {
    registry: Registry,
    /// One write plus its sync per log batch (ZooKeeper's `fsynctime`, which times only the
    /// sync; here the write is in it too, because that is what a batch waits for).
    pub log_write: Distribution,
    /// Transactions per log batch (ZooKeeper's `sync_processor_batch_size`).
    pub batch_txns: Distribution,
    pub batch_bytes: Distribution,
    stages: Vec<Distribution>,
    requests: Vec<Histogram>,
    /// Requests answered without a transaction (ZooKeeper's `readlatency`).
    pub read_latency: Distribution,
    /// Requests that wrote (ZooKeeper's `updatelatency`).
    pub update_latency: Distribution,
    pub snapshot_time: Distribution,
    pub snapshot_bytes: Distribution,
    /// Leader to follower and back for one proposal, by follower id (the ensemble fills it).
    pub proposal_round_trip: HistogramVec,
    /// Loading the snapshot and replaying the log at startup (ZooKeeper's `dbinittime`), and
    /// how many transactions the replay applied.
    pub db_init_time: Distribution,
    pub startup_txns_loaded: Distribution,
    pub slow_requests: IntCounter,
    pub sessions_expired: IntCounter,
    pub snapshots_taken: IntCounter,
    /// A learner's tree digest differed from its leader's (mntr's zk_digest_mismatches_count).
    pub digest_mismatches: IntCounter,
    /// From looking for a leader to leading or following one.
    pub election_time: Histogram,
    /// Learners a leader brought up to date, by how (diff, trunc, snap).
    pub learner_syncs: IntCounterVec,
    /// What those syncs carried: the DIFFs' transactions and the SNAPs' encoded bytes.
    pub learner_sync_bytes: IntCounterVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics. One server per process, so one set.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let stages: Vec<Distribution> = Stage::ALL
            .iter()
            .map(|stage| {
                Distribution::with_label(
                    "rzk_stage_seconds",
                    "Time a request spent in each pipeline stage",
                    latency_buckets(),
                    Some(("stage", stage.name())),
                )
            })
            .collect();
        let requests: Vec<Histogram> = OPS
            .iter()
            .map(|(_, name)| {
                Histogram::with_opts(
                    HistogramOpts::new(
                        "rzk_request_seconds",
                        "Request latency from receipt to reply written, by opcode",
                    )
                    .const_label("op", *name)
                    .buckets(latency_buckets()),
                )
                .expect("static histogram options are valid")
            })
            .collect();
        let metrics = Metrics {
            log_write: Distribution::new(
                "rzk_log_write_seconds",
                "One log batch's write and fdatasync",
                latency_buckets(),
            ),
            batch_txns: Distribution::new(
                "rzk_log_batch_txns",
                "Transactions per log batch (group commit)",
                count_buckets(),
            ),
            batch_bytes: Distribution::new(
                "rzk_log_batch_bytes",
                "Bytes per log batch",
                byte_buckets(),
            ),
            stages,
            requests,
            read_latency: Distribution::new(
                "readlatency",
                "Requests answered without a transaction",
                latency_buckets(),
            ),
            update_latency: Distribution::new(
                "updatelatency",
                "Requests that wrote",
                latency_buckets(),
            ),
            snapshot_time: Distribution::new(
                "rzk_snapshot_seconds",
                "Writing one snapshot, from its tree version to the renamed file",
                latency_buckets(),
            ),
            snapshot_bytes: Distribution::new(
                "rzk_snapshot_bytes",
                "Size of each snapshot file written",
                byte_buckets(),
            ),
            proposal_round_trip: HistogramVec::new(
                HistogramOpts::new(
                    "rzk_proposal_round_trip_seconds",
                    "Proposal sent to a follower until its ack arrives, by follower",
                )
                .buckets(latency_buckets()),
                &["follower"],
            )
            .expect("static histogram options are valid"),
            db_init_time: Distribution::new(
                "dbinittime",
                "Loading the data tree at startup",
                latency_buckets(),
            ),
            startup_txns_loaded: Distribution::new(
                "startup_txns_loaded",
                "Transactions replayed at startup",
                count_buckets(),
            ),
            slow_requests: IntCounter::with_opts(Opts::new(
                "rzk_slow_requests_total",
                "Requests slower than slowRequest.thresholdMs (each is logged with its stages)",
            ))
            .expect("static counter options are valid"),
            sessions_expired: IntCounter::with_opts(Opts::new(
                "rzk_sessions_expired_total",
                "Sessions expired by timeout",
            ))
            .expect("static counter options are valid"),
            snapshots_taken: IntCounter::with_opts(Opts::new(
                "rzk_snapshots_total",
                "Snapshots written",
            ))
            .expect("static counter options are valid"),
            digest_mismatches: IntCounter::with_opts(Opts::new(
                "rzk_digest_mismatches_total",
                "Times a learner's tree digest differed from its leader's",
            ))
            .expect("static counter options are valid"),
            election_time: Histogram::with_opts(
                HistogramOpts::new(
                    "rzk_election_seconds",
                    "From looking for a leader to leading or following one",
                )
                .buckets(latency_buckets()),
            )
            .expect("static histogram options are valid"),
            learner_syncs: IntCounterVec::new(
                Opts::new(
                    "rzk_learner_syncs_total",
                    "Learners this leader synchronised, by how: diff, trunc or snap",
                ),
                &["kind"],
            )
            .expect("static counter options are valid"),
            learner_sync_bytes: IntCounterVec::new(
                Opts::new(
                    "rzk_learner_sync_bytes_total",
                    "Bytes this leader sent to synchronise learners, by how: diff or snap",
                ),
                &["kind"],
            )
            .expect("static counter options are valid"),
            registry,
        };
        let register = |c: Box<dyn Collector>| {
            metrics
                .registry
                .register(c)
                .expect("rzk metric names are unique")
        };
        for d in [
            &metrics.log_write,
            &metrics.batch_txns,
            &metrics.batch_bytes,
            &metrics.snapshot_time,
            &metrics.snapshot_bytes,
        ]
        .into_iter()
        .chain(&metrics.stages)
        {
            register(Box::new(d.histogram.clone()));
        }
        for h in &metrics.requests {
            register(Box::new(h.clone()));
        }
        register(Box::new(metrics.proposal_round_trip.clone()));
        register(Box::new(metrics.slow_requests.clone()));
        register(Box::new(metrics.sessions_expired.clone()));
        register(Box::new(metrics.snapshots_taken.clone()));
        register(Box::new(metrics.digest_mismatches.clone()));
        register(Box::new(metrics.election_time.clone()));
        register(Box::new(metrics.learner_syncs.clone()));
        register(Box::new(metrics.learner_sync_bytes.clone()));
        metrics
    }

    pub fn stage(&self, stage: Stage) -> &Distribution {
        &self.stages[stage as usize]
    }

    /// Records a request's end-to-end latency under its opcode, and under ZooKeeper's
    /// read or update latency.
    pub fn request(&self, op: i32, write: bool, elapsed: Duration) {
        if let Some(slot) = op_slot(op) {
            self.requests[slot].observe(elapsed.as_secs_f64());
        }
        if write {
            self.update_latency.observe_duration(elapsed);
        } else {
            self.read_latency.observe_duration(elapsed);
        }
    }

    /// The summaries ZooKeeper keeps, by its name, with the factor from the recorded unit
    /// (seconds, or a plain count) to ZooKeeper's.
    fn zk_summaries(&self) -> [(&'static str, &Distribution, f64); 7] {
        [
            ("fsynctime", &self.log_write, 1e3),
            ("sync_processor_batch_size", &self.batch_txns, 1.0),
            ("readlatency", &self.read_latency, 1e3),
            ("updatelatency", &self.update_latency, 1e3),
            ("snapshottime", &self.snapshot_time, 1e3),
            ("dbinittime", &self.db_init_time, 1e3),
            ("startup_txns_loaded", &self.startup_txns_loaded, 1.0),
        ]
    }

    /// The summary lines ZooKeeper's `mntr` prints (zk_avg_fsynctime and so on).
    pub fn mntr_lines(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, distribution, scale) in self.zk_summaries() {
            distribution.zk_mntr(name, scale, &mut out);
        }
        out
    }

    /// The Prometheus text exposition: `mntr`'s numeric figures as gauges under ZooKeeper's
    /// Prometheus names (mntr's name without `zk_`, as ZooKeeper's PrometheusMetricsProvider
    /// exports them), ZooKeeper's summaries, then rzk's histograms.
    pub fn render_prometheus(&self, mntr: &[(String, String)]) -> String {
        let mut families = Vec::new();
        for (key, value) in mntr {
            let name = key.strip_prefix("zk_").unwrap_or(key);
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if self.is_zk_summary_line(name) {
                continue;
            }
            let mut gauge = proto::Gauge::default();
            gauge.set_value(value);
            let mut metric = proto::Metric::default();
            metric.set_gauge(gauge);
            families.push(family(name, name, MetricType::GAUGE, vec![metric]));
        }
        for (name, distribution, scale) in self.zk_summaries() {
            families.push(distribution.zk_summary(name, name, scale));
        }
        families.extend(self.registry.gather());
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&families, &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text encoder writes UTF-8")
    }

    /// mntr's avg/min/max/cnt/sum lines are already exported as summaries.
    fn is_zk_summary_line(&self, name: &str) -> bool {
        ["avg_", "min_", "max_", "cnt_", "sum_"].iter().any(|p| {
            name.strip_prefix(p)
                .is_some_and(|rest| self.zk_summaries().iter().any(|(n, _, _)| *n == rest))
        })
    }
}

#[cfg(test)]
mod tests;

/// The core thread's share of one request's time, handed to the event loop with the reply:
/// the loop knows when the request arrived and when the reply left, so it completes the
/// picture (queue and reply) and records all six stages at once.
#[derive(Debug, Clone, Copy)]
pub struct CoreStages {
    pub prep: Duration,
    pub log: Duration,
    pub quorum: Duration,
    pub apply: Duration,
    /// When the core handed the reply to the event loop.
    pub handed: std::time::Instant,
}

impl CoreStages {
    pub fn total(&self) -> Duration {
        self.prep + self.log + self.quorum + self.apply
    }
}

/// All six stages of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageTimes {
    pub queue: Duration,
    pub prep: Duration,
    pub log: Duration,
    pub quorum: Duration,
    pub apply: Duration,
    pub reply: Duration,
}

impl StageTimes {
    /// Splits `total` (arrival to reply written at `now`) using the core's share.
    pub fn complete(core: &CoreStages, total: Duration, now: std::time::Instant) -> StageTimes {
        let reply = now.saturating_duration_since(core.handed);
        StageTimes {
            queue: total.saturating_sub(reply).saturating_sub(core.total()),
            prep: core.prep,
            log: core.log,
            quorum: core.quorum,
            apply: core.apply,
            reply,
        }
    }

    pub fn record(&self, metrics: &Metrics) {
        for (stage, time) in [
            (Stage::Queue, self.queue),
            (Stage::Prep, self.prep),
            (Stage::Log, self.log),
            (Stage::Quorum, self.quorum),
            (Stage::Apply, self.apply),
            (Stage::Reply, self.reply),
        ] {
            // The histogram alone: a stage's min and max are never read, and keeping them
            // cost two compare-and-swap loops per stage on every reply.
            metrics.stage(stage).histogram.observe(time.as_secs_f64());
        }
    }
}
