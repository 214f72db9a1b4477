//! Is a MariaDB server using a data directory?
//!
//! The Aria engine takes an exclusive `fcntl` write lock on the whole of
//! `aria_log_control` when it starts and keeps it until it stops
//! (`lock_control_file` in `storage/maria/ma_control_file.c`; only
//! `aria_readonly` servers skip it). The lock lives with the process: a
//! control file left behind by a crashed or stopped server is not locked.
//! `F_GETLK` names the holder's pid. The control file is in
//! `aria_log_dir_path`, by default the data directory, which holds the
//! databases' directories: it is looked for in the table's directory and
//! its parents.
//!
//! Holding the same lock while re-keying keeps a server from starting on
//! the data directory meanwhile (it retries for 30 s, then refuses to start).
//!
//! A second check finds processes that have the table's files open
//! (`/proc/*/fd`), for servers whose control file is elsewhere.

use std::collections::HashMap;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, fcntl_lock};
use rustix::process::{Flock, FlockType, fcntl_getlk};

use super::outcome::ToolError;

/// The Aria control file's name.
pub const CONTROL_FILE: &str = "aria_log_control";

/// The process holding a control file's lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Its pid (unknown for locks not tied to a process).
    pub pid: Option<i32>,
    /// Its command name, from `/proc/<pid>/comm`.
    pub name: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.name, self.pid) {
            (Some(name), Some(pid)) => write!(f, "{name} (pid {pid})"),
            (None, Some(pid)) => write!(f, "pid {pid}"),
            _ => f.write_str("another process"),
        }
    }
}

/// `dir`, or `.` for the empty parent of a bare file name.
fn or_cwd(dir: &Path) -> &Path {
    if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }
}

/// The nearest `aria_log_control` in `dir` or its parents.
pub fn find_control_file(dir: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(or_cwd(dir)).ok()?;
    dir.ancestors()
        .map(|d| d.join(CONTROL_FILE))
        .find(|p| p.is_file())
}

fn holder_of(lock: &Flock) -> Holder {
    let pid = lock.pid.map(|p| p.as_raw_nonzero().get());
    let name = pid.and_then(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|s| s.trim().to_string())
    });
    Holder { pid, name }
}

/// Who holds the write lock on `control`, if anyone.
///
/// Opens and closes the file: never call it on a control file this process
/// has locked (closing any descriptor drops a process's `fcntl` locks).
///
/// # Errors
/// If the file cannot be opened or queried.
pub fn lock_holder(control: &Path) -> std::io::Result<Option<Holder>> {
    let file = File::open(control)?;
    let probe = Flock::from(FlockType::WriteLock);
    Ok(fcntl_getlk(&file, &probe)?.map(|lock| holder_of(&lock)))
}

/// The lock on a control file, held until dropped.
#[derive(Debug)]
pub struct ControlLock {
    _file: File,
}

/// What taking the lock found.
#[derive(Debug)]
pub enum LockOutcome {
    /// We hold it now.
    Taken(ControlLock),
    /// A server (or another process) holds it.
    Busy(Holder),
    /// It cannot be locked by us (no write permission); the holder, if any.
    Checked(Option<Holder>),
}

/// Takes the control file's write lock without waiting.
///
/// # Errors
/// If the file cannot be opened at all.
pub fn take_lock(control: &Path) -> Result<LockOutcome, ToolError> {
    let file = match OpenOptions::new().read(true).write(true).open(control) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
            let holder = lock_holder(control).map_err(|e| ToolError::io(control, &e))?;
            return Ok(LockOutcome::Checked(holder));
        }
        Err(err) => return Err(ToolError::io(control, &err)),
    };
    match fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(LockOutcome::Taken(ControlLock { _file: file })),
        Err(_) => {
            let probe = Flock::from(FlockType::WriteLock);
            let holder = fcntl_getlk(&file, &probe).ok().flatten().map_or(
                Holder {
                    pid: None,
                    name: None,
                },
                |l| holder_of(&l),
            );
            Ok(LockOutcome::Busy(holder))
        }
    }
}

