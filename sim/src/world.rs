//! One simulated ensemble: servers (the real quorum core and the real pipeline core over a
//! simulated disk), the network between them, ZooKeeper clients speaking the wire protocol
//! to them, and the fault schedule, all driven by one event queue and one seed.
//!
//! Transport contract the core relies on (lib.rs of quorum): a quorum connection is FIFO
//! until it breaks, and a break reaches both ends as `Disconnected` before anything sent on a
//! new connection. So any lost quorum message breaks its connection, and a new connection's
//! first message arrives after the notices. Election messages may be lost or reordered freely.
//! A learner's forwarded requests ride its quorum connection to the leader. A client
//! connection is FIFO both ways until it closes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write as _;

use rzk_pipeline::{Actions, ConnId, Forwarded, Output};
use rzk_proto::{
    ConnectRequest, ConnectResponse, CreateMode, ErrorCode, OpCode, Reader, ReplyHeader, Request,
    Response, Txn, TxnBody,
};
use rzk_quorum::{
    Action, Config, DiskRequest, Entry, Input, Message, Peer, Persisted, Plant, Role, Sid, Zxid,
};
use rzk_session::{Now, Prng, Touch};

use crate::checks::{self, Checks};
use crate::host;
use crate::linearizability::{Operation, Znode, ZnodeOp, ZnodeRet};
use crate::SimConfig;

const MS: u64 = 1_000;
/// The znodes the clients' linearizable operations use: /k0, /k1, /k2.
pub type Key = u8;
const KEYS: u8 = 3;
const CLIENT_TIMEOUT_US: u64 = 2_000 * MS;
const TICK_US: u64 = 10 * MS;
/// How often an idle client pings (ZooKeeper's clients ping at a third of the timeout).
const PING_US: u64 = host::MIN_SESSION_TIMEOUT_MS * MS / 3;
/// Snapshots the host takes of its applied state, every this many applied entries.
const SNAPSHOT_EVERY_TXNS: usize = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Channel {
    Election,
    Quorum,
}

/// What travels between servers.
#[derive(Debug)]
enum Wire {
    Peer(Message),
    Forward(Forwarded),
    /// The leader refused a forwarded write: the session moved to another server.
    Moved {
        session_id: i64,
        cxid: i32,
    },
}

/// What a client sends on its connection.
#[derive(Debug)]
enum FromClient {
    Connect(ConnectRequest),
    Request {
        xid: i32,
        request: Request,
    },
    /// The client gave up on the connection (its request timed out) and closed it.
    Hangup,
}

