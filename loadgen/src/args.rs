//! Command-line flags and their validation into a [`Plan`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::tls::TlsPlan;

/// Flags of `rzk bench`. Flatten into a clap command (`Bench(BenchArgs)` in a
/// `#[derive(Subcommand)]` enum) and pass to [`crate::run_cli`].
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Connect string "host:port,host:port"; sessions are spread over the hosts round-robin
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub hosts: String,
    /// Client sessions (one TCP connection each)
    #[arg(long, default_value_t = 1)]
    pub sessions: usize,
    /// Pipelined requests outstanding per session
    #[arg(long, default_value_t = 1)]
    pub inflight: usize,
    /// Measured seconds (default 10 when --ops is not given)
    #[arg(long, value_name = "SECS", conflicts_with = "ops")]
    pub duration: Option<f64>,
    /// Measured operations instead of a duration
    #[arg(long, value_name = "N")]
    pub ops: Option<u64>,
    /// Seconds of unmeasured load before the measured window
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub warmup: f64,
    /// Bytes of data per create/set
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub value_size: usize,
    /// Nodes pre-created under the run's base path, read and written by set/get/exists/mixed/multi
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub keys: usize,
    /// create | set | get | exists | mixed:READ_PERCENT | multi
    #[arg(long, default_value = "set", value_parser = Workload::parse)]
    pub workload: Workload,
    /// setData ops per multi (workload multi)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub multi_ops: usize,
    /// Latency mode: 1 session, 1 request in flight
    #[arg(long, conflicts_with_all = ["sessions", "inflight"])]
    pub closed_loop: bool,
    /// Client threads driving the sessions (default: 1 per 8 sessions, at most 2)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Session timeout asked of the server, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub session_timeout: i32,
    /// A request unanswered this long counts as unanswered and its session is dropped
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub request_timeout: f64,
    /// Bound on deleting the run's nodes afterwards
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub cleanup_timeout: f64,
    /// Leave the run's nodes in place
    #[arg(long)]
    pub keep: bool,
    /// Print the report as JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file (for --plot-compare)
    #[arg(long, value_name = "FILE.json")]
    pub save: Option<PathBuf>,
    /// Draw the latency-percentile curve into this SVG file
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Draw saved JSON reports on one chart (with --plot) instead of running
    #[arg(long, value_name = "FILE.json", num_args = 1..)]
    pub plot_compare: Vec<PathBuf>,
    /// Name of this run in the JSON and the plot legend
    #[arg(long)]
    pub label: Option<String>,
    /// Server process to measure: CPU time per op over the measured window, peak RSS
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// rzk's Prometheus endpoint (e.g. http://127.0.0.1:7000/metrics): report the mean time
    /// requests spent in each pipeline stage over the measured window
    #[arg(long, value_name = "URL")]
    pub server_metrics: Option<String>,
    /// Connect with TLS (to ZooKeeper's secureClientPort)
    #[arg(long)]
    pub tls: bool,
    /// PEM file of the certificates to trust: the CA of the server's (required with --tls)
    #[arg(long, value_name = "PEM", requires = "tls")]
    pub tls_ca: Option<PathBuf>,
    /// PEM certificate chain to present as the client (with --tls-key)
    #[arg(long, value_name = "PEM", requires_all = ["tls", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (unencrypted PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "PEM", requires_all = ["tls", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
    /// Name the server's certificate must carry (default: the host of each address; an IP
    /// address matches an IP subjectAltName)
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub tls_server_name: Option<String>,
}

/// What each request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Creates fresh persistent nodes.
    Create,
    /// setData on random pre-created keys.
    Set,
    /// getData on random keys.
    Get,
    /// exists on random keys.
    Exists,
    /// getData with this probability in percent, setData otherwise.
    Mixed { read_percent: u8 },
    /// A multi of `--multi-ops` setData ops on random keys.
    Multi,
}

