//! The connections between servers: one TCP connection per pair of servers and channel
//! (quorum, election), all on one mio thread, whatever the ensemble's size.
//!
//! Of each pair, the server with the larger id dials (as ZooKeeper's QuorumCnxManager
//! keeps the connection the larger id opens), so the two never race to open two. Both ends
//! open with a `Hello`; a connection becomes a *link* once the other end's hello names a
//! listed server on the expected channel. Each link gets a generation, reported in
//! `Connected` and in `Disconnected` when it breaks, and every frame received is tagged with
//! its link's generation. A send names the generation it was meant for and is dropped if
//! that link is gone, so nothing sent for a broken link ever travels on its successor: the
//! quorum core's transport contract (FIFO until a break, and the break known before
//! anything of a new connection arrives) holds at both ends.
//!
//! A slow or dead peer never grows memory without bound: a link whose unsent bytes pass
//! `max_queued_bytes` is closed (the core resyncs that learner later by DIFF or SNAP), and
//! a connection that sends no hello within `hello_timeout` is dropped. A learner's sync
//! stream is the one exception: a SNAP (as chunk frames, wire.rs) and DIFF do not count
//! against the limit (they may be far larger, and are in the leader's memory already), and
//! are admitted to the socket as it drains; the receiving end puts a SNAP's chunks back
//! together before the core sees it. Otherwise a learner behind by more than the limit
//! could never catch up: dropped at every sync, it would sync again, and be dropped again.
//!
//! With sslQuorum every connection is TLS, both ends presenting a certificate their trust
//! store must verify (ZooKeeper's ssl.quorum.* keys): a server without the right one never
//! gets past the handshake, so never to its hello. TLS runs inside this same loop: the
//! frames above it are the same bytes.
//!
//! With quorum SASL (quorum.auth.enableSasl, ZooKeeper's `SaslQuorumAuthLearner` and
//! `SaslQuorumAuthServer`) the dialer is the learner and the acceptor the server. A dialer
//! with learnerRequireSasl opens with a `SaslHello` and runs DIGEST-MD5 against the
//! acceptor's QuorumServer users, verifying the acceptor's rspauth (so it knows the password
//! too); the acceptor answers with its `Hello`, and so links, only after success. Without
//! learnerRequireSasl a dialer sends a plain `Hello`, as ZooKeeper's learner skips SASL then.
//! An acceptor with serverRequireSasl refuses a plain `Hello`; without it lets one in (the
//! rolling-upgrade path). A failed exchange always ends the connection: ZooKeeper's server
//! may keep it when SASL is optional, but its learner (which only tries SASL when it requires
//! it) closes on the ERROR it gets, so the outcome is the same. Every step runs in this loop
//! (DIGEST-MD5 is a few hashes), and the hello timeout bounds a stalled exchange.
//!
//! Never: interpret a message (the driver and the cores do), or block the thread on a
//! socket.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use rzk_quorum::Sid;
use tracing::{debug, info, warn};

use rzk_sasl::{DigestMd5Client, DigestMd5Server, Step, QUORUM_PROTOCOL, QUORUM_SERVER_NAME};

use crate::wire::{self, Channel, Frame, Handshake, Hello, SaslStatus, SnapAssembler};

/// Where a server listens for its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddrs {
    pub quorum: SocketAddr,
    pub election: SocketAddr,
}

/// sslQuorum's key material: the accepting side's config and the dialing side's.
#[derive(Clone)]
pub struct QuorumTls {
    pub server: Arc<rzk_tls::ReloadingServerConfig>,
    pub client: Arc<rzk_tls::ReloadingClientConfig>,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuorumTls")
    }
}

/// Quorum SASL (quorum.auth.enableSasl=true): what each side of a connection needs.
#[derive(Clone)]
pub struct QuorumSasl {
    /// The accepting side's DIGEST-MD5 users (the QuorumServer JAAS section).
    pub server: Arc<rzk_sasl::Credentials>,
    /// The dialing side's user name and password (the QuorumLearner JAAS section).
    pub learner_username: String,
    pub learner_password: String,
    /// quorum.auth.learnerRequireSasl: a dialer authenticates, and links only to a peer
    /// that completes the exchange (proves it knows the password); otherwise it skips SASL.
    pub learner_require: bool,
    /// quorum.auth.serverRequireSasl: an acceptor refuses a dialer that does not
    /// authenticate.
    pub server_require: bool,
}

// The password must not reach logs through {:?}.
impl std::fmt::Debug for QuorumSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumSasl")
            .field("server", &self.server)
            .field("learner_username", &self.learner_username)
            .field("learner_require", &self.learner_require)
            .field("server_require", &self.server_require)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub me: Sid,
    /// Every other server of the ensemble (voters and observers).
    pub peers: BTreeMap<Sid, PeerAddrs>,
    /// Unsent bytes one link may hold before it is closed as too slow.
    pub max_queued_bytes: usize,
    pub max_frame_bytes: usize,
    /// How long after a failed or broken dial the next one is tried.
    pub redial_after: Duration,
    pub hello_timeout: Duration,
    /// sslQuorum: TLS on every connection (None: plain TCP).
    pub tls: Option<QuorumTls>,
    /// quorum.auth.enableSasl: DIGEST-MD5 in the handshake (None: no SASL either way).
    pub sasl: Option<QuorumSasl>,
}

