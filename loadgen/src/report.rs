//! The result of a run: built from the merged [`Tally`], printed as a table or JSON, read back
//! for `--plot-compare`.

use std::collections::BTreeMap;
use std::io::Write;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::driver::{OpKind, Tally};
use crate::wire::error_name;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpSummary {
    pub ops: u64,
    pub latency_us: Latency,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub kernel: String,
    pub cpus: usize,
    pub cpu_model: String,
}

impl Machine {
    pub fn this() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Machine {
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: read("/proc/cpuinfo")
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// The server process's usage over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    pub pid: u32,
    /// user + sys over the measured window.
    pub cpu_us: u64,
    /// `cpu_us` divided by the measured requests answered (ok and errors).
    pub cpu_us_per_op: f64,
    /// VmHWM at the end of the window.
    pub peak_rss_kb: Option<u64>,
    pub rss_kb: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub label: String,
    pub tool: String,
    pub started_unix_s: u64,
    pub machine: Machine,
    pub hosts: String,
    pub workload: String,
    pub sessions: usize,
    pub inflight: usize,
    pub threads: usize,
    pub value_size: usize,
    pub keys: usize,
    pub multi_ops: usize,
    pub base_path: String,
    /// From the start of the measured window to its last measured reply.
    pub measured_s: f64,
    /// Measured requests answered OK.
    pub ops: u64,
    /// `ops / measured_s`.
    pub throughput_ops_s: f64,
    /// Of the OK replies.
    pub latency_us: Latency,
    /// Per op type, when the workload mixes several.
    pub by_op: BTreeMap<String, OpSummary>,
    /// Measured requests answered with an error, by code ("NoNode(-101)").
    pub errors: BTreeMap<String, u64>,
    pub warmup_ops: u64,
    pub warmup_errors: BTreeMap<String, u64>,
    /// Measured requests never answered (session lost or request timeout).
    pub unanswered: u64,
    pub sessions_lost: u64,
    /// Replies whose xid was not the one due.
    pub protocol_errors: u64,
    pub problems: Vec<String>,
    pub server: Option<ServerUsage>,
    /// Mean time per pipeline stage over the window, from `--server-metrics` (rzk only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_stages: Option<BTreeMap<String, crate::scrape::StageMean>>,
    /// With `--tls`: the protocol version and cipher suite negotiated ("TLSv1_3
    /// TLS13_AES_256_GCM_SHA384"); absent over plain TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// (percentile, µs) points of the latency curve, percentile from 0 to 99.999 on a
    /// log scale of 1/(1 - p).
    pub curve: Vec<[f64; 2]>,
}

/// Points per decade of 1/(1 - p) in the saved curve; five decades (0 to 99.999).
pub const CURVE_STEPS_PER_DECADE: usize = 40;
pub const CURVE_DECADES: usize = 5;

/// The percentile at position `x` (0..=5) of the log axis: 0, 90, 99, 99.9, ...
pub fn percentile_at(x: f64) -> f64 {
    100.0 * (1.0 - 10f64.powf(-x))
}

/// The log-axis position of percentile `p` (the inverse of [`percentile_at`]).
pub fn axis_of_percentile(p: f64) -> f64 {
    let rest = (1.0 - p / 100.0).max(1e-12);
    -rest.log10()
}

pub fn curve(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let steps = CURVE_STEPS_PER_DECADE * CURVE_DECADES;
    let mut points = Vec::with_capacity(steps + 1);
    for i in 0..=steps {
        let x = i as f64 / CURVE_STEPS_PER_DECADE as f64;
        let p = percentile_at(x);
        let v = if i == 0 {
            h.min()
        } else {
            h.value_at_quantile(p / 100.0)
        };
        points.push([(p * 1e6).round() / 1e6, v as f64]);
    }
    points
}

fn named(errors: &BTreeMap<i32, u64>) -> BTreeMap<String, u64> {
    errors.iter().map(|(&c, &n)| (error_name(c), n)).collect()
}

pub struct RunFacts {
    pub label: String,
    pub hosts: String,
    pub workload: String,
    pub sessions: usize,
    pub inflight: usize,
    pub threads: usize,
    pub value_size: usize,
    pub keys: usize,
    pub multi_ops: usize,
    pub base_path: String,
    pub started_unix_s: u64,
    pub measured_s: f64,
    pub server: Option<ServerUsage>,
    pub server_stages: Option<BTreeMap<String, crate::scrape::StageMean>>,
    pub mixed: bool,
    pub tls: Option<String>,
}

pub fn build(facts: RunFacts, tally: &Tally) -> Report {
    let mut by_op = BTreeMap::new();
    if facts.mixed {
        for kind in OpKind::ALL {
            let h = &tally.by_kind[kind as usize];
            if !h.is_empty() {
                by_op.insert(
                    kind.name().to_owned(),
                    OpSummary {
                        ops: h.len(),
                        latency_us: Latency::of(h),
                    },
                );
            }
        }
    }
    let throughput = if facts.measured_s > 0.0 {
        tally.ok as f64 / facts.measured_s
    } else {
        0.0
    };
    Report {
        label: facts.label,
        tool: format!("rzk-loadgen {}", env!("CARGO_PKG_VERSION")),
        started_unix_s: facts.started_unix_s,
        machine: Machine::this(),
        hosts: facts.hosts,
        workload: facts.workload,
        sessions: facts.sessions,
        inflight: facts.inflight,
        threads: facts.threads,
        value_size: facts.value_size,
        keys: facts.keys,
        multi_ops: facts.multi_ops,
        base_path: facts.base_path,
        measured_s: facts.measured_s,
        ops: tally.ok,
        throughput_ops_s: throughput,
        latency_us: Latency::of(&tally.all),
        by_op,
        errors: named(&tally.errors),
        warmup_ops: tally.warmup_ok,
        warmup_errors: named(&tally.warmup_errors),
        unanswered: tally.unanswered,
        sessions_lost: tally.sessions_lost,
        protocol_errors: tally.protocol_errors,
        problems: tally.problems.clone(),
        server: facts.server,
        server_stages: facts.server_stages,
        tls: facts.tls,
        curve: curve(&tally.all),
    }
}

/// Thousands separated by commas: 1234567 → "1,234,567".
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string().into_bytes();
    let groups: Vec<&str> = digits
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).expect("ASCII digits"))
        .collect();
    groups.join(",")
}

