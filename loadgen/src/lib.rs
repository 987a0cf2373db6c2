//! `rzk bench`: a load generator that speaks the ZooKeeper client protocol (through
//! `rzk-proto`) to any server, rzk or Apache ZooKeeper, and reports throughput, latency
//! percentiles (hdrhistogram, µs), errors by code, and optionally the server's CPU time per
//! operation and peak RSS.
//!
//! Owns: the flags ([`BenchArgs`]), the run (setup of a unique base path and its keys, warmup,
//! measured window, drain, cleanup), the report (table, JSON, SVG plot).
//!
//! Never: hide an error (every error reply, unanswered request and lost session is counted
//! and printed), send load anywhere but the hosts given, run without a bound in time.
//!
//! Cost: a few client threads (1 per 8 sessions, at most 2 by default) drive non-blocking
//! sockets; requests are patched copies of pre-encoded frames, so the client spends little
//! CPU per request and the server is what gets measured.

mod args;
mod driver;
mod plot;
mod procstat;
mod report;
mod scrape;
mod tls;
mod wire;

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use args::{parse_args, parse_hosts, BenchArgs, Plan, Stop, Workload};
pub use driver::{OpKind, Tally};
pub use plot::{svg, svg_of_reports, Series};
pub use report::{
    format_report, from_json, print_report, to_json, Latency, Machine, OpSummary, Report,
    ServerUsage,
};
pub use tls::TlsPlan;

use driver::{Shared, PHASE_MEASURE, PHASE_STOP, PHASE_WARMUP};
use rzk_proto::{ErrorCode, Request};
use tls::TlsClient;
use wire::SyncClient;

