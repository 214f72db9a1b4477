//! MariaDB's `file_key_management` key files, read as the 10.11 server reads
//! them (`plugin/file_key_management/parser.cc`, spec §3.3–§3.4).
//!
//! The rules, including the odd corners, because a key the server would not
//! see must not be used here either:
//!
//! * The file may be at most [`FileKeyProvider::MAX_FILE_SIZE`] (1 MiB);
//!   a larger one is refused ([`KeyFileFault::TooLarge`]), as the 10.11
//!   server refuses it (`EFBIG`, "File too large").
//! * A file longer than 8 bytes that starts with `Salted__` is an
//!   `openssl enc -aes-256-cbc -md sha1` file and is always decrypted, with
//!   the empty secret when none is given. A secret with any other file is an
//!   error ([`KeyFileFault::NotEncrypted`]).
//! * The (decrypted) text is a C string: it ends at the first NUL byte.
//! * Per line: blanks (space, tab, CR, VT, FF) are skipped; then `#` or the
//!   end of the line makes a comment. Otherwise a decimal key id in
//!   1..=4294967295, `;`, and 32, 48 or 64 hex digits (either case); the rest
//!   of the line is ignored unless it starts with another hex digit. A later
//!   line with the same id replaces the earlier one. Key id 1 must exist.
//! * A last line without `\n` that holds only blanks is a syntax error, as in
//!   the server (it reaches the end of the text where it expects a digit).
//!
//! Every key has exactly one version, 1.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

#[cfg(feature = "salted-key-files")]
use super::salted::decrypt_salted;
use super::{KeyMaterial, KeyProvider};
use crate::Error;
use crate::fault::KeyFileFault;

/// `parser.cc`: `MAX_KEY_FILE_SIZE`.
const MAX_FILE_SIZE: usize = 1 << 20;
/// `parser.cc`: `MAX_SECRET_SIZE`; a `FILE:` secret may not be longer.
const MAX_SECRET_SIZE: usize = 256;
/// What `openssl enc` writes before the salt.
const SALTED: &[u8; 8] = b"Salted__";
/// Prefix of `file_key_management_filekey` that names a file to read.
const FILE_PREFIX: &str = "FILE:";

/// Keys from a MariaDB `file_key_management` key file, plain or
/// `Salted__`-encrypted. Every key id has exactly one version, 1.
///
/// `Debug` lists the key ids only; the keys are wiped when it is dropped.
pub struct FileKeyProvider {
    keys: BTreeMap<u32, KeyMaterial>,
}

impl FileKeyProvider {
    /// The largest key file the server accepts, in bytes (1 MiB).
    pub const MAX_FILE_SIZE: u64 = MAX_FILE_SIZE as u64;

    key_file_constructors! {
        file: "a key file as the server reads it",
        errors: "Key id 1 missing: [`KeyFileFault::MissingKey1`].",
    }

    /// The text [`parse`](Self::parse) reads from these bytes: decrypted if
    /// they are a `Salted__` file, and cut at the first NUL. Wiped on drop.
    /// Lets tools and tests compare it with `openssl enc -d`.
    ///
    /// # Errors
    /// As [`parse`](Self::parse), for the faults that come before the lines
    /// are read: [`KeyFileFault::TooLarge`], [`KeyFileFault::NotEncrypted`],
    /// [`KeyFileFault::Truncated`] and [`KeyFileFault::WrongSecret`].
    pub fn plaintext(
        bytes: &[u8],
        filekey_secret: Option<&[u8]>,
        origin: impl AsRef<Path>,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let origin = origin.as_ref();
        let fail = |fault| key_file_error(origin, None, fault);
        if bytes.len() > MAX_FILE_SIZE {
            return Err(fail(KeyFileFault::TooLarge(bytes.len() as u64)));
        }
        let secret = c_str(filekey_secret.unwrap_or_default());
        let text = if bytes.len() > SALTED.len() && bytes.starts_with(SALTED) {
            decrypt_salted(bytes, secret, origin)?
        } else if !secret.is_empty() {
            return Err(fail(KeyFileFault::NotEncrypted));
        } else {
            Zeroizing::new(bytes.to_vec())
        };
        Ok(cut_at_nul(text))
    }

    /// The key ids, in increasing order.
    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// The keys by id, for building other providers.
    pub(super) fn into_keys(self) -> BTreeMap<u32, KeyMaterial> {
        self.keys
    }
}

