//! The AdminServer's commands, answered in ZooKeeper 3.8's JSON shapes (`Commands.java`): the
//! same names and aliases, the same field names and JSON types, so tools written against
//! ZooKeeper's AdminServer read rzk unchanged. Values are rzk's own; where a ZooKeeper field
//! has no rzk counterpart it is left out rather than filled with a made-up figure (see
//! commands.rs for each).
//!
//! Commands run on the core thread (see http.rs) and only read, except the few that reset
//! counters or set the trace mask, as in ZooKeeper. What comes from the data directories
//! (sizes, the newest snapshot) is read afterwards on the HTTP thread.

mod commands;

use std::collections::BTreeMap;

use crossbeam_channel::Sender;
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

/// One command: its primary name (first; answers carry it whichever alias was asked), its
/// aliases, and what it does.
struct Command {
    names: &'static [&'static str],
    handler: Handler,
}

/// ZooKeeper 3.8's commands.
const COMMANDS: &[Command] = &[
    Command {
        names: &["ruok"],
        handler: |_, _| Fields::new(),
    },
    Command {
        names: &["server_stats", "srvr"],
        handler: commands::server_stats,
    },
    Command {
        names: &["stats", "stat"],
        handler: commands::stats,
    },
    Command {
        names: &["monitor", "mntr"],
        handler: commands::monitor,
    },
    Command {
        names: &["configuration", "conf", "config"],
        handler: commands::configuration,
    },
    Command {
        names: &["connections", "cons"],
        handler: commands::connections,
    },
    Command {
        names: &["connection_stat_reset", "crst"],
        handler: commands::connection_stat_reset,
    },
    Command {
        names: &["stat_reset", "srst"],
        handler: commands::stat_reset,
    },
    Command {
        names: &["environment", "env", "envi"],
        handler: commands::environment,
    },
    Command {
        names: &["dirs"],
        handler: commands::dirs,
    },
    Command {
        names: &["dump"],
        handler: commands::dump,
    },
    Command {
        names: &["watches", "wchc"],
        handler: commands::watches,
    },
    Command {
        names: &["watches_by_path", "wchp"],
        handler: commands::watches_by_path,
    },
    Command {
        names: &["watch_summary", "wchs"],
        handler: commands::watch_summary,
    },
    Command {
        names: &["is_read_only", "isro"],
        handler: |ctx, _| commands::fields(json!({ "read_only": ctx.mode == Some("read-only") })),
    },
    Command {
        names: &["get_trace_mask", "gtmk"],
        handler: commands::get_trace_mask,
    },
    Command {
        names: &["set_trace_mask", "stmk"],
        handler: commands::set_trace_mask,
    },
    Command {
        names: &["leader", "lead"],
        handler: commands::leader,
    },
    Command {
        names: &["voting_view"],
        handler: commands::voting_view,
    },
    Command {
        names: &["zabstate"],
        handler: commands::zabstate,
    },
    Command {
        names: &["hash"],
        handler: commands::hash,
    },
    Command {
        names: &["last_snapshot", "lsnp"],
        handler: commands::last_snapshot,
    },
    Command {
        names: &["observers", "obsr"],
        handler: commands::observers,
    },
    Command {
        names: &["observer_connection_stat_reset", "orst"],
        handler: commands::observer_connection_stat_reset,
    },
    Command {
        names: &["system_properties", "sysp"],
        handler: commands::system_properties,
    },
    Command {
        names: &["initial_configuration", "icfg"],
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

/// Runs `name` and renders ZooKeeper's JSON answer.
pub fn run(name: &str, params: Params, calls: &Sender<CoreCall>, files: &Files) -> String {
    let fields = match find(name) {
        None => refusal(name, format!("Unknown command: {name}")),
        Some(command) => {
            let handler = command.handler;
            match ask_core(calls, move |ctx| handler(ctx, &params)) {
                Some(mut fields) => {
                    commands::fill_files(command.names[0], &mut fields, files);
                    answer(command.names[0], fields)
                }
                None => refusal(
                    command.names[0],
                    "This ZooKeeper instance is not currently serving requests".into(),
                ),
            }
        }
    };
    serde_json::to_string_pretty(&Value::Object(fields)).expect("JSON values always serialise")
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
