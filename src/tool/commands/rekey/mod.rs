//! `aria-crypt rekey`: re-encrypt every encrypted page under the latest
//! version of a target key, another algorithm and/or a fresh per-table
//! key, replacing the files crash-safely (see [`journal`]).
//!
//! This module runs the steps for each table (locks, server check,
//! recovery, verification, the target, replacement); [`new_files`] writes
//! and reads back the new files with the table's owner and mode;
//! [`output`] words the source and target and completes the JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::{Map, Value, json};

use super::{
    Ctx, Verified, generation_mismatch, plain_json, resolve, table_json, verification_json,
    verify_table,
};
use crate::aria::{CryptData, TableCipher};
use crate::kernel::Mode;
use crate::policy::{self, TableKind};
use crate::tool::ciphers::CipherFactory;
use crate::tool::cli::RekeyArgs;
use crate::tool::detect::choose;
use crate::tool::diagnose::Checker;
use crate::tool::journal::{self, DirLock, Journal, Recovered, Replacement, failpoint};
use crate::tool::keys::Keys;
use crate::tool::outcome::{Status, ToolError};
use crate::tool::progress::Progress;
use crate::tool::report::{Deferred, Report, plural, problem_lines, versions_text};
use crate::tool::server::{self, Guard, ServerState};
use crate::tool::table::Table;
use crate::tool::walk::TableRef;

/// Runs the command.
pub fn run(ctx: Ctx, args: &RekeyArgs) -> Status {
    let mut report = Report::new("rekey", ctx.json);
    let keys = if args.recover {
        // Recovery needs no keys; given ones verify the completed table.
        Keys::from_args(&args.keys)
    } else {
        Keys::required(&args.keys, "rekey").map(Some)
    };
    let target = args.target_keys().map(|t| Keys::from_args(&t)).transpose();
    let (keys, target) = match (keys, target) {
        (Ok(keys), Ok(target)) => (keys, target.flatten()),
        (Err(err), _) | (_, Err(err)) => {
            report.error(&err);
            return report.finish();
        }
    };
    let mut guard = if args.dry_run {
        Guard::default()
    } else {
        Guard::new(&args.aria_log_dir)
    };
    // Each directory is locked once, for the whole run: its tables are
    // re-keyed in parallel.
    let mut locks = BTreeMap::new();
    let tables = resolve(&mut report, &args.tables);
    // A window of tables at a time: the server checks, locks and recovery
    // one after another, the re-keying in parallel (a small table is one
    // batch and would leave the other cores idle), the output in order.
    let window = rayon::current_num_threads() * 4;
    for chunk in tables.chunks(window) {
        let mut jobs: Vec<(Job<'_>, Result<Option<Table>, ToolError>)> = chunk
            .iter()
            .map(|table| {
                let mut job = Job {
                    ctx,
                    args,
                    keys: keys.as_ref(),
                    target: target.as_ref(),
                    log: Deferred::default(),
                    table,
                    m: Map::new(),
                };
                let prepared = job.prepare(&mut guard, &mut locks);
                (job, prepared)
            })
            .collect();
        jobs.par_iter_mut().for_each(|(job, prepared)| {
            if let Ok(Some(table)) = prepared {
                let done = job.rekey(table);
                *prepared = done.map(|()| None);
            }
        });
        for (job, result) in jobs {
            let Job {
                mut m, log, table, ..
            } = job;
            log.replay(&mut report);
            if let Err(err) = result {
                if err.message.is_empty() {
                    // Refused for a reason already printed for its data directory.
                    report.status(err.status);
                } else {
                    report.error(&err);
                }
                m.insert("ok".into(), json!(false));
                m.entry("action").or_insert(json!("error"));
                if !err.message.is_empty() {
                    m.insert("error".into(), json!(err.message));
                }
            }
            output::complete_json(&mut m, table);
            report.table(m.into());
        }
    }
    report.finish()
}

mod new_files;
mod output;

use new_files::{NewFiles, check_new, write_new};

/// One table's rekey.
struct Job<'a> {
    ctx: Ctx,
    args: &'a RekeyArgs,
    keys: Option<&'a Keys>,
    target: Option<&'a Keys>,
    /// What it reports, replayed in table order.
    log: Deferred,
    table: &'a TableRef,
    /// The table's JSON object.
    m: Map<String, Value>,
}

/// The target of a rekey, resolved for one table.
struct Target<'k> {
    keys: &'k Keys,
    key_id: u32,
    mode: Mode,
    version: u32,
    crypt: Option<CryptData>,
    cipher: TableCipher,
}

