//! Four-letter words, answered in Apache ZooKeeper's text formats so monitoring scripts and
//! clients that parse them (kazoo reads `zookeeper.version=` from `envi`) work unchanged.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;

use rzk_net::Shared;
use rzk_pipeline::Core;
use rzk_proto::FourLetterWord;

use crate::config::Config;

/// The ZooKeeper release whose client protocol rzk speaks. Clients pick features from it.
pub const ZOOKEEPER_PROTOCOL_VERSION: &str = "3.9.3";

pub fn version_line() -> String {
    format!(
        "{ZOOKEEPER_PROTOCOL_VERSION}-rzk-{}, built on {}",
        env!("CARGO_PKG_VERSION"),
        option_env!("RZK_BUILD_DATE").unwrap_or("unknown date")
    )
}

pub struct Context<'a> {
    pub core: &'a Core,
    pub shared: &'a Shared,
    pub config: &'a Config,
    pub now_ms: u64,
    /// The monotonic clock session touches are kept in (`rzk_net::mono_ms`).
    pub mono_ms: u64,
    /// `Mode:` as srvr says it (standalone, leader, follower, observer); None while a server
    /// of an ensemble has no leader, when ZooKeeper answers that it is not serving.
    pub mode: Option<&'static str>,
    /// What a server of an ensemble knows of the quorum (None standalone).
    pub quorum: Option<QuorumView>,
}

/// A server of an ensemble's view of the quorum, for mntr and the AdminServer's quorum
/// commands (built on the core thread when asked).
#[derive(Debug, Clone)]
pub struct QuorumView {
    pub me: u64,
    /// ZooKeeper's zk_peer_state: the role, then the Zab phase ("leading - broadcast").
    pub peer_state: &'static str,
    pub leader: Option<u64>,
    /// ZooKeeper's zk_quorum_size: the number of voters.
    pub quorum_size: usize,
    pub members: Vec<QuorumMember>,
    /// A leader's learners (empty otherwise).
    pub learners: Vec<rzk_quorum::LearnerStatus>,
    /// The last zxid this server logged.
    pub last_zxid: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct QuorumMember {
    pub sid: u64,
    pub quorum: std::net::SocketAddr,
    pub election: std::net::SocketAddr,
    pub observer: bool,
}

impl QuorumView {
    pub fn is_leader(&self) -> bool {
        self.leader == Some(self.me)
    }

    /// ZooKeeper's Zab phase name, as zabstate says it.
    pub fn zab_phase(&self) -> &'static str {
        self.peer_state
            .split_once(" - ")
            .map_or("election", |(_, phase)| phase)
    }
}

/// ZooKeeper counts the root twice (it is stored under "" and "/"), so its node count for an
/// empty tree is 5; rzk reports the same figure so dashboards agree.
pub fn node_count(ctx: &Context<'_>) -> usize {
    ctx.core.released().node_count() + 1
}

fn latency(ctx: &Context<'_>) -> String {
    let l = &ctx.shared.stats.latency;
    format!("{}/{:.1}/{}", l.min_ms(), l.avg_ms(), l.max_ms())
}

fn connections(ctx: &Context<'_>, out: &mut String, brief: bool) {
    for (_, c) in ctx.shared.conns.lock().iter() {
        let queued = c.queued.load(Ordering::Relaxed);
        let recved = c.received.load(Ordering::Relaxed);
        let sent = c.sent.load(Ordering::Relaxed);
        let _ = write!(
            out,
            " /{}[1](queued={queued},recved={recved},sent={sent}",
            c.peer
        );
        let session = c.session_id.load(Ordering::Relaxed);
        if !brief && session != 0 {
            let _ = write!(
                out,
                ",sid={session:#x},lop={},est={},to={},lcxid={:#x},lzxid={:#x},lresp={},llat={},minlat={},avglat={:.0},maxlat={}",
                *c.last_op.lock(),
                c.established_ms,
                c.timeout_ms.load(Ordering::Relaxed),
                c.last_cxid.load(Ordering::Relaxed),
                c.last_zxid.load(Ordering::Relaxed),
                c.last_response_ms.load(Ordering::Relaxed),
                c.latency.last_ms(),
                c.latency.min_ms(),
                c.latency.avg_ms(),
                c.latency.max_ms(),
            );
        }
        out.push_str(")\n");
    }
}

