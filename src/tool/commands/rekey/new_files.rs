//! The new files of a rekey: created beside the table's with its owner and
//! mode, written while the source is verified, synced, and read back.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::Target;
use crate::aria::{LsnPolicy, PageFile, PageRef, PageStatus, TableCipher, WriteOptions};
use crate::tool::ciphers::CipherFactory;
use crate::tool::commands::{Ctx, Verified};
use crate::tool::counters::{self, Pass};
use crate::tool::detect::{Choice, ModeSource};
use crate::tool::diagnose::{Checked, Checker};
use crate::tool::journal::{self, failpoint};
use crate::tool::outcome::ToolError;
use crate::tool::progress::Progress;
use crate::tool::report::problem_lines;
use crate::tool::scan::PagedFile;
use crate::tool::table::Table;
use crate::tool::tally::Tally;
use crate::tool::walk::TableRef;

/// The files a rekey writes beside a table's: (file, new path, real path)
/// per file, and the journal.
pub(super) struct NewFiles {
    pub(super) targets: Vec<(PageFile, PathBuf, PathBuf)>,
    pub(super) journal: PathBuf,
}

impl NewFiles {
    /// Names them and checks there is room for them.
    pub(super) fn plan(table: &Table, files: &TableRef) -> Result<Self, ToolError> {
        let targets: Vec<(PageFile, PathBuf, PathBuf)> = table
            .files()
            .iter()
            .map(|(kind, path, _)| {
                let real = journal::real_path(path);
                (*kind, journal::new_path(&real), real)
            })
            .collect();
        let journal = journal::journal_path(files);
        let sizes: Vec<(PathBuf, u64)> = targets
            .iter()
            .zip(table.files())
            .map(|((_, _, real), (_, _, len))| (real.clone(), len))
            .collect();
        journal::preflight(&sizes, &journal)?;
        Ok(NewFiles { targets, journal })
    }

    /// Deletes whatever was written of them; the error of `err` says so
    /// (an empty message stays empty: the caller reports the cause).
    pub(super) fn abandon(&self, err: &ToolError) -> ToolError {
        let mut written: Vec<PathBuf> = Vec::new();
        for (_, new, real) in &self.targets {
            written.push(new.clone());
            written.push(journal::backup_path(real));
        }
        written.push(journal::with_tmp(&self.journal));
        let deleted = journal::clean_up(&written);
        if err.message.is_empty() {
            return ToolError::failed("");
        }
        let deleted = if deleted.is_empty() {
            String::new()
        } else {
            format!(
                " (deleted what it had written: {})",
                deleted
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        ToolError::failed(format!("{}; nothing changed{deleted}", err.message))
    }
}

/// Creates `new` with the owner and permissions of `like`.
fn create_like(new: &Path, like: &Path) -> Result<File, ToolError> {
    let meta = std::fs::metadata(like).map_err(|e| ToolError::io(like, &e))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(new)
        .map_err(|e| ToolError::write(new, &e))?;
    file.set_permissions(meta.permissions())
        .map_err(|e| ToolError::write(new, &e))?;
    let mine = file.metadata().map_err(|e| ToolError::write(new, &e))?;
    if (mine.uid(), mine.gid()) != (meta.uid(), meta.gid()) {
        std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid())).map_err(|e| {
            ToolError::failed(format!(
                "{}: cannot give it the owner {}:{} of {}: {}",
                new.display(),
                meta.uid(),
                meta.gid(),
                like.display(),
                crate::tool::outcome::io_message(&e)
            ))
        })?;
    }
    Ok(file)
}

