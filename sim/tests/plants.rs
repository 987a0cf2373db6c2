//! Goal: prove each checker can fail. Method: run a deliberately wrong core (quorum's plants)
//! over the first seeds and require a violation from the expected checker within a stated
//! number of seeds (docs/SIMULATION.md lists where each is first caught today).

use rzk_quorum::Plant;

fn caught_within(plant: Plant, seeds: u64, checkers: &[&str]) {
    let failed = rzk_sim::explore(0, seeds, None, plant, |_| {});
    let first = failed
        .first()
        .unwrap_or_else(|| panic!("{plant}: no violation in {seeds} seeds"));
    let checker = first.violations[0].checker;
    assert!(
        checkers.contains(&checker),
        "{plant}: seed {} fired {checker} ({}), expected one of {checkers:?}",
        first.seed,
        first.violations[0].detail
    );
}

#[test]
fn ack_before_fsync_is_caught() {
    caught_within(Plant::AckBeforeFsync, 5, &["ack-means-durable"]);
}

#[test]
fn skip_trunc_is_caught() {
    caught_within(
        Plant::SkipTrunc,
        60,
        &["committed-order", "linearizability"],
    );
}

#[test]
fn commit_out_of_order_is_caught() {
    caught_within(
        Plant::CommitOutOfOrder,
        60,
        &["committed-order", "liveness", "linearizability"],
    );
}

#[test]
fn accept_old_epoch_is_caught() {
    caught_within(Plant::AcceptOldEpoch, 1000, &["epochs-only-grow"]);
}
