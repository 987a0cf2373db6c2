//! Goal: the load generator's framing, pipelining, pings, error counting, loss handling and
//! cleanup work over real sockets. Method: a tiny in-process ZooKeeper stand-in (std::net,
//! one thread per connection, a flat map of nodes) whose misbehaviour each test chooses.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rzk_proto::{
    decode_request, encode_reply, xid, ConnectRequest, ConnectResponse, ErrorCode, MultiOp,
    MultiResult, ReplyHeader, Request, Response, Stat,
};

#[derive(Clone, Default)]
struct Behaviour {
    /// Every Nth getData (counted over all connections) fails with NoAuth.
    fail_every_get: u64,
    /// getData is never answered.
    stall_gets: bool,
    /// exists is answered after this delay.
    delay_exists: Duration,
    /// A connection is dropped after this many benchmark requests.
    drop_after: Option<u64>,
    /// Session timeout granted.
    timeout_ms: Option<i32>,
}

#[derive(Default)]
struct Counters {
    gets: AtomicU64,
    pings: AtomicU64,
    closes: AtomicU64,
    max_batch: AtomicUsize,
    node_exists: AtomicU64,
}

struct Fake {
    port: u16,
    nodes: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn read_exact_or_stop(s: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> bool {
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < buf.len() {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            return false;
        }
        match s.read(&mut buf[got..]) {
            Ok(0) => return false,
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
    }
    true
}

fn stat(data_len: usize) -> Stat {
    Stat {
        data_length: data_len as i32,
        ..Stat::default()
    }
}

fn serve(
    mut s: TcpStream,
    session: i64,
    b: Behaviour,
    nodes: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    c: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut len = [0u8; 4];
    if !read_exact_or_stop(&mut s, &mut len, &stop) {
        return;
    }
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    if !read_exact_or_stop(&mut s, &mut body, &stop) {
        return;
    }
    let req = ConnectRequest::decode(&body).unwrap();
    let reply = ConnectResponse {
        protocol_version: 0,
        timeout_ms: b.timeout_ms.unwrap_or(req.timeout_ms),
        session_id: session,
        passwd: vec![0; 16],
        read_only: req.read_only,
    };
    s.write_all(&reply.encode_frame()).unwrap();
    let mut inbuf: Vec<u8> = Vec::new();
    let mut served = 0u64;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // Read what has arrived: everything the client pipelined lands in one batch.
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => inbuf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        let mut frames = Vec::new();
        let mut pos = 0;
        while inbuf.len() - pos >= 4 {
            let n = u32::from_be_bytes(inbuf[pos..pos + 4].try_into().unwrap()) as usize;
            if inbuf.len() - pos - 4 < n {
                break;
            }
            frames.push(inbuf[pos + 4..pos + 4 + n].to_vec());
            pos += 4 + n;
        }
        inbuf.drain(..pos);
        // Benchmark requests (getData) that arrived together.
        let gets = frames
            .iter()
            .filter(|f| f.len() >= 8 && f[4..8] == 4i32.to_be_bytes())
            .count();
        c.max_batch.fetch_max(gets, Ordering::SeqCst);
        let mut out = Vec::new();
        for f in frames {
            let (h, r) = decode_request(&f).unwrap();
            let mut err = ErrorCode::Ok;
            let mut close = false;
            let response = {
                let mut nodes = nodes.lock().unwrap();
                match r {
                    Request::Ping => {
                        c.pings.fetch_add(1, Ordering::SeqCst);
                        Response::Empty
                    }
                    Request::CloseSession => {
                        c.closes.fetch_add(1, Ordering::SeqCst);
                        close = true;
                        Response::Empty
                    }
                    Request::Create(cr) => {
                        if nodes.contains_key(&cr.path) {
                            c.node_exists.fetch_add(1, Ordering::SeqCst);
                            err = ErrorCode::NodeExists;
                        } else {
                            nodes.insert(cr.path.clone(), cr.data.unwrap_or_default());
                        }
                        Response::Create { path: cr.path }
                    }
                    Request::Delete { path, .. } => {
                        if nodes.remove(&path).is_none() {
                            err = ErrorCode::NoNode;
                        }
                        Response::Empty
                    }
                    Request::SetData { path, data, .. } => match nodes.get_mut(&path) {
                        Some(d) => {
                            *d = data.unwrap_or_default();
                            Response::Stat(stat(d.len()))
                        }
                        None => {
                            err = ErrorCode::NoNode;
                            Response::Empty
                        }
                    },
                    Request::GetData { path, .. } => {
                        if b.stall_gets {
                            continue;
                        }
                        let n = c.gets.fetch_add(1, Ordering::SeqCst) + 1;
                        if b.fail_every_get > 0 && n.rem_euclid(b.fail_every_get) == 0 {
                            err = ErrorCode::NoAuth;
                            Response::Empty
                        } else {
                            match nodes.get(&path) {
                                Some(d) => Response::GetData {
                                    data: Some(d.clone()),
                                    stat: stat(d.len()),
                                },
                                None => {
                                    err = ErrorCode::NoNode;
                                    Response::Empty
                                }
                            }
                        }
                    }
                    Request::Exists { path, .. } => {
                        let found = nodes.contains_key(&path);
                        drop(nodes);
                        thread::sleep(b.delay_exists);
                        if !found {
                            err = ErrorCode::NoNode;
                        }
                        Response::Stat(stat(0))
                    }
                    Request::Multi(ops) => Response::Multi(
                        ops.iter()
                            .map(|op| match op {
                                MultiOp::SetData { path, .. } if nodes.contains_key(path) => {
                                    MultiResult::SetData { stat: stat(0) }
                                }
                                _ => MultiResult::Error {
                                    err: ErrorCode::NoNode,
                                },
                            })
                            .collect(),
                    ),
                    Request::Sync { path } => Response::Sync { path },
                    other => panic!("the fake server does not expect {other:?}"),
                }
            };
            let header = ReplyHeader {
                xid: if h.xid == xid::PING { xid::PING } else { h.xid },
                zxid: 1,
                err: err.code(),
            };
            let response = if err == ErrorCode::Ok {
                response
            } else {
                Response::Empty
            };
            out.extend_from_slice(&encode_reply(header, &response));
            if h.xid > 0 {
                served += 1;
            }
            if close {
                let _ = s.write_all(&out);
                return;
            }
            if b.drop_after.is_some_and(|d| served >= d) {
                let _ = s.write_all(&out);
                return;
            }
        }
        if !out.is_empty() && s.write_all(&out).is_err() {
            return;
        }
    }
}

fn start(b: Behaviour) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let nodes: Arc<Mutex<HashMap<String, Vec<u8>>>> = Default::default();
    let counters: Arc<Counters> = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (nodes, counters, stop) = (nodes.clone(), counters.clone(), stop.clone());
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut session = 0x100;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_nodelay(true).unwrap();
                        session += 1;
                        let (b, n, c, st) =
                            (b.clone(), nodes.clone(), counters.clone(), stop.clone());
                        thread::spawn(move || serve(s, session, b, n, c, st));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
    }
    Fake {
        port,
        nodes,
        counters,
        stop,
    }
}

