//! Command-line definitions: every command, option and help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::kernel::Mode;

const ABOUT: &str = "Inspect, verify, re-key and decrypt encrypted MariaDB Aria tables offline";

const LONG_ABOUT: &str = "\
Inspect, verify, re-key and decrypt encrypted MariaDB Aria tables offline, byte \
for byte as MariaDB 10.11 reads and writes them.

A TABLE is a table's .MAI or .MAD file, or its path without extension \
(/var/lib/mysql/shop/orders); a directory means every Aria table under it \
(a MariaDB data directory, searched recursively).

Keys come from the same places as the server's: a file_key_management key file \
(--key-file, plain or encrypted with --key-file-key) or the test-only \
debug_key_management plugin (--debug-key-management N). MariaDB does not record \
the key id or the algorithm in the table: the key id follows the server's rule \
(1, or 2 for temporary tables when the key file has key 2; --key-id overrides \
it) and the algorithm is detected from the page checksums (--algorithm \
overrides it).

Exit status: 0 everything checked out; 1 a table failed verification or a \
command could not complete; 2 usage error or unreadable input (missing or \
unreadable file, not an Aria table, bad key file).";

const EXAMPLES: &str = "\
Examples:
  aria-crypt info /var/lib/mysql/shop/orders
  aria-crypt verify --key-file /etc/mysql/keys.txt /var/lib/mysql/shop/orders
  aria-crypt verify --key-file keys.enc --key-file-key FILE:/etc/mysql/filekey /var/lib/mysql
  aria-crypt rekey --key-file old-keys.txt --to-key-file new-keys.txt /var/lib/mysql/shop
  aria-crypt decrypt --key-file /etc/mysql/keys.txt --out-dir /tmp/forensics /backup/shop/orders
  aria-crypt audit --key-file /etc/mysql/keys.txt /var/lib/mysql
  aria-crypt bench

Run `aria-crypt help COMMAND` for the details of one command.";

/// `aria-crypt`.
#[derive(Debug, Parser)]
#[command(
    name = "aria-crypt",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Print one JSON document on standard output instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Worker threads (default: one per CPU core).
    #[arg(long, short = 'j', global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,

    /// AES implementation: soft, aesni, vaes256, vaes512 or armv8 (default:
    /// the fastest this CPU has; `aria-crypt bench` lists them).
    #[arg(long, global = true, value_name = "NAME")]
    pub backend: Option<String>,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show how a table is stored and encrypted (no keys needed).
    #[command(
        long_about = "\
Show how a table is stored and encrypted, from its files alone (no keys needed): \
row format, block size, whether it is encrypted, transactional or temporary, \
page checksums, the key id the server uses for it, its per-table `space` and \
`scheme_iv`, page counts by kind and the key versions stamped in its pages.

Without keys the key id of a temporary table is \"1, or 2 if the key provider \
has key 2\"; give the key options to resolve it.",
        after_help = "\
Examples:
  aria-crypt info /var/lib/mysql/shop/orders
  aria-crypt info /var/lib/mysql/shop/orders.MAI --json
  aria-crypt info --key-file /etc/mysql/keys.txt /var/lib/mysql/shop"
    )]
    Info(InfoArgs),

    /// Decrypt every page in memory and check every checksum.
    #[command(
        long_about = "\
Decrypt every page in memory and check every checksum; nothing is written. \
For each failure it says which of the key id, the key version, the algorithm \
or the page content is wrong, by trying the alternatives: the other \
algorithm, the key file's other key ids, and whether the rest of the table \
verifies (then the page itself is damaged, named with its file and page \
number).

Exit status 0 when every encrypted page verifies, 1 when a page fails, 2 for \
unreadable input.",
        after_help = "\
Examples:
  aria-crypt verify --key-file /etc/mysql/keys.txt /var/lib/mysql/shop/orders
  aria-crypt verify --key-file /etc/mysql/keys.txt /var/lib/mysql
  aria-crypt verify --key-file keys.enc --key-file-key FILE:/etc/mysql/filekey --algorithm ctr t1.MAD
  aria-crypt verify --debug-key-management 3 --json /tmp/test/t1"
    )]
    Verify(VerifyArgs),

    /// Re-encrypt tables: rotate key versions, change key file, algorithm or table key.
    #[command(
        long_about = "\
Re-encrypt every encrypted page of the tables, with the latest version of the \
target key: key rotation (the same key file, its newest version), a move to \
another key source (--to-key-file, --to-debug-key-management), the other \
algorithm (--to-algorithm) and/or a fresh per-table key (--new-table-key: new \
`space` and `scheme_iv` in the .MAI header). Without --to-* options the \
target is the source key at its latest version.

