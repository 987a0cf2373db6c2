//! Fast leader election (ZooKeeper's FastLeaderElection), LOOKING state.
//!
//! Each voter votes for the best (currentEpoch, durable last zxid, sid) it has heard of in the
//! current round and re-broadcasts when its vote changes; a vote that a quorum of the round's
//! votes agree on wins once it has stood for `finalize_wait_ms` without a better one arriving.
//! A server that hears a peer say it is LEADING follows it at once: that is how a restarted or
//! partitioned server rejoins without disturbing the ensemble. Following a leader is always
//! safe, whatever the election said: discovery (leader.rs) is what establishes an epoch, and
//! it refuses a leader whose history is behind a follower's. The election only has to be quick.
//!
//! Observers never vote; they ask the voters and follow the leader one of them names.

use std::collections::{BTreeMap, BTreeSet};

use crate::peer::{Peer, RoleState};
use crate::{Action, Config, Message, PeerState, Sid, Vote};

pub(crate) struct Looking {
    vote: Vote,
    /// Votes of LOOKING voters in this round.
    votes: BTreeMap<Sid, Vote>,
    /// Every leader each voter has named in this round: a voter that switched to a better
    /// vote after a quorum had already chosen still helped choose it.
    named: BTreeMap<Sid, BTreeSet<Sid>>,
    /// Whether this peer has voted yet (it waits for its disk queue to drain first).
    started: bool,
    /// When the current vote may win, if a quorum agrees with it.
    decide_at_ms: Option<u64>,
    next_notify_ms: u64,
    notify_interval_ms: u64,
    /// FOLLOWERINFOs that arrived before this peer knew it leads; replayed if it does.
    pub(crate) stash: BTreeMap<Sid, Message>,
    /// What servers outside the election say they do: whom they follow or that they lead
    /// (ZooKeeper's outofelection set), with the round they decided in.
    established: BTreeMap<Sid, (Sid, PeerState, u64)>,
}

/// The notification interval backs off up to this many times the configured one.
const NOTIFY_BACKOFF_MAX: u64 = 8;

impl Looking {
    pub(crate) fn new(cfg: &Config, now_ms: u64) -> Looking {
        Looking {
            vote: Vote {
                epoch: 0,
                zxid: Default::default(),
                leader: cfg.me,
            },
            votes: BTreeMap::new(),
            named: BTreeMap::new(),
            started: false,
            decide_at_ms: None,
            next_notify_ms: now_ms,
            notify_interval_ms: cfg.notify_interval_ms,
            stash: BTreeMap::new(),
            established: BTreeMap::new(),
        }
    }
}

impl Peer {
    fn looking(&mut self) -> &mut Looking {
        match &mut self.role {
            RoleState::Looking(l) => l,
            _ => unreachable!("not looking"),
        }
    }

    fn own_vote(&self) -> Vote {
        Vote {
            epoch: self.current_epoch,
            zxid: self.log.durable(),
            leader: self.cfg.me,
        }
    }

    /// Leaves whatever role runs now. The old role's connections are closed, so its peers
    /// notice at once rather than after a timeout.
    pub(crate) fn become_looking(&mut self, reason: &'static str, out: &mut Vec<Action>) {
        match &mut self.role {
            RoleState::Looking(_) => return,
            RoleState::Leading(l) => {
                for (&sid, _) in l.learners.iter() {
                    out.push(Action::Disconnect { peer: sid });
                }
                for id in l.own_syncs() {
                    out.push(Action::SyncDone { id, ok: false });
                }
            }
            RoleState::Following(f) => {
                out.push(Action::Disconnect { peer: f.leader });
                for id in std::mem::take(&mut f.syncs) {
                    out.push(Action::SyncDone { id, ok: false });
                }
            }
        }
        self.next_term();
        self.role = RoleState::Looking(Looking::new(&self.cfg, self.now_ms));
        out.push(Action::Role(crate::Role::Looking { reason }));
        self.looking_tick(out);
    }