fn server_lines(ctx: &Context<'_>, out: &mut String) {
    let s = &ctx.shared.stats;
    let _ = writeln!(out, "Latency min/avg/max: {}", latency(ctx));
    let _ = writeln!(
        out,
        "Received: {}",
        s.packets_received.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "Sent: {}", s.packets_sent.load(Ordering::Relaxed));
    let _ = writeln!(out, "Connections: {}", ctx.shared.conns.lock().len());
    let _ = writeln!(out, "Outstanding: {}", ctx.core.outstanding_count());
    let _ = writeln!(out, "Zxid: {:#x}", ctx.core.released().last_zxid());
    let _ = writeln!(out, "Mode: {}", ctx.mode.unwrap_or("standalone"));
    let _ = writeln!(out, "Node count: {}", node_count(ctx));
}

/// The sizes of the data and the log directory, walking once when they are the same one
/// (dataLogDir defaults to dataDir).
pub fn dir_sizes(data_dir: &Path, data_log_dir: &Path) -> (u64, u64) {
    let data = dir_size(data_dir);
    let log = if data_log_dir == data_dir {
        data
    } else {
        dir_size(data_log_dir)
    };
    (data, log)
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The soft open-files limit, from /proc/self/limits ("Max open files  <soft>  <hard> files").
fn max_fd_count() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn kernel(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .ok()
        .map(|v| v.trim().to_owned())
}

/// The login name of the process's real uid, as Java's user.name (from the passwd file, not
/// $USER, which services often run without).
fn user_name() -> String {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next().map(str::to_owned))
        });
    let from_passwd = uid.and_then(|uid| {
        std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|passwd| {
                passwd.lines().find_map(|line| {
                    let mut fields = line.split(':');
                    let name = fields.next()?;
                    (fields.nth(1)? == uid).then(|| name.to_owned())
                })
            })
    });
    from_passwd.unwrap_or_else(|| std::env::var("USER").unwrap_or_default())
}

/// `envi`'s lines under ZooKeeper's names, for the facts a native process has; the JVM's
/// own (java.*, os.memory.*) have no rzk counterpart and are left out. The AdminServer's
/// `environment` reads the same list.
pub fn envi_pairs() -> Vec<(&'static str, String)> {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    vec![
        ("zookeeper.version", version_line()),
        ("rzk.version", env!("CARGO_PKG_VERSION").to_owned()),
        ("host.name", kernel("hostname").unwrap_or_default()),
        (
            "os.name",
            kernel("ostype").unwrap_or_else(|| std::env::consts::OS.to_owned()),
        ),
        ("os.arch", std::env::consts::ARCH.to_owned()),
        ("os.version", kernel("osrelease").unwrap_or_default()),
        ("user.name", user_name()),
        ("user.home", var("HOME")),
        (
            "user.dir",
            std::env::current_dir()
                .unwrap_or_default()
                .display()
                .to_string(),
        ),
    ]
}

/// `mntr`'s figures in ZooKeeper's order and names; the AdminServer's `monitor` reads the
/// same list, so the two never disagree.
pub fn mntr_pairs(ctx: &Context<'_>) -> Vec<(String, String)> {
    let mut pairs = mntr_core_pairs(ctx);
    pairs.extend(rzk_metrics::metrics().mntr_lines());
    pairs
}

