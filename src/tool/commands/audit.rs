//! `aria-crypt audit`: what encryption leaves exposed in a data directory.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Ctx, info::key_id_text};
use crate::aria::RowFormat;
use crate::keys::FileKeyProvider;
use crate::tool::cli::AuditArgs;
use crate::tool::journal;
use crate::tool::keys::{Keys, list};
use crate::tool::outcome::{Status, ToolError};
use crate::tool::progress::Progress;
use crate::tool::report::{Report, out, plural, versions_json};
use crate::tool::server::{self, CONTROL_FILE, ServerState};
use crate::tool::table::Table;
use crate::tool::tally::census;
use crate::tool::walk::{files_under, pair};

/// Files larger than this are not key files (MariaDB reads at most 1 MiB).
const KEY_FILE_MAX: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    High,
    Medium,
    Info,
}

impl Severity {
    fn name(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug)]
struct Finding {
    severity: Severity,
    kind: &'static str,
    path: PathBuf,
    message: String,
}

/// What `aria_log_control` says.
#[derive(Debug)]
struct Control {
    block_size: Option<u16>,
    last_log: Option<u32>,
}

/// Parses the few fields of the control file worth reporting
/// (`storage/maria/ma_control_file.c`): magic `FE FE 0C`, version, uuid,
/// sizes of its two parts, block size; the last log number follows the
/// checksum and LSN of the changeable part.
fn read_control(path: &Path) -> Option<Control> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 26 || bytes[..3] != [0xfe, 0xfe, 0x0c] {
        return None;
    }
    let le16 = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let create_size = usize::from(le16(20)?);
    let last_log = bytes
        .get(create_size + 11..create_size + 15)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    Some(Control {
        block_size: le16(24),
        last_log,
    })
}

