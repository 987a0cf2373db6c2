//! The two HTTP endpoints operators point tools at: the AdminServer (ZooKeeper's JSON
//! commands, admin.serverPort) and Prometheus `/metrics` (metricsProvider.httpPort). Each runs
//! on its own thread with a small blocking HTTP server, so a slow scraper or a hung client
//! can never hold up the request pipeline.
//!
//! Anything that needs the core's state is asked of the core thread as a `CoreCall` and
//! waited for with a deadline: the core answers between two batches, and if it is stuck the
//! endpoint says so instead of hanging.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use tracing::{info, warn};

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
    server: Arc<tiny_http::Server>,
    thread: JoinHandle<()>,
}

impl Endpoint {
    pub fn stop(self) {
        self.server.unblock();
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
    Some(Endpoint { server, thread })
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
    let server = bind("AdminServer", "admin.serverPort", addr)?;
    let base = config.admin_command_url.clone();
    let files = admin::Files {
        data_dir: config.data_dir.clone(),
        data_log_dir: config.data_log_dir.clone(),
    };
    spawn("rzk-admin", server, move |request| {
        let url = request.url().to_owned();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let Some(rest) = path.strip_prefix(base.as_str()) else {
            return respond(request, 404, "text/plain", format!("try {base}\n"));
        };
        let command = rest.trim_matches('/');
        if command.is_empty() {
            return respond(request, 200, "text/html", admin::index_html(&base));
        }
        let params = admin::parse_query(query);
        let body = admin::run(command, params, &calls, &files);
        respond(request, 200, "application/json", body)
    })
}