impl FromKeyLines for FileKeyProvider {
    const SYNTAX: LineSyntax = LineSyntax::MariaDb;

    fn from_key_lines(lines: Vec<KeyLine>, origin: &Path) -> Result<Self, Error> {
        // A later line with the same id replaces the earlier one.
        let keys: BTreeMap<u32, KeyMaterial> =
            lines.into_iter().map(|line| (line.id, line.key)).collect();
        if !keys.contains_key(&1) {
            return Err(key_file_error(origin, None, KeyFileFault::MissingKey1));
        }
        Ok(FileKeyProvider { keys })
    }
}

impl KeyProvider for FileKeyProvider {
    fn latest_version(&self, key_id: u32) -> Option<u32> {
        self.keys.contains_key(&key_id).then_some(1)
    }

    fn key(&self, key_id: u32, version: u32) -> Result<KeyMaterial, Error> {
        let key = self
            .keys
            .get(&key_id)
            .ok_or(Error::KeyNotFound { key_id })?;
        if version != 1 {
            return Err(Error::KeyVersionNotFound { key_id, version });
        }
        Ok(key.clone())
    }
}

impl fmt::Debug for FileKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKeyProvider")
            .field("key_ids", &IdList(&self.keys))
            .finish()
    }
}

/// Prints the keys of a map as a list, never the values.
pub(super) struct IdList<'a, V>(pub(super) &'a BTreeMap<u32, V>);

impl<V> fmt::Debug for IdList<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

pub(super) fn key_file_error(origin: &Path, line: Option<usize>, fault: KeyFileFault) -> Error {
    Error::KeyFile {
        path: origin.to_path_buf(),
        line,
        fault,
    }
}

/// A provider built from the lines of a key file: the one step the two
/// key-file providers take differently. Reading the file and its secret,
/// decryption and the line parser are theirs in common
/// ([`load_key_file`], [`parse_key_file`]).
pub(super) trait FromKeyLines: Sized {
    /// The line syntax the provider's files are written in.
    const SYNTAX: LineSyntax;

    /// The provider for the key lines of a file read from `origin`, in
    /// file order.
    fn from_key_lines(lines: Vec<KeyLine>, origin: &Path) -> Result<Self, Error>;
}

/// `from_path`, `from_bytes` and `parse`, the public constructors of a
/// [`FromKeyLines`] provider, written once over [`load_key_file`] and
/// [`parse_key_file`]: `file` says what the provider reads, `errors` what
/// it refuses beyond the faults every key file can have.
macro_rules! key_file_constructors {
    (file: $file:literal, errors: $errors:literal $(,)?) => {
        #[doc = concat!("Reads ", $file, ", with")]
        /// `file_key_management_filename = path` and
        /// `file_key_management_filekey = filekey`.
        ///
        /// `filekey` is the secret itself, or `FILE:<path>`: then the secret is
        /// that file's first 257 bytes, without trailing `\r`/`\n`, at most 256
        /// bytes. A relative path is taken from the current directory (the
        /// server's is normally its data directory). `None` and `Some("")` mean
        /// no secret.
        ///
        /// # Errors
        /// [`Error::Io`] if a file cannot be read, [`Error::KeyFile`] with the
        /// path (of the secret file for
        /// [`KeyFileFault::Secret`](crate::KeyFileFault::Secret)), the 1-based
        /// line where there is one, and the
        /// [`KeyFileFault`](crate::KeyFileFault).
        #[doc = $errors]
        pub fn from_path(path: impl AsRef<Path>, filekey: Option<&str>) -> Result<Self, Error> {
            super::file::load_key_file(path.as_ref(), filekey)
        }

        #[doc = concat!("Parses ", $file, ", from bytes held in memory")]
        /// (from a secret store, a configuration blob). Pure: no I/O.
        /// `filekey_secret` is the resolved secret (not a `FILE:` value); like
        /// the server, it ends at its first NUL byte, and an empty one is no
        /// secret.
        ///
        /// # Errors
        /// [`Error::KeyFile`] with an empty `path` (there is no file), the
        /// fault and, for faults on one line, its 1-based number.
        #[doc = $errors]
        pub fn from_bytes(bytes: &[u8], filekey_secret: Option<&[u8]>) -> Result<Self, Error> {
            super::file::parse_key_file(bytes, filekey_secret, Path::new(""))
        }

        /// [`from_bytes`](Self::from_bytes) for bytes read from `origin`, which
        /// names the source in errors.
        ///
        /// # Errors
        /// [`Error::KeyFile`] naming `origin`, with the fault and, for faults on
        /// one line, its 1-based number.
        #[doc = $errors]
        pub fn parse(
            bytes: &[u8],
            filekey_secret: Option<&[u8]>,
            origin: impl AsRef<Path>,
        ) -> Result<Self, Error> {
            super::file::parse_key_file(bytes, filekey_secret, origin.as_ref())
        }
    };
}
pub(super) use key_file_constructors;

