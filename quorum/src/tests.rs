//! One peer driven by hand: each test feeds the exact messages and disk completions of one
//! rule's scenario and checks what comes out. The simulator explores the combinations; these
//! pin down the rules one at a time (zab-notes §2 names the bug each one prevents).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::*;

fn config(me: Sid) -> Config {
    Config {
        me,
        voters: BTreeSet::from([1, 2, 3]),
        observers: BTreeSet::new(),
        tick_ms: 100,
        init_limit_ticks: 10,
        sync_limit_ticks: 3,
        finalize_wait_ms: 50,
        notify_interval_ms: 50,
        diff_window_txns: 100,
        counter_limit: u32::MAX - 1,
        diff_chunk_txns: 8,
        plant: Plant::None,
    }
}

fn entry(epoch: u32, counter: u32) -> Entry {
    Entry {
        zxid: Zxid::new(epoch, counter),
        data: Arc::from(vec![epoch as u8, counter as u8]),
    }
}

fn persisted(epoch: u32, counters: u32) -> Persisted {
    Persisted {
        accepted_epoch: epoch,
        current_epoch: epoch,
        snapshot_zxid: Zxid::ZERO,
        log: (1..=counters).map(|c| entry(epoch, c)).collect(),
    }
}

fn sends(out: &[Action]) -> Vec<(Sid, Message)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send { to, message } => Some((*to, message.clone())),
            _ => None,
        })
        .collect()
}

fn step(peer: &mut Peer, input: Input) -> Vec<Action> {
    let mut out = Vec::new();
    peer.step(input, &mut out);
    out
}

fn message(peer: &mut Peer, from: Sid, message: Message) -> Vec<Action> {
    step(peer, Input::Message { from, message })
}

/// A peer (sid 2) that has decided to follow sid 1: 3 says it follows 1, then 1 says it
/// leads (one server's claim alone is not enough: it could be a deposed leader's).
fn follower(p: Persisted) -> Peer {
    let mut peer = Peer::new(config(2), p, 0);
    step(&mut peer, Input::Tick { now_ms: 1 });
    let vote = Vote {
        epoch: 9,
        zxid: Zxid::ZERO,
        leader: 1,
    };
    let out = message(
        &mut peer,
        1,
        Message::Notification {
            vote,
            round: 1,
            state: PeerState::Leading,
        },
    );
    assert!(sends(&out).is_empty(), "one claim alone is not followed");
    let out = message(
        &mut peer,
        3,
        Message::Notification {
            vote,
            round: 1,
            state: PeerState::Following,
        },
    );
    assert!(matches!(
        sends(&out)[..],
        [(1, Message::FollowerInfo { .. })]
    ));
    peer
}

#[test]
fn a_learner_refuses_a_leader_of_an_older_epoch() {
    let mut peer = follower(persisted(5, 3));
    let out = message(&mut peer, 1, Message::LeaderInfo { epoch: 4 });
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Role(Role::Looking { .. }))));
    assert!(!out.iter().any(|a| matches!(a, Action::Disk(_))));
}

#[test]
fn ackepoch_waits_for_accepted_epoch_to_be_durable() {
    let mut peer = follower(persisted(5, 3));
    let out = message(&mut peer, 1, Message::LeaderInfo { epoch: 6 });
    assert!(
        sends(&out).is_empty(),
        "nothing before the epoch is durable"
    );
    assert!(matches!(
        out[..],
        [Action::Disk(DiskRequest::WriteAcceptedEpoch(6))]
    ));
    let out = step(&mut peer, Input::DiskDone);
    match &sends(&out)[..] {
        [(
            1,
            Message::AckEpoch {
                epoch: 6,
                fresh: true,
                current_epoch: 5,
                last_zxid,
                snap: false,
            },
        )] => assert_eq!(*last_zxid, Zxid::new(5, 3)),
        other => panic!("expected a fresh ACKEPOCH, got {other:?}"),
    }
}

