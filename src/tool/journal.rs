//! Crash-safe replacement of a table's files.
//!
//! 1. Before anything is written, every check that can be made is made
//!    ([`preflight`]): each file and its directory can be replaced (write
//!    permission, no immutable or append-only attribute), the new files
//!    will be on the same filesystem, there is room for them and the
//!    journal, and every path can be recorded in the journal (UTF-8).
//! 2. The new files are written beside the old ones as
//!    `<file>.aria-crypt-new` (beside the real file when the table's path is
//!    a symlink), verified and fsynced. The old files get a second name,
//!    `<file>.aria-crypt-old` (a hard link: no copy), for rolling back.
//! 3. The journal `<table>.aria-crypt-journal` is written as
//!    `….aria-crypt-journal.tmp`, fsynced, renamed into place and its
//!    directory fsynced: from this moment the replacement is decided. It
//!    names every new file, its target and its backup, with the sizes and
//!    CRC-32s of the new and the old files.
//! 4. The `.MAI` is removed (its backup keeps it), the new `.MAD` renamed
//!    over the old one, then the new `.MAI` renamed into place; the
//!    directories are fsynced. A server that starts at any moment finds the
//!    old table, no table (no `.MAI`: it opens nothing and writes nothing),
//!    or the new table, never an index file with another table's data file.
//! 5. The backups and then the journal are removed, and the directories
//!    fsynced.
//!
//! A failure before (3) deletes what was written and says so; a crash
//! before (3) leaves the old table and orphaned new files: the next rekey
//! deletes them (roll back). A failed rename in (4) is rolled back from the
//! backups. A crash after (3) leaves a journal: the next rekey (or
//! `rekey --recover`) finishes the renames (roll forward), after checking
//! that each new file is the one the journal describes. It rolls back
//! instead, from the backups, when a new file is damaged or when the old
//! table changed after the journal was written (a server started on it
//! before any rename). Where neither is possible it names every file and
//! the commands that restore the table.
//!
//! Failpoints for the crash tests: `ARIA_CRYPT_FAILPOINT=NAME` or
//! `NAME:N` aborts the process at the N-th (default first) time the tool
//! passes the point named NAME.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
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
/// Suffix of the old files' second names during a rekey.
pub const OLD_SUFFIX: &str = "aria-crypt-old";
/// The journal version written: 2 records the old files.
const JOURNAL_VERSION: u64 = 2;
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

/// Fails here with "No space left on device" if `ARIA_CRYPT_FAILPOINT`
/// names this point as `NAME=enospc` (the failure tests).
///
/// # Errors
/// The injected error.
pub fn injected_error(name: &str) -> std::io::Result<()> {
    static SPEC: OnceLock<Option<String>> = OnceLock::new();
    let spec = SPEC.get_or_init(|| {
        let value = std::env::var(FAILPOINT_ENV).ok()?;
        value.strip_suffix("=enospc").map(str::to_string)
    });
    if spec.as_deref() == Some(name) {
        return Err(std::io::Error::from_raw_os_error(28));
    }
    Ok(())
}

/// Gives `file` the owner and permission bits of `like`.
///
/// # Errors
/// The error of `fchown` or `fchmod`.
pub fn copy_owner_and_mode(file: &File, like: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(like)?;
    file.set_permissions(meta.permissions())?;
    let mine = file.metadata()?;
    if (mine.uid(), mine.gid()) != (meta.uid(), meta.gid()) {
        std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()))?;
    }
    Ok(())
}

/// `<file>.aria-crypt-new`.
pub fn new_path(target: &Path) -> PathBuf {
    with_ext(target, NEW_SUFFIX)
}

/// `<table>.aria-crypt-journal`.
pub fn journal_path(table: &TableRef) -> PathBuf {
    with_ext(&table.stem, JOURNAL_EXT)
}

/// `<journal>.tmp`, the journal while it is written.
pub fn with_tmp(journal: &Path) -> PathBuf {
    journal_tmp(journal)
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
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
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
    /// The old file's second name (`<target>.aria-crypt-old`), with the old
    /// file's size and CRC-32; `None` in journals of earlier versions.
    pub backup: Option<Backup>,
    /// Whether it is the index file, replaced last.
    pub index: bool,
}