/// The figures of `mntr` that need the core's state (asked of the thread running it), without
/// the latency summaries, which the Prometheus endpoint renders from the metrics itself.
pub fn mntr_core_pairs(ctx: &Context<'_>) -> Vec<(String, String)> {
    let s = &ctx.shared.stats;
    let w = ctx.core.watches();
    let tree = ctx.core.released();
    let lines: Vec<(&str, String)> = vec![
        ("zk_version", version_line()),
        ("zk_server_state", ctx.mode.unwrap_or("standalone").into()),
        ("zk_avg_latency", format!("{:.1}", s.latency.avg_ms())),
        ("zk_max_latency", s.latency.max_ms().to_string()),
        ("zk_min_latency", s.latency.min_ms().to_string()),
        (
            "zk_packets_received",
            s.packets_received.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_packets_sent",
            s.packets_sent.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_num_alive_connections",
            ctx.shared.conns.lock().len().to_string(),
        ),
        (
            "zk_outstanding_requests",
            ctx.core.outstanding_count().to_string(),
        ),
        ("zk_znode_count", node_count(ctx).to_string()),
        ("zk_watch_count", w.watch_count().to_string()),
        ("zk_ephemerals_count", tree.ephemeral_count().to_string()),
        ("zk_approximate_data_size", tree.data_bytes().to_string()),
        ("zk_open_file_descriptor_count", open_fd_count().to_string()),
        ("zk_max_file_descriptor_count", max_fd_count().to_string()),
        (
            "zk_global_sessions",
            (ctx.core.sessions().len() - ctx.core.local_session_count()).to_string(),
        ),
        (
            "zk_local_sessions",
            ctx.core.local_session_count().to_string(),
        ),
        (
            "zk_uptime",
            (ctx.now_ms.saturating_sub(ctx.shared.started_ms)).to_string(),
        ),
        (
            "zk_auth_failed_count",
            s.auth_failed.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_connection_rejected",
            s.connections_rejected.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_connection_drop_count",
            s.connections_dropped.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_bytes_received_count",
            s.bytes_received.load(Ordering::Relaxed).to_string(),
        ),
        // ZooKeeper's ServerMetrics counters of its Netty (TLS) connections.
        (
            "zk_unsuccessful_handshake",
            s.tls_handshakes_failed.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_tls_handshake_exceeded",
            s.tls_handshakes_exceeded
                .load(Ordering::Relaxed)
                .to_string(),
        ),
        (
            "zk_digest_mismatches_count",
            rzk_metrics::metrics().digest_mismatches.get().to_string(),
        ),
    ];
    let mut pairs: Vec<(String, String)> =
        lines.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    if let Some(q) = &ctx.quorum {
        // Where ZooKeeper puts them: the peer state after the server state, the ensemble's
        // figures after it.
        let at = pairs
            .iter()
            .position(|(k, _)| k == "zk_server_state")
            .map_or(0, |i| i + 1);
        let mut ensemble = vec![("zk_peer_state".to_owned(), q.peer_state.to_owned())];
        if let (Some(leader), Some("observer")) = (q.leader, ctx.mode) {
            ensemble.push(("zk_observer_master_id".into(), leader.to_string()));
        }
        if q.is_leader() {
            let synced = |observer: bool| {
                q.learners
                    .iter()
                    .filter(|l| l.synced && l.observer == observer)
                    .count()
                    .to_string()
            };
            ensemble.push(("zk_synced_followers".into(), synced(false)));
            ensemble.push(("zk_synced_non_voting_followers".into(), "0".into()));
            ensemble.push(("zk_synced_observers".into(), synced(true)));
            ensemble.push((
                "zk_pending_syncs".into(),
                q.learners.iter().filter(|l| !l.synced).count().to_string(),
            ));
            ensemble.push(("zk_learners".into(), q.learners.len().to_string()));
        }
        ensemble.push(("zk_quorum_size".into(), q.quorum_size.to_string()));
        pairs.splice(at..at, ensemble);
    }
    pairs
}

