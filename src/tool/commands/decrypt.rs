//! `aria-crypt decrypt`: decrypted copies of tables, same layout, for
//! forensic tools. The input is only ever read.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{Ctx, note_pending, note_server, plain_json, resolve, table_json, verification_json};
use crate::tool::ciphers::CipherFactory;
use crate::tool::cli::DecryptArgs;
use crate::tool::detect::choose;
use crate::tool::diagnose::Checker;
use crate::tool::keys::Keys;
use crate::tool::outcome::{Status, ToolError};
use crate::tool::progress::Progress;
use crate::tool::report::{Report, failed_table_json, out, plural, problem_lines};
use crate::tool::scan::PagedFile;
use crate::tool::server::CONTROL_FILE;
use crate::tool::table::Table;
use crate::tool::tally::Tally;
use crate::tool::walk::{DATA_EXT, INDEX_EXT, TableRef, with_ext};

const PARTIAL_SUFFIX: &str = "aria-crypt-partial";

/// Runs the command.
pub fn run(ctx: Ctx, args: &DecryptArgs) -> Status {
    let mut report = Report::new("decrypt", ctx.json);
    let keys = match Keys::required(&args.keys, "decrypt") {
        Ok(keys) => keys,
        Err(err) => {
            report.error(&err);
            return report.finish();
        }
    };
    let tables = resolve(&mut report, &args.tables);
    if tables.is_empty() {
        return report.finish();
    }
    if let Err(err) = refuse_datadir(&args.out_dir) {
        report.error(&err);
        return report.finish();
    }
    if let Err(err) = create_private_dir(&args.out_dir) {
        report.error(&err);
        return report.finish();
    }
    let mut claimed = HashSet::new();
    for table in tables {
        let outputs = outputs(&args.out_dir, &table);
        let result = check_outputs(&table, &outputs, args.overwrite, &mut claimed)
            .and_then(|()| one(ctx, &mut report, &keys, &table, &outputs, args));
        if let Err(err) = result {
            report.error(&err);
            report.table(failed_table_json(&table.stem, &err.message));
        }
    }
    report.finish()
}

