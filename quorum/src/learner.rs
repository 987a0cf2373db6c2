//! FOLLOWING and OBSERVING: discovery and synchronization from the learner's side, then
//! proposals, commits and pings.
//!
//! The learner's disk requests run in one queue, in order, and every message that promises
//! durability is sent from a completion of that queue, never from the receipt of a message:
//! 1. LEADERINFO: acceptedEpoch written → ACKEPOCH;
//! 2. TRUNC / SNAP / DIFF entries queued, then at NEWLEADER currentEpoch queued after them →
//!    NEWLEADER-ACK when that write completes (the history before it is then durable too:
//!    ZOOKEEPER-3911, -4643, -4785);
//! 3. proposals appended after that → ACK of each batch as its append completes. None is
//!    acked before NEWLEADER-ACK has gone out (ZOOKEEPER-4685): `acks_enabled`.

use crate::peer::{DiskKind, Peer, RoleState};
use crate::plant::Plant;
use crate::{Action, DiskRequest, Entry, Message, Role, Sid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// FOLLOWERINFO sent, waiting for LEADERINFO.
    Discovery,
    /// Epoch accepted: TRUNC/SNAP/DIFF, until NEWLEADER.
    Syncing,
    /// NEWLEADER received: proposals arrive, UPTODATE is awaited.
    NewLeader,
    /// Serving clients.
    UpToDate,
}

pub(crate) struct Following {
    pub(crate) leader: Sid,
    pub(crate) observer: bool,
    /// The leader's epoch, once LEADERINFO was accepted.
    pub(crate) epoch: u32,
    phase: Phase,
    /// Set when the NEWLEADER-ACK has been sent: from then on each durable append is acked.
    acks_enabled: bool,
    /// The epoch whose currentEpoch write answers NEWLEADER (Some) or NEWEPOCH.
    awaiting_current: Option<(u32, bool)>,
    last_heard_ms: u64,
    since_ms: u64,
    /// Client syncs forwarded to the leader.
    pub(crate) syncs: Vec<u64>,
}

impl Following {
    pub(crate) fn is_up_to_date(&self) -> bool {
        self.phase == Phase::UpToDate
    }
}

impl Peer {
    fn following(&mut self) -> &mut Following {
        match &mut self.role {
            RoleState::Following(f) => f,
            _ => unreachable!("not following"),
        }
    }

    pub(crate) fn become_following(&mut self, leader: Sid, out: &mut Vec<Action>) {
        assert_eq!(
            self.log.durable(),
            self.log.last(),
            "following with a tail that is not durable"
        );
        self.next_term();
        let observer = !self.cfg.is_voter(self.cfg.me);
        self.role = RoleState::Following(Following {
            leader,
            observer,
            epoch: 0,
            phase: Phase::Discovery,
            acks_enabled: false,
            awaiting_current: None,
            last_heard_ms: self.now_ms,
            since_ms: self.now_ms,
            syncs: Vec::new(),
        });
        let message = Message::FollowerInfo {
            accepted_epoch: self.accepted_epoch,
            last_zxid: self.log.durable(),
            observer,
        };
        self.send(leader, message, out);
    }

    pub(crate) fn learner_message(&mut self, from: Sid, message: Message, out: &mut Vec<Action>) {
        let now = self.now_ms;
        let f = self.following();
        if from != f.leader {
            out.push(Action::Disconnect { peer: from });
            return;
        }
        f.last_heard_ms = now;
        let phase = f.phase;
        match message {
            Message::LeaderInfo { epoch } if phase == Phase::Discovery => {
                self.leader_info(epoch, out)
            }
            Message::Trunc { after } if phase == Phase::Syncing => {
                if self.cfg.plant == Plant::SkipTrunc {
                    return;
                }
                assert!(
                    after >= self.committed,
                    "TRUNC to {after} drops committed entries up to {}",
                    self.committed
                );
                self.log.truncate_after(after);
                self.disk(DiskRequest::Truncate { after }, out);
            }
            Message::Snap { zxid, data } if phase == Phase::Syncing => {
                self.wants_snapshot = false;
                self.log.reset(zxid);
                self.committed = zxid;
                out.push(Action::Reset {
                    zxid,
                    data: data.clone(),
                });
                self.disk(DiskRequest::InstallSnapshot { zxid, data }, out);
            }
            Message::Diff { entries } if phase == Phase::Syncing => self.append(entries, out),
            Message::NewLeader {
                epoch,
                last,
                committed,
            } if phase == Phase::Syncing => {
                let f = self.following();
                assert_eq!(epoch, f.epoch, "NEWLEADER of another epoch");
                f.phase = Phase::NewLeader;
                f.awaiting_current = Some((epoch, true));
                if self.cfg.plant != Plant::SkipTrunc {
                    assert_eq!(
                        self.log.last(),
                        last,
                        "after the sync stream this learner's history must be the leader's"
                    );
                }
                self.apply_to(committed, out);
                self.disk(DiskRequest::WriteCurrentEpoch(epoch), out);
            }
            Message::UpToDate { committed } if phase == Phase::NewLeader => {
                self.apply_to(committed, out);
                let f = self.following();
                f.phase = Phase::UpToDate;
                let role = Role::Following {
                    leader: f.leader,
                    epoch: f.epoch,
                    observer: f.observer,
                };
                out.push(Action::Role(role));
            }
            Message::Proposal { entries } if phase >= Phase::NewLeader => {
                let epoch = self.following().epoch;
                assert!(
                    entries.iter().all(|e| e.zxid.epoch == epoch),
                    "a proposal outside the leader's epoch {epoch}"
                );
                let last = entries.last().map(|e| e.zxid);
                self.append(entries, out);
                if self.cfg.plant == Plant::AckBeforeFsync && self.following().acks_enabled {
                    if let Some(zxid) = last {
                        self.send(from, Message::Ack { zxid }, out);
                    }
                }
            }
            Message::Commit { zxid } if phase >= Phase::NewLeader => {
                assert!(
                    zxid <= self.log.last(),
                    "COMMIT of {zxid}, which was never proposed here (ZOOKEEPER-4394)"
                );
                self.apply_to(zxid, out);
            }
            Message::Inform { entries } if phase >= Phase::NewLeader => {
                let last = entries.last().map(|e| e.zxid);
                self.append(entries, out);
                if let Some(zxid) = last {
                    self.apply_to(zxid, out);
                }
            }
            Message::Ping { round } => {
                let touches = std::mem::take(&mut self.touches);
                self.send(from, Message::PingReply { round, touches }, out);
            }
            Message::SyncReply { id, zxid } if phase == Phase::UpToDate => {
                let f = self.following();
                if let Some(i) = f.syncs.iter().position(|&s| s == id) {
                    f.syncs.remove(i);
                    assert!(self.committed >= zxid, "sync answered before its commit");
                    out.push(Action::SyncDone { id, ok: true });
                }
            }
            Message::NewEpoch { epoch } if phase >= Phase::NewLeader => {
                if epoch <= self.accepted_epoch {
                    return self.become_looking("NEWEPOCH not above acceptedEpoch", out);
                }
                self.accepted_epoch = epoch;
                let f = self.following();
                f.epoch = epoch;
                f.awaiting_current = Some((epoch, false));
                self.disk(DiskRequest::WriteAcceptedEpoch(epoch), out);
                self.disk(DiskRequest::WriteCurrentEpoch(epoch), out);
            }
            _ => self.become_looking("unexpected message from the leader", out),
        }
    }

