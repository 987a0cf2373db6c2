//! zoo.cfg, read as Apache ZooKeeper reads it (Java properties: `key=value`, `key: value` or
//! `key value`; `#`/`!` comments), and the command-line flags that override it.
//!
//! Configs written for Apache ZooKeeper start rzk unchanged: keys that only mean something to
//! the JVM server are accepted with a warning, and unknown keys are warned about (ZooKeeper
//! turns them into `zookeeper.`-prefixed system properties, which is how
//! `DigestAuthenticationProvider.superDigest` works in zoo.cfg; rzk honours that one). A bad
//! value is an error naming the key and the line.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use rzk_pipeline::batch::{BatchLimits, BATCH_DELAY_US_LIMIT};
use rzk_proto::FourLetterWord;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: bad value for {key}: {value:?} ({reason})")]
    BadValue {
        path: String,
        line: usize,
        key: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The words answered when `4lw.commands.whitelist` is not set. ZooKeeper's own default is
/// `srvr` alone, which silently breaks monitoring that uses `ruok` or `mntr`; these are the
/// read-only, cheap words. Left out: `dump`, `wchc`, `wchp` (cost grows with sessions and
/// watches; they list session ids), `crst`, `srst`, `stmk` (they change server state).
pub const DEFAULT_FOUR_LETTER_WORDS: &[&str] = &[
    "ruok", "srvr", "stat", "mntr", "conf", "envi", "isro", "cons", "wchs", "dirs", "gtmk",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub tick_time_ms: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    /// The `server.N` lines, in file order: (line, N, value). Two or more make an ensemble
    /// (ensemble.rs reads them with the myid file).
    pub servers: Vec<(usize, u64, String)>,
    /// peerType: observer or participant (the default).
    pub peer_type_observer: bool,
    /// standaloneEnabled (default true): false makes one listed server an ensemble of one
    /// (a quorum of itself) instead of a standalone server.
    pub standalone_enabled: bool,
    /// quorumListenOnAllIPs (default false): the quorum and election ports listen on every
    /// address, not only the one in this server's line.
    pub quorum_listen_on_all_ips: bool,
    /// electionPortBindRetry (default 3; 0 retries for ever): how often binding the
    /// election port is tried, a second apart, before the server gives up.
    pub election_port_bind_retry: u32,
    /// readonlymode.enabled (ZooKeeper reads it as a system property; rzk from zoo.cfg too):
    /// a server of an ensemble that finds no leader for max(2 s, tickTime) serves reads to
    /// read-only clients until it rejoins.
    pub read_only_mode: bool,
    /// localSessionsEnabled and localSessionsUpgradingEnabled (ensembles only, as in
    /// ZooKeeper): see `CoreConfig`.
    pub local_sessions: bool,
    pub upgrade_local_sessions: bool,
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    pub client_port: u16,
    /// Whether the file set clientPort: if not, an ensemble server takes its client port
    /// from its own server.N line (`;[address:]port`), as ZooKeeper 3.5+ does.
    pub client_port_set: bool,
    pub client_port_address: IpAddr,
    pub max_client_cnxns: usize,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub snap_count: u64,
    pub pre_alloc_size_kb: u64,
    pub autopurge_snap_retain_count: u32,
    pub autopurge_purge_interval_hours: u32,
    pub force_sync: bool,
    pub four_letter_words: Vec<FourLetterWord>,
    pub global_outstanding_limit: usize,
    pub jute_max_buffer_bytes: usize,
    pub extended_types: bool,
    pub container_check_interval_ms: u64,
    pub super_digest: Option<String>,
    /// walBackend: how the log reaches the disk (pwrite, mmap or io_uring).
    pub wal_backend: rzk_wal::Backend,
    /// fsync.warningthresholdms: a log write+sync slower than this is logged.
    pub fsync_warning_ms: u64,
    /// batch.maxTxns, batch.maxBytes, batch.maxDelayMicros: when a group commit closes.
    pub batch: BatchLimits,
    pub server_id: u8,
    /// admin.enableServer / admin.serverAddress / admin.serverPort / admin.commandURL: the
    /// AdminServer's HTTP/JSON commands (ZooKeeper: on, 0.0.0.0:8080, /commands).
    pub admin_enabled: bool,
    pub admin_address: IpAddr,
    pub admin_port: u16,
    pub admin_command_url: String,
    /// admin.forceHttps: the AdminServer speaks only HTTPS, with the ssl.* key material
    /// (ZooKeeper's client-port keys); admin.needClientAuth: and wants a client certificate.
    pub admin_force_https: bool,
    pub admin_need_client_auth: bool,
    /// metricsProvider.*: the Prometheus endpoint. On by default (ZooKeeper needs
    /// metricsProvider.className set); naming ZooKeeper's NullMetricsProvider turns it off.
    pub metrics_enabled: bool,
    pub metrics_address: IpAddr,
    pub metrics_port: u16,
    /// slowRequest.thresholdMs: a request slower than this is logged with its stage times
    /// (0 turns the log off).
    pub slow_request_ms: u64,
    /// secureClientPort / secureClientPortAddress: the TLS client port (None: none).
    pub secure_client_port: Option<u16>,
    pub secure_client_port_address: Option<IpAddr>,
    /// Every `ssl.*` key (with a leading `zookeeper.` dropped), for rzk_tls to read with its
    /// prefix: `ssl.` for the client port, `ssl.quorum.` for server-to-server links.
    pub ssl: BTreeMap<String, String>,
    /// sslQuorum: TLS on every server-to-server connection.
    pub ssl_quorum: bool,
    /// quorum.auth.enableSasl / learnerRequireSasl / serverRequireSasl and the JAAS sections
    /// quorum.auth.learner.saslLoginContext (QuorumLearner) and
    /// quorum.auth.server.saslLoginContext (QuorumServer): DIGEST-MD5 between servers.
    pub quorum_sasl: bool,
    pub quorum_learner_require_sasl: bool,
    pub quorum_server_require_sasl: bool,
    pub quorum_learner_login_context: String,
    pub quorum_server_login_context: String,
    /// java.security.auth.login.config: the JAAS file whose `Server` section (the name is
    /// zookeeper.sasl.serverconfig) lists the DIGEST-MD5 users.
    pub jaas_config: Option<PathBuf>,
    pub sasl_server_section: String,
    /// zookeeper.SASLAuthenticationProvider.superPassword: overrides user `super`'s password.
    pub sasl_super_password: Option<String>,
    /// zookeeper.superUser and zookeeper.superUser.N: SASL ids that are super users.
    pub sasl_super_users: Vec<String>,
    /// zookeeper.X509AuthenticationProvider.superUser.
    pub x509_super_user: Option<String>,
    /// enforce.auth.enabled / enforce.auth.schemes / sessionRequireClientSASLAuth.
    pub enforce_auth_enabled: bool,
    pub enforce_auth_schemes: Vec<String>,
    pub session_require_sasl: bool,
    /// zookeeper.allowSaslFailedClients.
    pub allow_sasl_failed_clients: bool,
    /// netty.server.outstandingHandshake.limit (ZooKeeper: unlimited; rzk: 1000).
    pub tls_handshake_limit: usize,
    /// The config file read at startup, if any.
    pub source: Option<PathBuf>,
    /// That file's text as read at startup: the AdminServer's `initial_configuration` and
    /// `system_properties` answer from it.
    pub initial_text: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tick_time_ms: 2000,
            init_limit: 10,
            sync_limit: 5,
            servers: Vec::new(),
            peer_type_observer: false,
            standalone_enabled: true,
            quorum_listen_on_all_ips: false,
            election_port_bind_retry: 3,
            read_only_mode: false,
            local_sessions: false,
            upgrade_local_sessions: false,
            data_dir: PathBuf::from("data"),
            data_log_dir: PathBuf::from("data"),
            client_port: 2181,
            client_port_set: false,
            client_port_address: IpAddr::from([127, 0, 0, 1]),
            max_client_cnxns: 60,
            min_session_timeout_ms: -1,
            max_session_timeout_ms: -1,
            snap_count: 100_000,
            pre_alloc_size_kb: 65536,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval_hours: 0,
            force_sync: true,
            four_letter_words: DEFAULT_FOUR_LETTER_WORDS
                .iter()
                .filter_map(|w| FourLetterWord::from_name(w))
                .collect(),
            global_outstanding_limit: 1000,
            jute_max_buffer_bytes: rzk_proto::JUTE_MAXBUFFER_DEFAULT_BYTES,
            extended_types: false,
            container_check_interval_ms: 60_000,
            super_digest: None,
            fsync_warning_ms: 1000,
            wal_backend: rzk_wal::Backend::Pwrite,
            batch: BatchLimits::default(),
            server_id: 0,
            // Without a zoo.cfg rzk listens on loopback only; the HTTP endpoints follow.
            admin_enabled: true,
            admin_address: IpAddr::from([127, 0, 0, 1]),
            admin_port: 8080,
            admin_command_url: "/commands".into(),
            admin_force_https: false,
            admin_need_client_auth: false,
            metrics_enabled: true,
            metrics_address: IpAddr::from([127, 0, 0, 1]),
            metrics_port: 7000,
            slow_request_ms: 500,
            secure_client_port: None,
            secure_client_port_address: None,
            ssl: BTreeMap::new(),
            ssl_quorum: false,
            jaas_config: None,
            quorum_sasl: false,
            quorum_learner_require_sasl: false,
            quorum_server_require_sasl: false,
            quorum_learner_login_context: "QuorumLearner".into(),
            quorum_server_login_context: "QuorumServer".into(),
            sasl_server_section: "Server".into(),
            sasl_super_password: None,
            sasl_super_users: Vec::new(),
            x509_super_user: None,
            enforce_auth_enabled: false,
            enforce_auth_schemes: Vec::new(),
            session_require_sasl: false,
            allow_sasl_failed_clients: false,
            tls_handshake_limit: 1000,
            source: None,
            initial_text: None,
        }
    }
}

