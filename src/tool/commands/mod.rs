//! The commands, and what several of them share: resolving TABLE arguments,
//! verifying a table, describing it in JSON.

pub mod audit;
pub mod bench;
pub mod completions;
pub mod decrypt;
pub mod info;
pub mod manpages;
pub mod rekey;
pub mod verify;

use std::path::PathBuf;

use serde_json::{Map, Value, json};

use super::ciphers::CipherFactory;
use super::detect::{Choice, choose};
use super::diagnose::Checker;
use super::journal;
use super::keys::Keys;
use super::outcome::ToolError;
use super::progress::Progress;
use super::report::{Report, pages_json, problems_json, versions_json};
use super::server::{self, ServerState};
use super::table::Table;
use super::tally::Tally;
use super::walk::{self, TableRef};
use crate::kernel::{Backend, Mode};

/// Options every command sees.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// JSON output.
    pub json: bool,
    /// `--backend`.
    pub backend: Option<Backend>,
}

/// The tables the arguments name; problems go to the report.
pub fn resolve(report: &mut Report, args: &[PathBuf]) -> Vec<TableRef> {
    let walk = walk::walk(args);
    for problem in &walk.problems {
        report.error(problem);
    }
    for note in &walk.notes {
        report.warn(note.clone());
    }
    walk.tables
}

/// Warns about what an interrupted rekey left next to the table; returns
/// it for JSON.
pub fn note_pending(report: &mut Report, table: &TableRef) -> Value {
    match journal::pending(table) {
        Some(pending) => {
            report.warn(pending.describe(table));
            json!(pending.kind())
        }
        None => Value::Null,
    }
}

/// Warns when a server runs on the table's data directory: its cache may
/// hold pages newer than the files.
pub fn note_server(report: &mut Report, table: &TableRef) {
    let dir = table.mai.parent().unwrap_or(std::path::Path::new("."));
    if let ServerState::Running(control, holder) = server::state(dir) {
        report.warn(format!(
            "{}: a MariaDB server is running on this data directory ({holder} holds {}); pages it has not flushed yet are not in the files",
            table.stem.display(),
            control.display()
        ));
    }
}

/// Warns about a table that was not closed cleanly; returns why, for JSON.
pub fn note_unclean(report: &mut Report, table: &Table) -> Value {
    match table.state.unclean() {
        Some(why) => {
            report.warn(format!(
                "{}: {why}; let the server run its recovery (start it, or CHECK TABLE / REPAIR TABLE) before re-keying it",
                table.name()
            ));
            json!(why)
        }
        None => Value::Null,
    }
}

/// A table verified with `keys`.
#[derive(Debug)]
pub struct Verified {
    /// Key id and algorithm.
    pub choice: Choice,
    /// Counts and problems.
    pub tally: Tally,
}

/// Chooses key id and algorithm, then decrypts and checks every page.
///
/// # Errors
/// Exit status 2 on a read error.
pub fn verify_table(
    ctx: Ctx,
    table: &Table,
    keys: &Keys,
    requested: Option<Mode>,
) -> Result<Verified, ToolError> {
    let factory = CipherFactory {
        table,
        backend: ctx.backend,
    };
    let choice = choose(factory, keys, requested)?;
    let checker = Checker::new(factory, keys, choice)?;
    let progress = Progress::new(
        table.mai_len + table.mad_len,
        &format!("verify {}", table.name()),
    );
    let tally = checker.verify(table, &progress)?;
    Ok(Verified { choice, tally })
}

/// When every encrypted page of one file fails and every one of the other
/// file verifies, the two files are not of one table: a `.MAI` or `.MAD`
/// swapped in from elsewhere, or a table left half replaced. Says so.
pub fn generation_mismatch(table: &Table, tally: &Tally) -> Option<String> {
    let encrypted = |ext: &str| -> u64 {
        tally
            .kinds
            .iter()
            .filter(|((file, kind), _)| {
                *file == ext && !matches!(*kind, "header" | "bitmap" | "unwritten")
            })
            .map(|(_, n)| n)
            .sum()
    };
    let failed = |path: &std::path::Path| -> u64 {
        tally
            .problems
            .iter()
            .filter(|p| p.page.is_some() && p.path == path)
            .count() as u64
    };
    let files = [
        ("MAI", &table.files.mai, "MAD", &table.files.mad),
        ("MAD", &table.files.mad, "MAI", &table.files.mai),
    ];
    files.into_iter().find_map(|(ext, path, other_ext, other)| {
        let bad = failed(path);
        (bad > 0 && bad == encrypted(ext) && encrypted(other_ext) > 0 && failed(other) == 0).then(|| {
            format!(
                "every encrypted page of {} fails while every one of {} verifies: the two files are not of the same table (a swapped .{ext} or .{other_ext}, or a table left half replaced by an interrupted rekey: `aria-crypt rekey --recover` if a journal is there, else restore the file that does not belong), not damaged pages",
                path.display(),
                other.display()
            )
        })
    })
}

/// The fields every per-table JSON object has.
pub fn table_json(table: &Table) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("table".into(), json!(table.name()));
    m.insert(
        "index_file".into(),
        json!(table.files.mai.display().to_string()),
    );
    m.insert(
        "data_file".into(),
        json!(table.files.mad.display().to_string()),
    );
    m.insert(
        "row_format".into(),
        json!(table.header.row_format.to_string()),
    );
    m.insert("block_size".into(), json!(table.header.geometry.block_size));
    m.insert("encrypted".into(), json!(table.header.is_encrypted()));
    m
}

/// The verification fields: `ok`, `algorithm`, `key_id`, `pages`,
/// `key_versions`, `problems`.
pub fn verification_json(m: &mut Map<String, Value>, v: &Verified) {
    m.insert("ok".into(), json!(v.tally.ok()));
    m.insert("algorithm".into(), json!(v.choice.mode.name()));
    m.insert(
        "algorithm_source".into(),
        json!(v.choice.mode_source_name()),
    );
    m.insert("key_id".into(), json!(v.choice.key_id));
    m.insert(
        "key_id_source".into(),
        json!(if v.choice.key_id_option {
            "option"
        } else {
            "server_rule"
        }),
    );
    m.insert("pages".into(), pages_json(&v.tally));
    m.insert("key_versions".into(), versions_json(&v.tally.versions));
    let (problems, omitted) = problems_json(&v.tally.problems);
    m.insert("problems".into(), problems);
    m.insert("problems_omitted".into(), json!(omitted));
}

/// The same fields for an unencrypted table: nothing to verify.
pub fn plain_json(m: &mut Map<String, Value>, table: &Table) {
    let total = table.page_count();
    m.insert("ok".into(), json!(true));
    m.insert("algorithm".into(), Value::Null);
    m.insert("key_id".into(), Value::Null);
    m.insert(
        "pages".into(),
        json!({ "total": total, "encrypted": 0, "verified": 0, "failed": 0, "skipped": total }),
    );
    m.insert("key_versions".into(), json!({}));
    m.insert("problems".into(), json!([]));
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
