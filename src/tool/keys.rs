//! Key options to a key provider, plus what the diagnosis needs to know
//! about it: which key ids and versions it holds.

use std::sync::Arc;

use super::cli::KeyArgs;
use super::outcome::ToolError;
use crate::keys::{DebugKeyProvider, KeyProvider, VersionedKeyProvider};

/// A key provider built from the command line.
pub struct Keys {
    /// The provider the ciphers use.
    pub provider: Arc<dyn KeyProvider>,
    /// `--key-id`, overriding the server's rule.
    pub key_id: Option<u32>,
    source: Source,
}

enum Source {
    File {
        path: String,
        /// Key ids with their versions, in increasing order.
        ids: Vec<(u32, Vec<u32>)>,
    },
    Debug {
        latest: u32,
    },
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Keys {
    /// The provider the options name, or `None` when none was given.
    ///
    /// # Errors
    /// Exit status 2 for a key file that cannot be read or parsed.
    pub fn from_args(args: &KeyArgs) -> Result<Option<Keys>, ToolError> {
        if let Some(latest) = args.debug_key_management {
            let provider = DebugKeyProvider::new(latest).map_err(ToolError::lib)?;
            return Ok(Some(Keys {
                provider: Arc::new(provider),
                key_id: args.key_id,
                source: Source::Debug { latest },
            }));
        }
        let Some(path) = &args.key_file else {
            return Ok(None);
        };
        // The versioned reader accepts every MariaDB key file (all keys at
        // version 1) and several versions per id.
        let provider = VersionedKeyProvider::from_path(path, args.key_file_key.as_deref())
            .map_err(ToolError::lib)?;
        let ids: Vec<(u32, Vec<u32>)> = provider
            .key_ids()
            .map(|id| (id, provider.versions(id).collect()))
            .collect();
        if ids.is_empty() {
            return Err(ToolError::input(format!(
                "{}: the key file holds no key",
                path.display()
            )));
        }
        Ok(Some(Keys {
            provider: Arc::new(provider),
            key_id: args.key_id,
            source: Source::File {
                path: path.display().to_string(),
                ids,
            },
        }))
    }

    /// Like [`from_args`](Self::from_args) for commands that cannot work
    /// without keys.
    ///
    /// # Errors
    /// Exit status 2 when no key source was given.
    pub fn required(args: &KeyArgs, command: &str) -> Result<Keys, ToolError> {
        Self::from_args(args)?.ok_or_else(|| {
            ToolError::input(format!(
                "{command} needs keys: give --key-file FILE (and --key-file-key if it is encrypted) or --debug-key-management N"
            ))
        })
    }

    /// "key file /etc/mysql/keys.txt" or "debug_key_management (latest version 3)".
    pub fn describe(&self) -> String {
        match &self.source {
            Source::File { path, .. } => format!("key file {path}"),
            Source::Debug { latest } => {
                format!("debug_key_management (latest version {latest})")
            }
        }
    }

    /// Whether the keys come from a key file (MariaDB serves version 1 of
    /// those only).
    pub fn is_key_file(&self) -> bool {
        matches!(self.source, Source::File { .. })
    }

    /// "the key file" or "debug_key_management", for sentences.
    pub fn name(&self) -> &'static str {
        match &self.source {
            Source::File { .. } => "the key file",
            Source::Debug { .. } => "debug_key_management",
        }
    }

    /// The key ids the provider holds.
    pub fn key_ids(&self) -> Vec<u32> {
        match &self.source {
            Source::File { ids, .. } => ids.iter().map(|(id, _)| *id).collect(),
            Source::Debug { .. } => vec![DebugKeyProvider::KEY_ID],
        }
    }

    /// The versions of `key_id` the provider holds; `None` when it serves
    /// any version (debug_key_management).
    pub fn versions(&self, key_id: u32) -> Option<Vec<u32>> {
        match &self.source {
            Source::File { ids, .. } => Some(
                ids.iter()
                    .find(|(id, _)| *id == key_id)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
            ),
            Source::Debug { .. } if key_id == DebugKeyProvider::KEY_ID => None,
            Source::Debug { .. } => Some(Vec::new()),
        }
    }
}

/// "1, 2, 7" for messages.
pub fn list(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