    pub(crate) fn looking_tick(&mut self, out: &mut Vec<Action>) {
        let now = self.now_ms;
        let drained = self.disk.is_empty();
        let me_voter = self.cfg.is_voter(self.cfg.me);
        let own = self.own_vote();
        let (quorum, finalize) = (self.cfg.quorum_size(), self.cfg.finalize_wait_ms);
        let l = self.looking();
        if !l.started {
            if !drained {
                return;
            }
            // Rule 5 of zab-notes: the vote names only what is durable, and with the queue
            // empty, everything in memory is.
            l.started = true;
            l.vote = own;
            l.votes.clear();
            l.named.clear();
            if me_voter {
                l.votes.insert(own.leader, own);
                l.named.entry(own.leader).or_default().insert(own.leader);
            }
            // A quorum of one (standaloneEnabled=false with one server) has its own vote:
            // nobody else will send one that counts.
            if me_voter && l.votes.len() >= quorum {
                l.decide_at_ms = Some(now + finalize);
            }
            self.round += 1;
            self.broadcast_vote(out);
            return;
        }
        let notify_max_ms = self.cfg.notify_interval_ms * NOTIFY_BACKOFF_MAX;
        let l = self.looking();
        if let Some(at) = l.decide_at_ms {
            if now >= at {
                let leader = l.vote.leader;
                return self.decide(leader, out);
            }
        }
        if now >= l.next_notify_ms {
            l.notify_interval_ms = (l.notify_interval_ms * 2).min(notify_max_ms);
            self.broadcast_vote(out);
        }
    }

    fn broadcast_vote(&mut self, out: &mut Vec<Action>) {
        let round = self.round;
        let now = self.now_ms;
        let l = self.looking();
        l.next_notify_ms = now + l.notify_interval_ms;
        let vote = l.vote;
        let peers: Vec<Sid> = self.cfg.peers().collect();
        for to in peers {
            // Observers only need answers from voters.
            if self.cfg.is_voter(self.cfg.me) || self.cfg.is_voter(to) {
                self.send(
                    to,
                    Message::Notification {
                        vote,
                        round,
                        state: PeerState::Looking,
                    },
                    out,
                );
            }
        }
    }

    /// This peer's answer to a LOOKING peer: its vote, its round and its state.
    fn my_notification(&self) -> Message {
        let (vote, state) = match &self.role {
            RoleState::Looking(l) => (l.vote, PeerState::Looking),
            RoleState::Leading(l) => (
                Vote {
                    epoch: l.epoch,
                    zxid: self.log.durable(),
                    leader: self.cfg.me,
                },
                PeerState::Leading,
            ),
            RoleState::Following(f) => (
                Vote {
                    epoch: f.epoch,
                    zxid: self.log.durable(),
                    leader: f.leader,
                },
                if f.observer {
                    PeerState::Observing
                } else {
                    PeerState::Following
                },
            ),
        };
        Message::Notification {
            vote,
            round: self.round,
            state,
        }
    }