Safety:
  * Every page is verified first, and both files must be as long as the \
header says; if anything fails, nothing is changed.
  * It refuses every table of a data directory that a MariaDB/MySQL server \
uses, unless --force: the aria_log_control lock there or in the Aria log \
directory (--aria-log-dir, the option files, running servers' command \
lines), InnoDB's ibdata1 lock, a server process working in it, a pid file \
naming a live server. It refuses tables a crashed server left open until \
the server has recovered them. While it works it holds the aria_log_control \
lock itself, so a server cannot start on the data directory meanwhile.
  * Before the first write it checks that every file can be replaced \
(writable, not immutable or append-only, one filesystem, room for the new \
files and the journal).
  * The new files are written beside the old ones (NAME.MAI.aria-crypt-new), \
read back and verified, synced; the old files get second names \
(NAME.MA?.aria-crypt-old), a journal (NAME.aria-crypt-journal) is written, \
the .MAI is removed, the new .MAD renamed into place and the new .MAI last, \
so a server finds the old table, no table or the new one. A crash at any \
moment is completed or rolled back by the next `aria-crypt rekey` on that \
table; `--recover` does only that, without keys, and where it can do \
neither it names each file and prints the commands that restore the table.
  * File owner and permissions are kept.

After a move to new keys or another algorithm, start the server with the \
matching settings (file_key_management_filename, \
file_key_management_encryption_algorithm, debug_key_management_version).

Versioned key files: --key-file and --to-key-file also read lines \
`ID;VERSION;HEX` (key ID at VERSION; `ID;HEX` is version 1), and the highest \
version of an id is the one pages are re-encrypted with. MariaDB's \
file_key_management serves version 1 only: a table rotated to version 2 needs \
a key-management plugin that has version 2. To give a file_key_management \
table a new key, move it to a new key file (--to-key-file) instead.",
        after_help = "\
Examples:
  # Rotate to the newest version of each key in a versioned key file:
  aria-crypt rekey --key-file /etc/mysql/keys-versioned.txt /var/lib/mysql/shop
  # Move from one key file to another:
  aria-crypt rekey --key-file old.txt --to-key-file /etc/mysql/keys.txt /var/lib/mysql/shop/orders
  # Switch AES-CBC to AES-CTR and give the table a fresh per-table key:
  aria-crypt rekey --key-file /etc/mysql/keys.txt --to-algorithm ctr --new-table-key /var/lib/mysql/shop
  # Rotate a test server's tables to debug_key_management version 4:
  aria-crypt rekey --debug-key-management 4 /tmp/test/data/db1
  # Finish or undo an interrupted rekey (no keys needed):
  aria-crypt rekey --recover /var/lib/mysql/shop"
    )]
    Rekey(RekeyArgs),

    /// Write decrypted copies of tables for forensic tools; never touches the input.
    #[command(
        long_about = "\
Write decrypted copies of tables into --out-dir: the same layout and size, \
every encrypted page decrypted with its key-version field zeroed, header and \
bitmap pages copied. The input files are only read. It refuses to write into \
a table's own directory, and over existing files unless --overwrite. If a \
page does not decrypt, nothing is written unless --partial (then that page is \
copied as it is and reported). Unencrypted tables are copied unchanged.",
        after_help = "\
Examples:
  aria-crypt decrypt --key-file /etc/mysql/keys.txt --out-dir /tmp/forensics /backup/shop/orders
  aria-crypt decrypt --key-file /etc/mysql/keys.txt --out-dir /tmp/forensics /backup/mysql"
    )]
    Decrypt(DecryptArgs),

    /// Security review of a data directory: plaintext tables, transaction logs, key versions.
    #[command(
        long_about = "\
Review a MariaDB data directory for what encryption does not cover:
  * Aria tables left unencrypted, with their row format (MariaDB silently \
leaves ROW_FORMAT=DYNAMIC and FIXED tables in plaintext even with \
aria_encrypt_tables=ON, and tables created before it was switched on),
  * Aria transaction logs (aria_log.*): never encrypted, they hold row images \
of every Aria table, encrypted ones included, in plaintext,
  * key versions in use per key id across the encrypted tables (read from the \
page headers, no keys needed; with keys: also which versions the key file \
lacks and which are unused and could be retired),
  * key files inside the data directory, world-readable table files, \
leftovers of interrupted rekeys and tables whose block size differs from \
the server's.

