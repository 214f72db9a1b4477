//! The `aria-crypt` command-line tool (cargo feature `cli`). Not a stable
//! API: engine crates use [`aria`](crate::aria), [`keys`](crate::keys),
//! [`policy`](crate::policy) and [`kernel`](crate::kernel).

use std::process::ExitCode;

/// Runs the tool with the process's arguments.
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