/// ZOOKEEPER-3911, -4643, -4685: the synced entries, then currentEpoch, are durable before
/// NEWLEADER-ACK, and no proposal is acked before it.
#[test]
fn newleader_ack_follows_the_durable_history_and_epoch_and_precedes_every_ack() {
    let mut peer = follower(persisted(5, 3));
    message(&mut peer, 1, Message::LeaderInfo { epoch: 6 });
    step(&mut peer, Input::DiskDone);
    let out = message(
        &mut peer,
        1,
        Message::Diff {
            entries: vec![entry(5, 4)],
        },
    );
    assert!(matches!(out[..], [Action::Disk(DiskRequest::Append(_))]));
    let out = message(
        &mut peer,
        1,
        Message::NewLeader {
            epoch: 6,
            last: Zxid::new(5, 4),
            committed: Zxid::new(5, 3),
        },
    );
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Disk(DiskRequest::WriteCurrentEpoch(6)))));
    assert!(sends(&out).is_empty());
    let out = message(
        &mut peer,
        1,
        Message::Proposal {
            entries: vec![entry(6, 1)],
        },
    );
    assert!(
        sends(&out).is_empty(),
        "a proposal is never acked on receipt"
    );
    // The DIFF's append completes: still nothing to say.
    assert!(sends(&step(&mut peer, Input::DiskDone)).is_empty());
    assert_eq!(peer.status().current_epoch, 5);
    // currentEpoch is durable: NEWLEADER-ACK, and only then the proposal's ACK.
    let out = step(&mut peer, Input::DiskDone);
    assert!(matches!(
        sends(&out)[..],
        [(1, Message::AckNewLeader { epoch: 6 })]
    ));
    assert_eq!(peer.status().current_epoch, 6);
    let out = step(&mut peer, Input::DiskDone);
    match &sends(&out)[..] {
        [(1, Message::Ack { zxid })] => assert_eq!(*zxid, Zxid::new(6, 1)),
        other => panic!("expected the proposal's ACK, got {other:?}"),
    }
}

#[test]
fn trunc_drops_the_uncommitted_tail_and_the_vote_forgets_it() {
    let mut peer = follower(persisted(5, 6));
    message(&mut peer, 1, Message::LeaderInfo { epoch: 5 });
    let out = message(
        &mut peer,
        1,
        Message::Trunc {
            after: Zxid::new(5, 4),
        },
    );
    assert!(out.iter().any(
        |a| matches!(a, Action::Disk(DiskRequest::Truncate { after }) if *after == Zxid::new(5, 4))
    ));
    assert_eq!(peer.status().last, Zxid::new(5, 4));
    assert_eq!(peer.status().durable, Zxid::new(5, 4));
}

#[test]
#[should_panic(expected = "COMMIT of")]
fn a_commit_of_an_unknown_proposal_stops_the_server() {
    let mut peer = follower(persisted(5, 3));
    message(&mut peer, 1, Message::LeaderInfo { epoch: 5 });
    message(
        &mut peer,
        1,
        Message::NewLeader {
            epoch: 5,
            last: Zxid::new(5, 3),
            committed: Zxid::new(5, 3),
        },
    );
    message(
        &mut peer,
        1,
        Message::Commit {
            zxid: Zxid::new(5, 9),
        },
    );
}

/// Leader side: sid 1 wins the election with votes from 2 and hears FOLLOWERINFO from 2.
fn leader_with_follower(p: Persisted, follower_last: Zxid) -> (Peer, Vec<Action>) {
    leader_with_follower_asking(p, follower_last, false)
}

