//! Goal: the quorum core survives fault-heavy runs. Method: explore a bounded range of seeds
//! (others than `rzk sim --seeds` in scripts/test.sh covers) with no plant; any violation fails
//! the test with its seed and the command that replays it. SEED=N moves the range.

#[test]
fn two_hundred_seeds_without_a_violation() {
    let start = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let failed = rzk_sim::explore(start, 200, None, rzk_quorum::Plant::None, |_| {});
    let report: Vec<String> = failed
        .iter()
        .map(|o| {
            let v = &o.violations[0];
            format!(
                "seed {}: {}: {}\n  replay: rzk sim --seed {} --trace",
                o.seed, v.checker, v.detail, o.seed
            )
        })
        .collect();
    assert!(failed.is_empty(), "{}", report.join("\n"));
}

#[test]
fn a_seed_replays_exactly() {
    let cfg = rzk_sim::SimConfig::for_seed(7, None, rzk_quorum::Plant::None);
    let a = rzk_sim::run(&cfg);
    let b = rzk_sim::run(&cfg);
    assert_eq!(a.stats.events, b.stats.events);
    assert_eq!(a.stats.acked_writes, b.stats.acked_writes);
    assert_eq!(a.stats.failover_ms, b.stats.failover_ms);
    assert!(a.stats.acked_writes > 100, "the run did some work");
}
