//! The few entry points outside the crate uses: the `aria-crypt` binary's
//! `main`, and what its tests and fuzz targets drive directly. Re-exported
//! (doc-hidden) as `mariadb_aria_crypt::tool_support`; not a stable API.
//! Everything else of the tool is private to the crate and tested through
//! the binary.

use std::path::{Path, PathBuf};

pub use super::main;
pub use super::server::{LockOutcome, take_lock};

use super::cli::KeyArgs;
use super::commands::{Ctx, verify_table};
use super::keys::Keys;
use super::progress::Progress;
use super::table::Table;
use super::tally::census;
use super::{journal, server, walk};

/// A table the walker found.
#[derive(Clone, Debug)]
pub struct Found {
    /// Its path without extension.
    pub stem: PathBuf,
    /// Its index file.
    pub mai: PathBuf,
    /// Its data file.
    pub mad: PathBuf,
}

/// The tables TABLE arguments name, as `aria-crypt verify` finds them, and
/// how many arguments or files were problems.
pub fn walk_tables(args: &[PathBuf]) -> (Vec<Found>, usize) {
    let w = walk::walk(args);
    let found = w
        .tables
        .into_iter()
        .map(|t| Found {
            stem: t.stem,
            mai: t.mai,
            mad: t.mad,
        })
        .collect();
    (found, w.problems.len())
}

/// `path` with `.ext` appended (a table's stem to one of its files).
pub fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    walk::with_ext(stem, ext)
}

/// What `aria-crypt verify` does with every table under `dir`, read-only:
/// the rekey-journal and server checks, opening the table, counting its
/// pages without keys, and verifying it with the key file `key_file` and
/// with debug_key_management (latest version 3). Failures are results, not
/// panics; returns how many tables verified.
pub fn verify_all(dir: &Path, key_file: &Path) -> usize {
    let keys = [
        KeyArgs {
            key_file: Some(key_file.to_path_buf()),
            key_file_key: None,
            debug_key_management: None,
            key_id: None,
        },
        KeyArgs {
            key_file: None,
            key_file_key: None,
            debug_key_management: Some(3),
            key_id: None,
        },
    ]
    .iter()
    .filter_map(|args| Keys::from_args(args).ok().flatten())
    .collect::<Vec<_>>();
    let ctx = Ctx {
        json: true,
        backend: None,
    };
    let mut verified = 0;
    for t in walk::walk(&[dir.to_path_buf()]).tables {
        let _ = journal::pending(&t);
        let _ = server::state(t.mai.parent().unwrap_or(Path::new(".")));
        let Ok(table) = Table::open(&t) else { continue };
        let _ = (table.name(), table.page_count(), table.paged_data());
        if !table.header.is_encrypted() {
            continue;
        }
        let _ = census(&table, &Progress::none());
        for k in &keys {
            if let Ok(v) = verify_table(ctx, &table, k, None) {
                let _ = (v.choice.describe_mode(), format!("{:?}", v.tally));
                verified += usize::from(v.tally.ok());
            }
        }
    }
    verified
}