/// Everything `rzk bench` does: a run (table or JSON on stdout, `--save`, `--plot`) or, with
/// `--plot-compare`, a chart of saved reports.
pub fn run_cli(args: &BenchArgs) -> Result<(), String> {
    if !args.plot_compare.is_empty() {
        let out = args
            .plot
            .as_ref()
            .ok_or("--plot-compare needs --plot FILE.svg")?;
        let mut reports = Vec::new();
        for path in &args.plot_compare {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            reports.push(from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        std::fs::write(out, svg_of_reports(&reports))
            .map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!("wrote {}", out.display());
        return Ok(());
    }
    let report = run(args)?;
    if args.json {
        println!("{}", to_json(&report));
    } else {
        print!("{}", format_report(&report));
    }
    if let Some(path) = &args.save {
        std::fs::write(path, to_json(&report) + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, svg_of_reports(std::slice::from_ref(&report)))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Runs the benchmark the flags describe and returns its report. Errors are only for a run
/// that could not take place (bad flags, no server, setup failed); everything that went wrong
/// during the run is in the report.
pub fn run(args: &BenchArgs) -> Result<Report, String> {
    let plan = args.plan()?;
    run_plan(&plan)
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Creates the base path (and the keys, or the parent of created nodes). Returns what TLS
/// the first connection negotiated (None: plain TCP).
fn setup(plan: &Plan, tls: Option<&TlsClient>, base: &str) -> Result<Option<String>, String> {
    let mut client = SyncClient::connect(&plan.hosts[0], tls, plan.session_timeout_ms)?;
    let negotiated = client.tls_description();
    let err = client.call(wire::create_request(base.to_owned(), Vec::new()))?;
    if err != 0 {
        return Err(format!("creating {base}: {}", wire::error_name(err)));
    }
    if plan.workload == Workload::Create {
        let err = client.call(wire::create_request(wire::create_dir(base), Vec::new()))?;
        if err != 0 {
            return Err(format!("creating {}/c: {}", base, wire::error_name(err)));
        }
    }
    if plan.keys > 0 {
        let data = wire::value(plan.value_size);
        let window = (4 << 20) / (plan.value_size + 64).max(1);
        let mut requests = (0..plan.keys as u64)
            .map(|k| wire::create_request(wire::key_path(base, k), data.clone()));
        let done = client.pipeline(
            &mut requests,
            window.clamp(1, 256),
            Instant::now() + Duration::from_secs(600),
            &mut |k, err| {
                if err != 0 {
                    Err(format!("creating key {k}: {}", wire::error_name(err)))
                } else {
                    Ok(())
                }
            },
        )?;
        if done != plan.keys as u64 {
            return Err(format!("created only {done} of {} keys", plan.keys));
        }
    }
    client.close();
    // Sessions on other servers of an ensemble must see the keys: sync each of them.
    for host in plan.hosts.iter().skip(1) {
        let mut c = SyncClient::connect(host, tls, plan.session_timeout_ms)?;
        c.call(Request::Sync {
            path: base.to_owned(),
        })?;
        c.close();
    }
    Ok(negotiated)
}

/// Deletes what the run created, within `--cleanup-timeout`. Returns a warning if it could
/// not finish.
fn cleanup(
    plan: &Plan,
    tls: Option<&TlsClient>,
    base: &str,
    created: &[(usize, u64)],
) -> Option<String> {
    let deadline = Instant::now() + plan.cleanup_timeout;
    let mut client = match SyncClient::connect(&plan.hosts[0], tls, plan.session_timeout_ms) {
        Ok(c) => c,
        Err(e) => return Some(format!("cleanup: {e}; {base} left in place")),
    };
    let keys = (0..plan.keys as u64).map(|k| wire::key_path(base, k));
    let nodes = created
        .iter()
        .flat_map(|&(s, n)| (0..n).map(move |seq| wire::created_path(base, s, seq)));
    let tail = if plan.workload == Workload::Create {
        vec![wire::create_dir(base), base.to_owned()]
    } else {
        vec![base.to_owned()]
    };
    let total = plan.keys as u64 + created.iter().map(|c| c.1).sum::<u64>() + tail.len() as u64;
    let mut requests = keys
        .chain(nodes)
        .chain(tail)
        .map(|path| Request::Delete { path, version: -1 });
    let mut failures = 0u64;
    let mut first_failure = None;
    let result = client.pipeline(&mut requests, 256, deadline, &mut |_, err| {
        if err != 0 && err != ErrorCode::NoNode.code() {
            failures += 1;
            first_failure.get_or_insert(err);
        }
        Ok(())
    });
    client.close();
    match result {
        Err(e) => Some(format!("cleanup: {e}; part of {base} left in place")),
        Ok(done) if done < total => Some(format!(
            "cleanup: --cleanup-timeout reached after {done} of {total} deletes; {base} left in place"
        )),
        Ok(_) if failures > 0 => Some(format!(
            "cleanup: {failures} deletes failed (first: {})",
            wire::error_name(first_failure.unwrap_or(0))
        )),
        Ok(_) => None,
    }
}

fn sum_progress(shared: &Shared) -> (u64, u64) {
    shared.progress.iter().fold((0, 0), |(r, e), p| {
        (
            r + p.replies.load(Ordering::Relaxed),
            e + p.errors.load(Ordering::Relaxed),
        )
    })
}

fn run_plan(plan: &Plan) -> Result<Report, String> {
    let started = unix_now();
    let base = format!("/rzk-bench-{}-{}", std::process::id(), started.as_millis());
    let tls_client = plan.tls.as_ref().map(TlsClient::load).transpose()?;
    let tls = tls_client.as_ref();
    let negotiated = setup(plan, tls, &base)?;

    let mut groups: Vec<Vec<driver::Session>> = (0..plan.threads).map(|_| Vec::new()).collect();
    for i in 0..plan.sessions {
        match driver::open_session(plan, tls, &base, i) {
            Ok(s) => groups[i % plan.threads].push(s),
            Err(e) => {
                drop(groups);
                let warning = if plan.keep {
                    None
                } else {
                    cleanup(plan, tls, &base, &[])
                };
                if let Some(w) = warning {
                    eprintln!("rzk bench: {w}");
                }
                return Err(format!("opening session {i}: {e}"));
            }
        }
    }

    let quota = match plan.stop {
        Stop::Ops(n) => Some(n),
        Stop::After(_) => None,
    };
    let first_phase = if plan.warmup.is_zero() {
        PHASE_MEASURE
    } else {
        PHASE_WARMUP
    };
    let shared = Shared::new(plan.threads, quota, first_phase);
    let progress = std::io::stdout().is_terminal();
    let ticks = procstat::clock_ticks_per_second();
    let cpu_now = |pid: u32| procstat::cpu_us(pid, ticks);

    let (tally, measure_start, cpu_window, stage_window) = std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .into_iter()
            .enumerate()
            .map(|(i, sessions)| {
                let shared = &shared;
                std::thread::Builder::new()
                    .name(format!("bench-{i}"))
                    .spawn_scoped(scope, move || driver::worker(plan, shared, i, sessions))
                    .expect("spawn a bench thread")
            })
            .collect();
        let run_start = Instant::now();
        let mut last_print = (run_start, 0u64);
        let all_done = || shared.done.load(Ordering::SeqCst) >= plan.threads;
        let print = |phase: &str, last: &mut (Instant, u64)| {
            if !progress {
                return;
            }
            let now = Instant::now();
            if now.duration_since(last.0) < Duration::from_secs(1) {
                return;
            }
            let (replies, errors) = sum_progress(&shared);
            let rate = (replies - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            eprintln!(
                "[{:6.1} s] {phase:<8} {:>9.0} ops/s  {:>11} replies  {} errors",
                now.duration_since(run_start).as_secs_f64(),
                rate,
                report::group_digits(replies),
                errors
            );
            *last = (now, replies);
        };
        // Warmup.
        while !plan.warmup.is_zero() && run_start.elapsed() < plan.warmup && !all_done() {
            std::thread::sleep(Duration::from_millis(20));
            print("warmup", &mut last_print);
        }
        let cpu_start = plan.server_pid.map(cpu_now);
        let stages_start = plan.server_metrics.as_deref().map(scrape::fetch);
        let measure_start = Instant::now();
        shared.phase.store(PHASE_MEASURE, Ordering::Release);
        // Measured window.
        match plan.stop {
            Stop::After(d) => {
                while measure_start.elapsed() < d && !all_done() {
                    std::thread::sleep(
                        Duration::from_millis(10).min(d.saturating_sub(measure_start.elapsed())),
                    );
                    print("measure", &mut last_print);
                }
                shared.phase.store(PHASE_STOP, Ordering::Release);
            }
            Stop::Ops(_) => {}
        }
        // Drain: workers report done once nothing they sent is outstanding (bounded by the
        // request timeout, after which a session is dropped).
        while !all_done() {
            std::thread::sleep(Duration::from_millis(1));
            print("measure", &mut last_print);
        }
        shared.phase.store(PHASE_STOP, Ordering::Release);
        let cpu_end = plan.server_pid.map(cpu_now);
        let memory = plan.server_pid.map(procstat::memory_kb);
        let stages_end = plan.server_metrics.as_deref().map(scrape::fetch);
        shared.close.store(true, Ordering::Release);
        let mut tally = Tally::new();
        for h in handles {
            match h.join() {
                Ok(t) => tally.merge(t),
                Err(_) => tally.problems.push("a bench thread panicked".into()),
            }
        }
        (
            tally,
            measure_start,
            (cpu_start, cpu_end, memory),
            (stages_start, stages_end),
        )
    });

    let end = tally.last_measured_reply.unwrap_or(measure_start);
    let measured_s = end.saturating_duration_since(measure_start).as_secs_f64();
    let answered = tally.ok + tally.measured_errors();
    let mut tally = tally;
    let server = match (plan.server_pid, cpu_window) {
        (Some(pid), (Some(a), Some(b), Some(mem))) => {
            let usage = (|| -> Result<ServerUsage, String> {
                let cpu_us = b?.saturating_sub(a?);
                let (peak, rss) = mem?;
                Ok(ServerUsage {
                    pid,
                    cpu_us,
                    cpu_us_per_op: if answered > 0 {
                        cpu_us as f64 / answered as f64
                    } else {
                        0.0
                    },
                    peak_rss_kb: peak,
                    rss_kb: rss,
                })
            })();
            match usage {
                Ok(u) => Some(u),
                Err(e) => {
                    tally.problems.push(format!("--server-pid {pid}: {e}"));
                    None
                }
            }
        }
        _ => None,
    };

    let server_stages = match stage_window {
        (Some(Ok(before)), Some(Ok(after))) => {
            let means = scrape::window(&before, &after);
            if means.is_empty() {
                tally.problems.push(
                    "--server-metrics: no rzk_stage_seconds moved (not an rzk server?)".into(),
                );
            }
            Some(means)
        }
        (Some(Err(e)), _) | (_, Some(Err(e))) => {
            tally.problems.push(format!("--server-metrics: {e}"));
            None
        }
        _ => None,
    };

    if !plan.keep {
        if let Some(w) = cleanup(plan, tls, &base, &tally.created) {
            eprintln!("rzk bench: {w}");
        }
    }

    Ok(report::build(
        report::RunFacts {
            label: plan.label.clone(),
            hosts: plan.hosts.join(","),
            workload: plan.workload.to_string(),
            sessions: plan.sessions,
            inflight: plan.inflight,
            threads: plan.threads,
            value_size: plan.value_size,
            keys: plan.keys,
            multi_ops: plan.multi_ops,
            base_path: base,
            started_unix_s: started.as_secs(),
            measured_s,
            server,
            server_stages,
            mixed: matches!(plan.workload, Workload::Mixed { .. }),
            tls: negotiated,
        },
        &tally,
    ))
}
