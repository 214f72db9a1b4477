//! `aria-crypt completions SHELL`: the shell completion script, generated
//! by `clap_complete` from the same definitions as `--help`.

use std::io::Write;

use clap::CommandFactory;

use crate::tool::cli::{Cli, CompletionsArgs};
use crate::tool::outcome::{Status, ToolError};

/// The name the scripts complete: the installed binary's.
const BIN_NAME: &str = "aria-crypt";

/// Writes the script for `args.shell` on standard output.
///
/// # Errors
/// Exit status 1 when standard output cannot take it (a closed pipe).
pub fn run(args: &CompletionsArgs) -> Result<Status, ToolError> {
    let script = script(args.shell);
    std::io::stdout()
        .lock()
        .write_all(&script)
        .map_err(|e| ToolError::failed(format!("cannot write the completion script: {e}")))?;
    Ok(Status::Ok)
}

/// The completion script for `shell`. Rendered in memory first: the
/// generator panics on a write error, and standard output may be a pipe
/// that closes early.
pub fn script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN_NAME, &mut script);
    script
}
