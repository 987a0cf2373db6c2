//! One mio event loop thread. See the crate docs for the ordering rules it keeps.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;
use rustls::ServerConnection;
use rzk_metrics::StageTimes;
use rzk_pipeline::read;
use rzk_pipeline::{ConnId, Input, Output};
use rzk_proto::{
    decode_request, decode_request_header, encode_reply, four_letter_word, xid, ConnectRequest,
    ErrorCode, FourLetterWord, Id, ReplyHeader, Request,
};
use rzk_sasl::{DigestMd5Server, Step};
use rzk_session::{auth, Touch};
use tracing::{debug, error, info, warn};

use crate::slow::SlowLog;
use crate::stats::{op_name, ConnStats};
use crate::{now_ms, CoreLink, NetConfig, Shared, ToCore, ToLoop};

const LISTENER: Token = Token(usize::MAX - 1);
const SECURE_LISTENER: Token = Token(usize::MAX - 2);
/// Plaintext handed to TLS per write: one record's worth of encryption at a time, so a big
/// reply does not sit twice in memory (plaintext and ciphertext).
const TLS_WRITE_CHUNK_BYTES: usize = 256 * 1024;
const WAKER: Token = Token(usize::MAX);
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Past this much unsent output a connection stops reading requests (back-pressure)...
const OUTBOUND_PAUSE_BYTES: usize = 4 * 1024 * 1024;
/// ...and past this much it is a client that stopped reading: it is closed.
const OUTBOUND_MAX_BYTES: usize = 64 * 1024 * 1024;
const _: () = assert!(OUTBOUND_PAUSE_BYTES < OUTBOUND_MAX_BYTES);
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How many times one poll round runs the core on this thread (when answers let clients'
/// next frames in at once) before the rest goes through the channel: other connections'
/// events wait meanwhile.
const CORE_RUNS_PER_ROUND: usize = 4;
/// How long no other connection may have sent the core a request for this loop to run the
/// core itself: a few log syncs.
const ALONE_AFTER: Duration = Duration::from_millis(2);

#[derive(Clone)]
pub struct LoopHandle {
    pub tx: Sender<ToLoop>,
    pub waker: Arc<Waker>,
}

impl LoopHandle {
    pub fn send(&self, message: ToLoop) {
        if self.tx.send(message).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the ConnectRequest (or a four-letter word).
    New,
    /// ConnectRequest handed to the core; waiting for its answer.
    Connecting,
    Established,
    /// Answering a four-letter word; reads nothing more.
    FourLetter,
}

/// A request forwarded to the core, remembered until its reply comes back.
struct InFlight {
    arrived: Instant,
    xid: i32,
    op: i32,
    write: bool,
}

struct Connection {
    id: ConnId,
    stream: TcpStream,
    peer: SocketAddr,
    state: State,
    inbound: Vec<u8>,
    inbound_start: usize,
    outbound: VecDeque<u8>,
    writable_interest: bool,
    processing: bool,
    close_reason: Option<&'static str>,
    /// Requests at the core not answered yet, oldest first.
    at_core: VecDeque<InFlight>,
    last_zxid_seen: i64,
    auth_ids: Vec<Id>,
    touch: Option<Touch>,
    session_id: i64,
    stats: Arc<ConnStats>,
    /// On secureClientPort: the TLS session every byte goes through.
    tls: Option<Box<ServerConnection>>,
    /// Counted in `Security::tls_handshakes` until the handshake ends either way.
    tls_handshaking: bool,
    /// The SASL exchange, from the client's first token on.
    sasl: Option<Box<DigestMd5Server>>,
}

impl Connection {
    fn pending_inbound(&self) -> &[u8] {
        &self.inbound[self.inbound_start..]
    }

    fn consume(&mut self, count: usize) {
        self.inbound_start += count;
        if self.inbound_start == self.inbound.len() {
            self.inbound.clear();
            self.inbound_start = 0;
        }
    }

    fn queue(&mut self, frame: &[u8]) {
        self.outbound.extend(frame);
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
    }
}

struct EventLoop {
    index: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    secure_listener: Option<TcpListener>,
    /// Connections refused at the TLS handshake limit, for a log line at powers of two
    /// instead of one per refusal in a storm.
    handshakes_refused: u64,
    rx: Receiver<ToLoop>,
    to_core: CoreLink,
    /// Messages for the core from this poll round, handed over together at its end (on
    /// this thread when the core is idle, else through the channel).
    for_core: Vec<ToCore>,
    /// The connection that last sent a request to the core, when, and when another one
    /// last did: see `alone_at_core`.
    last_sender: (ConnId, Instant),
    other_sender_at: Instant,
    /// When the current poll round started: the arrival time of every frame read in it
    /// (one clock read per round instead of two per request).
    round_started: Instant,
    peers: Vec<LoopHandle>,
    next_peer: usize,
    shared: Arc<Shared>,
    config: NetConfig,
    conns: HashMap<Token, Connection>,
    next_token: usize,
    /// When each connection accepted here must have sent its handshake, in accept order.
    /// Every connection gets the same time limit, so the deque is in deadline order too:
    /// a round looks only at the deadlines that passed, however many connections are open
    /// (a scan of every connection per round made 8,000 idle ones triple a busy client's
    /// latency).
    handshake_deadlines: VecDeque<(Instant, Token)>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    slow_log: SlowLog,
}

/// Starts `config.loop_count` loops; loop 0 accepts (on clientPort, and on secureClientPort
/// when `secure_listener` is given) and deals connections round-robin.
pub fn spawn_loops(
    config: NetConfig,
    listener: TcpListener,
    secure_listener: Option<TcpListener>,
    shared: Arc<Shared>,
    to_core: CoreLink,
) -> io::Result<(Vec<LoopHandle>, Vec<JoinHandle<()>>)> {
    let count = config.loop_count.max(1);
    let mut polls = Vec::with_capacity(count);
    let mut handles = Vec::with_capacity(count);
    let mut receivers = Vec::with_capacity(count);
    for _ in 0..count {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        handles.push(LoopHandle { tx, waker });
        receivers.push(rx);
        polls.push(poll);
    }
    let per_ip = Arc::new(Mutex::new(HashMap::new()));
    let mut listener = Some(listener);
    let mut secure_listener = secure_listener;
    let mut threads = Vec::with_capacity(count);
    for (index, (poll, rx)) in polls.into_iter().zip(receivers).enumerate() {
        let mut event_loop = EventLoop {
            index,
            poll,
            listener: listener.take(),
            secure_listener: if index == 0 {
                secure_listener.take()
            } else {
                None
            },
            handshakes_refused: 0,
            rx,
            to_core: to_core.clone(),
            for_core: Vec::new(),
            last_sender: (ConnId::MAX, Instant::now()),
            other_sender_at: Instant::now(),
            round_started: Instant::now(),
            handshake_deadlines: VecDeque::new(),
            peers: handles.clone(),
            next_peer: 0,
            shared: shared.clone(),
            config: config.clone(),
            conns: HashMap::new(),
            next_token: 0,
            per_ip: per_ip.clone(),
            slow_log: SlowLog::default(),
        };
        if let Some(l) = event_loop.listener.as_mut() {
            event_loop
                .poll
                .registry()
                .register(l, LISTENER, Interest::READABLE)?;
        }
        if let Some(l) = event_loop.secure_listener.as_mut() {
            event_loop
                .poll
                .registry()
                .register(l, SECURE_LISTENER, Interest::READABLE)?;
        }
        threads.push(
            std::thread::Builder::new()
                .name(format!("rzk-net-{index}"))
                .spawn(move || event_loop.run())?,
        );
    }
    Ok((handles, threads))
}

impl EventLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Err(e) = self.poll.poll(&mut events, Some(POLL_INTERVAL)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                warn!(error = %e, "event loop poll failed; stopping loop");
                return;
            }
            self.round_started = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(false),
                    SECURE_LISTENER => self.accept(true),
                    WAKER => {}
                    token => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(token);
                        }
                        if event.is_writable() {
                            self.flush(token);
                        }
                    }
                }
            }
            // Run the core here while it is idle; each run may answer requests (drained
            // here), and flushing those may read further frames for the core.
            let mut running = true;
            for _ in 0..CORE_RUNS_PER_ROUND {
                let ran = self.hand_to_core(true);
                if ran {
                    // The core ran here (a sync, maybe): frames read from now on arrived later.
                    self.round_started = Instant::now();
                }
                running = self.drain_channel();
                if !ran || !running || self.for_core.is_empty() {
                    break;
                }
            }
            self.hand_to_core(false);
            if !running {
                self.close_all("server shutting down");
                self.hand_to_core(false);
                return;
            }
            self.expire_handshakes();
        }
    }

    /// True when one connection alone has been sending requests to the core lately. Only
    /// then does running the core here pay: with several clients, the loop would sit in the
    /// log's sync while their requests wait unread, where the core thread's sync overlaps
    /// the loop reading them into the next batch (four closed-loop writers lost a quarter of
    /// their throughput to run-to-completion).
    fn alone_at_core(&self) -> bool {
        self.other_sender_at.elapsed() > ALONE_AFTER
    }

    fn note_sender(&mut self, conn: ConnId) {
        let now = self.round_started;
        if self.last_sender.0 != conn {
            self.other_sender_at = self.last_sender.1;
        }
        self.last_sender = (conn, now);
    }

    /// Hands this round's messages to the core: on this thread if `run_here` and the core
    /// is idle (returns true), else through the channel. Nothing stays queued here.
    fn hand_to_core(&mut self, run_here: bool) -> bool {
        if self.for_core.is_empty() {
            return false;
        }
        if run_here && self.alone_at_core() {
            if let Some(host) = self.to_core.host() {
                if host.try_run(self.index, &mut self.for_core) {
                    debug_assert!(self.for_core.is_empty());
                    return true;
                }
            }
        }
        for message in self.for_core.drain(..) {
            self.to_core.send(message);
        }
        false
    }

    fn accept(&mut self, secure: bool) {
        loop {
            let listener = if secure {
                self.secure_listener.as_ref()
            } else {
                self.listener.as_ref()
            };
            let Some(listener) = listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    if self.shared.shutting_down.load(Ordering::Relaxed) {
                        continue;
                    }
                    if self.config.max_client_cnxns > 0 {
                        let mut per_ip = self.per_ip.lock();
                        let count = per_ip.entry(peer.ip()).or_insert(0);
                        if *count >= self.config.max_client_cnxns {
                            warn!(%peer, limit = self.config.max_client_cnxns,
                                "too many connections from this address (maxClientCnxns); refusing");
                            self.shared
                                .stats
                                .connections_rejected
                                .fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        *count += 1;
                    }
                    let target = self.next_peer % self.peers.len();
                    self.next_peer += 1;
                    if target == self.index {
                        self.register(stream, peer, secure);
                    } else {
                        self.peers[target].send(ToLoop::Accepted(stream, peer, secure));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    fn register(&mut self, mut stream: TcpStream, peer: SocketAddr, secure: bool) {
        let tls = if secure {
            match self.start_tls(peer) {
                Some(tls) => Some(tls),
                None => {
                    self.release_ip(peer.ip());
                    return;
                }
            }
        } else {
            None
        };
        let token = Token(self.next_token);
        self.next_token += 1;
        let id = ((self.index as u64) << 48) | token.0 as u64;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            warn!(%peer, error = %e, "could not register connection");
            self.release_ip(peer.ip());
            if tls.is_some() {
                self.config
                    .security
                    .tls_handshakes
                    .fetch_sub(1, Ordering::Relaxed);
            }
            return;
        }
        let _ = stream.set_nodelay(true);
        let stats = Arc::new(ConnStats::new(peer, now_ms()));
        if tls.is_some() {
            stats.transport.store(ConnStats::TLS, Ordering::Relaxed);
        }
        self.shared.conns.lock().push((id, stats.clone()));
        self.shared
            .stats
            .connections_alive
            .fetch_add(1, Ordering::Relaxed);
        debug!(%peer, conn = id, "accepted connection");
        self.conns.insert(
            token,
            Connection {
                id,
                stream,
                peer,
                state: State::New,
                inbound: Vec::new(),
                inbound_start: 0,
                outbound: VecDeque::new(),
                writable_interest: false,
                processing: false,
                close_reason: None,
                at_core: VecDeque::new(),
                last_zxid_seen: 0,
                auth_ids: vec![Id::new("ip", &peer.ip().to_string())],
                touch: None,
                session_id: 0,
                stats,
                tls_handshaking: tls.is_some(),
                tls,
                sasl: None,
            },
        );
        let limit = Duration::from_millis(self.config.handshake_timeout_ms);
        self.handshake_deadlines
            .push_back((Instant::now() + limit, token));
    }

    /// A TLS session for a connection accepted on secureClientPort, unless the handshake
    /// limit is reached (then the connection is dropped unserved, as ZooKeeper's Netty
    /// factory does).
    fn start_tls(&mut self, peer: SocketAddr) -> Option<Box<ServerConnection>> {
        let security = self.config.security.clone();
        let tls = security.tls.as_ref()?;
        let in_progress = security.tls_handshakes.fetch_add(1, Ordering::Relaxed);
        if security.tls_handshake_limit > 0 && in_progress >= security.tls_handshake_limit {
            security.tls_handshakes.fetch_sub(1, Ordering::Relaxed);
            self.shared
                .stats
                .tls_handshakes_exceeded
                .fetch_add(1, Ordering::Relaxed);
            self.handshakes_refused += 1;
            if self.handshakes_refused.is_power_of_two() {
                warn!(%peer, limit = security.tls_handshake_limit, refused = self.handshakes_refused,
                    "too many TLS handshakes in progress (netty.server.outstandingHandshake.limit); closing new connection");
            }
            return None;
        }
        match ServerConnection::new(tls.current()) {
            Ok(conn) => Some(Box::new(conn)),
            Err(e) => {
                security.tls_handshakes.fetch_sub(1, Ordering::Relaxed);
                warn!(%peer, error = %e, "cannot start TLS for a new connection; closing it");
                None
            }
        }
    }

    /// Once a connection's TLS handshake is done: its client certificate's subject becomes
    /// its x509 identity (ZooKeeper's X509AuthenticationProvider), before any request can
    /// arrive to use it.
    fn tls_established(&mut self, token: Token) {
        let security = self.config.security.clone();
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        c.tls_handshaking = false;
        security.tls_handshakes.fetch_sub(1, Ordering::Relaxed);
        let Some(tls) = c.tls.as_ref() else {
            return;
        };
        let subject = match tls.peer_certificates().and_then(|chain| chain.first()) {
            None => {
                debug!(peer = %c.peer, "TLS established without a client certificate");
                return;
            }
            Some(cert) => match rzk_tls::x509_subject(cert.as_ref()) {
                Ok(subject) => subject,
                Err(e) => {
                    warn!(peer = %c.peer, error = %e, "client certificate subject unreadable; closing connection");
                    c.close_reason = Some("client certificate subject unreadable");
                    return;
                }
            },
        };
        debug!(peer = %c.peer, %subject, "TLS established with a client certificate");
        c.stats
            .transport
            .store(ConnStats::MUTUAL_TLS, Ordering::Relaxed);
        if security.x509_super_user.as_deref() == Some(subject.as_str()) {
            c.auth_ids.push(Id::new("super", &subject));
        }
        c.auth_ids.push(Id::new("x509", &subject));
        auth::order_like_zookeeper(&mut c.auth_ids);
    }

    fn release_ip(&self, ip: IpAddr) {
        if self.config.max_client_cnxns == 0 {
            return;
        }
        let mut per_ip = self.per_ip.lock();
        if let Some(count) = per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    /// Handles everything the core (or another loop) sent. Returns false on shutdown.
    fn drain_channel(&mut self) -> bool {
        let mut touched = Vec::new();
        // Read once per drain: every reply drained here left at this moment.
        let mut clock: Option<(Instant, u64)> = None;
        while let Ok(message) = self.rx.try_recv() {
            match message {
                ToLoop::Output(output, stages) => {
                    let now = *clock.get_or_insert_with(|| (Instant::now(), now_ms()));
                    if let Some(token) = self.apply_output(output, stages, now) {
                        touched.push(token);
                    }
                }
                ToLoop::Text { conn, text } => {
                    let token = token_of(conn);
                    if let Some(c) = self.conns.get_mut(&token) {
                        c.outbound.extend(text.as_bytes());
                        c.close_reason.get_or_insert("four-letter word answered");
                        touched.push(token);
                    }
                }
                ToLoop::Accepted(stream, peer, secure) => self.register(stream, peer, secure),
                ToLoop::Shutdown => return false,
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for token in touched {
            self.flush(token);
        }
        true
    }

    fn apply_output(
        &mut self,
        output: Output,
        stages: Option<rzk_metrics::CoreStages>,
        (now, wall_ms): (Instant, u64),
    ) -> Option<Token> {
        match output {
            Output::Send {
                conn,
                frame,
                reply,
                zxid,
            } => {
                let token = token_of(conn);
                let c = self.conns.get_mut(&token)?;
                if reply {
                    if let Some(request) = c.at_core.pop_front() {
                        let total = now.saturating_duration_since(request.arrived);
                        let ms = total.as_millis() as u64;
                        self.shared.stats.latency.record(ms);
                        c.stats.latency.record(ms);
                        let metrics = rzk_metrics::metrics();
                        metrics.request(request.op, request.write, total);
                        let times = stages.map(|s| StageTimes::complete(&s, total, now));
                        if let Some(times) = &times {
                            times.record(metrics);
                        }
                        let slow_ms = self.config.slow_request_ms;
                        if slow_ms > 0 && ms >= slow_ms {
                            metrics.slow_requests.inc();
                            if self.slow_log.allow(now) {
                                let suppressed = self.slow_log.take_suppressed();
                                log_slow_request(c, &request, total, times.as_ref(), suppressed);
                            }
                        }
                    }
                    c.stats
                        .queued
                        .store(c.at_core.len() as u64, Ordering::Relaxed);
                    c.stats.last_zxid.store(zxid, Ordering::Relaxed);
                    c.stats.last_response_ms.store(wall_ms, Ordering::Relaxed);
                }
                // Events count too: a client that got an event for a change must not read a
                // tree without it.
                c.last_zxid_seen = c.last_zxid_seen.max(zxid);
                self.shared
                    .stats
                    .packets_sent
                    .fetch_add(1, Ordering::Relaxed);
                c.queue(&frame);
                Some(token)
            }
            Output::Established {
                conn,
                session_id,
                timeout_ms,
                touch,
            } => {
                let token = token_of(conn);
                let c = self.conns.get_mut(&token)?;
                c.state = State::Established;
                c.session_id = session_id;
                c.touch = Some(touch);
                c.stats.session_id.store(session_id, Ordering::Relaxed);
                c.stats.timeout_ms.store(timeout_ms, Ordering::Relaxed);
                debug!(peer = %c.peer, session = format_args!("{session_id:#x}"), timeout_ms,
                    "session established");
                // Frames that arrived while the handshake was at the core.
                self.process_frames(token);
                Some(token)
            }
            Output::Close { conn, reason } => {
                let token = token_of(conn);
                let c = self.conns.get_mut(&token)?;
                c.close_reason.get_or_insert(reason);
                Some(token)
            }
        }
    }

    fn on_readable(&mut self, token: Token) {
        let mut eof = false;
        {
            let Some(c) = self.conns.get_mut(&token) else {
                return;
            };
            if c.tls.is_some() {
                return self.on_readable_tls(token);
            }
            let mut chunk = [0u8; READ_CHUNK_BYTES];
            loop {
                if c.outbound.len() >= OUTBOUND_PAUSE_BYTES || c.state == State::FourLetter {
                    break;
                }
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        c.inbound.extend_from_slice(&chunk[..n]);
                        self.shared
                            .stats
                            .bytes_received
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        debug!(peer = %c.peer, error = %e, "read failed");
                        eof = true;
                        break;
                    }
                }
            }
        }
        self.finish_read(token, eof);
    }

    /// After a read: answer what arrived, then close on end of stream or send what is due.
    fn finish_read(&mut self, token: Token, eof: bool) {
        self.process_frames(token);
        if eof {
            self.close(token, "client closed the connection");
        } else {
            self.flush(token);
        }
    }

    /// `on_readable` through TLS: ciphertext from the socket, plaintext into `inbound`.
    fn on_readable_tls(&mut self, token: Token) {
        let mut eof = false;
        let mut failure = None;
        let mut established = false;
        {
            let Some(c) = self.conns.get_mut(&token) else {
                return;
            };
            let Connection {
                tls,
                stream,
                inbound,
                outbound,
                state,
                peer,
                tls_handshaking,
                ..
            } = c;
            let tls = tls.as_mut().expect("caller checked");
            loop {
                if outbound.len() >= OUTBOUND_PAUSE_BYTES || *state == State::FourLetter {
                    break;
                }
                match tls.read_tls(stream) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        self.shared
                            .stats
                            .bytes_received
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        debug!(peer = %peer, error = %e, "read failed");
                        eof = true;
                        break;
                    }
                }
                match tls.process_new_packets() {
                    Ok(io_state) => {
                        let available = io_state.plaintext_bytes_to_read();
                        if available > 0 {
                            let start = inbound.len();
                            inbound.resize(start + available, 0);
                            if tls.reader().read_exact(&mut inbound[start..]).is_err() {
                                inbound.truncate(start);
                            }
                        }
                        if *tls_handshaking && !tls.is_handshaking() {
                            established = true;
                        }
                        if io_state.peer_has_closed() {
                            eof = true;
                            break;
                        }
                    }
                    Err(e) => {
                        // The alert rustls queued tells the client why, if it is listening.
                        let _ = tls.write_tls(stream);
                        failure = Some((*tls_handshaking, e));
                        break;
                    }
                }
            }
        }
        if let Some((handshaking, e)) = failure {
            let peer = self.conns.get(&token).map(|c| c.peer);
            if handshaking {
                self.shared
                    .stats
                    .tls_handshakes_failed
                    .fetch_add(1, Ordering::Relaxed);
                warn!(peer = ?peer, error = %e, "TLS handshake failed on secureClientPort; closing connection");
                self.close(token, "TLS handshake failed");
            } else {
                warn!(peer = ?peer, error = %e, "TLS error; closing connection");
                self.close(token, "TLS error");
            }
            return;
        }
        if established {
            self.tls_established(token);
        }
        self.finish_read(token, eof);
    }

    /// Decodes and dispatches every complete frame buffered for a connection. Not re-entrant:
    /// a local read drains the channel, which may flush this connection, which must not start
    /// on the next frame before this one is answered.
    fn process_frames(&mut self, token: Token) {
        match self.conns.get_mut(&token) {
            Some(c) if !c.processing => c.processing = true,
            _ => return,
        }
        self.process_frames_inner(token);
        if let Some(c) = self.conns.get_mut(&token) {
            c.processing = false;
        }
    }

    fn process_frames_inner(&mut self, token: Token) {
        loop {
            let Some(c) = self.conns.get_mut(&token) else {
                return;
            };
            if c.close_reason.is_some()
                || c.state == State::FourLetter
                || c.state == State::Connecting
            {
                return;
            }
            let pending = c.pending_inbound();
            if pending.len() < 4 {
                return;
            }
            let first4 = [pending[0], pending[1], pending[2], pending[3]];
            // A TLS record header (handshake, version 3.x) where a plain client's length
            // prefix would claim hundreds of megabytes.
            if c.state == State::New && c.tls.is_none() && first4[0] == 0x16 && first4[1] == 3 {
                warn!(peer = %c.peer, "TLS handshake on the plain client port; closing connection (TLS clients connect to secureClientPort)");
                self.close(token, "TLS client on the plain port");
                return;
            }
            if c.state == State::New {
                if let Some(word) = four_letter_word(first4) {
                    let argument = if word == FourLetterWord::Stmk {
                        if pending.len() < 12 {
                            return;
                        }
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&pending[4..12]);
                        Some(i64::from_be_bytes(b))
                    } else {
                        None
                    };
                    c.state = State::FourLetter;
                    let (conn, peer) = (c.id, c.peer);
                    if self.config.four_letter_words.contains(&word) {
                        self.for_core.push(ToCore::FourLetter {
                            conn,
                            word,
                            argument,
                            peer,
                        });
                    } else {
                        c.outbound.extend(
                            format!(
                                "{} is not executed because it is not in the whitelist.\n",
                                word.as_str()
                            )
                            .as_bytes(),
                        );
                        c.close_reason = Some("four-letter word not in the whitelist");
                    }
                    return;
                }
            }
            let length = i32::from_be_bytes(first4);
            if length < 0 || length as usize > self.config.max_frame_bytes {
                warn!(peer = %c.peer, length, limit = self.config.max_frame_bytes,
                    "frame length out of range (jute.maxbuffer); closing connection");
                self.close(token, "frame length out of range");
                return;
            }
            let length = length as usize;
            if pending.len() < 4 + length {
                return;
            }
            let frame = pending[4..4 + length].to_vec();
            c.consume(4 + length);
            self.shared
                .stats
                .packets_received
                .fetch_add(1, Ordering::Relaxed);
            c.stats.received.fetch_add(1, Ordering::Relaxed);
            if let Err(reason) = self.handle_frame(token, &frame) {
                self.close(token, reason);
                return;
            }
        }
    }

    fn handle_frame(&mut self, token: Token, frame: &[u8]) -> Result<(), &'static str> {
        let c = self.conns.get_mut(&token).expect("caller checked");
        if c.state == State::New {
            let request = ConnectRequest::decode(frame).map_err(|e| {
                warn!(peer = %c.peer, error = %e, "malformed connect request; closing connection");
                "malformed connect request"
            })?;
            c.state = State::Connecting;
            self.for_core.push(ToCore::Input(Input::Connect {
                conn: c.id,
                request,
                auth_ids: c.auth_ids.clone(),
            }));
            return Ok(());
        }
        let (header, request) = match decode_request(frame) {
            Ok(decoded) => decoded,
            Err(e) => {
                // A readable header but a bad body: ZooKeeper answers MarshallingError and
                // keeps the connection. Without even a header there is nothing to answer.
                let header = decode_request_header(frame).map_err(|_| {
                    warn!(peer = %c.peer, error = %e, "request frame too short for a header; closing connection");
                    "malformed request header"
                })?;
                warn!(peer = %c.peer, op = header.op, error = %e, "malformed request body; answering MarshallingError");
                (header, Request::Malformed(header.op))
            }
        };
        if let Some(touch) = &c.touch {
            touch.store(crate::mono_ms(), Ordering::Relaxed);
        }
        *c.stats.last_op.lock() = op_name(header.op);
        c.stats.last_cxid.store(header.xid, Ordering::Relaxed);
        let schemes = &self.config.security.enforce_auth_schemes;
        if !schemes.is_empty()
            && !matches!(request, Request::Auth { .. } | Request::Sasl { .. })
            && !c.auth_ids.iter().any(|id| schemes.contains(&id.scheme))
        {
            // ZooKeeper's AuthenticationHelper.enforceAuthentication: answer, then close.
            error!(peer = %c.peer, session = format_args!("{:#x}", c.session_id),
                required = ?schemes, "request from a connection not authenticated by a required scheme (enforce.auth.schemes); closing connection");
            c.queue(&encode_reply(
                ReplyHeader {
                    xid: header.xid,
                    zxid: 0,
                    err: ErrorCode::SessionClosedRequireSaslAuth.code(),
                },
                &rzk_proto::Response::Empty,
            ));
            c.close_reason = Some("authentication required");
            return Ok(());
        }
        match request {
            Request::Ping => {
                let zxid = self.shared.published.load().last_zxid();
                let frame = encode_reply(
                    ReplyHeader {
                        xid: xid::PING,
                        zxid,
                        err: 0,
                    },
                    &rzk_proto::Response::Empty,
                );
                c.queue(&frame);
                self.shared
                    .stats
                    .packets_sent
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Request::Auth { scheme, auth, .. } => {
                let ip = c.peer.ip().to_string();
                match auth::authenticate(&scheme, &auth, &ip, self.config.super_digest.as_deref()) {
                    Some(ids) => {
                        for id in ids {
                            if !c.auth_ids.contains(&id) {
                                c.auth_ids.push(id);
                            }
                        }
                        auth::order_like_zookeeper(&mut c.auth_ids);
                        self.for_core.push(ToCore::Input(Input::AuthChanged {
                            conn: c.id,
                            auth_ids: c.auth_ids.clone(),
                        }));
                        c.queue(&encode_reply(
                            ReplyHeader {
                                xid: xid::AUTH,
                                zxid: 0,
                                err: 0,
                            },
                            &rzk_proto::Response::Empty,
                        ));
                        Ok(())
                    }
                    None => {
                        warn!(peer = %c.peer, scheme, "authentication failed; closing connection");
                        self.shared
                            .stats
                            .auth_failed
                            .fetch_add(1, Ordering::Relaxed);
                        c.queue(&encode_reply(
                            ReplyHeader {
                                xid: xid::AUTH,
                                zxid: 0,
                                err: ErrorCode::AuthFailed.code(),
                            },
                            &rzk_proto::Response::Empty,
                        ));
                        c.close_reason = Some("authentication failed");
                        Ok(())
                    }
                }
            }
            Request::Sasl {
                token: client_token,
            } => {
                self.sasl_token(token, header.xid, &client_token);
                Ok(())
            }
            request
                if read::is_read(&request)
                    && !read::sets_watch(&request)
                    && c.at_core.is_empty() =>
            {
                let started = self.round_started;
                // Load the tree, then check its outputs are queued, then drain: the
                // version's events reach the client before this reply.
                let tree = self.shared.published.load_full();
                let delivered = self.shared.delivered_zxid.load(Ordering::Acquire);
                self.drain_channel();
                let Some(c) = self.conns.get_mut(&token) else {
                    return Ok(());
                };
                if !c.at_core.is_empty()
                    || tree.last_zxid() < c.last_zxid_seen
                    || tree.last_zxid() > delivered
                {
                    return self.forward(token, header.xid, request);
                }
                let result = read::serve(&tree, &request, c.session_id, &c.auth_ids);
                let zxid = tree.last_zxid();
                c.queue(&encode_reply(
                    ReplyHeader {
                        xid: header.xid,
                        zxid,
                        err: result.err.code(),
                    },
                    &result.response,
                ));
                c.last_zxid_seen = c.last_zxid_seen.max(zxid);
                self.shared
                    .stats
                    .packets_sent
                    .fetch_add(1, Ordering::Relaxed);
                self.shared.stats.latency.record(0);
                c.stats.latency.record(0);
                rzk_metrics::metrics().request(request.op(), false, started.elapsed());
                Ok(())
            }
            request => self.forward(token, header.xid, request),
        }
    }

    /// One step of a connection's SASL exchange, answered here as ZooKeeper's
    /// `processSasl` answers it on the connection's own thread.
    fn sasl_token(&mut self, token: Token, xid: i32, client_token: &[u8]) {
        let security = self.config.security.clone();
        let c = self.conns.get_mut(&token).expect("caller checked");
        let reply = |err: ErrorCode, token: Option<Vec<u8>>| {
            encode_reply(
                ReplyHeader {
                    xid,
                    zxid: 0,
                    err: err.code(),
                },
                &rzk_proto::Response::Sasl(token),
            )
        };
        let Some(credentials) = security.sasl.as_ref() else {
            warn!(peer = %c.peer, "SASL token from a client, but SASL is not configured (no Server section in java.security.auth.login.config); closing connection");
            self.shared
                .stats
                .auth_failed
                .fetch_add(1, Ordering::Relaxed);
            c.queue(&reply(ErrorCode::AuthFailed, None));
            c.close_reason = Some("SASL is not configured");
            return;
        };
        let server = c
            .sasl
            .get_or_insert_with(|| Box::new(DigestMd5Server::new(credentials.clone())));
        match server.evaluate(client_token) {
            Ok(Step::Challenge(next)) => c.queue(&reply(ErrorCode::Ok, Some(next))),
            Ok(Step::Complete {
                token: last,
                authorization_id,
            }) => {
                info!(peer = %c.peer, session = format_args!("{:#x}", c.session_id),
                    id = %authorization_id, "SASL authentication succeeded");
                if security.sasl_super_users.contains(&authorization_id) {
                    c.auth_ids.push(Id::new("super", ""));
                }
                let id = Id::new("sasl", &authorization_id);
                if !c.auth_ids.contains(&id) {
                    c.auth_ids.push(id);
                }
                auth::order_like_zookeeper(&mut c.auth_ids);
                if matches!(c.state, State::Connecting | State::Established) {
                    self.for_core.push(ToCore::Input(Input::AuthChanged {
                        conn: c.id,
                        auth_ids: c.auth_ids.clone(),
                    }));
                }
                c.queue(&reply(ErrorCode::Ok, Some(last)));
            }
            Err(e) => {
                self.shared
                    .stats
                    .auth_failed
                    .fetch_add(1, Ordering::Relaxed);
                let required = security.sasl_required();
                if security.allow_sasl_failed_clients && !required {
                    warn!(peer = %c.peer, error = %e, "SASL authentication failed; keeping the connection (allowSaslFailedClients)");
                    c.sasl = None;
                    c.queue(&reply(ErrorCode::Ok, None));
                    return;
                }
                warn!(peer = %c.peer, error = %e, "SASL authentication failed; closing connection");
                let err = if required {
                    ErrorCode::SessionClosedRequireSaslAuth
                } else {
                    ErrorCode::AuthFailed
                };
                c.queue(&reply(err, None));
                c.close_reason = Some("SASL authentication failed");
            }
        }
    }

    fn forward(&mut self, token: Token, xid: i32, request: Request) -> Result<(), &'static str> {
        let c = self.conns.get_mut(&token).expect("caller checked");
        c.at_core.push_back(InFlight {
            arrived: self.round_started,
            xid,
            op: request.op(),
            write: request.is_write(),
        });
        c.stats
            .queued
            .store(c.at_core.len() as u64, Ordering::Relaxed);
        let conn = c.id;
        self.for_core
            .push(ToCore::Input(Input::Request { conn, xid, request }));
        self.note_sender(conn);
        Ok(())
    }

    fn flush(&mut self, token: Token) {
        let mut failed = None;
        {
            let Some(c) = self.conns.get_mut(&token) else {
                return;
            };
            if let Some(tls) = c.tls.as_mut() {
                failed = write_tls(tls, &mut c.outbound, &mut c.stream);
            }
            while c.tls.is_none() && !c.outbound.is_empty() {
                let (front, _) = c.outbound.as_slices();
                match c.stream.write(front) {
                    Ok(0) => {
                        failed = Some("connection closed while writing");
                        break;
                    }
                    Ok(n) => {
                        c.outbound.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        failed = Some("write failed");
                        break;
                    }
                }
            }
            if failed.is_none() && c.outbound.len() > OUTBOUND_MAX_BYTES {
                warn!(peer = %c.peer, queued_bytes = c.outbound.len(),
                    "client is not reading its replies; closing connection");
                failed = Some("client stopped reading");
            }
            if failed.is_none() {
                let tls_pending = c.tls.as_ref().is_some_and(|tls| tls.wants_write());
                let want_write = !c.outbound.is_empty() || tls_pending;
                if want_write != c.writable_interest {
                    let interest = if want_write {
                        Interest::READABLE | Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    if self
                        .poll
                        .registry()
                        .reregister(&mut c.stream, token, interest)
                        .is_ok()
                    {
                        c.writable_interest = want_write;
                    }
                }
                if c.outbound.is_empty() && !tls_pending {
                    if let Some(reason) = c.close_reason {
                        failed = Some(reason);
                    }
                }
            }
        }
        if let Some(reason) = failed {
            self.close(token, reason);
        } else if self.conns.get(&token).is_some_and(|c| {
            c.outbound.len() < OUTBOUND_PAUSE_BYTES && !c.pending_inbound().is_empty()
        }) {
            // Reading was paused for back-pressure or frames wait behind the handshake.
            self.process_frames(token);
        }
    }

    fn close(&mut self, token: Token, reason: &'static str) {
        let Some(mut c) = self.conns.remove(&token) else {
            return;
        };
        // Best effort: whatever is still queued (an error reply) may help the client.
        if let Some(tls) = c.tls.as_mut() {
            tls.send_close_notify();
            let _ = write_tls(tls, &mut c.outbound, &mut c.stream);
        } else {
            let (front, _) = c.outbound.as_slices();
            let _ = c.stream.write(front);
        }
        if c.tls_handshaking {
            self.config
                .security
                .tls_handshakes
                .fetch_sub(1, Ordering::Relaxed);
        }
        let _ = self.poll.registry().deregister(&mut c.stream);
        if matches!(c.state, State::Connecting | State::Established) {
            self.for_core
                .push(ToCore::Input(Input::Disconnected { conn: c.id }));
        }
        self.release_ip(c.peer.ip());
        self.shared.conns.lock().retain(|(id, _)| *id != c.id);
        self.shared
            .stats
            .connections_alive
            .fetch_sub(1, Ordering::Relaxed);
        match reason {
            "client closed the connection"
            | "four-letter word answered"
            | "client closed its session" => {
                debug!(peer = %c.peer, session = format_args!("{:#x}", c.session_id), reason, "connection closed")
            }
            _ => {
                self.shared
                    .stats
                    .connections_dropped
                    .fetch_add(1, Ordering::Relaxed);
                info!(peer = %c.peer, session = format_args!("{:#x}", c.session_id), reason, "connection closed")
            }
        }
    }

    fn close_all(&mut self, reason: &'static str) {
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for token in tokens {
            self.close(token, reason);
        }
    }

    fn expire_handshakes(&mut self) {
        let Some(&(first, _)) = self.handshake_deadlines.front() else {
            return;
        };
        let now = Instant::now();
        if first > now {
            return;
        }
        while let Some(&(deadline, token)) = self.handshake_deadlines.front() {
            if deadline > now {
                return;
            }
            self.handshake_deadlines.pop_front();
            // Tokens are never reused, so the token is still that connection's if open.
            if self
                .conns
                .get(&token)
                .is_some_and(|c| c.state == State::New)
            {
                self.close(token, "no handshake within the time limit");
            }
        }
    }
}

