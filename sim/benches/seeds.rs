//! The simulator's own speed: one seed of `rzk sim` (3 or 5 voters, 14 simulated seconds
//! with faults, the linearizability check at the end), so CI time per seed stays predictable.
//!
//! Run: `cargo bench -p rzk-sim --bench seeds`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rzk_quorum::Plant;
use rzk_sim::{run, SimConfig};

fn seeds(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim_seed");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for voters in [3, 5] {
        group.bench_with_input(
            BenchmarkId::from_parameter(voters),
            &voters,
            |b, &voters| {
                let mut seed = 0;
                b.iter(|| {
                    seed += 1;
                    let outcome = run(&SimConfig::for_seed(seed, Some(voters), Plant::None));
                    assert!(outcome.violations.is_empty(), "seed {seed}");
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, seeds);
criterion_main!(benches);
