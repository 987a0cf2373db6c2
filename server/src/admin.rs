//! The AdminServer's commands, answered in ZooKeeper's JSON shapes (`Commands.java`): every
//! answer is an object with `command` and `error` plus the command's own fields, so tools
//! written against ZooKeeper's AdminServer read rzk unchanged.
//!
//! Commands run on the core thread (see http.rs) and only read, except the few that reset
//! counters or set the trace mask, as in ZooKeeper.

use std::collections::BTreeMap;

use crossbeam_channel::Sender;
use serde_json::{json, Map, Value};

use crate::fourlw::{self, Context};
use crate::http::{ask_core, CoreCall};

type Fields = Map<String, Value>;
type Handler = fn(&Context<'_>, &BTreeMap<String, String>) -> Result<Fields, String>;

/// One command: its primary name (first), its aliases, and what it does.
struct Command {
    names: &'static [&'static str],
    handler: Handler,
}

const COMMANDS: &[Command] = &[
    Command {
        names: &["ruok"],
        handler: |_, _| Ok(Fields::new()),
    },
    Command {
        names: &["monitor", "mntr"],
        handler: monitor,
    },
];

fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.names.contains(&name))
}

/// ZooKeeper's JSON has numbers where mntr prints numbers.
fn typed(value: String) -> Value {
    if let Ok(v) = value.parse::<i64>() {
        return json!(v);
    }
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() => json!(v),
        _ => Value::String(value),
    }
}

fn monitor(ctx: &Context<'_>, _: &BTreeMap<String, String>) -> Result<Fields, String> {
    Ok(fourlw::mntr_pairs(ctx)
        .into_iter()
        .map(|(k, v)| (k.strip_prefix("zk_").unwrap_or(&k).to_owned(), typed(v)))
        .collect())
}

/// Runs `name` and renders ZooKeeper's JSON answer.
pub fn run(name: &str, params: BTreeMap<String, String>, calls: &Sender<CoreCall>) -> String {
    let result = match find(name) {
        None => Err(format!("Unknown command: {name}")),
        Some(command) => {
            let handler = command.handler;
            ask_core(calls, move |ctx| handler(ctx, &params)).unwrap_or_else(|| {
                Err("This ZooKeeper instance is not currently serving requests".into())
            })
        }
    };
    let mut answer = Fields::new();
    answer.insert("command".into(), json!(name));
    match result {
        Ok(fields) => {
            answer.insert("error".into(), Value::Null);
            answer.extend(fields);
        }
        Err(error) => {
            answer.insert("error".into(), json!(error));
        }
    }
    serde_json::to_string_pretty(&Value::Object(answer)).expect("JSON values always serialise")
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
pub fn parse_query(query: &str) -> BTreeMap<String, String> {
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
    fn numbers_are_numbers() {
        assert_eq!(typed("12".into()), json!(12));
        assert_eq!(typed("0.5".into()), json!(0.5));
        assert_eq!(typed("3.9.3-rzk".into()), json!("3.9.3-rzk"));
    }
}