/// The old file of a replacement, kept for rolling back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// `<target>.aria-crypt-old`.
    pub path: PathBuf,
    /// The old file's size.
    pub size: u64,
    /// The old file's CRC-32.
    pub crc: u32,
}

impl Replacement {
    /// Describes the new file `new` that replaces `target`.
    ///
    /// # Errors
    /// Exit status 1 if it cannot be read.
    pub fn of(new: PathBuf, target: PathBuf) -> Result<Self, ToolError> {
        let (size, crc) = file_crc(&new).map_err(|e| ToolError::write(&new, &e))?;
        let index = target
            .extension()
            .is_some_and(|e| e == super::walk::INDEX_EXT);
        Ok(Replacement {
            new,
            target,
            size,
            crc,
            backup: None,
            index,
        })
    }

    /// Gives the old file its second name and records it.
    ///
    /// # Errors
    /// Exit status 1 if the link cannot be made.
    pub fn keep_old(&mut self) -> Result<(), ToolError> {
        let path = backup_path(&self.target);
        let _ = std::fs::remove_file(&path);
        std::fs::hard_link(&self.target, &path).map_err(|e| {
            ToolError::failed(format!(
                "{}: cannot give the old file a second name {} for rolling back: {}",
                self.target.display(),
                path.display(),
                super::outcome::io_message(&e)
            ))
        })?;
        let (size, crc) = file_crc(&path).map_err(|e| ToolError::write(&path, &e))?;
        self.backup = Some(Backup { path, size, crc });
        Ok(())
    }

    fn new_intact(&self) -> bool {
        file_crc(&self.new).is_ok_and(|got| got == (self.size, self.crc))
    }
}

/// `<file>.aria-crypt-old`.
pub fn backup_path(target: &Path) -> PathBuf {
    with_ext(target, OLD_SUFFIX)
}