/// The provider for the key file at `path` with the secret `filekey`
/// names: what `from_path` of each provider does.
pub(super) fn load_key_file<P: FromKeyLines>(
    path: &Path,
    filekey: Option<&str>,
) -> Result<P, Error> {
    let secret = resolve_filekey(filekey)?;
    let bytes = read_key_file(path)?;
    parse_key_file(&bytes, Some(&secret), path)
}

/// The provider for a key file's bytes (decrypted and cut as
/// [`FileKeyProvider::plaintext`] does) read from `origin`; a faulty line
/// is an [`Error::KeyFile`] naming `origin` and the line.
pub(super) fn parse_key_file<P: FromKeyLines>(
    bytes: &[u8],
    filekey_secret: Option<&[u8]>,
    origin: &Path,
) -> Result<P, Error> {
    let text = FileKeyProvider::plaintext(bytes, filekey_secret, origin)?;
    let lines = KeyLines::new(&text, P::SYNTAX)
        .collect::<Result<Vec<KeyLine>, _>>()
        .map_err(|(line, fault)| key_file_error(origin, Some(line), fault))?;
    P::from_key_lines(lines, origin)
}

/// The secret named by a `file_key_management_filekey` value: the value
/// itself, or the content of the file after `FILE:` (first 257 bytes,
/// trailing CR/LF removed, then at most 256 bytes: `read_filekey`).
pub(super) fn resolve_filekey(filekey: Option<&str>) -> Result<Zeroizing<Vec<u8>>, Error> {
    let Some(filekey) = filekey else {
        return Ok(Zeroizing::new(Vec::new()));
    };
    let Some(path) = filekey.strip_prefix(FILE_PREFIX) else {
        return Ok(Zeroizing::new(filekey.as_bytes().to_vec()));
    };
    let path = Path::new(path);
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut secret = Zeroizing::new(Vec::with_capacity(MAX_SECRET_SIZE + 1));
    File::open(path)
        .and_then(|file| {
            file.take(MAX_SECRET_SIZE as u64 + 1)
                .read_to_end(&mut secret)
        })
        .map_err(io_error)?;
    // The server refuses an empty file (its read() returns 0) but takes a
    // file of only line breaks as the empty secret.
    if secret.is_empty() {
        return Err(key_file_error(path, None, KeyFileFault::Secret));
    }
    while let Some(b'\r' | b'\n') = secret.last() {
        secret.pop();
    }
    if secret.len() > MAX_SECRET_SIZE {
        return Err(key_file_error(path, None, KeyFileFault::Secret));
    }
    Ok(secret)
}

/// Reads a key file, refusing one larger than the server reads.
pub(super) fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    if len > MAX_FILE_SIZE as u64 {
        return Err(key_file_error(path, None, KeyFileFault::TooLarge(len)));
    }
    // Capacity for the whole file up front, so no reallocation leaves an
    // unwiped copy behind; the limit also holds if the file grows meanwhile.
    let mut bytes = Zeroizing::new(Vec::with_capacity(len as usize + 1));
    file.take(MAX_FILE_SIZE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() > MAX_FILE_SIZE {
        let len = bytes.len() as u64;
        return Err(key_file_error(path, None, KeyFileFault::TooLarge(len)));
    }
    Ok(bytes)
}

/// Without the `salted-key-files` feature a `Salted__` file is refused.
#[cfg(not(feature = "salted-key-files"))]
fn decrypt_salted(_: &[u8], _: &[u8], origin: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    Err(key_file_error(
        origin,
        None,
        KeyFileFault::SaltedUnsupported,
    ))
}