/// Keys that configure parts of the JVM server rzk does not have (or not yet): accepted so an
/// existing zoo.cfg starts, with one warning each.
const JVM_ONLY_PREFIXES: &[&str] = &[
    "serverCnxnFactory",
    "admin.",
    "reconfigEnabled",
    "metricsProvider.",
    "audit.",
    "portUnification",
    "clientCnxnSocket",
    "quorum.",
    "electionAlg",
    "cnxTimeout",
    "leaderServes",
    "maxCnxns",
    "clientPortListenBacklog",
    "connectToLearnerMasterLimit",
    "kerberos.",
    "sasl",
    "jaasLoginRenew",
    "syncEnabled",
    "dynamicConfigFile",
    "multiAddress.",
    "zookeeper.",
    "client.",
    "learner.",
    "observer.",
    "snapSizeLimitInKb",
    "txnLogSizeLimitInKb",
    "commitLogCount",
];

/// ZooKeeper's own authentication providers, which rzk has built in: naming them in
/// `authProvider.N` changes nothing.
const BUILT_IN_AUTH_PROVIDERS: &[&str] = &[
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider",
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
    "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
    "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
];

/// System properties rzk reads that have no `zookeeper.` prefix.
fn is_plain_system_property(key: &str) -> bool {
    matches!(
        key,
        "java.security.auth.login.config" | "readonlymode.enabled" | "jute.maxbuffer"
    )
}

