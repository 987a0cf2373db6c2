//! An ensemble server's core thread: the quorum core (`rzk_quorum::Peer`) and the pipeline
//! core (`rzk_pipeline::Core`) driven together, one event at a time, against the peer
//! transport, the quorum disk stage and the client event loops. How the two cores meet is the
//! simulator's (sim/src/world.rs), which the checkers judge; this file must do the same:
//! - the leader's appended txns are proposed as one batch per pass (seal, then
//!   `Peer::propose` from `next_zxid`, the tree digest on the last entry); while
//!   `Core::room` is 0 (the quorum is rolling the epoch over) client input waits;
//! - `Apply` is `Committed` on the leader and `Replicated` (per proposal) on a learner;
//!   `Reset` installs the leader's snapshot;
//! - forwarded requests ride the learner's quorum link; syncs are the quorum's rounds;
//!   learners relay their clients' heartbeats in their pings;
//! - a role change closes every client connection, and a server that is not serving (no
//!   leader) refuses new ones, as ZooKeeper does.
//!
//! Unlike the standalone driver, nothing here writes the log inline or runs on an event
//! loop's thread: a leader must keep taking ACKs and heartbeats while its own sync runs.
//!
//! Never: decide anything either core decides; act on a link's frames after its break was
//! reported (the transport's generations); report a disk request done before it is durable
//! (the disk stage's).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver};
use rzk_net::{clocks, loop_of, mono_ms, CoreInbox, ToCore, ToLoop};
use rzk_peer::wire::{Channel, Frame};
use rzk_peer::{PeerAddrs, Transport};
use rzk_pipeline::{Actions, Input, Output};
use rzk_proto::Txn;
use rzk_quorum::{Action, Entry, Message, Peer, Role, Sid, Zxid};
use rzk_session::DurableSession;
use tracing::{error, info, warn};

use crate::driver::Driver;
use crate::http::CoreCall;

/// Who the ensemble is, from zoo.cfg and myid.
#[derive(Debug, Clone)]
pub struct EnsembleSetup {
    pub me: Sid,
    pub voters: BTreeSet<Sid>,
    pub observers: BTreeSet<Sid>,
    /// Every other server's quorum and election addresses.
    pub peers: BTreeMap<Sid, PeerAddrs>,
    pub init_limit_ticks: u64,
    pub sync_limit_ticks: u64,
    /// What /zookeeper/config holds: each server.N line as ZooKeeper writes it back
    /// (`host:quorumPort:electionPort:participant|observer[;clientAddress:clientPort]`), then
    /// `version=0` (no dynamic reconfiguration: the version of the static file).
    pub config_node: String,
}

/// How often the quorum core is ticked: its timeouts are in ticks of tickTime, and a
/// heartbeat every half tick, so a finer clock than the tick keeps them prompt.
const PEER_TICK: Duration = Duration::from_millis(10);

pub struct EnsembleThread {
    pub driver: Driver,
    pub from_net: CoreInbox,
    pub calls: Receiver<CoreCall>,
    pub peer: Peer,
    pub transport: Transport,
    pub disk: rzk_ensemble::DiskStage,
    pub hasher: rzk_tree::NodeHasher,
    /// Every server of the ensemble, this one included, for the status commands.
    pub members: Vec<crate::fourlw::QuorumMember>,
}

/// A client input or forwarded request that waits while the leader's epoch is full.
enum Held {
    Net(ToCore),
    Forwarded(Sid, rzk_pipeline::Forwarded),
}

struct State {
    links: HashMap<(Sid, Channel), u64>,
    unproposed: Vec<Txn>,
    /// Their encoded size: a pass proposes before it passes the batch's byte cap.
    unproposed_bytes: usize,
    held: VecDeque<Held>,
    /// Peer inputs raised while carrying out the peer's own actions (a message that could
    /// not be sent is a broken link), handled after them.
    deferred: VecDeque<rzk_quorum::Input>,
    leading: bool,
    serving: bool,
    /// Serving read-only clients while there is no leader (readonlymode.enabled).
    read_only: bool,
    touches_sent_ms: u64,
    looking_since: Instant,
    /// Leader: per follower, the proposals sent and not yet acked (last zxid, when), for
    /// the proposal round trip metric.
    inflight: HashMap<Sid, VecDeque<(Zxid, Instant)>>,
    /// Leader: how each learner being synchronised is brought up to date (the first of
    /// snap, trunc, diff sent to it), counted when its NEWLEADER goes out.
    sync_kind: HashMap<Sid, &'static str>,
    /// Leader: SNAPs being encoded off this thread, per learner, with what was sent to that
    /// learner meanwhile (it must follow the snapshot on the link).
    snaps: HashMap<Sid, PendingSnap>,
    snaps_done: (
        crossbeam_channel::Sender<EncodedSnap>,
        crossbeam_channel::Receiver<EncodedSnap>,
    ),
}

struct PendingSnap {
    /// The link the snapshot is for: if it breaks, the learner starts over.
    generation: u64,
    held: Vec<Frame>,
}

/// A learner's snapshot, encoded on its own thread.
struct EncodedSnap {
    to: Sid,
    generation: u64,
    zxid: Zxid,
    data: Vec<u8>,
    encode_ms: u64,
}

/// Frames held for a learner while its snapshot is encoded; past this it is dropped and
/// syncs again (a learner whose snapshot takes that long under that load is not keeping up).
const SNAP_HELD_MAX: usize = 1 << 20;

/// Proposals remembered per follower for the round trip metric; a follower that acks none
/// of them costs no more than this.
const INFLIGHT_MAX: usize = 4096;

