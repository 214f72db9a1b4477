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

/// `dir` made absolute without resolving symlinks, so that a database
/// directory linked from elsewhere keeps its data directory as a parent.
fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(or_cwd(dir)).unwrap_or_else(|_| or_cwd(dir).to_path_buf())
}

/// `dir`'s ancestors as named (through symlinks), then those of its real
/// path.
fn ancestors(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = absolute(dir).ancestors().map(Path::to_path_buf).collect();
    if let Ok(real) = std::fs::canonicalize(or_cwd(dir)) {
        all.extend(real.ancestors().map(Path::to_path_buf));
    }
    all
}

/// The nearest `aria_log_control` in `dir` or its parents.
pub fn find_control_file(dir: &Path) -> Option<PathBuf> {
    ancestors(dir)
        .into_iter()
        .map(|d| d.join(CONTROL_FILE))
        .find(|p| p.is_file())
}

/// Whether `dir` looks like a MariaDB data directory: it has the Aria
/// control file, InnoDB's system tablespace or the `mysql` system database.
fn is_datadir(dir: &Path) -> bool {
    dir.join(CONTROL_FILE).is_file()
        || dir.join(INNODB_SYSTEM).is_file()
        || dir.join("mysql").is_dir()
}

/// The data directory a table directory belongs to: the nearest parent
/// that looks like one (a database directory linked from elsewhere
/// counts as in the directory it is linked from).
pub fn find_datadir(dir: &Path) -> Option<PathBuf> {
    ancestors(dir).into_iter().find(|d| is_datadir(d))
}

/// InnoDB's system tablespace, which a running server keeps `fcntl`-locked.
pub const INNODB_SYSTEM: &str = "ibdata1";

/// Command names of MariaDB and MySQL servers.
const SERVER_NAMES: [&str; 3] = ["mariadbd", "mysqld", "mariadb"];

fn real(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

fn is_server(pid: u32) -> bool {
    comm(pid).is_some_and(|name| SERVER_NAMES.contains(&name.as_str()))
}

/// A server's options that name directories: from its command line.
fn server_option(cmdline: &[String], name: &str) -> Option<PathBuf> {
    let flag = format!("--{name}=");
    let alt = format!("--{}=", name.replace('-', "_"));
    cmdline.iter().find_map(|arg| {
        arg.strip_prefix(&flag)
            .or_else(|| arg.strip_prefix(&alt))
            .map(PathBuf::from)
    })
}

/// The running server processes (by name), each with its command line.
fn running_servers() -> Vec<(u32, Vec<String>)> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| is_server(pid))
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| {
                    raw.split(|&b| b == 0)
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect()
                })
                .unwrap_or_default();
            (pid, cmdline)
        })
        .collect()
}

/// Server processes whose working directory or `--datadir` is `datadir`.
fn server_processes(datadir: &Path) -> Vec<String> {
    let want = real(datadir);
    let mut found = Vec::new();
    for (pid, cmdline) in running_servers() {
        let name = comm(pid).unwrap_or_default();
        if cwd_of(pid).is_some_and(|c| real(&c) == want) {
            found.push(format!("{name} (pid {pid}) runs in {}", datadir.display()));
        } else if option_value(&cmdline, "datadir").is_some_and(|d| real(&d) == want) {
            found.push(format!(
                "{name} (pid {pid}) has --datadir={}",
                datadir.display()
            ));
        }
    }
    found
}