fn path_str(path: &Path) -> Result<&str, ToolError> {
    path.to_str().ok_or_else(|| {
        ToolError::input(format!(
            "{}: not a UTF-8 path, which the rekey journal cannot record; rename the table first",
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

/// What happened to a table when a replacement could not finish.
fn state_lines(files: &[Replacement]) -> String {
    files
        .iter()
        .map(|r| {
            let have = |p: &Path| if p.exists() { "present" } else { "missing" };
            let mut line = format!(
                "{} ({}); its new version {} ({}{})",
                r.target.display(),
                have(&r.target),
                r.new.display(),
                have(&r.new),
                if r.new.exists() && !r.new_intact() {
                    ", damaged"
                } else {
                    ""
                }
            );
            if let Some(b) = &r.backup {
                line += &format!("; the old file {} ({})", b.path.display(), have(&b.path));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Shell commands that put the old or the new table in place, from the
/// files that are left.
fn restore_commands(journal: &Path, files: &[Replacement]) -> String {
    let old: Option<Vec<String>> = files
        .iter()
        .map(|r| {
            if r.new.exists() && r.target.exists() {
                Some(format!("rm '{}'", r.new.display()))
            } else {
                let b = r.backup.as_ref().filter(|b| b.path.exists())?;
                Some(format!(
                    "mv '{}' '{}'",
                    b.path.display(),
                    r.target.display()
                ))
            }
        })
        .collect();
    let new: Option<Vec<String>> = files
        .iter()
        .map(|r| {
            if r.new.exists() {
                Some(format!("mv '{}' '{}'", r.new.display(), r.target.display()))
            } else {
                // Renamed already, if the target is there.
                r.target.exists().then(|| "true".to_string())
            }
        })
        .collect();
    let done = format!("rm '{}'", journal.display());
    match (old, new) {
        (Some(cmds), _) => format!(
            "to restore the old table: {} && {done}",
            cmds.join(" && ")
        ),
        (None, Some(cmds)) => format!(
            "to put the new table in place: {} && {done}, then CHECK TABLE it on the server",
            cmds.join(" && ")
        ),
        (None, None) => "neither the old nor the new version of every file is left: restore the table from a backup".to_string(),
    }
}

impl Journal {
    /// Writes the journal durably: the commit point of a replacement. The
    /// journal file gets the mode and owner of `like` (the table's file).
    ///
    /// # Errors
    /// Exit status 1; the journal does not exist then (nor its temporary
    /// file).
    pub fn commit(
        path: PathBuf,
        files: Vec<Replacement>,
        like: &Path,
    ) -> Result<Journal, ToolError> {
        let entries = files
            .iter()
            .map(|r| {
                let mut entry = json!({
                    "new": path_str(&r.new)?,
                    "target": path_str(&r.target)?,
                    "size": r.size,
                    "crc32": format!("{:08x}", r.crc),
                    "index": r.index,
                });
                if let Some(b) = &r.backup {
                    entry["old"] = json!(path_str(&b.path)?);
                    entry["old_size"] = json!(b.size);
                    entry["old_crc32"] = json!(format!("{:08x}", b.crc));
                }
                Ok(entry)
            })
            .collect::<Result<Vec<Value>, ToolError>>()?;
        let doc = json!({ "format": JOURNAL_FORMAT, "version": JOURNAL_VERSION, "files": entries });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
        let tmp = journal_tmp(&path);
        let write = |tmp: &Path| -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(tmp)?;
            copy_owner_and_mode(&file, like)?;
            injected_error("journal-write")?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        };
        let _ = std::fs::remove_file(&tmp);
        if let Err(e) = write(&tmp) {
            let _ = std::fs::remove_file(&tmp);
            return Err(ToolError::write(&tmp, &e));
        }
        failpoint("journal-written");
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(ToolError::write(&path, &e));
        }
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
                "{}: {why}; the rekey it records cannot be completed automatically: each of the table's files is either as it was, or its new version is beside it as NAME.{NEW_SUFFIX} with the old one as NAME.{OLD_SUFFIX}: to keep the old table, `mv NAME.{OLD_SUFFIX} NAME` for each file that has one and delete the {NEW_SUFFIX} files and the journal",
                path.display()
            ))
        };
        let text = std::fs::read_to_string(path).map_err(|e| ToolError::write(path, &e))?;
        let doc: Value = serde_json::from_str(&text).map_err(|_| bad("not a valid journal"))?;
        let version = doc["version"].as_u64().unwrap_or(0);
        if doc["format"] != JOURNAL_FORMAT || !(1..=JOURNAL_VERSION).contains(&version) {
            return Err(bad("unknown journal format"));
        }
        let crc = |v: &Value| v.as_str().and_then(|c| u32::from_str_radix(c, 16).ok());
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
                let crc32 = crc(&f["crc32"]).ok_or_else(|| bad("entry without a CRC-32"))?;
                let backup = match (
                    f["old"].as_str(),
                    f["old_size"].as_u64(),
                    crc(&f["old_crc32"]),
                ) {
                    (Some(path), Some(size), Some(crc)) => Some(Backup {
                        path: PathBuf::from(path),
                        size,
                        crc,
                    }),
                    (None, None, None) => None,
                    _ => return Err(bad("entry with an incomplete old file")),
                };
                Ok(Replacement {
                    new: PathBuf::from(new),
                    target: PathBuf::from(target),
                    size,
                    crc: crc32,
                    index: f["index"].as_bool().unwrap_or(false),
                    backup,
                })
            })
            .collect::<Result<Vec<_>, ToolError>>()?;
        Ok(Journal {
            path: path.to_path_buf(),
            files,
        })
    }

    /// Replaces the files (step 4 and 5 above), from whatever point a
    /// crash left it at. Safe to run again after a crash at any point.
    /// A rename that fails is rolled back.
    ///
    /// # Errors
    /// Exit status 1, saying what state the table is in.
    pub fn apply(&self) -> Result<Vec<String>, ToolError> {
        match self.renames() {
            Ok(notes) => Ok(notes),
            Err(err) => Err(match self.roll_back() {
                Ok(()) => ToolError::failed(format!(
                    "{}; rolled back: the table is unchanged",
                    err.message
                )),
                Err(back) => ToolError::failed(format!(
                    "{}; rolling back failed too ({}): the table is half replaced and the journal {} is kept: {}; {}",
                    err.message,
                    back.message,
                    self.path.display(),
                    state_lines(&self.files),
                    restore_commands(&self.path, &self.files)
                )),
            }),
        }
    }

    fn renames(&self) -> Result<Vec<String>, ToolError> {
        let mut notes = Vec::new();
        let mut dirs = BTreeSet::new();
        let rename = |r: &Replacement| -> Result<(), ToolError> {
            if r.new.exists() {
                injected_error("rename").map_err(|e| ToolError::write(&r.target, &e))?;
                std::fs::rename(&r.new, &r.target).map_err(|e| {
                    ToolError::failed(format!(
                        "renaming {} to {} failed: {}",
                        r.new.display(),
                        r.target.display(),
                        super::outcome::io_message(&e)
                    ))
                })?;
                failpoint("renamed");
            }
            Ok(())
        };
        // The index file goes first (out of the way) and comes back last.
        for r in self.files.iter().filter(|r| r.index && r.backup.is_some()) {
            if r.new.exists() && r.target.exists() {
                std::fs::remove_file(&r.target).map_err(|e| {
                    ToolError::failed(format!(
                        "removing {} (kept as {}) failed: {}",
                        r.target.display(),
                        backup_path(&r.target).display(),
                        super::outcome::io_message(&e)
                    ))
                })?;
                sync_dir(parent(&r.target))?;
                failpoint("index-removed");
            }
        }
        let order: Vec<&Replacement> = if self.files.iter().all(|r| r.backup.is_some()) {
            self.files
                .iter()
                .filter(|r| !r.index)
                .chain(self.files.iter().filter(|r| r.index))
                .collect()
        } else {
            // Journals of version 1: in their order.
            self.files.iter().collect()
        };
        for r in order {
            rename(r)?;
            dirs.insert(parent(&r.target).to_path_buf());
        }
        for dir in &dirs {
            sync_dir(dir)?;
        }
        failpoint("renames-synced");
        for r in &self.files {
            if r.backup.is_none() && !file_crc(&r.target).is_ok_and(|got| got == (r.size, r.crc)) {
                notes.push(format!(
                    "{} changed after it was replaced (a server opened the half-replaced table and rewrote its header?): run CHECK TABLE on it when the server is up, and REPAIR TABLE if it reports a problem",
                    r.target.display()
                ));
            }
        }
        self.finish()?;
        Ok(notes)
    }

    /// Removes the backups, then the journal.
    fn finish(&self) -> Result<(), ToolError> {
        let mut dirs = BTreeSet::new();
        for b in self.files.iter().filter_map(|r| r.backup.as_ref()) {
            match std::fs::remove_file(&b.path) {
                Ok(()) => {
                    dirs.insert(parent(&b.path).to_path_buf());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ToolError::write(&b.path, &e)),
            }
        }
        for dir in &dirs {
            sync_dir(dir)?;
        }
        std::fs::remove_file(&self.path).map_err(|e| ToolError::write(&self.path, &e))?;
        sync_dir(parent(&self.path))?;
        Ok(())
    }

    /// Puts every old file back from its backup, deletes the new files and
    /// the journal.
    ///
    /// # Errors
    /// Exit status 1 when an old file is not kept or cannot be put back.
    pub fn roll_back(&self) -> Result<(), ToolError> {
        // Every old file that is needed must be there before one is moved.
        for r in &self.files {
            let replaced = !r.target.exists() || !r.new.exists();
            if let Some(b) = &r.backup
                && replaced
                && !b.path.exists()
            {
                return Err(ToolError::failed(format!(
                    "{}: the old file {} is gone",
                    r.target.display(),
                    b.path.display()
                )));
            }
        }
        let mut dirs = BTreeSet::new();
        for r in &self.files {
            let Some(b) = &r.backup else {
                return Err(ToolError::failed(format!(
                    "the journal {} keeps no old files",
                    self.path.display()
                )));
            };
            let replaced = !r.target.exists() || !r.new.exists();
            if replaced {
                if !b.path.exists() {
                    return Err(ToolError::failed(format!(
                        "{}: the old file {} is gone",
                        r.target.display(),
                        b.path.display()
                    )));
                }
                std::fs::rename(&b.path, &r.target).map_err(|e| ToolError::write(&r.target, &e))?;
            }
            dirs.insert(parent(&r.target).to_path_buf());
        }
        for r in &self.files {
            for path in [Some(&r.new), r.backup.as_ref().map(|b| &b.path)]
                .into_iter()
                .flatten()
            {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ToolError::write(path, &e)),
                }
            }
        }
        for dir in &dirs {
            sync_dir(dir)?;
        }
        std::fs::remove_file(&self.path).map_err(|e| ToolError::write(&self.path, &e))?;
        sync_dir(parent(&self.path))?;
        Ok(())
    }

    /// Completes or rolls back the replacement after a crash.
    ///
    /// # Errors
    /// Exit status 1 where neither is possible, naming every file and the
    /// commands that restore the table.
    fn recover(&self) -> Result<Recovered, ToolError> {
        let stuck = |why: String| {
            ToolError::failed(format!(
                "{}: {why}; neither finishing nor rolling back is possible: {}; {}",
                self.path.display(),
                state_lines(&self.files),
                restore_commands(&self.path, &self.files)
            ))
        };
        let back = |reason: String| match self.roll_back() {
            Ok(()) => Ok(Recovered::RolledBack {
                files: self.files.iter().map(|r| r.new.clone()).collect(),
                reason: Some(reason),
            }),
            Err(err) => Err(stuck(format!("{reason}, and {}", err.message))),
        };
        if let Some(r) = self
            .files
            .iter()
            .find(|r| r.new.exists() && !r.new_intact())
        {
            return back(format!(
                "{} is not the file the journal describes",
                r.new.display()
            ));
        }
        let untouched = self
            .files
            .iter()
            .all(|r| r.new.exists() && r.target.exists());
        let changed_since = |r: &&Replacement| {
            r.backup
                .as_ref()
                .is_some_and(|b| !file_crc(&r.target).is_ok_and(|got| got == (b.size, b.crc)))
        };
        if untouched && let Some(r) = self.files.iter().find(changed_since) {
            return back(format!(
                "{} changed after the journal was written (a server started on the old table?), so the new files are out of date",
                r.target.display()
            ));
        }
        if let Some(r) = self
            .files
            .iter()
            .find(|r| !r.new.exists() && !r.target.exists())
        {
            return back(format!(
                "{} and its new version {} are both missing",
                r.target.display(),
                r.new.display()
            ));
        }
        match self.renames() {
            Ok(notes) => Ok(Recovered::Completed {
                journal: self.path.clone(),
                notes,
            }),
            Err(err) => Err(stuck(err.message)),
        }
    }
}

