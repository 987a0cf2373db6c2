//! The commands themselves. Field names and JSON types are ZooKeeper 3.8's (Commands.java and
//! what its Jackson mapper makes of ServerStats and ServerCnxn); values come from the same
//! places as the four-letter words', so `srvr` and `server_stats` never disagree.
//!
//! Left out on purpose, because rzk keeps no such figure: `fsync_threshold_exceed_count` and
//! `client_response_stats` in server_stats, and the top-level `client_response` (ZooKeeper's
//! sizes of the last/smallest/largest response buffer).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use rzk_net::ConnStats;
use serde_json::{json, Value};

use super::{Fields, Params};
use crate::config;
use crate::fourlw::{self, Context};
use crate::storage;

/// A `json!({...})` object as the fields of an answer.
pub(super) fn fields(value: Value) -> Fields {
    match value {
        Value::Object(map) => map,
        other => unreachable!("answers are objects, not {other}"),
    }
}

/// An answer whose command failed: ZooKeeper puts the error among the command's fields.
pub(super) fn failed(error: &str) -> Fields {
    fields(json!({ "error": error }))
}

/// ZooKeeper's JSON has numbers where mntr prints numbers; its averages are doubles even when
/// whole (`avg_fsynctime: 0.0`), so a client's JSON decoder sees one type per field.
fn typed(key: &str, value: String) -> Value {
    if !key.starts_with("avg_") {
        if let Ok(v) = value.parse::<i64>() {
            return json!(v);
        }
    }
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() => json!(v),
        _ => Value::String(value),
    }
}

/// ZooKeeper's ServerStats object as its Jackson mapper writes it (snake_case getters).
fn server_stats_object(ctx: &Context<'_>) -> Value {
    let s = &ctx.shared.stats;
    json!({
        "packets_sent": s.packets_sent.load(Ordering::Relaxed),
        "packets_received": s.packets_received.load(Ordering::Relaxed),
        // Filled on the HTTP thread (`fill_files`): walking directories is no work for the
        // core thread, which answers admin calls between batches.
        "data_dir_size": 0,
        "log_dir_size": 0,
        "provider_null": false,
        "server_state": ctx.mode.unwrap_or("standalone"),
        "last_processed_zxid": ctx.core.released().last_zxid(),
        "outstanding_requests": ctx.core.outstanding_count(),
        "avg_latency": s.latency.avg_ms(),
        "max_latency": s.latency.max_ms(),
        "min_latency": s.latency.min_ms(),
        "num_alive_client_connections": ctx.shared.conns.lock().len(),
        "auth_failed_count": s.auth_failed.load(Ordering::Relaxed),
        // ZooKeeper's Netty factory counts TLS connections that skipped client
        // authentication (ssl.clientAuth want or none), from loopback or elsewhere.
        "non_mtlsremote_conn_count": non_mtls(ctx, false),
        "non_mtlslocal_conn_count": non_mtls(ctx, true),
        "uptime": ctx.now_ms.saturating_sub(ctx.shared.started_ms),
    })
}

/// server_stats/srvr: what the `srvr` four-letter word prints, as fields.
pub(super) fn server_stats(ctx: &Context<'_>, _: &Params) -> Fields {
    fields(json!({
        "version": fourlw::version_line(),
        "read_only": false,
        "server_stats": server_stats_object(ctx),
        "node_count": fourlw::node_count(ctx),
    }))
}

/// One connection as ZooKeeper's `ServerCnxn.getConnectionInfo`: the brief form for `stats`,
/// the full one for `connections`.
fn connection_info(c: &ConnStats, brief: bool) -> Value {
    let mut info = fields(json!({
        "remote_socket_address": c.peer.to_string(),
        // NIO's OP_READ: rzk's loops keep reading every open connection (ZooKeeper drops it
        // to 0 while throttling one, which rzk does not do per connection).
        "interest_ops": 1,
        "outstanding_requests": c.queued.load(Ordering::Relaxed),
        "packets_received": c.received.load(Ordering::Relaxed),
        "packets_sent": c.sent.load(Ordering::Relaxed),
    }));
    if !brief {
        info.extend(fields(json!({
            "session_id": c.session_id.load(Ordering::Relaxed),
            "last_operation": *c.last_op.lock(),
            "established": c.established_ms,
            "session_timeout": c.timeout_ms.load(Ordering::Relaxed),
            "last_cxid": c.last_cxid.load(Ordering::Relaxed),
            "last_zxid": c.last_zxid.load(Ordering::Relaxed),
            "last_response_time": c.last_response_ms.load(Ordering::Relaxed),
            "last_latency": c.latency.last_ms(),
            "min_latency": c.latency.min_ms(),
            // A whole number of ms here, as ZooKeeper's per-connection average is a long.
            "avg_latency": c.latency.avg_ms() as u64,
            "max_latency": c.latency.max_ms(),
        })));
    }
    Value::Object(info)
}