/// The same, the follower's ACKEPOCH asking for a snapshot or not.
fn leader_with_follower_asking(
    p: Persisted,
    follower_last: Zxid,
    snap: bool,
) -> (Peer, Vec<Action>) {
    let mut peer = Peer::new(config(1), p, 0);
    step(&mut peer, Input::Tick { now_ms: 1 });
    let own = peer.status();
    let vote = Vote {
        epoch: own.current_epoch,
        zxid: own.durable,
        leader: 1,
    };
    message(
        &mut peer,
        2,
        Message::Notification {
            vote,
            round: 1,
            state: PeerState::Looking,
        },
    );
    step(&mut peer, Input::Tick { now_ms: 100 });
    assert_eq!(peer.status().state, PeerState::Leading);
    let out = message(
        &mut peer,
        2,
        Message::FollowerInfo {
            accepted_epoch: 5,
            last_zxid: follower_last,
            observer: false,
        },
    );
    assert!(matches!(
        out[..],
        [Action::Disk(DiskRequest::WriteAcceptedEpoch(6))]
    ));
    let out = step(&mut peer, Input::DiskDone);
    assert!(matches!(
        sends(&out)[..],
        [(2, Message::LeaderInfo { epoch: 6 })]
    ));
    let out = message(
        &mut peer,
        2,
        Message::AckEpoch {
            epoch: 6,
            fresh: true,
            current_epoch: 5,
            last_zxid: follower_last,
            snap,
        },
    );
    (peer, out)
}

#[test]
fn a_follower_behind_gets_a_diff_then_newleader() {
    let (_, out) = leader_with_follower(persisted(5, 4), Zxid::new(5, 2));
    let sent = sends(&out);
    assert!(matches!(&sent[0], (2, Message::Diff { entries }) if entries.len() == 2));
    assert!(
        matches!(&sent[1], (2, Message::NewLeader { epoch: 6, last, .. }) if *last == Zxid::new(5, 4))
    );
}

/// The follower's tail of epoch 4 was never committed: the leader, which moved on to epoch
/// 5 with a shorter epoch-4 history, truncates it to the last entry both hold.
#[test]
fn a_follower_with_an_uncommitted_tail_of_an_older_epoch_gets_trunc() {
    let mut p = persisted(4, 4);
    p.log.extend([entry(5, 1), entry(5, 2)]);
    p.accepted_epoch = 5;
    p.current_epoch = 5;
    let (_, out) = leader_with_follower(p, Zxid::new(4, 7));
    let sent = sends(&out);
    assert!(matches!(&sent[0], (2, Message::Trunc { after }) if *after == Zxid::new(4, 4)));
    assert!(matches!(&sent[1], (2, Message::Diff { entries }) if entries.len() == 2));
}

/// No entry both hold in the follower's last epoch: the whole state goes over.
#[test]
fn a_follower_diverging_across_epochs_gets_a_snapshot() {
    let (_, out) = leader_with_follower(persisted(5, 4), Zxid::new(4, 9));
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::SendSnapshot { to: 2, .. })));
}

/// A follower whose tree differed from its leader's asks for the whole state, even when its
/// log says it is up to date: its log is what it diverged with.
#[test]
fn a_follower_that_diverged_gets_a_snapshot_whatever_its_log_says() {
    let (_, out) = leader_with_follower_asking(persisted(5, 4), Zxid::new(5, 4), true);
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::SendSnapshot { to: 2, .. })));
    let (_, out) = leader_with_follower_asking(persisted(5, 4), Zxid::new(5, 4), false);
    assert!(!out.iter().any(|a| matches!(a, Action::SendSnapshot { .. })));
}

#[test]
fn a_learner_that_diverged_asks_for_a_snapshot_until_it_has_one() {
    let mut peer = follower(persisted(5, 3));
    step(&mut peer, Input::Diverged);
    message(&mut peer, 1, Message::LeaderInfo { epoch: 6 });
    let out = step(&mut peer, Input::DiskDone);
    assert!(matches!(
        sends(&out)[..],
        [(1, Message::AckEpoch { snap: true, .. })]
    ));
    let data: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"state"[..]);
    message(
        &mut peer,
        1,
        Message::Snap {
            zxid: Zxid::new(5, 3),
            data,
        },
    );
    assert!(!peer.wants_snapshot);
}