/// The `-Dkey=value` flags of a JVM command line (`-Dkey` alone sets ""), in order.
pub fn system_properties(jvm_flags: &str) -> Vec<(String, String)> {
    jvm_flags
        .split_whitespace()
        .filter_map(|flag| flag.strip_prefix("-D"))
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.to_owned(), String::new()),
        })
        .collect()
}

#[derive(Debug)]
pub struct Warning(pub String);

pub fn parse_line(raw: &str) -> Option<(String, String)> {
    let line = raw.trim_start();
    if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
        return None;
    }
    let split = line
        .find(|c: char| c == '=' || c == ':' || c.is_whitespace())
        .unwrap_or(line.len());
    let key = line[..split].trim().to_owned();
    let rest = line[split..].trim_start();
    let rest = rest
        .strip_prefix('=')
        .or_else(|| rest.strip_prefix(':'))
        .unwrap_or(rest);
    Some((key, rest.trim().to_owned()))
}

struct ValueError(String);

fn num<T: std::str::FromStr>(value: &str) -> Result<T, ValueError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse::<T>()
        .map_err(|e| ValueError(format!("not a number: {e}")))
}

fn at_least_one(value: &str) -> Result<usize, ValueError> {
    match num(value)? {
        0 => Err(ValueError("must be at least 1".into())),
        n => Ok(n),
    }
}

fn batch_delay_us(value: &str) -> Result<u64, ValueError> {
    let us: u64 = num(value)?;
    if us > BATCH_DELAY_US_LIMIT {
        return Err(ValueError(format!(
            "at most {BATCH_DELAY_US_LIMIT} µs: a longer delay holds writes for much of a session timeout"
        )));
    }
    Ok(us)
}

fn ip(value: &str) -> Result<std::net::IpAddr, ValueError> {
    value
        .parse()
        .map_err(|e| ValueError(format!("not an IP address: {e}")))
}

fn boolean(value: &str) -> Result<bool, ValueError> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(ValueError("expected yes/no or true/false".into())),
    }
}

pub fn parse_four_letter_words(value: &str) -> Result<Vec<FourLetterWord>, String> {
    let mut words = Vec::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "*" {
            return Ok(FourLetterWord::ALL.to_vec());
        }
        match FourLetterWord::from_name(name) {
            Some(w) => words.push(w),
            None => return Err(format!("unknown four-letter word {name:?}")),
        }
    }
    Ok(words)
}

impl Config {
    /// Reads a zoo.cfg. Relative dataDir/dataLogDir stay relative to the working directory,
    /// as in ZooKeeper.
    /// A zoo.cfg with the system properties of SERVER_JVMFLAGS under it.
    pub fn from_file_and_jvm_flags(
        path: &Path,
        jvm_flags: &str,
    ) -> Result<(Config, Vec<Warning>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::from_sources(
            Config::file_base(),
            jvm_flags,
            &text,
            &path.display().to_string(),
        )?;
        config.0.source = Some(path.to_owned());
        config.0.initial_text = Some(text);
        Ok(config)
    }