impl TransportConfig {
    pub fn new(me: Sid, peers: BTreeMap<Sid, PeerAddrs>) -> Self {
        TransportConfig {
            me,
            peers,
            max_queued_bytes: 64 << 20,
            max_frame_bytes: wire::MAX_FRAME_BYTES,
            redial_after: Duration::from_millis(100),
            hello_timeout: Duration::from_secs(5),
            tls: None,
            sasl: None,
        }
    }
}

#[derive(Debug)]
pub enum Event {
    Connected {
        peer: Sid,
        channel: Channel,
        generation: u64,
    },
    Frame {
        peer: Sid,
        channel: Channel,
        generation: u64,
        frame: Frame,
    },
    /// The link broke (or was closed); nothing more arrives from it, and nothing sent for it
    /// leaves.
    Disconnected {
        peer: Sid,
        channel: Channel,
        generation: u64,
    },
}

enum Command {
    Send {
        to: Sid,
        channel: Channel,
        generation: u64,
        frames: Vec<Vec<u8>>,
        /// A learner's sync stream (a SNAP's chunks, DIFF): not counted against
        /// `max_queued_bytes`.
        bulk: bool,
    },
    Close {
        peer: Sid,
        channel: Channel,
        generation: u64,
    },
    Stop,
}

/// The handle the driver holds; the connections live on the transport's thread.
pub struct Transport {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    /// Set by the first command after the transport's thread last looked, so a burst of
    /// sends (a proposal to every follower, then its commits) costs one wake, not one each.
    wake_pending: Arc<AtomicBool>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

const WAKER: Token = Token(0);
const QUORUM_LISTENER: Token = Token(1);
const ELECTION_LISTENER: Token = Token(2);
const FIRST_CONN: usize = 16;

impl Transport {
    /// Starts the transport's thread on listeners the caller bound (so a bind error is the
    /// caller's to report, with the config key that named the address).
    pub fn start(
        config: TransportConfig,
        quorum: std::net::TcpListener,
        election: std::net::TcpListener,
    ) -> io::Result<Transport> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let wake_pending = Arc::new(AtomicBool::new(false));
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (event_tx, events) = crossbeam_channel::unbounded();
        for listener in [&quorum, &election] {
            listener.set_nonblocking(true)?;
        }
        let mut quorum = TcpListener::from_std(quorum);
        let mut election = TcpListener::from_std(election);
        poll.registry()
            .register(&mut quorum, QUORUM_LISTENER, Interest::READABLE)?;
        poll.registry()
            .register(&mut election, ELECTION_LISTENER, Interest::READABLE)?;
        let mut io = Io {
            config,
            poll,
            listeners: [quorum, election],
            conns: HashMap::new(),
            links: HashMap::new(),
            redial_at: HashMap::new(),
            next_token: FIRST_CONN,
            next_generation: 1,
            commands: command_rx,
            events: event_tx,
            wake_pending: wake_pending.clone(),
            read_buf: vec![0; READ_BYTES],
            auth_warned: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("rzk-peers".into())
            .spawn(move || io.run())?;
        Ok(Transport {
            commands,
            waker,
            wake_pending,
            events,
            thread: Some(thread),
        })
    }

    /// What arrived, in order per link; a link's `Disconnected` comes after its last frame
    /// and before anything of the next link to the same peer and channel.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Sends `frame` on the link of that generation, if it still stands.
    pub fn send(&self, to: Sid, channel: Channel, generation: u64, frame: &Frame) {
        // Encoded here, on the caller's thread: the transport's thread only moves bytes.
        let bulk = matches!(
            frame,
            Frame::Message(rzk_quorum::Message::Snap { .. } | rzk_quorum::Message::Diff { .. })
        );
        self.command(Command::Send {
            to,
            channel,
            generation,
            frames: wire::encode_frames(frame),
            bulk,
        });
    }

    /// Closes that link (the core judged the peer dead or confused); it reports
    /// `Disconnected`, and a new link forms as usual.
    pub fn close(&self, peer: Sid, channel: Channel, generation: u64) {
        self.command(Command::Close {
            peer,
            channel,
            generation,
        });
    }

