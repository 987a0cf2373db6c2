//! Operator tools: print a transaction log or a snapshot in a readable form (the spirit of
//! ZooKeeper's TxnLogToolkit and SnapshotFormatter).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use rzk_proto::{Txn, TxnBody};
use rzk_wal::{FileStorage, SyncMode};

pub fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rzk: {e}");
            ExitCode::FAILURE
        }
    }
}

fn printable(data: &Option<Vec<u8>>) -> String {
    match data {
        None => "null".into(),
        Some(d) if d.iter().all(|&b| (0x20..0x7f).contains(&b)) => {
            format!("{:?}", String::from_utf8_lossy(d))
        }
        Some(d) => {
            let mut hex = String::from("0x");
            for b in d.iter().take(64) {
                let _ = write!(hex, "{b:02x}");
            }
            if d.len() > 64 {
                let _ = write!(hex, "… ({} bytes)", d.len());
            }
            hex
        }
    }
}

fn describe(body: &TxnBody) -> String {
    match body {
        TxnBody::CreateSession { timeout_ms, .. } => format!("createSession timeout={timeout_ms}"),
        TxnBody::CloseSession => "closeSession".into(),
        TxnBody::Create {
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
            ..
        } => format!(
            "create {path} data={} acl={} owner={ephemeral_owner:#x} parentCversion={parent_cversion}",
            printable(data),
            acl.iter()
                .map(|a| format!("{}:{}={}", a.id.scheme, a.id.id, a.perms))
                .collect::<Vec<_>>()
                .join(",")
        ),
        TxnBody::Delete { path } => format!("delete {path}"),
        TxnBody::SetData {
            path,
            data,
            version,
        } => format!("setData {path} data={} version={version}", printable(data)),
        TxnBody::SetAcl { path, aversion, .. } => format!("setACL {path} aversion={aversion}"),
        TxnBody::Check { path } => format!("check {path}"),
        TxnBody::Multi(ops) => format!(
            "multi [{}]",
            ops.iter().map(describe).collect::<Vec<_>>().join("; ")
        ),
        TxnBody::Error { err } => format!("error {err}"),
    }
}

fn line(txn: &Txn) -> String {
    format!(
        "zxid={:#x} time={} session={:#x} cxid={:#x} {}",
        txn.zxid,
        txn.time_ms,
        txn.session_id,
        txn.cxid,
        describe(&txn.body)
    )
}

pub fn dump_log(dir: &Path) -> Result<(), String> {
    let dir = if dir.join("rzk").is_dir() {
        dir.join("rzk")
    } else {
        dir.to_owned()
    };
    let storage = FileStorage::open(&dir, SyncMode::None)
        .map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    let recovered = rzk_wal::recover(&storage, 0).map_err(|e| e.to_string())?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (base, name) in &recovered.segments {
        let _ = writeln!(
            out,
            "# segment {} (base zxid {base:#x})",
            dir.join(name).display()
        );
    }
    for txn in &recovered.txns {
        if writeln!(out, "{}", line(txn)).is_err() {
            return Ok(());
        }
    }
    if let Some((path, offset, reason)) = &recovered.torn {
        let _ = writeln!(out, "# torn tail in {path} at byte {offset}: {reason}");
    }
    let _ = writeln!(
        out,
        "# {} transactions, last zxid {:#x}",
        recovered.txns.len(),
        recovered.last_zxid
    );
    Ok(())
}

pub fn dump_snapshot(file: &Path, with_data: bool) -> Result<(), String> {
    let snapshot = rzk_snapshot::load(file).map_err(|e| e.to_string())?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(
        out,
        "# snapshot {} zxid {:#x}: {} znodes, {} sessions",
        file.display(),
        snapshot.zxid,
        snapshot.tree.node_count(),
        snapshot.sessions.len()
    );
    for s in &snapshot.sessions {
        let _ = writeln!(out, "session {:#x} timeout={}", s.id, s.timeout_ms);
    }
    let mut paths: Vec<_> = snapshot.tree.paths().collect();
    paths.sort_by(|a, b| a.0.cmp(b.0));
    for (path, node) in paths {
        let st = &node.stat();
        let mut l = format!(
            "{path} czxid={:#x} mzxid={:#x} pzxid={:#x} ctime={} mtime={} version={} cversion={} aversion={} owner={:#x} dataLength={} numChildren={}",
            st.czxid, st.mzxid, st.pzxid, st.ctime, st.mtime, st.version, st.cversion, st.aversion,
            st.ephemeral_owner, st.data_length, st.num_children
        );
        if with_data {
            let data = node.data().map(<[u8]>::to_vec);
            let _ = write!(l, " data={}", printable(&data));
        }
        if writeln!(out, "{l}").is_err() {
            return Ok(());
        }
    }
    Ok(())
}
