//! LEADING: discovery, synchronization of each learner, broadcast and commit, `sync` rounds and
//! the epoch rollover.
//!
//! 1. Discovery: once a quorum (this peer included) has sent FOLLOWERINFO, the new epoch is one
//!    above every acceptedEpoch among them; it is made durable here, then sent as LEADERINFO.
//!    A quorum of *fresh* ACKEPOCHs (each from a server that moved to this epoch just now)
//!    establishes it, and then currentEpoch is written. A learner whose (currentEpoch, last
//!    zxid) is ahead of ours means this peer must not lead: it steps down.
//! 2. Synchronization: each learner that acked the epoch gets TRUNC, SNAP or nothing, then the
//!    entries it lacks, then NEWLEADER naming the last one. From then on it receives every
//!    proposal. Once a quorum has acked NEWLEADER and currentEpoch is durable here, the whole
//!    history is committed, UPTODATE goes out, and the pipeline may propose.
//! 3. Broadcast: a batch is one PROPOSAL per follower and one log write here; an entry commits
//!    when a quorum of voters (this peer's fsync included) has it durable. Commits advance
//!    strictly in zxid order: acks are cumulative, and the commit point is the quorum-th
//!    highest of them.

use std::collections::{BTreeMap, BTreeSet};

use crate::peer::{DiskKind, Peer, RoleState};
use crate::plant::Plant;
use crate::{Action, Config, DiskRequest, Entry, Message, Role, Sid, Zxid};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Discovery,
    Sync,
    Active,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// FOLLOWERINFO received.
    Info { accepted_epoch: u32 },
    /// ACKEPOCH received; `fresh` counts towards establishing the epoch.
    EpochAcked {
        fresh: bool,
        current_epoch: u32,
        last_zxid: Zxid,
        snap: bool,
    },
    /// Sync stream and NEWLEADER sent; receives proposals from here on.
    Synced { newleader_zxid: Zxid },
    /// NEWLEADER acked: its acks count.
    NewLeaderAcked,
}

pub(crate) struct Learner {
    observer: bool,
    stage: Stage,
    /// Every entry up to here is durable on the learner (its cumulative ACK).
    acked: Zxid,
    /// The last entry sent to it.
    sent: Zxid,
    last_heard_ms: u64,
    ping_round: u64,
}

struct SyncWait {
    id: u64,
    /// None: a client of this peer asked.
    origin: Option<Sid>,
    zxid: Zxid,
    round: u64,
}

pub(crate) struct Leading {
    /// The epoch being established or led (0 until a quorum has reported).
    pub(crate) epoch: u32,
    phase: Phase,
    accepted_written: bool,
    current_written: bool,
    pub(crate) learners: BTreeMap<Sid, Learner>,
    /// The history this leader starts from: committed once a quorum acks NEWLEADER.
    initial_tail: Zxid,
    since_ms: u64,
    ping_round: u64,
    next_ping_ms: u64,
    syncs: Vec<SyncWait>,
    /// An epoch rollover in flight: the new epoch, the last entry of the old one, and the
    /// voters that freshly acked it.
    rollover: Option<(u32, Zxid, BTreeSet<Sid>)>,
    /// `Plant::CommitOutOfOrder`: each batch's last zxid → (the zxid before it, who acked it).
    planted_batches: BTreeMap<Zxid, (Zxid, BTreeSet<Sid>)>,
}

impl Leading {
    /// How many voters among the learners satisfy `pred` (the leader itself not counted).
    fn voters_where(&self, voters: &BTreeSet<Sid>, pred: impl Fn(&Learner) -> bool) -> usize {
        self.learners
            .iter()
            .filter(|(sid, x)| voters.contains(sid) && pred(x))
            .count()
    }