    fn command(&self, command: Command) {
        if self.commands.send(command).is_ok() && !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.command(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the other end's hello (an accepted connection, or a dialed one whose
    /// hello went out).
    AwaitHello,
    Linked {
        generation: u64,
    },
}

struct Conn {
    stream: TcpStream,
    channel: Channel,
    /// The server this connection is with: known from the start when dialed, from its hello
    /// when accepted.
    peer: Option<Sid>,
    dialed: bool,
    state: State,
    opened: Instant,
    read: Vec<u8>,
    write: Outbox,
    /// A SNAP being received, chunk by chunk.
    snap: Option<SnapAssembler>,
    /// sslQuorum: the TLS session the frames go through.
    tls: Option<Box<rustls::Connection>>,
    /// Quorum SASL in progress (before the link).
    auth: Option<Box<Auth>>,
}

/// One connection's quorum SASL exchange.
enum Auth {
    /// The dialer's side; `verified` once the acceptor's success (and rspauth) came.
    Learner {
        client: DigestMd5Client,
        verified: bool,
    },
    /// The acceptor's side, and the hello that opened it (linked on success).
    Server {
        server: DigestMd5Server,
        hello: Hello,
    },
}

/// Plaintext handed to TLS per write, so the sync stream is encrypted a piece at a time
/// instead of all at once into memory.
const TLS_WRITE_CHUNK_BYTES: usize = 256 * 1024;

/// What waits to be written to one connection: whole frames in order, the first of them
/// perhaps partly written. Kept as separate buffers, so a large SNAP never has to be moved
/// up in memory as it drains.
#[derive(Default)]
struct Outbox {
    frames: VecDeque<(Vec<u8>, bool)>,
    /// Bytes of the first frame already written.
    written: usize,
    /// Unsent bytes, and how many of them belong to bulk frames (SNAP chunks).
    queued: usize,
    bulk: usize,
}

/// Buffers handed to one vectored write.
const WRITE_SLICES: usize = 64;

impl Outbox {
    fn with(frame: Vec<u8>) -> Self {
        let mut outbox = Outbox::default();
        outbox.push(frame, false);
        outbox
    }

    fn push(&mut self, frame: Vec<u8>, bulk: bool) {
        self.queued += frame.len();
        if bulk {
            self.bulk += frame.len();
        }
        self.frames.push_back((frame, bulk));
    }

    /// Unsent bytes that count against the link's limit.
    fn limited(&self) -> usize {
        self.queued - self.bulk
    }

    fn slices(&self) -> Vec<IoSlice<'_>> {
        self.frames
            .iter()
            .take(WRITE_SLICES)
            .enumerate()
            .map(|(i, (frame, _))| {
                IoSlice::new(if i == 0 {
                    &frame[self.written..]
                } else {
                    frame
                })
            })
            .collect()
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let (frame, bulk) = self.frames.front().expect("wrote no more than was queued");
            let take = n.min(frame.len() - self.written);
            self.written += take;
            self.queued -= take;
            if *bulk {
                self.bulk -= take;
            }
            n -= take;
            if self.written == frame.len() {
                self.frames.pop_front();
                self.written = 0;
            }
        }
    }
}

struct Io {
    config: TransportConfig,
    poll: Poll,
    listeners: [TcpListener; 2],
    conns: HashMap<Token, Conn>,
    links: HashMap<(Sid, Channel), Token>,
    /// Peers this server dials, per channel: when to try again.
    redial_at: HashMap<(Sid, Channel), Instant>,
    next_token: usize,
    next_generation: u64,
    commands: Receiver<Command>,
    events: Sender<Event>,
    wake_pending: Arc<AtomicBool>,
    /// Reused for every read (a fresh zeroed buffer per read cost a 64 KiB memset per ACK).
    read_buf: Vec<u8>,
    /// The last authentication failure logged per peer and channel: a peer redialed every
    /// `redial_after` gets one warning per reason, not one per attempt, until it links.
    auth_warned: HashMap<(Sid, Channel), String>,
}

const READ_BYTES: usize = 64 * 1024;

const CHANNELS: [Channel; 2] = [Channel::Quorum, Channel::Election];

impl Io {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            if let Err(e) = self.poll.poll(&mut events, Some(Duration::from_millis(50))) {
                if e.kind() != ErrorKind::Interrupted {
                    warn!(error = %e, "peer transport: poll failed; stopping");
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    QUORUM_LISTENER => self.accept(Channel::Quorum),
                    ELECTION_LISTENER => self.accept(Channel::Election),
                    token => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.readable(token);
                        }
                        if event.is_writable() {
                            self.flush(token);
                        }
                    }
                }
            }
            // Cleared before the queue is drained: a command pushed after the drain wakes the
            // next poll, one pushed before it is taken here.
            self.wake_pending.store(false, Ordering::Release);
            while let Ok(command) = self.commands.try_recv() {
                match command {
                    Command::Stop => return,
                    Command::Send {
                        to,
                        channel,
                        generation,
                        frames,
                        bulk,
                    } => self.send(to, channel, generation, frames, bulk),
                    Command::Close {
                        peer,
                        channel,
                        generation,
                    } => {
                        if let Some(token) = self.link(peer, channel, generation) {
                            self.drop_conn(token, "closed by this server's core");
                        }
                    }
                }
            }
            self.expire_hellos();
            self.dial();
        }
    }

    fn link(&self, peer: Sid, channel: Channel, generation: u64) -> Option<Token> {
        let token = *self.links.get(&(peer, channel))?;
        match self.conns.get(&token)?.state {
            State::Linked { generation: g } if g == generation => Some(token),
            _ => None,
        }
    }

    fn register(&mut self, mut stream: TcpStream, conn: impl FnOnce(TcpStream) -> Conn) {
        let token = Token(self.next_token);
        self.next_token += 1;
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!(error = %e, "peer transport: cannot register a connection");
            return;
        }
        let _ = stream.set_nodelay(true);
        self.conns.insert(token, conn(stream));
        // A dialed connection's hello is queued already; an accepted one may have data.
        self.flush(token);
        self.readable(token);
    }

    fn accept(&mut self, channel: Channel) {
        let index = usize::from(channel == Channel::Election);
        loop {
            match self.listeners[index].accept() {
                Ok((stream, from)) => {
                    let now = Instant::now();
                    let tls = match &self.config.tls {
                        None => None,
                        Some(tls) => match rustls::ServerConnection::new(tls.server.current()) {
                            Ok(conn) => Some(Box::new(rustls::Connection::from(conn))),
                            Err(e) => {
                                warn!(%from, error = %e, "peer transport: cannot start TLS; dropping the connection");
                                continue;
                            }
                        },
                    };
                    self.register(stream, |stream| Conn {
                        tls,
                        stream,
                        channel,
                        peer: None,
                        dialed: false,
                        state: State::AwaitHello,
                        opened: now,
                        read: Vec::new(),
                        write: Outbox::default(),
                        snap: None,
                        auth: None,
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!(error = %e, ?channel, "peer transport: accept failed");
                    return;
                }
            }
        }
    }

    /// Opens the connections this server is the one to open: to every smaller id, on each
    /// channel, unless open or recently failed.
    fn dial(&mut self) {
        let now = Instant::now();
        let me = self.config.me;
        let targets: Vec<(Sid, Channel, SocketAddr)> = self
            .config
            .peers
            .iter()
            .filter(|(&sid, _)| sid < me)
            .flat_map(|(&sid, addrs)| {
                CHANNELS.map(|channel| {
                    let addr = match channel {
                        Channel::Quorum => addrs.quorum,
                        Channel::Election => addrs.election,
                    };
                    (sid, channel, addr)
                })
            })
            .collect();
        for (peer, channel, addr) in targets {
            let busy = self
                .conns
                .values()
                .any(|c| c.dialed && c.peer == Some(peer) && c.channel == channel);
            let due = self
                .redial_at
                .get(&(peer, channel))
                .is_none_or(|&t| now >= t);
            if busy || !due {
                continue;
            }
            self.redial_at
                .insert((peer, channel), now + self.config.redial_after);
            let tls = match &self.config.tls {
                None => None,
                Some(tls) => {
                    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                    match rustls::ClientConnection::new(tls.client.current(), name) {
                        Ok(conn) => Some(Box::new(rustls::Connection::from(conn))),
                        Err(e) => {
                            warn!(peer, %addr, error = %e, "peer transport: cannot start TLS");
                            continue;
                        }
                    }
                }
            };
            let hello = Hello { sid: me, channel };
            let (opening, auth) = match &self.config.sasl {
                Some(sasl) if sasl.learner_require => {
                    let client = DigestMd5Client::new(
                        QUORUM_PROTOCOL,
                        QUORUM_SERVER_NAME,
                        &sasl.learner_username,
                        &sasl.learner_password,
                    );
                    // DIGEST-MD5 has no initial response: the first token is empty.
                    let mut opening = Vec::new();
                    wire::encode_handshake(&Handshake::SaslHello(hello), &mut opening);
                    wire::encode_handshake(&Handshake::SaslToken(Vec::new()), &mut opening);
                    let auth = Auth::Learner {
                        client,
                        verified: false,
                    };
                    (opening, Some(Box::new(auth)))
                }
                _ => {
                    let mut opening = Vec::new();
                    wire::encode_handshake(&Handshake::Hello(hello), &mut opening);
                    (opening, None)
                }
            };
            match TcpStream::connect(addr) {
                Ok(stream) => {
                    self.register(stream, |stream| Conn {
                        tls,
                        stream,
                        channel,
                        peer: Some(peer),
                        dialed: true,
                        state: State::AwaitHello,
                        opened: now,
                        read: Vec::new(),
                        write: Outbox::with(opening),
                        snap: None,
                        auth,
                    });
                }
                Err(e) => debug!(peer, ?channel, %addr, error = %e, "peer transport: dial failed"),
            }
        }
    }

    fn expire_hellos(&mut self) {
        let limit = self.config.hello_timeout;
        let stale: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.state == State::AwaitHello && c.opened.elapsed() > limit)
            .map(|(&t, _)| t)
            .collect();
        for token in stale {
            self.drop_conn(token, "no hello within the timeout");
        }
    }

    fn readable(&mut self, token: Token) {
        let mut buf = std::mem::take(&mut self.read_buf);
        self.read_into(token, &mut buf);
        self.read_buf = buf;
    }

    fn read_into(&mut self, token: Token, buf: &mut [u8]) {
        if self.conns.get(&token).is_some_and(|c| c.tls.is_some()) {
            return self.read_tls(token);
        }
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            match conn.stream.read(buf) {
                Ok(0) => return self.drop_conn(token, "closed by the peer"),
                Ok(n) => conn.read.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(e) => return self.drop_conn(token, &format!("read failed: {e}")),
            }
            if !self.take_frames(token) {
                return;
            }
        }
        self.take_frames(token);
    }

    /// `read_into` through TLS: ciphertext from the socket, plaintext frames into `read`.
    fn read_tls(&mut self, token: Token) {
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            let tls = conn.tls.as_mut().expect("caller checked");
            match tls.read_tls(&mut conn.stream) {
                Ok(0) => return self.drop_conn(token, "closed by the peer"),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(e) => return self.drop_conn(token, &format!("read failed: {e}")),
            }
            let handshaking = tls.is_handshaking();
            match tls.process_new_packets() {
                Ok(state) => {
                    let available = state.plaintext_bytes_to_read();
                    if available > 0 {
                        let start = conn.read.len();
                        conn.read.resize(start + available, 0);
                        if tls.reader().read_exact(&mut conn.read[start..]).is_err() {
                            conn.read.truncate(start);
                        }
                    }
                    if state.peer_has_closed() {
                        self.take_frames(token);
                        return self.drop_conn(token, "closed by the peer");
                    }
                }
                Err(e) => {
                    // The alert queued tells the other end why.
                    let _ = tls.write_tls(&mut conn.stream);
                    let (peer, channel) = (conn.peer, conn.channel);
                    warn!(?peer, ?channel, error = %e,
                        "peer transport: TLS {} failed (sslQuorum); dropping the connection",
                        if handshaking { "handshake" } else { "session" });
                    return self.drop_conn(token, &format!("TLS failed: {e}"));
                }
            }
            if !self.take_frames(token) {
                return;
            }
        }
        if self.take_frames(token) {
            // The handshake may have queued an answer.
            self.flush(token);
        }
    }

    /// Decodes and hands on every whole frame read; false if the connection was dropped.
    fn take_frames(&mut self, token: Token) -> bool {
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return false;
            };
            if conn.state == State::AwaitHello {
                let limit = match conn.auth {
                    None => wire::MAX_HELLO_BYTES,
                    Some(_) => wire::MAX_SASL_FRAME_BYTES,
                };
                let (handshake, used) = match wire::decode_handshake(&conn.read, limit) {
                    Ok(Some(decoded)) => decoded,
                    Ok(None) => return true,
                    Err(e) => {
                        self.drop_conn(token, &format!("bad frame: {e}"));
                        return false;
                    }
                };
                conn.read.drain(..used);
                if !self.handshake(token, handshake) {
                    return false;
                }
                continue;
            }
            let limit = self.config.max_frame_bytes;
            let (frame, used) = match wire::decode(&conn.read, limit) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => return true,
                Err(e) => {
                    self.drop_conn(token, &format!("bad frame: {e}"));
                    return false;
                }
            };
            conn.read.drain(..used);
            if !self.frame(token, frame) {
                return false;
            }
        }
    }

    fn frame(&mut self, token: Token, frame: Frame) -> bool {
        let conn = self.conns.get(&token).expect("caller checked");
        match (conn.state, frame) {
            (State::AwaitHello, _) => unreachable!("handshake frames go to handshake()"),
            (State::Linked { .. }, Frame::Hello(_)) => {
                self.drop_conn(token, "sent a second hello");
                false
            }
            (
                State::Linked { .. },
                Frame::SnapChunk {
                    zxid,
                    total,
                    offset,
                    data,
                },
            ) => {
                let conn = self.conns.get_mut(&token).expect("caller checked");
                match SnapAssembler::push(&mut conn.snap, zxid, total, offset, &data) {
                    Ok(None) => true,
                    Ok(Some(snap)) => self.frame(token, Frame::Message(snap)),
                    Err(e) => {
                        self.drop_conn(token, &format!("bad SNAP: {e}"));
                        false
                    }
                }
            }
            (State::Linked { .. }, _) if conn.snap.is_some() => {
                self.drop_conn(token, "sent another frame inside a SNAP");
                false
            }
            (State::Linked { generation }, frame) => {
                let (peer, channel) = (conn.peer.expect("linked"), conn.channel);
                let _ = self.events.send(Event::Frame {
                    peer,
                    channel,
                    generation,
                    frame,
                });
                true
            }
        }
    }

    /// One frame of the handshake; false if the connection was dropped.
    fn handshake(&mut self, token: Token, handshake: Handshake) -> bool {
        let sasl = self.config.sasl.as_ref();
        let conn = self.conns.get_mut(&token).expect("caller checked");
        match handshake {
            Handshake::Hello(hello) => {
                if let Some(problem) = self.hello_problem(token, &hello) {
                    return self.refuse_hello(token, &hello, problem);
                }
                let conn = self.conns.get(&token).expect("caller checked");
                let problem = match &conn.auth {
                    Some(auth) if matches!(**auth, Auth::Learner { verified: true, .. }) => None,
                    Some(auth) if matches!(**auth, Auth::Learner { .. }) => Some(
                        "it answered without authenticating this server \
                         (quorum.auth.learnerRequireSasl=true; is quorum.auth.enableSasl off there?)",
                    ),
                    Some(_) => Some("a hello in the middle of its SASL exchange"),
                    None if !conn.dialed && sasl.is_some_and(|s| s.server_require) => Some(
                        "it did not authenticate (quorum.auth.serverRequireSasl=true; \
                         quorum.auth.learnerRequireSasl is off there?)",
                    ),
                    None => None,
                };
                if let Some(problem) = problem {
                    return self.refuse_auth(token, Some(hello.sid), problem);
                }
                self.make_link(token, hello)
            }
            Handshake::SaslHello(hello) => {
                if conn.dialed || conn.auth.is_some() {
                    let peer = conn.peer;
                    return self.refuse_auth(token, peer, "a SASL hello out of turn");
                }
                if let Some(problem) = self.hello_problem(token, &hello) {
                    return self.refuse_hello(token, &hello, problem);
                }
                let Some(sasl) = sasl else {
                    return self.refuse_auth(
                        token,
                        Some(hello.sid),
                        "it wants to authenticate (quorum.auth.learnerRequireSasl=true), \
                         but quorum.auth.enableSasl is off here",
                    );
                };
                let server = DigestMd5Server::for_service(
                    sasl.server.clone(),
                    QUORUM_PROTOCOL,
                    QUORUM_SERVER_NAME,
                );
                let conn = self.conns.get_mut(&token).expect("caller checked");
                conn.peer = Some(hello.sid);
                conn.auth = Some(Box::new(Auth::Server { server, hello }));
                true
            }
            Handshake::SaslToken(t) => {
                let peer = conn.peer;
                let Some(Auth::Server { server, hello }) = conn.auth.as_deref_mut() else {
                    return self.refuse_auth(token, peer, "a SASL token out of turn");
                };
                let hello = *hello;
                let (answer, outcome) = match server.evaluate(&t) {
                    Ok(Step::Challenge(challenge)) => (
                        Handshake::SaslAnswer {
                            status: SaslStatus::InProgress,
                            token: challenge,
                        },
                        Ok(None),
                    ),
                    Ok(Step::Complete {
                        token: rspauth,
                        authorization_id,
                    }) => (
                        Handshake::SaslAnswer {
                            status: SaslStatus::Success,
                            token: rspauth,
                        },
                        Ok(Some(authorization_id)),
                    ),
                    Err(e) => (
                        Handshake::SaslAnswer {
                            status: SaslStatus::Error,
                            token: Vec::new(),
                        },
                        Err(e),
                    ),
                };
                let mut bytes = Vec::new();
                wire::encode_handshake(&answer, &mut bytes);
                conn.write.push(bytes, false);
                match outcome {
                    Ok(None) => {
                        self.flush(token);
                        self.conns.contains_key(&token)
                    }
                    Ok(Some(user)) => {
                        info!(peer = hello.sid, channel = ?hello.channel, user,
                            "peer transport: quorum SASL: the peer authenticated");
                        self.conns.get_mut(&token).expect("caller checked").auth = None;
                        self.make_link(token, hello)
                    }
                    Err(e) => {
                        // The answer tells the dialer; it may still be on its way when the
                        // socket closes, and then the dialer sees the close instead.
                        self.flush(token);
                        let reason = format!("it failed to authenticate: {e}");
                        self.refuse_auth(token, Some(hello.sid), &reason)
                    }
                }
            }
            Handshake::SaslAnswer { status, token: t } => {
                let peer = conn.peer;
                let Some(Auth::Learner { client, verified }) = conn.auth.as_deref_mut() else {
                    return self.refuse_auth(token, peer, "a SASL answer out of turn");
                };
                if *verified {
                    return self.refuse_auth(token, peer, "a SASL answer after its success");
                }
                match status {
                    SaslStatus::InProgress => match client.evaluate(&t) {
                        Ok(response) => {
                            let mut bytes = Vec::new();
                            wire::encode_handshake(&Handshake::SaslToken(response), &mut bytes);
                            conn.write.push(bytes, false);
                            self.flush(token);
                            self.conns.contains_key(&token)
                        }
                        Err(e) => {
                            let reason = format!("its SASL challenge is refused: {e}");
                            self.refuse_auth(token, peer, &reason)
                        }
                    },
                    SaslStatus::Success => match client.evaluate(&t) {
                        Ok(_) if client.is_complete() => {
                            *verified = true;
                            true
                        }
                        Ok(_) => self.refuse_auth(
                            token,
                            peer,
                            "it declared SASL success before the exchange was complete",
                        ),
                        Err(e) => {
                            let reason = format!("it did not prove it knows the password: {e}");
                            self.refuse_auth(token, peer, &reason)
                        }
                    },
                    SaslStatus::Error => self.refuse_auth(
                        token,
                        peer,
                        "it refused this server's credentials (wrong password, or a user its \
                         QuorumServer section lacks)",
                    ),
                }
            }
        }
    }

    /// Why this hello is refused, if it is.
    fn hello_problem(&self, token: Token, hello: &Hello) -> Option<&'static str> {
        let me = self.config.me;
        let conn = self.conns.get(&token).expect("caller checked");
        if hello.channel != conn.channel {
            Some("its hello names the other channel")
        } else if !self.config.peers.contains_key(&hello.sid) {
            Some("its server id is not in this ensemble")
        } else if conn.dialed && conn.peer != Some(hello.sid) {
            Some("another server answers at that peer's address")
        } else if !conn.dialed && hello.sid < me {
            Some("a smaller server id dialed (the larger one dials)")
        } else {
            None
        }
    }

    fn refuse_hello(&mut self, token: Token, hello: &Hello, problem: &str) -> bool {
        warn!(
            sid = hello.sid,
            channel = ?hello.channel,
            "peer transport: refusing a connection: {problem}"
        );
        self.drop_conn(token, problem);
        false
    }

    /// Ends a connection whose authentication failed: a warning naming the peer and the
    /// reason (once per reason while the peer keeps retrying), then the close.
    fn refuse_auth(&mut self, token: Token, peer: Option<Sid>, reason: &str) -> bool {
        let Some(conn) = self.conns.get_mut(&token) else {
            return false;
        };
        conn.auth = None;
        let channel = conn.channel;
        let from = conn.stream.peer_addr().ok();
        let repeated = peer.is_some_and(|peer| {
            self.auth_warned.get(&(peer, channel)).map(String::as_str) == Some(reason)
        });
        if repeated {
            debug!(
                ?peer,
                ?channel,
                ?from,
                "peer transport: quorum SASL: refused: {reason}"
            );
        } else {
            warn!(
                ?peer,
                ?channel,
                ?from,
                "peer transport: quorum SASL: refusing the connection: {reason}"
            );
            if let Some(peer) = peer {
                self.auth_warned.insert((peer, channel), reason.to_string());
            }
        }
        self.drop_conn(token, reason);
        false
    }

    /// Makes the connection a link (its hello passed every check).
    fn make_link(&mut self, token: Token, hello: Hello) -> bool {
        let me = self.config.me;
        let (peer, channel) = (hello.sid, hello.channel);
        // A newer connection from the same peer replaces the old one (it restarted, or
        // redialed after a break this end has not noticed yet).
        if let Some(&old) = self.links.get(&(peer, channel)) {
            if old != token {
                self.drop_conn(old, "replaced by a newer connection");
            }
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let conn = self.conns.get_mut(&token).expect("caller checked");
        conn.peer = Some(peer);
        conn.state = State::Linked { generation };
        conn.auth = None;
        if !conn.dialed {
            let mut hello = Vec::new();
            wire::encode_handshake(&Handshake::Hello(Hello { sid: me, channel }), &mut hello);
            conn.write.push(hello, false);
        }
        self.auth_warned.remove(&(peer, channel));
        self.links.insert((peer, channel), token);
        info!(peer, ?channel, generation, "peer transport: linked");
        let _ = self.events.send(Event::Connected {
            peer,
            channel,
            generation,
        });
        self.flush(token);
        self.conns.contains_key(&token)
    }

    fn send(
        &mut self,
        to: Sid,
        channel: Channel,
        generation: u64,
        frames: Vec<Vec<u8>>,
        bulk: bool,
    ) {
        let Some(token) = self.link(to, channel, generation) else {
            // That link is gone; its Disconnected is on its way to the driver.
            return;
        };
        let limit = self.config.max_queued_bytes;
        let conn = self.conns.get_mut(&token).expect("linked");
        let size: usize = frames.iter().map(Vec::len).sum();
        if !bulk && conn.write.limited() + size > limit {
            return self.drop_conn(
                token,
                &format!("over {limit} bytes queued: the peer reads too slowly"),
            );
        }
        for frame in frames {
            conn.write.push(frame, bulk);
        }
        self.flush(token);
    }

    fn flush(&mut self, token: Token) {
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            if let Some(tls) = conn.tls.as_mut() {
                if !tls.wants_write() {
                    if conn.write.queued == 0 {
                        return;
                    }
                    // Before the handshake ends TLS only buffers this; after it, it is queued
                    // as records.
                    let mut moved = 0;
                    for slice in conn.write.slices() {
                        if moved >= TLS_WRITE_CHUNK_BYTES {
                            break;
                        }
                        match tls.writer().write(&slice) {
                            Ok(n) => moved += n,
                            Err(e) => {
                                return self.drop_conn(token, &format!("TLS write failed: {e}"))
                            }
                        }
                    }
                    conn.write.advance(moved);
                    if !tls.wants_write() {
                        return;
                    }
                }
                match tls.write_tls(&mut conn.stream) {
                    Ok(0) => return self.drop_conn(token, "write returned 0"),
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::NotConnected => return,
                    Err(e) => return self.drop_conn(token, &format!("write failed: {e}")),
                }
            }
            if conn.write.queued == 0 {
                return;
            }
            let slices = conn.write.slices();
            match conn.stream.write_vectored(&slices) {
                Ok(0) => return self.drop_conn(token, "write returned 0"),
                Ok(n) => conn.write.advance(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(e) => return self.drop_conn(token, &format!("write failed: {e}")),
            }
        }
    }

    fn drop_conn(&mut self, token: Token, reason: &str) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let (peer, channel) = (conn.peer, conn.channel);
        if let State::Linked { generation } = conn.state {
            let peer = peer.expect("linked");
            if self.links.get(&(peer, channel)) == Some(&token) {
                self.links.remove(&(peer, channel));
            }
            info!(
                peer,
                ?channel,
                generation,
                reason,
                "peer transport: link closed"
            );
            let _ = self.events.send(Event::Disconnected {
                peer,
                channel,
                generation,
            });
        } else if conn.auth.is_some() {
            // Closed in the middle of SASL, not by this end's refusal (that clears `auth`):
            // the peer refused, or does not do quorum SASL.
            let reason = format!("closed during quorum SASL ({reason})");
            let repeated = peer.is_some_and(|peer| {
                self.auth_warned.get(&(peer, channel)).map(String::as_str) == Some(reason.as_str())
            });
            if repeated {
                debug!(?peer, ?channel, "peer transport: {reason}");
            } else {
                warn!(?peer, ?channel, "peer transport: {reason}; does the peer have the same quorum.auth.* settings and credentials?");
                if let Some(peer) = peer {
                    self.auth_warned.insert((peer, channel), reason);
                }
            }
        } else {
            debug!(
                ?peer,
                ?channel,
                reason,
                "peer transport: connection dropped"
            );
        }
        if conn.dialed {
            if let Some(peer) = peer {
                self.redial_at
                    .insert((peer, channel), Instant::now() + self.config.redial_after);
            }
        }
    }
}