/// The bytes before the first NUL: the server handles secrets and key file
/// text as C strings.
fn c_str(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

fn cut_at_nul(mut text: Zeroizing<Vec<u8>>) -> Zeroizing<Vec<u8>> {
    let len = c_str(&text).len();
    text.truncate(len);
    text
}

/// Which line syntax to accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LineSyntax {
    /// `<id>;<hex>` only, as the server.
    MariaDb,
    /// Also `<id>;<version>;<hex>` (see the `versioned` module).
    Versioned,
}

/// One key line.
pub(super) struct KeyLine {
    pub(super) id: u32,
    /// `None` for a line without a version field.
    pub(super) version: Option<u32>,
    pub(super) key: KeyMaterial,
}

/// The key lines of a key file's text (already cut at NUL), in order, with
/// the first fault and its 1-based line number; it stops after a fault.
pub(super) struct KeyLines<'a> {
    rest: &'a [u8],
    line: usize,
    syntax: LineSyntax,
    failed: bool,
}

impl<'a> KeyLines<'a> {
    pub(super) fn new(text: &'a [u8], syntax: LineSyntax) -> Self {
        KeyLines {
            rest: text,
            line: 0,
            syntax,
            failed: false,
        }
    }
}

impl Iterator for KeyLines<'_> {
    type Item = Result<KeyLine, (usize, KeyFileFault)>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed && !self.rest.is_empty() {
            self.line += 1;
            // The line keeps its '\n' (if any): parse_line tells "end of
            // line" (a comment) from "end of text" (a syntax error).
            let end = self
                .rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.rest.len(), |nl| nl + 1);
            let (line, rest) = self.rest.split_at(end);
            self.rest = rest;
            match parse_line(line, self.syntax) {
                Ok(None) => {}
                Ok(Some(entry)) => return Some(Ok(entry)),
                Err(fault) => {
                    self.failed = true;
                    return Some(Err((self.line, fault)));
                }
            }
        }
        None
    }
}

/// Parses one line (with its `\n`, if any) as `parse_line` in `parser.cc`:
/// `Ok(None)` for a comment or blank line.
fn parse_line(line: &[u8], syntax: LineSyntax) -> Result<Option<KeyLine>, KeyFileFault> {
    // NUL past the end, as the C string the server walks.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut i = 0;
    while matches!(at(i), b' ' | b'\t' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    match at(i) {
        b'#' | b'\n' => return Ok(None),
        c if !c.is_ascii_digit() => return Err(KeyFileFault::Syntax),
        _ => {}
    }
    let digits = run(line, i, u8::is_ascii_digit);
    let id = decimal(digits).ok_or(KeyFileFault::KeyId)?;
    if id == 0 {
        return Err(KeyFileFault::KeyId);
    }
    i += digits.len();
    if at(i) != b';' {
        return Err(KeyFileFault::Syntax);
    }
    i += 1;

    let mut version = None;
    if syntax == LineSyntax::Versioned {
        // A version is fewer than 32 digits before a ';'. A key has at least
        // 32 hex digits, so a line the server accepts never reads as one.
        let digits = run(line, i, u8::is_ascii_digit);
        if (1..32).contains(&digits.len()) && at(i + digits.len()) == b';' {
            let v = decimal(digits).ok_or(KeyFileFault::KeyVersion)?;
            if !super::is_valid_version(v) {
                return Err(KeyFileFault::KeyVersion);
            }
            version = Some(v);
            i += digits.len() + 1;
        }
    }

    let hex = run(line, i, u8::is_ascii_hexdigit);
    if hex.len() % 2 == 1 {
        return Err(KeyFileFault::KeyHex);
    }
    let len = hex.len() / 2;
    if !matches!(len, 16 | 24 | 32) {
        return Err(KeyFileFault::KeyLength(len));
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = pair
            .iter()
            .fold(0, |acc, &digit| acc << 4 | hex_value(digit));
    }
    let key = KeyMaterial::new(bytes.get(..len).unwrap_or_default())
        .map_err(|_| KeyFileFault::KeyLength(len))?;
    // The rest of the line is ignored: it cannot start with a hex digit,
    // the run above took them all.
    Ok(Some(KeyLine { id, version, key }))
}

/// The longest run of bytes from `start` that satisfy `pred`.
fn run(line: &[u8], start: usize, pred: fn(&u8) -> bool) -> &[u8] {
    let rest = line.get(start..).unwrap_or_default();
    let len = rest.iter().take_while(|b| pred(b)).count();
    rest.get(..len).unwrap_or_default()
}

/// A run of ASCII digits as a `u32`; `None` past 4294967295.
fn decimal(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        acc.checked_mul(10)?
            .checked_add(u32::from(d.wrapping_sub(b'0')))
    })
}

