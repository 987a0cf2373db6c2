//! The leader core's own cost per batch and per transaction (no I/O): one batch of 1, 16 or
//! 256 transactions of 100 bytes proposed to a 3-voter ensemble, its log write completed,
//! one follower's ACK, and the commit that follows. Criterion's throughput is transactions
//! per second of core CPU; the disk and network costs are the WAL's and the transport's.
//!
//! Run: `cargo bench -p rzk-quorum --bench leader`.

use std::collections::BTreeSet;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rzk_quorum::{
    Action, Config, Entry, Input, Message, Peer, PeerState, Persisted, Plant, Vote, Zxid,
};

const BATCH_TXN_COUNTS: [usize; 3] = [1, 16, 256];
const DATA_BYTES: usize = 100;

fn config() -> Config {
    Config {
        me: 1,
        voters: BTreeSet::from([1, 2, 3]),
        observers: BTreeSet::new(),
        tick_ms: 2_000,
        init_limit_ticks: 10,
        sync_limit_ticks: 5,
        finalize_wait_ms: 200,
        notify_interval_ms: 200,
        diff_window_txns: 500,
        counter_limit: u32::MAX - 1,
        diff_chunk_txns: 256,
        plant: Plant::None,
    }
}

fn step(peer: &mut Peer, input: Input, out: &mut Vec<Action>) {
    out.clear();
    peer.step(input, out);
}

/// A leader of epoch 1 with follower 2 synced (3 stays away): every commit needs 2's ACK.
fn active_leader() -> Peer {
    let mut out = Vec::new();
    let mut peer = Peer::new(config(), Persisted::default(), 0);
    step(&mut peer, Input::Tick { now_ms: 1 }, &mut out);
    let vote = Vote {
        epoch: 0,
        zxid: Zxid::ZERO,
        leader: 1,
    };
    let notification = Message::Notification {
        vote,
        round: 1,
        state: PeerState::Looking,
    };
    for input in [
        Input::Message {
            from: 2,
            message: notification,
        },
        Input::Tick { now_ms: 1_000 },
        Input::Message {
            from: 2,
            message: Message::FollowerInfo {
                accepted_epoch: 0,
                last_zxid: Zxid::ZERO,
                observer: false,
            },
        },
        Input::DiskDone,
        Input::Message {
            from: 2,
            message: Message::AckEpoch {
                epoch: 1,
                fresh: true,
                current_epoch: 0,
                last_zxid: Zxid::ZERO,
                snap: false,
            },
        },
        Input::DiskDone,
        Input::Message {
            from: 2,
            message: Message::AckNewLeader { epoch: 1 },
        },
    ] {
        step(&mut peer, input, &mut out);
    }
    assert!(peer.status().serving, "the bench's leader must serve");
    peer
}

fn leader(c: &mut Criterion) {
    let mut group = c.benchmark_group("leader_batch");
    let data: Arc<[u8]> = vec![7u8; DATA_BYTES].into();
    for batch in BATCH_TXN_COUNTS {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let mut peer = active_leader();
            let mut out = Vec::new();
            b.iter(|| {
                let first = peer.next_zxid().expect("serving");
                let entries: Vec<Entry> = (0..batch as u32)
                    .map(|i| Entry {
                        zxid: Zxid::new(first.epoch, first.counter + i),
                        data: data.clone(),
                    })
                    .collect();
                let last = entries[batch - 1].zxid;
                out.clear();
                peer.propose(entries, &mut out).expect("serving");
                step(&mut peer, Input::DiskDone, &mut out);
                step(
                    &mut peer,
                    Input::Message {
                        from: 2,
                        message: Message::Ack { zxid: last },
                    },
                    &mut out,
                );
                assert_eq!(peer.status().committed, last);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, leader);
criterion_main!(benches);
