//! The measured run: a few threads, each driving a group of sessions over non-blocking
//! sockets with mio. A session keeps `inflight` requests outstanding: it appends frames to one
//! output buffer and writes them with one syscall, and parses every whole reply a read brings.
//!
//! Requests are tagged with the phase they were sent in; only those sent in the measured phase
//! are recorded. Replies on a session come back in request order, so a FIFO of send instants
//! gives each reply its latency.
//!
//! With `--tls` a session owns the rustls `ClientConnection` whose handshake wire.rs finished:
//! plaintext frames go through `writer()` and `write_tls`, replies come in through the socket
//! into a staging buffer, `read_tls`, `process_new_packets` and `reader()`. The plain path
//! is the same code as without TLS behind one `match` per read or write.

use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};
use rzk_proto::{encode_request, xid, Reader, ReplyHeader, Request};

use crate::args::{Plan, Workload};
use crate::tls::TlsClient;
use crate::wire::{self, Templates, MAX_REPLY_FRAME_BYTES};

pub const PHASE_WARMUP: u8 = 0;
pub const PHASE_MEASURE: u8 = 1;
pub const PHASE_STOP: u8 = 2;

/// Latencies are recorded in microseconds, from 1 µs to an hour.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    Create = 0,
    Set = 1,
    Get = 2,
    Exists = 3,
    Multi = 4,
}

impl OpKind {
    pub const ALL: [OpKind; 5] = [
        OpKind::Create,
        OpKind::Set,
        OpKind::Get,
        OpKind::Exists,
        OpKind::Multi,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Set => "set",
            OpKind::Get => "get",
            OpKind::Exists => "exists",
            OpKind::Multi => "multi",
        }
    }
}

/// State shared by the coordinator and the worker threads.
pub struct Shared {
    pub phase: AtomicU8,
    /// Measured requests sent so far (for --ops).
    pub issued: AtomicU64,
    pub quota: Option<u64>,
    pub quota_reached: AtomicBool,
    /// Workers whose measured work is over (drained or given up).
    pub done: AtomicUsize,
    /// Set by the coordinator once it has sampled the server: workers close their sessions.
    pub close: AtomicBool,
    pub progress: Vec<Progress>,
}

/// Live counters of one worker, read by the progress line.
#[derive(Default)]
#[repr(align(64))]
pub struct Progress {
    pub replies: AtomicU64,
    pub errors: AtomicU64,
}

impl Shared {
    pub fn new(threads: usize, quota: Option<u64>, phase: u8) -> Shared {
        Shared {
            phase: AtomicU8::new(phase),
            issued: AtomicU64::new(0),
            quota,
            quota_reached: AtomicBool::new(false),
            done: AtomicUsize::new(0),
            close: AtomicBool::new(false),
            progress: (0..threads).map(|_| Progress::default()).collect(),
        }
    }
}

/// What one worker measured; merged across workers by [`Tally::merge`].
pub struct Tally {
    pub all: Histogram<u64>,
    pub by_kind: [Histogram<u64>; 5],
    pub ok: u64,
    pub errors: BTreeMap<i32, u64>,
    pub warmup_ok: u64,
    pub warmup_errors: BTreeMap<i32, u64>,
    /// Requests never answered (session lost or timed out), by phase sent.
    pub unanswered: u64,
    pub sessions_lost: u64,
    /// Replies whose xid was not the one due (out of order or unknown).
    pub protocol_errors: u64,
    pub problems: Vec<String>,
    pub last_measured_reply: Option<Instant>,
    /// (session index, creates issued) for cleanup.
    pub created: Vec<(usize, u64)>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            all: new_histogram(),
            by_kind: std::array::from_fn(|_| new_histogram()),
            ok: 0,
            errors: BTreeMap::new(),
            warmup_ok: 0,
            warmup_errors: BTreeMap::new(),
            unanswered: 0,
            sessions_lost: 0,
            protocol_errors: 0,
            problems: Vec::new(),
            last_measured_reply: None,
            created: Vec::new(),
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.all.add(&other.all).expect("same histogram bounds");
        for (a, b) in self.by_kind.iter_mut().zip(other.by_kind.iter()) {
            a.add(b).expect("same histogram bounds");
        }
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.warmup_ok += other.warmup_ok;
        for (k, v) in other.warmup_errors {
            *self.warmup_errors.entry(k).or_default() += v;
        }
        self.unanswered += other.unanswered;
        self.sessions_lost += other.sessions_lost;
        self.protocol_errors += other.protocol_errors;
        self.problems.extend(other.problems);
        self.last_measured_reply = match (self.last_measured_reply, other.last_measured_reply) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.created.extend(other.created);
    }

    pub fn measured_errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Warmup,
    Measured,
    /// closeSession at the end: counted nowhere.
    Control,
}

