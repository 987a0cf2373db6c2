//! The whole ensemble in one process and one thread, driven by one seed (docs/SIMULATION.md).
//!
//! Owns: the simulated network, disks, clocks and clients, the fault schedule, and the
//! checkers that judge a run.
//! Never: read a real clock, spawn a thread, touch a socket or a file, or use unseeded
//! randomness: a seed must replay exactly, bit for bit.

pub mod checks;
pub mod cli;
mod host;
pub mod linearizability;
mod world;

use std::panic::{self, AssertUnwindSafe};

use rzk_quorum::Plant;

pub use checks::Violation;
pub use world::Stats;

use linearizability::{Verdict, Znode};

/// One simulated run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub voters: usize,
    pub observers: usize,
    pub clients: usize,
    /// Simulated milliseconds of faults, then `settle_ms` healed.
    pub fault_ms: u64,
    pub settle_ms: u64,
    /// The leader moves to the next epoch after this many zxids of one (small here, so runs
    /// exercise the rollover).
    pub counter_limit: u32,
    pub plant: Plant,
    pub trace: bool,
    /// The random fault schedule (off for scripted scenarios).
    pub random_faults: bool,
    /// Crash whoever leads at this simulated time.
    pub kill_leader_at_ms: Option<u64>,
    /// localSessionsEnabled (with upgrading): sessions live on their server until an
    /// ephemeral makes them global.
    pub local_sessions: bool,
}

impl SimConfig {
    /// The run `rzk sim` makes of a seed: voters alternate 3 and 5 unless fixed, one observer
    /// on every other seed.
    pub fn for_seed(seed: u64, voters: Option<usize>, plant: Plant) -> SimConfig {
        SimConfig {
            seed,
            voters: voters.unwrap_or(if seed.is_multiple_of(2) { 3 } else { 5 }),
            observers: (seed / 2 % 2) as usize,
            clients: 4,
            fault_ms: 8_000,
            settle_ms: 6_000,
            counter_limit: if seed.is_multiple_of(3) {
                40
            } else {
                u32::MAX - 1
            },
            plant,
            trace: false,
            random_faults: true,
            kill_leader_at_ms: None,
            local_sessions: seed % 4 == 3,
        }
    }
}

/// What one seed did.
#[derive(Debug, Clone)]
pub struct SeedOutcome {
    pub seed: u64,
    pub violations: Vec<Violation>,
    pub stats: Stats,
    /// Histories whose linearizability search gave up (bounded): not judged.
    pub unjudged_keys: usize,
}

/// Bound on the linearizability search per key, so one seed never runs away.
const LINEARIZABILITY_STATES_MAX: u64 = 2_000_000;

pub fn run(cfg: &SimConfig) -> SeedOutcome {
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut world = world::World::new(cfg.clone());
        world.run();
        world
    }));
    let mut world = match result {
        Ok(world) => world,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".to_owned());
            return SeedOutcome {
                seed: cfg.seed,
                violations: vec![Violation {
                    checker: "assertion",
                    detail: message,
                }],
                stats: Stats::default(),
                unjudged_keys: 0,
            };
        }
    };
    let mut unjudged_keys = 0;
    if world.checks.violations.is_empty() {
        let history: Vec<_> = world
            .history
            .iter()
            .enumerate()
            .filter(|(i, _)| !world.checks.dropped_reads.contains(i))
            .map(|(_, h)| h.clone())
            .collect();
        match linearizability::check_per_key(&Znode(None), &history, LINEARIZABILITY_STATES_MAX) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable { explanation } => {
                world.checks.violation("linearizability", explanation)
            }
            Verdict::GaveUp { .. } => unjudged_keys += 1,
        }
    }
    debug_assert_eq!(world.plant(), cfg.plant);
    SeedOutcome {
        seed: cfg.seed,
        violations: world.checks.violations.clone(),
        stats: world.stats.clone(),
        unjudged_keys,
    }
}

/// Runs seeds `start..start + count`, shows `each` every outcome, and returns the outcomes
/// with violations, in order.
pub fn explore(
    start: u64,
    count: u64,
    voters: Option<usize>,
    plant: Plant,
    mut each: impl FnMut(&SeedOutcome),
) -> Vec<SeedOutcome> {
    let mut failed = Vec::new();
    for seed in start..start.saturating_add(count) {
        let outcome = run(&SimConfig::for_seed(seed, voters, plant));
        each(&outcome);
        if !outcome.violations.is_empty() {
            failed.push(outcome);
        }
    }
    failed
}
