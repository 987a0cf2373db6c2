//! One simulated ensemble: servers (the real quorum core, a simulated disk, the replicated
//! state and a small leader pipeline), the network between them, clients, and the fault
//! schedule, all driven by one event queue and one seed.
//!
//! Transport contract the core relies on (lib.rs of quorum): a quorum connection is FIFO
//! until it breaks, and a break reaches both ends as `Disconnected` before anything sent on a
//! new connection. So any lost quorum message breaks its connection, and a new connection's
//! first message arrives after the notices. Election messages may be lost or reordered freely.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write as _;
use std::sync::Arc;

use rzk_quorum::{
    Action, Config, DiskRequest, Entry, Input, Message, Peer, Persisted, Plant, Role, Sid, Zxid,
};
use rzk_session::Prng;

use crate::checks::Checks;
use crate::host;
use crate::linearizability::{Operation, Znode, ZnodeOp, ZnodeRet};
use crate::model::{self, Key, Record, State, Value};
use crate::SimConfig;

const MS: u64 = 1_000;
const KEYS: u8 = 3;
const CLIENT_TIMEOUT_US: u64 = 2_000 * MS;
const TICK_US: u64 = 10 * MS;
/// Snapshots the host takes of its applied state, every this many applied entries.
const SNAPSHOT_EVERY_TXNS: usize = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Channel {
    Election,
    Quorum,
}

#[derive(Debug, Clone)]
enum ClientRequest {
    Write { key: Key, op: ZnodeOp },
    SyncRead { key: Key },
}

#[derive(Debug)]
enum Event {
    Deliver {
        to: Sid,
        from: Sid,
        incarnation: u64,
        generation: u64,
        channel: Channel,
        message: Message,
    },
    Disconnected {
        to: Sid,
        peer: Sid,
        incarnation: u64,
    },
    DiskDone {
        server: Sid,
        incarnation: u64,
    },
    Tick {
        server: Sid,
        incarnation: u64,
    },
    Flush {
        server: Sid,
        incarnation: u64,
    },
    /// A client's request reaches a server (`via` the server it came through, if forwarded).
    Arrive {
        server: Sid,
        client: u64,
        op_id: u64,
        request: ClientRequest,
        forwarded: bool,
    },
    Reply {
        client: u64,
        op_id: u64,
        ret: Option<ZnodeRet>,
    },
    ClientNext {
        client: u64,
    },
    ClientTimeout {
        client: u64,
        op_id: u64,
    },
    Fault,
    Restart {
        server: Sid,
    },
    HealPartition {
        id: u64,
    },
    HealAll,
    /// A scripted crash of whoever leads (restarted a second later).
    KillLeader,
    /// A paused server's pause may be over: it handles what it deferred, in arrival order.
    Resume {
        server: Sid,
    },
    End,
}

