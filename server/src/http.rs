//! The two HTTP endpoints operators point tools at: the AdminServer (ZooKeeper's JSON
//! commands, admin.serverPort) and Prometheus `/metrics` (metricsProvider.httpPort). Each runs
//! on its own threads, so a slow scraper or a hung client can never hold up the request
//! pipeline.
//!
//! `/metrics` is served by tiny_http. The AdminServer has its own small HTTP/1.1 loop
//! (`admin_http` below: one request per connection, a thread per connection up to a cap)
//! because it may speak HTTPS (admin.forceHttps) and then needs the client certificate for
//! x509 authentication: TLS is rustls 0.23 with rzk-tls's config, the same as the client and
//! quorum ports. tiny_http's own TLS (feature ssl-rustls) would pull in rustls 0.20 and give
//! no access to the peer's certificate.
//!
//! Anything that needs the core's state is asked of the core thread as a `CoreCall` and
//! waited for with a deadline: the core answers between two batches, and if it is stuck the
//! endpoint says so instead of hanging.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use rzk_tls::{ClientAuth, ReloadingServerConfig, TlsSettings};
use tracing::{debug, info, warn};

use crate::admin;
use crate::config::Config;
use crate::fourlw::{self, Context};

/// Work run on the core thread with a view of its state.
pub type CoreCall = Box<dyn FnOnce(&Context<'_>) + Send>;

/// How long an endpoint waits for the core thread before answering 503.
const CORE_DEADLINE: Duration = Duration::from_secs(5);

/// Runs `f` on the core thread and returns its result, or None if the core did not answer in
/// time (or is gone).
pub fn ask_core<T: Send + 'static>(
    calls: &Sender<CoreCall>,
    f: impl FnOnce(&Context<'_>) -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    calls
        .send(Box::new(move |ctx| {
            let _ = tx.send(f(ctx));
        }))
        .ok()?;
    rx.recv_timeout(CORE_DEADLINE).ok()
}

/// A running endpoint; `stop` unblocks its thread and waits for it.
pub struct Endpoint {
    unblock: Box<dyn FnOnce() + Send>,
    thread: JoinHandle<()>,
}

impl Endpoint {
    pub fn stop(self) {
        (self.unblock)();
        let _ = self.thread.join();
    }
}

fn bind(what: &str, key: &str, addr: SocketAddr) -> Option<Arc<tiny_http::Server>> {
    match tiny_http::Server::http(addr) {
        Ok(server) => {
            info!(%addr, "{what} listening");
            Some(Arc::new(server))
        }
        Err(e) => {
            // As ZooKeeper does when its AdminServer cannot start: say so and keep serving
            // clients, which matter more than the endpoint.
            warn!(%addr, error = %e, "cannot start the {what} ({key}); running without it");
            None
        }
    }
}

fn spawn(
    name: &str,
    server: Arc<tiny_http::Server>,
    handle: impl Fn(tiny_http::Request) + Send + 'static,
) -> Option<Endpoint> {
    let serving = server.clone();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            for request in serving.incoming_requests() {
                handle(request);
            }
        })
        .map_err(|e| warn!(error = %e, "cannot start thread {name}"))
        .ok()?;
    Some(Endpoint {
        unblock: Box::new(move || server.unblock()),
        thread,
    })
}

fn respond(request: tiny_http::Request, status: u16, content_type: &str, body: String) {
    let header = tiny_http::Header::from_bytes("Content-Type", content_type)
        .expect("static header is valid");
    let response = tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(header);
    // The client may have gone; nothing to do about it.
    let _ = request.respond(response);
}

pub fn spawn_metrics(config: &Config, calls: Sender<CoreCall>) -> Option<Endpoint> {
    if !config.metrics_enabled || config.metrics_port == 0 {
        return None;
    }
    let addr = SocketAddr::new(config.metrics_address, config.metrics_port);
    let server = bind(
        "Prometheus metrics endpoint",
        "metricsProvider.httpPort",
        addr,
    )?;
    spawn("rzk-metrics", server, move |request| {
        let path = request.url().split('?').next().unwrap_or("");
        if path != "/metrics" && path != "/" {
            return respond(request, 404, "text/plain", "try /metrics\n".into());
        }
        match ask_core(&calls, fourlw::mntr_core_pairs) {
            Some(mntr) => respond(
                request,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                rzk_metrics::metrics().render_prometheus(&mntr),
            ),
            None => respond(
                request,
                503,
                "text/plain",
                "the core thread did not answer\n".into(),
            ),
        }
    })
}