Exit status 1 if it finds plaintext data (unencrypted tables or Aria logs).",
        after_help = "\
Examples:
  aria-crypt audit /var/lib/mysql
  aria-crypt audit --key-file /etc/mysql/keys.txt --json /var/lib/mysql"
    )]
    Audit(AuditArgs),

    /// Measure page encryption throughput of every AES backend this CPU has.
    #[command(
        long_about = "\
Measure whole-page throughput (checksum + encrypt + stamp the key version; \
decrypt + verify the checksum) on generated pages, for every AES backend \
this CPU has beside the software one, on one core and on all cores, in CBC \
and CTR. Says which backend is active (the one the other commands use).",
        after_help = "\
Examples:
  aria-crypt bench
  aria-crypt bench --block-size 16384 --seconds 2 --json"
    )]
    Bench(BenchArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        long_about = "\
Print the completion script for SHELL on standard output, generated from \
the same definitions as --help. The Debian package installs the bash, zsh \
and fish scripts; elsewhere, write the script where the shell looks for it.",
        after_help = "\
Examples:
  aria-crypt completions bash > ~/.local/share/bash-completion/completions/aria-crypt
  aria-crypt completions zsh > /usr/local/share/zsh/site-functions/_aria-crypt
  aria-crypt completions fish > ~/.config/fish/completions/aria-crypt.fish"
    )]
    Completions(CompletionsArgs),

    /// Write the man pages, generated from the same definitions as --help,
    /// into DIR: aria-crypt.1 and aria-crypt-COMMAND.1 for each command.
    #[command(hide = true)]
    Manpages(ManpagesArgs),
}

/// Where keys come from.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Keys")]
pub struct KeyArgs {
    /// Key file in MariaDB file_key_management format, plain or encrypted
    /// (`Salted__`, openssl enc -aes-256-cbc -md sha1). Also read: this
    /// tool's versioned format, a superset where `ID;VERSION;HEX` lines give
    /// several versions of a key id (`ID;HEX` is version 1).
    #[arg(long, value_name = "FILE", conflicts_with = "debug_key_management")]
    pub key_file: Option<PathBuf>,

    /// Secret of an encrypted key file, as file_key_management_filekey: the
    /// secret itself or FILE:path (prefer FILE:, command lines are visible to
    /// other users).
    #[arg(long, value_name = "SECRET|FILE:path", requires = "key_file")]
    pub key_file_key: Option<String>,

    /// The test-only debug_key_management plugin's keys, with N its latest
    /// version (debug_key_management_version); every version is readable.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..4294967295))]
    pub debug_key_management: Option<u32>,

    /// Use this key id instead of the server's rule (1; 2 for temporary
    /// tables when the key provider has key 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub key_id: Option<u32>,
}

/// The server's `file_key_management_encryption_algorithm`, or detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Algorithm {
    /// AES_CBC, the server's default.
    Cbc,
    /// AES_CTR.
    Ctr,
    /// Detect from the pages' checksums.
    #[default]
    Auto,
}

impl Algorithm {
    /// The explicit mode, or `None` for detection.
    pub fn mode(self) -> Option<Mode> {
        match self {
            Algorithm::Cbc => Some(Mode::Cbc),
            Algorithm::Ctr => Some(Mode::Ctr),
            Algorithm::Auto => None,
        }
    }
}

/// The target algorithm of a rekey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetAlgorithm {
    /// AES_CBC.
    Cbc,
    /// AES_CTR.
    Ctr,
}

impl TargetAlgorithm {
    /// The mode.
    pub fn mode(self) -> Mode {
        match self {
            TargetAlgorithm::Cbc => Mode::Cbc,
            TargetAlgorithm::Ctr => Mode::Ctr,
        }
    }
}

/// `info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Optional: resolves the key id of temporary tables.
    #[command(flatten)]
    pub keys: KeyArgs,

    /// Tables: .MAI or .MAD files, paths without extension, or directories.
    #[arg(value_name = "TABLE", required = true)]
    pub tables: Vec<PathBuf>,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Keys of the tables.
    #[command(flatten)]
    pub keys: KeyArgs,

    /// AES mode the server used (file_key_management_encryption_algorithm).
    #[arg(long, value_enum, default_value_t, help_heading = "Keys")]
    pub algorithm: Algorithm,

    /// Tables: .MAI or .MAD files, paths without extension, or directories.
    #[arg(value_name = "TABLE", required = true)]
    pub tables: Vec<PathBuf>,
}

