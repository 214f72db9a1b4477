//! Crash-safe replacement of a table's files.
//!
//! 1. The new files are written beside the old ones as
//!    `<file>.aria-crypt-new` (beside the real file when the table's path is
//!    a symlink), verified and fsynced.
//! 2. The journal `<table>.aria-crypt-journal` is written as
//!    `….aria-crypt-journal.tmp`, fsynced, renamed into place and its
//!    directory fsynced: from this moment the replacement is decided. It
//!    names every new file, its target, its size and CRC-32.
//! 3. Each new file is renamed over its target; the directories are fsynced.
//! 4. The journal is removed and its directory fsynced.
//!
//! A crash before (2) leaves the old table and orphaned new files: the next
//! rekey deletes them (roll back). A crash after (2) leaves a journal: the
//! next rekey renames whatever new file is still there, after checking it
//! is the one the journal describes, and removes the journal (roll
//! forward). Renames are atomic, so each file is at every moment either
//! its old or its new version.
//!
//! Failpoints for the crash tests: `ARIA_CRYPT_FAILPOINT=NAME` or
//! `NAME:N` aborts the process at the N-th (default first) time the tool
//! passes the point named NAME.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde_json::{Value, json};

use super::outcome::ToolError;
use super::walk::{TableRef, with_ext};

/// Suffix of new files during a rekey.
pub const NEW_SUFFIX: &str = "aria-crypt-new";
/// Extension of the journal.
pub const JOURNAL_EXT: &str = "aria-crypt-journal";
/// Environment variable naming a failpoint.
pub const FAILPOINT_ENV: &str = "ARIA_CRYPT_FAILPOINT";
const JOURNAL_FORMAT: &str = "aria-crypt rekey journal";

/// Aborts the process here if `ARIA_CRYPT_FAILPOINT` names this point.
pub fn failpoint(name: &str) {
    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let spec = SPEC.get_or_init(|| {
        let value = std::env::var(FAILPOINT_ENV).ok()?;
        match value.split_once(':') {
            Some((name, n)) => Some((name.to_string(), n.parse().unwrap_or(1))),
            None => Some((value, 1)),
        }
    });
    if let Some((wanted, n)) = spec
        && wanted == name
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        let _ = writeln!(
            std::io::stderr(),
            "aria-crypt: failpoint {name} reached: aborting"
        );
        std::process::abort();
    }
}

/// `<file>.aria-crypt-new`.
pub fn new_path(target: &Path) -> PathBuf {
    with_ext(target, NEW_SUFFIX)
}

/// `<table>.aria-crypt-journal`.
pub fn journal_path(table: &TableRef) -> PathBuf {
    with_ext(&table.stem, JOURNAL_EXT)
}

fn journal_tmp(journal: &Path) -> PathBuf {
    with_ext(journal, "tmp")
}

/// The file a table path really names (symlinks resolved), so the new file
/// is written beside it and renamed over it, keeping the link.
pub fn real_path(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Fsyncs a directory, so renames and creations in it are durable.
///
/// # Errors
/// Exit status 1.
pub fn sync_dir(dir: &Path) -> Result<(), ToolError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ToolError::write(dir, &e))
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Size and CRC-32 of a file, read in parallel chunks.
///
/// # Errors
/// The read error.
pub fn file_crc(path: &Path) -> std::io::Result<(u64, u32)> {
    const CHUNK: u64 = 1 << 20;
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let parts: Vec<crc32fast::Hasher> = (0..len.div_ceil(CHUNK))
        .into_par_iter()
        .map_init(Vec::new, |buf, i| {
            let start = i * CHUNK;
            buf.resize((len - start).min(CHUNK) as usize, 0);
            file.read_exact_at(buf, start)?;
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(buf);
            Ok(hasher)
        })
        .collect::<std::io::Result<_>>()?;
    let mut total = crc32fast::Hasher::new();
    for part in &parts {
        total.combine(part);
    }
    Ok((len, total.finalize()))
}

/// One file of a replacement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// The complete new file.
    pub new: PathBuf,
    /// The file it replaces.
    pub target: PathBuf,
    /// Its size.
    pub size: u64,
    /// Its CRC-32.
    pub crc: u32,
}