/// The connections on the plain port (`secure` false) or on secureClientPort.
fn all_connections(ctx: &Context<'_>, brief: bool, secure: bool) -> Value {
    let conns = ctx.shared.conns.lock();
    Value::Array(
        conns
            .iter()
            .filter(|(_, c)| c.secure() == secure)
            .map(|(_, c)| connection_info(c, brief))
            .collect(),
    )
}

fn non_mtls(ctx: &Context<'_>, local: bool) -> usize {
    ctx.shared
        .conns
        .lock()
        .iter()
        .filter(|(_, c)| c.transport.load(Ordering::Relaxed) == ConnStats::TLS)
        .filter(|(_, c)| c.peer.ip().is_loopback() == local)
        .count()
}

/// stats/stat: server_stats plus every connection, briefly.
pub(super) fn stats(ctx: &Context<'_>, params: &Params) -> Fields {
    let mut out = server_stats(ctx, params);
    out.insert("connections".into(), all_connections(ctx, true, false));
    out.insert(
        "secure_connections".into(),
        all_connections(ctx, true, true),
    );
    out
}

/// connections/cons.
pub(super) fn connections(ctx: &Context<'_>, _: &Params) -> Fields {
    fields(json!({
        "connections": all_connections(ctx, false, false),
        "secure_connections": all_connections(ctx, false, true),
    }))
}

/// monitor/mntr: mntr's figures without their `zk_` prefix, numbers as numbers.
pub(super) fn monitor(ctx: &Context<'_>, _: &Params) -> Fields {
    fourlw::mntr_pairs(ctx)
        .into_iter()
        .map(|(k, v)| {
            let key = k.strip_prefix("zk_").unwrap_or(&k).to_owned();
            let value = typed(&key, v);
            (key, value)
        })
        .collect()
}

/// configuration/conf/config: ZooKeeperServerConf's fields. The directories are where the
/// files are (ZooKeeper names its version-2 subdirectories; rzk's are `rzk/`).
pub(super) fn configuration(ctx: &Context<'_>, _: &Params) -> Fields {
    let c = ctx.config;
    fields(json!({
        "client_port": c.client_port,
        "data_dir": storage::snapshot_dir(&c.data_dir).display().to_string(),
        "data_log_dir": storage::log_dir(&c.data_log_dir).display().to_string(),
        "tick_time": c.tick_time_ms,
        "max_client_cnxns": c.max_client_cnxns,
        "min_session_timeout": c.min_session_timeout(),
        "max_session_timeout": c.max_session_timeout(),
        "server_id": c.server_id,
        // ZooKeeper's "not set: the system default", which is what rzk's listener uses.
        "client_port_listen_backlog": -1,
    }))
}

pub(super) fn connection_stat_reset(ctx: &Context<'_>, _: &Params) -> Fields {
    for (_, c) in ctx.shared.conns.lock().iter() {
        c.reset();
    }
    Fields::new()
}

pub(super) fn stat_reset(ctx: &Context<'_>, _: &Params) -> Fields {
    ctx.shared.stats.reset();
    Fields::new()
}

/// observer_connection_stat_reset/orst: a standalone server has no observers, so there is
/// nothing to reset and ZooKeeper answers with the bare envelope too.
pub(super) fn observer_connection_stat_reset(_: &Context<'_>, _: &Params) -> Fields {
    Fields::new()
}

/// environment/env/envi: `envi`'s lines as string fields.
pub(super) fn environment(_: &Context<'_>, _: &Params) -> Fields {
    fourlw::envi_pairs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect()
}