/// Server options from the option files, as `my_print_defaults` prints
/// them (empty when it is not installed).
fn option_files() -> Vec<String> {
    std::process::Command::new("my_print_defaults")
        .args(["mysqld", "mariadbd", "server", "mariadb"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Who holds an `fcntl` write lock on `path`, if it exists and anyone does.
fn locked_by(path: &Path) -> Option<Holder> {
    lock_holder(path).ok().flatten()
}

/// An Aria log directory to look at, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDir {
    /// The directory (`aria_log_dir_path`).
    pub path: PathBuf,
    /// The data directory of the server it was configured for, when known.
    pub datadir: Option<PathBuf>,
    /// Named by the operator (`--aria-log-dir`): it belongs to the data
    /// directories being worked on.
    pub explicit: bool,
}

/// The compiled-in data directory of Debian's server, for option files
/// that name none.
const DEFAULT_DATADIR: &str = "/var/lib/mysql";

/// The working directory of a process, if this user may see it.
fn cwd_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// Every sign that a server uses `datadir`, as sentences naming what was
/// seen: a held `aria_log_control` in any of `log_dirs` that belongs to
/// this data directory (named with `--aria-log-dir`, configured for it, or
/// held by a process working in it or one that cannot be told), InnoDB's
/// lock on `ibdata1`, a server process working in it, a pid file naming a
/// live server of it. The data directory's own control file is the
/// caller's (it takes that lock).
pub fn signals(datadir: &Path, log_dirs: &[LogDir]) -> Vec<String> {
    let mut found = Vec::new();
    let want = real(datadir);
    for dir in log_dirs {
        let control = dir.path.join(CONTROL_FILE);
        if real(&dir.path) == want {
            continue;
        }
        let Some(holder) = locked_by(&control) else {
            continue;
        };
        let ours = match (&dir.datadir, holder.pid) {
            _ if dir.explicit => true,
            (Some(owner), _) => real(owner) == want,
            (None, Some(pid)) => cwd_of(pid.unsigned_abs()).is_none_or(|cwd| real(&cwd) == want),
            (None, None) => true,
        };
        if ours {
            found.push(format!(
                "{holder} holds the lock on the Aria control file {}",
                control.display()
            ));
        }
    }
    if let Some(holder) = locked_by(&datadir.join(INNODB_SYSTEM)) {
        found.push(format!(
            "{holder} holds InnoDB's lock on {}",
            datadir.join(INNODB_SYSTEM).display()
        ));
    }
    found.extend(server_processes(datadir));
    let mut pid_files: Vec<PathBuf> = std::fs::read_dir(datadir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "pid"))
                .collect()
        })
        .unwrap_or_default();
    let options = option_files();
    let configured = option_value(&options, "datadir").unwrap_or_else(|| DEFAULT_DATADIR.into());
    if real(&configured) == want {
        pid_files.extend(option_value(&options, "pid-file").map(|p| datadir.join(p)));
    }
    for pid_file in pid_files {
        let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        else {
            continue;
        };
        let here = cwd_of(pid).is_none_or(|cwd| real(&cwd) == want);
        if is_server(pid) && here && !found.iter().any(|f| f.contains(&format!("(pid {pid})"))) {
            found.push(format!(
                "the pid file {} names the running server {} (pid {pid})",
                pid_file.display(),
                comm(pid).unwrap_or_default()
            ));
        }
    }
    found
}

/// The last `--NAME=VALUE` among option lines (later ones win, as in the
/// server).
fn option_value(lines: &[String], name: &str) -> Option<PathBuf> {
    server_option(&lines.iter().rev().cloned().collect::<Vec<_>>(), name)
}

/// The Aria log directories to check: `explicit` (`--aria-log-dir`), the
/// option files' `aria_log_dir_path`, and those of the running servers'
/// command lines, each with the data directory it was configured for.
pub fn aria_log_dirs(explicit: &[PathBuf]) -> Vec<LogDir> {
    let mut dirs: Vec<LogDir> = explicit
        .iter()
        .map(|d| LogDir {
            path: d.clone(),
            datadir: None,
            explicit: true,
        })
        .collect();
    let options = option_files();
    if let Some(path) = option_value(&options, "aria-log-dir-path") {
        dirs.push(LogDir {
            path,
            datadir: Some(
                option_value(&options, "datadir").unwrap_or_else(|| DEFAULT_DATADIR.into()),
            ),
            explicit: false,
        });
    }
    for (pid, cmdline) in running_servers() {
        if let Some(path) = option_value(&cmdline, "aria-log-dir-path") {
            let cwd = cwd_of(pid);
            // Relative to the server's working directory (its datadir).
            let path = match &cwd {
                Some(cwd) if path.is_relative() => cwd.join(path),
                _ => path,
            };
            dirs.push(LogDir {
                path,
                datadir: option_value(&cmdline, "datadir").or(cwd),
                explicit: false,
            });
        }
    }
    dirs
}