impl Replacement {
    /// Describes the new file `new` that replaces `target`.
    ///
    /// # Errors
    /// Exit status 1 if it cannot be read.
    pub fn of(new: PathBuf, target: PathBuf) -> Result<Self, ToolError> {
        let (size, crc) = file_crc(&new).map_err(|e| ToolError::write(&new, &e))?;
        Ok(Replacement {
            new,
            target,
            size,
            crc,
        })
    }
}

fn path_str(path: &Path) -> Result<&str, ToolError> {
    path.to_str().ok_or_else(|| {
        ToolError::failed(format!(
            "{}: the journal can only name UTF-8 paths",
            path.display()
        ))
    })
}

/// A decided replacement.
#[derive(Debug)]
pub struct Journal {
    /// The journal file.
    pub path: PathBuf,
    /// What to rename.
    pub files: Vec<Replacement>,
}

impl Journal {
    /// Writes the journal durably: the commit point of a replacement.
    ///
    /// # Errors
    /// Exit status 1; the journal does not exist then (the temporary one
    /// may, and is removed by the next recovery).
    pub fn commit(path: PathBuf, files: Vec<Replacement>) -> Result<Journal, ToolError> {
        let entries = files
            .iter()
            .map(|r| {
                Ok(json!({
                    "new": path_str(&r.new)?,
                    "target": path_str(&r.target)?,
                    "size": r.size,
                    "crc32": format!("{:08x}", r.crc),
                }))
            })
            .collect::<Result<Vec<Value>, ToolError>>()?;
        let doc = json!({ "format": JOURNAL_FORMAT, "version": 1, "files": entries });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
        let tmp = journal_tmp(&path);
        let write = |tmp: &Path| -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        };
        write(&tmp).map_err(|e| ToolError::write(&tmp, &e))?;
        failpoint("journal-written");
        std::fs::rename(&tmp, &path).map_err(|e| ToolError::write(&path, &e))?;
        sync_dir(parent(&path))?;
        Ok(Journal { path, files })
    }

    /// Reads a journal.
    ///
    /// # Errors
    /// Exit status 1 for a journal that cannot be read or understood.
    pub fn load(path: &Path) -> Result<Journal, ToolError> {
        let bad = |why: &str| {
            ToolError::failed(format!(
                "{}: {why}; the rekey it records cannot be completed automatically: compare the files it names by hand",
                path.display()
            ))
        };
        let text = std::fs::read_to_string(path).map_err(|e| ToolError::write(path, &e))?;
        let doc: Value = serde_json::from_str(&text).map_err(|_| bad("not a valid journal"))?;
        if doc["format"] != JOURNAL_FORMAT || doc["version"] != 1 {
            return Err(bad("unknown journal format"));
        }
        let files = doc["files"]
            .as_array()
            .ok_or_else(|| bad("no file list"))?
            .iter()
            .map(|f| {
                let new = f["new"]
                    .as_str()
                    .ok_or_else(|| bad("entry without a new file"))?;
                let target = f["target"]
                    .as_str()
                    .ok_or_else(|| bad("entry without a target"))?;
                let size = f["size"]
                    .as_u64()
                    .ok_or_else(|| bad("entry without a size"))?;
                let crc = f["crc32"]
                    .as_str()
                    .and_then(|c| u32::from_str_radix(c, 16).ok())
                    .ok_or_else(|| bad("entry without a CRC-32"))?;
                Ok(Replacement {
                    new: PathBuf::from(new),
                    target: PathBuf::from(target),
                    size,
                    crc,
                })
            })
            .collect::<Result<Vec<_>, ToolError>>()?;
        Ok(Journal {
            path: path.to_path_buf(),
            files,
        })
    }

    /// Renames every new file still present over its target, then removes
    /// the journal. Safe to run again after a crash at any point. `check`
    /// re-reads each new file against the journal first (recovery; a rekey
    /// that has just written them already knows).
    ///
    /// # Errors
    /// Exit status 1 if a file is neither the new one nor already replaced.
    pub fn apply(&self, check: bool) -> Result<(), ToolError> {
        let mut dirs = BTreeSet::new();
        for r in &self.files {
            let matches = |path: &Path| file_crc(path).is_ok_and(|got| got == (r.size, r.crc));
            if r.new.exists() {
                if check && !matches(&r.new) {
                    return Err(ToolError::failed(format!(
                        "{}: not the file the journal {} describes; nothing was renamed",
                        r.new.display(),
                        self.path.display()
                    )));
                }
                std::fs::rename(&r.new, &r.target).map_err(|e| ToolError::write(&r.target, &e))?;
                failpoint("renamed");
            } else if !matches(&r.target) {
                return Err(ToolError::failed(format!(
                    "{}: neither its new version {} nor the replaced file the journal {} describes",
                    r.target.display(),
                    r.new.display(),
                    self.path.display()
                )));
            }
            dirs.insert(parent(&r.target).to_path_buf());
        }
        for dir in &dirs {
            sync_dir(dir)?;
        }
        failpoint("renames-synced");
        std::fs::remove_file(&self.path).map_err(|e| ToolError::write(&self.path, &e))?;
        sync_dir(parent(&self.path))?;
        Ok(())
    }
}

