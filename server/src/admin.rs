//! The AdminServer's commands, answered in ZooKeeper 3.8's JSON shapes (`Commands.java`): the
//! same names and aliases, the same field names and JSON types, so tools written against
//! ZooKeeper's AdminServer read rzk unchanged. Values are rzk's own; where a ZooKeeper field
//! has no rzk counterpart it is left out rather than filled with a made-up figure (see
//! commands.rs for each).
//!
//! Commands run on the core thread (see http.rs) and only read, except the few that reset
//! counters or set the trace mask, as in ZooKeeper. What comes from the data directories
//! (sizes, the newest snapshot) is read afterwards on the HTTP thread.
//!
//! Those that change server state (`auth: true` below) want the caller authenticated and
//! authorized as ZooKeeper 3.9's `Commands.runCommand` does it for its AuthRequest commands
//! (there: snapshot and restore): an `Authorization: <scheme> <auth>` header (digest
//! `user:password`, `ip`, or `x509` for the HTTPS client certificate), whose ids must pass
//! the ACL of "/" for ALL (ZooKeeper's checkACL: any of its bits; super ids always pass).

mod commands;

use std::collections::BTreeMap;

use std::net::IpAddr;

use crossbeam_channel::Sender;
use rzk_proto::{perms, Id};
use serde_json::{json, Map, Value};

use crate::fourlw::Context;
use crate::http::{ask_core, CoreCall};

type Fields = Map<String, Value>;
type Params = BTreeMap<String, String>;
type Handler = fn(&Context<'_>, &Params) -> Fields;

/// The directories the HTTP thread reads for the commands that report on them.
pub struct Files {
    pub data_dir: std::path::PathBuf,
    pub data_log_dir: std::path::PathBuf,
}

/// What the server knows that makes an id super: zookeeper.DigestAuthenticationProvider.
/// superDigest and zookeeper.X509AuthenticationProvider.superUser.
pub struct AuthConfig {
    pub super_digest: Option<String>,
    pub x509_super_user: Option<String>,
}

/// Who sent a request: its Authorization header, address and client certificate.
pub struct Caller {
    pub authorization: Option<String>,
    pub ip: IpAddr,
    /// The verified HTTPS client certificate's subject (RFC 2253, as ZooKeeper's x509 ids).
    pub x509_subject: Option<String>,
}

/// One command: its primary name (first; answers carry it whichever alias was asked), its
/// aliases, whether it changes server state (and so wants an authorized caller), and what
/// it does.
struct Command {
    names: &'static [&'static str],
    auth: bool,
    handler: Handler,
}

/// ZooKeeper 3.8's commands. Those with `auth: true` reset counters or set the trace mask.
const COMMANDS: &[Command] = &[
    Command {
        names: &["ruok"],
        auth: false,
        handler: |_, _| Fields::new(),
    },
    Command {
        names: &["server_stats", "srvr"],
        auth: false,
        handler: commands::server_stats,
    },
    Command {
        names: &["stats", "stat"],
        auth: false,
        handler: commands::stats,
    },
    Command {
        names: &["monitor", "mntr"],
        auth: false,
        handler: commands::monitor,
    },
    Command {
        names: &["configuration", "conf", "config"],
        auth: false,
        handler: commands::configuration,
    },
    Command {
        names: &["connections", "cons"],
        auth: false,
        handler: commands::connections,
    },
    Command {
        names: &["connection_stat_reset", "crst"],
        auth: true,
        handler: commands::connection_stat_reset,
    },
    Command {
        names: &["stat_reset", "srst"],
        auth: true,
        handler: commands::stat_reset,
    },
    Command {
        names: &["environment", "env", "envi"],
        auth: false,
        handler: commands::environment,
    },
    Command {
        names: &["dirs"],
        auth: false,
        handler: commands::dirs,
    },
    Command {
        names: &["dump"],
        auth: false,
        handler: commands::dump,
    },
    Command {
        names: &["watches", "wchc"],
        auth: false,
        handler: commands::watches,
    },
    Command {
        names: &["watches_by_path", "wchp"],
        auth: false,
        handler: commands::watches_by_path,
    },
    Command {
        names: &["watch_summary", "wchs"],
        auth: false,
        handler: commands::watch_summary,
    },
    Command {
        names: &["is_read_only", "isro"],
        auth: false,
        handler: |ctx, _| commands::fields(json!({ "read_only": ctx.mode == Some("read-only") })),
    },
    Command {
        names: &["get_trace_mask", "gtmk"],
        auth: false,
        handler: commands::get_trace_mask,
    },
    Command {
        names: &["set_trace_mask", "stmk"],
        auth: true,
        handler: commands::set_trace_mask,
    },
    Command {
        names: &["leader", "lead"],
        auth: false,
        handler: commands::leader,
    },
    Command {
        names: &["voting_view"],
        auth: false,
        handler: commands::voting_view,
    },
    Command {
        names: &["zabstate"],
        auth: false,
        handler: commands::zabstate,
    },
    Command {
        names: &["hash"],
        auth: false,
        handler: commands::hash,
    },
    Command {
        names: &["last_snapshot", "lsnp"],
        auth: false,
        handler: commands::last_snapshot,
    },
    Command {
        names: &["observers", "obsr"],
        auth: false,
        handler: commands::observers,
    },
    Command {
        names: &["observer_connection_stat_reset", "orst"],
        auth: true,
        handler: commands::observer_connection_stat_reset,
    },
    Command {
        names: &["system_properties", "sysp"],
        auth: false,
        handler: commands::system_properties,
    },
    Command {
        names: &["initial_configuration", "icfg"],
        auth: false,
        handler: commands::initial_configuration,
    },
];

fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.names.contains(&name))
}

/// ZooKeeper's answer object (`CommandResponse.toMap`): the command's own fields first, then
/// `command` and `error` (null unless the command set one itself, in which case it keeps its
/// place).
fn answer(command: &str, mut fields: Fields) -> Fields {
    fields.entry("command").or_insert_with(|| json!(command));
    fields.entry("error").or_insert(Value::Null);
    fields
}

/// An answer no command produced (unknown name, core not answering): `command` as asked,
/// then the error, as ZooKeeper's runCommand builds it.
fn refusal(command: &str, error: String) -> Fields {
    let mut fields = Fields::new();
    fields.insert("command".into(), json!(command));
    fields.insert("error".into(), json!(error));
    fields
}

/// Runs `name` for `caller` and renders ZooKeeper's JSON answer, with its HTTP status: 200,
/// or 401/403/500 when a state-changing command's caller is not authenticated / not
/// authorized / could not be checked (ZooKeeper 3.9's statuses and error texts).
pub fn run(
    name: &str,
    params: Params,
    caller: &Caller,
    auth: &AuthConfig,
    calls: &Sender<CoreCall>,
    files: &Files,
) -> (u16, String) {
    let (status, fields) = match find(name) {
        None => (200, refusal(name, format!("Unknown command: {name}"))),
        Some(command) => {
            let ids = if command.auth {
                match authenticate(caller, auth) {
                    Ok(ids) => Some(ids),
                    Err((status, error)) => {
                        tracing::warn!(command = name, ip = %caller.ip, error, "AdminServer: command refused");
                        return (status, render(refusal(name, error.into())));
                    }
                }
            } else {
                None
            };
            let handler = command.handler;
            // The ACL check and the command run in one call on the core thread, so the ACL
            // cannot change between them.
            let ran = ask_core(calls, move |ctx| match &ids {
                Some(ids) => authorize(ctx, ids).map(|()| handler(ctx, &params)),
                None => Ok(handler(ctx, &params)),
            });
            match ran {
                Some(Ok(mut fields)) => {
                    commands::fill_files(command.names[0], &mut fields, files);
                    (200, answer(command.names[0], fields))
                }
                Some(Err((status, error))) => {
                    tracing::warn!(command = name, ip = %caller.ip, error, "AdminServer: command refused");
                    (status, refusal(name, error.into()))
                }
                None => (
                    200,
                    refusal(
                        command.names[0],
                        "This ZooKeeper instance is not currently serving requests".into(),
                    ),
                ),
            }
        }
    };
    (status, render(fields))
}

fn render(fields: Fields) -> String {
    serde_json::to_string_pretty(&Value::Object(fields)).expect("JSON values always serialise")
}

