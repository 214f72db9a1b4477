//! From TABLE arguments to tables: a `.MAI` or `.MAD` file, a path without
//! extension, or a directory searched recursively; `.MAI` and `.MAD` are
//! paired by name and a file without its partner is reported.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::outcome::ToolError;

/// The index file's extension, as MariaDB writes it.
pub const INDEX_EXT: &str = "MAI";
/// The data file's extension.
pub const DATA_EXT: &str = "MAD";

/// One table: its two files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRef {
    /// The path without extension, as the operator names the table.
    pub stem: PathBuf,
    /// Relative name for output trees: the path under the directory
    /// argument, or the file name for a table given directly.
    pub rel: PathBuf,
    /// `<stem>.MAI`.
    pub mai: PathBuf,
    /// `<stem>.MAD`.
    pub mad: PathBuf,
}

impl TableRef {
    fn new(stem: PathBuf, rel: PathBuf) -> Self {
        TableRef {
            mai: with_ext(&stem, INDEX_EXT),
            mad: with_ext(&stem, DATA_EXT),
            stem,
            rel,
        }
    }
}

/// What the arguments name.
#[derive(Debug, Default)]
pub struct Walk {
    /// Complete tables, in argument order (sorted within a directory).
    pub tables: Vec<TableRef>,
    /// Paths that name no table, unreadable directories, `.MAI` without
    /// `.MAD` and the reverse, table files that cannot be followed.
    pub problems: Vec<ToolError>,
    /// What the walk did not enter and why, when nothing is lost by it (a
    /// directory link to a directory already walked).
    pub notes: Vec<String>,
}

/// `stem` plus `.ext`, keeping dots already in the name (`a.b` → `a.b.MAI`).
pub fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut name = OsString::from(stem.as_os_str());
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// Whether an interrupted rekey's journal lies next to the table: its
/// index file may then be missing for a moment (it is put in place last).
fn journaled(stem: &Path) -> bool {
    with_ext(stem, super::journal::JOURNAL_EXT).exists()
}

/// The stem and extension of a table file, if it is one.
fn table_file(path: &Path) -> Option<(PathBuf, &'static str)> {
    let ext = path.extension()?;
    let ext = if ext == INDEX_EXT {
        INDEX_EXT
    } else if ext == DATA_EXT {
        DATA_EXT
    } else {
        return None;
    };
    Some((path.with_extension(""), ext))
}

/// Resolves TABLE arguments.
pub fn walk(args: &[PathBuf]) -> Walk {
    let mut walk = Walk::default();
    let mut seen = HashSet::new();
    for arg in args {
        match std::fs::metadata(arg) {
            Ok(meta) if meta.is_dir() => {
                let before = walk.tables.len() + walk.problems.len();
                let files = match walk_dir(arg) {
                    Ok(found) => {
                        walk.problems.extend(found.problems);
                        walk.notes.extend(found.notes);
                        found.files
                    }
                    Err(e) => {
                        walk.problems.push(e);
                        continue;
                    }
                };
                let (tables, orphans) = pair(arg, &files);
                walk.problems.extend(orphans);
                for table in tables {
                    if seen.insert(identity(&table)) {
                        walk.tables.push(table);
                    }
                }
                if walk.tables.len() + walk.problems.len() == before {
                    walk.problems.push(ToolError::input(format!(
                        "{}: no Aria tables (.MAI/.MAD files) in this directory",
                        arg.display()
                    )));
                }
            }
            Ok(_) => match table_file(arg) {
                Some((stem, ext)) => match single(&stem, ext) {
                    Ok(table) => {
                        if seen.insert(identity(&table)) {
                            walk.tables.push(table);
                        }
                    }
                    Err(e) => walk.problems.push(e),
                },
                None => walk.problems.push(ToolError::input(format!(
                    "{}: not an Aria table file (expected a .MAI or .MAD file, a table path without extension, or a directory)",
                    arg.display()
                ))),
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                // A path without extension.
                let table = TableRef::new(arg.clone(), file_name(arg));
                match (table.mai.exists(), table.mad.exists()) {
                    (true, true) => {
                        if seen.insert(identity(&table)) {
                            walk.tables.push(table);
                        }
                    }
                    (false, true) if journaled(&table.stem) => {
                        if seen.insert(identity(&table)) {
                            walk.tables.push(table);
                        }
                    }
                    (true, false) => walk.problems.push(missing_partner(&table.mai, &table.mad)),
                    (false, true) => walk.problems.push(missing_partner(&table.mad, &table.mai)),
                    (false, false) => walk.problems.push(ToolError::input(format!(
                        "{}: no such table (neither {} nor {} exists)",
                        arg.display(),
                        table.mai.display(),
                        table.mad.display()
                    ))),
                }
            }
            Err(err) => walk.problems.push(ToolError::io(arg, &err)),
        }
    }
    walk
}

fn file_name(path: &Path) -> PathBuf {
    path.file_name()
        .map_or_else(|| path.to_path_buf(), PathBuf::from)
}

fn single(stem: &Path, ext: &str) -> Result<TableRef, ToolError> {
    let table = TableRef::new(stem.to_path_buf(), file_name(stem));
    let (have, partner) = if ext == INDEX_EXT {
        (&table.mai, &table.mad)
    } else {
        (&table.mad, &table.mai)
    };
    match std::fs::metadata(partner) {
        Ok(_) => Ok(table),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && journaled(stem) => Ok(table),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(missing_partner(have, partner))
        }
        Err(err) => Err(ToolError::io(partner, &err)),
    }
}

