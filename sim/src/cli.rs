//! `rzk sim`: explore seeds, or replay one with its trace.

use std::time::Instant;

use rzk_quorum::Plant;

use crate::{explore, run, SeedOutcome, SimConfig};

#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// How many seeds to explore, from --seed on.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// The first seed (decimal or 0x-hex).
    #[arg(long, default_value = "0", value_parser = parse_seed)]
    pub seed: u64,
    /// Voters per ensemble: 3 or 5 (default: alternate by seed).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["3", "5"]))]
    pub voters: Option<String>,
    /// Run a deliberately wrong core to prove the checkers: ack-before-fsync, skip-trunc,
    /// accept-old-epoch, commit-out-of-order.
    #[arg(long, default_value = "none")]
    pub plant: Plant,
    /// Replay --seed alone and print its event trace.
    #[arg(long)]
    pub trace: bool,
}

fn parse_seed(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("not a seed: {s:?}: {e}"))
}

fn replay_command(outcome: &SeedOutcome, args: &SimArgs) -> String {
    let mut command = format!("rzk sim --seed {} --trace", outcome.seed);
    if let Some(v) = &args.voters {
        command.push_str(&format!(" --voters {v}"));
    }
    if args.plant != Plant::None {
        command.push_str(&format!(" --plant {}", args.plant));
    }
    command
}

/// Runs the command; false when a seed failed. The last line printed is always
/// `sim: N seeds, V violations`.
#[allow(clippy::disallowed_methods)] // the report's wall time; never read inside a run
pub fn run_cli(args: &SimArgs) -> bool {
    let voters = args.voters.as_deref().map(|v| v.parse().expect("3 or 5"));
    if args.trace {
        let mut cfg = SimConfig::for_seed(args.seed, voters, args.plant);
        cfg.trace = true;
        let outcome = run(&cfg);
        for v in &outcome.violations {
            println!("violation: {}: {}", v.checker, v.detail);
        }
        let count = outcome.violations.len();
        println!("sim: 1 seeds, {count} violations");
        return count == 0;
    }
    // A core's failed assertion is a finding reported below with its seed, not noise on
    // stderr. (Only here: the hook is process-wide, and tests run seeds on several threads.)
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let mut failover_ms = Vec::new();
    let mut unjudged = 0;
    let mut acked = 0;
    let mut moved = 0;
    let failed = explore(args.seed, args.seeds, voters, args.plant, |o| {
        failover_ms.extend_from_slice(&o.stats.failover_ms);
        unjudged += o.unjudged_keys;
        acked += o.stats.acked_writes;
        moved += o.stats.moved_writes;
    });
    std::panic::set_hook(hook);
    let secs = started.elapsed().as_secs_f64();
    for outcome in &failed {
        let v = &outcome.violations[0];
        println!(
            "seed {}: {}: {}\n  replay: {}",
            outcome.seed,
            v.checker,
            v.detail,
            replay_command(outcome, args)
        );
    }
    failover_ms.sort_unstable();
    let pick = |q: f64| {
        failover_ms
            .get(((failover_ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{} seeds in {:.1} s ({:.0} seeds/s); {} acknowledged writes; leader failover p50 {} ms, \
         p90 {} ms, max {} ms over {} failovers; {} writes refused as their session moved; {} key \
         histories too large to judge",
        args.seeds,
        secs,
        args.seeds as f64 / secs.max(1e-9),
        acked,
        pick(0.5),
        pick(0.9),
        pick(1.0),
        failover_ms.len(),
        moved,
        unjudged
    );
    println!("sim: {} seeds, {} violations", args.seeds, failed.len());
    failed.is_empty()
}