fn latency_row(name: &str, ops: u64, l: &Latency) -> String {
    format!(
        "  {:<8} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        name,
        group_digits(ops),
        l.p50,
        l.p90,
        l.p99,
        l.p999,
        l.p9999,
        l.max
    )
}

/// The human-readable table.
pub fn format_report(r: &Report) -> String {
    let mut s = String::new();
    let mut line = |t: String| {
        s.push_str(&t);
        s.push('\n');
    };
    line(format!(
        "rzk bench: {} | workload {} | {} session(s) x {} in flight | value {} B | keys {} | {}",
        r.label, r.workload, r.sessions, r.inflight, r.value_size, r.keys, r.hosts
    ));
    line(format!(
        "  {} | kernel {} | {} cpus | {} client thread(s)",
        r.machine.cpu_model, r.machine.kernel, r.machine.cpus, r.threads
    ));
    if let Some(tls) = &r.tls {
        line(format!("  TLS: {tls}"));
    }
    line(format!(
        "  measured {:.2} s: {} ops OK, {:.0} ops/s",
        r.measured_s,
        group_digits(r.ops),
        r.throughput_ops_s
    ));
    line(format!(
        "  {:<8} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "µs", "ops", "p50", "p90", "p99", "p99.9", "p99.99", "max"
    ));
    line(latency_row("all", r.ops, &r.latency_us));
    for (name, op) in &r.by_op {
        line(latency_row(name, op.ops, &op.latency_us));
    }
    if r.errors.is_empty() {
        line("  errors: none".into());
    } else {
        let list: Vec<String> = r
            .errors
            .iter()
            .map(|(k, v)| format!("{k} x{}", group_digits(*v)))
            .collect();
        line(format!("  ERRORS: {}", list.join(", ")));
    }
    if !r.warmup_errors.is_empty() {
        let list: Vec<String> = r
            .warmup_errors
            .iter()
            .map(|(k, v)| format!("{k} x{v}"))
            .collect();
        line(format!("  errors during warmup: {}", list.join(", ")));
    }
    if r.unanswered > 0 || r.sessions_lost > 0 {
        line(format!(
            "  UNANSWERED: {} measured requests; {} session(s) lost",
            group_digits(r.unanswered),
            r.sessions_lost
        ));
    }
    if r.protocol_errors > 0 {
        line(format!(
            "  PROTOCOL: {} replies out of order or with an unknown xid",
            r.protocol_errors
        ));
    }
    for p in &r.problems {
        line(format!("  problem: {p}"));
    }
    if let Some(srv) = &r.server {
        let mb =
            |kb: Option<u64>| kb.map_or("?".to_owned(), |k| format!("{:.1} MB", k as f64 / 1024.0));
        line(format!(
            "  server pid {}: {:.1} µs CPU per op (user+sys {:.2} s), peak RSS {}, RSS {}",
            srv.pid,
            srv.cpu_us_per_op,
            srv.cpu_us as f64 / 1e6,
            mb(srv.peak_rss_kb),
            mb(srv.rss_kb)
        ));
    }
    if let Some(stages) = r.server_stages.as_ref().filter(|s| !s.is_empty()) {
        let requests = stages.values().map(|m| m.count).max().unwrap_or(0);
        line(format!(
            "  server stages, mean µs over {} requests: {}",
            group_digits(requests),
            crate::scrape::describe(stages)
        ));
    }
    s
}

