//! Counters the event loops keep for the four-letter words and metrics. Plain relaxed
//! atomics: monitoring may see a figure a moment old, never a torn one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, AtomicU8, Ordering};

use parking_lot::Mutex;

/// Latency figures in milliseconds, as ZooKeeper reports them (min/avg/max).
#[derive(Default)]
pub struct Latency {
    min_ms: AtomicU64,
    max_ms: AtomicU64,
    sum_ms: AtomicU64,
    count: AtomicU64,
    last_ms: AtomicU64,
}

impl Latency {
    pub fn record(&self, ms: u64) {
        if self.count.fetch_add(1, Ordering::Relaxed) == 0 {
            self.min_ms.store(ms, Ordering::Relaxed);
        } else {
            self.min_ms.fetch_min(ms, Ordering::Relaxed);
        }
        self.max_ms.fetch_max(ms, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.min_ms.store(0, Ordering::Relaxed);
        self.max_ms.store(0, Ordering::Relaxed);
        self.sum_ms.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
        self.last_ms.store(0, Ordering::Relaxed);
    }

    pub fn min_ms(&self) -> u64 {
        self.min_ms.load(Ordering::Relaxed)
    }

    pub fn max_ms(&self) -> u64 {
        self.max_ms.load(Ordering::Relaxed)
    }

    /// The latest figure recorded (`cons`' llat, the AdminServer's last_latency).
    pub fn last_ms(&self) -> u64 {
        self.last_ms.load(Ordering::Relaxed)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn avg_ms(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.sum_ms.load(Ordering::Relaxed) as f64 / n as f64,
        }
    }
}

#[derive(Default)]
pub struct ServerStats {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub latency: Latency,
    pub auth_failed: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub connections_dropped: AtomicU64,
    pub connections_alive: AtomicI64,
    /// TLS handshakes that failed (ZooKeeper's unsuccessful_handshake).
    pub tls_handshakes_failed: AtomicU64,
    /// TLS connections closed unserved because the handshake limit was reached
    /// (ZooKeeper's tls_handshake_exceeded).
    pub tls_handshakes_exceeded: AtomicU64,
}

impl ServerStats {
    pub fn reset(&self) {
        self.packets_received.store(0, Ordering::Relaxed);
        self.packets_sent.store(0, Ordering::Relaxed);
        self.latency.reset();
    }
}

/// Per-connection figures for `cons`.
pub struct ConnStats {
    pub peer: SocketAddr,
    pub established_ms: u64,
    pub session_id: AtomicI64,
    pub timeout_ms: AtomicI32,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub queued: AtomicU64,
    pub last_op: Mutex<&'static str>,
    pub last_cxid: AtomicI32,
    pub last_zxid: AtomicI64,
    pub last_response_ms: AtomicU64,
    pub latency: Latency,
    /// How the connection is carried: `PLAIN`, `TLS` (secureClientPort, no client
    /// certificate) or `MUTUAL_TLS` (with one).
    pub transport: AtomicU8,
}

impl ConnStats {
    pub const PLAIN: u8 = 0;
    pub const TLS: u8 = 1;
    pub const MUTUAL_TLS: u8 = 2;

    pub fn secure(&self) -> bool {
        self.transport.load(Ordering::Relaxed) != Self::PLAIN
    }

    pub fn new(peer: SocketAddr, now_ms: u64) -> Self {
        ConnStats {
            peer,
            established_ms: now_ms,
            session_id: AtomicI64::new(0),
            timeout_ms: AtomicI32::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            last_op: Mutex::new("NA"),
            last_cxid: AtomicI32::new(-1),
            last_zxid: AtomicI64::new(-1),
            last_response_ms: AtomicU64::new(0),
            latency: Latency::default(),
            transport: AtomicU8::new(Self::PLAIN),
        }
    }

    pub fn reset(&self) {
        self.received.store(0, Ordering::Relaxed);
        self.sent.store(0, Ordering::Relaxed);
        self.latency.reset();
    }
}

/// ZooKeeper's four-letter op names for `cons` (`lop=`).
pub fn op_name(op: i32) -> &'static str {
    use rzk_proto::OpCode as O;
    match O::from_i32(op) {
        Some(O::Create | O::Create2 | O::CreateContainer | O::CreateTtl) => "CREA",
        Some(O::Delete) => "DELE",
        Some(O::Exists) => "EXIS",
        Some(O::GetData) => "GETD",
        Some(O::SetData) => "SETD",
        Some(O::GetAcl) => "GETA",
        Some(O::SetAcl) => "SETA",
        Some(O::GetChildren | O::GetChildren2) => "GETC",
        Some(O::Sync) => "SYNC",
        Some(O::Ping) => "PING",
        Some(O::Check) => "CHEC",
        Some(O::Multi) => "MULT",
        Some(O::MultiRead) => "MLTR",
        Some(O::SetWatches) => "SETW",
        Some(O::SetWatches2) => "STW2",
        Some(O::AddWatch) => "ADDW",
        Some(O::CheckWatches) => "CHKW",
        Some(O::RemoveWatches) => "REMW",
        Some(O::GetEphemerals) => "GETE",
        Some(O::GetAllChildrenNumber) => "GETACN",
        Some(O::WhoAmI) => "HOMI",
        Some(O::CloseSession) => "CLOS",
        Some(O::Auth) => "AUTH",
        _ => "NA",
    }
}
