//! One server's replication core: the state every role shares (epochs, the log, what is
//! committed, the disk queue) and the dispatch of inputs to the role that runs now.
//!
//! A role change is a barrier (ZOOKEEPER-4712): the old role's disk requests still complete in
//! order, but what they would have triggered (an ACK, a LEADERINFO) belongs to a `term` that is
//! over, and the next election starts only when the queue is empty, so its vote names a tail
//! that is really durable.

use std::collections::VecDeque;

use crate::election::Looking;
use crate::leader::Leading;
use crate::learner::Following;
use crate::{
    Action, Config, DiskRequest, Entry, Input, Log, Message, PeerState, Persisted, Sid, Zxid,
};

pub(crate) enum RoleState {
    Looking(Looking),
    Leading(Leading),
    Following(Following),
}

/// An outstanding disk request, as the core remembers it until `DiskDone`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DiskKind {
    Append(Zxid),
    Truncate,
    AcceptedEpoch(u32),
    CurrentEpoch(u32),
    Snapshot(Zxid),
}

pub struct Peer {
    pub(crate) cfg: Config,
    pub(crate) now_ms: u64,
    /// The highest epoch promised: no leader of an older one is obeyed. Raised when the write
    /// is requested (a promise may only grow), durable once that write completes.
    pub(crate) accepted_epoch: u32,
    /// The epoch whose history this server durably holds; raised only when its write completes.
    pub(crate) current_epoch: u32,
    pub(crate) log: Log,
    /// Entries up to here are committed and were handed to the pipeline with `Apply`.
    pub(crate) committed: Zxid,
    pub(crate) disk: VecDeque<(DiskKind, u64)>,
    /// Counts role changes; disk completions of an older term trigger nothing.
    pub(crate) term: u64,
    /// Fast leader election's logical clock.
    pub(crate) round: u64,
    pub(crate) role: RoleState,
    /// Sessions heard from since the last ping reply (a learner's).
    pub(crate) touches: Vec<i64>,
    /// Set by `Input::Diverged`, cleared once a snapshot is taken: the next ACKEPOCH asks
    /// for a SNAP.
    pub(crate) wants_snapshot: bool,
}

/// What a driver, a status command or the simulator's checkers see of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: PeerState,
    pub leader: Option<u64>,
    /// The epoch led or followed (0 before it is known).
    pub epoch: u32,
    /// Whether clients may be served: an active leader, or a learner past UPTODATE.
    pub serving: bool,
    pub accepted_epoch: u32,
    pub current_epoch: u32,
    pub committed: Zxid,
    pub durable: Zxid,
    pub last: Zxid,
}

/// A leader's view of one learner, for status commands (mntr's synced and pending counts,
/// the AdminServer's observers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnerStatus {
    pub sid: Sid,
    pub observer: bool,
    /// Past NEWLEADER's ack: its acks count and it gets every proposal.
    pub synced: bool,
    /// Every entry up to here is durable there (its cumulative ACK).
    pub acked: Zxid,
}

/// The pipeline proposed while this peer cannot take proposals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotServing;