/// The value of an ASCII hex digit (the caller checked it is one).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Id, version and key bytes of a parsed line.
    type Parsed = (u32, Option<u32>, Vec<u8>);

    fn line(text: &str) -> Result<Option<Parsed>, KeyFileFault> {
        parse_line(text.as_bytes(), LineSyntax::MariaDb)
            .map(|entry| entry.map(|e| (e.id, e.version, e.key.as_bytes().to_vec())))
    }

    const K16: &str = "000102030405060708090a0b0c0d0e0f";

    /// Without the feature a `Salted__` file is refused with its own fault
    /// (`cargo test --no-default-features --lib`).
    #[cfg(not(feature = "salted-key-files"))]
    #[test]
    fn salted_files_need_the_feature() {
        let salted = [&SALTED[..], &[0; 24]].concat();
        let err = FileKeyProvider::from_bytes(&salted, None).unwrap_err();
        assert!(
            matches!(
                err,
                Error::KeyFile {
                    fault: KeyFileFault::SaltedUnsupported,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn line_rules() {
        assert_eq!(line(&format!("1;{K16}\n")), Ok(Some((1, None, hex(K16)))));
        assert_eq!(line(" \t\r\x0b\x0c#x\n"), Ok(None));
        assert_eq!(line("\n"), Ok(None));
        assert_eq!(line("   \n"), Ok(None));
        // End of text where a line should start: the server wants a digit.
        assert_eq!(line("   "), Err(KeyFileFault::Syntax));
        assert_eq!(
            line(&format!("4294967295;{K16}")).map(|e| e.map(|e| e.0)),
            Ok(Some(u32::MAX))
        );
        assert_eq!(line(&format!("4294967296;{K16}")), Err(KeyFileFault::KeyId));
        assert_eq!(line(&format!("0;{K16}")), Err(KeyFileFault::KeyId));
        assert_eq!(line("0"), Err(KeyFileFault::KeyId));
        assert_eq!(line(&format!("1 ;{K16}")), Err(KeyFileFault::Syntax));
        assert_eq!(line(&format!("1;{K16}0")), Err(KeyFileFault::KeyHex));
        assert_eq!(
            line(&format!("1;{K16}00")),
            Err(KeyFileFault::KeyLength(17))
        );
        assert_eq!(
            line(&format!("1;{K16}{K16}{K16}00")),
            Err(KeyFileFault::KeyLength(49))
        );
        assert_eq!(line(&format!("1;{K16}g")).map(|e| e.is_some()), Ok(true));
        // A versioned line is not MariaDB syntax.
        assert_eq!(line(&format!("1;2;{K16}")), Err(KeyFileFault::KeyHex));
    }

    #[test]
    fn versioned_line_rules() {
        let v = |text: &str| {
            parse_line(text.as_bytes(), LineSyntax::Versioned)
                .map(|entry| entry.map(|e| (e.id, e.version)))
        };
        assert_eq!(v(&format!("3;2;{K16}")), Ok(Some((3, Some(2)))));
        assert_eq!(v(&format!("3;{K16}")), Ok(Some((3, None))));
        assert_eq!(v(&format!("3;0000000002;{K16}")), Ok(Some((3, Some(2)))));
        assert_eq!(v(&format!("3;0;{K16}")), Err(KeyFileFault::KeyVersion));
        assert_eq!(
            v(&format!("3;4294967295;{K16}")),
            Err(KeyFileFault::KeyVersion)
        );
        assert_eq!(
            v(&format!("3;4294967294;{K16}")),
            Ok(Some((3, Some(u32::MAX - 1))))
        );
        assert_eq!(
            v(&format!("3;99999999999;{K16}")),
            Err(KeyFileFault::KeyVersion)
        );
        // 32 decimal digits and a ';': a key, as the server reads it.
        let digits = "12345678901234567890123456789012";
        assert_eq!(v(&format!("3;{digits};x")), Ok(Some((3, None))));
    }

    #[test]
    fn secrets_are_c_strings() {
        assert_eq!(c_str(b"ab\0cd"), b"ab");
        assert_eq!(c_str(b"\0"), b"");
        assert_eq!(c_str(b""), b"");
    }
}