/// dirs: filled on the HTTP thread (`fill_files`).
pub(super) fn dirs(_: &Context<'_>, _: &Params) -> Fields {
    fields(json!({ "datadir_size": 0, "logdir_size": 0 }))
}

/// What the data directories say, read on the HTTP thread after the core answered: the
/// sizes in server_stats/stats/dirs and the newest snapshot for last_snapshot.
pub(super) fn fill_files(command: &str, fields: &mut Fields, files: &super::Files) {
    let sizes = || fourlw::dir_sizes(&files.data_dir, &files.data_log_dir);
    match command {
        "server_stats" | "stats" => {
            if let Some(Value::Object(stats)) = fields.get_mut("server_stats") {
                let (data, log) = sizes();
                stats.insert("data_dir_size".into(), json!(data));
                stats.insert("log_dir_size".into(), json!(log));
            }
        }
        "dirs" => {
            let (data, log) = sizes();
            fields.insert("datadir_size".into(), json!(data));
            fields.insert("logdir_size".into(), json!(log));
        }
        "last_snapshot" => fields.extend(newest_snapshot(&files.data_dir)),
        _ => {}
    }
}

/// ZooKeeper's session tracker files each session under the end of the tick after its
/// deadline (`ExpiryQueue.roundToNextInterval`); `dump` lists those buckets.
fn expiry_bucket(deadline_ms: u64, tick_ms: u64) -> u64 {
    (deadline_ms / tick_ms + 1) * tick_ms
}

/// dump: sessions by expiry time (ms since the epoch, bucketed by tick as ZooKeeper does) and
/// ephemeral paths by session. JSON object keys are strings, as in ZooKeeper's answer.
pub(super) fn dump(ctx: &Context<'_>, _: &Params) -> Fields {
    let tick = u64::from(ctx.config.tick_time_ms.max(1));
    let mut by_expiry: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for s in ctx.core.sessions().iter() {
        // Touches are monotonic; dump shows wall-clock expiry times, as ZooKeeper does.
        let deadline = (s.touch.load(Ordering::Relaxed) + s.timeout_ms.max(0) as u64)
            .saturating_add(ctx.now_ms)
            .saturating_sub(ctx.mono_ms);
        by_expiry
            .entry(expiry_bucket(deadline, tick))
            .or_default()
            .push(s.id);
    }
    let expiry: Fields = by_expiry
        .into_iter()
        .map(|(at, mut ids)| {
            ids.sort_unstable();
            (at.to_string(), json!(ids))
        })
        .collect();
    let mut owners: Vec<_> = ctx.core.released().sessions_with_ephemerals().collect();
    owners.sort_by_key(|(s, _)| **s);
    let ephemerals: Fields = owners
        .into_iter()
        .map(|(session, paths)| {
            let paths: Vec<&str> = paths.iter().map(|p| &**p).collect();
            (session.to_string(), json!(paths))
        })
        .collect();
    fields(json!({
        "expiry_time_to_session_ids": expiry,
        "session_id_to_ephemeral_paths": ephemerals,
    }))
}

/// watches/wchc: data and exists watches by session (ZooKeeper 3.8 reports no child watches
/// here, see the tree's WatchRegistry).
pub(super) fn watches(ctx: &Context<'_>, _: &Params) -> Fields {
    let by_session: Fields = ctx
        .core
        .watches()
        .data_by_session()
        .into_iter()
        .map(|(session, paths)| {
            let paths: Vec<&str> = paths.iter().map(|p| &**p).collect();
            (session.to_string(), json!(paths))
        })
        .collect();
    fields(json!({ "session_id_to_watched_paths": by_session }))
}

/// watches_by_path/wchp.
pub(super) fn watches_by_path(ctx: &Context<'_>, _: &Params) -> Fields {
    let by_path: Fields = ctx
        .core
        .watches()
        .data_by_path()
        .into_iter()
        .map(|(path, sessions)| (path.to_string(), json!(sessions)))
        .collect();
    fields(json!({ "path_to_session_ids": by_path }))
}

/// watch_summary/wchs.
pub(super) fn watch_summary(ctx: &Context<'_>, _: &Params) -> Fields {
    let w = ctx.core.watches();
    fields(json!({
        "num_connections": w.data_session_count(),
        "num_paths": w.data_path_count(),
        "num_total_watches": w.data_watch_count(),
    }))
}