/// Leftovers of an interrupted rekey next to a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// A journal: the rekey was decided; the next rekey completes it.
    Journal(PathBuf),
    /// New files without a journal: the next rekey deletes them.
    Orphans(Vec<PathBuf>),
}

impl Pending {
    /// A sentence for warnings.
    pub fn describe(&self, table: &TableRef) -> String {
        match self {
            Pending::Journal(journal) => format!(
                "{}: an interrupted rekey left the journal {}; the table may be half replaced: run `aria-crypt rekey --recover {}` to complete it",
                table.stem.display(),
                journal.display(),
                table.stem.display()
            ),
            Pending::Orphans(files) => format!(
                "{}: an interrupted rekey left {} (the table itself is unchanged): `aria-crypt rekey --recover {}` deletes them",
                table.stem.display(),
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                table.stem.display()
            ),
        }
    }

    /// "journal" or "orphans", for JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Pending::Journal(_) => "journal",
            Pending::Orphans(_) => "orphaned_new_files",
        }
    }
}

fn orphans(table: &TableRef) -> Vec<PathBuf> {
    let journal = journal_path(table);
    [
        new_path(&real_path(&table.mai)),
        new_path(&real_path(&table.mad)),
        journal_tmp(&journal),
    ]
    .into_iter()
    .filter(|p| p.exists())
    .collect()
}

/// What an interrupted rekey left next to `table`, if anything.
pub fn pending(table: &TableRef) -> Option<Pending> {
    let journal = journal_path(table);
    if journal.exists() {
        return Some(Pending::Journal(journal));
    }
    let files = orphans(table);
    (!files.is_empty()).then_some(Pending::Orphans(files))
}

/// What recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// A journaled replacement was completed.
    Completed(PathBuf),
    /// Orphaned new files were deleted; the table is the old one.
    RolledBack(Vec<PathBuf>),
}

/// Completes or rolls back an interrupted rekey of `table`.
///
/// # Errors
/// Exit status 1 if the journal cannot be applied or a file removed.
pub fn recover(table: &TableRef) -> Result<Option<Recovered>, ToolError> {
    match pending(table) {
        None => Ok(None),
        Some(Pending::Journal(path)) => {
            let journal = Journal::load(&path)?;
            journal.apply(true)?;
            // A temporary journal can outlive a completed one only if a
            // crash hit between two recoveries; it means nothing now.
            let _ = std::fs::remove_file(journal_tmp(&path));
            Ok(Some(Recovered::Completed(path)))
        }
        Some(Pending::Orphans(files)) => {
            let mut dirs = BTreeSet::new();
            for file in &files {
                std::fs::remove_file(file).map_err(|e| ToolError::write(file, &e))?;
                dirs.insert(parent(file).to_path_buf());
            }
            for dir in &dirs {
                sync_dir(dir)?;
            }
            Ok(Some(Recovered::RolledBack(files)))
        }
    }
}

/// An exclusive `flock` on a table's directory, held until dropped: two
/// rekeys never work on one directory at once.
#[derive(Debug)]
pub struct DirLock {
    _dir: File,
}

/// Takes the directory lock of `table` without waiting.
///
/// # Errors
/// Exit status 1 if another process holds it, 2 if the directory cannot be
/// opened.
pub fn lock_dir(table: &TableRef) -> Result<DirLock, ToolError> {
    let dir = parent(&table.stem);
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let file = File::open(dir).map_err(|e| ToolError::io(dir, &e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            ToolError::failed(format!(
                "{}: another aria-crypt rekey is working in this directory",
                dir.display()
            ))
        },
    )?;
    Ok(DirLock { _dir: file })
}