impl Workload {
    pub fn parse(text: &str) -> Result<Workload, String> {
        Ok(match text {
            "create" => Workload::Create,
            "set" => Workload::Set,
            "get" => Workload::Get,
            "exists" => Workload::Exists,
            "multi" => Workload::Multi,
            other => {
                let Some(pct) = other.strip_prefix("mixed:") else {
                    return Err(format!(
                        "unknown workload {other:?}: expected create, set, get, exists, \
                         mixed:READ_PERCENT or multi"
                    ));
                };
                match pct.parse::<u8>() {
                    Ok(p) if p <= 100 => Workload::Mixed { read_percent: p },
                    _ => {
                        return Err(format!(
                            "mixed:{pct}: READ_PERCENT must be an integer from 0 to 100"
                        ))
                    }
                }
            }
        })
    }

    /// Whether the workload works on the pre-created keys.
    pub fn uses_keys(self) -> bool {
        !matches!(self, Workload::Create)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::Create => f.write_str("create"),
            Workload::Set => f.write_str("set"),
            Workload::Get => f.write_str("get"),
            Workload::Exists => f.write_str("exists"),
            Workload::Mixed { read_percent } => write!(f, "mixed:{read_percent}"),
            Workload::Multi => f.write_str("multi"),
        }
    }
}

/// When the measured window ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    After(Duration),
    Ops(u64),
}

/// Validated flags.
#[derive(Debug, Clone)]
pub struct Plan {
    pub hosts: Vec<String>,
    pub sessions: usize,
    pub inflight: usize,
    pub threads: usize,
    pub stop: Stop,
    pub warmup: Duration,
    pub value_size: usize,
    pub keys: usize,
    pub workload: Workload,
    pub multi_ops: usize,
    pub session_timeout_ms: i32,
    pub request_timeout: Duration,
    pub cleanup_timeout: Duration,
    pub keep: bool,
    pub label: String,
    pub server_pid: Option<u32>,
    pub server_metrics: Option<String>,
    /// None: plain TCP.
    pub tls: Option<TlsPlan>,
}

/// The largest value accepted: ZooKeeper's default jute.maxbuffer less room for the path and
/// headers. A multi carries `multi_ops` values in one frame.
pub const MAX_FRAME_VALUE_BYTES: usize = rzk_proto::JUTE_MAXBUFFER_DEFAULT_BYTES - 1024;