    pub(crate) fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }

    pub(crate) fn learner_statuses(&self) -> Vec<crate::peer::LearnerStatus> {
        self.learners
            .iter()
            .map(|(&sid, l)| crate::peer::LearnerStatus {
                sid,
                observer: l.observer,
                synced: matches!(l.stage, Stage::NewLeaderAcked),
                acked: l.acked,
            })
            .collect()
    }

    pub(crate) fn own_syncs(&self) -> Vec<u64> {
        self.syncs
            .iter()
            .filter(|s| s.origin.is_none())
            .map(|s| s.id)
            .collect()
    }

    pub(crate) fn next_zxid(&self, peer: &Peer) -> Option<Zxid> {
        if self.phase != Phase::Active || self.rollover.is_some() {
            return None;
        }
        let last = peer.log.last();
        if last.epoch < self.epoch {
            return Some(Zxid::new(self.epoch, 1));
        }
        last.next(peer.cfg.counter_limit)
    }
}

impl Peer {
    fn leading(&mut self) -> &mut Leading {
        self.leading_with_config().1
    }

    /// The leader's state beside the configuration, borrowed apart, so a count over voters
    /// needs no copy of the voter set.
    fn leading_with_config(&mut self) -> (&Config, &mut Leading) {
        match &mut self.role {
            RoleState::Leading(l) => (&self.cfg, l),
            _ => unreachable!("not leading"),
        }
    }

    pub(crate) fn become_leading(&mut self, out: &mut Vec<Action>) {
        assert_eq!(
            self.log.durable(),
            self.log.last(),
            "leading with a tail that is not durable"
        );
        self.next_term();
        self.role = RoleState::Leading(Leading {
            epoch: 0,
            phase: Phase::Discovery,
            accepted_written: false,
            current_written: false,
            learners: BTreeMap::new(),
            initial_tail: self.log.last(),
            since_ms: self.now_ms,
            ping_round: 0,
            next_ping_ms: self.now_ms,
            syncs: Vec::new(),
            rollover: None,
            planted_batches: BTreeMap::new(),
        });
        self.maybe_choose_epoch(out);
    }

    fn step_down(&mut self, reason: &'static str, out: &mut Vec<Action>) {
        self.become_looking(reason, out);
    }

    pub(crate) fn leader_message(&mut self, from: Sid, message: Message, out: &mut Vec<Action>) {
        let now = self.now_ms;
        if let Message::FollowerInfo {
            accepted_epoch,
            last_zxid: _,
            observer,
        } = message
        {
            if observer != self.cfg.observers.contains(&from) {
                out.push(Action::Disconnect { peer: from });
                return;
            }
            // A new connection from a known learner starts it over.
            let l = self.leading();
            l.learners.insert(
                from,
                Learner {
                    observer,
                    stage: Stage::Info { accepted_epoch },
                    acked: Zxid::ZERO,
                    sent: Zxid::ZERO,
                    last_heard_ms: now,
                    ping_round: 0,
                },
            );
            if l.accepted_written {
                let epoch = l.epoch;
                self.send(from, Message::LeaderInfo { epoch }, out);
            } else {
                self.maybe_choose_epoch(out);
            }
            return;
        }
        let Some(learner) = self.leading().learners.get_mut(&from) else {
            out.push(Action::Disconnect { peer: from });
            return;
        };
        learner.last_heard_ms = now;
        match message {
            Message::AckEpoch {
                epoch,
                fresh,
                current_epoch,
                last_zxid,
                snap,
            } => self.ack_epoch(from, epoch, fresh, current_epoch, last_zxid, snap, out),
            Message::AckNewLeader { epoch } => self.ack_new_leader(from, epoch, out),
            Message::Ack { zxid } => self.ack(from, zxid, out),
            Message::PingReply { round, touches } => {
                let l = self.leading();
                let learner = l.learners.get_mut(&from).expect("checked above");
                learner.ping_round = learner.ping_round.max(round);
                if !touches.is_empty() {
                    out.push(Action::Touched { sessions: touches });
                }
                self.complete_syncs(out);
            }
            Message::SyncRequest { id } => self.leader_sync(id, Some(from), out),
            Message::AckNewEpoch { epoch, fresh } => self.ack_new_epoch(from, epoch, fresh, out),
            _ => out.push(Action::Disconnect { peer: from }),
        }
    }

