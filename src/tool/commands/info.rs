//! `aria-crypt info`: how a table is stored and encrypted, from its files
//! alone.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Ctx, hex, note_pending, note_unclean, resolve, table_json};
use crate::tool::ciphers::key_id_for;
use crate::tool::cli::InfoArgs;
use crate::tool::keys::Keys;
use crate::tool::outcome::Status;
use crate::tool::progress::Progress;
use crate::tool::report::{Report, out, versions_json, versions_text};
use crate::tool::table::Table;
use crate::tool::tally::census;
use crate::tool::walk::TableRef;

/// Runs the command.
pub fn run(ctx: Ctx, args: &InfoArgs) -> Status {
    let mut report = Report::new("info", ctx.json);
    let keys = match Keys::from_args(&args.keys) {
        Ok(keys) => keys,
        Err(err) => {
            report.error(&err);
            return report.finish();
        }
    };
    for table in resolve(&mut report, &args.tables) {
        one(ctx, &mut report, keys.as_ref(), &table);
    }
    report.finish()
}

/// The key id as the server decides it, as a number when it is known and
/// a sentence.
pub fn key_id_text(table: &Table, keys: Option<&Keys>) -> (Option<u32>, String) {
    if !table.header.is_encrypted() {
        return (None, "none (not encrypted)".into());
    }
    match keys {
        Some(keys) => {
            let (id, option) = match key_id_for(table, keys) {
                Ok(choice) => choice,
                Err(err) => return (None, format!("unknown ({err})")),
            };
            let why = if option {
                "from --key-id"
            } else if table.header.is_temporary() {
                if id == 2 {
                    "temporary table, the key provider has key 2"
                } else {
                    "temporary table, the key provider has no key 2"
                }
            } else {
                "ordinary table"
            };
            (Some(id), format!("{id} ({why})"))
        }
        None if table.header.is_temporary() => (
            None,
            "1, or 2 if the key provider has key 2 (temporary table)".into(),
        ),
        None => (Some(1), "1".into()),
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn one(ctx: Ctx, report: &mut Report, keys: Option<&Keys>, files: &TableRef) {
    let pending = note_pending(report, files);
    let table = match Table::open(files) {
        Ok(table) => table,
        Err(err) => {
            report.error(&err);
            return;
        }
    };
    let unclean = note_unclean(report, &table);
    let length_problem = table.length_problem();
    if let Some(problem) = &length_problem {
        report.warn(problem.clone());
    }
    let progress = Progress::new(
        table.mai_len + table.mad_len,
        &format!("read {}", table.name()),
    );
    let tally = match census(&table, &progress) {
        Ok(tally) => tally,
        Err(err) => {
            report.error(&err);
            return;
        }
    };
    drop(progress);
    let h = &table.header;
    let (key_id, key_id_rule) = key_id_text(&table, keys);
    let mut by_file: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for ((file, kind), n) in &tally.kinds {
        by_file
            .entry(file)
            .or_default()
            .insert((*kind).to_string(), json!(n));
    }

    let mut m = table_json(&table);
    m.insert("ok".into(), json!(true));
    m.insert("transactional".into(), json!(h.is_transactional()));
    m.insert("temporary".into(), json!(h.is_temporary()));
    m.insert("page_checksums".into(), json!(h.has_page_checksums()));
    m.insert("key_id".into(), json!(key_id));
    m.insert("key_id_rule".into(), json!(key_id_rule));
    m.insert("keystart".into(), json!(h.geometry.keystart));
    m.insert(
        "space".into(),
        h.crypt
            .map_or(Value::Null, |c| json!(format!("0x{:08x}", c.space))),
    );
    m.insert(
        "scheme_iv".into(),
        h.crypt.map_or(Value::Null, |c| json!(hex(&c.scheme_iv))),
    );
    m.insert("index_bytes".into(), json!(table.mai_len));
    m.insert("data_bytes".into(), json!(table.mad_len));
    m.insert(
        "pages".into(),
        json!({
            "total": tally.total,
            "encrypted": tally.encrypted,
            "skipped": tally.skipped,
            "by_kind": by_file,
        }),
    );
    m.insert("key_versions".into(), versions_json(&tally.versions));
    m.insert("pending_rekey".into(), pending);
    m.insert("closed_cleanly".into(), json!(unclean.is_null()));
    m.insert("not_closed_cleanly".into(), unclean.clone());
    m.insert("truncated".into(), json!(length_problem));

    if !ctx.json {
        out(table.name());
        let row = |label: &str, value: String| out(format!("  {label:<15} {value}"));
        row(
            "files",
            format!(
                "{} ({} bytes), {} ({} bytes)",
                table.files.mai.display(),
                table.mai_len,
                table.files.mad.display(),
                table.mad_len
            ),
        );
        row("row format", h.row_format.to_string());
        row("block size", h.geometry.block_size.to_string());
        row("encrypted", yes(h.is_encrypted()).into());
        row("transactional", yes(h.is_transactional()).into());
        row("temporary", yes(h.is_temporary()).into());
        row("page checksums", yes(h.has_page_checksums()).into());
        row(
            "closed cleanly",
            unclean
                .as_str()
                .map_or_else(|| "yes".to_string(), |why| format!("no: {why}")),
        );
        row("key id", key_id_rule);
        if let Some(crypt) = h.crypt {
            row("space", format!("0x{:08x}", crypt.space));
            row("scheme_iv", hex(&crypt.scheme_iv));
        }
        for (file, kinds) in &by_file {
            let counts = kinds
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ");
            row(&format!("pages (.{file})"), counts);
        }
        if h.is_encrypted() {
            row("key versions", versions_text(&tally.versions));
        }
    }
    report.table(m.into());
}
