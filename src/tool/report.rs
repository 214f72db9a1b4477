//! Output: results on standard output (text, or one JSON document),
//! warnings and errors on standard error.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;

use serde_json::{Map, Value, json};

use super::outcome::{Status, ToolError};
use super::tally::Problem;
use super::tally::Tally;

/// Problems listed per table in JSON; the rest are counted.
const JSON_PROBLEMS_MAX: usize = 1000;
/// Pages named on one human line.
const PAGES_PER_LINE: usize = 8;
/// Problem lines per table in text output; `--json` lists more.
const LINES_MAX: usize = 40;

/// A line on standard output. A closed pipe (`| head`) is not an error
/// worth a panic: the line is dropped.
pub fn out(line: impl Display) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
}

/// A warning on standard error.
pub fn warn(line: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "aria-crypt: warning: {line}");
}

/// An error on standard error.
pub fn error(line: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "aria-crypt: error: {line}");
}

/// What a command reports, shared by text and JSON output.
#[derive(Debug)]
pub struct Report {
    /// JSON instead of text.
    pub json: bool,
    command: &'static str,
    status: Status,
    tables: Vec<Value>,
    errors: Vec<Value>,
    warnings: Vec<String>,
    extra: Map<String, Value>,
}

impl Report {
    /// An empty report for `command`.
    pub fn new(command: &'static str, json: bool) -> Self {
        Report {
            json,
            command,
            status: Status::Ok,
            tables: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            extra: Map::new(),
        }
    }

    /// Records a status; the worst one is the exit status.
    pub fn status(&mut self, status: Status) {
        self.status = self.status.worst(status);
    }

    /// An error that stops one table or argument (not the command),
    /// printed at once on standard error and kept in the JSON document.
    pub fn error(&mut self, err: &ToolError) {
        self.status(err.status);
        error(&err.message);
        self.errors.push(json!({
            "message": err.message,
            "exit_code": err.status.code(),
        }));
    }

    /// A warning, printed at once on standard error in both modes and kept
    /// in the JSON document.
    pub fn warn(&mut self, message: impl Into<String>) {
        let message = message.into();
        warn(&message);
        self.warnings.push(message);
    }

    /// A per-table JSON object.
    pub fn table(&mut self, value: Value) {
        self.tables.push(value);
    }

    /// A top-level JSON field.
    pub fn set(&mut self, key: &str, value: Value) {
        self.extra.insert(key.to_string(), value);
    }

    /// Prints the JSON document (JSON mode) and returns the exit status.
    pub fn finish(self) -> Status {
        if self.json {
            let mut doc = Map::new();
            doc.insert("command".into(), json!(self.command));
            doc.insert("ok".into(), json!(self.status == Status::Ok));
            doc.insert("exit_code".into(), json!(self.status.code()));
            for (k, v) in self.extra {
                doc.insert(k, v);
            }
            if !doc.contains_key("tables") && self.command != "bench" && self.command != "audit" {
                doc.insert("tables".into(), Value::Array(self.tables));
            }
            doc.insert("errors".into(), Value::Array(self.errors));
            doc.insert("warnings".into(), json!(self.warnings));
            out(serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default());
        }
        self.status
    }
}

/// What one table's work reports, kept and replayed into the [`Report`]
/// in table order: tables are worked on in parallel.
#[derive(Debug, Default)]
pub struct Deferred {
    events: Vec<Event>,
}

#[derive(Debug)]
enum Event {
    Out(String),
    Warn(String),
    Status(Status),
}

impl Deferred {
    /// A line for standard output.
    pub fn out(&mut self, line: impl Display) {
        self.events.push(Event::Out(line.to_string()));
    }

    /// A warning (see [`Report::warn`]).
    pub fn warn(&mut self, message: impl Into<String>) {
        self.events.push(Event::Warn(message.into()));
    }

    /// A status (see [`Report::status`]).
    pub fn status(&mut self, status: Status) {
        self.events.push(Event::Status(status));
    }