    fn leader_info(&mut self, epoch: u32, out: &mut Vec<Action>) {
        let leader = self.following().leader;
        let accepted = self.accepted_epoch;
        if epoch < accepted && self.cfg.plant != Plant::AcceptOldEpoch {
            return self.become_looking("the leader's epoch is older than acceptedEpoch", out);
        }
        let f = self.following();
        f.epoch = epoch;
        f.phase = Phase::Syncing;
        if epoch == accepted {
            // Accepted before, from this leader or from one that lost: not fresh, so it does
            // not help establish the epoch, but the learner may still sync.
            let message = Message::AckEpoch {
                epoch,
                fresh: false,
                current_epoch: self.current_epoch,
                last_zxid: self.log.durable(),
                snap: self.wants_snapshot,
            };
            self.send(leader, message, out);
        } else {
            self.accepted_epoch = epoch;
            self.disk(DiskRequest::WriteAcceptedEpoch(epoch), out);
        }
    }

    fn append(&mut self, entries: Vec<Entry>, out: &mut Vec<Action>) {
        if entries.is_empty() {
            return;
        }
        for entry in &entries {
            self.log.push(entry.clone());
        }
        self.disk(DiskRequest::Append(entries), out);
    }

    pub(crate) fn learner_disk_done(&mut self, kind: DiskKind, out: &mut Vec<Action>) {
        let f = self.following();
        let leader = f.leader;
        match kind {
            DiskKind::AcceptedEpoch(epoch) if f.phase == Phase::Syncing && epoch == f.epoch => {
                let message = Message::AckEpoch {
                    epoch,
                    fresh: true,
                    current_epoch: self.current_epoch,
                    last_zxid: self.log.durable(),
                    snap: self.wants_snapshot,
                };
                self.send(leader, message, out);
            }
            DiskKind::CurrentEpoch(epoch) => match f.awaiting_current {
                Some((awaited, true)) if awaited == epoch => {
                    f.awaiting_current = None;
                    f.acks_enabled = true;
                    self.send(leader, Message::AckNewLeader { epoch }, out);
                }
                Some((awaited, false)) if awaited == epoch => {
                    f.awaiting_current = None;
                    self.send(leader, Message::AckNewEpoch { epoch, fresh: true }, out);
                }
                _ => {}
            },
            // Acks are cumulative: all before `zxid` was appended earlier, in order.
            DiskKind::Append(zxid)
                if f.acks_enabled && !f.observer && self.cfg.plant != Plant::AckBeforeFsync =>
            {
                self.send(leader, Message::Ack { zxid }, out);
            }
            _ => {}
        }
    }

    pub(crate) fn learner_tick(&mut self, out: &mut Vec<Action>) {
        let now = self.now_ms;
        let init_ms = self.cfg.init_limit_ticks * self.cfg.tick_ms;
        let sync_ms = self.cfg.sync_limit_ticks * self.cfg.tick_ms;
        let f = self.following();
        let limit = if f.phase == Phase::UpToDate {
            sync_ms
        } else {
            init_ms
        };
        if now.saturating_sub(f.last_heard_ms) > limit {
            return self.become_looking("the leader went silent", out);
        }
        if f.phase != Phase::UpToDate && now.saturating_sub(f.since_ms) > 2 * init_ms {
            self.become_looking("synchronization took longer than initLimit", out);
        }
    }

    pub(crate) fn learner_sync(&mut self, id: u64, out: &mut Vec<Action>) {
        let f = self.following();
        if f.phase != Phase::UpToDate {
            out.push(Action::SyncDone { id, ok: false });
            return;
        }
        f.syncs.push(id);
        let leader = f.leader;
        self.send(leader, Message::SyncRequest { id }, out);
    }
}