impl Peer {
    pub fn new(cfg: Config, persisted: Persisted, now_ms: u64) -> Peer {
        assert!(
            cfg.voters.contains(&cfg.me) || cfg.observers.contains(&cfg.me),
            "server {} is not a member",
            cfg.me
        );
        assert!(
            cfg.voters.is_disjoint(&cfg.observers),
            "a server is both voter and observer"
        );
        // ZooKeeper refuses this at startup too (QuorumPeer.loadDataBase).
        assert!(
            persisted.accepted_epoch >= persisted.current_epoch,
            "acceptedEpoch {} below currentEpoch {}",
            persisted.accepted_epoch,
            persisted.current_epoch
        );
        let log = Log::recovered(persisted.snapshot_zxid, persisted.log);
        Peer {
            now_ms,
            accepted_epoch: persisted.accepted_epoch,
            current_epoch: persisted.current_epoch,
            committed: persisted.snapshot_zxid,
            log,
            disk: VecDeque::new(),
            term: 0,
            round: 0,
            role: RoleState::Looking(Looking::new(&cfg, now_ms)),
            touches: Vec::new(),
            wants_snapshot: false,
            cfg,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The learners a leader is in touch with (none unless it leads), by id.
    pub fn learners(&self) -> Vec<LearnerStatus> {
        match &self.role {
            RoleState::Leading(l) => l.learner_statuses(),
            _ => Vec::new(),
        }
    }

    pub fn status(&self) -> Status {
        let (state, leader, epoch, serving) = match &self.role {
            RoleState::Looking(_) => (PeerState::Looking, None, 0, false),
            RoleState::Leading(l) => (
                PeerState::Leading,
                Some(self.cfg.me),
                l.epoch,
                l.is_active(),
            ),
            RoleState::Following(f) => (
                if f.observer {
                    PeerState::Observing
                } else {
                    PeerState::Following
                },
                Some(f.leader),
                f.epoch,
                f.is_up_to_date(),
            ),
        };
        Status {
            state,
            leader,
            epoch,
            serving,
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            committed: self.committed,
            durable: self.log.durable(),
            last: self.log.last(),
        }
    }

    pub fn step(&mut self, input: Input, out: &mut Vec<Action>) {
        match input {
            Input::Tick { now_ms } => {
                self.now_ms = self.now_ms.max(now_ms);
                self.tick(out);
            }
            Input::Message { from, message } => {
                if from == self.cfg.me || !self.cfg.peers().any(|p| p == from) {
                    return;
                }
                self.message(from, message, out);
            }
            Input::DiskDone => self.disk_done(out),
            Input::Disconnected { peer } => self.disconnected(peer, out),
            Input::Sync { id } => self.sync(id, out),
            Input::Touches { sessions } => match &self.role {
                RoleState::Leading(_) => out.push(Action::Touched { sessions }),
                _ => self.touches.extend(sessions),
            },
            Input::Diverged => {
                assert!(
                    !matches!(self.role, RoleState::Leading(_)),
                    "a leader's state is the reference: it cannot diverge from itself"
                );
                self.wants_snapshot = true;
            }
        }
    }

    /// The next zxid the pipeline may give a transaction, while this peer leads and serves.
    /// None while it does not, or while the epoch rolls over.
    pub fn next_zxid(&self) -> Option<Zxid> {
        match &self.role {
            RoleState::Leading(l) => l.next_zxid(self),
            _ => None,
        }
    }

    /// One batch of transactions from the pipeline, numbered from `next_zxid`: one log write,
    /// one PROPOSAL per follower.
    pub fn propose(
        &mut self,
        entries: Vec<Entry>,
        out: &mut Vec<Action>,
    ) -> Result<(), NotServing> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.next_zxid() != Some(entries[0].zxid) {
            return Err(NotServing);
        }
        self.leader_propose(entries, out);
        Ok(())
    }

    fn message(&mut self, from: u64, message: Message, out: &mut Vec<Action>) {
        if let Message::Notification { vote, round, state } = message {
            return self.notification(from, vote, round, state, out);
        }
        match &self.role {
            RoleState::Looking(_) => self.looking_message(from, message, out),
            RoleState::Leading(_) => self.leader_message(from, message, out),
            RoleState::Following(_) => self.learner_message(from, message, out),
        }
    }

    fn tick(&mut self, out: &mut Vec<Action>) {
        match &self.role {
            RoleState::Looking(_) => self.looking_tick(out),
            RoleState::Leading(_) => self.leader_tick(out),
            RoleState::Following(_) => self.learner_tick(out),
        }
    }

    fn disconnected(&mut self, peer: u64, out: &mut Vec<Action>) {
        match &self.role {
            RoleState::Looking(_) => self.looking_disconnected(peer),
            RoleState::Leading(_) => self.leader_disconnected(peer),
            RoleState::Following(f) => {
                if f.leader == peer {
                    self.become_looking("lost the connection to the leader", out);
                }
            }
        }
    }

    fn sync(&mut self, id: u64, out: &mut Vec<Action>) {
        match &self.role {
            RoleState::Leading(_) => self.leader_sync(id, None, out),
            RoleState::Following(_) => self.learner_sync(id, out),
            RoleState::Looking(_) => out.push(Action::SyncDone { id, ok: false }),
        }
    }

    /// Queues a disk request; its completion comes back as `DiskDone`, in order.
    pub(crate) fn disk(&mut self, request: DiskRequest, out: &mut Vec<Action>) {
        let kind = match &request {
            DiskRequest::Append(entries) => {
                DiskKind::Append(entries.last().expect("no empty appends").zxid)
            }
            DiskRequest::Truncate { .. } => DiskKind::Truncate,
            DiskRequest::WriteAcceptedEpoch(e) => DiskKind::AcceptedEpoch(*e),
            DiskRequest::WriteCurrentEpoch(e) => DiskKind::CurrentEpoch(*e),
            DiskRequest::InstallSnapshot { zxid, .. } => DiskKind::Snapshot(*zxid),
        };
        self.disk.push_back((kind, self.term));
        out.push(Action::Disk(request));
    }

    fn disk_done(&mut self, out: &mut Vec<Action>) {
        let (kind, term) = self
            .disk
            .pop_front()
            .expect("a disk completion with no request outstanding");
        match kind {
            DiskKind::Append(zxid) => {
                // A TRUNC queued after this append may already have dropped it from memory:
                // the disk then holds it only until the truncation completes.
                if self.log.contains(zxid) {
                    self.log.set_durable(zxid.max(self.log.durable()));
                }
            }
            // `Log::truncate_after` lowered the durable tail when the request was made.
            DiskKind::Truncate | DiskKind::AcceptedEpoch(_) => {}
            DiskKind::CurrentEpoch(epoch) => {
                assert!(
                    epoch >= self.current_epoch,
                    "currentEpoch goes back: {epoch} after {}",
                    self.current_epoch
                );
                self.current_epoch = epoch;
            }
            DiskKind::Snapshot(zxid) => {
                if zxid == self.log.base() {
                    self.log.set_durable(zxid.max(self.log.durable()));
                }
            }
        }
        if term != self.term {
            if let RoleState::Looking(_) = self.role {
                self.looking_tick(out);
            }
            return;
        }
        match &self.role {
            RoleState::Looking(_) => self.looking_tick(out),
            RoleState::Leading(_) => self.leader_disk_done(kind, out),
            RoleState::Following(_) => self.learner_disk_done(kind, out),
        }
    }

    /// Hands committed entries up to `zxid` (at most what this log holds) to the pipeline.
    pub(crate) fn apply_to(&mut self, zxid: Zxid, out: &mut Vec<Action>) {
        let upto = zxid.min(self.log.last());
        if upto <= self.committed {
            return;
        }
        let entries: Vec<Entry> = self.log.range(self.committed, upto).cloned().collect();
        assert_eq!(
            entries.last().map(|e| e.zxid),
            Some(upto),
            "commit of {upto} which this log does not hold"
        );
        self.committed = upto;
        out.push(Action::Apply(entries));
        self.log.trim(self.committed, self.cfg.diff_window_txns);
    }

    pub(crate) fn send(&self, to: u64, message: Message, out: &mut Vec<Action>) {
        out.push(Action::Send { to, message });
    }

    pub(crate) fn next_term(&mut self) {
        self.term += 1;
    }
}
