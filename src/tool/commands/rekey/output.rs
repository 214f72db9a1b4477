//! What a rekey says about a table: the source and target in words, and
//! the JSON fields every table's object has.

use serde_json::{Map, Value, json};

use super::Target;
use crate::tool::commands::{Verified, hex};
use crate::tool::report::{pages_json, versions_json};
use crate::tool::table::Table;
use crate::tool::tally::Tally;
use crate::tool::walk::TableRef;

/// The `to` object: algorithm, key id and version, keys, the table key.
pub(super) fn target_json(table: &Table, source: &Verified, target: &Target<'_>) -> Value {
    let crypt = target.crypt.or(table.header.crypt);
    json!({
        "algorithm": target.mode.name(),
        "key_id": target.key_id,
        "key_version": target.version,
        "keys": target.keys.describe(),
        "new_table_key": target.crypt.is_some(),
        "space": crypt.map(|c| format!("0x{:08x}", c.space)),
        "scheme_iv": crypt.map(|c| hex(&c.scheme_iv)),
        "key_versions": versions_json(&[(target.version, source.tally.encrypted)].into_iter().collect()),
    })
}

/// "key id 1 versions 1, 2 (cbc)".
pub(super) fn describe_source(source: &Verified) -> String {
    let choice = &source.choice;
    let versions = &source.tally.versions;
    if versions.is_empty() {
        return format!(
            "no encrypted pages (key id {}, {})",
            choice.key_id, choice.mode
        );
    }
    format!(
        "key id {} version{} {} ({})",
        choice.key_id,
        if versions.len() == 1 { "" } else { "s" },
        versions
            .keys()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        choice.mode
    )
}

/// "key id 1 version 2 (ctr), new table key".
pub(super) fn describe_target(target: &Target<'_>) -> String {
    format!(
        "key id {} version {} ({}){}",
        target.key_id,
        target.version,
        target.mode,
        if target.crypt.is_some() {
            ", new table key"
        } else {
            ""
        }
    )
}

/// Fills the fields a table's object has even when the rekey stopped
/// early.
pub(super) fn complete_json(m: &mut Map<String, Value>, table: &TableRef) {
    if !m.contains_key("table") {
        m.insert("table".into(), json!(table.stem.display().to_string()));
    }
    m.entry("pages")
        .or_insert_with(|| pages_json(&Tally::default()));
    for key in ["algorithm", "key_id"] {
        m.entry(key).or_insert(Value::Null);
    }
    m.entry("key_versions").or_insert(json!({}));
}