    pub(crate) fn notification(
        &mut self,
        from: Sid,
        vote: Vote,
        round: u64,
        state: PeerState,
        out: &mut Vec<Action>,
    ) {
        let looking = matches!(self.role, RoleState::Looking(_));
        if !looking {
            // An established server answers a LOOKING one with whom it follows.
            if state == PeerState::Looking {
                let answer = self.my_notification();
                self.send(from, answer, out);
            }
            return;
        }
        if !self.looking().started {
            return;
        }
        if state != PeerState::Looking {
            return self.established_notification(from, vote.leader, round, state, out);
        }
        let me_voter = self.cfg.is_voter(self.cfg.me);
        if !self.cfg.is_voter(from) || !me_voter {
            // Votes of observers count for nothing, and an observer's own vote is never cast:
            // a LOOKING observer only waits to hear who leads. Still answer, so a peer in an
            // older round catches up.
            if !self.cfg.is_voter(from) && me_voter {
                let answer = self.my_notification();
                self.send(from, answer, out);
            }
            return;
        }
        let own = self.own_vote();
        let now = self.now_ms;
        let finalize = self.cfg.finalize_wait_ms;
        let quorum = self.cfg.quorum_size();
        let me = self.cfg.me;
        let my_round = self.round;
        if round < my_round {
            let answer = self.my_notification();
            self.send(from, answer, out);
            return;
        }
        let mut changed = false;
        if round > my_round {
            self.round = round;
            let l = self.looking();
            l.votes.clear();
            l.named.clear();
            l.vote = own.max(vote);
            l.votes.insert(me, l.vote);
            l.named.entry(me).or_default().insert(l.vote.leader);
            changed = true;
        } else {
            let l = self.looking();
            if vote > l.vote {
                l.vote = vote;
                l.votes.insert(me, vote);
                l.named.entry(me).or_default().insert(vote.leader);
                changed = true;
            }
        }
        let l = self.looking();
        l.votes.insert(from, vote);
        l.named.entry(from).or_default().insert(vote.leader);
        let agreeing = l.votes.values().filter(|v| **v == l.vote).count();
        if agreeing >= quorum {
            if changed || l.decide_at_ms.is_none() {
                l.decide_at_ms = Some(now + finalize);
            }
        } else {
            l.decide_at_ms = None;
        }
        if changed {
            self.broadcast_vote(out);
        }
    }

    /// A notification from a server that is not LOOKING. This peer joins an ensemble that
    /// already formed when the leader itself says it leads and a quorum of voters (the leader
    /// included) follows it or named it in this round: one server's claim alone may be a
    /// deposed leader's, and following it would only make it discover that it is behind, step
    /// down, and be followed again.
    /// Voters that say they follow *this* peer, having decided in this very round, mean this
    /// peer leads: they counted its vote, which a late notification may have undone here.
    fn established_notification(
        &mut self,
        from: Sid,
        leader: Sid,
        round: u64,
        state: PeerState,
        out: &mut Vec<Action>,
    ) {
        let me = self.cfg.me;
        let my_round = self.round;
        let quorum = self.cfg.quorum_size();
        let voters = self.cfg.voters.clone();
        let l = self.looking();
        l.established.insert(from, (leader, state, round));
        let naming = |target: Sid, same_round: bool| {
            l.established
                .iter()
                .filter(|(sid, (named, _, r))| {
                    voters.contains(sid) && *named == target && (!same_round || *r == my_round)
                })
                .count()
        };
        if leader == me {
            if voters.contains(&me) && naming(me, true) + 1 >= quorum {
                self.decide(me, out);
            }
            return;
        }
        let leader_says_so = l
            .established
            .get(&leader)
            .is_some_and(|(named, state, _)| *named == leader && *state == PeerState::Leading);
        let supporters = voters
            .iter()
            .filter(|sid| {
                l.established
                    .get(sid)
                    .is_some_and(|(named, _, _)| *named == leader)
                    || l.named.get(sid).is_some_and(|n| n.contains(&leader))
            })
            .count();
        if leader_says_so && supporters >= quorum {
            self.decide(leader, out);
        }
    }

    fn decide(&mut self, leader: Sid, out: &mut Vec<Action>) {
        let stash = std::mem::take(&mut self.looking().stash);
        self.next_term();
        if leader == self.cfg.me {
            if !self.cfg.is_voter(self.cfg.me) {
                return;
            }
            self.become_leading(out);
            for (from, message) in stash {
                self.leader_message(from, message, out);
            }
        } else {
            for (from, _) in stash {
                out.push(Action::Disconnect { peer: from });
            }
            self.become_following(leader, out);
        }
    }

    pub(crate) fn looking_message(&mut self, from: Sid, message: Message, out: &mut Vec<Action>) {
        if let Message::FollowerInfo { .. } = message {
            self.looking().stash.insert(from, message);
        } else {
            // Something of a role this peer no longer has (or never had): the sender must
            // start over.
            out.push(Action::Disconnect { peer: from });
        }
    }

    pub(crate) fn looking_disconnected(&mut self, peer: Sid) {
        self.looking().stash.remove(&peer);
    }
}