/// Room kept for the journal when checking free space.
const JOURNAL_ROOM: u64 = 64 * 1024;

/// Checks, before anything is written, that the files `targets` (real
/// paths, with the sizes their new versions will have) can be replaced
/// and the journal `journal` written: every path can be recorded (UTF-8);
/// each directory is writable; no file or directory has the immutable or
/// append-only attribute; each file is on its directory's filesystem (a
/// rename can replace it); each filesystem has room for the new files and
/// the journal.
///
/// # Errors
/// Exit status 1 (2 for a path the journal cannot record), naming the file
/// and what is wrong.
pub fn preflight(targets: &[(PathBuf, u64)], journal: &Path) -> Result<(), ToolError> {
    let mut needed: std::collections::BTreeMap<u64, (PathBuf, u64)> =
        std::collections::BTreeMap::new();
    let mut need = |dir: &Path, bytes: u64| -> Result<(), ToolError> {
        let dev = std::fs::metadata(dir)
            .map_err(|e| ToolError::write(dir, &e))?
            .dev();
        needed
            .entry(dev)
            .or_insert_with(|| (dir.to_path_buf(), 0))
            .1 += bytes;
        Ok(())
    };
    for (target, size) in targets {
        for path in [target.clone(), new_path(target), backup_path(target)] {
            path_str(&path)?;
        }
        let dir = parent(target);
        writable_dir(dir)?;
        not_locked_down(target)?;
        let file_dev = std::fs::metadata(target)
            .map_err(|e| ToolError::write(target, &e))?
            .dev();
        let dir_dev = std::fs::metadata(dir)
            .map_err(|e| ToolError::write(dir, &e))?
            .dev();
        if file_dev != dir_dev {
            return Err(ToolError::failed(format!(
                "{}: on another filesystem than its directory {} (a mount of its own), so it cannot be replaced by a rename; nothing was written",
                target.display(),
                dir.display()
            )));
        }
        need(dir, *size)?;
    }
    path_str(journal)?;
    let journal_dir = parent(journal);
    writable_dir(journal_dir)?;
    need(journal_dir, JOURNAL_ROOM)?;
    for (dir, bytes) in needed.values() {
        let stat = rustix::fs::statvfs(dir.as_path())
            .map_err(|e| ToolError::write(dir, &std::io::Error::from(e)))?;
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        if free < *bytes {
            return Err(ToolError::failed(format!(
                "{}: {free} bytes free, but the new files and the journal need {bytes}; free some space first; nothing was written",
                dir.display()
            )));
        }
    }
    Ok(())
}