    /// Chooses the epoch once a quorum of voters (this one included) has reported.
    fn maybe_choose_epoch(&mut self, out: &mut Vec<Action>) {
        let quorum = self.cfg.quorum_size();
        let own_accepted = self.accepted_epoch;
        let (cfg, l) = self.leading_with_config();
        let voters = &cfg.voters;
        if l.epoch != 0 {
            return;
        }
        let reported: Vec<u32> = l
            .learners
            .iter()
            .filter(|(sid, _)| voters.contains(sid))
            .filter_map(|(_, learner)| match learner.stage {
                Stage::Info { accepted_epoch } => Some(accepted_epoch),
                _ => None,
            })
            .collect();
        if reported.len() + 1 < quorum {
            return;
        }
        let epoch = reported.into_iter().fold(own_accepted, u32::max) + 1;
        l.epoch = epoch;
        self.accepted_epoch = epoch;
        self.disk(DiskRequest::WriteAcceptedEpoch(epoch), out);
    }

    pub(crate) fn leader_disk_done(&mut self, kind: DiskKind, out: &mut Vec<Action>) {
        match kind {
            DiskKind::AcceptedEpoch(epoch) if self.leading().rollover.is_none() => {
                let l = self.leading();
                assert_eq!(epoch, l.epoch);
                l.accepted_written = true;
                let waiting: Vec<Sid> = l
                    .learners
                    .iter()
                    .filter(|(_, x)| matches!(x.stage, Stage::Info { .. }))
                    .map(|(&s, _)| s)
                    .collect();
                for sid in waiting {
                    self.send(sid, Message::LeaderInfo { epoch }, out);
                }
                self.maybe_establish(out);
            }
            DiskKind::CurrentEpoch(epoch) => {
                if self.leading().rollover.is_some() {
                    self.maybe_finish_rollover(out);
                } else {
                    assert_eq!(epoch, self.leading().epoch);
                    self.leading().current_written = true;
                    self.maybe_activate(out);
                }
            }
            DiskKind::Append(_) => self.try_commit(out),
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ack_epoch(
        &mut self,
        from: Sid,
        epoch: u32,
        fresh: bool,
        current_epoch: u32,
        last_zxid: Zxid,
        snap: bool,
        out: &mut Vec<Action>,
    ) {
        let own = (self.current_epoch, self.log.last());
        let l = self.leading();
        let learner = l.learners.get_mut(&from).expect("a learner");
        if epoch != l.epoch || !matches!(learner.stage, Stage::Info { .. }) {
            out.push(Action::Disconnect { peer: from });
            return;
        }
        if (current_epoch, last_zxid) > own {
            // ZooKeeper's "Follower is ahead of the leader": this peer's history may lack
            // something committed. Someone else must lead.
            return self.step_down("a follower is ahead of the leader", out);
        }
        learner.stage = Stage::EpochAcked {
            fresh,
            current_epoch,
            last_zxid,
            snap,
        };
        if l.phase == Phase::Discovery {
            self.maybe_establish(out);
        } else {
            self.sync_learner(from, out);
        }
    }

    fn maybe_establish(&mut self, out: &mut Vec<Action>) {
        let quorum = self.cfg.quorum_size();
        let (cfg, l) = self.leading_with_config();
        let voters = &cfg.voters;
        if l.phase != Phase::Discovery || !l.accepted_written {
            return;
        }
        let fresh = l.voters_where(voters, |x| {
            matches!(x.stage, Stage::EpochAcked { fresh: true, .. })
        });
        if fresh + 1 < quorum {
            return;
        }
        l.phase = Phase::Sync;
        let epoch = l.epoch;
        let acked: Vec<Sid> = l
            .learners
            .iter()
            .filter(|(_, x)| matches!(x.stage, Stage::EpochAcked { .. }))
            .map(|(&s, _)| s)
            .collect();
        assert_eq!(self.log.durable(), self.log.last());
        self.leading().initial_tail = self.log.last();
        self.disk(DiskRequest::WriteCurrentEpoch(epoch), out);
        for sid in acked {
            self.sync_learner(sid, out);
        }
    }

    /// Sends a learner what it lacks: TRUNC, SNAP or nothing, then the missing entries, then
    /// NEWLEADER. The choice follows ZooKeeper's LearnerHandler.syncFollower, with one rule
    /// kept strict: a TRUNC point must be an entry both hold in the same epoch (two logs that
    /// hold the same zxid agree up to it); anything else gets a SNAP.
    fn sync_learner(&mut self, sid: Sid, out: &mut Vec<Action>) {
        let l = self.leading();
        let epoch = l.epoch;
        let learner = l.learners.get(&sid).expect("a learner");
        let Stage::EpochAcked {
            last_zxid: peer_last,
            snap,
            ..
        } = learner.stage
        else {
            unreachable!("syncing a learner that has not acked the epoch");
        };
        let last = self.log.last();
        let from = if snap {
            out.push(Action::SendSnapshot {
                to: sid,
                zxid: self.committed,
            });
            self.committed
        } else if peer_last == last || self.log.contains(peer_last) {
            peer_last
        } else {
            let floor = self.log.floor(peer_last);
            if peer_last > self.log.base() && floor.epoch == peer_last.epoch {
                self.send(sid, Message::Trunc { after: floor }, out);
                floor
            } else {
                out.push(Action::SendSnapshot {
                    to: sid,
                    zxid: self.committed,
                });
                self.committed
            }
        };
        let entries: Vec<Entry> = self.log.range(from, last).cloned().collect();
        for chunk in entries.chunks(self.cfg.diff_chunk_txns.max(1)) {
            self.send(
                sid,
                Message::Diff {
                    entries: chunk.to_vec(),
                },
                out,
            );
        }
        let committed = self.committed;
        self.send(
            sid,
            Message::NewLeader {
                epoch,
                last,
                committed,
            },
            out,
        );
        let l = self.leading();
        let learner = l.learners.get_mut(&sid).expect("a learner");
        learner.stage = Stage::Synced {
            newleader_zxid: last,
        };
        learner.sent = last;
        // Joined while the epoch rolls over: it must move too, or the next proposals would be
        // of an epoch it has not accepted.
        if let Some((next, _, _)) = l.rollover {
            self.send(sid, Message::NewEpoch { epoch: next }, out);
        }
    }

    fn ack_new_leader(&mut self, from: Sid, epoch: u32, out: &mut Vec<Action>) {
        let l = self.leading();
        let learner = l.learners.get_mut(&from).expect("a learner");
        let Stage::Synced { newleader_zxid } = learner.stage else {
            out.push(Action::Disconnect { peer: from });
            return;
        };
        if epoch != l.epoch {
            out.push(Action::Disconnect { peer: from });
            return;
        }
        learner.stage = Stage::NewLeaderAcked;
        learner.acked = learner.acked.max(newleader_zxid);
        match l.phase {
            Phase::Active => {
                let committed = self.committed;
                self.send(from, Message::UpToDate { committed }, out);
                self.try_commit(out);
            }
            _ => self.maybe_activate(out),
        }
    }

    fn maybe_activate(&mut self, out: &mut Vec<Action>) {
        let quorum = self.cfg.quorum_size();
        let (cfg, l) = self.leading_with_config();
        let voters = &cfg.voters;
        if l.phase != Phase::Sync || !l.current_written {
            return;
        }
        let acked = l.voters_where(voters, |x| x.stage == Stage::NewLeaderAcked);
        if acked + 1 < quorum {
            return;
        }
        l.phase = Phase::Active;
        let tail = l.initial_tail;
        let epoch = l.epoch;
        let ready: Vec<Sid> = l
            .learners
            .iter()
            .filter(|(_, x)| x.stage == Stage::NewLeaderAcked)
            .map(|(&s, _)| s)
            .collect();
        self.apply_to(tail, out);
        let committed = self.committed;
        for sid in ready {
            self.send(sid, Message::UpToDate { committed }, out);
        }
        let next_zxid = self.next_zxid().unwrap_or(Zxid::new(epoch, 1));
        out.push(Action::Role(Role::Leading { epoch, next_zxid }));
        self.maybe_roll_over(out);
    }

    pub(crate) fn leader_propose(&mut self, entries: Vec<Entry>, out: &mut Vec<Action>) {
        let epoch = self.leading().epoch;
        let limit = self.cfg.counter_limit;
        for entry in &entries {
            assert_eq!(entry.zxid.epoch, epoch, "proposal outside the led epoch");
            assert!(
                entry.zxid.counter <= limit,
                "proposal past the counter limit"
            );
            self.log.push(entry.clone());
        }
        let last = self.log.last();
        let plant = self.cfg.plant;
        let l = self.leading();
        if plant == Plant::CommitOutOfOrder {
            let start = entries[0].zxid;
            let before = Zxid::new(start.epoch, start.counter - 1);
            l.planted_batches.insert(last, (before, BTreeSet::new()));
        }
        let followers: Vec<Sid> = l
            .learners
            .iter_mut()
            .filter(|(_, x)| {
                !x.observer && matches!(x.stage, Stage::Synced { .. } | Stage::NewLeaderAcked)
            })
            .map(|(&s, x)| {
                x.sent = last;
                s
            })
            .collect();
        for sid in followers {
            self.send(
                sid,
                Message::Proposal {
                    entries: entries.clone(),
                },
                out,
            );
        }
        self.disk(DiskRequest::Append(entries), out);
        self.maybe_roll_over(out);
    }

    fn ack(&mut self, from: Sid, zxid: Zxid, out: &mut Vec<Action>) {
        let plant = self.cfg.plant;
        let l = self.leading();
        let learner = l.learners.get_mut(&from).expect("a learner");
        if learner.observer || learner.stage != Stage::NewLeaderAcked {
            // Before NEWLEADER-ACK the learner's currentEpoch may still be older: an entry
            // durable there would lose an election to a shorter history of the new epoch, so
            // it must not count (zab-notes §2, ZOOKEEPER-4643).
            return;
        }
        if zxid > learner.sent {
            // An ack of something never sent: a confused peer. It resyncs.
            out.push(Action::Disconnect { peer: from });
            return;
        }
        learner.acked = learner.acked.max(zxid);
        if plant == Plant::CommitOutOfOrder {
            if let Some((_, acks)) = l.planted_batches.get_mut(&zxid) {
                acks.insert(from);
            }
        }
        self.try_commit(out);
    }

    /// Moves the commit point to the highest zxid a quorum of voters holds durably.
    fn try_commit(&mut self, out: &mut Vec<Action>) {
        let quorum = self.cfg.quorum_size();
        let me = self.cfg.me;
        let own = self.log.durable();
        if self.cfg.plant == Plant::CommitOutOfOrder {
            return self.planted_commit(out);
        }
        let (cfg, l) = self.leading_with_config();
        let voters = &cfg.voters;
        if l.phase != Phase::Active {
            return;
        }
        let mut acks: Vec<Zxid> = voters
            .iter()
            .map(|sid| {
                if *sid == me {
                    own
                } else {
                    l.learners
                        .get(sid)
                        .filter(|x| x.stage == Stage::NewLeaderAcked)
                        .map_or(Zxid::ZERO, |x| x.acked)
                }
            })
            .collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let point = acks[quorum - 1];
        if point > self.committed {
            self.commit_to(point, out);
        }
    }

    /// `Plant::CommitOutOfOrder`: each batch commits on its own quorum, earlier ones or not.
    fn planted_commit(&mut self, out: &mut Vec<Action>) {
        let quorum = self.cfg.quorum_size();
        let own = self.log.durable();
        let me = self.cfg.me;
        let committed = self.committed;
        let l = self.leading();
        if l.phase != Phase::Active {
            return;
        }
        if let Some((_, acks)) = l.planted_batches.get_mut(&own) {
            acks.insert(me);
        }
        let ready: Vec<(Zxid, Zxid)> = l
            .planted_batches
            .iter()
            .filter(|(end, (_, acks))| acks.len() >= quorum && **end > committed)
            .map(|(end, (start, _))| (*start, *end))
            .collect();
        for (start, end) in ready {
            self.leading().planted_batches.remove(&end);
            let batch: Vec<Entry> = self.log.range(start, end).cloned().collect();
            // Deliberately skips the ordered path: the pipeline sees this batch applied while
            // earlier ones may still be outstanding.
            out.push(Action::Apply(batch));
            self.committed = self.committed.max(end);
            self.send_commit(end, out);
        }
    }

    fn commit_to(&mut self, zxid: Zxid, out: &mut Vec<Action>) {
        self.apply_to(zxid, out);
        self.send_commit(zxid, out);
        self.complete_syncs(out);
        self.maybe_roll_over(out);
    }

    fn send_commit(&mut self, zxid: Zxid, out: &mut Vec<Action>) {
        let l = self.leading();
        let mut informs = Vec::new();
        let mut commits = Vec::new();
        for (&sid, x) in l.learners.iter_mut() {
            if !matches!(x.stage, Stage::Synced { .. } | Stage::NewLeaderAcked) {
                continue;
            }
            if x.observer && x.sent < zxid {
                informs.push((sid, x.sent));
                x.sent = zxid;
            } else {
                commits.push(sid);
            }
        }
        for (sid, sent) in informs {
            let entries: Vec<Entry> = self.log.range(sent, zxid).cloned().collect();
            self.send(sid, Message::Inform { entries }, out);
        }
        for sid in commits {
            self.send(sid, Message::Commit { zxid }, out);
        }
    }

    pub(crate) fn leader_sync(&mut self, id: u64, origin: Option<Sid>, out: &mut Vec<Action>) {
        let last = self.log.last();
        let now = self.now_ms;
        let l = self.leading();
        if l.phase != Phase::Active {
            match origin {
                None => out.push(Action::SyncDone { id, ok: false }),
                Some(sid) => out.push(Action::Disconnect { peer: sid }),
            }
            return;
        }
        // A quorum must answer a ping sent after this request: then this peer still led when
        // the sync arrived, and no other leader can have committed anything it lacks.
        l.ping_round += 1;
        let round = l.ping_round;
        l.syncs.push(SyncWait {
            id,
            origin,
            zxid: last,
            round,
        });
        l.next_ping_ms = now;
        self.ping(out);
        self.complete_syncs(out);
    }

    fn complete_syncs(&mut self, out: &mut Vec<Action>) {
        let quorum = self.cfg.quorum_size();
        let committed = self.committed;
        let (cfg, l) = self.leading_with_config();
        let voters = &cfg.voters;
        // The highest ping round a quorum (this leader included) has answered.
        let mut rounds: Vec<u64> = l
            .learners
            .iter()
            .filter(|(sid, x)| voters.contains(sid) && x.stage == Stage::NewLeaderAcked)
            .map(|(_, x)| x.ping_round)
            .chain([u64::MAX])
            .collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = rounds.get(quorum - 1).copied().unwrap_or(0);
        let mut done = Vec::new();
        l.syncs.retain(|s| {
            let ready = committed >= s.zxid && s.round <= confirmed;
            if ready {
                done.push((s.id, s.origin, s.zxid));
            }
            !ready
        });
        for (id, origin, zxid) in done {
            match origin {
                None => out.push(Action::SyncDone { id, ok: true }),
                Some(sid) => self.send(sid, Message::SyncReply { id, zxid }, out),
            }
        }
    }

    fn ping(&mut self, out: &mut Vec<Action>) {
        let now = self.now_ms;
        let interval = (self.cfg.tick_ms / 2).max(1);
        let l = self.leading();
        l.next_ping_ms = now + interval;
        let round = l.ping_round;
        let sids: Vec<Sid> = l.learners.keys().copied().collect();
        for sid in sids {
            self.send(sid, Message::Ping { round }, out);
        }
    }

    pub(crate) fn leader_tick(&mut self, out: &mut Vec<Action>) {
        let now = self.now_ms;
        let init_ms = self.cfg.init_limit_ticks * self.cfg.tick_ms;
        let sync_ms = self.cfg.sync_limit_ticks * self.cfg.tick_ms;
        let quorum = self.cfg.quorum_size();
        let (cfg, l) = self.leading_with_config();
        let voters = &cfg.voters;
        let mut dead = Vec::new();
        l.learners.retain(|&sid, x| {
            let limit = if x.stage == Stage::NewLeaderAcked {
                sync_ms
            } else {
                init_ms
            };
            let alive = now.saturating_sub(x.last_heard_ms) <= limit;
            if !alive {
                dead.push(sid);
            }
            alive
        });
        for sid in dead {
            out.push(Action::Disconnect { peer: sid });
        }
        if l.phase != Phase::Active {
            if now.saturating_sub(l.since_ms) > init_ms {
                return self.step_down("no quorum synced within initLimit", out);
            }
        } else {
            let synced = l.voters_where(voters, |x| x.stage == Stage::NewLeaderAcked);
            if synced + 1 < quorum {
                return self.step_down("not sufficient followers synced", out);
            }
        }
        if now >= self.leading().next_ping_ms {
            self.leading().ping_round += 1;
            self.ping(out);
        }
    }

    pub(crate) fn leader_disconnected(&mut self, peer: Sid) {
        self.leading().learners.remove(&peer);
    }

    /// Once every counter of the epoch is used and committed, the leader moves the ensemble to
    /// the next epoch itself (Apache ZooKeeper forces an election, ZOOKEEPER-2789). The new
    /// epoch is established as discovery establishes one: durable here as acceptedEpoch and
    /// currentEpoch, then a quorum of fresh acks.
    fn maybe_roll_over(&mut self, out: &mut Vec<Action>) {
        let last = self.log.last();
        let limit = self.cfg.counter_limit;
        let committed = self.committed;
        let l = self.leading();
        if l.phase != Phase::Active
            || l.rollover.is_some()
            || last.epoch != l.epoch
            || last.counter < limit
            || committed < last
        {
            return;
        }
        let epoch = l.epoch + 1;
        l.rollover = Some((epoch, last, BTreeSet::new()));
        let targets: Vec<Sid> = l
            .learners
            .iter()
            .filter(|(_, x)| matches!(x.stage, Stage::Synced { .. } | Stage::NewLeaderAcked))
            .map(|(&s, _)| s)
            .collect();
        self.accepted_epoch = self.accepted_epoch.max(epoch);
        self.disk(DiskRequest::WriteAcceptedEpoch(epoch), out);
        self.disk(DiskRequest::WriteCurrentEpoch(epoch), out);
        for sid in targets {
            self.send(sid, Message::NewEpoch { epoch }, out);
        }
    }

    fn ack_new_epoch(&mut self, from: Sid, epoch: u32, fresh: bool, out: &mut Vec<Action>) {
        let voter = self.cfg.is_voter(from);
        let l = self.leading();
        match &mut l.rollover {
            Some((new_epoch, last, acks)) if *new_epoch == epoch && fresh => {
                let last = *last;
                if voter {
                    acks.insert(from);
                }
                let learner = l.learners.get_mut(&from).expect("a learner");
                if learner.stage == Stage::NewLeaderAcked {
                    learner.acked = learner.acked.max(last);
                }
                self.maybe_finish_rollover(out);
            }
            // Late: the rollover finished on the others' acks. Nothing to count.
            None if epoch == l.epoch && fresh => {}
            _ => out.push(Action::Disconnect { peer: from }),
        }
    }

    fn maybe_finish_rollover(&mut self, out: &mut Vec<Action>) {
        let quorum = self.cfg.quorum_size();
        let current = self.current_epoch;
        let l = self.leading();
        let Some((epoch, _, acks)) = &l.rollover else {
            return;
        };
        if current != *epoch || acks.len() + 1 < quorum {
            return;
        }
        let epoch = *epoch;
        l.epoch = epoch;
        l.rollover = None;
        out.push(Action::Role(Role::Leading {
            epoch,
            next_zxid: Zxid::new(epoch, 1),
        }));
    }
}
