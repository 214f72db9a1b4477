//! Which key id and algorithm a table was written with: MariaDB records
//! neither. The key id follows the server's rule unless `--key-id` says
//! otherwise; the algorithm is the one under which sampled pages verify
//! ([`Diagnoser::detect_mode`]).

use super::ciphers::{CipherFactory, key_id_for};
use super::keys::Keys;
use super::outcome::ToolError;
use super::scan::PagedFile;
use super::table::Table;
use crate::aria::{PageFile, PageKind};
use crate::diagnose::{Diagnoser, Page};
use crate::kernel::Mode;

/// How the algorithm was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeSource {
    /// `--algorithm` (or `--to-algorithm`).
    Option,
    /// Detected: this many sampled pages verified of those tried.
    Detected {
        /// Sampled pages that verified with the chosen mode.
        verified: usize,
        /// Sampled pages.
        sampled: usize,
    },
    /// No sampled page verified with either algorithm (CBC, the server's
    /// default, is assumed and the failures diagnosed).
    Undetermined,
    /// The table has no encrypted page to tell from.
    NoPages,
}

/// Key id and algorithm for reading a table.
#[derive(Clone, Copy, Debug)]
pub struct Choice {
    /// The key id.
    pub key_id: u32,
    /// Whether it came from `--key-id`.
    pub key_id_option: bool,
    /// The algorithm.
    pub mode: Mode,
    /// How it was chosen.
    pub mode_source: ModeSource,
}

impl Choice {
    /// "cbc (detected)" and the like, for human output.
    pub fn describe_mode(&self) -> String {
        match self.mode_source {
            ModeSource::Option => format!("{}", self.mode),
            ModeSource::Detected { verified, sampled } => {
                format!(
                    "{}, detected ({verified} of {sampled} sampled pages)",
                    self.mode
                )
            }
            ModeSource::Undetermined => format!("{}, undetermined", self.mode),
            ModeSource::NoPages => format!("{}, no encrypted page", self.mode),
        }
    }

    /// "detected", "option", "undetermined", "none" for JSON.
    pub fn mode_source_name(&self) -> &'static str {
        match self.mode_source {
            ModeSource::Option => "option",
            ModeSource::Detected { .. } => "detected",
            ModeSource::Undetermined => "undetermined",
            ModeSource::NoPages => "none",
        }
    }
}

/// Sample pages for detection: the first encrypted pages of each file and
/// pages spread over it.
fn sample(table: &Table) -> Result<Vec<(PageFile, u32, Vec<u8>)>, ToolError> {
    const FIRST: u64 = 8;
    const SPREAD: u64 = 8;
    let bs = table.block_size();
    let geometry = table.header.geometry;
    let mut out = Vec::new();
    for (kind, path, _) in table.files() {
        let file = PagedFile::open(kind, path, bs)?;
        let pages = file.pages();
        let mut numbers: Vec<u64> = (0..pages.min(FIRST * 4)).collect();
        numbers.extend((0..SPREAD).map(|i| pages * i / SPREAD + pages / (2 * SPREAD)));
        numbers.sort_unstable();
        numbers.dedup();
        let mut taken = 0;
        let mut buf = vec![0u8; bs];
        for n in numbers.into_iter().filter(|&n| n < pages) {
            if n < FIRST * 4 && taken >= FIRST {
                continue;
            }
            file.read_pages(n, &mut buf)?;
            if let Ok(PageKind::Encrypted(_)) = geometry.classify(kind, n as u32, &buf) {
                out.push((kind, n as u32, buf.clone()));
                taken += 1;
            }
        }
    }
    Ok(out)
}

/// Picks the key id and algorithm: the options, else the server's key-id
/// rule and the algorithm under which sampled pages verify.
///
/// # Errors
/// Exit status 2 on a read error.
pub fn choose(
    factory: CipherFactory<'_>,
    keys: &Keys,
    requested: Option<Mode>,
) -> Result<Choice, ToolError> {
    let (key_id, key_id_option) = key_id_for(factory.table, keys).map_err(ToolError::lib)?;
    if let Some(mode) = requested {
        return Ok(Choice {
            key_id,
            key_id_option,
            mode,
            mode_source: ModeSource::Option,
        });
    }
    let samples = sample(factory.table)?;
    if samples.is_empty() {
        return Ok(Choice {
            key_id,
            key_id_option,
            mode: Mode::Cbc,
            mode_source: ModeSource::NoPages,
        });
    }
    let pages: Vec<Page<'_>> = samples
        .iter()
        .map(|(file, number, data)| Page {
            file: *file,
            number: *number,
            data,
        })
        .collect();
    let diagnoser = Diagnoser::new(factory.cipher(keys, key_id, Mode::Cbc, None)?);
    let detection = diagnoser.detect_mode(&pages);
    let (mode, mode_source) = match detection.mode {
        Some(mode) => (
            mode,
            ModeSource::Detected {
                verified: detection.verified,
                sampled: detection.sampled,
            },
        ),
        None => (Mode::Cbc, ModeSource::Undetermined),
    };
    Ok(Choice {
        key_id,
        key_id_option,
        mode,
        mode_source,
    })
}