fn seconds(flag: &str, v: f64, allow_zero: bool) -> Result<Duration, String> {
    if !v.is_finite() || v < 0.0 || (!allow_zero && v == 0.0) || v > 86_400.0 {
        return Err(format!(
            "--{flag} {v}: expected {} seconds up to 86400",
            if allow_zero {
                "0 or more"
            } else {
                "more than 0"
            }
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Splits a connect string into host:port items. A chroot suffix is refused: the run's base
/// path is absolute.
pub fn parse_hosts(text: &str) -> Result<Vec<String>, String> {
    if text.contains('/') {
        return Err(format!(
            "--hosts {text:?}: a chroot suffix is not supported"
        ));
    }
    let mut hosts = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((host, port)) = item.rsplit_once(':') else {
            return Err(format!("--hosts: {item:?} has no :port"));
        };
        if host.is_empty() {
            return Err(format!("--hosts: {item:?} has no host"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("--hosts: {item:?}: bad port")),
        }
        hosts.push(item.to_owned());
    }
    if hosts.is_empty() {
        return Err("--hosts: no host given".into());
    }
    Ok(hosts)
}

impl BenchArgs {
    /// Checks the flags of a run (not of `--plot-compare`).
    pub fn plan(&self) -> Result<Plan, String> {
        let hosts = parse_hosts(&self.hosts)?;
        let (sessions, inflight) = if self.closed_loop {
            (1, 1)
        } else {
            (self.sessions, self.inflight)
        };
        if sessions == 0 || sessions > 10_000 {
            return Err(format!("--sessions {sessions}: expected 1 to 10000"));
        }
        if inflight == 0 || inflight > 100_000 {
            return Err(format!("--inflight {inflight}: expected 1 to 100000"));
        }
        let stop = match (self.duration, self.ops) {
            (Some(_), Some(_)) => return Err("give --duration or --ops, not both".into()),
            (_, Some(0)) => return Err("--ops 0: expected at least 1".into()),
            (_, Some(n)) => Stop::Ops(n),
            (Some(d), None) => Stop::After(seconds("duration", d, false)?),
            (None, None) => Stop::After(Duration::from_secs(10)),
        };
        let warmup = seconds("warmup", self.warmup, true)?;
        let request_timeout = seconds("request-timeout", self.request_timeout, false)?;
        let cleanup_timeout = seconds("cleanup-timeout", self.cleanup_timeout, true)?;
        let threads = match self.threads {
            Some(0) => return Err("--threads 0: expected at least 1".into()),
            Some(t) => t.min(sessions),
            None => sessions.div_ceil(8).clamp(1, 2),
        };
        if self.workload.uses_keys() && self.keys == 0 {
            return Err(format!(
                "--workload {}: needs --keys of 1 or more",
                self.workload
            ));
        }
        if self.keys > 10_000_000 {
            return Err(format!("--keys {}: at most 10000000", self.keys));
        }
        if self.workload == Workload::Multi && !(1..=1000).contains(&self.multi_ops) {
            return Err(format!(
                "--multi-ops {}: expected 1 to 1000",
                self.multi_ops
            ));
        }
        let values_per_frame = if self.workload == Workload::Multi {
            self.multi_ops
        } else {
            1
        };
        if self.value_size.saturating_mul(values_per_frame) > MAX_FRAME_VALUE_BYTES {
            return Err(format!(
                "--value-size {}: a request must stay under ZooKeeper's 1 MiB jute.maxbuffer \
                 (at most {} bytes of values per request)",
                self.value_size, MAX_FRAME_VALUE_BYTES
            ));
        }
        if self.session_timeout <= 0 {
            return Err("--session-timeout: expected more than 0 ms".into());
        }
        if !self.plot_compare.is_empty() {
            return Err("--plot-compare draws saved reports and runs nothing".into());
        }
        let tls = if self.tls {
            let Some(ca) = self.tls_ca.clone() else {
                return Err("--tls needs --tls-ca PEM (the certificates to trust)".into());
            };
            if let Some(name) = &self.tls_server_name {
                if name.is_empty() {
                    return Err("--tls-server-name: empty".into());
                }
            }
            Some(TlsPlan {
                ca,
                client_cert: self.tls_cert.clone().zip(self.tls_key.clone()),
                server_name: self.tls_server_name.clone(),
            })
        } else {
            None
        };
        let label = match &self.label {
            Some(l) => l.clone(),
            None => format!("{} {}x{}", self.workload, sessions, inflight),
        };
        Ok(Plan {
            hosts,
            sessions,
            inflight,
            threads,
            stop,
            warmup,
            value_size: self.value_size,
            keys: if self.workload.uses_keys() {
                self.keys
            } else {
                0
            },
            workload: self.workload,
            multi_ops: self.multi_ops,
            session_timeout_ms: self.session_timeout,
            request_timeout,
            cleanup_timeout,
            keep: self.keep,
            label,
            server_pid: self.server_pid,
            server_metrics: self.server_metrics.clone(),
            tls,
        })
    }
}

/// Parses `rzk bench`'s flags from an argument list whose first item is the program name.
pub fn parse_args<I, T>(args: I) -> Result<BenchArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }
    <Cli as clap::Parser>::try_parse_from(args).map(|c| c.args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let mut v = vec!["bench"];
        v.extend_from_slice(args);
        parse_args(v).map_err(|e| e.to_string())?.plan()
    }

    #[test]
    fn defaults() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.hosts, vec!["127.0.0.1:2181"]);
        assert_eq!((p.sessions, p.inflight, p.threads), (1, 1, 1));
        assert_eq!(p.stop, Stop::After(Duration::from_secs(10)));
        assert_eq!(p.workload, Workload::Set);
        assert_eq!((p.value_size, p.keys), (100, 1000));
        assert_eq!(p.label, "set 1x1");
    }

    #[test]
    fn workloads_parse_and_print_back() {
        for w in [
            "create",
            "set",
            "get",
            "exists",
            "multi",
            "mixed:0",
            "mixed:90",
            "mixed:100",
        ] {
            assert_eq!(Workload::parse(w).unwrap().to_string(), w);
        }
        for bad in ["mixed:101", "mixed:", "mixed:-1", "mixed:x", "delete", ""] {
            assert!(Workload::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_are_checked() {
        assert_eq!(
            parse_hosts("127.0.0.1:1, localhost:2,").unwrap(),
            vec!["127.0.0.1:1", "localhost:2"]
        );
        assert_eq!(parse_hosts("[::1]:2181").unwrap(), vec!["[::1]:2181"]);
        for bad in ["", ",", "host", ":1", "h:0", "h:99999", "h:1/chroot"] {
            assert!(parse_hosts(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn closed_loop_means_one_session_one_in_flight() {
        let p = plan(&["--closed-loop", "--workload", "get"]).unwrap();
        assert_eq!((p.sessions, p.inflight), (1, 1));
        assert!(plan(&["--closed-loop", "--sessions", "4"]).is_err());
        assert!(plan(&["--closed-loop", "--inflight", "4"]).is_err());
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        for (args, needle) in [
            (&["--sessions", "0"][..], "--sessions"),
            (&["--inflight", "0"][..], "--inflight"),
            (&["--duration", "0"][..], "--duration"),
            (&["--duration=-1"][..], "--duration"),
            (&["--duration", "nan"][..], "--duration"),
            (&["--ops", "0"][..], "--ops"),
            (&["--duration", "1", "--ops", "5"][..], "--ops"),
            (&["--warmup=-1"][..], "--warmup"),
            (&["--keys", "0"][..], "--keys"),
            (&["--value-size", "2000000"][..], "--value-size"),
            (
                &["--workload", "multi", "--multi-ops", "0"][..],
                "--multi-ops",
            ),
            (
                &[
                    "--workload",
                    "multi",
                    "--multi-ops",
                    "3",
                    "--value-size",
                    "400000",
                ][..],
                "--value-size",
            ),
            (&["--threads", "0"][..], "--threads"),
            (&["--hosts", "nohost"][..], "--hosts"),
            (&["--workload", "mixed:200"][..], "mixed"),
            (&["--session-timeout", "0"][..], "--session-timeout"),
        ] {
            let err = plan(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn create_needs_no_keys_and_threads_follow_sessions() {
        let p = plan(&["--workload", "create", "--keys", "0"]).unwrap();
        assert_eq!(p.keys, 0);
        let p = plan(&["--sessions", "16", "--inflight", "64", "--ops", "100"]).unwrap();
        assert_eq!((p.threads, p.stop), (2, Stop::Ops(100)));
        let p = plan(&["--sessions", "3", "--threads", "8"]).unwrap();
        assert_eq!(p.threads, 3);
    }

    #[test]
    fn tls_flags() {
        assert_eq!(plan(&[]).unwrap().tls, None);
        let p = plan(&["--tls", "--tls-ca", "ca.crt"]).unwrap();
        assert_eq!(
            p.tls,
            Some(TlsPlan {
                ca: "ca.crt".into(),
                client_cert: None,
                server_name: None
            })
        );
        let p = plan(&[
            "--tls",
            "--tls-ca",
            "ca.crt",
            "--tls-cert",
            "c.crt",
            "--tls-key",
            "c.key",
            "--tls-server-name",
            "zk1",
        ])
        .unwrap();
        let tls = p.tls.unwrap();
        assert_eq!(tls.client_cert, Some(("c.crt".into(), "c.key".into())));
        assert_eq!(tls.server_name.as_deref(), Some("zk1"));
        assert!(plan(&["--tls"]).unwrap_err().contains("--tls-ca"));
        // The other TLS flags mean nothing without --tls; a certificate needs its key.
        assert!(plan(&["--tls-ca", "ca.crt"]).is_err());
        assert!(plan(&["--tls", "--tls-ca", "a", "--tls-cert", "c.crt"]).is_err());
        assert!(plan(&["--tls", "--tls-ca", "a", "--tls-key", "c.key"]).is_err());
    }

    #[test]
    fn plot_compare_takes_several_files() {
        let a = parse_args([
            "bench",
            "--plot-compare",
            "a.json",
            "b.json",
            "--plot",
            "x.svg",
        ])
        .unwrap();
        assert_eq!(a.plot_compare.len(), 2);
        assert!(a.plan().is_err());
    }
}
