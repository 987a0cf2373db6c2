//! The event loops: a few mio threads own every client socket. They decode frames, answer
//! pings, `auth` and reads that need no watch straight from the latest published tree (an
//! `ArcSwap` load: no lock the writer holds), and hand everything else to the core: through
//! the core thread's channel, or, while one connection alone is sending the loop requests
//! and the core is idle, by running it on the loop's own thread (`CoreHost`). Replies and
//! watch events come back through a per-loop channel and a mio `Waker`.
//!
//! Ordering rules this crate keeps (DESIGN.md §2):
//! - A connection with requests at the core sends every further request there too, so its
//!   replies leave in request order.
//! - A local read first loads the tree; if the core has not yet queued that version's outputs
//!   (`delivered_zxid` is behind it), the read goes to the core; otherwise the loop drains its
//!   channel and answers, so the version's events reach the client before the reply.
//! - A local read is answered only from a tree at least as new as the zxid the connection has
//!   already seen; otherwise it goes to the core.
//!
//! Never: change the tree or sessions except through the core; wait for the core (a loop
//! runs it only if its lock is free, and never ahead of a message sent through the channel);
//! let one connection's bad bytes or slowness affect another (bad frames, oversized frames,
//! stalled readers close only it).

mod event_loop;
mod slow;
pub mod stats;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use rzk_pipeline::{ConnId, Input, Output};
use rzk_proto::FourLetterWord;
use rzk_tree::Tree;

pub use event_loop::{spawn_loops, LoopHandle};
pub use stats::{ConnStats, ServerStats};

/// Wall-clock milliseconds: what clients see (ctime/mtime, uptime, dump's expiry times).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Monotonic milliseconds since the process's first call: the clock the loops store session
/// touches in and the core expires sessions by, so a step of the wall clock expires nothing.
pub fn mono_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Both clocks, read once, as the core takes them.
pub fn clocks() -> rzk_session::Now {
    rzk_session::Now {
        mono_ms: mono_ms(),
        wall_ms: now_ms(),
    }
}

#[derive(Debug, Clone)]
pub struct NetConfig {
    /// jute.maxbuffer: the largest frame accepted.
    pub max_frame_bytes: usize,
    /// maxClientCnxns: connections per client IP; 0 means unlimited.
    pub max_client_cnxns: usize,
    /// Connections that have not completed the handshake by then are closed.
    pub handshake_timeout_ms: u64,
    /// Four-letter words this server answers; others get ZooKeeper's "not in the whitelist".
    pub four_letter_words: Vec<FourLetterWord>,
    /// zookeeper.DigestAuthenticationProvider.superDigest.
    pub super_digest: Option<String>,
    pub loop_count: usize,
    /// slowRequest.thresholdMs: requests slower than this are logged with their stage times
    /// (0: never).
    pub slow_request_ms: u64,
    pub security: Arc<Security>,
}

/// How clients prove who they are: TLS on secureClientPort (with x509 identities), SASL
/// DIGEST-MD5, and whether a session may do anything before it has.
#[derive(Default)]
pub struct Security {
    /// secureClientPort's key material, re-read when its files change.
    pub tls: Option<Arc<rzk_tls::ReloadingServerConfig>>,
    /// zookeeper.X509AuthenticationProvider.superUser: the certificate subject that is also
    /// the super user.
    pub x509_super_user: Option<String>,
    /// The DIGEST-MD5 users of the JAAS `Server` section; None: SASL is not configured.
    pub sasl: Option<Arc<rzk_sasl::Credentials>>,
    /// zookeeper.superUser(.N): SASL authorization ids that are super users.
    pub sasl_super_users: Vec<String>,
    /// enforce.auth.schemes while enforce.auth.enabled (sessionRequireClientSASLAuth means
    /// "sasl"): a connection with no identity of these schemes is closed at its first
    /// request. Empty: not enforced.
    pub enforce_auth_schemes: Vec<String>,
    /// zookeeper.allowSaslFailedClients: a failed SASL exchange keeps the connection (unless
    /// SASL is enforced).
    pub allow_sasl_failed_clients: bool,
    /// netty.server.outstandingHandshake.limit: most TLS handshakes in progress on this
    /// server; connections beyond it are closed at once, so a storm of new TLS clients
    /// cannot take the event loops' time from established sessions (0: no limit).
    pub tls_handshake_limit: usize,
    /// TLS handshakes in progress now, over every loop.
    pub tls_handshakes: AtomicUsize,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.is_some())
            .field("x509_super_user", &self.x509_super_user)
            .field("sasl", &self.sasl.is_some())
            .field("sasl_super_users", &self.sasl_super_users)
            .field("enforce_auth_schemes", &self.enforce_auth_schemes)
            .field("allow_sasl_failed_clients", &self.allow_sasl_failed_clients)
            .field("tls_handshake_limit", &self.tls_handshake_limit)
            .finish()
    }
}

impl Security {
    /// Whether a failed SASL exchange must close the connection with
    /// SessionClosedRequireSaslAuth rather than AuthFailed.
    pub fn sasl_required(&self) -> bool {
        self.enforce_auth_schemes.iter().any(|s| s == "sasl")
    }
}

/// State shared by the loops and the core thread.
pub struct Shared {
    pub published: ArcSwap<Tree>,
    /// The newest published zxid whose outputs (replies, watch events) are already queued to
    /// every loop. Published first, delivered after: see pipeline's roles.rs.
    pub delivered_zxid: AtomicI64,
    pub stats: ServerStats,
    pub conns: Mutex<Vec<(ConnId, Arc<ConnStats>)>>,
    pub shutting_down: AtomicBool,
    /// `gtmk`/`stmk` trace mask (ZooKeeper's default 306).
    pub trace_mask: AtomicI64,
    pub started_ms: u64,
}