pub fn print_report(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    out.write_all(format_report(r).as_bytes())
}

pub fn to_json(r: &Report) -> String {
    serde_json::to_string_pretty(r).expect("a report serializes")
}

pub fn from_json(text: &str) -> Result<Report, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::new_histogram;

    fn sample_tally() -> Tally {
        let mut t = Tally::new();
        for v in 1..=10_000u64 {
            t.all.record(v).unwrap();
            t.by_kind[OpKind::Get as usize].record(v).unwrap();
        }
        t.ok = 10_000;
        t.errors.insert(-101, 3);
        t.errors.insert(-999, 1);
        t.unanswered = 2;
        t.sessions_lost = 1;
        t.problems.push("session 0 (h:1): connection closed".into());
        t
    }

    fn facts() -> RunFacts {
        RunFacts {
            label: "rzk".into(),
            hosts: "127.0.0.1:2181".into(),
            workload: "mixed:90".into(),
            sessions: 2,
            inflight: 4,
            threads: 1,
            value_size: 100,
            keys: 10,
            multi_ops: 3,
            base_path: "/rzk-bench-1".into(),
            started_unix_s: 1,
            measured_s: 2.0,
            server: Some(ServerUsage {
                pid: 7,
                cpu_us: 500_000,
                cpu_us_per_op: 50.0,
                peak_rss_kb: Some(2048),
                rss_kb: None,
            }),
            server_stages: Some(
                [("log", 120.0), ("queue", 10.0)]
                    .into_iter()
                    .map(|(n, us)| {
                        (
                            n.to_owned(),
                            crate::scrape::StageMean {
                                count: 100,
                                mean_us: us,
                            },
                        )
                    })
                    .collect(),
            ),
            mixed: true,
            tls: Some("TLSv1_3 TLS13_AES_256_GCM_SHA384".into()),
        }
    }

    #[test]
    fn percentiles_of_a_uniform_histogram() {
        let r = build(facts(), &sample_tally());
        let l = &r.latency_us;
        assert_eq!(l.min, 1);
        assert!(l.max.abs_diff(10_000) <= 10, "{}", l.max);
        // hdrhistogram answers with 3 significant digits.
        for (got, want) in [(l.p50, 5000), (l.p90, 9000), (l.p99, 9900), (l.p999, 9990)] {
            assert!(got.abs_diff(want) <= want / 500, "{got} vs {want}");
        }
        assert_eq!(r.throughput_ops_s, 5000.0);
        assert_eq!(r.by_op["get"].ops, 10_000);
        assert_eq!(r.errors["NoNode(-101)"], 3);
        assert_eq!(r.errors["Unknown(-999)"], 1);
    }

    #[test]
    fn curve_spans_zero_to_99_999_and_rises() {
        let r = build(facts(), &sample_tally());
        assert_eq!(r.curve.len(), CURVE_STEPS_PER_DECADE * CURVE_DECADES + 1);
        assert_eq!(r.curve[0], [0.0, 1.0]);
        assert_eq!(r.curve.last().unwrap()[0], 99.999);
        assert!(r
            .curve
            .windows(2)
            .all(|w| w[0][0] < w[1][0] && w[0][1] <= w[1][1]));
        assert!((axis_of_percentile(99.9) - 3.0).abs() < 1e-9);
        assert!((percentile_at(2.0) - 99.0).abs() < 1e-9);
        assert!(curve(&new_histogram()).is_empty());
    }

    #[test]
    fn table_shows_every_figure_and_never_hides_errors() {
        let r = build(facts(), &sample_tally());
        let t = format_report(&r);
        for needle in [
            "mixed:90",
            "10,000 ops OK, 5000 ops/s",
            "p99.99",
            "ERRORS: NoNode(-101) x3, Unknown(-999) x1",
            "UNANSWERED: 2 measured requests; 1 session(s) lost",
            "problem: session 0",
            "50.0 µs CPU per op",
            "peak RSS 2.0 MB",
            "server stages, mean µs over 100 requests: queue 10.0 · log 120.0",
            "  get ",
        ] {
            assert!(t.contains(needle), "{needle:?} missing in\n{t}");
        }
        assert!(t.contains("TLS: TLSv1_3 TLS13_AES_256_GCM_SHA384"), "{t}");
        let clean = build(
            RunFacts {
                server: None,
                tls: None,
                ..facts()
            },
            &Tally::new(),
        );
        let t = format_report(&clean);
        assert!(t.contains("errors: none"), "{t}");
        assert!(!t.contains("UNANSWERED") && !t.contains("server pid") && !t.contains("TLS"));
    }

    #[test]
    fn json_round_trips() {
        let r = build(facts(), &sample_tally());
        let back = from_json(&to_json(&r)).unwrap();
        assert_eq!(back, r);
        assert!(from_json("{}").is_err());
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(1_234_567), "1,234,567");
    }
}