pub fn render(word: FourLetterWord, argument: Option<i64>, ctx: &Context<'_>) -> String {
    let mut out = String::new();
    if word == FourLetterWord::Isro {
        // ZooKeeper's IsroCommand: "null" when not serving, "ro" from its read-only server.
        return match ctx.mode {
            None => "null",
            Some("read-only") => "ro",
            Some(_) => "rw",
        }
        .into();
    }
    if ctx.mode.is_none() && word != FourLetterWord::Ruok {
        return "This ZooKeeper instance is not currently serving requests\n".into();
    }
    let tree = ctx.core.released();
    match word {
        FourLetterWord::Ruok => out.push_str("imok"),
        FourLetterWord::Isro => unreachable!("answered above"),
        FourLetterWord::Srvr => {
            let _ = writeln!(out, "Zookeeper version: {}", version_line());
            server_lines(ctx, &mut out);
        }
        FourLetterWord::Stat => {
            let _ = writeln!(out, "Zookeeper version: {}", version_line());
            out.push_str("Clients:\n");
            connections(ctx, &mut out, true);
            out.push('\n');
            server_lines(ctx, &mut out);
        }
        FourLetterWord::Cons => {
            connections(ctx, &mut out, false);
            out.push('\n');
        }
        FourLetterWord::Conf => {
            let c = ctx.config;
            let _ = writeln!(out, "clientPort={}", c.client_port);
            let _ = writeln!(out, "clientPortAddress={}", c.client_port_address);
            let _ = writeln!(
                out,
                "secureClientPort={}",
                c.secure_client_port.map_or(-1, i32::from)
            );
            let _ = writeln!(out, "dataDir={}", c.data_dir.display());
            let (data_size, log_size) = dir_sizes(&c.data_dir, &c.data_log_dir);
            let _ = writeln!(out, "dataDirSize={data_size}");
            let _ = writeln!(out, "dataLogDir={}", c.data_log_dir.display());
            let _ = writeln!(out, "dataLogSize={log_size}");
            let _ = writeln!(out, "tickTime={}", c.tick_time_ms);
            let _ = writeln!(out, "maxClientCnxns={}", c.max_client_cnxns);
            let _ = writeln!(out, "minSessionTimeout={}", c.min_session_timeout());
            let _ = writeln!(out, "maxSessionTimeout={}", c.max_session_timeout());
            let _ = writeln!(out, "clientPortListenBacklog=-1");
            let _ = writeln!(out, "serverId={}", c.server_id);
        }
        FourLetterWord::Envi => {
            out.push_str("Environment:\n");
            for (k, v) in envi_pairs() {
                let _ = writeln!(out, "{k}={v}");
            }
        }
        FourLetterWord::Mntr => {
            for (k, v) in mntr_pairs(ctx) {
                let _ = writeln!(out, "{k}\t{v}");
            }
        }
        FourLetterWord::Wchs => {
            let w = ctx.core.watches();
            let _ = writeln!(
                out,
                "{} connections watching {} paths",
                w.data_session_count(),
                w.data_path_count()
            );
            let _ = writeln!(out, "Total watches:{}", w.data_watch_count());
        }
        FourLetterWord::Wchc => {
            for (session, paths) in ctx.core.watches().data_by_session() {
                let _ = writeln!(out, "{session:#x}");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out.push('\n');
        }
        FourLetterWord::Wchp => {
            for (path, sessions) in ctx.core.watches().data_by_path() {
                let _ = writeln!(out, "{path}");
                for s in sessions {
                    let _ = writeln!(out, "\t{s:#x}");
                }
            }
            out.push('\n');
        }
        FourLetterWord::Dump => {
            let sessions = ctx.core.sessions();
            out.push_str("SessionTracker dump:\n");
            let _ = writeln!(
                out,
                "Session Sets ({})/({}):",
                sessions.len(),
                sessions.len()
            );
            let mut list: Vec<_> = sessions.iter().collect();
            list.sort_by_key(|s| s.id);
            for s in list {
                let last = s.touch.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{:#x} expires in {} ms (timeout {} ms)",
                    s.id,
                    (last + s.timeout_ms as u64).saturating_sub(ctx.mono_ms),
                    s.timeout_ms
                );
            }
            out.push_str("ephemeral nodes dump:\n");
            let mut owners: Vec<_> = tree.sessions_with_ephemerals().collect();
            owners.sort_by_key(|(s, _)| **s);
            let _ = writeln!(out, "Sessions with Ephemerals ({}):", owners.len());
            for (session, paths) in owners {
                let _ = writeln!(out, "{session:#x}:");
                for p in paths.iter() {
                    let _ = writeln!(out, "\t{p}");
                }
            }
        }
        FourLetterWord::Dirs => {
            let (data_size, log_size) = dir_sizes(&ctx.config.data_dir, &ctx.config.data_log_dir);
            let _ = writeln!(out, "datadir_size: {data_size}");
            let _ = writeln!(out, "logdir_size: {log_size}");
        }
        FourLetterWord::Crst => {
            for (_, c) in ctx.shared.conns.lock().iter() {
                c.reset();
            }
            out.push_str("Connection stats reset.\n");
        }
        FourLetterWord::Srst => {
            ctx.shared.stats.reset();
            out.push_str("Server stats reset.\n");
        }
        FourLetterWord::Gtmk => {
            let _ = write!(out, "{}", ctx.shared.trace_mask.load(Ordering::Relaxed));
        }
        FourLetterWord::Stmk => {
            if let Some(mask) = argument {
                ctx.shared.trace_mask.store(mask, Ordering::Relaxed);
            }
            let _ = write!(out, "{}", ctx.shared.trace_mask.load(Ordering::Relaxed));
        }
        FourLetterWord::Reqs => {}
    }
    out
}