fn run(fake: &Fake, extra: &[&str]) -> rzk_loadgen::Report {
    let hosts = format!("127.0.0.1:{}", fake.port);
    let mut args = vec!["bench", "--hosts", &hosts, "--warmup", "0"];
    args.extend_from_slice(extra);
    let args = rzk_loadgen::parse_args(args).unwrap();
    rzk_loadgen::run(&args).unwrap()
}

#[test]
fn pipelined_gets_are_counted_exactly_with_errors_by_code() {
    let fake = start(Behaviour {
        fail_every_get: 10,
        ..Behaviour::default()
    });
    let r = run(
        &fake,
        &[
            "--workload",
            "get",
            "--sessions",
            "3",
            "--inflight",
            "8",
            "--ops",
            "600",
            "--keys",
            "50",
        ],
    );
    assert_eq!(r.ops, 540, "{r:#?}");
    assert_eq!(r.errors.get("NoAuth(-102)"), Some(&60));
    assert_eq!(r.errors.len(), 1);
    assert_eq!(
        (r.unanswered, r.sessions_lost, r.protocol_errors),
        (0, 0, 0)
    );
    assert_eq!(fake.counters.gets.load(Ordering::SeqCst), 600);
    // Each session had 8 requests on the wire at once.
    assert_eq!(fake.counters.max_batch.load(Ordering::SeqCst), 8);
    // Setup, 3 bench sessions and cleanup each closed their session.
    assert_eq!(fake.counters.closes.load(Ordering::SeqCst), 1 + 3 + 1);
    assert!(fake.nodes.lock().unwrap().is_empty(), "cleanup left nodes");
    assert!(r.throughput_ops_s > 0.0 && r.latency_us.p50 > 0);
    assert!(rzk_loadgen::format_report(&r).contains("ERRORS: NoAuth(-102) x60"));
}