struct Pending {
    xid: i32,
    sent: Instant,
    kind: OpKind,
    tag: Tag,
}

/// The TLS state of a session over `--tls`.
struct TlsIo {
    conn: rustls::ClientConnection,
    /// Ciphertext read from the socket in one syscall, fed to rustls (which takes at most a
    /// few KiB per `read_tls`).
    staging: Vec<u8>,
}

/// One session driven by a worker.
pub struct Session {
    pub index: usize,
    pub host: String,
    stream: mio::net::TcpStream,
    /// None: plain TCP.
    tls: Option<Box<TlsIo>>,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    in_len: usize,
    pending: VecDeque<Pending>,
    next_xid: i32,
    last_send: Instant,
    ping_every: Duration,
    ping_outstanding: bool,
    rng: u64,
    templates: Templates,
    create_seq: u64,
    alive: bool,
    closing: bool,
}

/// Opens session `index` (blocking handshakes, TLS then ZooKeeper's) and makes it
/// non-blocking.
pub fn open_session(
    plan: &Plan,
    tls: Option<&TlsClient>,
    base: &str,
    index: usize,
) -> Result<Session, String> {
    let host = &plan.hosts[index % plan.hosts.len()];
    let (conn, response) =
        wire::connect(host, tls, plan.session_timeout_ms, Duration::from_secs(10))?;
    let (stream, tls) = conn.into_parts();
    stream
        .set_nonblocking(true)
        .map_err(|e| format!("{host}: set_nonblocking: {e}"))?;
    let per_frame = match plan.workload {
        Workload::Multi => plan.value_size * plan.multi_ops,
        _ => plan.value_size,
    } + 256;
    Ok(Session {
        index,
        host: host.clone(),
        stream: mio::net::TcpStream::from_std(stream),
        tls: tls.map(|conn| {
            Box::new(TlsIo {
                conn: *conn,
                staging: vec![0; 64 << 10],
            })
        }),
        out: Vec::with_capacity((per_frame * plan.inflight).min(16 << 20)),
        out_pos: 0,
        inbuf: vec![0; 64 << 10],
        in_len: 0,
        pending: VecDeque::with_capacity(plan.inflight + 1),
        next_xid: 1,
        last_send: Instant::now(),
        ping_every: Duration::from_millis((response.timeout_ms as u64 / 3).max(1)),
        ping_outstanding: false,
        // A different odd seed per session.
        rng: 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(index as u64 + 1) | 1,
        templates: Templates::new(base, index, plan.value_size, plan.multi_ops),
        create_seq: 0,
        alive: true,
        closing: false,
    })
}

impl Session {
    fn next_random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn random_key(&mut self, keys: usize) -> u64 {
        ((self.next_random() >> 32) * keys as u64) >> 32
    }

    fn take_xid(&mut self) -> i32 {
        let xid = self.next_xid;
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        xid
    }

    /// Appends one request of the workload to the output buffer.
    fn issue(&mut self, plan: &Plan, now: Instant, measured: bool) {
        let xid = self.take_xid();
        let kind = match plan.workload {
            Workload::Create => OpKind::Create,
            Workload::Set => OpKind::Set,
            Workload::Get => OpKind::Get,
            Workload::Exists => OpKind::Exists,
            Workload::Multi => OpKind::Multi,
            Workload::Mixed { read_percent } => {
                if (self.next_random() >> 33) % 100 < read_percent as u64 {
                    OpKind::Get
                } else {
                    OpKind::Set
                }
            }
        };
        match kind {
            OpKind::Create => {
                let seq = self.create_seq;
                self.create_seq += 1;
                self.templates.create.append(&mut self.out, xid, &[seq]);
            }
            OpKind::Multi => {
                let mut keys = [0u64; 16];
                let n = plan.multi_ops;
                if n <= keys.len() {
                    for k in keys.iter_mut().take(n) {
                        *k = self.random_key(plan.keys);
                    }
                    self.templates.multi.append(&mut self.out, xid, &keys[..n]);
                } else {
                    let keys: Vec<u64> = (0..n).map(|_| self.random_key(plan.keys)).collect();
                    self.templates.multi.append(&mut self.out, xid, &keys);
                }
            }
            OpKind::Set | OpKind::Get | OpKind::Exists => {
                let key = self.random_key(plan.keys);
                let t = match kind {
                    OpKind::Set => &self.templates.set,
                    OpKind::Get => &self.templates.get,
                    _ => &self.templates.exists,
                };
                t.append(&mut self.out, xid, &[key]);
            }
        }
        self.pending.push_back(Pending {
            xid,
            sent: now,
            kind,
            tag: if measured { Tag::Measured } else { Tag::Warmup },
        });
        self.last_send = now;
    }