/// Every file open in another process, by (device, inode), from
/// `/proc/*/fd`. Processes this user cannot inspect are skipped.
pub fn open_files() -> HashMap<(u64, u64), Holder> {
    let mut found = HashMap::new();
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let mut holder = None;
        for fd in fds.flatten() {
            if let Ok(m) = std::fs::metadata(fd.path())
                && m.is_file()
            {
                let holder = holder.get_or_insert_with(|| Holder {
                    pid: i32::try_from(pid).ok(),
                    name: std::fs::read_to_string(entry.path().join("comm"))
                        .ok()
                        .map(|s| s.trim().to_string()),
                });
                found
                    .entry((m.dev(), m.ino()))
                    .or_insert_with(|| holder.clone());
            }
        }
    }
    found
}

/// What is known about a server on a table's data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    /// No `aria_log_control` above the table: cannot tell.
    NoControlFile,
    /// The control file is not locked: no server.
    Stopped(PathBuf),
    /// A process holds the control file's lock.
    Running(PathBuf, Holder),
}

/// The state of the server for a table in `dir`, without locking.
pub fn state(dir: &Path) -> ServerState {
    let Some(control) = find_control_file(dir) else {
        return ServerState::NoControlFile;
    };
    match lock_holder(&control) {
        Ok(Some(holder)) => ServerState::Running(control, holder),
        _ => ServerState::Stopped(control),
    }
}

/// The control-file locks taken during a rekey, one per data directory.
#[derive(Debug, Default)]
pub struct Guard {
    held: HashMap<PathBuf, ControlLock>,
    checked: HashSet<PathBuf>,
    /// Directories already warned about having no control file.
    warned: HashSet<PathBuf>,
    /// Files open in other processes, read once per run.
    open: Option<HashMap<(u64, u64), Holder>>,
}

impl Guard {
    /// Makes sure no server uses the data directory of a table whose files
    /// are `files` in `dir`, and keeps servers from starting there while the
    /// guard lives. Returns warnings.
    ///
    /// # Errors
    /// Exit status 1 when a server is running and `force` is not set.
    pub fn check(
        &mut self,
        dir: &Path,
        files: &[&Path],
        force: bool,
    ) -> Result<Vec<String>, ToolError> {
        let dir = or_cwd(dir);
        let mut warnings = Vec::new();
        let refuse = |what: String| {
            if force {
                Ok(format!("{what}; going on because of --force"))
            } else {
                Err(ToolError::failed(format!(
                    "{what}: stop the server first (or use --force if you are sure it does not use these tables)"
                )))
            }
        };
        match find_control_file(dir) {
            None if !self.warned.insert(dir.to_path_buf()) => {}
            None => warnings.push(format!(
                "{}: no {CONTROL_FILE} in this directory or its parents, so whether a MariaDB server uses it cannot be told from the control-file lock",
                dir.display()
            )),
            Some(control) if self.held.contains_key(&control) || self.checked.contains(&control) => {}
            Some(control) => match take_lock(&control)? {
                LockOutcome::Taken(lock) => {
                    self.held.insert(control, lock);
                }
                LockOutcome::Busy(holder) | LockOutcome::Checked(Some(holder)) => {
                    warnings.push(refuse(format!(
                        "a MariaDB server is running on this data directory: {holder} holds the lock on {}",
                        control.display()
                    ))?);
                    self.checked.insert(control);
                }
                LockOutcome::Checked(None) => {
                    warnings.push(format!(
                        "{}: no write permission, so it cannot be locked to keep a server from starting during the rekey",
                        control.display()
                    ));
                    self.checked.insert(control);
                }
            },
        }
        let ids: Vec<(u64, u64)> = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        let holds = |open: &HashMap<(u64, u64), Holder>| ids.iter().any(|id| open.contains_key(id));
        if holds(self.open.get_or_insert_with(open_files)) {
            // A process that has just forked holds its parent's files until
            // it execs or exits, a moment later: look again before refusing.
            std::thread::sleep(std::time::Duration::from_millis(100));
            self.open = Some(open_files());
        }
        let open = self.open.get_or_insert_with(open_files);
        if let Some(holder) = ids.iter().find_map(|id| open.get(id)) {
            warnings.push(refuse(format!(
                "{holder} has {} open",
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))?);
        }
        Ok(warnings)
    }
}