impl EnsembleThread {
    /// Runs until shutdown; returns the snapshot thread so the caller can wait for it.
    pub fn run(mut self) -> Option<std::thread::JoinHandle<()>> {
        let tick_ms = u64::from(self.driver.config.tick_time_ms);
        let core_tick = Duration::from_millis((tick_ms / 4).clamp(10, 250));
        let mut next_peer_tick = Instant::now();
        let mut next_core_tick = Instant::now() + core_tick;
        let mut state = State {
            links: HashMap::new(),
            unproposed: Vec::new(),
            unproposed_bytes: 0,
            held: VecDeque::new(),
            deferred: VecDeque::new(),
            leading: false,
            serving: false,
            read_only: false,
            touches_sent_ms: mono_ms(),
            looking_since: Instant::now(),
            inflight: HashMap::new(),
            sync_kind: HashMap::new(),
            snaps: HashMap::new(),
            snaps_done: crossbeam_channel::unbounded(),
        };
        let snaps_done = state.snaps_done.1.clone();
        let transport_events = self.transport.events().clone();
        let disk_done = self.disk.completions().clone();
        let mut calls = self.calls.clone();
        loop {
            let timeout = next_peer_tick
                .min(next_core_tick)
                .saturating_duration_since(Instant::now());
            select! {
                recv(self.from_net.rx) -> message => match message {
                    Ok(message) => {
                        self.net(&mut state, message);
                        self.from_net.handled();
                    }
                    Err(_) => return self.stop(),
                },
                recv(transport_events) -> event => match event {
                    Ok(event) => self.transport_event(&mut state, event),
                    Err(_) => return self.stop(),
                },
                recv(disk_done) -> done => match done {
                    Ok(rzk_ensemble::DiskDone::Done) => {
                        self.peer_step(&mut state, rzk_quorum::Input::DiskDone)
                    }
                    Ok(rzk_ensemble::DiskDone::Failed(reason)) => {
                        error!(%reason, "the quorum disk stage failed; this server stops rather than vote with a log it cannot trust");
                        return self.stop();
                    }
                    Err(_) => return self.stop(),
                },
                recv(snaps_done) -> encoded => {
                    if let Ok(encoded) = encoded {
                        self.snapshot_encoded(&mut state, encoded);
                    }
                }
                recv(calls) -> call => match call {
                    Ok(call) => call(&self.context()),
                    Err(_) => calls = crossbeam_channel::never(),
                },
                default(timeout) => {}
            }
            // Everything else already queued joins this pass, so the leader's proposal (one
            // per pass) carries a batch: what arrived during the last write and round trip.
            let limits = self.driver.batch_limits;
            for _ in 0..limits.max_txns {
                let Ok(message) = self.from_net.rx.try_recv() else {
                    break;
                };
                self.net(&mut state, message);
                self.from_net.handled();
                if state.unproposed.len() >= limits.max_txns
                    || state.unproposed_bytes >= limits.max_bytes
                {
                    break;
                }
            }
            for _ in 0..limits.max_txns {
                let Ok(event) = transport_events.try_recv() else {
                    break;
                };
                self.transport_event(&mut state, event);
            }
            while let Ok(done) = disk_done.try_recv() {
                match done {
                    rzk_ensemble::DiskDone::Done => {
                        self.peer_step(&mut state, rzk_quorum::Input::DiskDone)
                    }
                    rzk_ensemble::DiskDone::Failed(reason) => {
                        error!(%reason, "the quorum disk stage failed; this server stops rather than vote with a log it cannot trust");
                        return self.stop();
                    }
                }
            }
            let now = Instant::now();
            if now >= next_peer_tick {
                next_peer_tick = now + PEER_TICK;
                self.peer_step(&mut state, rzk_quorum::Input::Tick { now_ms: mono_ms() });
            }
            if now >= next_core_tick {
                next_core_tick = now + core_tick;
                self.maybe_go_read_only(&mut state);
                self.core_step(&mut state, Input::Tick);
                // The quorum core carries them in its next ping reply (twice a tick), so a
                // quarter tick is often enough, and costs a pass over the local sessions.
                self.relay_touches(&mut state);
            }
            self.settle(&mut state);
            if self.driver.shared.shutting_down.load(Ordering::Relaxed) {
                return self.stop();
            }
        }
    }

    fn stop(mut self) -> Option<std::thread::JoinHandle<()>> {
        info!("ensemble server stopping");
        for l in &self.driver.loops {
            l.send(ToLoop::Shutdown);
        }
        self.transport.stop();
        self.disk.stop();
        self.driver.stop()
    }

    /// Proposes what the leader's core appended, then handles what carrying out actions
    /// raised, until nothing is left.
    fn settle(&mut self, state: &mut State) {
        for _ in 0..64 {
            self.propose(state);
            let Some(input) = state.deferred.pop_front() else {
                return;
            };
            self.peer_step(state, input);
        }
    }