impl Event {
    /// The server whose process must be running for this event to happen now.
    fn server(&self) -> Option<Sid> {
        match self {
            Event::Deliver { to, .. } | Event::Disconnected { to, .. } => Some(*to),
            Event::DiskDone { server, .. }
            | Event::Tick { server, .. }
            | Event::Flush { server, .. }
            | Event::Arrive { server, .. } => Some(*server),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Disk {
    accepted_epoch: u32,
    current_epoch: u32,
    snapshot_zxid: Zxid,
    snapshot: Arc<[u8]>,
    log: Vec<Entry>,
    /// Requests not yet durable, oldest first.
    pending: VecDeque<DiskRequest>,
    busy: bool,
}

impl Disk {
    fn make_durable(&mut self, request: DiskRequest) {
        match request {
            DiskRequest::Append(entries) => self.log.extend(entries),
            DiskRequest::Truncate { after } => self.log.retain(|e| e.zxid <= after),
            DiskRequest::WriteAcceptedEpoch(e) => self.accepted_epoch = e,
            DiskRequest::WriteCurrentEpoch(e) => self.current_epoch = e,
            DiskRequest::InstallSnapshot { zxid, data } => {
                self.snapshot_zxid = zxid;
                self.snapshot = data;
                self.log.clear();
            }
        }
    }

    fn holds(&self, zxid: Zxid) -> bool {
        zxid == self.snapshot_zxid || self.log.iter().any(|e| e.zxid == zxid)
    }

    fn last(&self) -> Zxid {
        self.log.last().map_or(self.snapshot_zxid, |e| e.zxid)
    }
}

struct Write {
    client: u64,
    op_id: u64,
    origin: Sid,
    key: Key,
    op: ZnodeOp,
}

struct Server {
    sid: Sid,
    up: bool,
    incarnation: u64,
    paused_until: u64,
    /// Events that came due while the process was paused, in the order they came due. While
    /// any wait here, later events queue behind them, even once the pause is over: a pause
    /// extended by another must not let a message overtake one that arrived before it.
    deferred: VecDeque<Event>,
    /// How far this machine's monotonic clock runs ahead of simulated time: it only jumps
    /// forward (a VM resumed, a host suspended), and survives a process restart.
    clock_ahead_ms: u64,
    peer: Option<Peer>,
    disk: Disk,
    state: State,
    /// The server's own pipeline and tree, fed every committed entry (host.rs).
    core: rzk_pipeline::Core,
    applied: Zxid,
    applied_since_snapshot: usize,
    /// The leader's pipeline: writes waiting for a zxid, and the values its proposals will
    /// leave (ZooKeeper's outstanding changes), tagged with the proposing zxid.
    queued: VecDeque<Write>,
    overlay: BTreeMap<Key, (Value, Zxid)>,
    flush_scheduled: bool,
    syncs: BTreeMap<u64, (u64, u64, Key)>,
    serving: bool,
    leading: bool,
}

struct Client {
    server: Sid,
    next_op_id: u64,
    /// The op in flight: its id and index in the history.
    outstanding: Option<(u64, usize)>,
    versions: BTreeMap<Key, i32>,
}

/// A partition: the servers on one side; the others are on the other side.
struct Partition {
    id: u64,
    side: BTreeSet<Sid>,
}

#[derive(Default)]
struct Link {
    generation: u64,
    down_until_us: u64,
}

pub(crate) struct World {
    cfg: SimConfig,
    rng: Prng,
    now_us: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    servers: BTreeMap<Sid, Server>,
    members: (BTreeSet<Sid>, BTreeSet<Sid>),
    links: BTreeMap<(Sid, Sid), Link>,
    fifo: BTreeMap<(Sid, Sid, Channel), u64>,
    partition: Option<Partition>,
    next_partition_id: u64,
    clients: Vec<Client>,
    pub(crate) history: Vec<(Key, Operation<Znode>)>,
    /// Write ops acknowledged to a client, with the zxid that carried them.
    pub(crate) acked_writes: Vec<Zxid>,
    next_sync_id: u64,
    pub(crate) checks: Checks,
    healed_at_us: Option<u64>,
    faults_over: bool,
    pub(crate) stats: Stats,
    leader_lost_at_us: Option<u64>,
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub events: u64,
    pub elections: u64,
    /// Simulated ms from a leader's crash to the next leader serving.
    pub failover_ms: Vec<u64>,
    pub acked_writes: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub clock_jumps: u64,
}

impl World {
    pub(crate) fn new(cfg: SimConfig) -> World {
        let mut rng = Prng::new(cfg.seed ^ 0x005e_ed0f_5a11);
        let voters: BTreeSet<Sid> = (1..=cfg.voters as u64).collect();
        let observers: BTreeSet<Sid> =
            (cfg.voters as u64 + 1..=(cfg.voters + cfg.observers) as u64).collect();
        let mut servers = BTreeMap::new();
        for &sid in voters.iter().chain(observers.iter()) {
            servers.insert(
                sid,
                Server {
                    sid,
                    up: false,
                    incarnation: 0,
                    paused_until: 0,
                    deferred: VecDeque::new(),
                    clock_ahead_ms: 0,
                    peer: None,
                    disk: Disk::default(),
                    state: State::default(),
                    core: host::learner_core(sid, host::empty_tree()),
                    applied: Zxid::ZERO,
                    applied_since_snapshot: 0,
                    queued: VecDeque::new(),
                    overlay: BTreeMap::new(),
                    flush_scheduled: false,
                    syncs: BTreeMap::new(),
                    serving: false,
                    leading: false,
                },
            );
        }
        let all: Vec<Sid> = servers.keys().copied().collect();
        let clients = (0..cfg.clients)
            .map(|_| Client {
                server: all[(rng.next_u64() % all.len() as u64) as usize],
                next_op_id: 1,
                outstanding: None,
                versions: BTreeMap::new(),
            })
            .collect();
        let mut world = World {
            rng,
            now_us: 0,
            seq: 0,
            events: BTreeMap::new(),
            servers,
            members: (voters, observers),
            links: BTreeMap::new(),
            fifo: BTreeMap::new(),
            partition: None,
            next_partition_id: 1,
            clients,
            history: Vec::new(),
            acked_writes: Vec::new(),
            next_sync_id: 1,
            checks: Checks::default(),
            healed_at_us: None,
            faults_over: false,
            stats: Stats::default(),
            leader_lost_at_us: None,
            cfg,
        };
        for sid in all {
            world.start(sid);
        }
        for client in 0..world.clients.len() as u64 {
            let at = world.rand(0, 50 * MS);
            world.at(at, Event::ClientNext { client });
        }
        if world.cfg.random_faults {
            let first_fault = world.rand(100 * MS, 400 * MS);
            world.at(first_fault, Event::Fault);
        }
        if let Some(at_ms) = world.cfg.kill_leader_at_ms {
            world.at(at_ms * MS, Event::KillLeader);
        }
        world.at(world.cfg.fault_ms * MS, Event::HealAll);
        world.at((world.cfg.fault_ms + world.cfg.settle_ms) * MS, Event::End);
        world
    }

    fn rand(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.rng.next_u64() % (hi - lo)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.next_u64() % 100 < percent
    }

    fn at(&mut self, time_us: u64, event: Event) {
        self.seq += 1;
        self.events
            .insert((time_us.max(self.now_us), self.seq), event);
    }

    fn after(&mut self, delay_us: u64, event: Event) {
        self.at(self.now_us + delay_us, event);
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if self.cfg.trace {
            // Printed as it happens, so a trace survives a failed assertion in a core. A closed
            // pipe (`| head`) only ends the printing.
            let _ = writeln!(
                std::io::stdout(),
                "{:>10.3}ms {}",
                self.now_us as f64 / 1000.0,
                line()
            );
        }
    }

    fn quorum_config(&self, me: Sid) -> Config {
        Config {
            me,
            voters: self.members.0.clone(),
            observers: self.members.1.clone(),
            tick_ms: 100,
            init_limit_ticks: 10,
            sync_limit_ticks: 3,
            finalize_wait_ms: 50,
            notify_interval_ms: 50,
            diff_window_txns: 16,
            counter_limit: self.cfg.counter_limit,
            diff_chunk_txns: 8,
            plant: self.cfg.plant,
        }
    }

    /// Runs until the end or the first violation.
    pub(crate) fn run(&mut self) {
        while let Some(((time, _), event)) = self.events.pop_first() {
            self.now_us = time;
            self.stats.events += 1;
            if let Some(server) = event.server() {
                let now = self.now_us;
                let s = self.servers.get_mut(&server).expect("server");
                if s.paused_until > now || !s.deferred.is_empty() {
                    if s.deferred.is_empty() {
                        let until = s.paused_until;
                        self.at(until, Event::Resume { server });
                    }
                    let s = self.servers.get_mut(&server).expect("server");
                    s.deferred.push_back(event);
                    continue;
                }
            }
            if let Event::Resume { server } = event {
                let s = &self.servers[&server];
                if s.paused_until > self.now_us {
                    // Paused again meanwhile: wait for the later end.
                    let until = s.paused_until;
                    self.at(until, Event::Resume { server });
                    continue;
                }
                let deferred =
                    std::mem::take(&mut self.servers.get_mut(&server).expect("server").deferred);
                for event in deferred {
                    self.handle(event);
                    if !self.checks.violations.is_empty() {
                        return;
                    }
                }
                continue;
            }
            if matches!(event, Event::End) {
                self.finish();
                return;
            }
            self.handle(event);
            if !self.checks.violations.is_empty() {
                return;
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Resume { .. } => unreachable!("resumes are handled in run"),
            Event::Deliver {
                to,
                from,
                incarnation,
                generation,
                channel,
                message,
            } => {
                if !self.alive(to, incarnation) {
                    return;
                }
                if channel == Channel::Quorum && self.link(from, to).generation != generation {
                    return;
                }
                self.log(|| format!("s{to} <- s{from} {message:?}"));
                self.step(to, Input::Message { from, message });
            }
            Event::Disconnected {
                to,
                peer,
                incarnation,
            } => {
                if self.alive(to, incarnation) {
                    self.log(|| format!("s{to} disconnected from s{peer}"));
                    self.step(to, Input::Disconnected { peer });
                }
            }
            Event::DiskDone {
                server,
                incarnation,
            } => {
                if !self.alive(server, incarnation) {
                    return;
                }
                let s = self.servers.get_mut(&server).expect("server");
                let request = s.disk.pending.pop_front().expect("a pending request");
                s.disk.make_durable(request);
                s.disk.busy = false;
                self.step(server, Input::DiskDone);
                self.kick_disk(server);
            }
            Event::Tick {
                server,
                incarnation,
            } => {
                if !self.alive(server, incarnation) {
                    return;
                }
                let now_ms = self.now_us / MS + self.servers[&server].clock_ahead_ms;
                self.step(server, Input::Tick { now_ms });
                self.after(
                    TICK_US,
                    Event::Tick {
                        server,
                        incarnation,
                    },
                );
            }
            Event::Flush {
                server,
                incarnation,
            } => {
                if self.alive(server, incarnation) {
                    self.servers
                        .get_mut(&server)
                        .expect("server")
                        .flush_scheduled = false;
                    self.flush(server);
                }
            }
            Event::Arrive {
                server,
                client,
                op_id,
                request,
                forwarded,
            } => self.arrive(server, client, op_id, request, forwarded),
            Event::Reply { client, op_id, ret } => self.reply(client, op_id, ret),
            Event::ClientNext { client } => self.client_next(client),
            Event::ClientTimeout { client, op_id } => {
                let c = &mut self.clients[client as usize];
                if c.outstanding.is_some_and(|(id, _)| id == op_id) {
                    // The outcome stays unknown in the history: it may have happened.
                    c.outstanding = None;
                    let servers: Vec<Sid> = self.servers.keys().copied().collect();
                    let pick = servers[(self.rng.next_u64() % servers.len() as u64) as usize];
                    self.clients[client as usize].server = pick;
                    self.after(MS, Event::ClientNext { client });
                }
            }
            Event::Fault => self.fault(),
            Event::Restart { server } => self.start(server),
            Event::HealPartition { id } => {
                if self.partition.as_ref().is_some_and(|p| p.id == id) {
                    self.log(|| "partition healed".to_owned());
                    self.partition = None;
                }
            }
            Event::HealAll => self.heal_all(),
            Event::KillLeader => {
                let leader = self
                    .servers
                    .values()
                    .find(|s| s.up && s.leading)
                    .map(|s| s.sid);
                if let Some(leader) = leader {
                    self.crash(leader);
                    self.after(1_000 * MS, Event::Restart { server: leader });
                }
            }
            Event::End => unreachable!("handled in run"),
        }
    }

    fn alive(&self, server: Sid, incarnation: u64) -> bool {
        let s = &self.servers[&server];
        s.up && s.incarnation == incarnation
    }

    fn link(&mut self, a: Sid, b: Sid) -> &mut Link {
        self.links.entry((a.min(b), a.max(b))).or_default()
    }

    fn reachable(&self, a: Sid, b: Sid) -> bool {
        if !self.servers[&a].up || !self.servers[&b].up {
            return false;
        }
        match &self.partition {
            Some(p) => p.side.contains(&a) == p.side.contains(&b),
            None => true,
        }
    }

    /// Breaks the quorum connection between `a` and `b`: what is in flight is lost, and each
    /// end hears of it before anything sent on a new connection arrives.
    /// Each end notices on its own (`notice_us`: a's, then b's), as two kernels would.
    fn break_link(&mut self, a: Sid, b: Sid, notice_us: (u64, u64)) {
        let now = self.now_us;
        let link = self.link(a, b);
        if link.down_until_us > now {
            return;
        }
        link.generation += 1;
        link.down_until_us = now + notice_us.0.max(notice_us.1);
        for (to, peer, notice_us) in [(a, b, notice_us.0), (b, a, notice_us.1)] {
            let incarnation = self.servers[&to].incarnation;
            self.after(
                notice_us,
                Event::Disconnected {
                    to,
                    peer,
                    incarnation,
                },
            );
        }
    }

    /// How long each end of a broken connection takes to notice: mostly at once (a reset),
    /// one time in five after a read timeout.
    fn notice_delays(&mut self) -> (u64, u64) {
        let mut one = || {
            if self.chance(20) {
                self.rand(50 * MS, 400 * MS)
            } else {
                self.rand(MS / 2, 5 * MS)
            }
        };
        (one(), one())
    }

    fn quick_notices(&mut self) -> (u64, u64) {
        (self.rand(MS / 2, 2 * MS), self.rand(MS / 2, 2 * MS))
    }

    fn send(&mut self, from: Sid, to: Sid, message: Message) {
        let channel = match message {
            Message::Notification { .. } => Channel::Election,
            _ => Channel::Quorum,
        };
        let now = self.now_us;
        let lost = !self.reachable(from, to) || (channel == Channel::Quorum && self.chance(0));
        if channel == Channel::Quorum {
            if lost || self.link(from, to).down_until_us > now {
                let delay = self.notice_delays();
                self.break_link(from, to, delay);
                return;
            }
        } else if lost || self.chance(2) {
            return;
        }
        let mut delay = self.rand(100, 1_000);
        if self.chance(3) {
            delay += self.rand(5 * MS, 30 * MS);
        }
        // Both kinds ride TCP connections: FIFO per sender and channel, never reordered
        // within one (election messages may be lost, and overtake quorum ones).
        let last = self.fifo.entry((from, to, channel)).or_default();
        let time = (now + delay).max(*last + 1);
        *last = time;
        let incarnation = self.servers[&to].incarnation;
        let generation = self.link(from, to).generation;
        self.at(
            time,
            Event::Deliver {
                to,
                from,
                incarnation,
                generation,
                channel,
                message,
            },
        );
    }

    fn kick_disk(&mut self, server: Sid) {
        let s = self.servers.get_mut(&server).expect("server");
        if s.disk.busy || s.disk.pending.is_empty() {
            return;
        }
        s.disk.busy = true;
        let incarnation = s.incarnation;
        let latency = if self.chance(3) {
            self.rand(20 * MS, 120 * MS)
        } else {
            self.rand(200, 2_000)
        };
        self.after(
            latency,
            Event::DiskDone {
                server,
                incarnation,
            },
        );
    }

    fn start(&mut self, sid: Sid) {
        let cfg = self.quorum_config(sid);
        let now_ms = self.now_us / MS + self.servers[&sid].clock_ahead_ms;
        let s = self.servers.get_mut(&sid).expect("server");
        if s.up {
            return;
        }
        s.up = true;
        s.paused_until = 0;
        s.incarnation += 1;
        let persisted = Persisted {
            accepted_epoch: s.disk.accepted_epoch,
            current_epoch: s.disk.current_epoch,
            snapshot_zxid: s.disk.snapshot_zxid,
            log: s
                .disk
                .log
                .iter()
                .filter(|e| e.zxid > s.disk.snapshot_zxid)
                .cloned()
                .collect(),
        };
        let (state, tree) = host::decode_snapshot(&s.disk.snapshot);
        s.state = state;
        s.core = host::learner_core(sid, tree);
        s.applied = s.disk.snapshot_zxid;
        self.checks.reset(sid, s.applied);
        s.peer = Some(Peer::new(cfg, persisted, now_ms));
        let incarnation = s.incarnation;
        self.log(|| format!("s{sid} starts"));
        self.after(
            1,
            Event::Tick {
                server: sid,
                incarnation,
            },
        );
    }

    fn crash(&mut self, sid: Sid) {
        let keep = {
            let s = &self.servers[&sid];
            if !s.up {
                return;
            }
            let pending = s.disk.pending.len() as u64;
            self.rand(0, pending + 1) as usize
        };
        self.stats.crashes += 1;
        let s = self.servers.get_mut(&sid).expect("server");
        if s.leading {
            self.leader_lost_at_us.get_or_insert(self.now_us);
        }
        // Unsynced writes: a prefix of them reached the platter, the rest is gone (a torn
        // frame fails its checksum and counts as gone).
        for _ in 0..keep {
            let request = s.disk.pending.pop_front().expect("counted");
            s.disk.make_durable(request);
        }
        s.disk.pending.clear();
        s.disk.busy = false;
        s.up = false;
        s.incarnation += 1;
        s.peer = None;
        s.queued.clear();
        s.overlay.clear();
        s.syncs.clear();
        s.flush_scheduled = false;
        s.serving = false;
        s.leading = false;
        self.log(|| format!("s{sid} crashes"));
        let others: Vec<Sid> = self.servers.keys().copied().filter(|&o| o != sid).collect();
        for other in others {
            // The kernel resets a dead process's connections at once.
            let delay = self.quick_notices();
            self.break_link(sid, other, delay);
        }
    }

    fn step(&mut self, sid: Sid, input: Input) {
        let mut out = Vec::new();
        let s = self.servers.get_mut(&sid).expect("server");
        s.peer
            .as_mut()
            .expect("a running server")
            .step(input, &mut out);
        self.carry_out(sid, out);
    }

    fn carry_out(&mut self, sid: Sid, out: Vec<Action>) {
        for action in out {
            if !self.checks.violations.is_empty() {
                return;
            }
            self.action(sid, action);
        }
    }

    fn action(&mut self, sid: Sid, action: Action) {
        match action {
            Action::Send { to, message } => {
                if let Message::Ack { zxid } = message {
                    let s = &self.servers[&sid];
                    if !s.disk.holds(zxid) || s.disk.last() < zxid {
                        self.checks.violation(
                            "ack-means-durable",
                            format!(
                                "s{sid} acks {zxid} but its disk holds up to {}",
                                s.disk.last()
                            ),
                        );
                    }
                }
                self.send(sid, to, message);
            }
            Action::SendSnapshot { to, zxid } => {
                let s = &self.servers[&sid];
                assert_eq!(
                    s.applied, zxid,
                    "snapshot requested at another zxid than applied"
                );
                let data = host::encode_snapshot(&s.state, &s.core);
                self.send(sid, to, Message::Snap { zxid, data });
            }
            Action::Disk(request) => {
                let s = &self.servers[&sid];
                match &request {
                    DiskRequest::WriteAcceptedEpoch(e) if *e < s.disk.accepted_epoch => {
                        let durable = s.disk.accepted_epoch;
                        self.checks.violation(
                            "epochs-only-grow",
                            format!("s{sid} writes acceptedEpoch {e} over {durable}"),
                        );
                    }
                    DiskRequest::WriteCurrentEpoch(e) if *e < s.disk.current_epoch => {
                        let durable = s.disk.current_epoch;
                        self.checks.violation(
                            "epochs-only-grow",
                            format!("s{sid} writes currentEpoch {e} over {durable}"),
                        );
                    }
                    _ => {}
                }
                let s = self.servers.get_mut(&sid).expect("server");
                s.disk.pending.push_back(request);
                self.kick_disk(sid);
            }
            Action::Apply(entries) => {
                for entry in entries {
                    self.apply(sid, entry);
                }
                self.maybe_snapshot(sid);
            }
            Action::Reset { zxid, data } => {
                self.checks.reset(sid, zxid);
                let s = self.servers.get_mut(&sid).expect("server");
                let (state, tree) = host::decode_snapshot(&data);
                s.state = state;
                s.core
                    .install(tree, Vec::new(), &mut rzk_pipeline::Actions::default());
                s.applied = zxid;
                s.overlay.clear();
            }
            Action::Role(role) => self.role(sid, role),
            Action::SyncDone { id, ok } => {
                let s = self.servers.get_mut(&sid).expect("server");
                if let Some((client, op_id, key)) = s.syncs.remove(&id) {
                    let ret = ok.then(|| ZnodeRet::Read(s.state.get(key)));
                    let delay = self.rand(100, 1_000);
                    self.after(delay, Event::Reply { client, op_id, ret });
                }
            }
            Action::Disconnect { peer } => {
                let delay = self.quick_notices();
                self.break_link(sid, peer, delay);
            }
            Action::Touched { .. } => {}
        }
    }

    fn role(&mut self, sid: Sid, role: Role) {
        self.log(|| format!("s{sid} role {role:?}"));
        let now = self.now_us;
        let s = self.servers.get_mut(&sid).expect("server");
        match role {
            Role::Looking { .. } => {
                if s.leading {
                    self.leader_lost_at_us.get_or_insert(now);
                }
                s.serving = false;
                s.leading = false;
                s.queued.clear();
                s.overlay.clear();
            }
            Role::Following { .. } => {
                s.serving = true;
                s.leading = false;
                s.queued.clear();
                s.overlay.clear();
            }
            Role::Leading { epoch, .. } => {
                s.serving = true;
                s.leading = true;
                self.stats.elections += 1;
                if let Some(lost) = self.leader_lost_at_us.take() {
                    self.stats.failover_ms.push((now - lost) / MS);
                }
                self.checks.leader(epoch, sid);
                self.flush(sid);
            }
        }
    }

    fn apply(&mut self, sid: Sid, entry: Entry) {
        let record = Record::decode(&entry.data);
        self.checks.applied(sid, &entry);
        let now = self.now_us;
        let s = self.servers.get_mut(&sid).expect("server");
        s.state.apply(&record);
        host::apply(&mut s.core, &record, entry.zxid);
        if let Err(detail) = host::tree_matches(&s.state, s.core.released(), KEYS) {
            let zxid = entry.zxid;
            self.checks.violation(
                "tree-matches-model",
                format!("s{sid} after applying {zxid}: {detail}"),
            );
            return;
        }
        let s = self.servers.get_mut(&sid).expect("server");
        s.applied = entry.zxid;
        s.applied_since_snapshot += 1;
        if s.overlay
            .get(&record.key)
            .is_some_and(|(_, z)| *z <= entry.zxid)
        {
            s.overlay.remove(&record.key);
        }
        if record.origin == sid {
            let delay = self.rand(100, 1_000);
            self.after(
                delay,
                Event::Reply {
                    client: record.client,
                    op_id: record.op_id,
                    ret: Some(record.ret.clone()),
                },
            );
            let c = &self.clients[record.client as usize];
            if c.outstanding
                .is_some_and(|(id, _)| id == without_origin(record.op_id))
            {
                self.acked_writes.push(entry.zxid);
            }
        }
        let _ = now;
    }

    /// The host's own snapshot of its applied state, when the log already holds it durably:
    /// then the log before it can go, as a server purges it.
    fn maybe_snapshot(&mut self, sid: Sid) {
        let s = self.servers.get_mut(&sid).expect("server");
        if s.applied_since_snapshot < SNAPSHOT_EVERY_TXNS || s.disk.last() < s.applied {
            return;
        }
        if !s.disk.holds(s.applied) {
            return;
        }
        s.applied_since_snapshot = 0;
        s.disk.snapshot_zxid = s.applied;
        s.disk.snapshot = host::encode_snapshot(&s.state, &s.core);
        let applied = s.applied;
        s.disk.log.retain(|e| e.zxid > applied);
    }

    fn flush(&mut self, sid: Sid) {
        let batch_max = self.rand(1, 17) as usize;
        let s = self.servers.get_mut(&sid).expect("server");
        let Some(peer) = s.peer.as_mut() else {
            return;
        };
        let Some(first) = peer.next_zxid() else {
            return;
        };
        let limit = peer.config().counter_limit;
        let room = (limit - first.counter + 1) as usize;
        let take = s.queued.len().min(batch_max).min(room);
        if take == 0 {
            return;
        }
        let mut entries = Vec::with_capacity(take);
        for i in 0..take {
            let write = s.queued.pop_front().expect("counted");
            let zxid = Zxid::new(first.epoch, first.counter + i as u32);
            let current = match s.overlay.get(&write.key) {
                Some((value, _)) => *value,
                None => s.state.get(write.key),
            };
            let (value, ret) = model::prep(current, &write.op);
            s.overlay.insert(write.key, (value, zxid));
            let record = Record {
                client: write.client,
                op_id: write.op_id,
                origin: write.origin,
                key: write.key,
                value,
                ret,
            };
            entries.push(Entry {
                zxid,
                data: record.encode().into(),
            });
        }
        let mut out = Vec::new();
        peer.propose(entries, &mut out)
            .expect("next_zxid said this leader takes proposals");
        let more = !s.queued.is_empty();
        self.carry_out(sid, out);
        if more {
            self.schedule_flush(sid);
        }
    }

    fn schedule_flush(&mut self, sid: Sid) {
        let delay = self.rand(50, 500);
        let s = self.servers.get_mut(&sid).expect("server");
        if s.flush_scheduled {
            return;
        }
        s.flush_scheduled = true;
        let incarnation = s.incarnation;
        self.after(
            delay,
            Event::Flush {
                server: sid,
                incarnation,
            },
        );
    }

    fn arrive(
        &mut self,
        sid: Sid,
        client: u64,
        op_id: u64,
        request: ClientRequest,
        forwarded: bool,
    ) {
        let s = &self.servers[&sid];
        if !s.up || !s.serving {
            return;
        }
        match request {
            ClientRequest::SyncRead { key } => {
                let id = self.next_sync_id;
                self.next_sync_id += 1;
                let s = self.servers.get_mut(&sid).expect("server");
                s.syncs.insert(id, (client, op_id, key));
                self.step(sid, Input::Sync { id });
            }
            ClientRequest::Write { key, op } => {
                if s.leading {
                    let origin = if forwarded {
                        // The learner that forwarded it answers; it rides in the request.
                        op_origin(op_id)
                    } else {
                        sid
                    };
                    let s = self.servers.get_mut(&sid).expect("server");
                    s.queued.push_back(Write {
                        client,
                        op_id,
                        origin,
                        key,
                        op,
                    });
                    self.schedule_flush(sid);
                } else if !forwarded {
                    let leader = s.peer.as_ref().and_then(|p| p.status().leader);
                    if let Some(leader) = leader {
                        if self.reachable(sid, leader) {
                            let delay = self.rand(200, 2_000);
                            self.after(
                                delay,
                                Event::Arrive {
                                    server: leader,
                                    client,
                                    op_id: with_origin(op_id, sid),
                                    request: ClientRequest::Write { key, op },
                                    forwarded: true,
                                },
                            );
                        }
                    }
                }
            }
        }
    }

    fn client_next(&mut self, client: u64) {
        if self.clients[client as usize].outstanding.is_some() {
            return;
        }
        if self.checks.has_violation() {
            return;
        }
        let key = self.rand(0, KEYS as u64) as Key;
        let c = &self.clients[client as usize];
        let op_id = c.next_op_id;
        let server = c.server;
        let known = c.versions.get(&key).copied();
        let data = client << 32 | op_id;
        let expected = |w: &mut World| {
            if w.chance(40) {
                None
            } else {
                Some(known.unwrap_or_else(|| w.rand(0, 3) as i32))
            }
        };
        let pick = self.rand(0, 100);
        let (request, op) = if pick < 30 {
            (ClientRequest::SyncRead { key }, ZnodeOp::Read)
        } else {
            let op = if pick < 50 {
                ZnodeOp::Create(data)
            } else if pick < 85 {
                ZnodeOp::Set {
                    data,
                    expected_version: expected(self),
                }
            } else {
                ZnodeOp::Delete {
                    expected_version: expected(self),
                }
            };
            (
                ClientRequest::Write {
                    key,
                    op: op.clone(),
                },
                op,
            )
        };
        let index = self.history.len();
        self.history.push((
            key,
            Operation {
                client,
                op,
                invoke: self.now_us,
                complete: None,
            },
        ));
        self.log(|| format!("client {client} -> s{server} op {op_id}: {request:?}"));
        let c = &mut self.clients[client as usize];
        c.next_op_id += 1;
        c.outstanding = Some((op_id, index));
        let delay = self.rand(100, 1_000);
        // Tagged with the client's server so a forwarding learner can be found as origin.
        self.after(
            delay,
            Event::Arrive {
                server,
                client,
                op_id: with_origin(op_id, server),
                request,
                forwarded: false,
            },
        );
        self.after(CLIENT_TIMEOUT_US, Event::ClientTimeout { client, op_id });
    }

    fn reply(&mut self, client: u64, tagged_op_id: u64, ret: Option<ZnodeRet>) {
        let op_id = without_origin(tagged_op_id);
        let now = self.now_us;
        self.log(|| format!("client {client} <- op {op_id}: {ret:?}"));
        let c = &mut self.clients[client as usize];
        let Some((outstanding, index)) = c.outstanding else {
            return;
        };
        if outstanding != op_id {
            return;
        }
        c.outstanding = None;
        let key = self.history[index].0;
        match ret {
            Some(ret) => {
                match &ret {
                    ZnodeRet::Set { version } => {
                        c.versions.insert(key, *version);
                    }
                    ZnodeRet::Read(Some((_, version))) => {
                        c.versions.insert(key, *version);
                    }
                    ZnodeRet::Created => {
                        c.versions.insert(key, 0);
                    }
                    _ => {}
                }
                if !matches!(ret, ZnodeRet::Read(_)) {
                    self.stats.acked_writes += 1;
                    if let Some(healed) = self.healed_at_us {
                        if self.history[index].1.invoke >= healed {
                            self.checks.write_after_heal(now - healed);
                        }
                    }
                }
                self.history[index].1.complete = Some((now, ret));
            }
            None => {
                // A sync that could not be confirmed: the read never happened. Reads change
                // nothing, so leaving one out of the history is exact.
                self.history[index].1.complete = Some((now, ZnodeRet::Read(None)));
                self.history[index].1.op = ZnodeOp::Read;
                self.checks.dropped_reads.insert(index);
            }
        }
        let think = self.rand(0, 5 * MS);
        self.after(think, Event::ClientNext { client });
    }

    fn fault(&mut self) {
        if self.faults_over {
            return;
        }
        let servers: Vec<Sid> = self.servers.keys().copied().collect();
        let any = |w: &mut World| servers[(w.rng.next_u64() % servers.len() as u64) as usize];
        let pick = self.rand(0, 100);
        match pick {
            0..=19 => {
                let victim = any(self);
                self.crash(victim);
                let down = self.rand(50 * MS, 3_000 * MS);
                self.after(down, Event::Restart { server: victim });
            }
            20..=34 => {
                let leader = self
                    .servers
                    .values()
                    .find(|s| s.up && s.leading)
                    .map(|s| s.sid);
                if let Some(leader) = leader {
                    self.crash(leader);
                    let down = self.rand(50 * MS, 2_000 * MS);
                    self.after(down, Event::Restart { server: leader });
                }
            }
            35..=54 if self.partition.is_none() => {
                // Half of the partitions cut the leader off briefly (a network blip): it is
                // deposed while it still believes it leads, the case that tests stale leaders.
                let leader = self
                    .servers
                    .values()
                    .find(|s| s.up && s.leading)
                    .map(|s| s.sid);
                let (side, heal) = match leader {
                    Some(leader) if self.chance(50) => {
                        (BTreeSet::from([leader]), self.rand(50 * MS, 500 * MS))
                    }
                    _ => {
                        let mut side = BTreeSet::new();
                        for &sid in &servers {
                            if self.chance(50) {
                                side.insert(sid);
                            }
                        }
                        (side, self.rand(100 * MS, 3_000 * MS))
                    }
                };
                if side.is_empty() || side.len() == servers.len() {
                    return self.schedule_fault();
                }
                self.partition_off(side, heal, &servers);
            }
            55..=74 => {
                let a = any(self);
                let b = any(self);
                if a != b {
                    self.log(|| format!("reset s{a}-s{b}"));
                    let delay = self.notice_delays();
                    self.break_link(a, b, delay);
                }
            }
            75..=84 => {
                let victim = any(self);
                let pause = self.rand(50 * MS, 1_500 * MS);
                self.log(|| format!("s{victim} paused {}ms", pause / MS));
                let s = self.servers.get_mut(&victim).expect("server");
                if s.up {
                    // Never earlier than a pause in progress: what it deferred must stay ahead.
                    s.paused_until = s.paused_until.max(self.now_us + pause);
                }
            }
            85..=92 => {
                // The monotonic clock jumps ahead: every timer of that core fires early at
                // once (a leader may think its followers silent, a follower its leader).
                let victim = any(self);
                let jump_ms = self.rand(100, 5_000);
                self.log(|| format!("s{victim} clock jumps {jump_ms}ms ahead"));
                let s = self.servers.get_mut(&victim).expect("server");
                s.clock_ahead_ms += jump_ms;
                self.stats.clock_jumps += 1;
            }
            _ => {}
        }
        self.schedule_fault();
    }

    fn partition_off(&mut self, side: BTreeSet<Sid>, heal_us: u64, servers: &[Sid]) {
        let id = self.next_partition_id;
        self.next_partition_id += 1;
        self.stats.partitions += 1;
        self.log(|| format!("partition {side:?}"));
        for &a in servers {
            for &b in servers {
                if a < b && side.contains(&a) != side.contains(&b) {
                    let delay = self.notice_delays();
                    self.break_link(a, b, delay);
                }
            }
        }
        self.partition = Some(Partition { id, side });
        self.after(heal_us, Event::HealPartition { id });
    }

    fn schedule_fault(&mut self) {
        let gap = self.rand(50 * MS, 600 * MS);
        self.after(gap, Event::Fault);
    }

    fn heal_all(&mut self) {
        self.faults_over = true;
        self.partition = None;
        self.log(|| "heal all".to_owned());
        let sids: Vec<Sid> = self.servers.keys().copied().collect();
        for sid in sids {
            // A pause runs out by itself: what it deferred is queued for its end, and ending it
            // early would let later messages overtake those.
            if !self.servers[&sid].up {
                self.start(sid);
            }
        }
        self.healed_at_us = Some(self.now_us);
    }

    fn finish(&mut self) {
        let leaders: Vec<Sid> = self
            .servers
            .values()
            .filter(|s| s.up && s.leading && s.serving)
            .map(|s| s.sid)
            .collect();
        if leaders.len() != 1 {
            self.checks.violation(
                "liveness",
                format!(
                    "after healing, {} serving leaders at the end",
                    leaders.len()
                ),
            );
            return;
        }
        self.checks.finish(self.cfg.settle_ms);
        let leader = &self.servers[&leaders[0]];
        if let Some(&max) = self.acked_writes.iter().max() {
            if leader.applied < max {
                let applied = leader.applied;
                self.checks.violation(
                    "acked-write-lost",
                    format!("an acknowledged write at {max}; the final leader applied only up to {applied}"),
                );
            }
        }
        // Healed and quiet: every server that applied as far as the leader holds the same
        // state (a snapshot installed by SNAP included), as ZooKeeper's digests would show.
        let leader_state = leader.state.clone();
        let leader_applied = leader.applied;
        let diverged: Vec<Sid> = self
            .servers
            .values()
            .filter(|s| s.up && s.applied == leader_applied && s.state != leader_state)
            .map(|s| s.sid)
            .collect();
        if let Some(sid) = diverged.first() {
            self.checks.violation(
                "state-agreement",
                format!("s{sid} and the leader both applied up to {leader_applied} but hold different states"),
            );
        }
        // And their trees have the leader's digest (ZooKeeper's check, on the real tree).
        let leader_digest = leader.core.released().digest();
        let digests: Vec<(Sid, u64)> = self
            .servers
            .values()
            .filter(|s| s.up && s.applied == leader_applied)
            .map(|s| (s.sid, s.core.released().digest()))
            .filter(|(_, d)| *d != leader_digest)
            .collect();
        if let Some((sid, digest)) = digests.first() {
            self.checks.violation(
                "digest-agreement",
                format!("s{sid} and the leader both applied up to {leader_applied} but their tree digests differ: {digest:#x} against {leader_digest:#x}"),
            );
        }
    }

    pub(crate) fn plant(&self) -> Plant {
        self.cfg.plant
    }
}

/// A forwarded request carries the learner that answers it in the op id's top byte.
fn with_origin(op_id: u64, origin: Sid) -> u64 {
    (origin << 56) | (op_id & ((1 << 56) - 1))
}

fn op_origin(tagged: u64) -> Sid {
    tagged >> 56
}

fn without_origin(tagged: u64) -> u64 {
    tagged & ((1 << 56) - 1)
}