    #[cfg(test)]
    pub fn from_text(text: &str, origin: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
        Config::from_sources(Config::file_base(), "", text, origin)
    }

    /// What a zoo.cfg starts from: as ZooKeeper, one without clientPortAddress listens on
    /// every interface.
    pub fn file_base() -> Config {
        Config {
            client_port_address: IpAddr::from([0, 0, 0, 0]),
            admin_address: IpAddr::from([0, 0, 0, 0]),
            metrics_address: IpAddr::from([0, 0, 0, 0]),
            ..Config::default()
        }
    }

    /// `base` with the system properties of `jvm_flags` (SERVER_JVMFLAGS, as zkServer.sh
    /// hands it to Java: `-Dkey=value` among other flags), then zoo.cfg's `text` applied.
    /// zoo.cfg wins where both set a key, as in ZooKeeper's ZKConfig. JVM flags rzk has no
    /// use for are skipped without a warning: they are meant for a JVM.
    pub fn from_sources(
        base: Config,
        jvm_flags: &str,
        text: &str,
        origin: &str,
    ) -> Result<(Config, Vec<Warning>), ConfigError> {
        let mut config = base;
        let mut warnings = Vec::new();
        let mut data_log_dir_set = false;
        let mut servers: Vec<(usize, String)> = Vec::new();
        let jvm_lines: Vec<(usize, Option<(String, String)>)> = system_properties(jvm_flags)
            .into_iter()
            .enumerate()
            .map(|(i, kv)| (i + 1, Some(kv)))
            .collect();
        let file_lines: Vec<(usize, Option<(String, String)>)> = text
            .lines()
            .enumerate()
            .map(|(i, raw)| (i + 1, parse_line(raw)))
            .collect();
        for (jvm, lines) in [(true, jvm_lines), (false, file_lines)] {
            let origin = if jvm { "SERVER_JVMFLAGS" } else { origin };
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for (line, parsed) in lines {
                let Some((key, value)) = parsed else {
                    continue;
                };
                // A JVM flag names a system property, which the zoo.cfg keys below are without
                // `zookeeper.`; other JVM properties are not rzk's business.
                let key = if jvm {
                    match key.strip_prefix("zookeeper.") {
                        Some(k) => k.to_owned(),
                        None if is_plain_system_property(&key) => key,
                        None => continue,
                    }
                } else {
                    key
                };
                if let Some(previous) = seen.insert(key.clone(), line) {
                    warnings.push(Warning(format!(
                        "{origin}:{line}: {key} repeats line {previous}; the last value wins"
                    )));
                }
                let bad = |e: ValueError| ConfigError::BadValue {
                    path: origin.to_owned(),
                    line,
                    key: key.clone(),
                    value: value.clone(),
                    reason: e.0,
                };
                match key.as_str() {
                "tickTime" => config.tick_time_ms = num(&value).map_err(bad)?,
                "initLimit" => config.init_limit = num(&value).map_err(bad)?,
                "syncLimit" => config.sync_limit = num(&value).map_err(bad)?,
                "dataDir" => config.data_dir = PathBuf::from(&value),
                "dataLogDir" => {
                    config.data_log_dir = PathBuf::from(&value);
                    data_log_dir_set = true;
                }
                "clientPort" => {
                    config.client_port = num(&value).map_err(bad)?;
                    config.client_port_set = true;
                }
                "clientPortAddress" => {
                    config.client_port_address = ip(&value).map_err(bad)?
                }
                "maxClientCnxns" => config.max_client_cnxns = num(&value).map_err(bad)?,
                "minSessionTimeout" => config.min_session_timeout_ms = num(&value).map_err(bad)?,
                "maxSessionTimeout" => config.max_session_timeout_ms = num(&value).map_err(bad)?,
                "snapCount" => config.snap_count = num(&value).map_err(bad)?,
                "preAllocSize" => config.pre_alloc_size_kb = num(&value).map_err(bad)?,
                "autopurge.snapRetainCount" => {
                    config.autopurge_snap_retain_count = num(&value).map_err(bad)?
                }
                "autopurge.purgeInterval" => {
                    config.autopurge_purge_interval_hours = num(&value).map_err(bad)?
                }
                "forceSync" => config.force_sync = boolean(&value).map_err(bad)?,
                "4lw.commands.whitelist" => {
                    config.four_letter_words =
                        parse_four_letter_words(&value).map_err(|e| bad(ValueError(e)))?
                }
                "walBackend" => {
                    config.wal_backend = value
                        .parse()
                        .map_err(|e: String| bad(ValueError(e)))?
                }
                "fsync.warningthresholdms" | "zookeeper.fsync.warningthresholdms" => {
                    config.fsync_warning_ms = num(&value).map_err(bad)?
                }
                "batch.maxTxns" => config.batch.max_txns = at_least_one(&value).map_err(bad)?,
                "batch.maxBytes" => config.batch.max_bytes = at_least_one(&value).map_err(bad)?,
                "batch.maxDelayMicros" => {
                    config.batch.max_delay_us = batch_delay_us(&value).map_err(bad)?
                }
                "globalOutstandingLimit" => {
                    config.global_outstanding_limit = num(&value).map_err(bad)?
                }
                "jute.maxbuffer" => config.jute_max_buffer_bytes = num(&value).map_err(bad)?,
                "localSessionsEnabled" => config.local_sessions = boolean(&value).map_err(bad)?,
                "localSessionsUpgradingEnabled" => {
                    config.upgrade_local_sessions = boolean(&value).map_err(bad)?
                }
                "readonlymode.enabled" | "zookeeper.readonlymode.enabled" => {
                    config.read_only_mode = boolean(&value).map_err(bad)?
                }
                "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                    config.extended_types = boolean(&value).map_err(bad)?
                }
                "znode.container.checkIntervalMs" => {
                    config.container_check_interval_ms = num(&value).map_err(bad)?
                }
                "DigestAuthenticationProvider.superDigest"
                | "zookeeper.DigestAuthenticationProvider.superDigest" => {
                    if !value.contains(':') {
                        return Err(bad(ValueError("expected user:base64digest".into())));
                    }
                    config.super_digest = Some(value.clone());
                }
                "admin.enableServer" | "zookeeper.admin.enableServer" => {
                    config.admin_enabled = boolean(&value).map_err(bad)?
                }
                "admin.serverAddress" | "zookeeper.admin.serverAddress" => {
                    config.admin_address = ip(&value).map_err(bad)?
                }
                "admin.serverPort" | "zookeeper.admin.serverPort" => {
                    config.admin_port = num(&value).map_err(bad)?
                }
                "admin.forceHttps" | "zookeeper.admin.forceHttps" => {
                    config.admin_force_https = boolean(&value).map_err(bad)?
                }
                "admin.needClientAuth" | "zookeeper.admin.needClientAuth" => {
                    config.admin_need_client_auth = boolean(&value).map_err(bad)?
                }
                "admin.commandURL" | "zookeeper.admin.commandURL" => {
                    if !value.starts_with('/') {
                        return Err(bad(ValueError("must start with /".into())));
                    }
                    config.admin_command_url = value.trim_end_matches('/').to_owned();
                    if config.admin_command_url.is_empty() {
                        return Err(bad(ValueError("must not be just /".into())));
                    }
                }
                "metricsProvider.className" => {
                    config.metrics_enabled = !value.ends_with(".NullMetricsProvider")
                }
                "metricsProvider.httpPort" => config.metrics_port = num(&value).map_err(bad)?,
                "metricsProvider.httpHost" => {
                    config.metrics_address = ip(&value).map_err(bad)?
                }
                "slowRequest.thresholdMs" => config.slow_request_ms = num(&value).map_err(bad)?,
                "peerType" => {
                    config.peer_type_observer = match value.as_str() {
                        "observer" => true,
                        "participant" => false,
                        _ => {
                            return Err(bad(ValueError(
                                "peerType is observer or participant".into(),
                            )))
                        }
                    }
                }
                "secureClientPort" => config.secure_client_port = Some(num(&value).map_err(bad)?),
                "secureClientPortAddress" => {
                    config.secure_client_port_address = Some(ip(&value).map_err(bad)?)
                }
                "sslQuorum" => config.ssl_quorum = boolean(&value).map_err(bad)?,
                k if k.starts_with("ssl.") || k.starts_with("zookeeper.ssl.") => {
                    let k = k.strip_prefix("zookeeper.").unwrap_or(k);
                    config.ssl.insert(k.to_owned(), value.clone());
                }
                "quorum.auth.enableSasl" => config.quorum_sasl = boolean(&value).map_err(bad)?,
                "quorum.auth.learnerRequireSasl" => {
                    config.quorum_learner_require_sasl = boolean(&value).map_err(bad)?
                }
                "quorum.auth.serverRequireSasl" => {
                    config.quorum_server_require_sasl = boolean(&value).map_err(bad)?
                }
                "quorum.auth.learner.saslLoginContext" => {
                    config.quorum_learner_login_context = value.clone()
                }
                "quorum.auth.server.saslLoginContext" => {
                    config.quorum_server_login_context = value.clone()
                }
                "java.security.auth.login.config" => {
                    config.jaas_config = Some(PathBuf::from(&value))
                }
                "sasl.serverconfig" | "zookeeper.sasl.serverconfig" => {
                    config.sasl_server_section = value.clone()
                }
                "SASLAuthenticationProvider.superPassword"
                | "zookeeper.SASLAuthenticationProvider.superPassword" => {
                    config.sasl_super_password = Some(value.clone())
                }
                k if k.strip_prefix("zookeeper.").unwrap_or(k) == "superUser"
                    || k.strip_prefix("zookeeper.").unwrap_or(k).starts_with("superUser.") =>
                {
                    config.sasl_super_users.push(value.clone())
                }
                "X509AuthenticationProvider.superUser"
                | "zookeeper.X509AuthenticationProvider.superUser" => {
                    config.x509_super_user = Some(value.clone())
                }
                "enforce.auth.enabled" | "zookeeper.enforce.auth.enabled" => {
                    config.enforce_auth_enabled = boolean(&value).map_err(bad)?
                }
                "enforce.auth.schemes" | "zookeeper.enforce.auth.schemes" => {
                    config.enforce_auth_schemes = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                "sessionRequireClientSASLAuth" | "zookeeper.sessionRequireClientSASLAuth" => {
                    config.session_require_sasl = boolean(&value).map_err(bad)?
                }
                "allowSaslFailedClients" | "zookeeper.allowSaslFailedClients" => {
                    config.allow_sasl_failed_clients = boolean(&value).map_err(bad)?
                }
                "netty.server.outstandingHandshake.limit"
                | "zookeeper.netty.server.outstandingHandshake.limit" => {
                    let limit: i64 = num(&value).map_err(bad)?;
                    config.tls_handshake_limit = limit.max(0) as usize;
                }
                k if k.starts_with("authProvider.") || k.starts_with("zookeeper.authProvider.") => {
                    if !BUILT_IN_AUTH_PROVIDERS.contains(&value.as_str()) {
                        warnings.push(Warning(format!(
                            "{origin}:{line}: {key}: the provider {value} cannot be loaded by rzk; ignored (rzk has ip, digest, x509 and sasl built in)"
                        )));
                    }
                }
                k if k.starts_with("server.") => {
                    let id = k["server.".len()..].parse::<u64>().map_err(|_| {
                        bad(ValueError(format!(
                            "the server id after server. must be a number, not {:?}",
                            &k["server.".len()..]
                        )))
                    })?;
                    servers.push((line, key.clone()));
                    config.servers.push((line, id, value.clone()));
                }
                // Quorums counted another way than by majority must not run as majorities.
                k if k.starts_with("group.") || k.starts_with("weight.") => {
                    return Err(ConfigError::Invalid(format!(
                        "{origin}:{line}: {key}: hierarchical quorums (group.N, weight.N) are not supported: remove them to run a majority quorum"
                    )))
                }
                "standaloneEnabled" => config.standalone_enabled = boolean(&value).map_err(bad)?,
                "quorumListenOnAllIPs" => {
                    config.quorum_listen_on_all_ips = boolean(&value).map_err(bad)?
                }
                "electionPortBindRetry" | "zookeeper.electionPortBindRetry" => {
                    config.election_port_bind_retry = num(&value).map_err(bad)?
                }
                _ if jvm => {}
                k if JVM_ONLY_PREFIXES.iter().any(|p| k.starts_with(p)) => warnings.push(Warning(
                    format!("{origin}:{line}: {key} applies to the JVM server only; ignored"),
                )),
                _ => warnings.push(Warning(format!(
                    "{origin}:{line}: unknown key {key}; ignored (ZooKeeper would set it as system property zookeeper.{key})"
                ))),
            }
            }
        }
        // One listed server runs standalone, as ZooKeeper does, unless standaloneEnabled=false
        // makes it an ensemble of one.
        if let ([(line, key)], true) = (servers.as_slice(), config.standalone_enabled) {
            warnings.push(Warning(format!(
                "{origin}:{line}: {key}: one server listed; running standalone"
            )));
        }
        if !data_log_dir_set {
            config.data_log_dir = config.data_dir.clone();
        }
        config.validate()?;
        Ok((config, warnings))
    }