    /// The driver's context for status commands, with what the quorum core knows.
    fn context(&self) -> crate::fourlw::Context<'_> {
        use rzk_quorum::PeerState;
        let status = self.peer.status();
        let peer_state = match (status.state, status.serving) {
            (PeerState::Looking, _) => "looking - election",
            (PeerState::Leading, true) => "leading - broadcast",
            (PeerState::Leading, false) => "leading - synchronization",
            (PeerState::Following, true) => "following - broadcast",
            (PeerState::Following, false) => "following - synchronization",
            (PeerState::Observing, true) => "observing - broadcast",
            (PeerState::Observing, false) => "observing - synchronization",
        };
        let mut ctx = self.driver.context();
        ctx.quorum = Some(crate::fourlw::QuorumView {
            me: self.peer.config().me,
            peer_state,
            leader: status.leader,
            quorum_size: self.peer.config().voters.len(),
            members: self.members.clone(),
            learners: self.peer.learners(),
            last_zxid: status.last.as_i64(),
        });
        ctx
    }

    fn net(&mut self, state: &mut State, message: ToCore) {
        if let ToCore::FourLetter {
            conn,
            word,
            argument,
            ..
        } = &message
        {
            let text = crate::fourlw::render(*word, *argument, &self.context());
            self.driver.loops[loop_of(*conn)].send(ToLoop::Text { conn: *conn, text });
            return;
        }
        if let ToCore::Input(Input::Connect { conn, .. }) = &message {
            if !state.serving && !state.read_only {
                // ZooKeeper closes client connections while it has no leader.
                self.driver.loops[loop_of(*conn)].send(ToLoop::Output(
                    Output::Close {
                        conn: *conn,
                        reason: "this server is not serving: no leader yet",
                    },
                    None,
                ));
                return;
            }
        }
        let holds_txns = matches!(
            message,
            ToCore::Input(Input::Connect { .. } | Input::Request { .. })
        );
        if holds_txns && self.must_hold(state) {
            state.held.push_back(Held::Net(message));
            return;
        }
        let mut actions = Actions::default();
        self.driver
            .handle(message, (Instant::now(), clocks()), &mut actions);
        self.core_actions(state, actions);
    }

    /// A leader whose epoch has no room left holds what could make a txn, in order.
    fn must_hold(&self, state: &State) -> bool {
        self.driver.core.is_leader() && (self.driver.core.room() == 0 || !state.held.is_empty())
    }

    fn feed_held(&mut self, state: &mut State) {
        while self.driver.core.is_leader() && self.driver.core.room() > 0 {
            let Some(held) = state.held.pop_front() else {
                return;
            };
            match held {
                Held::Net(message) => {
                    let mut actions = Actions::default();
                    self.driver
                        .handle(message, (Instant::now(), clocks()), &mut actions);
                    self.core_actions(state, actions);
                }
                Held::Forwarded(from, forwarded) => {
                    self.core_step(state, Input::Forwarded { from, forwarded })
                }
            }
        }
    }

    fn transport_event(&mut self, state: &mut State, event: rzk_peer::Event) {
        match event {
            rzk_peer::Event::Connected {
                peer,
                channel,
                generation,
            } => {
                state.links.insert((peer, channel), generation);
            }
            rzk_peer::Event::Disconnected {
                peer,
                channel,
                generation,
            } => {
                if state.links.get(&(peer, channel)) == Some(&generation) {
                    state.links.remove(&(peer, channel));
                    if channel == Channel::Quorum {
                        state.snaps.remove(&peer);
                        state.inflight.remove(&peer);
                        state.sync_kind.remove(&peer);
                        self.peer_step(state, rzk_quorum::Input::Disconnected { peer });
                    }
                }
            }
            rzk_peer::Event::Frame {
                peer,
                channel,
                generation,
                frame,
            } => {
                if state.links.get(&(peer, channel)) != Some(&generation) {
                    return;
                }
                match frame {
                    Frame::Message(message) => {
                        if let Message::Ack { zxid } = &message {
                            if let Some(sent) = state.inflight.get_mut(&peer) {
                                let histogram = rzk_metrics::metrics()
                                    .proposal_round_trip
                                    .with_label_values(&[&peer.to_string()]);
                                while sent.front().is_some_and(|(z, _)| z <= zxid) {
                                    let (_, at) = sent.pop_front().expect("checked");
                                    histogram.observe(at.elapsed().as_secs_f64());
                                }
                            }
                        }
                        self.peer_step(
                            state,
                            rzk_quorum::Input::Message {
                                from: peer,
                                message,
                            },
                        )
                    }
                    Frame::Forward(forwarded) => {
                        if !self.driver.core.is_leader() {
                            // Sent while this server led; the learner closes its clients'
                            // connections when it hears of the new leader.
                        } else if self.must_hold(state) {
                            state.held.push_back(Held::Forwarded(peer, forwarded));
                        } else {
                            self.core_step(
                                state,
                                Input::Forwarded {
                                    from: peer,
                                    forwarded,
                                },
                            );
                        }
                    }
                    Frame::Moved { session_id, cxid } => {
                        // From a leader this server no longer follows: its clients'
                        // connections closed when it changed leader, so nothing waits.
                        if !self.driver.core.is_leader() && self.peer.status().leader == Some(peer)
                        {
                            self.core_step(state, Input::Moved { session_id, cxid });
                        }
                    }
                    Frame::Hello(_) => unreachable!("the transport takes hellos"),
                    Frame::SnapChunk { .. } => {
                        unreachable!("the transport puts a SNAP's chunks together")
                    }
                }
            }
        }
    }

    fn relay_touches(&mut self, state: &mut State) {
        if self.driver.core.is_leader() || !state.serving {
            return;
        }
        let now = mono_ms();
        let heard = self
            .driver
            .core
            .local_sessions_heard_since(state.touches_sent_ms);
        state.touches_sent_ms = now;
        if !heard.is_empty() {
            self.peer_step(state, rzk_quorum::Input::Touches { sessions: heard });
        }
    }

    fn peer_step(&mut self, state: &mut State, input: rzk_quorum::Input) {
        let mut out = Vec::new();
        self.peer.step(input, &mut out);
        for action in out {
            self.peer_action(state, action);
        }
    }

    fn send(&mut self, state: &mut State, to: Sid, frame: Frame) {
        let channel = match &frame {
            Frame::Message(Message::Notification { .. }) => Channel::Election,
            _ => Channel::Quorum,
        };
        if channel == Channel::Quorum {
            if let Some(pending) = state.snaps.get_mut(&to) {
                if state.links.get(&(to, channel)) == Some(&pending.generation) {
                    pending.held.push(frame);
                    if pending.held.len() > SNAP_HELD_MAX {
                        warn!(learner = to, "too much held for a learner while its snapshot was encoded; dropping it");
                        let generation = pending.generation;
                        state.snaps.remove(&to);
                        self.transport.close(to, channel, generation);
                    }
                    return;
                }
                state.snaps.remove(&to);
            }
        }
        match state.links.get(&(to, channel)) {
            Some(&generation) => self.transport.send(to, channel, generation, &frame),
            None if channel == Channel::Quorum => Self::lost(state, to),
            // Election messages may be lost freely.
            None => {}
        }
    }

    /// Something for `to` found no quorum link: the quorum core must hear that its
    /// connection is not there.
    fn lost(state: &mut State, to: Sid) {
        let input = rzk_quorum::Input::Disconnected { peer: to };
        if !state
            .deferred
            .iter()
            .any(|i| matches!(i, rzk_quorum::Input::Disconnected { peer } if *peer == to))
        {
            state.deferred.push_back(input);
        }
    }

    /// A learner's snapshot is ready: it goes out (in chunks, transport.rs), then what waited
    /// behind it, unless the learner's link broke meanwhile (it syncs again from the start).
    fn snapshot_encoded(&mut self, state: &mut State, encoded: EncodedSnap) {
        let to = encoded.to;
        let current = state.links.get(&(to, Channel::Quorum)).copied();
        let pending = match state.snaps.get(&to) {
            Some(p) if p.generation == encoded.generation && current == Some(p.generation) => {
                state.snaps.remove(&to).expect("just looked")
            }
            _ => return,
        };
        info!(
            learner = to,
            zxid = %encoded.zxid,
            bytes = encoded.data.len(),
            encode_ms = encoded.encode_ms,
            "syncing a learner by SNAP"
        );
        rzk_metrics::metrics()
            .learner_sync_bytes
            .with_label_values(&["snap"])
            .inc_by(encoded.data.len() as u64);
        self.transport.send(
            to,
            Channel::Quorum,
            pending.generation,
            &Frame::Message(Message::Snap {
                zxid: encoded.zxid,
                data: encoded.data.into(),
            }),
        );
        for frame in pending.held {
            self.send(state, to, frame);
        }
    }

    fn peer_action(&mut self, state: &mut State, action: Action) {
        match action {
            Action::Send { to, message } => {
                let kind = match &message {
                    Message::Snap { .. } => Some("snap"),
                    Message::Trunc { .. } => Some("trunc"),
                    Message::Diff { .. } => Some("diff"),
                    _ => None,
                };
                if let Some(kind) = kind {
                    state.sync_kind.entry(to).or_insert(kind);
                }
                match &message {
                    Message::NewLeader { .. } => {
                        let kind = state.sync_kind.remove(&to).unwrap_or("diff");
                        rzk_metrics::metrics()
                            .learner_syncs
                            .with_label_values(&[kind])
                            .inc();
                    }
                    Message::Proposal { entries } => {
                        if let Some(last) = entries.last() {
                            let sent = state.inflight.entry(to).or_default();
                            if sent.len() == INFLIGHT_MAX {
                                sent.pop_front();
                            }
                            sent.push_back((last.zxid, Instant::now()));
                        }
                    }
                    _ => {}
                }
                if let Message::Diff { entries } = &message {
                    let bytes: usize = entries.iter().map(|e| e.data.len()).sum();
                    rzk_metrics::metrics()
                        .learner_sync_bytes
                        .with_label_values(&["diff"])
                        .inc_by(bytes as u64);
                }
                match &message {
                    Message::Diff { entries } => info!(
                        learner = to,
                        txns = entries.len(),
                        first = ?entries.first().map(|e| e.zxid),
                        last = ?entries.last().map(|e| e.zxid),
                        "syncing a learner by DIFF"
                    ),
                    Message::Trunc { after } => info!(
                        learner = to,
                        after = %after,
                        "syncing a learner by TRUNC"
                    ),
                    _ => {}
                }
                self.send(state, to, Frame::Message(message))
            }
            Action::SendSnapshot { to, zxid } => {
                state.sync_kind.insert(to, "snap");
                let core = &self.driver.core;
                assert_eq!(
                    core.released().last_zxid(),
                    zxid.as_i64(),
                    "the quorum core asked for a snapshot at another zxid than the tree's"
                );
                let Some(&generation) = state.links.get(&(to, Channel::Quorum)) else {
                    return Self::lost(state, to);
                };
                let sessions: Vec<rzk_snapshot::SessionRecord> = core
                    .committed_sessions()
                    .into_iter()
                    .map(|s| rzk_snapshot::SessionRecord::from(&s))
                    .collect();
                // The tree is an O(1) clone of the persistent map; encoding it (seconds for
                // millions of znodes) happens on its own thread while this one goes on
                // committing, and what the quorum core sends the learner meanwhile waits
                // behind the snapshot.
                let tree = core.released().clone();
                let done = state.snaps_done.0.clone();
                state.snaps.insert(
                    to,
                    PendingSnap {
                        generation,
                        held: Vec::new(),
                    },
                );
                let encode = move || {
                    let started = Instant::now();
                    let data = rzk_snapshot::encode(&tree, &sessions);
                    let _ = done.send(EncodedSnap {
                        to,
                        generation,
                        zxid,
                        data,
                        encode_ms: started.elapsed().as_millis() as u64,
                    });
                };
                if let Err(e) = std::thread::Builder::new()
                    .name("rzk-snap-encode".into())
                    .spawn(encode)
                {
                    error!(error = %e, learner = to, "cannot start a thread to encode a SNAP; dropping the learner, which will sync again");
                    state.snaps.remove(&to);
                    self.transport.close(to, Channel::Quorum, generation);
                }
            }
            Action::Disk(request) => self.disk.submit(request),
            Action::Apply(entries) => self.apply(state, entries),
            Action::Reset { zxid, data } => {
                let snapshot = rzk_snapshot::decode_with(&data, self.hasher.clone())
                    .unwrap_or_else(|e| panic!("the leader's snapshot at {zxid} is corrupt: {e}"));
                let sessions: Vec<DurableSession> =
                    snapshot.sessions.iter().map(DurableSession::from).collect();
                info!(zxid = %zxid, nodes = snapshot.tree.node_count(), "installed the leader's snapshot (SNAP)");
                let mut actions = Actions::default();
                self.driver
                    .core
                    .install(snapshot.tree, sessions, &mut actions);
                self.core_actions(state, actions);
            }
            Action::Role(role) => self.role(state, role),
            Action::SyncDone { id, ok } => self.core_step(state, Input::Synced { id, ok }),
            Action::Disconnect { peer } => {
                if let Some(&generation) = state.links.get(&(peer, Channel::Quorum)) {
                    self.transport.close(peer, Channel::Quorum, generation);
                }
            }
            Action::Touched { sessions } => {
                if self.driver.core.is_leader() {
                    self.core_step(
                        state,
                        Input::Touches {
                            session_ids: sessions,
                        },
                    );
                }
            }
        }
    }

    /// ZooKeeper starts its read-only server once a peer has been looking for
    /// max(2 s, tickTime) (QuorumPeer's roZkMgr).
    fn maybe_go_read_only(&mut self, state: &mut State) {
        let wait = Duration::from_millis(u64::from(self.driver.config.tick_time_ms).max(2000));
        if !self.driver.config.read_only_mode
            || state.serving
            || state.read_only
            || state.looking_since.elapsed() < wait
        {
            return;
        }
        info!(
            looking_ms = state.looking_since.elapsed().as_millis() as u64,
            last_zxid = format_args!("{:#x}", self.driver.core.released().last_zxid()),
            "no leader: serving read-only clients from this server's last state"
        );
        state.read_only = true;
        self.driver.mode = Some("read-only");
        let mut actions = Actions::default();
        self.driver.core.set_read_only(true, &mut actions);
        self.core_actions(state, actions);
    }

    fn leave_read_only(&mut self, state: &mut State, actions: &mut Actions) {
        if state.read_only {
            info!("read-only mode ends: this server rejoins its ensemble");
            state.read_only = false;
            self.driver.core.set_read_only(false, actions);
        }
    }

    fn role(&mut self, state: &mut State, role: Role) {
        let mut actions = Actions::default();
        // Any news of the quorum ends read-only mode; a new look starts its wait again.
        self.leave_read_only(state, &mut actions);
        match role {
            Role::Looking { reason } => {
                warn!(reason, "no leader: looking for one");
                state.looking_since = Instant::now();
                self.driver.mode = None;
                state.serving = false;
                state.leading = false;
                state.unproposed.clear();
                state.unproposed_bytes = 0;
                state.held.clear();
                self.driver.core.become_learner(&mut actions);
            }
            Role::Following {
                leader,
                epoch,
                observer,
            } => {
                info!(
                    leader,
                    epoch,
                    observer,
                    elapsed_ms = state.looking_since.elapsed().as_millis() as u64,
                    "{} server {leader} in epoch {epoch}",
                    if observer { "observing" } else { "following" }
                );
                rzk_metrics::metrics()
                    .election_time
                    .observe(state.looking_since.elapsed().as_secs_f64());
                self.driver.mode = Some(if observer { "observer" } else { "follower" });
                state.serving = true;
                state.leading = false;
                state.unproposed.clear();
                state.unproposed_bytes = 0;
                state.held.clear();
                self.driver.core.become_learner(&mut actions);
            }
            Role::Leading { epoch, .. } if state.leading => {
                info!(
                    epoch,
                    "the ensemble moved to the next epoch without an election"
                );
                // The writes that waited for room are numbered first, then what was held.
                let mut taken_up = Actions::default();
                self.driver.core.set_epoch(epoch, &mut taken_up);
                self.core_actions(state, taken_up);
                self.feed_held(state);
            }
            Role::Leading { epoch, next_zxid } => {
                info!(
                    epoch,
                    next_zxid = %next_zxid,
                    elapsed_ms = state.looking_since.elapsed().as_millis() as u64,
                    "leading epoch {epoch}"
                );
                rzk_metrics::metrics()
                    .election_time
                    .observe(state.looking_since.elapsed().as_secs_f64());
                self.driver.mode = Some("leader");
                state.serving = true;
                state.leading = true;
                self.driver.core.become_leader(epoch, &mut actions);
            }
        }
        self.core_actions(state, actions);
    }

    fn apply(&mut self, state: &mut State, entries: Vec<Entry>) {
        let Some(last) = entries.last().map(|e| e.zxid) else {
            return;
        };
        if self.driver.core.is_leader() {
            self.core_step(
                state,
                Input::Committed {
                    zxid: last.as_i64(),
                },
            );
            return;
        }
        let mut txns = Vec::new();
        for entry in &entries {
            let (txn, digest) = rzk_pipeline::entry::decode(&entry.data)
                .unwrap_or_else(|e| panic!("committed entry {} does not decode: {e}", entry.zxid));
            txns.push(txn);
            if digest.is_some() {
                let txns = std::mem::take(&mut txns);
                self.core_step(state, Input::Replicated { txns, digest });
            }
        }
        if !txns.is_empty() {
            self.core_step(state, Input::Replicated { txns, digest: None });
        }
    }

    fn core_step(&mut self, state: &mut State, input: Input) {
        let mut actions = Actions::default();
        self.driver.core.step(clocks(), input, &mut actions);
        self.core_actions(state, actions);
    }

    fn core_actions(&mut self, state: &mut State, mut actions: Actions) {
        state.unproposed_bytes += actions.append.iter().map(Txn::encoded_len).sum::<usize>();
        state.unproposed.append(&mut actions.append);
        if let Some(d) = actions.diverged.take() {
            error!(
                zxid = format_args!("{:#x}", d.zxid),
                ours = format_args!("{:#x}", d.ours),
                leaders = format_args!("{:#x}", d.leaders),
                "this server's tree differs from its leader's (digest mismatch): resynchronising by SNAP"
            );
            rzk_metrics::metrics().digest_mismatches.inc();
            // Its log is what it diverged with: the next sync replaces the whole state.
            self.peer_step(state, rzk_quorum::Input::Diverged);
            if let Some(leader) = self.peer.status().leader {
                if let Some(&generation) = state.links.get(&(leader, Channel::Quorum)) {
                    self.transport.close(leader, Channel::Quorum, generation);
                }
            }
        }
        for forwarded in actions.forward.drain(..) {
            match self.peer.status().leader {
                Some(leader) if leader != self.peer.config().me => {
                    self.send(state, leader, Frame::Forward(forwarded))
                }
                // No leader: the client's connection closes when this server changes role.
                _ => {}
            }
        }
        for refused in std::mem::take(&mut actions.refused) {
            self.send(
                state,
                refused.server,
                Frame::Moved {
                    session_id: refused.session_id,
                    cxid: refused.cxid,
                },
            );
        }
        let syncs = std::mem::take(&mut actions.syncs);
        self.driver.carry_out(&mut actions, None);
        for id in syncs {
            self.peer_step(state, rzk_quorum::Input::Sync { id });
        }
    }

    /// The leader's appended txns, as one proposal: one seal (the only tree the core keeps
    /// for them), one log write, one PROPOSAL per follower.
    fn propose(&mut self, state: &mut State) {
        if state.unproposed.is_empty() || !self.driver.core.is_leader() {
            return;
        }
        let first = Zxid::from_i64(state.unproposed[0].zxid);
        let expected = self.peer.next_zxid();
        assert_eq!(
            expected,
            Some(first),
            "the pipeline numbered {first}; the quorum core expects {expected:?}"
        );
        self.driver.core.seal_batch();
        let digest = self.driver.core.proposed_digest();
        let txns = std::mem::take(&mut state.unproposed);
        state.unproposed_bytes = 0;
        let count = txns.len();
        let entries: Vec<Entry> = txns
            .iter()
            .enumerate()
            .map(|(i, txn)| Entry {
                zxid: Zxid::from_i64(txn.zxid),
                data: rzk_pipeline::entry::encode(txn, if i + 1 == count { digest } else { None })
                    .into(),
            })
            .collect();
        let mut out = Vec::new();
        self.peer
            .propose(entries, &mut out)
            .expect("next_zxid said this leader takes proposals");
        for action in out {
            self.peer_action(state, action);
        }
    }
}