#[cfg(test)]
mod sasl_tests {
    //! Goal: quorum SASL links exactly the pairs ZooKeeper's quorum.auth.* settings let
    //! through, and no failure links anything or stalls the loop. Method: two transports on
    //! loopback sockets under each combination of settings and credentials, every wait
    //! bounded; a raw socket that starts SASL and stalls.

    use std::net::TcpListener as StdListener;

    use super::*;

    const LINK_WAIT: Duration = Duration::from_secs(10);
    /// How long a pair that must not link is watched.
    const QUIET: Duration = Duration::from_millis(800);

    fn sasl(password: &str, learner_require: bool, server_require: bool) -> QuorumSasl {
        QuorumSasl {
            server: Arc::new(rzk_sasl::Credentials::from_users([("test", "mypassword")])),
            learner_username: "test".into(),
            learner_password: password.into(),
            learner_require,
            server_require,
        }
    }

    fn bind() -> (std::net::TcpListener, std::net::TcpListener, PeerAddrs) {
        let quorum = StdListener::bind("127.0.0.1:0").unwrap();
        let election = StdListener::bind("127.0.0.1:0").unwrap();
        let addrs = PeerAddrs {
            quorum: quorum.local_addr().unwrap(),
            election: election.local_addr().unwrap(),
        };
        (quorum, election, addrs)
    }