    /// The schemes a connection must have authenticated with before its requests are served
    /// (empty: none), as ZooKeeper's AuthenticationHelper decides them.
    pub fn enforced_auth_schemes(&self) -> Vec<String> {
        if self.session_require_sasl {
            vec!["sasl".to_owned()]
        } else if self.enforce_auth_enabled {
            self.enforce_auth_schemes.clone()
        } else {
            Vec::new()
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.enforce_auth_enabled && !self.session_require_sasl {
            if self.enforce_auth_schemes.is_empty() {
                return Err(ConfigError::Invalid(
                    "enforce.auth.enabled is true: enforce.auth.schemes must name the schemes"
                        .into(),
                ));
            }
            if let Some(unknown) = self
                .enforce_auth_schemes
                .iter()
                .find(|s| !["ip", "digest", "x509", "sasl"].contains(&s.as_str()))
            {
                return Err(ConfigError::Invalid(format!(
                    "enforce.auth.schemes: authentication scheme {unknown} is not available (rzk has ip, digest, x509 and sasl)"
                )));
            }
        }
        if self.tick_time_ms == 0 {
            return Err(ConfigError::Invalid("tickTime must be positive".into()));
        }
        if self.jute_max_buffer_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "jute.maxbuffer below 1024 bytes cannot carry a connect request".into(),
            ));
        }
        self.batch.check().map_err(|e| {
            ConfigError::Invalid(format!("batch.maxTxns/maxBytes/maxDelayMicros: {e}"))
        })?;
        let (min, max) = (self.min_session_timeout(), self.max_session_timeout());
        if min > max {
            return Err(ConfigError::Invalid(format!(
                "minSessionTimeout ({min}) must not exceed maxSessionTimeout ({max})"
            )));
        }
        Ok(())
    }

    /// -1 means "2 × tickTime", as in ZooKeeper.
    pub fn min_session_timeout(&self) -> i32 {
        match self.min_session_timeout_ms {
            -1 => 2 * self.tick_time_ms as i32,
            v => v,
        }
    }

    /// -1 means "20 × tickTime", as in ZooKeeper.
    pub fn max_session_timeout(&self) -> i32 {
        match self.max_session_timeout_ms {
            -1 => 20 * self.tick_time_ms as i32,
            v => v,
        }
    }

    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::new(self.client_port_address, self.client_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_zookeeper_config_with_jvm_keys() {
        let text = "\
# a zoo.cfg written for Apache ZooKeeper
tickTime=500
dataDir=/tmp/zk
clientPort = 2182
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
admin.serverPort=8081
4lw.commands.whitelist=ruok, mntr
DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=
mystery.key=1
";
        let (config, warnings) = Config::from_text(text, "zoo.cfg").unwrap();
        assert_eq!(config.tick_time_ms, 500);
        assert_eq!(config.client_port, 2182);
        assert_eq!(config.min_session_timeout(), 1000);
        assert_eq!(config.max_session_timeout(), 10000);
        assert_eq!(config.data_log_dir, PathBuf::from("/tmp/zk"));
        assert_eq!(
            config.four_letter_words,
            vec![FourLetterWord::Ruok, FourLetterWord::Mntr]
        );
        assert!(config.super_digest.is_some());
        assert_eq!(config.admin_port, 8081);
        assert_eq!(warnings.len(), 2);
        assert!(warnings[1].0.contains("zoo.cfg:9: unknown key mystery.key"));
    }

    #[test]
    fn admin_and_metrics_keys() {
        let (config, _) = Config::from_text("tickTime=2000\n", "zoo.cfg").unwrap();
        assert!(config.admin_enabled && config.metrics_enabled);
        assert_eq!(config.admin_address, IpAddr::from([0, 0, 0, 0]));
        assert_eq!((config.admin_port, config.metrics_port), (8080, 7000));
        let text = "admin.enableServer=false\nadmin.commandURL=/cmds/\n\
            metricsProvider.className=org.apache.zookeeper.metrics.impl.NullMetricsProvider\n\
            metricsProvider.httpPort=7001\nmetricsProvider.httpHost=127.0.0.2\n";
        let (config, warnings) = Config::from_text(text, "zoo.cfg").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(!config.admin_enabled && !config.metrics_enabled);
        assert_eq!(config.admin_command_url, "/cmds");
        assert_eq!(config.metrics_port, 7001);
        assert_eq!(config.metrics_address, IpAddr::from([127, 0, 0, 2]));
        let err = Config::from_text("admin.commandURL=cmds\n", "zoo.cfg").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("zoo.cfg:1: bad value for admin.commandURL"));
    }

    #[test]
    fn one_listed_server_stays_standalone_and_more_are_an_ensemble() {
        let base = "tickTime=2000\ndataDir=/tmp/zk\n";
        let (_, warnings) = Config::from_text(base, "zoo.cfg").unwrap();
        assert!(warnings.is_empty());
        let one = format!("{base}server.1=127.0.0.1:2888:3888\n");
        let (config, warnings) = Config::from_text(&one, "zoo.cfg").unwrap();
        assert!(warnings[0]
            .0
            .contains("zoo.cfg:3: server.1: one server listed; running standalone"));
        assert_eq!(config.servers.len(), 1);
        let three = format!(
            "{base}server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\n\
             server.3=127.0.0.3:2888:3888:observer\npeerType=observer\n"
        );
        let (config, warnings) = Config::from_text(&three, "zoo.cfg").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            config.servers,
            vec![
                (3, 1, "127.0.0.1:2888:3888".to_owned()),
                (4, 2, "127.0.0.2:2888:3888".to_owned()),
                (5, 3, "127.0.0.3:2888:3888:observer".to_owned()),
            ]
        );
        assert!(config.peer_type_observer);
        let err = Config::from_text(&format!("{base}server.x=127.0.0.1:1:2\n"), "zoo.cfg")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("zoo.cfg:3: bad value for server.x"),
            "{err}"
        );
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let err = Config::from_text("tickTime=2000\nclientPort=abc\n", "zoo.cfg").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("zoo.cfg:2: bad value for clientPort"),
            "{text}"
        );
    }

    #[test]
    fn batching_keys() {
        let (config, warnings) = Config::from_text("tickTime=2000\n", "zoo.cfg").unwrap();
        assert!(warnings.is_empty());
        assert_eq!(config.batch, BatchLimits::default());
        assert_eq!(config.batch.max_delay_us, 0, "an idle server must not wait");

        let text = "batch.maxTxns=64\nbatch.maxBytes = 65536\nbatch.maxDelayMicros: 250\n";
        let (config, warnings) = Config::from_text(text, "zoo.cfg").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            config.batch,
            BatchLimits {
                max_txns: 64,
                max_bytes: 65536,
                max_delay_us: 250,
            }
        );
    }

    #[test]
    fn bad_batching_values_name_key_and_line() {
        for (text, key) in [
            ("tickTime=2000\nbatch.maxTxns=0\n", "batch.maxTxns"),
            ("tickTime=2000\nbatch.maxTxns=-3\n", "batch.maxTxns"),
            ("tickTime=2000\nbatch.maxBytes=0\n", "batch.maxBytes"),
            ("tickTime=2000\nbatch.maxBytes=4MiB\n", "batch.maxBytes"),
            (
                "tickTime=2000\nbatch.maxDelayMicros=1000001\n",
                "batch.maxDelayMicros",
            ),
            (
                "tickTime=2000\nbatch.maxDelayMicros=1ms\n",
                "batch.maxDelayMicros",
            ),
        ] {
            let err = Config::from_text(text, "zoo.cfg").unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("zoo.cfg:2: bad value for {key}")),
                "{text:?}: {err}"
            );
        }
        let (config, _) = Config::from_text("batch.maxDelayMicros=1000000\n", "zoo.cfg").unwrap();
        assert_eq!(config.batch.max_delay_us, 1_000_000);
    }

    #[test]
    fn validate_rejects_batching_limits_set_by_hand() {
        let mut config = Config::default();
        config.batch.max_txns = 0;
        assert!(config.validate().is_err());
    }

    #[test]
    fn properties_separators() {
        assert_eq!(parse_line("a: b"), Some(("a".into(), "b".into())));
        assert_eq!(parse_line("a b"), Some(("a".into(), "b".into())));
        assert_eq!(parse_line("  ! comment"), None);
        assert_eq!(parse_line("k="), Some(("k".into(), "".into())));
    }

    #[test]
    fn jvm_flags_set_system_properties_under_zoo_cfg() {
        let flags = "-Xmx2g -Dlog4j.configuration=file:x -Djava.security.auth.login.config=/etc/jaas.conf \
                     -Dzookeeper.superUser=admin -Dzookeeper.sessionRequireClientSASLAuth=true \
                     -Dzookeeper.ssl.keyStore.location=/jvm.p12 -Dzookeeper.authProvider.1=com.example.Custom";
        let text = "ssl.keyStore.location=/cfg.p12\nsecureClientPort=2281\n";
        let (config, warnings) =
            Config::from_sources(Config::file_base(), flags, text, "zoo.cfg").unwrap();
        assert_eq!(config.jaas_config, Some(PathBuf::from("/etc/jaas.conf")));
        assert_eq!(config.sasl_super_users, vec!["admin".to_string()]);
        assert_eq!(config.enforced_auth_schemes(), vec!["sasl".to_string()]);
        // zoo.cfg wins over the JVM flag, as in ZooKeeper's ZKConfig.
        assert_eq!(config.ssl.get("ssl.keyStore.location").unwrap(), "/cfg.p12");
        assert_eq!(config.secure_client_port, Some(2281));
        // JVM-only flags say nothing; a provider rzk cannot load does.
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].0.contains("com.example.Custom"), "{warnings:?}");
    }

    #[test]
    fn enforced_authentication_needs_known_schemes() {
        let err = Config::from_text("enforce.auth.enabled=true\n", "zoo.cfg")
            .unwrap_err()
            .to_string();
        assert!(err.contains("enforce.auth.schemes"), "{err}");
        let err = Config::from_text(
            "enforce.auth.enabled=true\nenforce.auth.schemes=sasl,kerberos\n",
            "zoo.cfg",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("kerberos"), "{err}");
        let (config, _) = Config::from_text(
            "enforce.auth.enabled=true\nenforce.auth.schemes=x509, sasl\n",
            "zoo.cfg",
        )
        .unwrap();
        assert_eq!(config.enforced_auth_schemes(), vec!["x509", "sasl"]);
    }
}