pub(super) fn get_trace_mask(ctx: &Context<'_>, _: &Params) -> Fields {
    fields(json!({ "tracemask": ctx.shared.trace_mask.load(Ordering::Relaxed) }))
}

/// set_trace_mask/stmk?traceMask=N, with ZooKeeper's error texts.
pub(super) fn set_trace_mask(ctx: &Context<'_>, params: &Params) -> Fields {
    let Some(text) = params.get("traceMask") else {
        return failed("setTraceMask requires long traceMask argument");
    };
    let Ok(mask) = text.parse::<i64>() else {
        return failed(&format!(
            "setTraceMask requires long traceMask argument, got {text}"
        ));
    };
    ctx.shared.trace_mask.store(mask, Ordering::Relaxed);
    fields(json!({ "tracemask": mask }))
}

/// leader/lead: ZooKeeper answers only for a quorum member that knows its leader; a
/// standalone server gets this error.
pub(super) fn leader(ctx: &Context<'_>, _: &Params) -> Fields {
    let Some(q) = &ctx.quorum else {
        return failed("server is not initialized");
    };
    let Some(leader) = q.leader else {
        return failed("server is not initialized");
    };
    let ip = q
        .members
        .iter()
        .find(|m| m.sid == leader)
        .map(|m| m.quorum.ip().to_string())
        .unwrap_or_default();
    fields(json!({ "is_leader": q.is_leader(), "leader_id": leader, "leader_ip": ip }))
}

/// voting_view: the voters, as ZooKeeper lists them (observers are not in it); only a
/// server's own entry names its client address.
pub(super) fn voting_view(ctx: &Context<'_>, _: &Params) -> Fields {
    let Some(q) = &ctx.quorum else {
        return fields(json!({ "current_config": {} }));
    };
    let mut config = serde_json::Map::new();
    for m in q.members.iter().filter(|m| !m.observer) {
        let client = if m.sid == q.me {
            ctx.config.client_addr().to_string()
        } else {
            String::new()
        };
        config.insert(
            m.sid.to_string(),
            json!({
                "server_addresses": [m.quorum.to_string()],
                "election_addresses": [m.election.to_string()],
                "client_address": client,
                "learner_type": "participant",
            }),
        );
    }
    fields(json!({ "current_config": config }))
}

/// ZooKeeper's MultipleAddresses as JSON, for one address.
fn addresses(addr: std::net::SocketAddr) -> Value {
    let text = addr.to_string();
    json!({
        "empty": false,
        "all_addresses": [text],
        "all_reachable_addresses": [text],
        "one": text,
        "reachable_address": text,
        "wildcard_addresses": [format!("0.0.0.0:{}", addr.port())],
        "all_ports": [addr.port()],
        "all_host_strings": [addr.ip().to_string()],
        "all_reachable_addresses_or_all": [text],
        "reachable_or_one": text,
    })
}

/// zabstate: this server's id, addresses and Zab phase; a standalone server runs no Zab
/// (ZooKeeper's answer for it).
pub(super) fn zabstate(ctx: &Context<'_>, _: &Params) -> Fields {
    let Some(q) = &ctx.quorum else {
        return fields(json!({ "voting": false, "zabstate": "" }));
    };
    let Some(me) = q.members.iter().find(|m| m.sid == q.me) else {
        return failed("server is not initialized");
    };
    let zxid = rzk_proto::Zxid::from_i64(q.last_zxid);
    fields(json!({
        "myid": q.me,
        "is_leader": q.is_leader(),
        "quorum_address": addresses(me.quorum),
        "election_address": addresses(me.election),
        "client_address": ctx.config.client_addr().to_string(),
        "voting": !me.observer,
        "last_zxid": format!("{:#x}", q.last_zxid),
        "zab_epoch": zxid.epoch,
        "zab_counter": zxid.counter,
        "zabstate": q.zab_phase(),
    }))
}

/// hash: ZooKeeper's digest log, the tree digest at every zxid that is a multiple of 128 (the
/// last 1024 of them), oldest first, with the digest version ZooKeeper 3.6+ computes (2).
/// Servers that applied the same transactions answer the same pairs.
pub(super) fn hash(ctx: &Context<'_>, _: &Params) -> Fields {
    let digests: Vec<Value> = ctx
        .core
        .digest_log()
        .map(|(zxid, digest)| {
            // A Java long in ZooKeeper: the wrapping sum, read as signed.
            json!({ "zxid": zxid, "digest_version": 2, "digest": digest as i64 })
        })
        .collect();
    fields(json!({ "digests": digests }))
}