/// `rekey`.
#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// The keys the tables are encrypted with now.
    #[command(flatten)]
    pub keys: KeyArgs,

    /// AES mode the tables use now.
    #[arg(long, value_enum, default_value_t, help_heading = "Keys")]
    pub algorithm: Algorithm,

    /// Target key file (same formats as --key-file). Default: the source keys.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Target",
        conflicts_with = "to_debug_key_management"
    )]
    pub to_key_file: Option<PathBuf>,

    /// Secret of an encrypted target key file: SECRET or FILE:path.
    #[arg(
        long,
        value_name = "SECRET|FILE:path",
        help_heading = "Target",
        requires = "to_key_file"
    )]
    pub to_key_file_key: Option<String>,

    /// Target: debug_key_management keys with latest version N.
    #[arg(long, value_name = "N", help_heading = "Target", value_parser = clap::value_parser!(u32).range(1..4294967295))]
    pub to_debug_key_management: Option<u32>,

    /// Target AES mode (default: the current one).
    #[arg(long, value_enum, value_name = "ALGORITHM", help_heading = "Target")]
    pub to_algorithm: Option<TargetAlgorithm>,

    /// Target key id (default: the server's rule applied to the target keys).
    #[arg(long, value_name = "N", help_heading = "Target", value_parser = clap::value_parser!(u32).range(1..))]
    pub to_key_id: Option<u32>,

    /// Give each table a fresh per-table key: new random `space` and
    /// `scheme_iv` in the .MAI header.
    #[arg(long, help_heading = "Target")]
    pub new_table_key: bool,

    /// Verify and say what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Go on although a MariaDB server seems to use the data directory, or
    /// a table was not closed cleanly (dangerous: the server overwrites the
    /// table from its cache, or its recovery expects the old pages).
    #[arg(long)]
    pub force: bool,

    /// The server's aria_log_dir_path when it is not the data directory
    /// (also read from the option files and running servers' command
    /// lines): its aria_log_control lock says whether the server runs.
    #[arg(long, value_name = "PATH")]
    pub aria_log_dir: Vec<PathBuf>,

    /// Allow a target the server does not pick by itself: a --to-key-id
    /// other than the server's rule for the table, or a key version other
    /// than 1 from a key file (file_key_management serves version 1 only).
    #[arg(long, help_heading = "Target")]
    pub allow_unusual_key: bool,

    /// Only complete or roll back interrupted rekeys; needs no keys.
    #[arg(long, conflicts_with_all = ["dry_run", "new_table_key"])]
    pub recover: bool,

    /// Tables: .MAI or .MAD files, paths without extension, or directories.
    #[arg(value_name = "TABLE", required = true)]
    pub tables: Vec<PathBuf>,
}

impl RekeyArgs {
    /// The target key options, shaped like source ones.
    pub fn target_keys(&self) -> Option<KeyArgs> {
        if self.to_key_file.is_none() && self.to_debug_key_management.is_none() {
            return None;
        }
        Some(KeyArgs {
            key_file: self.to_key_file.clone(),
            key_file_key: self.to_key_file_key.clone(),
            debug_key_management: self.to_debug_key_management,
            key_id: self.to_key_id,
        })
    }
}

/// `decrypt`.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// Keys of the tables.
    #[command(flatten)]
    pub keys: KeyArgs,

    /// AES mode the server used.
    #[arg(long, value_enum, default_value_t, help_heading = "Keys")]
    pub algorithm: Algorithm,

    /// Directory for the decrypted copies (created if missing); tables found
    /// under a directory argument keep their relative paths.
    #[arg(long, value_name = "DIR", required = true)]
    pub out_dir: PathBuf,

    /// Replace existing files in the output directory.
    #[arg(long)]
    pub overwrite: bool,

    /// Write the output even if some pages do not decrypt (they are copied
    /// as they are, still encrypted).
    #[arg(long)]
    pub partial: bool,

    /// Tables: .MAI or .MAD files, paths without extension, or directories.
    #[arg(value_name = "TABLE", required = true)]
    pub tables: Vec<PathBuf>,
}

/// `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Optional: resolves key ids and checks which key versions the key file has.
    #[command(flatten)]
    pub keys: KeyArgs,

    /// The data directory (datadir).
    #[arg(value_name = "DATADIR")]
    pub datadir: PathBuf,
}

/// `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Page size of the generated pages.
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(4096..=32768))]
    pub block_size: u32,

    /// Generated pages per measurement.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(64..=1_000_000))]
    pub pages: u32,

    /// Seconds per measurement (at least one pass is always made).
    #[arg(long, default_value_t = 0.5)]
    pub seconds: f64,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `manpages` (hidden: for packagers).
#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Directory for the man pages (created if missing; pages there are
    /// replaced).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}