    /// s2 dials s1 (the larger id dials): s2 is the learner, s1 the server.
    fn pair(s1: Option<QuorumSasl>, s2: Option<QuorumSasl>) -> (Transport, Transport) {
        let (q1, e1, a1) = bind();
        let (q2, e2, a2) = bind();
        let config = |me, peer, addrs, sasl| {
            let mut c = TransportConfig::new(me, BTreeMap::from([(peer, addrs)]));
            c.redial_after = Duration::from_millis(20);
            c.hello_timeout = Duration::from_millis(500);
            c.sasl = sasl;
            c
        };
        let t1 = Transport::start(config(1, 2, a2, s1), q1, e1).unwrap();
        let t2 = Transport::start(config(2, 1, a1, s2), q2, e2).unwrap();
        (t1, t2)
    }

    /// Both channels linked on `t` within the bound: the quorum link's generation.
    fn links(t: &Transport) -> Option<u64> {
        let deadline = Instant::now() + LINK_WAIT;
        let (mut quorum, mut election) = (None, false);
        while quorum.is_none() || !election {
            let left = deadline.checked_duration_since(Instant::now())?;
            match t.events().recv_timeout(left).ok()? {
                Event::Connected {
                    channel: Channel::Quorum,
                    generation,
                    ..
                } => quorum = Some(generation),
                Event::Connected { .. } => election = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        quorum
    }

    fn never_links(t1: &Transport, t2: &Transport) -> bool {
        std::thread::sleep(QUIET);
        t1.events().try_recv().is_err() && t2.events().try_recv().is_err()
    }

    #[test]
    fn right_credentials_link_and_carry_frames() {
        let (t1, t2) = pair(
            Some(sasl("mypassword", true, true)),
            Some(sasl("mypassword", true, true)),
        );
        assert!(links(&t1).is_some());
        let generation = links(&t2).expect("s2 links");
        // Frames behind the SASL exchange flow as on any link.
        let frame = Frame::Message(rzk_quorum::Message::Ping { round: 5 });
        t2.send(1, Channel::Quorum, generation, &frame);
        match t1.events().recv_timeout(LINK_WAIT).unwrap() {
            Event::Frame {
                peer: 2,
                frame: Frame::Message(rzk_quorum::Message::Ping { round: 5 }),
                ..
            } => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wrong_password_never_links() {
        let (t1, t2) = pair(
            Some(sasl("mypassword", true, true)),
            Some(sasl("wrong", true, true)),
        );
        assert!(never_links(&t1, &t2));
        // Even when the acceptor does not require SASL: a learner that tries and fails
        // gives up, as ZooKeeper's does on the ERROR status.
        let (t1, t2) = pair(
            Some(sasl("mypassword", true, false)),
            Some(sasl("wrong", true, true)),
        );
        assert!(never_links(&t1, &t2));
    }

    #[test]
    fn server_require_refuses_a_peer_that_does_not_authenticate() {
        // SASL off at the dialer, or on without learnerRequireSasl (it then skips SASL).
        for learner in [None, Some(sasl("mypassword", false, false))] {
            let (t1, t2) = pair(Some(sasl("mypassword", true, true)), learner);
            assert!(never_links(&t1, &t2));
        }
    }

    #[test]
    fn without_server_require_an_unauthenticated_peer_gets_in() {
        for learner in [None, Some(sasl("mypassword", false, false))] {
            let (t1, t2) = pair(Some(sasl("mypassword", true, false)), learner);
            assert!(links(&t1).is_some() && links(&t2).is_some());
        }
    }

    #[test]
    fn learner_require_refuses_a_peer_without_sasl() {
        let (t1, t2) = pair(None, Some(sasl("mypassword", true, true)));
        assert!(never_links(&t1, &t2));
    }

    #[test]
    fn a_stalled_exchange_ends_at_the_hello_timeout() {
        let (q1, e1, a1) = bind();
        let mut config = TransportConfig::new(1, BTreeMap::from([(2, bind().2)]));
        config.hello_timeout = Duration::from_millis(200);
        config.sasl = Some(sasl("mypassword", true, true));
        let t1 = Transport::start(config, q1, e1).unwrap();
        let mut s = std::net::TcpStream::connect(a1.quorum).unwrap();
        let mut opening = Vec::new();
        wire::encode_handshake(
            &Handshake::SaslHello(Hello {
                sid: 2,
                channel: Channel::Quorum,
            }),
            &mut opening,
        );
        wire::encode_handshake(&Handshake::SaslToken(Vec::new()), &mut opening);
        s.write_all(&opening).unwrap();
        // The challenge comes; then nothing more is sent, and the server gives up.
        s.set_read_timeout(Some(LINK_WAIT)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    break false
                }
                Err(_) => break true,
            }
        };
        assert!(closed, "not closed at the hello timeout");
        let (answer, _) = wire::decode_handshake(&got, wire::MAX_SASL_FRAME_BYTES)
            .unwrap()
            .unwrap();
        assert!(matches!(
            answer,
            Handshake::SaslAnswer {
                status: SaslStatus::InProgress,
                ..
            }
        ));
        assert!(t1.events().try_recv().is_err());
    }
}