/// Moves queued plaintext through TLS onto the socket until either runs dry or the socket
/// is full. Plaintext enters TLS only when the ciphertext before it has left, so `outbound`
/// still measures how far behind the client is.
fn write_tls(
    tls: &mut ServerConnection,
    outbound: &mut VecDeque<u8>,
    stream: &mut TcpStream,
) -> Option<&'static str> {
    loop {
        if !tls.wants_write() {
            if outbound.is_empty() {
                return None;
            }
            let (front, _) = outbound.as_slices();
            let take = front.len().min(TLS_WRITE_CHUNK_BYTES);
            match tls.writer().write(&front[..take]) {
                Ok(n) => {
                    outbound.drain(..n);
                }
                Err(_) => return Some("TLS write failed"),
            }
            if !tls.wants_write() {
                return None;
            }
        }
        match tls.write_tls(stream) {
            Ok(0) => return Some("connection closed while writing"),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Some("write failed"),
        }
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

fn log_slow_request(
    c: &Connection,
    request: &InFlight,
    total: Duration,
    times: Option<&StageTimes>,
    suppressed: u64,
) {
    let session = format_args!("{:#x}", c.session_id);
    let op = rzk_metrics::op_name(request.op);
    match times {
        Some(t) => warn!(
            peer = %c.peer, %session, xid = request.xid, op, total_us = micros(total),
            queue_us = micros(t.queue), prep_us = micros(t.prep), log_us = micros(t.log),
            quorum_us = micros(t.quorum), apply_us = micros(t.apply), reply_us = micros(t.reply),
            suppressed_since_last = suppressed,
            "slow request (slowRequest.thresholdMs)"
        ),
        None => warn!(
            peer = %c.peer, %session, xid = request.xid, op, total_us = micros(total),
            suppressed_since_last = suppressed,
            "slow request (slowRequest.thresholdMs)"
        ),
    }
}

fn token_of(conn: ConnId) -> Token {
    Token((conn & 0xffff_ffff_ffff) as usize)
}