fn is_aria_log(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("aria_log."))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A MariaDB key file lying in the data directory: plain ones parse,
/// encrypted ones start with `Salted__`.
fn key_file_kind(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() == 0 || meta.len() > KEY_FILE_MAX {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    if bytes.starts_with(b"Salted__") {
        return Some("an encrypted key file (Salted__)");
    }
    FileKeyProvider::parse(&bytes, None, path)
        .ok()
        .map(|_| "a plain key file")
}

/// `path` relative to the data directory ("." for the directory itself).
fn rel(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(p) if p.as_os_str().is_empty() => ".".into(),
        Ok(p) => p.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// Runs the command.
pub fn run(ctx: Ctx, args: &AuditArgs) -> Status {
    let mut report = Report::new("audit", ctx.json);
    let keys = match Keys::from_args(&args.keys) {
        Ok(keys) => keys,
        Err(err) => {
            report.error(&err);
            return report.finish();
        }
    };
    let root = &args.datadir;
    if !root.is_dir() {
        report.error(&ToolError::input(format!(
            "{}: not a directory (audit takes a MariaDB data directory)",
            root.display()
        )));
        return report.finish();
    }
    let (files, problems) = match files_under(root) {
        Ok(found) => found,
        Err(err) => {
            report.error(&err);
            return report.finish();
        }
    };
    for problem in &problems {
        report.error(problem);
    }
    let (tables, orphans) = pair(root, &files);
    let mut findings = Vec::new();
    for orphan in &orphans {
        findings.push(Finding {
            severity: Severity::Medium,
            kind: "orphan_file",
            path: root.to_path_buf(),
            message: orphan.message.clone(),
        });
    }

    // The control file: server state and block size.
    let control_path = root.join(CONTROL_FILE);
    let control = read_control(&control_path);
    let server_state = server::state(root);
    let server_json = match &server_state {
        ServerState::Running(_, holder) => {
            json!({ "running": true, "holder": holder.to_string(), "pid": holder.pid })
        }
        ServerState::Stopped(_) => json!({ "running": false }),
        ServerState::NoControlFile => Value::Null,
    };
    if control_path.exists() && control.is_none() {
        findings.push(Finding {
            severity: Severity::Medium,
            kind: "bad_control_file",
            path: control_path.clone(),
            message: "not a valid Aria control file".into(),
        });
    }

    // Transaction logs.
    let mut logs = Vec::new();
    for log in files.iter().filter(|f| is_aria_log(f)) {
        let size = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        logs.push(json!({ "file": rel(root, log), "bytes": size }));
        findings.push(Finding {
            severity: Severity::High,
            kind: "aria_log",
            path: log.clone(),
            message: format!(
                "Aria transaction log ({size} bytes): never encrypted; it holds row images of every Aria table, encrypted ones included, in plaintext (keep it on encrypted storage; it is purged after checkpoints, see aria_log_purge_type)"
            ),
        });
    }

    // Key files in the data directory.
    for file in &files {
        let is_table_file = file
            .extension()
            .is_some_and(|e| e == "MAI" || e == "MAD" || e == "frm" || e == "ibd" || e == "opt");
        if is_table_file || is_aria_log(file) || file.ends_with(CONTROL_FILE) {
            continue;
        }
        if let Some(kind) = key_file_kind(file) {
            findings.push(Finding {
                severity: Severity::High,
                kind: "key_file_in_datadir",
                path: file.clone(),
                message: format!(
                    "{kind} inside the data directory: every copy or backup of the data directory carries the keys with the data"
                ),
            });
        }
    }

    // Tables.
    let mut table_json = Vec::new();
    let mut plaintext = 0usize;
    let mut encrypted = 0usize;
    // key id label -> version -> (pages, tables)
    let mut in_use: BTreeMap<String, BTreeMap<u32, (u64, u64)>> = BTreeMap::new();
    for files_ref in &tables {
        let name = rel(root, &files_ref.stem);
        if let Some(pending) = journal::pending(files_ref) {
            findings.push(Finding {
                severity: Severity::Medium,
                kind: "interrupted_rekey",
                path: files_ref.stem.clone(),
                message: pending.describe(files_ref),
            });
        }
        let table = match Table::open(files_ref) {
            Ok(t) => t,
            Err(err) => {
                report.error(&err);
                table_json.push(json!({ "table": name, "error": err.message }));
                continue;
            }
        };
        if let Some(why) = table.state.unclean() {
            findings.push(Finding {
                severity: Severity::Medium,
                kind: "not_closed_cleanly",
                path: files_ref.stem.clone(),
                message: format!(
                    "{why}: let the server run its recovery before re-keying or copying it"
                ),
            });
        }
        let h = &table.header;
        let readable: Vec<String> = [&files_ref.mai, &files_ref.mad]
            .into_iter()
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o004 != 0))
            .filter_map(|p| p.extension().map(|e| format!(".{}", e.to_string_lossy())))
            .collect();
        if !readable.is_empty() {
            findings.push(Finding {
                severity: Severity::Medium,
                kind: "world_readable",
                path: files_ref.stem.clone(),
                message: format!(
                    "{} readable by every user of the machine (the server's files are 0660)",
                    readable.join(" and ")
                ),
            });
        }
        if let Some(control_bs) = control.as_ref().and_then(|c| c.block_size)
            && u32::from(control_bs) != h.geometry.block_size
        {
            findings.push(Finding {
                severity: Severity::Info,
                kind: "block_size_mismatch",
                path: files_ref.mai.clone(),
                message: format!(
                    "block size {} differs from the server's aria_block_size {control_bs} (in {CONTROL_FILE}): the server refuses to open this table",
                    h.geometry.block_size
                ),
            });
        }
        let leftover = files_ref
            .stem
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("#sql"));
        if leftover {
            findings.push(Finding {
                severity: Severity::Medium,
                kind: "temporary_leftover",
                path: files_ref.stem.clone(),
                message: "a leftover temporary table (#sql…) from an interrupted ALTER TABLE or a crash: delete it when the server is stopped".into(),
            });
        }
        let mut t = json!({
            "table": name,
            "row_format": h.row_format.to_string(),
            "encrypted": h.is_encrypted(),
            "transactional": h.is_transactional(),
            "temporary": h.is_temporary(),
            "block_size": h.geometry.block_size,
            "index_bytes": table.mai_len,
            "data_bytes": table.mad_len,
        });
        if !h.is_encrypted() {
            plaintext += 1;
            let why = match h.row_format {
                RowFormat::Dynamic | RowFormat::Fixed => format!(
                    "ROW_FORMAT={}: MariaDB never encrypts {} tables, even with aria_encrypt_tables=ON; rebuild it with ROW_FORMAT=PAGE (ALTER TABLE ... ROW_FORMAT=PAGE) while aria_encrypt_tables=ON",
                    h.row_format, h.row_format
                ),
                RowFormat::Page => "ROW_FORMAT=PAGE but created while aria_encrypt_tables was OFF; rebuild it (ALTER TABLE ... ENGINE=Aria) with aria_encrypt_tables=ON".into(),
                other => format!("ROW_FORMAT={other}: Aria encrypts only PAGE tables"),
            };
            findings.push(Finding {
                severity: Severity::High,
                kind: "unencrypted_table",
                path: files_ref.stem.clone(),
                message: format!(
                    "Aria table not encrypted ({} bytes of data in plaintext): {why}",
                    table.mad_len
                ),
            });
            table_json.push(t);
            continue;
        }
        let mut tally = match census(&table, &Progress::none()) {
            Ok(tally) => tally,
            Err(err) => {
                report.error(&err);
                continue;
            }
        };
        // Key version 0 is no key: what `aria-crypt decrypt` writes.
        if let Some(pages) = tally.versions.remove(&0) {
            plaintext += 1;
            findings.push(Finding {
                severity: Severity::High,
                kind: "decrypted_copy",
                path: files_ref.stem.clone(),
                message: format!(
                    "a decrypted copy: {pages} page{} in plaintext (key version 0, as `aria-crypt decrypt` writes them); delete it or move it out of the data directory",
                    if pages == 1 { "" } else { "s" }
                ),
            });
            t["decrypted_copy"] = json!(true);
            if tally.versions.is_empty() {
                table_json.push(t);
                continue;
            }
        }
        encrypted += 1;
        let (key_id, key_rule) = key_id_text(&table, keys.as_ref());
        let label = key_id.map_or_else(|| "1 or 2".to_string(), |id| id.to_string());
        for (&version, &pages) in &tally.versions {
            let entry = in_use
                .entry(label.clone())
                .or_default()
                .entry(version)
                .or_default();
            entry.0 += pages;
            entry.1 += 1;
        }
        if let (Some(keys), Some(id)) = (keys.as_ref(), key_id) {
            match keys.versions(id) {
                Some(have) if have.is_empty() => findings.push(Finding {
                    severity: Severity::High,
                    kind: "missing_key",
                    path: files_ref.stem.clone(),
                    message: format!("encrypted with key id {id}, which {} does not have: the table cannot be read", keys.name()),
                }),
                Some(have) => {
                    let missing: Vec<u32> = tally.versions.keys().copied().filter(|v| !have.contains(v)).collect();
                    if !missing.is_empty() {
                        findings.push(Finding {
                            severity: Severity::High,
                            kind: "missing_key_version",
                            path: files_ref.stem.clone(),
                            message: format!(
                                "pages use key id {id} version {} which {} does not have (it has {}): those pages cannot be read",
                                list(&missing),
                                keys.name(),
                                list(&have)
                            ),
                        });
                    }
                }
                None => {}
            }
        }
        if let Some(obj) = t.as_object_mut() {
            obj.insert("key_id".into(), json!(key_id));
            obj.insert("key_id_rule".into(), json!(key_rule));
            obj.insert("key_versions".into(), versions_json(&tally.versions));
            obj.insert("encrypted_pages".into(), json!(tally.encrypted));
        }
        table_json.push(t);
    }

    // Versions the key file has that no table uses.
    if let Some(keys) = keys.as_ref() {
        for id in keys.key_ids() {
            let used = in_use.get(&id.to_string());
            let unused: Vec<u32> = keys
                .versions(id)
                .unwrap_or_default()
                .into_iter()
                .filter(|v| used.is_none_or(|u| !u.contains_key(v)))
                .collect();
            if !unused.is_empty() && !tables.is_empty() {
                findings.push(Finding {
                    severity: Severity::Info,
                    kind: "unused_key_version",
                    path: root.to_path_buf(),
                    message: format!(
                        "key id {id} version {} is used by no Aria table here (InnoDB tables, logs and other data directories may still need it)",
                        list(&unused)
                    ),
                });
            }
        }
    }

    if plaintext > 0 || !logs.is_empty() {
        report.status(Status::Failed);
    }
    findings.sort_by_key(|f| f.severity);
    let in_use_json: serde_json::Map<String, Value> = in_use
        .iter()
        .map(|(id, versions)| {
            let v: serde_json::Map<String, Value> = versions
                .iter()
                .map(|(v, (pages, tables))| {
                    (v.to_string(), json!({ "pages": pages, "tables": tables }))
                })
                .collect();
            (id.clone(), Value::Object(v))
        })
        .collect();

    if ctx.json {
        report.set("datadir", json!(root.display().to_string()));
        report.set("server", server_json);
        report.set(
            "control_file",
            control.as_ref().map_or(
                Value::Null,
                |c| json!({ "block_size": c.block_size, "last_log_file": c.last_log }),
            ),
        );
        report.set("tables", Value::Array(table_json));
        report.set("encrypted_tables", json!(encrypted));
        report.set("unencrypted_tables", json!(plaintext));
        report.set("aria_logs", Value::Array(logs));
        report.set("key_versions", Value::Object(in_use_json));
        report.set(
            "findings",
            Value::Array(
                findings
                    .iter()
                    .map(|f| {
                        json!({
                            "severity": f.severity.name(),
                            "kind": f.kind,
                            "path": f.path.display().to_string(),
                            "message": f.message,
                        })
                    })
                    .collect(),
            ),
        );
        return report.finish();
    }

    out(format!("Data directory {}", root.display()));
    let state = match (&server_state, &control) {
        (ServerState::Running(_, holder), _) => format!("a server is running ({holder})"),
        (ServerState::Stopped(_), Some(c)) => format!(
            "no server running; aria_block_size {}, last log file {}",
            c.block_size.map_or("?".into(), |b| b.to_string()),
            c.last_log.map_or("?".into(), |l| l.to_string())
        ),
        (ServerState::Stopped(_), None) => "no server running".into(),
        (ServerState::NoControlFile, _) => {
            format!("no {CONTROL_FILE} (not a data directory, or Aria logs kept elsewhere)")
        }
    };
    out(format!("  {state}"));
    out(format!(
        "  {} Aria table{}: {encrypted} encrypted, {plaintext} not encrypted; {} Aria log file{}",
        tables.len(),
        plural(tables.len() as u64),
        logs.len(),
        plural(logs.len() as u64)
    ));
    if !in_use.is_empty() {
        out("Key versions in use:");
        for (id, versions) in &in_use {
            let text = versions
                .iter()
                .map(|(v, (pages, tables))| {
                    format!(
                        "version {v} ({pages} page{} in {tables} table{})",
                        plural(*pages),
                        plural(*tables)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            out(format!("  key id {id}: {text}"));
        }
    }
    if findings.is_empty() {
        out("Findings: none");
    } else {
        out("Findings:");
        for f in &findings {
            out(format!(
                "  {:<6} {}: {}",
                f.severity.name().to_uppercase(),
                rel(root, &f.path),
                f.message
            ));
        }
    }
    report.finish()
}