fn holder_of(lock: &Flock) -> Holder {
    let pid = lock.pid.map(|p| p.as_raw_nonzero().get());
    let name = pid.and_then(|p| u32::try_from(p).ok()).and_then(comm);
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
    /// Aria log directories to look at.
    log_dirs: Vec<LogDir>,
    /// What was found per data directory (empty: nothing).
    examined: HashMap<PathBuf, Vec<String>>,
    /// Data directories already refused or warned about.
    reported: HashSet<PathBuf>,
}

/// Why a table may not be re-keyed now.
#[derive(Debug)]
pub struct Refusal {
    /// The error; its message names what was detected the first time a
    /// data directory is refused, and only points back to it after.
    pub error: ToolError,
    /// Whether the message was already given for this data directory.
    pub repeated: bool,
}

impl Guard {
    /// A guard that also looks at these Aria log directories
    /// (`--aria-log-dir`) and those the option files and running servers
    /// name.
    pub fn new(explicit_log_dirs: &[PathBuf]) -> Guard {
        Guard {
            log_dirs: aria_log_dirs(explicit_log_dirs),
            ..Guard::default()
        }
    }

    /// Makes sure no server uses the data directory of a table whose files
    /// are `files` in `dir`, and keeps servers from starting there while the
    /// guard lives. Returns warnings.
    ///
    /// # Errors
    /// Exit status 1 when a server seems to run and `force` is not set.
    pub fn check(
        &mut self,
        dir: &Path,
        files: &[&Path],
        force: bool,
    ) -> Result<Vec<String>, Refusal> {
        let dir = or_cwd(dir);
        let datadir = find_datadir(dir);
        let place = datadir.clone().unwrap_or_else(|| dir.to_path_buf());
        let mut warnings = Vec::new();
        let mut found = match &datadir {
            Some(datadir) => {
                let log_dirs = &self.log_dirs;
                self.examined
                    .entry(datadir.clone())
                    .or_insert_with(|| signals(datadir, log_dirs))
                    .clone()
            }
            None => Vec::new(),
        };
        match find_control_file(dir) {
            None if !self.warned.insert(dir.to_path_buf()) => {}
            None => warnings.push(format!(
                "{}: no {CONTROL_FILE} in this directory or its parents, so whether a MariaDB server uses it cannot be told from the control-file lock",
                dir.display()
            )),
            Some(control) if self.held.contains_key(&control) => {}
            Some(control) if self.checked.contains(&control) => {
                if let Ok(Some(holder)) = lock_holder(&control) {
                    found.push(format!("{holder} holds the lock on {}", control.display()));
                }
            }
            Some(control) => {
                let outcome = take_lock(&control).map_err(|error| Refusal {
                    error,
                    repeated: false,
                })?;
                match outcome {
                    LockOutcome::Taken(lock) => {
                        self.held.insert(control, lock);
                    }
                    LockOutcome::Busy(holder) | LockOutcome::Checked(Some(holder)) => {
                        found.push(format!("{holder} holds the lock on {}", control.display()));
                        self.checked.insert(control);
                    }
                    LockOutcome::Checked(None) => {
                        warnings.push(format!(
                            "{}: no write permission, so it cannot be locked to keep a server from starting during the rekey",
                            control.display()
                        ));
                        self.checked.insert(control);
                    }
                }
            }
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
            found.push(format!(
                "{holder} has {} open",
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        if found.is_empty() {
            return Ok(warnings);
        }
        let first = self.reported.insert(place.clone());
        let what = format!(
            "a MariaDB server is running on this data directory ({}): {}",
            place.display(),
            found.join("; ")
        );
        if force {
            if first {
                warnings.push(format!("{what}; going on because of --force"));
            }
            return Ok(warnings);
        }
        Err(Refusal {
            error: ToolError::failed(if first {
                format!(
                    "{what}: stop the server first (or use --force if you are sure it does not use these tables); nothing in this data directory is re-keyed"
                )
            } else {
                format!(
                    "a MariaDB server is running on this data directory ({}); see above",
                    place.display()
                )
            }),
            repeated: !first,
        })
    }
}