/// A refusal: the HTTP status and ZooKeeper's error text.
type Refused = (u16, &'static str);

/// ZooKeeper's `Commands.handleAuthentication`: the header is `<scheme>` or `<scheme> <auth>`
/// (split on single spaces, as Java's `split(" ")`); the ids come from rzk's own providers.
fn authenticate(caller: &Caller, config: &AuthConfig) -> Result<Vec<Id>, Refused> {
    const NOT_AUTHENTICATED: Refused = (401, "Not authenticated");
    let Some(header) = caller.authorization.as_deref() else {
        return Err((401, "Auth info is missing for the command"));
    };
    // Java's split drops trailing empty strings.
    let parts: Vec<&str> = header.trim_end_matches(' ').split(' ').collect();
    let (scheme, data) = match parts[..] {
        [scheme] => (scheme, None),
        [scheme, data] => (scheme, Some(data)),
        _ => return Err(NOT_AUTHENTICATED),
    };
    let ids = match (scheme, data) {
        // ZooKeeper's digest provider fails on a missing auth part.
        ("digest", None) => return Err(NOT_AUTHENTICATED),
        ("digest", Some(_)) | ("ip", _) => rzk_session::auth::authenticate(
            scheme,
            data.unwrap_or_default().as_bytes(),
            &caller.ip.to_string(),
            config.super_digest.as_deref(),
        )
        .ok_or(NOT_AUTHENTICATED)?,
        ("x509", _) => {
            let subject = caller.x509_subject.as_deref().ok_or(NOT_AUTHENTICATED)?;
            let mut ids = Vec::with_capacity(2);
            if config.x509_super_user.as_deref() == Some(subject) {
                ids.push(Id::new("super", subject));
            }
            ids.push(Id::new("x509", subject));
            ids
        }
        _ => return Err(NOT_AUTHENTICATED),
    };
    if ids.is_empty() {
        return Err(NOT_AUTHENTICATED);
    }
    Ok(ids)
}

/// ZooKeeper's `Commands.handleAuthorization` for AuthRequest(ALL, "/"): the ACL of "/" as
/// the published tree has it, checked as every request's ACL is.
fn authorize(ctx: &Context<'_>, ids: &[Id]) -> Result<(), Refused> {
    let Some(root) = ctx.core.released().get("/") else {
        return Err((500, "Error occurred during auth"));
    };
    if rzk_tree::acl::allowed(root.acl(), perms::ALL, ids) {
        Ok(())
    } else {
        Err((403, "Not authorized"))
    }
}

/// The page at the bare command URL: a link per command, as ZooKeeper's.
pub fn index_html(base: &str) -> String {
    let mut names: Vec<&str> = COMMANDS.iter().map(|c| c.names[0]).collect();
    names.sort_unstable();
    names
        .iter()
        .map(|n| format!("<a href=\"{base}/{n}\">{n}</a>\n<br/>\n"))
        .collect()
}

/// `a=1&b=two` into a map; the last value of a repeated key wins, as in ZooKeeper (which
/// takes the first of a parameter's values; nobody repeats them).
pub fn parse_query(query: &str) -> Params {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let q = parse_query("path=%2Fa%2Fb&x=1+2&flag");
        assert_eq!(q["path"], "/a/b");
        assert_eq!(q["x"], "1 2");
        assert_eq!(q["flag"], "");
        assert_eq!(percent_decode("%zz%2"), "%zz%2");
    }

    #[test]
    fn names_are_unique() {
        let mut all: Vec<&str> = COMMANDS
            .iter()
            .flat_map(|c| c.names.iter().copied())
            .collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count);
    }

    fn caller(authorization: Option<&str>, x509_subject: Option<&str>) -> Caller {
        Caller {
            authorization: authorization.map(str::to_owned),
            ip: IpAddr::from([10, 0, 0, 7]),
            x509_subject: x509_subject.map(str::to_owned),
        }
    }

    #[test]
    fn state_changing_commands_want_auth() {
        let guarded: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| c.auth)
            .map(|c| c.names[0])
            .collect();
        assert_eq!(
            guarded,
            [
                "connection_stat_reset",
                "stat_reset",
                "set_trace_mask",
                "observer_connection_stat_reset"
            ]
        );
    }

    #[test]
    fn authentication_follows_zookeeper() {
        let super_digest = rzk_session::auth::generate_digest("super:secret");
        let config = AuthConfig {
            super_digest: Some(super_digest),
            x509_super_user: Some("CN=root".into()),
        };
        let ids = |h: Option<&str>, x509: Option<&str>| authenticate(&caller(h, x509), &config);
        let missing = Err((401, "Auth info is missing for the command"));
        let failed = Err((401, "Not authenticated"));
        assert_eq!(ids(None, None), missing);
        assert_eq!(ids(Some("digest"), None), failed);
        assert_eq!(ids(Some("digest a b"), None), failed);
        assert_eq!(ids(Some("nosuch x"), None), failed);
        assert_eq!(ids(Some("x509"), None), failed);
        assert_eq!(ids(Some("ip"), None), Ok(vec![Id::new("ip", "10.0.0.7")]));
        assert_eq!(ids(Some("ip "), None), Ok(vec![Id::new("ip", "10.0.0.7")]));
        let user = rzk_session::auth::generate_digest("u:p");
        assert_eq!(
            ids(Some("digest u:p"), None),
            Ok(vec![Id::new("digest", &user)])
        );
        let root = ids(Some("digest super:secret"), None).unwrap();
        assert_eq!(root[0], Id::new("super", ""));
        assert_eq!(
            ids(Some("x509"), Some("CN=a,O=b")),
            Ok(vec![Id::new("x509", "CN=a,O=b")])
        );
        assert_eq!(
            ids(Some("x509"), Some("CN=root")),
            Ok(vec![
                Id::new("super", "CN=root"),
                Id::new("x509", "CN=root")
            ])
        );
    }

    #[test]
    fn envelope_order_follows_zookeeper() {
        let ok = answer("stats", commands::fields(json!({ "node_count": 5 })));
        let keys: Vec<&str> = ok.keys().map(String::as_str).collect();
        assert_eq!(keys, ["node_count", "command", "error"]);
        assert_eq!(ok["error"], Value::Null);

        let own_error = answer("leader", commands::failed("server is not initialized"));
        let keys: Vec<&str> = own_error.keys().map(String::as_str).collect();
        assert_eq!(keys, ["error", "command"]);

        let unknown = refusal("nope", "Unknown command: nope".into());
        let keys: Vec<&str> = unknown.keys().map(String::as_str).collect();
        assert_eq!(keys, ["command", "error"]);
    }
}
