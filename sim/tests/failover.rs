//! Goal: a new leader serves soon after the old one dies. Method: a healthy ensemble under
//! client load, no other fault; the leader is killed at 3 s of simulated time; the time until
//! another server leads and serves is read from the simulated clock (deterministic, not a
//! timed test). Election plus discovery plus sync must fit in a few hundred milliseconds.

use rzk_quorum::Plant;
use rzk_sim::{run, SimConfig};

/// Simulated milliseconds from the leader's crash to a new leader serving, at most. The tail
/// is slow fsyncs: a server votes only once its old role's disk requests are durable, and the
/// simulated disk takes 20-120 ms for one request in 33.
const FAILOVER_MS_MAX: u64 = 500;

#[test]
fn a_new_leader_serves_within_a_few_hundred_ms_of_the_old_ones_death() {
    let mut all = Vec::new();
    for seed in 0..40 {
        let mut cfg = SimConfig::for_seed(seed, None, Plant::None);
        cfg.random_faults = false;
        cfg.kill_leader_at_ms = Some(3_000);
        let outcome = run(&cfg);
        assert!(
            outcome.violations.is_empty(),
            "seed {seed}: {:?}",
            outcome.violations
        );
        let failover = outcome.stats.failover_ms.clone();
        assert_eq!(
            failover.len(),
            1,
            "seed {seed}: one failover, got {failover:?}"
        );
        all.push((failover[0], seed, cfg.voters));
    }
    all.sort_unstable();
    let (worst, seed, voters) = all[all.len() - 1];
    println!(
        "failover after a leader kill: p50 {} ms, max {worst} ms (seed {seed}, {voters} voters)",
        all[all.len() / 2].0
    );
    assert!(
        worst <= FAILOVER_MS_MAX,
        "seed {seed} ({voters} voters) took {worst} ms"
    );
}