    /// Whether bytes wait to be written: frames, or (TLS) records not yet on the socket.
    #[inline]
    fn has_output(&self) -> bool {
        self.out_pos < self.out.len() || self.tls.as_ref().is_some_and(|t| t.conn.wants_write())
    }

    /// Writes what the output buffer holds until the socket would block.
    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(tls) = &mut self.tls {
            return flush_tls(tls, &mut self.stream, &mut self.out, &mut self.out_pos);
        }
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Ok(())
    }

    /// Reads until the socket would block, handling every whole frame. `Ok(false)` means the
    /// server closed the connection.
    fn read(&mut self, worker: &mut WorkerState<'_>) -> Result<bool, String> {
        if let Some(mut tls) = self.tls.take() {
            let result = self.read_tls(&mut tls, worker);
            self.tls = Some(tls);
            if matches!(result, Ok(true)) && self.has_output() {
                // rustls may answer what it read (a key update, an alert).
                self.flush().map_err(|e| format!("write: {e}"))?;
            }
            return result;
        }
        loop {
            if self.inbuf.len() - self.in_len < 16 << 10 {
                let grown = (self.inbuf.len() * 2).max(64 << 10);
                self.inbuf.resize(grown, 0);
            }
            match self.stream.read(&mut self.inbuf[self.in_len..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.in_len += n;
                    let now = Instant::now();
                    self.parse(now, worker)?;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// [`Session::read`] over TLS: socket -> staging -> rustls -> `inbuf`, then frames.
    fn read_tls(&mut self, tls: &mut TlsIo, worker: &mut WorkerState<'_>) -> Result<bool, String> {
        loop {
            let got = match self.stream.read(&mut tls.staging) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {e}")),
            };
            if got == 0 {
                return Ok(false);
            }
            let mut rest = &tls.staging[..got];
            while !rest.is_empty() {
                match tls.conn.read_tls(&mut rest) {
                    Ok(0) => return Ok(false), // close_notify came before these bytes
                    Ok(_) => {}
                    Err(e) => return Err(format!("TLS read: {e}")),
                }
                let state = tls
                    .conn
                    .process_new_packets()
                    .map_err(|e| format!("TLS: {e}"))?;
                let mut plaintext = state.plaintext_bytes_to_read();
                while plaintext > 0 {
                    if self.inbuf.len() - self.in_len < plaintext {
                        let grown = (self.in_len + plaintext).max(self.inbuf.len() * 2);
                        self.inbuf.resize(grown, 0);
                    }
                    match tls.conn.reader().read(&mut self.inbuf[self.in_len..]) {
                        Ok(n) => {
                            self.in_len += n;
                            plaintext -= n.min(plaintext);
                            if n == 0 {
                                break;
                            }
                        }
                        Err(e) => return Err(format!("TLS read: {e}")),
                    }
                }
                if state.peer_has_closed() {
                    self.parse(Instant::now(), worker)?;
                    return Ok(false);
                }
            }
            self.parse(Instant::now(), worker)?;
        }
    }

    fn parse(&mut self, now: Instant, worker: &mut WorkerState<'_>) -> Result<(), String> {
        let mut pos = 0;
        while self.in_len - pos >= 4 {
            let b = &self.inbuf[pos..pos + 4];
            let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            if len < 16 || len as usize > MAX_REPLY_FRAME_BYTES {
                return Err(format!("reply frame length {len}"));
            }
            let len = len as usize;
            if self.in_len - pos - 4 < len {
                break;
            }
            let header = ReplyHeader::decode(&mut Reader::new(&self.inbuf[pos + 4..pos + 4 + len]))
                .map_err(|e| format!("bad reply header: {e}"))?;
            pos += 4 + len;
            match header.xid {
                xid::WATCH_EVENT => {}
                xid::PING => self.ping_outstanding = false,
                got => {
                    let due = self.pending.front().map(|p| p.xid);
                    let p = if due == Some(got) {
                        self.pending.pop_front()
                    } else {
                        worker.tally.protocol_errors += 1;
                        let at = self.pending.iter().position(|p| p.xid == got);
                        at.and_then(|i| self.pending.remove(i))
                    };
                    if let Some(p) = p {
                        worker.record(&p, header.err, now);
                    }
                }
            }
        }
        if pos > 0 {
            self.inbuf.copy_within(pos..self.in_len, 0);
            self.in_len -= pos;
        }
        Ok(())
    }
}

/// [`Session::flush`] over TLS: frames into rustls (encrypted into records), records onto the
/// socket until it would block.
fn flush_tls(
    tls: &mut TlsIo,
    stream: &mut mio::net::TcpStream,
    out: &mut Vec<u8>,
    out_pos: &mut usize,
) -> std::io::Result<()> {
    loop {
        if *out_pos < out.len() {
            // No buffer limit is set (tls.rs): rustls takes it all.
            let n = tls.conn.writer().write(&out[*out_pos..])?;
            *out_pos += n;
            if n == 0 && !tls.conn.wants_write() {
                return Err(ErrorKind::WriteZero.into());
            }
        }
        if !tls.conn.wants_write() {
            break;
        }
        match tls.conn.write_tls(stream) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if *out_pos == out.len() {
        out.clear();
        *out_pos = 0;
    }
    Ok(())
}

struct WorkerState<'a> {
    tally: Tally,
    progress: &'a Progress,
}

impl WorkerState<'_> {
    #[inline]
    fn record(&mut self, p: &Pending, err: i32, now: Instant) {
        self.progress.replies.fetch_add(1, Ordering::Relaxed);
        if err != 0 {
            self.progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        if p.tag == Tag::Control {
            return;
        }
        if p.tag == Tag::Warmup {
            if err == 0 {
                self.tally.warmup_ok += 1;
            } else {
                *self.tally.warmup_errors.entry(err).or_default() += 1;
            }
            return;
        }
        self.tally.last_measured_reply = Some(now);
        if err == 0 {
            let us = now.saturating_duration_since(p.sent).as_micros() as u64;
            self.tally.ok += 1;
            self.tally.all.saturating_record(us.max(1));
            self.tally.by_kind[p.kind as usize].saturating_record(us.max(1));
        } else {
            *self.tally.errors.entry(err).or_default() += 1;
        }
    }

    fn lose(&mut self, s: &mut Session, why: &str) {
        if !s.alive {
            return;
        }
        s.alive = false;
        self.tally.sessions_lost += 1;
        let measured = s.pending.iter().filter(|p| p.tag == Tag::Measured).count() as u64;
        self.tally.unanswered += measured;
        if self.tally.problems.len() < 20 {
            self.tally.problems.push(format!(
                "session {} ({}): {why}; {} requests unanswered",
                s.index,
                s.host,
                s.pending.len()
            ));
        }
        s.pending.clear();
    }
}

/// Whether a worker may send another request now, and whether it is measured.
fn may_send(shared: &Shared, phase: u8) -> Option<bool> {
    match phase {
        PHASE_WARMUP => Some(false),
        PHASE_MEASURE => match shared.quota {
            None => Some(true),
            Some(q) => {
                if shared.quota_reached.load(Ordering::Relaxed) {
                    return None;
                }
                if shared.issued.fetch_add(1, Ordering::Relaxed) < q {
                    Some(true)
                } else {
                    shared.quota_reached.store(true, Ordering::Relaxed);
                    None
                }
            }
        },
        _ => None,
    }
}

/// Drives `sessions` until the measured work is over, then closes them when told to.
pub fn worker(plan: &Plan, shared: &Shared, me: usize, mut sessions: Vec<Session>) -> Tally {
    let mut state = WorkerState {
        tally: Tally::new(),
        progress: &shared.progress[me],
    };
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            state
                .tally
                .problems
                .push(format!("worker {me}: cannot create a poller: {e}"));
            for s in &mut sessions {
                state.lose(s, "no poller");
            }
            shared.done.fetch_add(1, Ordering::SeqCst);
            return state.tally;
        }
    };
    for (i, s) in sessions.iter_mut().enumerate() {
        if let Err(e) = poll.registry().register(
            &mut s.stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            state.lose(s, &format!("register: {e}"));
        }
    }
    let ping = wire::ping_frame();
    let mut events = Events::with_capacity(1024);
    let mut last_scan = Instant::now();
    let mut done_reported = false;
    let mut close_deadline: Option<Instant> = None;
    loop {
        let phase = shared.phase.load(Ordering::Acquire);
        let now = Instant::now();
        // Fill every live session up to its window.
        let closing = shared.close.load(Ordering::Acquire);
        let mut can_send = !closing;
        for s in sessions.iter_mut().filter(|s| s.alive) {
            if closing {
                if !s.closing {
                    s.closing = true;
                    let xid = s.take_xid();
                    s.out
                        .extend_from_slice(&encode_request(xid, &Request::CloseSession));
                    s.pending.push_back(Pending {
                        xid,
                        sent: now,
                        kind: OpKind::Exists,
                        tag: Tag::Control,
                    });
                }
            } else {
                while can_send && s.pending.len() < plan.inflight {
                    match may_send(shared, phase) {
                        Some(measured) => s.issue(plan, now, measured),
                        None => can_send = false,
                    }
                }
            }
            if s.has_output() {
                if let Err(e) = s.flush() {
                    state.lose(s, &format!("write: {e}"));
                }
            }
        }
        if !done_reported {
            let sending_over = phase == PHASE_STOP || (phase == PHASE_MEASURE && !can_send);
            let drained = sessions.iter().all(|s| !s.alive || s.pending.is_empty());
            let all_lost = sessions.iter().all(|s| !s.alive);
            if (sending_over && drained) || all_lost {
                done_reported = true;
                shared.done.fetch_add(1, Ordering::SeqCst);
            }
        }
        if closing {
            let deadline = *close_deadline.get_or_insert(now + Duration::from_secs(2));
            let all_closed = sessions.iter().all(|s| !s.alive || s.pending.is_empty());
            if all_closed || now >= deadline {
                break;
            }
        }
        // Pings for idle sessions, and requests that outstayed --request-timeout.
        if now.duration_since(last_scan) >= Duration::from_millis(50) {
            last_scan = now;
            for s in sessions.iter_mut().filter(|s| s.alive) {
                if let Some(front) = s.pending.front() {
                    if now.duration_since(front.sent) > plan.request_timeout && !s.closing {
                        let age = now.duration_since(front.sent);
                        state.lose(
                            s,
                            &format!("no reply for {:.1} s (request timeout)", age.as_secs_f64()),
                        );
                        let _ = poll.registry().deregister(&mut s.stream);
                        continue;
                    }
                }
                if !s.ping_outstanding && now.duration_since(s.last_send) >= s.ping_every {
                    s.out.extend_from_slice(&ping);
                    s.ping_outstanding = true;
                    s.last_send = now;
                    if let Err(e) = s.flush() {
                        state.lose(s, &format!("write: {e}"));
                    }
                }
            }
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(20))) {
            if e.kind() != ErrorKind::Interrupted {
                state.tally.problems.push(format!("worker {me}: poll: {e}"));
                break;
            }
        }
        for event in events.iter() {
            let Some(s) = sessions.get_mut(event.token().0) else {
                continue;
            };
            if !s.alive {
                continue;
            }
            if event.is_writable() && s.has_output() {
                if let Err(e) = s.flush() {
                    state.lose(s, &format!("write: {e}"));
                    continue;
                }
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                match s.read(&mut state) {
                    Ok(true) => {}
                    Ok(false) => {
                        if s.closing && s.pending.is_empty() {
                            s.alive = false;
                        } else {
                            state.lose(s, "connection closed by the server");
                        }
                    }
                    Err(e) => state.lose(s, &e),
                }
            }
        }
    }
    if !done_reported {
        shared.done.fetch_add(1, Ordering::SeqCst);
    }
    for s in &sessions {
        if s.create_seq > 0 {
            state.tally.created.push((s.index, s.create_seq));
        }
    }
    state.tally
}
