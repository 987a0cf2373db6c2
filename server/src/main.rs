//! `rzk`: the server binary. Reads the configuration, wires real sockets, threads and the
//! clock into the sans-IO cores, and runs in the foreground until SIGTERM/SIGINT.
//!
//! Never: decide a ZooKeeper outcome (pipeline does), parse client bytes (proto does).

mod admin;
mod config;
mod driver;
mod ensemble;
mod fourlw;
mod http;
mod log_stage;
mod stages;
mod storage;
mod tools;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use rzk_net::{now_ms, NetConfig, Shared};
use rzk_pipeline::{Core, CoreConfig};
use rzk_session::TimeoutLimits;
use tracing::{error, info, warn};

use crate::config::Config;

/// jemalloc instead of glibc's malloc: every write allocates and frees persistent-map nodes,
/// a znode and its value, and jemalloc's per-thread caches made that 16-20% cheaper in CPU.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "rzk",
    version,
    about = "A ZooKeeper-compatible coordination service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server. Without --config: standalone on 127.0.0.1:2181 with data in ./data.
    Server(ServerArgs),
    /// Load generator: throughput and latency percentiles of any ZooKeeper-protocol server.
    Bench(rzk_loadgen::BenchArgs),
    /// Transaction log tools.
    Log {
        #[command(subcommand)]
        command: LogCommandArgs,
    },
    /// Snapshot tools.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommandArgs,
    },
    /// The deterministic ensemble simulator: explore seeds with faults and checkers, or replay
    /// one (docs/SIMULATION.md).
    Sim(rzk_sim::cli::SimArgs),
}

