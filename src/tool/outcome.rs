//! Exit statuses and the tool's error: one line naming what went wrong.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;

use crate::Error;

/// How a command ended, ordered by severity; a run exits with the worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Status {
    /// Everything checked out.
    #[default]
    Ok,
    /// A table failed verification, or a command could not complete.
    Failed,
    /// Usage error or unreadable input.
    Input,
}

impl Status {
    /// The process exit code (0, 1, 2).
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Failed => 1,
            Status::Input => 2,
        }
    }

    /// The worse of two statuses.
    pub fn worst(self, other: Status) -> Status {
        self.max(other)
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// A one-line error and the exit status it leads to.
#[derive(Debug)]
pub struct ToolError {
    /// Exit status.
    pub status: Status,
    /// The message, naming the file (and page) concerned.
    pub message: String,
}

impl ToolError {
    /// Usage errors and unreadable input: exit status 2.
    pub fn input(message: impl Into<String>) -> Self {
        ToolError {
            status: Status::Input,
            message: message.into(),
        }
    }

    /// A command that could not complete: exit status 1.
    pub fn failed(message: impl Into<String>) -> Self {
        ToolError {
            status: Status::Failed,
            message: message.into(),
        }
    }

    /// An I/O error on `path`, as unreadable input.
    pub fn io(path: &Path, err: &std::io::Error) -> Self {
        Self::input(format!("{}: {}", path.display(), io_message(err)))
    }

    /// An I/O error on `path` while writing or replacing: the command could
    /// not complete.
    pub fn write(path: &Path, err: &std::io::Error) -> Self {
        Self::failed(format!("{}: {}", path.display(), io_message(err)))
    }

    /// A library error: reading input (header, key file, I/O) is status 2,
    /// anything else 1.
    pub fn lib(err: Error) -> Self {
        match &err {
            Error::Io { path, source } => Self::io(path, source),
            Error::Header { .. }
            | Error::KeyFile { .. }
            | Error::UnknownBackend(_)
            | Error::UnsupportedBackend(_)
            | Error::UnknownMode(_) => Self::input(err.to_string()),
            _ => Self::failed(err.to_string()),
        }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `std::io::Error`'s text without the "(os error N)" suffix that means
/// nothing to an operator.
pub fn io_message(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}