/// observers/obsr: a leader's observers (each with its id and the last zxid it has; rzk
/// keeps no per-connection packet counts for them); none on any other server.
pub(super) fn observers(ctx: &Context<'_>, _: &Params) -> Fields {
    let observers: Vec<&rzk_quorum::LearnerStatus> = ctx
        .quorum
        .iter()
        .filter(|q| q.is_leader())
        .flat_map(|q| q.learners.iter())
        .filter(|l| l.observer)
        .collect();
    let synced = observers.iter().filter(|l| l.synced).count();
    let list: Vec<Value> = observers
        .iter()
        .map(|l| json!({ "sid": l.sid, "last_zxid": l.acked.as_i64() }))
        .collect();
    fields(json!({ "synced_observers": synced, "observers": list }))
}

/// last_snapshot/lsnp: the newest snapshot file (written to a temp name and renamed, so only
/// finished ones count): its zxid in hex without 0x, and its modification time in seconds,
/// as ZooKeeper reports them. With no snapshot yet, ZooKeeper's "none": -1 as hex, and -1.
/// (ZooKeeper always has one, as it snapshots at startup; rzk does when it replayed a log.)
pub(super) fn last_snapshot(_: &Context<'_>, _: &Params) -> Fields {
    Fields::new() // filled on the HTTP thread (`fill_files`)
}

fn newest_snapshot(data_dir: &std::path::Path) -> Fields {
    let newest = rzk_snapshot::list(&storage::snapshot_dir(data_dir))
        .ok()
        .and_then(|files| files.into_iter().next());
    let (zxid, timestamp) = match newest {
        Some((zxid, path)) => {
            let modified = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(-1, |d| d.as_secs() as i64);
            (zxid, modified)
        }
        None => (-1, -1),
    };
    fields(json!({
        "zxid": format!("{:x}", zxid),
        "timestamp": timestamp,
    }))
}

/// system_properties/sysp. ZooKeeper lists the JVM's system properties: java.*, the OS and
/// user facts, and the zoo.cfg keys it passes on as `zookeeper.<key>`. rzk has no JVM, so this
/// lists what applies to it: every key of its zoo.cfg as written there, and the process facts
/// under the names Java gives them. No java.* property is made up. Sorted by name, as
/// ZooKeeper sorts them.
pub(super) fn system_properties(ctx: &Context<'_>, _: &Params) -> Fields {
    let mut props: BTreeMap<String, String> = ctx
        .config
        .initial_text
        .as_deref()
        .unwrap_or_default()
        .lines()
        .filter_map(config::parse_line)
        .collect();
    for (k, v) in fourlw::envi_pairs() {
        if k.starts_with("os.") || k.starts_with("user.") || k == "rzk.version" {
            props.insert(k.to_owned(), v);
        }
    }
    props
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

/// initial_configuration/icfg: the zoo.cfg text read at startup (null when rzk started
/// without one, as ZooKeeper's field is then).
pub(super) fn initial_configuration(ctx: &Context<'_>, _: &Params) -> Fields {
    fields(json!({ "initial_configuration": ctx.config.initial_text }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_numbers() {
        assert_eq!(typed("packets_sent", "12".into()), json!(12));
        assert_eq!(typed("avg_latency", "0.5".into()), json!(0.5));
        assert_eq!(typed("avg_fsynctime", "0".into()), json!(0.0));
        assert!(typed("avg_fsynctime", "0".into()).is_f64());
        assert_eq!(typed("version", "3.9.3-rzk".into()), json!("3.9.3-rzk"));
    }

    #[test]
    fn expiry_buckets_end_the_next_tick() {
        assert_eq!(expiry_bucket(0, 2000), 2000);
        assert_eq!(expiry_bucket(1999, 2000), 2000);
        assert_eq!(expiry_bucket(2000, 2000), 4000);
    }

    #[test]
    fn failures_carry_the_error_only() {
        let f = failed("boom");
        assert_eq!(f.len(), 1);
        assert_eq!(f["error"], json!("boom"));
    }
}