impl Job<'_> {
    fn say(&mut self, tag: &str, text: impl std::fmt::Display) {
        if !self.ctx.json {
            self.log
                .out(format!("{tag:<9} {}: {text}", self.table.stem.display()));
        }
    }

    fn action(&mut self, action: &str, ok: bool) {
        self.m.insert("action".into(), json!(action));
        self.m.insert("ok".into(), json!(ok));
        if !ok {
            self.log.status(Status::Failed);
        }
    }

    /// What comes before the re-keying, one table after another: the
    /// directory lock, the server check, recovery, opening the table.
    /// Returns the table when it is to be re-keyed.
    fn prepare(
        &mut self,
        guard: &mut Guard,
        locks: &mut BTreeMap<PathBuf, DirLock>,
    ) -> Result<Option<Table>, ToolError> {
        if !self.args.dry_run {
            let dir = self
                .table
                .stem
                .parent()
                .unwrap_or(Path::new("."))
                .to_path_buf();
            if let std::collections::btree_map::Entry::Vacant(entry) = locks.entry(dir) {
                entry.insert(journal::lock_dir(self.table)?);
            }
        }
        if self.args.dry_run {
            if let Some(pending) = journal::pending(self.table) {
                self.log.warn(pending.describe(self.table));
                self.action("pending_recovery", false);
                self.say(
                    "PENDING",
                    "an interrupted rekey must be recovered first (run without --dry-run)",
                );
                return Ok(None);
            }
            let dir = self.table.mai.parent().unwrap_or(Path::new("."));
            if let ServerState::Running(control, holder) = server::state(dir) {
                self.log.warn(format!(
                    "{}: a MariaDB server is running ({holder} holds {}); a real rekey would refuse",
                    self.table.stem.display(),
                    control.display()
                ));
            }
        } else {
            self.check_server(guard)?;
            match journal::recover(self.table)? {
                Some(Recovered::Completed { journal, notes }) => {
                    for note in notes {
                        self.log.warn(note);
                    }
                    return self.completed(&journal).map(|()| None);
                }
                Some(Recovered::RolledBack { files, reason }) => {
                    let names = files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    let why = reason.map_or_else(String::new, |r| format!(" ({r})"));
                    self.m.insert("recovery".into(), json!("rolled_back"));
                    self.log.warn(format!(
                        "{}: rolled back an interrupted rekey{why}: deleted {names}",
                        self.table.stem.display()
                    ));
                    if self.args.recover {
                        self.action("rolled_back", true);
                        self.say("RECOVERED", format!("rolled back an interrupted rekey{why} (deleted {names}); the table is the old one"));
                        return Ok(None);
                    }
                }
                None if self.args.recover => {
                    self.action("nothing_to_recover", true);
                    self.say("OK", "no interrupted rekey");
                    return Ok(None);
                }
                None => {}
            }
        }

        let table = Table::open(self.table)?;
        if let Some(problem) = table.length_problem() {
            self.action("refused", false);
            return Err(ToolError::failed(format!("{problem}; nothing changed")));
        }
        self.check_clean(&table)?;
        let recovery = self.m.remove("recovery");
        self.m = table_json(&table);
        if let Some(recovery) = recovery {
            self.m.insert("recovery".into(), recovery);
        }
        if !table.header.is_encrypted() {
            plain_json(&mut self.m, &table);
            self.action("skipped", true);
            self.say(
                "SKIPPED",
                format!(
                    "not encrypted (ROW_FORMAT={}), nothing to re-key",
                    table.header.row_format
                ),
            );
            return Ok(None);
        }
        if self.keys.is_none() {
            return Err(ToolError::input("rekey needs keys"));
        }
        Ok(Some(table))
    }

    fn check_server(&mut self, guard: &mut Guard) -> Result<(), ToolError> {
        let dir = self.table.mai.parent().unwrap_or(Path::new("."));
        let files = [self.table.mai.as_path(), self.table.mad.as_path()];
        match guard.check(dir, &files, self.args.force) {
            Ok(warnings) => {
                for w in warnings {
                    self.log.warn(w);
                }
                Ok(())
            }
            Err(refusal) => {
                self.action("refused", false);
                if refusal.repeated {
                    self.say("REFUSED", &refusal.error.message);
                    self.m.insert("error".into(), json!(refusal.error.message));
                    Err(ToolError::failed(""))
                } else {
                    self.say(
                        "REFUSED",
                        "a MariaDB server is running on this data directory",
                    );
                    Err(refusal.error)
                }
            }
        }
    }

    /// Refuses a table that was not closed cleanly, unless --force: the
    /// server's recovery must see the pages it logged.
    fn check_clean(&mut self, table: &Table) -> Result<(), ToolError> {
        let Some(why) = table.state.unclean() else {
            return Ok(());
        };
        if self.args.force {
            self.log.warn(format!(
                "{}: {why}; re-keying it anyway because of --force",
                table.name()
            ));
            return Ok(());
        }
        self.action("refused", false);
        Err(ToolError::failed(format!(
            "{}: {why}: start the server and let it run its recovery (or CHECK TABLE / REPAIR TABLE it) first, or use --force; nothing changed",
            table.name()
        )))
    }

    /// After a journaled replacement was completed: check the table now
    /// verifies under the target settings, and stop there.
    fn completed(&mut self, journal_path: &Path) -> Result<(), ToolError> {
        let note = format!(
            "completed the interrupted rekey recorded in {}",
            journal_path.display()
        );
        let table = Table::open(self.table)?;
        let mut m = table_json(&table);
        m.insert("recovery".into(), json!("completed"));
        self.m = m;
        let Some(keys) = self.target.or(self.keys) else {
            self.action("completed", true);
            self.say("RECOVERED", note);
            return Ok(());
        };
        let v = verify_table(
            self.ctx,
            &table,
            keys,
            self.args.to_algorithm.map(|a| a.mode()),
        )?;
        verification_json(&mut self.m, &v);
        if v.tally.ok() {
            self.action("completed", true);
            self.say(
                "RECOVERED",
                format!(
                    "{note}; {} encrypted pages verify ({}, key id {}, key versions {})",
                    v.tally.verified,
                    v.choice.mode,
                    v.choice.key_id,
                    versions_text(&v.tally.versions)
                ),
            );
        } else {
            self.action("completed", false);
            self.say(
                "RECOVERED",
                format!("{note}, but the table does not verify with the target keys given now:"),
            );
            self.problems(&v);
        }
        Ok(())
    }

    fn problems(&mut self, v: &Verified) {
        if !self.ctx.json {
            for line in problem_lines(&v.tally.problems) {
                self.log.out(format!("          {line}"));
            }
        }
    }

    /// Re-keys a prepared table (in parallel with other tables).
    fn rekey(&mut self, table: &Table) -> Result<(), ToolError> {
        let Some(keys) = self.keys else {
            return Err(ToolError::input("rekey needs keys"));
        };
        self.rekey_from(table, keys, self.args.algorithm.mode(), true)
    }

    /// Re-keys the table from `from_keys`: a dry run verifies it; a real
    /// run verifies every page while it writes the new files. When the
    /// source does not verify and `fallback`, a table that verifies with
    /// the target keys is already re-keyed.
    fn rekey_from(
        &mut self,
        table: &Table,
        from_keys: &Keys,
        from_mode: Option<Mode>,
        fallback: bool,
    ) -> Result<(), ToolError> {
        let ctx = self.ctx;
        let args = self.args;
        let to_keys = self.target.unwrap_or(from_keys);
        let factory = CipherFactory {
            table,
            backend: ctx.backend,
        };
        let choice = choose(factory, from_keys, from_mode)?;
        let checker = Checker::new(factory, from_keys, choice)?;
        let (source, target, new_files) = if args.dry_run {
            let progress = Progress::new(
                table.mai_len + table.mad_len,
                &format!("verify {}", table.name()),
            );
            let tally = checker.verify(table, &progress)?;
            let source = Verified { choice, tally };
            if !source.tally.ok() {
                return self.not_verified(table, source, fallback);
            }
            let target = self.target(table, to_keys, choice.mode)?;
            self.check_readable(table, &target)?;
            (source, target, None)
        } else {
            let target = self.target(table, to_keys, choice.mode)?;
            self.check_readable(table, &target)?;
            failpoint("verified");
            let new_files = NewFiles::plan(table, self.table)?;
            let mut tally = match write_new(table, &checker, &target, &new_files) {
                Ok(tally) => tally,
                Err(err) => return Err(new_files.abandon(&err)),
            };
            checker.conclude(table, &mut tally)?;
            let source = Verified { choice, tally };
            if !source.tally.ok() {
                new_files.abandon(&ToolError::failed(""));
                return self.not_verified(table, source, fallback);
            }
            (source, target, Some(new_files))
        };

        verification_json(&mut self.m, &source);
        self.m
            .insert("to".into(), output::target_json(table, &source, &target));
        let from = output::describe_source(&source);
        let to = output::describe_target(&target);

        let same_keys = Arc::ptr_eq(&from_keys.provider, &target.keys.provider);
        if same_keys
            && source.choice.mode == target.mode
            && source.choice.key_id == target.key_id
            && target.crypt.is_none()
            && source.tally.versions.keys().all(|&v| v == target.version)
        {
            if let Some(new_files) = &new_files {
                new_files.abandon(&ToolError::failed(""));
            }
            self.action("unchanged", true);
            self.say(
                "UNCHANGED",
                format!("every encrypted page already has {to}"),
            );
            return Ok(());
        }
        let Some(new_files) = new_files else {
            self.action("would_rekey", true);
            self.say(
                "DRY-RUN",
                format!(
                    "would re-encrypt {} pages from {from} to {to}",
                    source.tally.encrypted
                ),
            );
            return Ok(());
        };

        self.replace(table, &source, &target, new_files)?;
        self.action("rekeyed", true);
        self.say(
            "REKEYED",
            format!("{} pages from {from} to {to}", source.tally.encrypted),
        );
        Ok(())
    }

    /// The source keys do not verify the table: re-keyed already (it
    /// verifies with the target keys), or refused.
    fn not_verified(
        &mut self,
        table: &Table,
        source: Verified,
        fallback: bool,
    ) -> Result<(), ToolError> {
        let args = self.args;
        if let (true, Some(to_keys)) = (
            fallback && (self.target.is_some() || args.to_algorithm.is_some()),
            self.target.or(self.keys),
        ) {
            // Already re-keyed (a rekey run again after it completed)?
            let to_mode = args.to_algorithm.map(|a| a.mode());
            let already = verify_table(self.ctx, table, to_keys, to_mode)?;
            if already.tally.ok() && already.tally.verified > 0 {
                self.log.warn(format!(
                    "{}: the table does not verify with the source keys but does with the target ones: it is already re-keyed",
                    table.name()
                ));
                return self.rekey_from(table, to_keys, to_mode, false);
            }
        }
        verification_json(&mut self.m, &source);
        self.action("refused", false);
        self.say(
            "REFUSED",
            format!(
                "{} of {} encrypted page{} fail verification; nothing changed",
                source.tally.failed,
                source.tally.encrypted,
                plural(source.tally.encrypted)
            ),
        );
        if let Some(mismatch) = generation_mismatch(table, &source.tally) {
            self.say("", &mismatch);
            self.m.insert("files_mismatch".into(), json!(mismatch));
        }
        self.problems(&source);
        Ok(())
    }

    /// Refuses a target the server would not read by itself, unless
    /// --allow-unusual-key: another key id than its rule, or a key version
    /// file_key_management does not serve.
    fn check_readable(&mut self, table: &Table, target: &Target<'_>) -> Result<(), ToolError> {
        let rule = policy::try_key_id(TableKind::of(&table.header), &*target.keys.provider)
            .map_err(ToolError::lib)?;
        let mut unusual = Vec::new();
        if target.key_id != rule {
            unusual.push(format!(
                "--to-key-id {}: the server encrypts this {} with key id {rule}, and reads it with no other",
                target.key_id,
                if table.header.is_temporary() {
                    "temporary table"
                } else {
                    "table"
                }
            ));
        }
        if target.keys.is_key_file() && target.version != 1 {
            unusual.push(format!(
                "key version {} of key id {}: MariaDB's file_key_management serves version 1 only, so the server needs a key-management plugin that has this version",
                target.version, target.key_id
            ));
        }
        if unusual.is_empty() {
            return Ok(());
        }
        let what = unusual.join("; ");
        if self.args.allow_unusual_key {
            self.log.warn(format!(
                "{}: {what}; going on because of --allow-unusual-key",
                table.name()
            ));
            return Ok(());
        }
        self.action("refused", false);
        Err(ToolError::failed(format!(
            "{}: {what}: the server could not read the result; nothing changed (add --allow-unusual-key if it is intended)",
            table.name()
        )))
    }

    fn target<'k>(
        &self,
        table: &Table,
        to_keys: &'k Keys,
        from_mode: Mode,
    ) -> Result<Target<'k>, ToolError> {
        let mode = self.args.to_algorithm.map_or(from_mode, |a| a.mode());
        let key_id = match self.args.to_key_id {
            Some(id) => id,
            None => policy::try_key_id(TableKind::of(&table.header), &*to_keys.provider)
                .map_err(ToolError::lib)?,
        };
        let crypt = if self.args.new_table_key {
            Some(CryptData::generate().map_err(ToolError::lib)?)
        } else {
            None
        };
        let factory = CipherFactory {
            table,
            backend: self.ctx.backend,
        };
        let cipher = factory.cipher(to_keys, key_id, mode, crypt)?;
        let version = cipher.latest_version().map_err(|_| {
            ToolError::input(format!(
                "{}: the target keys ({}) have no key id {key_id}",
                table.name(),
                to_keys.describe()
            ))
        })?;
        Ok(Target {
            keys: to_keys,
            key_id,
            mode,
            version,
            crypt,
            cipher,
        })
    }

    /// Checks the written files and installs them.
    fn replace(
        &mut self,
        table: &Table,
        source: &Verified,
        target: &Target<'_>,
        new_files: NewFiles,
    ) -> Result<(), ToolError> {
        let committed =
            check_new(self.ctx, table, source, target, &new_files.targets).and_then(|()| {
                let mut replacements = new_files
                    .targets
                    .iter()
                    .map(|(_, new, real)| Replacement::of(new.clone(), real.clone()))
                    .collect::<Result<Vec<_>, _>>()?;
                for r in &mut replacements {
                    r.keep_old()?;
                }
                failpoint("new-files-ready");
                Journal::commit(
                    new_files.journal.clone(),
                    replacements,
                    &new_files.targets[0].2,
                )
            });
        let journal = committed.map_err(|err| new_files.abandon(&err))?;
        failpoint("journal-committed");
        for note in journal.apply()? {
            self.log.warn(note);
        }
        failpoint("done");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use crate::tool::cli::Cli;
    use crate::tool::counters::{self, Pass};
    use crate::tool::outcome::Status;

    fn run(args: &[&std::ffi::OsStr]) -> Status {
        let cli = Cli::try_parse_from(args).expect("arguments parse");
        crate::tool::run(&cli).expect("the command runs")
    }

    /// Page passes of one rekey of a real MariaDB table: the source is
    /// decrypted once while the new files are written, and the new files
    /// are read back once.
    #[test]
    fn rekey_page_passes() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cbc_trans_256");
        let dir = tempfile::tempdir().expect("temporary directory");
        for name in ["keys.txt", "t1.MAI", "t1.MAD"] {
            std::fs::copy(fixture.join(name), dir.path().join(name)).expect("copy the fixture");
        }
        let pages = ["t1.MAI", "t1.MAD"]
            .iter()
            .map(|f| std::fs::metadata(fixture.join(f)).expect("fixture").len() / 8192)
            .sum::<u64>();
        let keys = dir.path().join("keys.txt");
        let table = dir.path().join("t1");
        // Encrypted pages by their kind alone, without keys.
        let walked = crate::tool::walk::walk(std::slice::from_ref(&table));
        let opened = crate::tool::table::Table::open(&walked.tables[0]).expect("open");
        let census = crate::tool::tally::census(&opened, &crate::tool::progress::Progress::none())
            .expect("census");
        assert!(census.encrypted > 0 && census.encrypted < pages);
        let before = [Pass::Decrypt, Pass::Encrypt, Pass::Classify].map(counters::get);
        let status = run(&[
            "aria-crypt".as_ref(),
            "rekey".as_ref(),
            "--algorithm".as_ref(),
            "cbc".as_ref(),
            "--key-file".as_ref(),
            keys.as_os_str(),
            "--new-table-key".as_ref(),
            table.as_os_str(),
        ]);
        assert_eq!(status, Status::Ok);
        let after = [Pass::Decrypt, Pass::Encrypt, Pass::Classify].map(counters::get);
        let [decrypted, encrypted, classified] = [0, 1, 2].map(|i| after[i] - before[i]);
        assert_eq!(decrypted, DECRYPT_PASSES * pages, "decryptions");
        assert_eq!(classified, CLASSIFY_PASSES * pages, "tool classifications");
        assert_eq!(encrypted, census.encrypted, "encryptions");
        // The table the rekey left verifies.
        let status = run(&[
            "aria-crypt".as_ref(),
            "verify".as_ref(),
            "--key-file".as_ref(),
            keys.as_os_str(),
            table.as_os_str(),
        ]);
        assert_eq!(status, Status::Ok);
    }

    const DECRYPT_PASSES: u64 = 2;
    const CLASSIFY_PASSES: u64 = 2;
}