    /// Prints and records everything, in the order it came.
    pub fn replay(self, report: &mut Report) {
        for event in self.events {
            match event {
                Event::Out(line) => out(line),
                Event::Warn(message) => report.warn(message),
                Event::Status(status) => report.status(status),
            }
        }
    }
}

/// The JSON document of a failure before any command ran (usage errors).
pub fn json_failure(status: Status, message: &str) -> String {
    serde_json::to_string_pretty(&json!({
        "command": Value::Null,
        "ok": false,
        "exit_code": status.code(),
        "errors": [{ "message": message, "exit_code": status.code() }],
        "warnings": [],
    }))
    .unwrap_or_default()
}

/// The per-table entry of a table that could not be processed at all: the
/// fields every `verify`/`decrypt` entry has, empty, with the error.
pub fn failed_table_json(table: &std::path::Path, error: &str) -> Value {
    json!({
        "table": table.display().to_string(),
        "ok": false,
        "error": error,
        "algorithm": Value::Null,
        "key_id": Value::Null,
        "pages": pages_json(&Tally::default()),
        "key_versions": {},
    })
}

/// `pages` of the issue: total, encrypted, verified, failed, skipped.
pub fn pages_json(tally: &Tally) -> Value {
    json!({
        "total": tally.total,
        "encrypted": tally.encrypted,
        "verified": tally.verified,
        "failed": tally.failed,
        "skipped": tally.skipped,
    })
}

/// Key version (as a string) → pages.
pub fn versions_json(versions: &BTreeMap<u32, u64>) -> Value {
    Value::Object(
        versions
            .iter()
            .map(|(v, n)| (v.to_string(), json!(n)))
            .collect(),
    )
}

/// "1: 40 pages, 2: 3 pages".
pub fn versions_text(versions: &BTreeMap<u32, u64>) -> String {
    if versions.is_empty() {
        return "none".into();
    }
    versions
        .iter()
        .map(|(v, n)| format!("{v}: {n} page{}", plural(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "s" unless one.
pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The problems as JSON (at most 1000) and how many were
/// left out.
pub fn problems_json(problems: &[Problem]) -> (Value, usize) {
    let listed = problems
        .iter()
        .take(JSON_PROBLEMS_MAX)
        .map(|p| {
            json!({
                "file": p.path.display().to_string(),
                "page": p.page,
                "cause": p.cause.class(),
                "reason": p.cause.name(),
                "message": p.message,
            })
        })
        .collect();
    (
        Value::Array(listed),
        problems.len().saturating_sub(JSON_PROBLEMS_MAX),
    )
}

/// One line per problem kind and file, naming the pages: a table broken
/// throughout gives one line, not thousands.
pub fn problem_lines(problems: &[Problem]) -> Vec<String> {
    let mut groups: Vec<((PathBuf, String), Vec<u32>)> = Vec::new();
    for p in problems {
        let key = (p.path.clone(), p.message.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, pages)) => pages.extend(p.page),
            None => groups.push((key, p.page.into_iter().collect())),
        }
    }
    let more = groups.len().saturating_sub(LINES_MAX);
    let mut lines: Vec<String> = groups
        .into_iter()
        .take(LINES_MAX)
        .map(|((path, message), pages)| {
            let path = path.display();
            match pages.len() {
                0 => format!("{path}: {message}"),
                1 => format!("{path} page {}: {message}", pages[0]),
                n => {
                    let shown = pages
                        .iter()
                        .take(PAGES_PER_LINE)
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ");
                    let more = if n > PAGES_PER_LINE {
                        format!(" and {} more", n - PAGES_PER_LINE)
                    } else {
                        String::new()
                    };
                    format!("{path} pages {shown}{more} ({n} pages): {message}")
                }
            }
        })
        .collect();
    if more > 0 {
        lines.push(format!(
            "... and {more} more problems (--json lists up to {JSON_PROBLEMS_MAX})"
        ));
    }
    lines
}