/// Starts every part of an ensemble server and runs it until shutdown: the data from disk
/// (the snapshot into the pipeline; the log after it into the quorum core, which applies
/// what it learns is committed), the disk stage, the peer transport on this server's quorum
/// and election addresses, the client event loops, and the core thread.
pub fn run(
    config: crate::config::Config,
    setup: EnsembleSetup,
    listen: PeerAddrs,
    net_threads: usize,
) -> Result<(), String> {
    use rzk_net::Shared;
    use rzk_wal::Storage as _;
    use std::sync::Arc;

    use crate::{fourlw, stages, storage};

    let seed = crate::process_seed();
    let hasher = rzk_tree::NodeHasher::seeded(seed);
    let loaded = crate::load_data(&config, seed)?;
    let snap_dir = storage::snapshot_dir(&config.data_dir);
    let last_zxid = Zxid::from_i64(loaded.recovered.last_zxid.max(loaded.snapshot_zxid));
    let epoch = |which| {
        rzk_snapshot::read_epoch(&snap_dir, which)
            .map(|e| e.unwrap_or(last_zxid.epoch))
            .map_err(|e| format!("cannot read an epoch file: {e}"))
    };
    let persisted = rzk_quorum::Persisted {
        accepted_epoch: epoch(rzk_snapshot::EpochFile::Accepted)?,
        current_epoch: epoch(rzk_snapshot::EpochFile::Current)?,
        snapshot_zxid: Zxid::from_i64(loaded.snapshot_zxid),
        log: loaded
            .recovered
            .txns
            .iter()
            .map(|txn| Entry {
                zxid: Zxid::from_i64(txn.zxid),
                data: rzk_pipeline::entry::encode(txn, None).into(),
            })
            .collect(),
    };
    let mut core_config = crate::core_config(&config, setup.me as u8, seed);
    core_config.config_node = Some(setup.config_node.clone().into_bytes());
    // The pipeline starts from the snapshot alone: the log after it may hold txns that were
    // never committed, and the quorum core applies only what it learns is.
    let mut core =
        rzk_pipeline::Core::recover(core_config, loaded.tree, loaded.sessions, &[], clocks());
    core.join_ensemble(u32::MAX - 1);
    core.become_learner(&mut Actions::default());
    info!(
        myid = setup.me,
        snapshot_zxid = format_args!("{:#x}", loaded.snapshot_zxid),
        logged_txns = persisted.log.len(),
        accepted_epoch = persisted.accepted_epoch,
        current_epoch = persisted.current_epoch,
        "recovered; joining the ensemble"
    );
    let peer_config = rzk_quorum::Config {
        me: setup.me,
        voters: setup.voters.clone(),
        observers: setup.observers.clone(),
        tick_ms: u64::from(config.tick_time_ms),
        init_limit_ticks: setup.init_limit_ticks,
        sync_limit_ticks: setup.sync_limit_ticks,
        // ZooKeeper's finalizeWait floor; notifications are re-sent at this pace too.
        finalize_wait_ms: 200,
        notify_interval_ms: 200,
        // ZooKeeper's commitLogCount: a learner this far behind gets a DIFF.
        diff_window_txns: 500,
        counter_limit: u32::MAX - 1,
        diff_chunk_txns: 1000,
        plant: rzk_quorum::Plant::None,
    };
    let peer = Peer::new(peer_config, persisted, mono_ms());
    let wal = rzk_wal::WalWriter::open(
        loaded.storage.handle(),
        &loaded.recovered,
        config.pre_alloc_size_kb * 1024,
    )
    .map_err(|e| format!("cannot open the transaction log for writing: {e}"))?;
    let disk = rzk_ensemble::DiskStage::spawn(
        wal,
        loaded.storage.handle(),
        snap_dir,
        config.pre_alloc_size_kb * 1024,
    )
    .map_err(|e| format!("cannot start the disk stage: {e}"))?;
    let bind = |mut addr: std::net::SocketAddr, key: &str, attempts: u32| {
        if config.quorum_listen_on_all_ips {
            addr.set_ip(match addr {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
            });
        }
        let mut tried = 0u32;
        loop {
            tried += 1;
            match std::net::TcpListener::bind(addr) {
                Ok(listener) => return Ok(listener),
                // 0: for ever (ZooKeeper's electionPortBindRetry).
                Err(e) if attempts == 0 || tried < attempts => {
                    warn!(%addr, tried, error = %e, "cannot listen on the {key} port yet; retrying in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => {
                    return Err(format!(
                    "cannot listen on {addr} (server.{}'s {key} port) after {tried} attempts: {e}",
                    setup.me
                ))
                }
            }
        }
    };
    let quorum_listener = bind(listen.quorum, "quorum", 1)?;
    let election_listener = bind(listen.election, "election", config.election_port_bind_retry)?;
    let mut transport_config = rzk_peer::TransportConfig::new(setup.me, setup.peers.clone());
    transport_config.tls = quorum_tls(&config)?;
    transport_config.sasl = quorum_sasl(&config)?;
    let transport = Transport::start(transport_config, quorum_listener, election_listener)
        .map_err(|e| format!("cannot start the peer transport: {e}"))?;

    let shared = Arc::new(Shared::new(core.released().clone()));
    let (to_core, from_net) = rzk_net::CoreLink::new();
    let (loops, loop_threads) = crate::spawn_client_loops(&config, net_threads, &shared, &to_core)?;
    // The snapshotter's purges go to the disk stage, which owns the log.
    let (to_log, log_commands) = crossbeam_channel::unbounded();
    let purger = disk.purger();
    std::thread::Builder::new()
        .name("rzk-purge".into())
        .spawn(move || {
            for command in log_commands {
                if let crate::log_stage::LogCommand::PurgeBefore(zxid) = command {
                    purger.purge_before(zxid);
                }
            }
        })
        .map_err(|e| format!("cannot start the purge thread: {e}"))?;
    let snapshots = crate::snapshot_policy(&config, loaded.snapshot_zxid, to_log.clone())?;
    crate::install_signal_handlers(shared.clone(), loops.clone())?;
    let (endpoints, calls) = crate::spawn_endpoints(&config);
    let addr = config.client_addr();
    info!(%addr, myid = setup.me, quorum = %listen.quorum, election = %listen.election,
        voters = ?setup.voters, observers = ?setup.observers,
        "rzk {} serving in an ensemble (ZooKeeper protocol {})",
        env!("CARGO_PKG_VERSION"), fourlw::ZOOKEEPER_PROTOCOL_VERSION);
    let mut members: Vec<crate::fourlw::QuorumMember> = setup
        .peers
        .iter()
        .map(|(&sid, addrs)| (sid, *addrs))
        .chain([(setup.me, listen)])
        .map(|(sid, addrs)| crate::fourlw::QuorumMember {
            sid,
            quorum: addrs.quorum,
            election: addrs.election,
            observer: setup.observers.contains(&sid),
        })
        .collect();
    members.sort_by_key(|m| m.sid);
    let released_zxid = core.released().last_zxid();
    let batch_limits = config.batch;
    let driver = Driver {
        core,
        config,
        shared,
        to_log,
        loops,
        snapshots,
        clock: stages::StageClock::default(),
        inline_log: None,
        batch_limits,
        handed_zxid: released_zxid,
        durable_zxid: released_zxid,
        woken: Vec::new(),
        stopped: false,
        mode: None,
    };
    drop(to_core);
    let snapshot_thread = EnsembleThread {
        driver,
        from_net,
        calls,
        peer,
        transport,
        disk,
        hasher,
        members,
    }
    .run();
    for endpoint in endpoints {
        endpoint.stop();
    }
    for t in loop_threads {
        let _ = t.join();
    }
    if let Some(thread) = snapshot_thread {
        let _ = thread.join();
    }
    info!("rzk stopped");
    Ok(())
}

/// The ensemble zoo.cfg describes, with this server's id from `dataDir/myid`; None for a
/// standalone server (one server listed, or none). Errors name the line and key, or the
/// myid file. A client address on this server's own line is its client port when the file
/// sets no clientPort.
pub fn setup(
    config: &mut crate::config::Config,
) -> Result<Option<(EnsembleSetup, PeerAddrs)>, String> {
    use std::net::{SocketAddr, ToSocketAddrs};

    if config.servers.is_empty() || (config.servers.len() == 1 && config.standalone_enabled) {
        return Ok(None);
    }
    let myid_path = config.data_dir.join("myid");
    let myid_text = std::fs::read_to_string(&myid_path).map_err(|e| {
        format!(
            "{}: {e}: every server of an ensemble needs its server id (the N of its server.N line) in this file",
            myid_path.display()
        )
    })?;
    let me: Sid = myid_text.trim().parse().map_err(|_| {
        format!(
            "{}: holds {:?}, not a server id",
            myid_path.display(),
            myid_text.trim()
        )
    })?;
    let mut voters = BTreeSet::new();
    let mut observers = BTreeSet::new();
    let mut addrs: BTreeMap<Sid, PeerAddrs> = BTreeMap::new();
    let mut lines: BTreeMap<Sid, usize> = BTreeMap::new();
    let mut used: BTreeMap<SocketAddr, (usize, Sid)> = BTreeMap::new();
    let mut config_lines: BTreeMap<Sid, String> = BTreeMap::new();
    let mut my_client: Option<(usize, std::net::IpAddr, u16)> = None;
    for (line, id, value) in &config.servers {
        let at = |problem: String| format!("line {line}: server.{id}: {problem}");
        if let Some(first) = lines.insert(*id, *line) {
            return Err(at(format!(
                "server.{id} is listed twice (first on line {first})"
            )));
        }
        // host:quorumPort:electionPort[:participant|:observer][;[clientAddress:]clientPort]
        let (quorum_part, client_part) = match value.split_once(';') {
            Some((quorum, client)) => (quorum, Some(client.trim())),
            None => (value.as_str(), None),
        };
        let client = match client_part {
            None => None,
            Some(client) => {
                let (address, port) = match client.rsplit_once(':') {
                    Some((address, port)) => (address.trim_matches(['[', ']']), port),
                    None => ("0.0.0.0", client),
                };
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| {
                        at(format!(
                            "{value:?}: the client port after ';' is not a port"
                        ))
                    })?;
                let ip = (address, port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| at(format!("cannot resolve the client address {address:?}")))?
                    .ip();
                Some((ip, port))
            }
        };
        let (host, rest) = match quorum_part.strip_prefix('[') {
            Some(v6) => {
                let (host, rest) = v6
                    .split_once(']')
                    .ok_or_else(|| at(format!("{value:?}: an IPv6 address lacks its ]")))?;
                (host, rest.strip_prefix(':').unwrap_or(rest))
            }
            None => quorum_part
                .split_once(':')
                .ok_or_else(|| at(format!("{value:?} is not host:quorumPort:electionPort")))?,
        };
        let mut fields = rest.split(':');
        let port = |field: Option<&str>, what: &str| {
            field
                .and_then(|p| p.trim().parse::<u16>().ok())
                .filter(|&p| p != 0)
                .ok_or_else(|| {
                    at(format!(
                        "{value:?}: the {what} port is missing or not a port"
                    ))
                })
        };
        let quorum_port = port(fields.next(), "quorum")?;
        let election_port = port(fields.next(), "election")?;
        let observer = match fields.next().map(str::trim) {
            None | Some("participant") => false,
            Some("observer") => true,
            Some(other) => {
                return Err(at(format!(
                    "{other:?}: the role after the ports is participant or observer"
                )))
            }
        };
        let resolve = |port: u16| {
            (host, port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| at(format!("cannot resolve the host {host:?}")))
        };
        let peer = PeerAddrs {
            quorum: resolve(quorum_port)?,
            election: resolve(election_port)?,
        };
        for addr in [peer.quorum, peer.election] {
            if let Some((other_line, other)) = used.insert(addr, (*line, *id)) {
                return Err(at(format!(
                    "{addr} is already used by server.{other} (line {other_line})"
                )));
            }
        }
        if observer {
            observers.insert(*id);
        } else {
            voters.insert(*id);
        }
        addrs.insert(*id, peer);
        let role = if observer { "observer" } else { "participant" };
        let mut text = format!("server.{id}={host}:{quorum_port}:{election_port}:{role}");
        if let Some((ip, port)) = client {
            let ip = match ip {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            };
            text.push_str(&format!(";{ip}:{port}"));
        }
        config_lines.insert(*id, text);
        if *id == me {
            my_client = client.map(|(ip, port)| (*line, ip, port));
        }
    }
    let Some(&listen) = addrs.get(&me) else {
        return Err(format!(
            "{}: myid {me} is not one of the server.N lines ({:?})",
            myid_path.display(),
            addrs.keys().collect::<Vec<_>>()
        ));
    };
    if voters.is_empty() {
        return Err("every listed server is an observer: an ensemble needs voters".into());
    }
    if observers.contains(&me) != config.peer_type_observer {
        warn!(
            myid = me,
            "peerType and this server's server.N line disagree on whether it observes; the server.N line wins"
        );
    }
    if voters.len() % 2 == 0 {
        warn!(
            voters = voters.len(),
            "an even number of voters tolerates no more failures than one fewer would"
        );
    }
    if let Some((line, ip, port)) = my_client {
        if !config.client_port_set {
            config.client_port = port;
            config.client_port_address = ip;
        } else if config.client_port != port {
            return Err(format!(
                "line {line}: server.{me}: its client port {port} differs from clientPort={}",
                config.client_port
            ));
        }
    }
    let mut config_node: String = config_lines.into_values().map(|line| line + "\n").collect();
    config_node.push_str("version=0");
    addrs.remove(&me);
    Ok(Some((
        EnsembleSetup {
            me,
            voters,
            observers,
            peers: addrs,
            init_limit_ticks: u64::from(config.init_limit),
            sync_limit_ticks: u64::from(config.sync_limit),
            config_node,
        },
        listen,
    )))
}