#[test]
fn creates_are_unique_and_cleaned_up() {
    let fake = start(Behaviour::default());
    let r = run(
        &fake,
        &[
            "--workload",
            "create",
            "--sessions",
            "2",
            "--inflight",
            "4",
            "--duration",
            "0.3",
        ],
    );
    assert!(r.ops > 10, "{r:#?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(fake.counters.node_exists.load(Ordering::SeqCst), 0);
    assert!(fake.nodes.lock().unwrap().is_empty(), "cleanup left nodes");
    assert!(r.measured_s > 0.2 && r.measured_s < 5.0, "{}", r.measured_s);
}

#[test]
fn keep_leaves_the_nodes() {
    let fake = start(Behaviour::default());
    let r = run(
        &fake,
        &["--workload", "set", "--keys", "7", "--ops", "20", "--keep"],
    );
    assert_eq!(r.ops, 20);
    let nodes = fake.nodes.lock().unwrap();
    assert_eq!(nodes.len(), 8, "{nodes:?}");
    assert!(nodes.keys().all(|k| k.starts_with(&r.base_path)));
    assert!(nodes.values().filter(|v| v.len() == 100).count() == 7);
}

#[test]
fn mixed_and_multi_workloads() {
    let fake = start(Behaviour::default());
    let r = run(
        &fake,
        &[
            "--workload",
            "mixed:50",
            "--sessions",
            "2",
            "--inflight",
            "4",
            "--ops",
            "400",
            "--keys",
            "10",
        ],
    );
    assert_eq!(r.ops, 400);
    let (g, s) = (r.by_op["get"].ops, r.by_op["set"].ops);
    assert_eq!(g + s, 400);
    assert!(g > 100 && s > 100, "{g} gets, {s} sets");
    let r = run(
        &fake,
        &[
            "--workload",
            "multi",
            "--multi-ops",
            "5",
            "--ops",
            "50",
            "--keys",
            "10",
        ],
    );
    assert_eq!(r.ops, 50);
    assert!(r.errors.is_empty());
}

#[test]
fn stalled_requests_are_reported_as_unanswered() {
    let fake = start(Behaviour {
        stall_gets: true,
        ..Behaviour::default()
    });
    let start = Instant::now();
    let r = run(
        &fake,
        &[
            "--workload",
            "get",
            "--inflight",
            "4",
            "--ops",
            "100",
            "--request-timeout",
            "0.3",
        ],
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!((r.ops, r.unanswered, r.sessions_lost), (0, 4, 1), "{r:#?}");
    let table = rzk_loadgen::format_report(&r);
    assert!(table.contains("UNANSWERED: 4"), "{table}");
    assert!(table.contains("request timeout"), "{table}");
}

#[test]
fn a_dropped_connection_is_reported() {
    let fake = start(Behaviour {
        drop_after: Some(1500),
        ..Behaviour::default()
    });
    let started = Instant::now();
    let args = "--workload set --inflight 16 --duration 8 --keys 5";
    let r = run(&fake, &args.split(' ').collect::<Vec<_>>());
    // Setup's 5 creates and base count toward the first connection only; the bench session
    // is dropped after 1500 requests.
    assert_eq!(r.sessions_lost, 1, "{r:#?}");
    assert!(r.ops <= 1500 && r.ops >= 1500 - 16, "{}", r.ops);
    // Closed or reset, depending on whether unread requests were left in the server's socket.
    let p = &r.problems[0];
    assert!(
        p.contains("closed by the server") || p.contains("reset"),
        "{p}"
    );
    assert!(p.starts_with("session 0 "), "{p}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the run ends once every session is gone"
    );
}

#[test]
fn idle_sessions_ping_at_a_third_of_the_timeout() {
    let fake = start(Behaviour {
        delay_exists: Duration::from_millis(300),
        timeout_ms: Some(150),
        ..Behaviour::default()
    });
    let r = run(
        &fake,
        &[
            "--workload",
            "exists",
            "--closed-loop",
            "--ops",
            "3",
            "--keys",
            "2",
        ],
    );
    assert_eq!(r.ops, 3);
    assert!(r.latency_us.p50 >= 300_000, "{:?}", r.latency_us);
    let pings = fake.counters.pings.load(Ordering::SeqCst);
    // At most one ping is outstanding, and this fake answers it after the slow exists.
    assert!(pings >= 2, "{pings} pings");
}

#[test]
fn plot_compare_draws_saved_reports() {
    let fake = start(Behaviour::default());
    let dir = std::env::temp_dir().join(format!("rzk-loadgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b, svg) = (dir.join("a.json"), dir.join("b.json"), dir.join("c.svg"));
    for (path, label) in [(&a, "first"), (&b, "second")] {
        let hosts = format!("127.0.0.1:{}", fake.port);
        let args = rzk_loadgen::parse_args([
            "bench",
            "--hosts",
            &hosts,
            "--warmup",
            "0",
            "--ops",
            "200",
            "--keys",
            "5",
            "--label",
            label,
            "--json",
            "--save",
            path.to_str().unwrap(),
        ])
        .unwrap();
        rzk_loadgen::run_cli(&args).unwrap();
    }
    let args = rzk_loadgen::parse_args([
        "bench",
        "--plot-compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ])
    .unwrap();
    rzk_loadgen::run_cli(&args).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(text.matches("<polyline").count(), 2);
    assert!(text.contains("first: ") && text.contains("second: "));
    std::fs::remove_dir_all(&dir).unwrap();
}
