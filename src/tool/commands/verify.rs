//! `aria-crypt verify`: every page decrypted in memory, every checksum
//! checked, every failure explained.

use serde_json::json;

use rayon::prelude::*;

use super::{
    Ctx, Verified, generation_mismatch, note_pending, note_server, note_unclean, plain_json,
    resolve, table_json, verification_json, verify_table,
};
use crate::tool::cli::VerifyArgs;
use crate::tool::keys::Keys;
use crate::tool::outcome::{Status, ToolError};
use crate::tool::report::{Report, failed_table_json, out, plural, problem_lines, versions_text};
use crate::tool::table::Table;
use crate::tool::walk::TableRef;

/// Runs the command.
pub fn run(ctx: Ctx, args: &VerifyArgs) -> Status {
    let mut report = Report::new("verify", ctx.json);
    let keys = match Keys::required(&args.keys, "verify") {
        Ok(keys) => keys,
        Err(err) => {
            report.error(&err);
            return report.finish();
        }
    };
    let tables = resolve(&mut report, &args.tables);
    // Tables are verified a window at a time in parallel (small tables are
    // one batch each, and would leave cores idle one after another), then
    // reported in order.
    let window = rayon::current_num_threads() * 4;
    for chunk in tables.chunks(window) {
        let checked: Vec<_> = chunk
            .par_iter()
            .map(|files| check(ctx, &keys, files, args))
            .collect();
        for (files, checked) in chunk.iter().zip(checked) {
            one(ctx, &mut report, files, checked);
        }
    }
    report.finish()
}

/// A table opened, and verified if it is encrypted.
type Checked = Result<(Table, Option<Result<Verified, ToolError>>), ToolError>;

fn check(ctx: Ctx, keys: &Keys, files: &TableRef, args: &VerifyArgs) -> Checked {
    let table = Table::open(files)?;
    let verified = table
        .header
        .is_encrypted()
        .then(|| verify_table(ctx, &table, keys, args.algorithm.mode()));
    Ok((table, verified))
}

fn one(ctx: Ctx, report: &mut Report, files: &TableRef, checked: Checked) {
    let pending = note_pending(report, files);
    note_server(report, files);
    let (table, verified) = match checked {
        Ok(table) => table,
        Err(err) => {
            report.error(&err);
            report.table(failed_table_json(&files.stem, &err.message));
            return;
        }
    };
    note_unclean(report, &table);
    let mut m = table_json(&table);
    m.insert("pending_rekey".into(), pending);
    // A file shorter than the header says fails whatever its pages say.
    let truncated = table.length_problem();
    if let Some(problem) = &truncated {
        report.error(&ToolError::failed(problem.clone()));
    }
    let mark_truncated = |m: &mut serde_json::Map<String, serde_json::Value>| {
        m.insert("truncated".into(), json!(truncated));
        if truncated.is_some() {
            m.insert("ok".into(), json!(false));
        }
    };
    let Some(verified) = verified else {
        plain_json(&mut m, &table);
        mark_truncated(&mut m);
        if !ctx.json {
            out(format!(
                "PLAIN {}: not encrypted (ROW_FORMAT={}), nothing to verify",
                table.name(),
                table.header.row_format
            ));
        }
        report.table(m.into());
        return;
    };
    let verified = match verified {
        Ok(v) => v,
        Err(err) => {
            report.error(&err);
            return;
        }
    };
    verification_json(&mut m, &verified);
    mark_truncated(&mut m);
    let tally = &verified.tally;
    let mismatch = generation_mismatch(&table, tally);
    m.insert("files_mismatch".into(), json!(mismatch));
    report.status(if tally.ok() {
        Status::Ok
    } else {
        Status::Failed
    });
    if !ctx.json {
        let how = format!(
            "{}; key id {}; key versions {}",
            verified.choice.describe_mode(),
            verified.choice.key_id,
            versions_text(&tally.versions)
        );
        if tally.ok() && truncated.is_some() {
            out(format!(
                "FAIL  {}: truncated ({} encrypted page{} present verified)",
                table.name(),
                tally.verified,
                plural(tally.verified)
            ));
        } else if tally.ok() {
            out(format!(
                "OK    {}: {} encrypted page{} verified ({how})",
                table.name(),
                tally.verified,
                plural(tally.verified)
            ));
        } else {
            out(format!(
                "FAIL  {}: {} of {} encrypted page{} failed ({how})",
                table.name(),
                tally.failed,
                tally.encrypted,
                plural(tally.encrypted)
            ));
            if let Some(mismatch) = &mismatch {
                out(format!("      {mismatch}"));
            }
            for line in problem_lines(&tally.problems) {
                out(format!("      {line}"));
            }
        }
    }
    report.table(m.into());
}