fn writable_dir(dir: &Path) -> Result<(), ToolError> {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).map_err(|e| {
        ToolError::failed(format!(
            "{}: cannot create files in this directory ({}); nothing was written",
            dir.display(),
            super::outcome::io_message(&std::io::Error::from(e))
        ))
    })?;
    not_locked_down(dir)
}

/// Refuses a file or directory with the immutable or append-only
/// attribute (`chattr +i`, `+a`): it cannot be renamed over or removed.
fn not_locked_down(path: &Path) -> Result<(), ToolError> {
    let Ok(file) = File::open(path) else {
        return Ok(());
    };
    // Filesystems without inode flags answer ENOTTY: nothing to check.
    let Ok(flags) = rustix::fs::ioctl_getflags(&file) else {
        return Ok(());
    };
    for (flag, name, clear) in [
        (rustix::fs::IFlags::IMMUTABLE, "immutable", "chattr -i"),
        (rustix::fs::IFlags::APPEND, "append-only", "chattr -a"),
    ] {
        if flags.contains(flag) {
            return Err(ToolError::failed(format!(
                "{}: has the {name} attribute, so it cannot be replaced ({clear} clears it); nothing was written",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Deletes what a failed rekey wrote before its journal: the new files,
/// the backups, a temporary journal. Returns what it deleted.
pub fn clean_up(files: &[PathBuf]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| std::fs::remove_file(f).is_ok())
        .cloned()
        .collect()
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
    let mai = real_path(&table.mai);
    let mad = real_path(&table.mad);
    let mut found: Vec<PathBuf> = [new_path(&mai), new_path(&mad), journal_tmp(&journal)]
        .into_iter()
        .filter(|p| p.exists())
        .collect();
    // A backup is only a second name of a file still in place.
    for (target, backup) in [(&mai, backup_path(&mai)), (&mad, backup_path(&mad))] {
        if backup.exists() && target.exists() {
            found.push(backup);
        }
    }
    found
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
    Completed {
        /// The journal.
        journal: PathBuf,
        /// What the operator should know (a header changed since).
        notes: Vec<String>,
    },
    /// The new files were deleted; the table is the old one.
    RolledBack {
        /// The deleted new files.
        files: Vec<PathBuf>,
        /// Why a journaled replacement was rolled back (`None`: there was
        /// no journal).
        reason: Option<String>,
    },
}

/// Completes or rolls back an interrupted rekey of `table`.
///
/// # Errors
/// Exit status 1 if neither can be done; the message names the files and
/// how to restore the table.
pub fn recover(table: &TableRef) -> Result<Option<Recovered>, ToolError> {
    match pending(table) {
        None => Ok(None),
        Some(Pending::Journal(path)) => {
            let journal = Journal::load(&path)?;
            let done = journal.recover()?;
            // A temporary journal can outlive a completed one only if a
            // crash hit between two recoveries; it means nothing now.
            let _ = std::fs::remove_file(journal_tmp(&path));
            Ok(Some(done))
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
            Ok(Some(Recovered::RolledBack {
                files,
                reason: None,
            }))
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
