//! The `aria-crypt` command-line tool (cargo feature `cli`). Not a stable
//! API: engine crates use [`aria`](crate::aria), [`keys`](crate::keys),
//! [`policy`](crate::policy) and [`kernel`](crate::kernel).
//!
//! Layout, each module depending only on those before it: [`cli`]
//! (options and help), [`walk`] (TABLE arguments to tables), [`table`]
//! (a table's files and header), [`keys`] (key options to a provider),
//! [`scan`] (positioned reads in parallel batches), [`tally`] (page counts
//! and problems), [`ciphers`] (a table's ciphers, the key-id rule),
//! [`detect`] (key id and algorithm), [`diagnose`] (verification and why
//! pages fail, in words), [`journal`] (crash-safe replacement), [`server`]
//! (running-server detection), [`report`] and [`progress`] (output),
//! [`commands`] (one module each). [`support`] is the narrow surface the
//! binary, tests and fuzz targets use. Detection and diagnosis themselves
//! are the library's ([`crate::diagnose`]); these modules read the files
//! and word the results.

pub mod ciphers;
pub mod cli;
pub mod commands;
pub mod counters;
pub mod detect;
pub mod diagnose;
pub mod journal;
pub mod keys;
pub mod outcome;
pub mod progress;
pub mod report;
pub mod scan;
pub mod server;
pub mod support;
pub mod table;
pub mod tally;
pub mod walk;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use cli::{Cli, Command};
use commands::Ctx;
use outcome::{Status, ToolError};
use report::{error, json_failure, out};

use crate::kernel::Backend;

/// Runs the tool with the process's arguments.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            let informational = matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            );
            // Even a usage error gives the one JSON document `--json` promises.
            if !informational && args.iter().any(|a| a == "--json") {
                let text = err.render().to_string();
                let first = text.lines().next().unwrap_or("usage error");
                out(json_failure(
                    Status::Input,
                    first.trim_start_matches("error: "),
                ));
            }
            let _ = err.print();
            return ExitCode::from(if informational {
                0
            } else {
                Status::Input.code()
            });
        }
    };
    match run(&cli) {
        Ok(status) => status.into(),
        Err(err) => {
            if cli.json {
                out(json_failure(err.status, &err.message));
            }
            error(&err.message);
            err.status.into()
        }
    }
}

/// The commands that write files for packagers have no JSON form.
fn no_json(cli: &Cli, command: &str) -> Result<(), ToolError> {
    if cli.json {
        return Err(ToolError::input(format!(
            "{command} writes roff or shell script; --json does not apply"
        )));
    }
    Ok(())
}

fn run(cli: &Cli) -> Result<Status, ToolError> {
    let backend = match &cli.backend {
        None => None,
        Some(name) => {
            let backend: Backend = name
                .parse()
                .map_err(|err: crate::kernel::Error| ToolError::lib(err.into()))?;
            if !backend.is_supported() {
                return Err(ToolError::input(format!(
                    "--backend {name}: this CPU cannot run it (it has {})",
                    Backend::supported()
                        .iter()
                        .map(|b| b.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Some(backend)
        }
    };
    if let Some(jobs) = cli.jobs {
        rayon::ThreadPoolBuilder::new()
            .num_threads(usize::from(jobs))
            .build_global()
            .map_err(|e| ToolError::failed(format!("cannot start {jobs} worker threads: {e}")))?;
    }
    let ctx = Ctx {
        json: cli.json,
        backend,
    };
    Ok(match &cli.command {
        Command::Info(args) => commands::info::run(ctx, args),
        Command::Verify(args) => commands::verify::run(ctx, args),
        Command::Rekey(args) => commands::rekey::run(ctx, args),
        Command::Decrypt(args) => commands::decrypt::run(ctx, args),
        Command::Audit(args) => commands::audit::run(ctx, args),
        Command::Bench(args) => commands::bench::run(ctx, args),
        Command::Completions(args) => {
            no_json(cli, "completions")?;
            commands::completions::run(args)?
        }
        Command::Manpages(args) => {
            no_json(cli, "manpages")?;
            commands::manpages::run(args)?
        }
    })
}