fn missing_partner(have: &Path, missing: &Path) -> ToolError {
    let what = if missing.extension().is_some_and(|e| e == INDEX_EXT) {
        "data file without its index file"
    } else {
        "index file without its data file"
    };
    ToolError::input(format!(
        "{}: {what} ({} is missing)",
        have.display(),
        missing.display()
    ))
}

/// What makes two arguments the same table.
fn identity(table: &TableRef) -> PathBuf {
    std::fs::canonicalize(&table.mai)
        .or_else(|_| std::fs::canonicalize(&table.mad))
        .unwrap_or_else(|_| table.mai.clone())
}

/// What a directory walk found.
#[derive(Debug, Default)]
pub struct Found {
    /// Regular files, sorted.
    pub files: Vec<PathBuf>,
    /// What could not be read or followed.
    pub problems: Vec<ToolError>,
    /// Directories not entered again (links to a directory already walked).
    pub notes: Vec<String>,
}

/// Every regular file under `dir`, sorted, following symlinks to files
/// (MariaDB's DATA DIRECTORY links) and to directories (a database moved
/// to another disk and linked back), each directory once: a link to a
/// directory already walked (a loop, or a second name) is noted, not
/// entered. Unreadable subdirectories and links that lead nowhere are
/// reported, not fatal.
///
/// # Errors
/// Exit status 2 if `dir` itself cannot be read.
pub fn walk_dir(dir: &Path) -> Result<Found, ToolError> {
    let mut found = Found::default();
    let mut visited: HashSet<PathBuf> = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut first = true;
    while let Some(current) = stack.pop() {
        let real = std::fs::canonicalize(&current).unwrap_or_else(|_| current.clone());
        if !visited.insert(real.clone()) {
            found.notes.push(format!(
                "{}: links to {}, which is walked already: not entered again",
                current.display(),
                real.display()
            ));
            continue;
        }
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(err) if first => return Err(ToolError::io(&current, &err)),
            Err(err) => {
                found.problems.push(ToolError::io(&current, &err));
                continue;
            }
        };
        first = false;
        let mut subdirs = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    found.problems.push(ToolError::io(&current, &err));
                    continue;
                }
            };
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                found.problems.push(ToolError::input(format!(
                    "{}: cannot tell what it is; skipped",
                    path.display()
                )));
                continue;
            };
            if kind.is_dir() {
                subdirs.push(path);
            } else if kind.is_file() {
                found.files.push(path);
            } else if kind.is_symlink() {
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_dir() => subdirs.push(path),
                    Ok(m) if m.is_file() => found.files.push(path),
                    Ok(_) => {}
                    Err(err) => found.problems.push(ToolError::input(format!(
                        "{}: a link that cannot be followed ({}); skipped",
                        path.display(),
                        super::outcome::io_message(&err)
                    ))),
                }
            } else if table_file(&path).is_some() {
                found.problems.push(ToolError::input(format!(
                    "{}: not a regular file; skipped",
                    path.display()
                )));
            }
        }
        subdirs.sort();
        stack.extend(subdirs.into_iter().rev());
    }
    found.files.sort();
    Ok(found)
}

/// Every regular file under `dir`; see [`walk_dir`].
///
/// # Errors
/// Exit status 2 if `dir` itself cannot be read.
pub fn files_under(dir: &Path) -> Result<(Vec<PathBuf>, Vec<ToolError>), ToolError> {
    let found = walk_dir(dir)?;
    Ok((found.files, found.problems))
}

/// Pairs `.MAI` and `.MAD` files found under `root`; the rest are orphans.
pub fn pair(root: &Path, files: &[PathBuf]) -> (Vec<TableRef>, Vec<ToolError>) {
    let mut stems: BTreeMap<PathBuf, (bool, bool)> = BTreeMap::new();
    for file in files {
        if let Some((stem, ext)) = table_file(file) {
            let entry = stems.entry(stem).or_default();
            if ext == INDEX_EXT {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    let mut tables = Vec::new();
    let mut orphans = Vec::new();
    for (stem, (mai, mad)) in stems {
        let rel = stem
            .strip_prefix(root)
            .map_or_else(|_| file_name(&stem), Path::to_path_buf);
        let table = TableRef::new(stem, rel);
        match (mai, mad) {
            (true, true) => tables.push(table),
            (false, true) if journaled(&table.stem) => tables.push(table),
            (true, false) => orphans.push(missing_partner(&table.mai, &table.mad)),
            (false, true) => orphans.push(missing_partner(&table.mad, &table.mai)),
            (false, false) => {}
        }
    }
    (tables, orphans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_is_appended_not_replaced() {
        assert_eq!(
            with_ext(Path::new("/d/a.b"), INDEX_EXT),
            PathBuf::from("/d/a.b.MAI")
        );
        assert_eq!(
            table_file(Path::new("/d/a.b.MAD")),
            Some((PathBuf::from("/d/a.b"), DATA_EXT))
        );
        assert_eq!(table_file(Path::new("/d/a.MAI.aria-crypt-new")), None);
        assert_eq!(table_file(Path::new("/d/a.mai")), None);
    }

    #[test]
    fn pairs_and_orphans() {
        let files: Vec<PathBuf> = [
            "/r/x/t1.MAI",
            "/r/x/t1.MAD",
            "/r/t2.MAD",
            "/r/t3.MAI",
            "/r/n.frm",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let (tables, orphans) = pair(Path::new("/r"), &files);
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].rel, PathBuf::from("x/t1"));
        assert_eq!(orphans.len(), 2);
        assert!(
            orphans[0]
                .message
                .contains("data file without its index file")
        );
        assert!(
            orphans[1]
                .message
                .contains("index file without its data file")
        );
    }
}