/// ZooKeeper's "Follower is ahead of the leader": the follower may hold something committed
/// that this leader lacks.
#[test]
fn a_leader_behind_a_follower_steps_down() {
    let (_, out) = leader_with_follower(persisted(5, 4), Zxid::new(5, 9));
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Role(Role::Looking { .. }))));
    assert!(!sends(&out)
        .iter()
        .any(|(_, m)| matches!(m, Message::Diff { .. } | Message::Trunc { .. })));
}

#[test]
fn commits_wait_for_a_quorum_including_the_leaders_own_fsync() {
    let (mut peer, _) = leader_with_follower(persisted(5, 2), Zxid::new(5, 2));
    // currentEpoch durable, then the follower's NEWLEADER-ACK: the leader serves.
    step(&mut peer, Input::DiskDone);
    let out = message(&mut peer, 2, Message::AckNewLeader { epoch: 6 });
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Role(Role::Leading { epoch: 6, .. }))));
    assert_eq!(peer.next_zxid(), Some(Zxid::new(6, 1)));
    let mut out = Vec::new();
    peer.propose(vec![entry(6, 1)], &mut out).unwrap();
    assert!(!out.iter().any(|a| matches!(a, Action::Apply(_))));
    // The follower's ack alone is not a quorum of 3 with the leader's fsync outstanding...
    let out = message(
        &mut peer,
        2,
        Message::Ack {
            zxid: Zxid::new(6, 1),
        },
    );
    assert!(!out.iter().any(|a| matches!(a, Action::Apply(_))));
    // ...the leader's own fsync makes two of three.
    let out = step(&mut peer, Input::DiskDone);
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Apply(e) if e.last().unwrap().zxid == Zxid::new(6, 1))));
    assert_eq!(peer.status().committed, Zxid::new(6, 1));
}

#[test]
fn votes_name_only_the_durable_tail_and_wait_for_the_disk_queue() {
    let mut peer = follower(persisted(5, 3));
    message(&mut peer, 1, Message::LeaderInfo { epoch: 5 });
    message(
        &mut peer,
        1,
        Message::Diff {
            entries: vec![entry(5, 4)],
        },
    );
    // The leader goes away while the append is outstanding.
    let out = step(&mut peer, Input::Disconnected { peer: 1 });
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Role(Role::Looking { .. }))));
    assert!(
        !sends(&out)
            .iter()
            .any(|(_, m)| matches!(m, Message::Notification { .. })),
        "no vote while a disk request is outstanding"
    );
    let out = step(&mut peer, Input::DiskDone);
    let votes: Vec<Vote> = sends(&out)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Notification { vote, .. } => Some(vote),
            _ => None,
        })
        .collect();
    assert!(!votes.is_empty());
    assert!(votes.iter().all(|v| v.zxid == Zxid::new(5, 4)));
}

/// standaloneEnabled=false with one server: a quorum of one elects itself and commits on
/// its own fsync.
#[test]
fn a_quorum_of_one_leads_alone_and_commits_on_its_own_sync() {
    let cfg = Config {
        voters: BTreeSet::from([1]),
        ..config(1)
    };
    let mut peer = Peer::new(cfg, persisted(5, 2), 0);
    let mut now = 1;
    for _ in 0..100 {
        let mut out = step(&mut peer, Input::Tick { now_ms: now });
        now += 10;
        // Carry out the disk requests at once, and those their completions raise.
        let mut pending = out.iter().filter(|a| matches!(a, Action::Disk(_))).count();
        while pending > 0 {
            pending -= 1;
            out = step(&mut peer, Input::DiskDone);
            pending += out.iter().filter(|a| matches!(a, Action::Disk(_))).count();
        }
        if peer.status().serving {
            break;
        }
    }
    let status = peer.status();
    assert_eq!(status.state, PeerState::Leading);
    assert!(status.serving);
}