#[derive(Subcommand)]
enum LogCommandArgs {
    /// Print every transaction in a log directory (dataLogDir/rzk), like ZooKeeper's
    /// TxnLogToolkit.
    Dump {
        /// The log directory, or a dataLogDir containing rzk/
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum SnapshotCommandArgs {
    /// Print a snapshot's sessions and znodes, like ZooKeeper's SnapshotFormatter.
    Dump {
        file: PathBuf,
        /// Also print each znode's data (as text when printable, else hex)
        #[arg(long)]
        data: bool,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// A ZooKeeper zoo.cfg; the flags below override its keys.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// clientPort
    #[arg(long)]
    client_port: Option<u16>,
    /// clientPortAddress
    #[arg(long)]
    client_port_address: Option<IpAddr>,
    /// dataDir
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// tickTime in milliseconds
    #[arg(long)]
    tick_time: Option<u32>,
    /// minSessionTimeout in milliseconds
    #[arg(long)]
    min_session_timeout: Option<i32>,
    /// maxSessionTimeout in milliseconds
    #[arg(long)]
    max_session_timeout: Option<i32>,
    /// maxClientCnxns per client address (0: unlimited)
    #[arg(long)]
    max_client_cnxns: Option<usize>,
    /// 4lw.commands.whitelist, e.g. "ruok,mntr" or "*"
    #[arg(long)]
    four_letter_words: Option<String>,
    /// Enable TTL nodes (zookeeper.extendedTypesEnabled)
    #[arg(long)]
    extended_types: bool,
    /// How the log reaches the disk: pwrite (fdatasync), mmap (msync) or io_uring (write and
    /// fsync linked); io_uring falls back to pwrite with a log line where unavailable
    #[arg(long)]
    wal_backend: Option<rzk_wal::Backend>,
    /// batch.maxTxns: most transactions one log write+sync carries; the rest go in the next
    /// [default: 4096]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    batch_max_txns: Option<u64>,
    /// batch.maxBytes: most encoded bytes one log write+sync carries (a larger single
    /// transaction goes alone) [default: 4194304]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    batch_max_bytes: Option<u64>,
    /// batch.maxDelayMicros: how long an idle log waits for more transactions before it
    /// writes a batch below the caps; 0 writes at once [default: 0, at most 1000000]
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=rzk_pipeline::batch::BATCH_DELAY_US_LIMIT))]
    batch_max_delay_micros: Option<u64>,
    /// Event-loop threads serving client connections
    #[arg(long, default_value_t = 1)]
    net_threads: usize,
    /// admin.serverPort: the AdminServer's HTTP port (0 turns it off)
    #[arg(long)]
    admin_port: Option<u16>,
    /// metricsProvider.httpPort: the Prometheus /metrics port (0 turns it off)
    #[arg(long)]
    metrics_port: Option<u16>,
    /// slowRequest.thresholdMs: log requests slower than this with their stage times (0: off)
    #[arg(long)]
    slow_request_ms: Option<u64>,
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(args: &ServerArgs) -> Result<Config, String> {
    // zkServer.sh hands system properties to Java in SERVER_JVMFLAGS; rzk reads the ones
    // it knows from there too (the JAAS file, zookeeper.superUser, ...).
    let jvm_flags = std::env::var("SERVER_JVMFLAGS").unwrap_or_default();
    let (mut config, warnings) = match &args.config {
        Some(path) => {
            Config::from_file_and_jvm_flags(path, &jvm_flags).map_err(|e| e.to_string())?
        }
        None => Config::from_sources(Config::default(), &jvm_flags, "", "(no zoo.cfg)")
            .map_err(|e| e.to_string())?,
    };
    for w in warnings {
        warn!("{}", w.0);
    }
    if let Some(v) = args.client_port {
        config.client_port = v;
    }
    if let Some(v) = args.client_port_address {
        config.client_port_address = v;
    }
    if let Some(v) = &args.data_dir {
        config.data_dir = v.clone();
        config.data_log_dir = v.clone();
    }
    if let Some(v) = args.tick_time {
        config.tick_time_ms = v;
    }
    if let Some(v) = args.min_session_timeout {
        config.min_session_timeout_ms = v;
    }
    if let Some(v) = args.max_session_timeout {
        config.max_session_timeout_ms = v;
    }
    if let Some(v) = args.max_client_cnxns {
        config.max_client_cnxns = v;
    }
    if let Some(v) = &args.four_letter_words {
        config.four_letter_words =
            config::parse_four_letter_words(v).map_err(|e| format!("--four-letter-words: {e}"))?;
    }
    if args.extended_types {
        config.extended_types = true;
    }
    if let Some(backend) = args.wal_backend {
        config.wal_backend = backend;
    }
    if let Some(port) = args.admin_port {
        config.admin_enabled = port != 0;
        config.admin_port = port;
    }
    if let Some(port) = args.metrics_port {
        config.metrics_enabled = port != 0;
        config.metrics_port = port;
    }
    if let Some(ms) = args.slow_request_ms {
        config.slow_request_ms = ms;
    }
    if let Some(v) = args.batch_max_txns {
        config.batch.max_txns = usize::try_from(v).unwrap_or(usize::MAX);
    }
    if let Some(v) = args.batch_max_bytes {
        config.batch.max_bytes = usize::try_from(v).unwrap_or(usize::MAX);
    }
    if let Some(v) = args.batch_max_delay_micros {
        config.batch.max_delay_us = v;
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn run_server(args: ServerArgs) -> Result<(), String> {
    let mut config = load_config(&args)?;
    if let Some((setup, listen)) = ensemble::setup(&mut config)? {
        return ensemble::run(config, setup, listen, args.net_threads);
    }
    let started = std::time::Instant::now();
    let seed = process_seed();
    let loaded = load_data(&config, seed)?;
    let replayed = loaded.recovered.txns.len();
    let core = Core::recover(
        core_config(&config, config.server_id, seed),
        loaded.tree,
        loaded.sessions,
        &loaded.recovered.txns,
        rzk_net::clocks(),
    );
    let metrics = rzk_metrics::metrics();
    metrics.db_init_time.observe_duration(started.elapsed());
    metrics.startup_txns_loaded.observe(replayed as f64);
    info!(
        snapshot_zxid = format_args!("{:#x}", loaded.snapshot_zxid),
        replayed_txns = replayed,
        zxid = format_args!("{:#x}", core.released().last_zxid()),
        nodes = core.released().node_count(),
        sessions = core.sessions().len(),
        snapshot_ms = loaded.snapshot_elapsed.as_millis() as u64,
        log_ms = loaded.log_elapsed.as_millis() as u64,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered the data tree"
    );
    let wal = rzk_wal::WalWriter::open(
        Box::new(loaded.storage),
        &loaded.recovered,
        config.pre_alloc_size_kb * 1024,
    )
    .map_err(|e| format!("cannot open the transaction log for writing: {e}"))?;
    let shared = Arc::new(Shared::new(core.released().clone()));
    let (to_core, from_net) = rzk_net::CoreLink::new();
    let (loops, loop_threads) = spawn_client_loops(&config, args.net_threads, &shared, &to_core)?;
    let (to_log, commands) = crossbeam_channel::unbounded();
    let (durable_tx, durable) = crossbeam_channel::unbounded();
    let log = log_stage::shared(wal, config.fsync_warning_ms);
    // With a batching delay every batch must pass the log thread's batcher; without one the
    // core writes a batch itself when the log is idle.
    let inline_log = (config.batch.max_delay_us == 0).then(|| log.clone());
    let log_thread = log_stage::spawn(log, commands, durable_tx, config.batch)
        .map_err(|e| format!("cannot start the log stage: {e}"))?;
    let mut snapshots = snapshot_policy(&config, loaded.snapshot_zxid, to_log.clone())?;
    // As ZooKeeper does after loading: snapshot what was replayed, so the next start is fast.
    if replayed > 0 {
        snapshots.maybe_snapshot(&core, true);
    }
    install_signal_handlers(shared.clone(), loops.clone())?;
    let (endpoints, calls) = spawn_endpoints(&config);
    let addr = config.client_addr();
    info!(%addr, data_dir = %config.data_dir.display(), data_log_dir = %config.data_log_dir.display(),
        tick_time_ms = config.tick_time_ms,
        min_session_timeout_ms = config.min_session_timeout(),
        max_session_timeout_ms = config.max_session_timeout(),
        "rzk {} serving standalone (ZooKeeper protocol {})",
        env!("CARGO_PKG_VERSION"), fourlw::ZOOKEEPER_PROTOCOL_VERSION);
    let last_zxid = core.released().last_zxid();
    let batch_limits = config.batch;
    // Without inline log writes a loop running the core would only move the hand-off.
    let run_to_completion = inline_log.is_some();
    let driver = Arc::new(parking_lot::Mutex::new(driver::Driver {
        core,
        config,
        shared,
        to_log,
        loops,
        snapshots,
        clock: stages::StageClock::default(),
        inline_log,
        batch_limits,
        handed_zxid: last_zxid,
        durable_zxid: last_zxid,
        woken: Vec::new(),
        stopped: false,
        mode: Some("standalone"),
    }));
    if run_to_completion {
        to_core.set_host(Arc::new(driver::RunToCompletion {
            driver: driver.clone(),
            from_net: from_net.handle(),
            durable: durable.clone(),
        }));
    }
    drop(to_core);
    let snapshot_thread = driver::CoreThread {
        driver,
        from_net,
        durable,
        calls,
    }
    .run();
    for endpoint in endpoints {
        endpoint.stop();
    }
    for t in loop_threads {
        let _ = t.join();
    }
    let _ = log_thread.join();
    if let Some(thread) = snapshot_thread {
        let _ = thread.join();
    }
    info!("rzk stopped");
    Ok(())
}

/// One seed per process for the core's PRNG and the tree's hasher keys: unpredictable to
/// clients, and a test or the simulator can fix both.
fn process_seed() -> u64 {
    now_ms() ^ u64::from(std::process::id()) << 32
}

/// The newest valid snapshot and the log after it (standalone and ensemble alike).
fn load_data(config: &Config, seed: u64) -> Result<storage::Loaded, String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create dataDir {}: {e}", config.data_dir.display()))?;
    let sync = if config.force_sync {
        rzk_wal::SyncMode::Data
    } else {
        warn!("forceSync=no: the log is NOT synced; acknowledged writes can be lost in a crash. For tests only.");
        rzk_wal::SyncMode::None
    };
    storage::load(
        &config.data_dir,
        &config.data_log_dir,
        sync,
        config.wal_backend,
        rzk_tree::NodeHasher::seeded(seed),
    )
}

fn core_config(config: &Config, server_id: u8, seed: u64) -> CoreConfig {
    CoreConfig {
        limits: TimeoutLimits {
            min_ms: config.min_session_timeout(),
            max_ms: config.max_session_timeout(),
        },
        extended_types: config.extended_types,
        container_check_interval_ms: config.container_check_interval_ms,
        server_id,
        seed,
        tick_ms: u64::from(config.tick_time_ms),
        local_sessions: config.local_sessions,
        upgrade_local_sessions: config.upgrade_local_sessions,
        config_node: None,
    }
}

/// The client port's event loops.
fn spawn_client_loops(
    config: &Config,
    net_threads: usize,
    shared: &Arc<Shared>,
    to_core: &rzk_net::CoreLink,
) -> Result<(Vec<rzk_net::LoopHandle>, Vec<std::thread::JoinHandle<()>>), String> {
    let addr = config.client_addr();
    let listener = mio::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on {addr} (clientPort/clientPortAddress): {e}"))?;
    let security = client_security(config)?;
    let secure_listener = match config.secure_client_port {
        Some(port) => {
            let ip = config
                .secure_client_port_address
                .unwrap_or(config.client_port_address);
            let addr = std::net::SocketAddr::new(ip, port);
            let listener = mio::net::TcpListener::bind(addr).map_err(|e| {
                format!("cannot listen on {addr} (secureClientPort/secureClientPortAddress): {e}")
            })?;
            info!(%addr, "serving TLS clients (secureClientPort)");
            Some(listener)
        }
        None => None,
    };
    let net_config = NetConfig {
        max_frame_bytes: config.jute_max_buffer_bytes,
        max_client_cnxns: config.max_client_cnxns,
        handshake_timeout_ms: (config.tick_time_ms as u64 * 5).max(10_000),
        four_letter_words: config.four_letter_words.clone(),
        super_digest: config.super_digest.clone(),
        loop_count: net_threads.max(1),
        slow_request_ms: config.slow_request_ms,
        security: Arc::new(security),
    };
    rzk_net::spawn_loops(
        net_config,
        listener,
        secure_listener,
        shared.clone(),
        to_core.clone(),
    )
    .map_err(|e| format!("cannot start event loops: {e}"))
}

/// TLS key material for secureClientPort, the SASL users and what is enforced, from the
/// config; a key that names a missing or unreadable file stops the server here.
fn client_security(config: &Config) -> Result<rzk_net::Security, String> {
    let tls = match config.secure_client_port {
        None => None,
        Some(_) => {
            let settings = rzk_tls::TlsSettings::from_properties("ssl.", &config.ssl)
                .map_err(|e| e.to_string())?
                .ok_or("secureClientPort is set, but ssl.keyStore.location is not")?;
            Some(Arc::new(
                rzk_tls::ReloadingServerConfig::new(settings).map_err(|e| e.to_string())?,
            ))
        }
    };
    let sasl = match &config.jaas_config {
        None => None,
        Some(path) => {
            let jaas = rzk_sasl::Jaas::load(path)
                .map_err(|e| format!("java.security.auth.login.config: {e}"))?;
            // A file made for the quorum's or a client's sections alone leaves client SASL
            // off, as in ZooKeeper (which fails only when the file does not load).
            if jaas
                .section(&config.sasl_server_section)
                .is_none_or(|modules| modules.is_empty())
            {
                info!(file = %path.display(), section = %config.sasl_server_section,
                    "no SASL users for clients: the JAAS file has no such section");
                None
            } else {
                let credentials = rzk_sasl::Credentials::from_jaas(
                    &jaas,
                    &config.sasl_server_section,
                    config.sasl_super_password.as_deref(),
                )
                .map_err(|e| format!("java.security.auth.login.config={}: {e}", path.display()))?;
                Some(Arc::new(credentials))
            }
        }
    };
    let enforce_auth_schemes = config.enforced_auth_schemes();
    if enforce_auth_schemes.iter().any(|s| s == "sasl") && sasl.is_none() {
        return Err("SASL authentication is enforced (sessionRequireClientSASLAuth or enforce.auth.schemes), but no JAAS file with a Server section is configured (java.security.auth.login.config)".into());
    }
    Ok(rzk_net::Security {
        tls,
        x509_super_user: config.x509_super_user.clone(),
        sasl,
        sasl_super_users: config.sasl_super_users.clone(),
        enforce_auth_schemes,
        allow_sasl_failed_clients: config.allow_sasl_failed_clients,
        tls_handshake_limit: config.tls_handshake_limit,
        tls_handshakes: Default::default(),
    })
}

/// The snapshot thread and when to use it; its purges go to `to_log`.
fn snapshot_policy(
    config: &Config,
    snapshot_zxid: i64,
    to_log: crossbeam_channel::Sender<log_stage::LogCommand>,
) -> Result<driver::SnapshotPolicy, String> {
    let snapshotter = storage::spawn_snapshotter(
        &config.data_dir,
        (config.autopurge_snap_retain_count as usize).max(rzk_snapshot::SNAP_RETAIN_COUNT_MIN),
        config.autopurge_purge_interval_hours > 0,
        to_log,
    )
    .map_err(|e| format!("cannot start the snapshot thread: {e}"))?;
    Ok(driver::SnapshotPolicy::new(
        snapshotter,
        config.snap_count,
        snapshot_zxid,
        now_ms(),
    ))
}

/// The AdminServer and /metrics (each off when configured so), and the channel on which they
/// ask the core thread.
fn spawn_endpoints(
    config: &Config,
) -> (
    Vec<http::Endpoint>,
    crossbeam_channel::Receiver<http::CoreCall>,
) {
    let (calls_tx, calls) = crossbeam_channel::unbounded();
    let endpoints = [
        http::spawn_admin(config, calls_tx.clone()),
        http::spawn_metrics(config, calls_tx),
    ]
    .into_iter()
    .flatten()
    .collect();
    (endpoints, calls)
}

/// SIGTERM/SIGINT start a graceful shutdown; a second one exits at once.
fn install_signal_handlers(
    shared: Arc<Shared>,
    loops: Vec<rzk_net::LoopHandle>,
) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("rzk-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if shared.shutting_down.swap(true, Ordering::SeqCst) {
                    warn!(signal, "second signal: exiting now");
                    std::process::exit(1);
                }
                info!(signal, "signal received: stopping");
                for l in &loops {
                    let _ = l.waker.wake();
                }
            }
        })
        .map_err(|e| format!("cannot start signal thread: {e}"))?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => tools::exit(rzk_loadgen::run_cli(&args)),
        Command::Sim(args) => {
            if rzk_sim::cli::run_cli(&args) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Log {
            command: LogCommandArgs::Dump { dir },
        } => tools::exit(tools::dump_log(&dir)),
        Command::Snapshot {
            command: SnapshotCommandArgs::Dump { file, data },
        } => tools::exit(tools::dump_snapshot(&file, data)),
        Command::Server(args) => {
            init_logging(args.log_format);
            match run_server(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    eprintln!("rzk: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use rzk_pipeline::batch::{BATCH_BYTES_MAX_DEFAULT, BATCH_TXNS_MAX_DEFAULT};

    use super::*;

    // The batching flags have no clap default (so they do not override zoo.cfg); their help
    // states the defaults by hand, and this keeps it true.
    #[test]
    fn batching_flag_help_states_the_real_defaults() {
        let mut command = Cli::command();
        let server = command
            .find_subcommand_mut("server")
            .expect("server subcommand");
        let help = server.render_long_help().to_string();
        for expected in [
            format!("[default: {BATCH_TXNS_MAX_DEFAULT}]"),
            format!("[default: {BATCH_BYTES_MAX_DEFAULT}]"),
            "[default: 0, at most 1000000]".to_owned(),
        ] {
            assert!(help.contains(&expected), "{expected} not in:\n{help}");
        }
    }

    #[test]
    fn batching_flags_override_the_config_and_are_range_checked() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["rzk", "server"];
            argv.extend_from_slice(extra);
            match Cli::try_parse_from(argv) {
                Ok(Cli {
                    command: Command::Server(args),
                }) => Ok(load_config(&args).expect("valid config")),
                Ok(_) => panic!("not the server subcommand"),
                Err(e) => Err(e.to_string()),
            }
        };
        let config = parse(&[
            "--batch-max-txns",
            "64",
            "--batch-max-bytes",
            "1000",
            "--batch-max-delay-micros",
            "100",
        ])
        .unwrap();
        assert_eq!(config.batch.max_txns, 64);
        assert_eq!(config.batch.max_bytes, 1000);
        assert_eq!(config.batch.max_delay_us, 100);
        assert_eq!(
            parse(&[]).unwrap().batch,
            rzk_pipeline::batch::BatchLimits::default()
        );
        for bad in [
            ["--batch-max-txns", "0"],
            ["--batch-max-bytes", "0"],
            ["--batch-max-delay-micros", "1000001"],
        ] {
            let err = parse(&bad).unwrap_err();
            assert!(err.contains(bad[0]), "{err}");
        }
    }
}