/// sslQuorum's key material from the ssl.quorum.* keys; None without sslQuorum.
fn quorum_tls(config: &crate::config::Config) -> Result<Option<rzk_peer::QuorumTls>, String> {
    if !config.ssl_quorum {
        return Ok(None);
    }
    let settings = rzk_tls::TlsSettings::from_properties("ssl.quorum.", &config.ssl)
        .map_err(|e| e.to_string())?
        .ok_or("sslQuorum=true, but ssl.quorum.keyStore.location is not set")?;
    if settings.trust_store.is_none() {
        return Err("sslQuorum=true, but ssl.quorum.trustStore.location is not set: servers verify each other's certificates".into());
    }
    let server =
        rzk_tls::ReloadingServerConfig::new(settings.clone()).map_err(|e| e.to_string())?;
    let client = rzk_tls::ReloadingClientConfig::new(settings).map_err(|e| e.to_string())?;
    info!("server-to-server connections use TLS (sslQuorum)");
    Ok(Some(rzk_peer::QuorumTls {
        server: std::sync::Arc::new(server),
        client: std::sync::Arc::new(client),
    }))
}

/// Quorum SASL from the quorum.auth.* keys and the JAAS file's QuorumServer (users this
/// server accepts) and QuorumLearner (the user it dials as) sections; None without
/// quorum.auth.enableSasl. Like ZooKeeper, both sections must be there whatever the
/// require flags say.
fn quorum_sasl(config: &crate::config::Config) -> Result<Option<rzk_peer::QuorumSasl>, String> {
    if !config.quorum_sasl {
        return Ok(None);
    }
    let path = config.jaas_config.as_ref().ok_or(
        "quorum.auth.enableSasl=true, but no JAAS file is set (java.security.auth.login.config)",
    )?;
    let jaas =
        rzk_sasl::Jaas::load(path).map_err(|e| format!("quorum.auth.enableSasl=true: {e}"))?;
    let server_section = &config.quorum_server_login_context;
    let server = rzk_sasl::Credentials::from_jaas(&jaas, server_section, None).map_err(|e| {
        format!("quorum.auth.enableSasl=true: {e} (quorum.auth.server.saslLoginContext)")
    })?;
    let learner_section = &config.quorum_learner_login_context;
    let modules = jaas
        .section(learner_section)
        .filter(|modules| !modules.is_empty())
        .ok_or_else(|| {
            format!(
                "quorum.auth.enableSasl=true: no '{learner_section}' section in {} \
                 (quorum.auth.learner.saslLoginContext)",
                path.display()
            )
        })?;
    // The last definition wins, as in Java's option maps.
    let option = |key: &str| {
        modules
            .iter()
            .flat_map(|module| module.options.iter())
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| {
                format!(
                    "quorum.auth.enableSasl=true: section '{learner_section}' of {} has no {key} option",
                    path.display()
                )
            })
    };
    let learner_username = option("username")?;
    let learner_password = option("password")?;
    info!(
        learner_require = config.quorum_learner_require_sasl,
        server_require = config.quorum_server_require_sasl,
        users = server.user_count(),
        learner = %learner_username,
        "server-to-server connections use SASL DIGEST-MD5 (quorum.auth.enableSasl)"
    );
    Ok(Some(rzk_peer::QuorumSasl {
        server: std::sync::Arc::new(server),
        learner_username,
        learner_password,
        learner_require: config.quorum_learner_require_sasl,
        server_require: config.quorum_server_require_sasl,
    }))
}