impl Shared {
    pub fn new(tree: Tree) -> Self {
        Shared {
            delivered_zxid: AtomicI64::new(tree.last_zxid()),
            published: ArcSwap::from_pointee(tree),
            stats: ServerStats::default(),
            conns: Mutex::new(Vec::new()),
            shutting_down: AtomicBool::new(false),
            trace_mask: AtomicI64::new(306),
            started_ms: now_ms(),
        }
    }
}

/// What the loops send the core thread.
#[derive(Debug)]
pub enum ToCore {
    Input(Input),
    /// A four-letter word (with `stmk`'s argument); the core thread renders the answer.
    FourLetter {
        conn: ConnId,
        word: FourLetterWord,
        argument: Option<i64>,
        peer: SocketAddr,
    },
}

/// Runs the core on an event loop's own thread while the core thread is idle
/// (run-to-completion): a lone request is then prepped, logged, applied and answered without
/// waking another thread, which on a virtual machine costs tens of microseconds per hand-off.
pub trait CoreHost: Send + Sync {
    /// Handles `messages`, in order, on the calling loop's thread and returns true (outputs
    /// for the caller arrive on its own channel, already there when this returns; the caller
    /// is not woken for them). Returns false and leaves `messages` untouched when the core is
    /// busy or anything sent earlier through the channel is not yet handled: the caller then
    /// sends them through the channel, behind it.
    fn try_run(&self, caller_loop: usize, messages: &mut Vec<ToCore>) -> bool;
}

/// The loops' way to the core: the channel, a count of what is in it or being handled, and
/// (once the core exists) the host that may run the core on a loop's thread.
#[derive(Clone)]
pub struct CoreLink {
    tx: Sender<ToCore>,
    unhandled: Arc<AtomicUsize>,
    host: Arc<OnceLock<Arc<dyn CoreHost>>>,
}

impl CoreLink {
    /// A link and the core thread's end of its channel.
    pub fn new() -> (CoreLink, CoreInbox) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let unhandled = Arc::new(AtomicUsize::new(0));
        let link = CoreLink {
            tx,
            unhandled: unhandled.clone(),
            host: Arc::new(OnceLock::new()),
        };
        (link, CoreInbox { rx, unhandled })
    }

    /// Lets the loops run the core on their threads from now on.
    pub fn set_host(&self, host: Arc<dyn CoreHost>) {
        let _ = self.host.set(host);
    }

    fn host(&self) -> Option<&Arc<dyn CoreHost>> {
        self.host.get()
    }

    fn send(&self, message: ToCore) {
        // Counted before it is sent, so a host that sees 0 knows nothing it has not handled
        // was sent before (by this thread; other loops' messages have no order with it).
        self.unhandled.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(message).is_err() {
            self.unhandled.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The core thread's end of a `CoreLink`.
pub struct CoreInbox {
    pub rx: Receiver<ToCore>,
    unhandled: Arc<AtomicUsize>,
}

impl CoreInbox {
    /// Called once a message taken from `rx` has been handled, under the same lock a
    /// `CoreHost` takes: from then on a loop may run the core ahead of the channel.
    pub fn handled(&self) {
        let before = self.unhandled.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(before > 0, "handled more messages than were sent");
    }

    /// True when every message sent through the channel has been handled.
    pub fn all_handled(&self) -> bool {
        self.unhandled.load(Ordering::SeqCst) == 0
    }

    /// Another handle on the same channel and count, for a `CoreHost`.
    pub fn handle(&self) -> CoreInbox {
        CoreInbox {
            rx: self.rx.clone(),
            unhandled: self.unhandled.clone(),
        }
    }
}

/// What the core thread sends a loop.
#[derive(Debug)]
pub enum ToLoop {
    /// An output of the core, with the core's share of the time for replies it can trace.
    Output(Output, Option<rzk_metrics::CoreStages>),
    /// A four-letter word's answer; the connection closes after it.
    Text {
        conn: ConnId,
        text: String,
    },
    /// A connection accepted by another loop; true if on secureClientPort.
    Accepted(mio::net::TcpStream, SocketAddr, bool),
    Shutdown,
}

/// The loop a connection lives on is in its id's top bits.
pub fn loop_of(conn: ConnId) -> usize {
    (conn >> 48) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_counts_what_the_core_has_not_handled_yet() {
        let (link, inbox) = CoreLink::new();
        let host_view = inbox.handle();
        assert!(host_view.all_handled());
        for conn in 0..2 {
            link.send(ToCore::Input(Input::Disconnected { conn }));
        }
        let first = inbox.rx.try_recv().unwrap();
        // Taken from the channel is not handled: a host must not run ahead of it.
        assert!(!host_view.all_handled());
        drop(first);
        inbox.handled();
        assert!(!host_view.all_handled());
        let _second = inbox.rx.try_recv().unwrap();
        inbox.handled();
        assert!(host_view.all_handled());
    }

    #[test]
    fn a_send_the_core_can_no_longer_take_is_not_counted() {
        let (link, inbox) = CoreLink::new();
        let host_view = inbox.handle();
        drop(inbox);
        drop(host_view.rx);
        link.send(ToCore::Input(Input::Disconnected { conn: 1 }));
        assert_eq!(link.unhandled.load(Ordering::SeqCst), 0);
    }
}