/// Verifies every page of the table with `from` while it writes the
/// re-encrypted files beside the old ones, and syncs them; returns the
/// verification's counts (not concluded). Once a page fails nothing more
/// is written: the rekey is refused and the new files deleted.
pub(super) fn write_new(
    table: &Table,
    from: &Checker<'_>,
    target: &Target<'_>,
    new_files: &NewFiles,
) -> Result<Tally, ToolError> {
    let bs = table.block_size();
    let progress = Progress::new(
        table.mai_len + table.mad_len,
        &format!("rekey {}", table.name()),
    );
    let keep_lsn = WriteOptions::new().with_lsn(LsnPolicy::Keep);
    let failed = AtomicBool::new(false);
    let mut tally = Tally::default();
    for ((kind, path, len), (_, new, real)) in table.files().into_iter().zip(&new_files.targets) {
        let input = PagedFile::open(kind, path, bs)?;
        let output = create_like(new, real)?;
        output.set_len(len).map_err(|e| ToolError::write(new, &e))?;
        failpoint("created");
        tally.merge(from.scan_file(&input, &progress, |mut batch| {
            if !batch.clean {
                failed.store(true, Ordering::Relaxed);
            }
            if failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            encrypt_batch(&target.cipher, kind, keep_lsn, &mut batch, bs)?;
            journal::injected_error("new-file-write")
                .and_then(|()| output.write_all_at(batch.pages, u64::from(batch.first) * bs as u64))
                .map_err(|e| ToolError::write(new, &e))?;
            failpoint("batch-written");
            Ok(())
        })?);
        if tally.failed > 0 {
            // Refused: the rest is only verified, for the diagnosis.
            failed.store(true, Ordering::Relaxed);
        }
        if failed.load(Ordering::Relaxed) {
            continue;
        }
        if kind == PageFile::Index
            && let Some(crypt) = target.crypt
        {
            // The crypt block lives in the header pages, which are copied
            // unchanged above.
            let keystart = table.header.geometry.keystart;
            let mut header = vec![0u8; usize::try_from(keystart).unwrap_or(0)];
            input.read_pages(0, &mut header)?;
            table
                .header
                .write_crypt_block(&mut header, &crypt)
                .map_err(ToolError::lib)?;
            output
                .write_all_at(&header, 0)
                .map_err(|e| ToolError::write(new, &e))?;
        }
        output.sync_all().map_err(|e| ToolError::write(new, &e))?;
        failpoint("synced");
    }
    if failed.load(Ordering::Relaxed) {
        return Ok(tally);
    }
    // The new files' directory entries must be durable before a journal
    // names them.
    let dirs: std::collections::BTreeSet<&Path> = new_files
        .targets
        .iter()
        .map(|(_, new, _)| new.parent().unwrap_or(Path::new(".")))
        .collect();
    for dir in dirs {
        journal::sync_dir(dir)?;
    }
    Ok(tally)
}

/// Encrypts the decrypted pages of a verified batch in place under the
/// target, keeping each page's LSN; the other pages (header, bitmap,
/// never written) are copied as they are.
fn encrypt_batch(
    to: &TableCipher,
    file: PageFile,
    options: WriteOptions,
    batch: &mut Checked<'_>,
    bs: usize,
) -> Result<(), ToolError> {
    let mut plain: Vec<PageRef<'_>> = batch
        .pages
        .chunks_exact_mut(bs)
        .zip(batch.first..)
        .zip(batch.plain)
        .filter(|(_, plain)| **plain)
        .map(|((data, number), _)| PageRef { number, data })
        .collect();
    counters::add(Pass::Encrypt, plain.len());
    let numbers: Vec<u32> = plain.iter().map(|p| p.number).collect();
    for (number, result) in numbers
        .into_iter()
        .zip(to.encrypt_pages_with(file, &mut plain, options))
    {
        match result {
            Ok(PageStatus::Encrypted { .. }) => {}
            Err(err) => return Err(ToolError::lib(err)),
            // Decrypted, yet the target sees no page to encrypt (a page
            // that decrypts to all zeros): never write it plain.
            Ok(_) => {
                return Err(ToolError::failed(format!(
                    "{}: page {number} decrypts to a page the target would leave unencrypted",
                    file.extension()
                )));
            }
        }
    }
    Ok(())
}

/// Reads the new files back: every page must verify under the target and
/// there must be as many encrypted pages as before.
pub(super) fn check_new(
    ctx: Ctx,
    table: &Table,
    source: &Verified,
    target: &Target<'_>,
    targets: &[(PageFile, PathBuf, PathBuf)],
) -> Result<(), ToolError> {
    let mut files = table.files.clone();
    for (kind, new, _) in targets {
        match kind {
            PageFile::Index => files.mai = new.clone(),
            PageFile::Data => files.mad = new.clone(),
        }
    }
    let new_table = Table::open(&files)?;
    let expected = target.crypt.or(table.header.crypt);
    if new_table.header.crypt != expected {
        return Err(ToolError::failed(format!(
            "{}: the new header does not hold the expected table key",
            files.mai.display()
        )));
    }
    let factory = CipherFactory {
        table: &new_table,
        backend: ctx.backend,
    };
    let choice = Choice {
        key_id: target.key_id,
        key_id_option: true,
        mode: target.mode,
        mode_source: ModeSource::Option,
    };
    let checker = Checker::new(factory, target.keys, choice)?;
    let progress = Progress::new(
        table.mai_len + table.mad_len,
        &format!("check {}", table.name()),
    );
    let tally = checker.verify(&new_table, &progress)?;
    let versions_ok = tally.versions.keys().all(|&v| v == target.version);
    if !tally.ok() || tally.verified != source.tally.verified || !versions_ok {
        let first = problem_lines(&tally.problems)
            .into_iter()
            .next()
            .unwrap_or_default();
        return Err(ToolError::failed(format!(
            "the new files do not verify ({} of {} pages; {first})",
            tally.verified, source.tally.verified
        )));
    }
    failpoint("checked");
    Ok(())
}