pub fn spawn_admin(config: &Config, calls: Sender<CoreCall>) -> Option<Endpoint> {
    if !config.admin_enabled || config.admin_port == 0 {
        return None;
    }
    let addr = SocketAddr::new(config.admin_address, config.admin_port);
    let tls = match admin_tls(config) {
        Ok(tls) => tls,
        Err(e) => {
            // As ZooKeeper does when its AdminServer cannot load its certificates: say so and
            // keep serving clients.
            warn!(%addr, error = %e, "cannot start the AdminServer (admin.forceHttps); running without it");
            return None;
        }
    };
    let base = config.admin_command_url.clone();
    let files = admin::Files {
        data_dir: config.data_dir.clone(),
        data_log_dir: config.data_log_dir.clone(),
    };
    let auth = admin::AuthConfig {
        super_digest: config.super_digest.clone(),
        x509_super_user: config.x509_super_user.clone(),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    admin_http::spawn(addr, scheme, tls, move |request| {
        let (path, query) = request
            .target
            .split_once('?')
            .unwrap_or((&request.target, ""));
        let Some(rest) = path.strip_prefix(base.as_str()) else {
            return admin_http::Response::new(404, "text/plain", format!("try {base}\n"));
        };
        let command = rest.trim_matches('/');
        if command.is_empty() {
            return admin_http::Response::new(200, "text/html", admin::index_html(&base));
        }
        let caller = admin::Caller {
            authorization: request.header("Authorization").map(str::to_owned),
            ip: request.peer.ip(),
            x509_subject: request.x509_subject.clone(),
        };
        let params = admin::parse_query(query);
        let (status, body) = admin::run(command, params, &caller, &auth, &calls, &files);
        admin_http::Response::new(status, "application/json", body)
    })
}

/// admin.forceHttps: the AdminServer's TLS config. ZooKeeper's JettyAdminServer reads the
/// quorum key material (`ssl.quorum.keyStore.*` / `ssl.quorum.trustStore.*`, its
/// QuorumX509Util); rzk does too, and takes the client port's `ssl.*` when no
/// `ssl.quorum.keyStore.location` is set. A client certificate is asked for only with
/// admin.needClientAuth=true (then required), as Jetty's `setNeedClientAuth`.
fn admin_tls(config: &Config) -> Result<Option<Arc<ReloadingServerConfig>>, String> {
    if !config.admin_force_https {
        if config.admin_need_client_auth {
            warn!("admin.needClientAuth=true has no effect without admin.forceHttps=true");
        }
        return Ok(None);
    }
    let quorum_keys = config
        .ssl
        .get("ssl.quorum.keyStore.location")
        .is_some_and(|v| !v.trim().is_empty());
    let prefix = if quorum_keys { "ssl.quorum." } else { "ssl." };
    let mut settings = TlsSettings::from_properties(prefix, &config.ssl)
        .map_err(|e| e.to_string())?
        .ok_or(
            "admin.forceHttps=true needs ssl.quorum.keyStore.location (or ssl.keyStore.location)",
        )?;
    settings.client_auth = if config.admin_need_client_auth {
        ClientAuth::Need
    } else {
        ClientAuth::None
    };
    let tls = ReloadingServerConfig::new(settings).map_err(|e| e.to_string())?;
    info!(
        keys = prefix,
        need_client_auth = config.admin_need_client_auth,
        "AdminServer speaks HTTPS only"
    );
    Ok(Some(Arc::new(tls)))
}

/// The AdminServer's HTTP/1.1: a mio accept loop (so `stop` can wake it) handing each
/// connection to a thread of its own, which does the TLS handshake if any, reads one
/// request, answers it with `Connection: close` and closes. Admin requests are rare and
/// small; keep-alive and request bodies are not worth their code here.
mod admin_http {
    use super::*;

    /// Connections served at once; more are closed unanswered (and logged).
    const MAX_CONNECTIONS: usize = 16;
    /// A peer that sends or reads nothing for this long is dropped.
    const IO_TIMEOUT: Duration = Duration::from_secs(10);
    /// The request line and headers must fit in this.
    const MAX_HEAD_BYTES: usize = 16 * 1024;
    /// A request body (no admin command reads one) is read and dropped up to this size, so
    /// closing the socket does not reset the connection under the client's feet.
    const MAX_BODY_BYTES: usize = 64 * 1024;

    const LISTENER: mio::Token = mio::Token(0);
    const WAKE: mio::Token = mio::Token(1);

    pub struct Request {
        pub target: String,
        pub headers: Vec<(String, String)>,
        pub peer: SocketAddr,
        /// The verified client certificate's subject, as ZooKeeper's x509 ids spell it.
        pub x509_subject: Option<String>,
    }

    impl Request {
        /// The first value of a header, its name matched without regard to case.
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    pub struct Response {
        status: u16,
        content_type: &'static str,
        body: String,
    }

    impl Response {
        pub fn new(status: u16, content_type: &'static str, body: String) -> Response {
            Response {
                status,
                content_type,
                body,
            }
        }
    }

    type Handler = dyn Fn(&Request) -> Response + Send + Sync;

    pub fn spawn(
        addr: SocketAddr,
        scheme: &'static str,
        tls: Option<Arc<ReloadingServerConfig>>,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Option<Endpoint> {
        let bound = (|| {
            let mut listener = mio::net::TcpListener::bind(addr)?;
            let poll = mio::Poll::new()?;
            poll.registry()
                .register(&mut listener, LISTENER, mio::Interest::READABLE)?;
            let waker = mio::Waker::new(poll.registry(), WAKE)?;
            std::io::Result::Ok((listener, poll, waker))
        })();
        let (listener, poll, waker) = match bound {
            Ok(bound) => bound,
            Err(e) => {
                // As ZooKeeper does when its AdminServer cannot start: say so and keep
                // serving clients, which matter more than the endpoint.
                warn!(%addr, error = %e, "cannot start the AdminServer (admin.serverPort); running without it");
                return None;
            }
        };
        info!(%addr, scheme, "AdminServer listening");
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = std::thread::Builder::new()
            .name("rzk-admin".into())
            .spawn(move || accept_loop(listener, poll, tls, handler))
            .map_err(|e| warn!(error = %e, "cannot start thread rzk-admin"))
            .ok()?;
        Some(Endpoint {
            unblock: Box::new(move || {
                let _ = waker.wake();
            }),
            thread,
        })
    }

    fn accept_loop(
        listener: mio::net::TcpListener,
        mut poll: mio::Poll,
        tls: Option<Arc<ReloadingServerConfig>>,
        handler: Arc<Handler>,
    ) {
        let open = Arc::new(AtomicUsize::new(0));
        let mut events = mio::Events::with_capacity(8);
        loop {
            if let Err(e) = poll.poll(&mut events, None) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                warn!(error = %e, "AdminServer: poll failed; stopping");
                return;
            }
            if events.iter().any(|e| e.token() == WAKE) {
                return;
            }
            loop {
                let (stream, peer) = match listener.accept() {
                    Ok(accepted) => accepted,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // Out of descriptors, most likely: back off instead of spinning.
                        warn!(error = %e, "AdminServer: accept failed");
                        std::thread::sleep(Duration::from_millis(100));
                        break;
                    }
                };
                if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    warn!(%peer, "AdminServer: {MAX_CONNECTIONS} connections open; closing this one");
                    continue;
                }
                let stream = TcpStream::from(std::os::fd::OwnedFd::from(stream));
                open.fetch_add(1, Ordering::Relaxed);
                let (count, tls, handler) = (open.clone(), tls.clone(), handler.clone());
                let spawned = std::thread::Builder::new()
                    .name("rzk-admin-conn".into())
                    .spawn(move || {
                        serve(stream, peer, tls.as_deref(), &*handler);
                        count.fetch_sub(1, Ordering::Relaxed);
                    });
                if let Err(e) = spawned {
                    warn!(error = %e, "AdminServer: cannot start a connection thread");
                    open.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn serve(
        tcp: TcpStream,
        peer: SocketAddr,
        tls: Option<&ReloadingServerConfig>,
        handler: &Handler,
    ) {
        // The listener is non-blocking and so is what it accepted; this thread blocks.
        let setup = tcp
            .set_nonblocking(false)
            .and_then(|()| tcp.set_read_timeout(Some(IO_TIMEOUT)))
            .and_then(|()| tcp.set_write_timeout(Some(IO_TIMEOUT)))
            .and_then(|()| tcp.set_nodelay(true));
        if let Err(e) = setup {
            debug!(%peer, error = %e, "AdminServer: cannot set up the connection");
            return;
        }
        let Some(tls) = tls else {
            return exchange(tcp, peer, None, handler);
        };
        let mut tcp = tcp;
        let (conn, subject) = match handshake(&mut tcp, tls) {
            Ok(done) => done,
            Err(e) => {
                // Plain HTTP on the HTTPS port lands here too ("corrupt message").
                warn!(%peer, error = %e, "AdminServer: TLS handshake failed; closing the connection");
                return;
            }
        };
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        exchange(&mut stream, peer, subject, handler);
        stream.conn.send_close_notify();
        let _ = stream.conn.complete_io(&mut stream.sock);
    }

    /// Completes the server side of a TLS handshake; returns the connection and the client
    /// certificate's subject, if one was presented (rustls has verified it against the trust
    /// store by then).
    fn handshake(
        tcp: &mut TcpStream,
        tls: &ReloadingServerConfig,
    ) -> Result<(rustls::ServerConnection, Option<String>), String> {
        let mut conn = rustls::ServerConnection::new(tls.current()).map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            match conn.complete_io(tcp) {
                Ok((0, 0)) => return Err("the peer closed the connection".into()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let subject = match conn.peer_certificates().and_then(|chain| chain.first()) {
            None => None,
            Some(cert) => Some(
                rzk_tls::x509_subject(cert.as_ref())
                    .map_err(|e| format!("client certificate subject unreadable: {e}"))?,
            ),
        };
        Ok((conn, subject))
    }

    /// Reads one request, answers it.
    fn exchange(
        mut stream: impl Read + Write,
        peer: SocketAddr,
        x509_subject: Option<String>,
        handler: &Handler,
    ) {
        let response = match read_request(&mut stream) {
            Ok(Some((method, target, headers))) if method == "GET" => handler(&Request {
                target,
                headers,
                peer,
                x509_subject,
            }),
            Ok(Some(_)) => Response::new(405, "text/plain", "only GET is supported\n".into()),
            Ok(None) => return, // closed before a request
            Err(Bad::Request(why)) => {
                debug!(%peer, why, "AdminServer: bad request");
                Response::new(400, "text/plain", format!("{why}\n"))
            }
            Err(Bad::Io(e)) => {
                debug!(%peer, error = %e, "AdminServer: reading the request failed");
                return;
            }
        };
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            response.status,
            reason(response.status),
            response.content_type,
            response.body.len()
        );
        let written = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(response.body.as_bytes()))
            .and_then(|()| stream.flush());
        if let Err(e) = written {
            debug!(%peer, error = %e, "AdminServer: writing the answer failed");
        }
    }

    enum Bad {
        Request(&'static str),
        Io(std::io::Error),
    }

    type Head = (String, String, Vec<(String, String)>);

    /// The request line and headers; a Content-Length body is read and dropped. None if the
    /// peer closed without sending anything.
    fn read_request(stream: &mut impl Read) -> Result<Option<Head>, Bad> {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 2048];
        let end = loop {
            let found = find(&buf, b"\r\n\r\n");
            if found.unwrap_or(buf.len()) > MAX_HEAD_BYTES {
                return Err(Bad::Request("request head too large"));
            }
            if let Some(at) = found {
                break at;
            }
            let n = stream.read(&mut chunk).map_err(Bad::Io)?;
            if n == 0 {
                return if buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Bad::Request("connection closed inside the request head"))
                };
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&buf[..end])
            .map_err(|_| Bad::Request("request head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let (Some(method), Some(target), Some(version), None) = (
            request_line.next(),
            request_line.next(),
            request_line.next(),
            request_line.next(),
        ) else {
            return Err(Bad::Request("malformed request line"));
        };
        if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
            return Err(Bad::Request("malformed request line"));
        }
        let mut headers = Vec::new();
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(Bad::Request("malformed header"));
            };
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let body_len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
            .map(|(_, v)| v.parse::<usize>())
            .transpose()
            .map_err(|_| Bad::Request("bad Content-Length"))?
            .unwrap_or(0);
        if body_len > MAX_BODY_BYTES {
            return Err(Bad::Request("request body too large"));
        }
        let mut have = buf.len() - (end + 4);
        while have < body_len {
            let n = stream.read(&mut chunk).map_err(Bad::Io)?;
            if n == 0 {
                break;
            }
            have += n;
        }
        Ok(Some((method.to_owned(), target.to_owned(), headers)))
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    fn reason(status: u16) -> &'static str {
        match status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "",
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn parse(text: &str) -> Result<Option<Head>, Bad> {
            read_request(&mut text.as_bytes())
        }

        #[test]
        fn requests_parse() {
            let Ok(Some((method, target, headers))) = parse(
                "GET /commands/crst?x=1 HTTP/1.1\r\nHost: a\r\nauthorization:  digest u:p \r\n\r\n",
            ) else {
                panic!("should parse");
            };
            assert_eq!(target, "/commands/crst?x=1");
            assert_eq!(method, "GET");
            let request = Request {
                target,
                headers,
                peer: "127.0.0.1:1".parse().unwrap(),
                x509_subject: None,
            };
            assert_eq!(request.header("Authorization"), Some("digest u:p"));
            assert_eq!(request.header("Cookie"), None);
        }

        #[test]
        fn bad_requests_are_refused() {
            assert!(matches!(parse(""), Ok(None)));
            assert!(matches!(parse("GET /x HTTP/1.1\r\n"), Err(Bad::Request(_))));
            assert!(matches!(
                parse("\x16\x03\x01\r\n\r\n"),
                Err(Bad::Request(_))
            ));
            assert!(matches!(
                parse("GET x HTTP/1.1\r\n\r\n"),
                Err(Bad::Request(_))
            ));
            assert!(matches!(
                parse("GET /x HTTP/1.1\r\nContent-Length: lots\r\n\r\n"),
                Err(Bad::Request(_))
            ));
            let huge = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD_BYTES + 10));
            assert!(matches!(parse(&huge), Err(Bad::Request(_))));
        }
    }
}