#[derive(Debug)]
enum Event {
    Deliver {
        to: Sid,
        from: Sid,
        incarnation: u64,
        generation: u64,
        channel: Channel,
        wire: Wire,
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
    /// A client's bytes reach its server.
    ToServer {
        server: Sid,
        incarnation: u64,
        conn: ConnId,
        message: FromClient,
    },
    /// A server's frame reaches a client.
    ToClient {
        client: u64,
        conn: ConnId,
        frame: Vec<u8>,
    },
    /// The client's connection closed: the server closed it, or died.
    Closed {
        client: u64,
        conn: ConnId,
    },
    ClientNext {
        client: u64,
    },
    ClientTimeout {
        client: u64,
        op_id: u64,
    },
    Ping {
        client: u64,
        conn: ConnId,
    },
    /// A connect unanswered by then is given up.
    ConnectTimeout {
        client: u64,
        conn: ConnId,
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
            | Event::ToServer { server, .. } => Some(*server),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Disk {
    accepted_epoch: u32,
    current_epoch: u32,
    snapshot_zxid: Zxid,
    snapshot: std::sync::Arc<[u8]>,
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

/// A client input the leader's core could not number yet (its epoch is full and rolling
/// over); fed in arrival order once it can.
#[derive(Debug)]
enum Held {
    Client(ConnId, FromClient),
    Forwarded(Sid, Forwarded),
}

struct ServerConn {
    client: u64,
    /// The session's heartbeat, once established: every packet from the client stamps it.
    touch: Option<Touch>,
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
    /// The server's pipeline: leader or learner as its peer's role says.
    core: rzk_pipeline::Core,
    conns: BTreeMap<ConnId, ServerConn>,
    applied: Zxid,
    applied_since_snapshot: usize,
    /// The leader core's txns not yet proposed: one flush is one batch, one seal, one
    /// PROPOSAL.
    unproposed: Vec<Txn>,
    held: VecDeque<Held>,
    flush_scheduled: bool,
    /// The monotonic time up to which this learner relayed its clients' heartbeats.
    touches_sent_ms: u64,
    serving: bool,
    leading: bool,
}

/// What a client waits for, by xid.
#[derive(Debug, Clone)]
enum Waiting {
    /// The linearizable operation in flight (a sync-then-read waits for its read).
    Op {
        key: Key,
        op: ZnodeOp,
    },
    Sync,
    Ephemeral,
    Close,
}

struct Client {
    server: Sid,
    conn: Option<ConnId>,
    established: bool,
    session: Option<(i64, Vec<u8>)>,
    last_zxid: i64,
    next_xid: i32,
    /// On the current connection: requests sent and not answered, in xid order, and the
    /// last reply's zxid (replies come in request order, with zxids that never go back).
    waiting: BTreeMap<i32, Waiting>,
    last_reply_zxid: i64,
    next_op_id: u64,
    /// The op in flight: its id and index in the history.
    outstanding: Option<(u64, usize)>,
    versions: BTreeMap<Key, i32>,
    /// Ephemerals this client's current session created and had acknowledged.
    ephemerals: BTreeSet<String>,
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
    /// Per client connection and direction (true: to the server), the last delivery time.
    conn_fifo: BTreeMap<(ConnId, bool), u64>,
    /// Connections whose client-to-server direction lags (a congested client link): what
    /// the client sent may reach the server after the client gave up and moved elsewhere.
    lagging: BTreeSet<ConnId>,
    /// For the session-moved checker: the connection each request of a session was sent
    /// on, by (session, xid); each session's acknowledged writes as (connection, zxid); and
    /// every committed client txn as (session, cxid, zxid), once, with the last zxid seen.
    sent_on: BTreeMap<(i64, i32), ConnId>,
    write_acks: BTreeMap<i64, Vec<(ConnId, i64)>>,
    committed_txns: Vec<(i64, i32, i64)>,
    last_committed_txn: i64,
    next_conn: ConnId,
    partition: Option<Partition>,
    next_partition_id: u64,
    clients: Vec<Client>,
    pub(crate) history: Vec<(Key, Operation<Znode>)>,
    /// Writes acknowledged to a client, with the zxid of their reply.
    pub(crate) acked_writes: Vec<Zxid>,
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
    pub sessions_expired: u64,
    pub sessions_closed: u64,
    pub syncs: u64,
    /// Writes a leader refused because their session had moved to another server
    /// (ZooKeeper's SessionMoved): sent on a lagging connection the client had left.
    pub moved_writes: u64,
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
                    core: host::learner_core(
                        sid,
                        host::empty_tree(),
                        Vec::new(),
                        cfg.counter_limit,
                        cfg.local_sessions,
                        Now::both(0),
                    ),
                    conns: BTreeMap::new(),
                    applied: Zxid::ZERO,
                    applied_since_snapshot: 0,
                    unproposed: Vec::new(),
                    held: VecDeque::new(),
                    flush_scheduled: false,
                    touches_sent_ms: 0,
                    serving: false,
                    leading: false,
                },
            );
        }
        let all: Vec<Sid> = servers.keys().copied().collect();
        let clients = (0..cfg.clients)
            .map(|_| Client {
                server: all[(rng.next_u64() % all.len() as u64) as usize],
                conn: None,
                established: false,
                session: None,
                last_zxid: 0,
                next_xid: 1,
                waiting: BTreeMap::new(),
                last_reply_zxid: 0,
                next_op_id: 1,
                outstanding: None,
                versions: BTreeMap::new(),
                ephemerals: BTreeSet::new(),
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
            conn_fifo: BTreeMap::new(),
            lagging: BTreeSet::new(),
            sent_on: BTreeMap::new(),
            write_acks: BTreeMap::new(),
            committed_txns: Vec::new(),
            last_committed_txn: 0,
            next_conn: 1,
            partition: None,
            next_partition_id: 1,
            clients,
            history: Vec::new(),
            acked_writes: Vec::new(),
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

    /// The clocks a server's cores see: its monotonic clock (which may run ahead) and a
    /// wall clock that is simulated time (the txns' mtimes, the same on every replay).
    fn clocks(&self, sid: Sid) -> Now {
        Now {
            mono_ms: self.now_us / MS + self.servers[&sid].clock_ahead_ms,
            wall_ms: self.now_us / MS,
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
                wire,
            } => {
                if !self.alive(to, incarnation) {
                    return;
                }
                if channel == Channel::Quorum && self.link(from, to).generation != generation {
                    return;
                }
                match wire {
                    Wire::Peer(message) => {
                        self.log(|| format!("s{to} <- s{from} {message:?}"));
                        self.step(to, Input::Message { from, message });
                    }
                    Wire::Forward(forwarded) => {
                        self.log(|| format!("s{to} <- s{from} forwarded {forwarded:?}"));
                        if self.servers[&to].core.is_leader() {
                            self.feed(to, Held::Forwarded(from, forwarded));
                        }
                    }
                    Wire::Moved { session_id, cxid } => {
                        self.log(|| {
                            format!("s{to} <- s{from} session {session_id:#x} moved (cxid {cxid})")
                        });
                        let s = &self.servers[&to];
                        let following =
                            s.peer.as_ref().and_then(|p| p.status().leader) == Some(from);
                        if !s.core.is_leader() && following {
                            self.core_step(to, rzk_pipeline::Input::Moved { session_id, cxid });
                        }
                    }
                }
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
                self.tick(server);
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
            Event::ToServer {
                server,
                incarnation,
                conn,
                message,
            } => {
                if self.alive(server, incarnation) {
                    self.client_message(server, conn, message);
                }
            }
            Event::ToClient {
                client,
                conn,
                frame,
            } => self.client_receives(client, conn, &frame),
            Event::Closed { client, conn } => self.closed(client, conn),
            Event::ClientNext { client } => self.client_next(client),
            Event::ClientTimeout { client, op_id } => {
                let c = &self.clients[client as usize];
                if c.outstanding.is_some_and(|(id, _)| id == op_id) {
                    // The outcome stays unknown in the history: it may have happened.
                    self.log(|| format!("client {client} gives up on op {op_id}"));
                    self.hang_up(client);
                }
            }
            Event::Ping { client, conn } => {
                let c = &self.clients[client as usize];
                if c.conn == Some(conn) {
                    if c.established {
                        self.send_request(client, -2, Request::Ping, None);
                    }
                    self.after(PING_US, Event::Ping { client, conn });
                }
            }
            Event::ConnectTimeout { client, conn } => {
                let c = &self.clients[client as usize];
                if c.conn == Some(conn) && !c.established {
                    self.log(|| format!("client {client} gives up connecting (conn {conn})"));
                    self.hang_up(client);
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

    fn send(&mut self, from: Sid, to: Sid, wire: Wire) {
        let channel = match wire {
            Wire::Peer(Message::Notification { .. }) => Channel::Election,
            _ => Channel::Quorum,
        };
        let now = self.now_us;
        let lost = !self.reachable(from, to);
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
                wire,
            },
        );
    }

    /// When something sent now on client connection `conn` arrives, in FIFO order.
    fn conn_delivery(&mut self, conn: ConnId, to_server: bool) -> u64 {
        let mut delay = self.rand(100, 1_000);
        if to_server && self.lagging.contains(&conn) {
            delay += self.rand(0, 2 * CLIENT_TIMEOUT_US);
        }
        let now = self.now_us;
        let last = self.conn_fifo.entry((conn, to_server)).or_default();
        let time = (now + delay).max(*last + 1);
        *last = time;
        time
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
        let clocks = self.clocks(sid);
        let counter_limit = self.cfg.counter_limit;
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
        let (tree, sessions) = host::decode_snapshot(&s.disk.snapshot);
        s.core = host::learner_core(
            sid,
            tree,
            sessions,
            counter_limit,
            self.cfg.local_sessions,
            clocks,
        );
        s.applied = s.disk.snapshot_zxid;
        s.touches_sent_ms = clocks.mono_ms;
        self.checks.reset(sid, s.applied);
        s.peer = Some(Peer::new(cfg, persisted, clocks.mono_ms));
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
        s.unproposed.clear();
        s.held.clear();
        s.flush_scheduled = false;
        s.serving = false;
        s.leading = false;
        self.log(|| format!("s{sid} crashes"));
        self.close_all_conns(sid);
        let others: Vec<Sid> = self.servers.keys().copied().filter(|&o| o != sid).collect();
        for other in others {
            // The kernel resets a dead process's connections at once.
            let delay = self.quick_notices();
            self.break_link(sid, other, delay);
        }
    }

    /// Every client connection of `sid` closes (a crash or a role change); each client hears
    /// of it after what was already sent to it.
    fn close_all_conns(&mut self, sid: Sid) {
        let conns = std::mem::take(&mut self.servers.get_mut(&sid).expect("server").conns);
        for (conn, c) in conns {
            self.notify_closed(c.client, conn);
        }
    }

    /// The client hears that `conn` closed, after whatever was sent to it before.
    fn notify_closed(&mut self, client: u64, conn: ConnId) {
        let at = self.conn_delivery(conn, false);
        self.at(at, Event::Closed { client, conn });
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
                self.send(sid, to, Wire::Peer(message));
            }
            Action::SendSnapshot { to, zxid } => {
                let s = &self.servers[&sid];
                let released = Zxid::from_i64(s.core.released().last_zxid());
                if released != zxid {
                    return self.checks.violation(
                        "snapshot-at-zxid",
                        format!("s{sid} must send a snapshot at {zxid}; its tree is at {released}"),
                    );
                }
                let data = host::encode_snapshot(&s.core);
                self.send(sid, to, Wire::Peer(Message::Snap { zxid, data }));
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
                self.apply(sid, entries);
                self.maybe_snapshot(sid);
            }
            Action::Reset { zxid, data } => {
                self.checks.reset(sid, zxid);
                let (tree, sessions) = host::decode_snapshot(&data);
                let mut actions = Actions::default();
                let s = self.servers.get_mut(&sid).expect("server");
                s.core.install(tree, sessions, &mut actions);
                s.applied = zxid;
                self.core_actions(sid, actions);
                self.close_all_conns(sid);
                self.check_ephemerals(sid);
            }
            Action::Role(role) => self.role(sid, role),
            Action::SyncDone { id, ok } => {
                self.stats.syncs += 1;
                self.core_step(sid, rzk_pipeline::Input::Synced { id, ok });
            }
            Action::Disconnect { peer } => {
                let delay = self.quick_notices();
                self.break_link(sid, peer, delay);
            }
            Action::Touched { sessions } => {
                if self.servers[&sid].core.is_leader() {
                    self.core_step(
                        sid,
                        rzk_pipeline::Input::Touches {
                            session_ids: sessions,
                        },
                    );
                }
            }
        }
    }

    fn role(&mut self, sid: Sid, role: Role) {
        self.log(|| format!("s{sid} role {role:?}"));
        let now = self.now_us;
        let s = self.servers.get_mut(&sid).expect("server");
        match role {
            Role::Looking { .. } | Role::Following { .. } => {
                if s.leading {
                    self.leader_lost_at_us.get_or_insert(now);
                }
                s.serving = matches!(role, Role::Following { .. });
                s.leading = false;
                s.unproposed.clear();
                s.held.clear();
                let mut actions = Actions::default();
                s.core.become_learner(&mut actions);
                self.core_actions(sid, actions);
                self.close_all_conns(sid);
            }
            Role::Leading { epoch, .. } if s.leading => {
                // The quorum moved the ensemble to the next epoch (the counter ran out).
                let mut actions = Actions::default();
                s.core.set_epoch(epoch, &mut actions);
                self.checks.leader(epoch, sid);
                self.core_actions(sid, actions);
                self.feed_held(sid);
            }
            Role::Leading { epoch, .. } => {
                let released = Zxid::from_i64(s.core.released().last_zxid());
                if released != s.applied {
                    let applied = s.applied;
                    return self.checks.violation(
                        "leader-state",
                        format!("s{sid} leads epoch {epoch} with its tree at {released}, not at {applied}"),
                    );
                }
                s.serving = true;
                s.leading = true;
                let mut actions = Actions::default();
                s.core.become_leader(epoch, &mut actions);
                self.core_actions(sid, actions);
                self.close_all_conns(sid);
                self.stats.elections += 1;
                if let Some(lost) = self.leader_lost_at_us.take() {
                    self.stats.failover_ms.push((now - lost) / MS);
                }
                self.checks.leader(epoch, sid);
            }
        }
    }

    /// Committed entries: a leader releases its own txns, a learner applies the leader's.
    fn apply(&mut self, sid: Sid, entries: Vec<Entry>) {
        let Some(last) = entries.last().map(|e| e.zxid) else {
            return;
        };
        for entry in &entries {
            self.checks.applied(sid, entry);
            if entry.zxid.as_i64() > self.last_committed_txn {
                self.last_committed_txn = entry.zxid.as_i64();
                let (txn, _) = rzk_pipeline::entry::decode(&entry.data)
                    .expect("an entry this simulator encoded");
                // A closeSession is the session's last word from wherever it was sent
                // (ZooKeeper never refuses it as moved); a createSession has no connection;
                // a failed write (an error txn, e.g. for a session already closed) changes
                // nothing.
                let client_txn = !matches!(
                    txn.body,
                    TxnBody::CloseSession | TxnBody::CreateSession { .. } | TxnBody::Error { .. }
                );
                if client_txn && txn.session_id != 0 {
                    self.committed_txns
                        .push((txn.session_id, txn.cxid, txn.zxid));
                }
            }
        }
        if self.servers[&sid].core.is_leader() {
            self.core_step(
                sid,
                rzk_pipeline::Input::Committed {
                    zxid: last.as_i64(),
                },
            );
        } else {
            // One Replicated per proposal: each ends with the leader's digest after it.
            let mut txns = Vec::new();
            for entry in &entries {
                let (txn, digest) = rzk_pipeline::entry::decode(&entry.data)
                    .expect("an entry this simulator encoded");
                txns.push(txn);
                if digest.is_some() {
                    let txns = std::mem::take(&mut txns);
                    self.core_step(sid, rzk_pipeline::Input::Replicated { txns, digest });
                }
            }
            if !txns.is_empty() {
                self.core_step(sid, rzk_pipeline::Input::Replicated { txns, digest: None });
            }
        }
        self.servers.get_mut(&sid).expect("server").applied = last;
        self.servers
            .get_mut(&sid)
            .expect("server")
            .applied_since_snapshot += entries.len();
        self.check_ephemerals(sid);
    }

    fn check_ephemerals(&mut self, sid: Sid) {
        let orphans = host::orphaned_ephemerals(&self.servers[&sid].core);
        if let Some(path) = orphans.first() {
            let applied = self.servers[&sid].applied;
            self.checks.violation(
                "ephemeral-lifetime",
                format!("s{sid} at {applied} holds {path}, whose session is closed"),
            );
        }
    }

    /// The host's own snapshot of its applied state, when the log already holds it durably:
    /// then the log before it can go, as a server purges it.
    fn maybe_snapshot(&mut self, sid: Sid) {
        let s = self.servers.get_mut(&sid).expect("server");
        if s.applied_since_snapshot < SNAPSHOT_EVERY_TXNS || s.disk.last() < s.applied {
            return;
        }
        // A leader's tree stops at the last batch end the commit covered.
        if !s.disk.holds(s.applied) || s.core.released().last_zxid() != s.applied.as_i64() {
            return;
        }
        s.applied_since_snapshot = 0;
        s.disk.snapshot_zxid = s.applied;
        s.disk.snapshot = host::encode_snapshot(&s.core);
        let applied = s.applied;
        s.disk.log.retain(|e| e.zxid > applied);
    }

    fn tick(&mut self, sid: Sid) {
        let clocks = self.clocks(sid);
        self.step(
            sid,
            Input::Tick {
                now_ms: clocks.mono_ms,
            },
        );
        if !self.servers[&sid].up {
            return;
        }
        self.core_step(sid, rzk_pipeline::Input::Tick);
        let s = self.servers.get_mut(&sid).expect("server");
        if !s.core.is_leader() && s.serving {
            // A learner relays its clients' heartbeats to the leader in its pings.
            let heard = s.core.local_sessions_heard_since(s.touches_sent_ms);
            s.touches_sent_ms = clocks.mono_ms;
            if !heard.is_empty() {
                self.step(sid, Input::Touches { sessions: heard });
            }
        }
    }

    fn core_step(&mut self, sid: Sid, input: rzk_pipeline::Input) {
        let clocks = self.clocks(sid);
        let mut actions = Actions::default();
        self.servers
            .get_mut(&sid)
            .expect("server")
            .core
            .step(clocks, input, &mut actions);
        self.core_actions(sid, actions);
    }

    /// A client input or forwarded request for the core; a leader whose epoch is full
    /// holds it (and everything after it) until the quorum moves to the next epoch.
    fn feed(&mut self, sid: Sid, item: Held) {
        let s = self.servers.get_mut(&sid).expect("server");
        if s.core.is_leader() && (s.core.room() == 0 || !s.held.is_empty()) {
            s.held.push_back(item);
            return;
        }
        self.feed_now(sid, item);
    }

    fn feed_held(&mut self, sid: Sid) {
        loop {
            let s = self.servers.get_mut(&sid).expect("server");
            if !s.core.is_leader() || s.core.room() == 0 {
                return;
            }
            let Some(item) = s.held.pop_front() else {
                return;
            };
            self.feed_now(sid, item);
        }
    }

    fn feed_now(&mut self, sid: Sid, item: Held) {
        let input = match item {
            Held::Forwarded(from, forwarded) => rzk_pipeline::Input::Forwarded { from, forwarded },
            Held::Client(conn, FromClient::Connect(request)) => rzk_pipeline::Input::Connect {
                conn,
                request,
                auth_ids: Vec::new(),
            },
            Held::Client(conn, FromClient::Request { xid, request }) => {
                rzk_pipeline::Input::Request { conn, xid, request }
            }
            Held::Client(conn, FromClient::Hangup) => rzk_pipeline::Input::Disconnected { conn },
        };
        self.core_step(sid, input);
    }

    fn core_actions(&mut self, sid: Sid, mut actions: Actions) {
        for (session, timeout_ms) in actions.expired.drain(..) {
            self.stats.sessions_expired += 1;
            self.log(|| format!("s{sid} expires session {session:#x} ({timeout_ms} ms)"));
        }
        if let Some(d) = actions.diverged.take() {
            return self.checks.violation(
                "digest-agreement",
                format!(
                    "s{sid} at {:#x}: tree digest {:#x}, the leader's {:#x}",
                    d.zxid, d.ours, d.leaders
                ),
            );
        }
        if !actions.append.is_empty() {
            let s = self.servers.get_mut(&sid).expect("server");
            s.unproposed.append(&mut actions.append);
            self.schedule_flush(sid);
        }
        for forwarded in actions.forward.drain(..) {
            let leader = self.servers[&sid]
                .peer
                .as_ref()
                .and_then(|p| p.status().leader);
            match leader {
                Some(leader) if leader != sid => {
                    self.send(sid, leader, Wire::Forward(forwarded));
                }
                // No leader: the client's connection closes when this server changes role.
                _ => {}
            }
        }
        for refused in actions.refused.drain(..) {
            self.stats.moved_writes += 1;
            self.send(
                sid,
                refused.server,
                Wire::Moved {
                    session_id: refused.session_id,
                    cxid: refused.cxid,
                },
            );
        }
        for output in actions.outputs.drain(..) {
            match output {
                Output::Send { conn, frame, .. } => {
                    let Some(client) = self.servers[&sid].conns.get(&conn).map(|c| c.client) else {
                        continue;
                    };
                    let at = self.conn_delivery(conn, false);
                    self.at(
                        at,
                        Event::ToClient {
                            client,
                            conn,
                            frame,
                        },
                    );
                }
                Output::Established { conn, touch, .. } => {
                    if let Some(c) = self
                        .servers
                        .get_mut(&sid)
                        .expect("server")
                        .conns
                        .get_mut(&conn)
                    {
                        c.touch = Some(touch);
                    }
                }
                Output::Close { conn, reason } => {
                    let Some(c) = self
                        .servers
                        .get_mut(&sid)
                        .expect("server")
                        .conns
                        .remove(&conn)
                    else {
                        continue;
                    };
                    self.log(|| format!("s{sid} closes conn {conn}: {reason}"));
                    self.notify_closed(c.client, conn);
                }
            }
        }
        for id in actions.syncs.drain(..) {
            self.step(sid, Input::Sync { id });
        }
    }

    fn flush(&mut self, sid: Sid) {
        let s = self.servers.get_mut(&sid).expect("server");
        if !s.core.is_leader() || s.unproposed.is_empty() {
            return;
        }
        let Some(peer) = s.peer.as_mut() else {
            return;
        };
        let first = Zxid::from_i64(s.unproposed[0].zxid);
        if peer.next_zxid() != Some(first) {
            let next = peer.next_zxid();
            return self.checks.violation(
                "pipeline-numbering",
                format!("s{sid}'s pipeline numbered {first}; its quorum core expects {next:?}"),
            );
        }
        // One batch: one seal (the only tree the core keeps for it), one PROPOSAL.
        s.core.seal_batch();
        let digest = s.core.proposed_digest();
        let txns = std::mem::take(&mut s.unproposed);
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
        peer.propose(entries, &mut out)
            .expect("next_zxid said this leader takes proposals");
        self.carry_out(sid, out);
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

    /// A client's message reaches server `sid`.
    fn client_message(&mut self, sid: Sid, conn: ConnId, message: FromClient) {
        let clocks = self.clocks(sid);
        let s = self.servers.get_mut(&sid).expect("server");
        match &message {
            FromClient::Connect(_) => {
                if !s.serving {
                    // ZooKeeper closes client connections while it has no leader.
                    let client = self.conn_client(conn);
                    self.notify_closed(client, conn);
                    return;
                }
                let client = self.conn_client(conn);
                let s = self.servers.get_mut(&sid).expect("server");
                s.conns.insert(
                    conn,
                    ServerConn {
                        client,
                        touch: None,
                    },
                );
            }
            FromClient::Request { .. } => {
                let Some(c) = s.conns.get(&conn) else {
                    // Closed here already; the client hears of it.
                    return;
                };
                if let Some(touch) = &c.touch {
                    touch.store(clocks.mono_ms, std::sync::atomic::Ordering::Relaxed);
                }
            }
            FromClient::Hangup => {
                if s.conns.remove(&conn).is_none() {
                    return;
                }
            }
        }
        self.feed(sid, Held::Client(conn, message));
    }

    /// The client that opened `conn` (connection ids carry it).
    fn conn_client(&self, conn: ConnId) -> u64 {
        conn % 1_000
    }

    fn send_to_server(&mut self, client: u64, message: FromClient) {
        let c = &self.clients[client as usize];
        let Some(conn) = c.conn else {
            return;
        };
        let server = c.server;
        let incarnation = self.servers[&server].incarnation;
        if !self.servers[&server].up {
            // Refused: the client finds out at once.
            self.notify_closed(client, conn);
            return;
        }
        let at = self.conn_delivery(conn, true);
        self.at(
            at,
            Event::ToServer {
                server,
                incarnation,
                conn,
                message,
            },
        );
    }

    fn send_request(&mut self, client: u64, xid: i32, request: Request, waiting: Option<Waiting>) {
        if let Some(waiting) = waiting {
            self.clients[client as usize].waiting.insert(xid, waiting);
        }
        let c = &self.clients[client as usize];
        if let (Some((session, _)), Some(conn)) = (&c.session, c.conn) {
            self.sent_on.insert((*session, xid), conn);
        }
        self.send_to_server(client, FromClient::Request { xid, request });
    }

    fn next_xid(&mut self, client: u64) -> i32 {
        let c = &mut self.clients[client as usize];
        let xid = c.next_xid;
        c.next_xid += 1;
        xid
    }

    /// Opens a connection to the client's server: a new session, or its session moving.
    fn connect(&mut self, client: u64) {
        let conn = self.next_conn * 1_000 + client;
        self.next_conn += 1;
        if self.chance(5) {
            self.lagging.insert(conn);
        }
        let c = &mut self.clients[client as usize];
        c.conn = Some(conn);
        c.established = false;
        c.waiting.clear();
        c.last_reply_zxid = 0;
        let (session_id, passwd) = c.session.clone().unwrap_or((0, vec![0; 16]));
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: c.last_zxid,
            timeout_ms: host::MIN_SESSION_TIMEOUT_MS as i32,
            session_id,
            passwd,
            read_only: Some(false),
        };
        let server = c.server;
        self.log(|| {
            format!("client {client} connects to s{server} (conn {conn}, session {session_id:#x})")
        });
        self.send_to_server(client, FromClient::Connect(request));
        self.after(PING_US, Event::Ping { client, conn });
        self.after(CLIENT_TIMEOUT_US, Event::ConnectTimeout { client, conn });
    }

    /// The client gives up on its connection (a request went unanswered too long) and
    /// tries another server.
    fn hang_up(&mut self, client: u64) {
        self.send_to_server(client, FromClient::Hangup);
        let c = &mut self.clients[client as usize];
        c.conn = None;
        self.forget_connection(client);
    }

    /// The current connection is gone: what it waited for is unknown, and the client
    /// reconnects soon, to any server.
    fn forget_connection(&mut self, client: u64) {
        let c = &mut self.clients[client as usize];
        c.conn = None;
        c.established = false;
        c.waiting.clear();
        c.outstanding = None;
        let servers: Vec<Sid> = self.servers.keys().copied().collect();
        let pick = servers[(self.rng.next_u64() % servers.len() as u64) as usize];
        self.clients[client as usize].server = pick;
        let delay = self.rand(MS, 50 * MS);
        self.after(delay, Event::ClientNext { client });
    }

    fn closed(&mut self, client: u64, conn: ConnId) {
        if self.clients[client as usize].conn != Some(conn) {
            return;
        }
        self.log(|| format!("client {client} conn {conn} closed"));
        self.forget_connection(client);
    }

    fn client_receives(&mut self, client: u64, conn: ConnId, frame: &[u8]) {
        let c = &mut self.clients[client as usize];
        if c.conn != Some(conn) {
            return;
        }
        if !c.established {
            let response = ConnectResponse::decode(&frame[4..]).expect("a ConnectResponse");
            if response.session_id == 0 {
                // Expired (or closed) while the client was away: its ephemerals are gone
                // with it; the server closes the connection next and the client starts over.
                self.log(|| format!("client {client}: session expired"));
                let c = &mut self.clients[client as usize];
                c.session = None;
                c.ephemerals.clear();
                return;
            }
            if c.session
                .as_ref()
                .is_some_and(|(id, _)| *id != response.session_id)
            {
                return self.checks.violation(
                    "session",
                    format!("client {client} re-attached and was given another session"),
                );
            }
            c.session = Some((response.session_id, response.passwd));
            c.established = true;
            let session = response.session_id;
            self.log(|| format!("client {client} in session {session:#x}"));
            let think = self.rand(0, MS);
            self.after(think, Event::ClientNext { client });
            return;
        }
        let mut r = Reader::new(&frame[4..]);
        let header = ReplyHeader::decode(&mut r).expect("a reply header");
        if header.xid == -1 || header.xid == -2 {
            // A watch event, a ping's reply.
            return;
        }
        let Some((&expected, _)) = c.waiting.first_key_value() else {
            return self.checks.violation(
                "session-order",
                format!(
                    "client {client} got a reply to xid {} it never sent",
                    header.xid
                ),
            );
        };
        if header.xid != expected || header.zxid < c.last_reply_zxid {
            let last = c.last_reply_zxid;
            return self.checks.violation(
                "session-order",
                format!(
                    "client {client} expected the reply to xid {expected} (after zxid {last:#x}), got xid {} at zxid {:#x}",
                    header.xid, header.zxid
                ),
            );
        }
        let waiting = c.waiting.remove(&expected).expect("first");
        let write = match &waiting {
            Waiting::Op { op, .. } => !matches!(op, ZnodeOp::Read),
            Waiting::Ephemeral => true,
            Waiting::Sync | Waiting::Close => false,
        };
        if write && header.err == 0 {
            if let Some((session, _)) = &c.session {
                self.write_acks
                    .entry(*session)
                    .or_default()
                    .push((conn, header.zxid));
            }
        }
        let c = &mut self.clients[client as usize];
        c.last_reply_zxid = header.zxid;
        c.last_zxid = c.last_zxid.max(header.zxid);
        let err = ErrorCode::from_i32(header.err);
        match waiting {
            Waiting::Sync => {}
            Waiting::Ephemeral => {
                if err == Some(ErrorCode::Ok) {
                    if let Ok(Response::Create { path }) =
                        rzk_proto::decode_response(OpCode::Create, &mut r)
                    {
                        c.ephemerals.insert(path);
                    }
                }
            }
            Waiting::Close => {
                self.stats.sessions_closed += 1;
                let c = &mut self.clients[client as usize];
                c.session = None;
                c.ephemerals.clear();
                // The server closes the connection after this reply.
            }
            Waiting::Op { key, op } => {
                let ret = match (&op, err) {
                    (ZnodeOp::Create(_), Some(ErrorCode::Ok)) => Some(ZnodeRet::Created),
                    (ZnodeOp::Create(_), Some(ErrorCode::NodeExists)) => Some(ZnodeRet::NodeExists),
                    (ZnodeOp::Set { .. }, Some(ErrorCode::Ok)) => {
                        match rzk_proto::decode_response(OpCode::SetData, &mut r) {
                            Ok(Response::Stat(stat)) => Some(ZnodeRet::Set {
                                version: stat.version,
                            }),
                            _ => None,
                        }
                    }
                    (ZnodeOp::Delete { .. }, Some(ErrorCode::Ok)) => Some(ZnodeRet::Deleted),
                    (ZnodeOp::Set { .. } | ZnodeOp::Delete { .. }, Some(ErrorCode::NoNode)) => {
                        Some(ZnodeRet::NoNode)
                    }
                    (ZnodeOp::Set { .. } | ZnodeOp::Delete { .. }, Some(ErrorCode::BadVersion)) => {
                        Some(ZnodeRet::BadVersion)
                    }
                    (ZnodeOp::Read, Some(ErrorCode::Ok)) => {
                        match rzk_proto::decode_response(OpCode::GetData, &mut r) {
                            Ok(Response::GetData { data, stat }) => {
                                let data = data
                                    .as_deref()
                                    .and_then(|d| d.try_into().ok())
                                    .map(u64::from_be_bytes);
                                data.map(|d| ZnodeRet::Read(Some((d, stat.version))))
                            }
                            _ => None,
                        }
                    }
                    (ZnodeOp::Read, Some(ErrorCode::NoNode)) => Some(ZnodeRet::Read(None)),
                    _ => None,
                };
                self.complete(client, key, ret, header, err);
            }
        }
    }

    /// The reply to the client's linearizable op. `ret` None: an error that leaves the data
    /// as it was (a session that expired meanwhile): the op took no effect, and leaving it
    /// out of the history is exact.
    fn complete(
        &mut self,
        client: u64,
        key: Key,
        ret: Option<ZnodeRet>,
        header: ReplyHeader,
        err: Option<ErrorCode>,
    ) {
        let now = self.now_us;
        self.log(|| format!("client {client} <- xid {} {err:?}: {ret:?}", header.xid));
        let c = &mut self.clients[client as usize];
        let Some((_, index)) = c.outstanding.take() else {
            return;
        };
        match ret {
            Some(ret) => {
                match &ret {
                    ZnodeRet::Set { version } | ZnodeRet::Read(Some((_, version))) => {
                        c.versions.insert(key, *version);
                    }
                    ZnodeRet::Created => {
                        c.versions.insert(key, 0);
                    }
                    _ => {}
                }
                if !matches!(ret, ZnodeRet::Read(_)) {
                    self.stats.acked_writes += 1;
                    self.acked_writes.push(Zxid::from_i64(header.zxid));
                    if let Some(healed) = self.healed_at_us {
                        if self.history[index].1.invoke >= healed {
                            self.checks.write_after_heal(now - healed);
                        }
                    }
                }
                self.history[index].1.complete = Some((now, ret));
            }
            None => {
                if !matches!(err, Some(ErrorCode::SessionExpired)) {
                    return self.checks.violation(
                        "reply",
                        format!(
                            "client {client}: unexpected reply {err:?} to {:?}",
                            self.history[index].1.op
                        ),
                    );
                }
                self.history[index].1.complete = Some((now, ZnodeRet::Read(None)));
                self.history[index].1.op = ZnodeOp::Read;
                self.checks.dropped_reads.insert(index);
            }
        }
        let think = self.rand(0, 5 * MS);
        self.after(think, Event::ClientNext { client });
    }

    fn client_next(&mut self, client: u64) {
        if self.checks.has_violation() {
            return;
        }
        let c = &self.clients[client as usize];
        if c.conn.is_none() {
            return self.connect(client);
        }
        if !c.established || c.outstanding.is_some() || !c.waiting.is_empty() {
            return;
        }
        if self.chance(3) {
            // Close the session: its ephemerals go with it; the next op opens a new one.
            let xid = self.next_xid(client);
            self.log(|| format!("client {client} closes its session"));
            self.send_request(client, xid, Request::CloseSession, Some(Waiting::Close));
            return;
        }
        if self.chance(15) {
            // An ephemeral sequential node, pipelined ahead of the op.
            let xid = self.next_xid(client);
            let request = rzk_pipeline::roles::create_request(
                &format!("/e-c{client}-"),
                b"",
                CreateMode::EphemeralSequential as i32,
            );
            self.send_request(client, xid, request, Some(Waiting::Ephemeral));
        }
        let key = self.rand(0, KEYS as u64) as Key;
        let c = &self.clients[client as usize];
        let op_id = c.next_op_id;
        let known = c.versions.get(&key).copied();
        let data = client << 32 | op_id;
        let expected = |w: &mut World| {
            if w.chance(40) {
                None
            } else {
                Some(known.unwrap_or_else(|| w.rand(0, 3) as i32))
            }
        };
        let path = format!("/k{key}");
        let pick = self.rand(0, 100);
        let op = if pick < 30 {
            ZnodeOp::Read
        } else if pick < 50 {
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
        let index = self.history.len();
        self.history.push((
            key,
            Operation {
                client,
                op: op.clone(),
                invoke: self.now_us,
                complete: None,
            },
        ));
        self.log(|| format!("client {client} op {op_id}: {path} {op:?}"));
        let c = &mut self.clients[client as usize];
        c.next_op_id += 1;
        c.outstanding = Some((op_id, index));
        let waiting = Waiting::Op {
            key,
            op: op.clone(),
        };
        let request = match op {
            ZnodeOp::Read => {
                // sync, then the read: linearizable, as a client that needs it does.
                let xid = self.next_xid(client);
                self.send_request(
                    client,
                    xid,
                    Request::Sync { path: path.clone() },
                    Some(Waiting::Sync),
                );
                Request::GetData { path, watch: false }
            }
            ZnodeOp::Create(data) => {
                rzk_pipeline::roles::create_request(&path, &data.to_be_bytes(), 0)
            }
            ZnodeOp::Set {
                data,
                expected_version,
            } => Request::SetData {
                path,
                data: Some(data.to_be_bytes().to_vec()),
                version: expected_version.unwrap_or(-1),
            },
            ZnodeOp::Delete { expected_version } => Request::Delete {
                path,
                version: expected_version.unwrap_or(-1),
            },
        };
        let xid = self.next_xid(client);
        self.send_request(client, xid, request, Some(waiting));
        self.after(CLIENT_TIMEOUT_US, Event::ClientTimeout { client, op_id });
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

    fn check_session_moved(&mut self) {
        if let Some(detail) =
            checks::session_moved(&self.committed_txns, &self.sent_on, &self.write_acks)
        {
            self.checks.violation("session-moved", detail);
        }
    }

    fn finish(&mut self) {
        self.check_session_moved();
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
        // tree (a snapshot installed by SNAP included), node for node and by digest.
        let leader_applied = leader.applied;
        let leader_tree = leader.core.released().clone();
        if leader_tree.last_zxid() != leader_applied.as_i64() {
            let released = Zxid::from_i64(leader_tree.last_zxid());
            return self.checks.violation(
                "liveness",
                format!(
                    "the final leader applied up to {leader_applied} but released only {released}"
                ),
            );
        }
        let leader_contents = host::contents(&leader_tree);
        let leader_digest = leader_tree.digest();
        for s in self.servers.values() {
            if !s.up || s.applied != leader_applied {
                continue;
            }
            let tree = s.core.released();
            if host::contents(tree) != leader_contents {
                let sid = s.sid;
                return self.checks.violation(
                    "state-agreement",
                    format!("s{sid} and the leader both applied up to {leader_applied} but hold different trees"),
                );
            }
            if tree.digest() != leader_digest || tree.digest() != tree.recompute_digest() {
                let (sid, digest) = (s.sid, tree.digest());
                return self.checks.violation(
                    "digest-agreement",
                    format!("s{sid} and the leader both applied up to {leader_applied} but their tree digests differ: {digest:#x} against {leader_digest:#x}"),
                );
            }
        }
        // A session still open keeps every ephemeral it was told it created.
        let sessions = leader.core.committed_sessions();
        for (client, c) in self.clients.iter().enumerate() {
            let Some((session, _)) = &c.session else {
                continue;
            };
            if !sessions.iter().any(|s| s.id == *session) {
                continue;
            }
            for path in &c.ephemerals {
                let owner = leader_tree.get(path).map(|n| n.stat().ephemeral_owner);
                if owner != Some(*session) {
                    return self.checks.violation(
                        "ephemeral-lifetime",
                        format!("client {client}'s session {session:#x} is open but its ephemeral {path} has owner {owner:?}"),
                    );
                }
            }
        }
    }

    pub(crate) fn plant(&self) -> Plant {
        self.cfg.plant
    }
}