/// Refuses an output directory inside a MariaDB data directory: one with
/// `aria_log_control`, or beside the `mysql/` system database, at or above
/// it. Plaintext there would be copied with every backup of the data.
fn refuse_datadir(out_dir: &Path) -> Result<(), ToolError> {
    let absolute = std::path::absolute(out_dir).unwrap_or_else(|_| out_dir.to_path_buf());
    // The nearest existing ancestor's real path too (links).
    let existing = absolute
        .ancestors()
        .find_map(|a| std::fs::canonicalize(a).ok())
        .unwrap_or_else(|| absolute.clone());
    for dir in absolute.ancestors().chain(existing.ancestors()) {
        let why = if dir.join(CONTROL_FILE).is_file() {
            format!("it has {CONTROL_FILE}")
        } else if dir.join("mysql").is_dir() {
            "it has the mysql system database".to_string()
        } else {
            continue;
        };
        return Err(ToolError::input(format!(
            "{}: refusing to write decrypted copies inside the MariaDB data directory {} ({why}): plaintext there goes into every backup of it; choose an --out-dir outside it",
            out_dir.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Creates `dir` and its missing parents with mode 0700 whatever the
/// umask: only the owner may list decrypted copies.
fn create_private_dir(dir: &Path) -> Result<(), ToolError> {
    let mut missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .collect();
    missing.reverse();
    for d in missing {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(d)
            .and_then(|()| std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| ToolError::write(d, &e))?;
    }
    Ok(())
}

/// `DIR/<rel>.MAI` and `DIR/<rel>.MAD`.
fn outputs(out_dir: &Path, table: &TableRef) -> [PathBuf; 2] {
    let stem = out_dir.join(&table.rel);
    [with_ext(&stem, INDEX_EXT), with_ext(&stem, DATA_EXT)]
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn canonical_dir(path: &Path) -> Option<PathBuf> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).ok()
}

/// Refuses outputs that would touch the input or, without `--overwrite`,
/// an existing file.
fn check_outputs(
    table: &TableRef,
    outputs: &[PathBuf; 2],
    overwrite: bool,
    claimed: &mut HashSet<PathBuf>,
) -> Result<(), ToolError> {
    for (input, output) in [&table.mai, &table.mad].into_iter().zip(outputs) {
        if let Some(dir) = canonical_dir(output) {
            let inputs = [
                canonical_dir(input),
                // The real file's directory, when the input is a symlink.
                std::fs::canonicalize(input)
                    .ok()
                    .and_then(|real| canonical_dir(&real)),
            ];
            if inputs.iter().flatten().any(|d| *d == dir) {
                return Err(ToolError::input(format!(
                    "{}: refusing to write into the table's own directory {}: choose another --out-dir",
                    table.stem.display(),
                    dir.display()
                )));
            }
        }
        if same_file(input, output) {
            return Err(ToolError::input(format!(
                "{}: is the input itself; refusing to overwrite it",
                output.display()
            )));
        }
        if output.exists() && !overwrite {
            return Err(ToolError::input(format!(
                "{}: already exists (use --overwrite to replace it)",
                output.display()
            )));
        }
        if !claimed.insert(output.clone()) {
            return Err(ToolError::input(format!(
                "{}: two tables would be written to this file; give them separately with different --out-dir",
                output.display()
            )));
        }
    }
    Ok(())
}

/// A file being written under a temporary name, renamed when complete and
/// removed otherwise.
struct Output {
    tmp: PathBuf,
    path: PathBuf,
    file: File,
    keep: bool,
}

impl Output {
    fn create(path: &Path) -> Result<Self, ToolError> {
        if let Some(dir) = path.parent() {
            create_private_dir(dir)?;
        }
        let tmp = with_ext(path, PARTIAL_SUFFIX);
        // Plaintext: readable by the owner only, whatever the umask.
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|f| {
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                Ok(f)
            })
            .map_err(|e| ToolError::write(&tmp, &e))?;
        Ok(Output {
            tmp,
            path: path.to_path_buf(),
            file,
            keep: false,
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), ToolError> {
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| ToolError::write(&self.tmp, &e))
    }

    fn finish(mut self) -> Result<(), ToolError> {
        self.file
            .sync_all()
            .map_err(|e| ToolError::write(&self.tmp, &e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| ToolError::write(&self.path, &e))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn one(
    ctx: Ctx,
    report: &mut Report,
    keys: &Keys,
    files: &TableRef,
    outputs: &[PathBuf; 2],
    args: &DecryptArgs,
) -> Result<(), ToolError> {
    let pending = note_pending(report, files);
    note_server(report, files);
    let table = Table::open(files)?;
    let mut m = table_json(&table);
    m.insert("pending_rekey".into(), pending);
    m.insert(
        "outputs".into(),
        json!(
            outputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        ),
    );
    if !table.header.is_encrypted() {
        for ((_, input, _), output) in table.files().into_iter().zip(outputs) {
            let out_file = Output::create(output)?;
            let mut src = File::open(input).map_err(|e| ToolError::io(input, &e))?;
            std::io::copy(&mut src, &mut &out_file.file)
                .map_err(|e| ToolError::write(&out_file.tmp, &e))?;
            out_file.finish()?;
        }
        plain_json(&mut m, &table);
        m.insert("action".into(), json!("copied"));
        if !ctx.json {
            out(format!(
                "COPIED  {}: not encrypted (ROW_FORMAT={}), copied unchanged",
                table.name(),
                table.header.row_format
            ));
        }
        report.table(m.into());
        return Ok(());
    }

    let factory = CipherFactory {
        table: &table,
        backend: ctx.backend,
    };
    let choice = choose(factory, keys, args.algorithm.mode())?;
    let checker = Checker::new(factory, keys, choice)?;
    let progress = Progress::new(
        table.mai_len + table.mad_len,
        &format!("decrypt {}", table.name()),
    );
    let bs = table.block_size();
    let mut tally = Tally::default();
    let mut written = Vec::new();
    for ((kind, path, _), output) in table.files().into_iter().zip(outputs) {
        let input = PagedFile::open(kind, path, bs)?;
        let out_file = Output::create(output)?;
        tally.merge(checker.scan_file(&input, &progress, |batch| {
            out_file.write_at(batch.pages, u64::from(batch.first) * bs as u64)
        })?);
        if input.tail() > 0 {
            // A partial last page is copied as it is.
            let mut rest = vec![0u8; input.tail() as usize];
            let at = input.len - input.tail();
            File::open(path)
                .and_then(|f| f.read_exact_at(&mut rest, at))
                .map_err(|e| ToolError::io(path, &e))?;
            out_file.write_at(&rest, at)?;
        }
        written.push(out_file);
    }
    checker.conclude(&table, &mut tally)?;
    let verified = tally;
    let ok = verified.ok();
    let keep = ok || args.partial;
    if keep {
        for out_file in written {
            out_file.finish()?;
        }
    }
    let v = super::Verified {
        choice,
        tally: verified,
    };
    verification_json(&mut m, &v);
    m.insert(
        "action".into(),
        json!(match (ok, keep) {
            (true, _) => "decrypted",
            (false, true) => "partial",
            (false, false) => "refused",
        }),
    );
    report.status(if ok { Status::Ok } else { Status::Failed });
    if !ctx.json {
        let t = &v.tally;
        if ok {
            out(format!(
                "DECRYPTED {}: {} encrypted page{} ({}; key id {}) -> {}",
                table.name(),
                t.verified,
                plural(t.verified),
                v.choice.describe_mode(),
                v.choice.key_id,
                outputs[0].with_extension("").display()
            ));
        } else {
            let what = if keep {
                "written with those pages left encrypted (--partial)"
            } else {
                "nothing written (--partial writes the rest)"
            };
            out(format!(
                "FAIL      {}: {} of {} encrypted pages do not decrypt; {what}",
                table.name(),
                t.failed,
                t.encrypted
            ));
            for line in problem_lines(&t.problems) {
                out(format!("          {line}"));
            }
        }
    }
    report.table(m.into());
    Ok(())
}
