//! `[nodeinfo]` and `nodeinfo_privacy`: what the node tells whoever asks over the overlay.

use toml::Spanned;

use super::error::ConfigError;
use crate::services::nodeinfo::{MAX_NODEINFO, check};

/// The description as published: the configured table (any keys: name, location, contact,
/// services, ...) with the software and its version, or only those two with `nodeinfo_privacy`.
/// `mesh_name` (from `name`) is added as `name` unless the table has one.
pub(super) fn validate(
    table: Option<Spanned<toml::Table>>,
    privacy: bool,
    mesh_name: Option<&str>,
    invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<String, ConfigError> {
    let span = table.as_ref().map_or(0..0, Spanned::span);
    let mut info = match (table, privacy) {
        (Some(t), false) => serde_json::to_value(t.into_inner())
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default(),
        _ => serde_json::Map::new(),
    };
    if !privacy && let Some(name) = mesh_name {
        info.entry("name")
            .or_insert_with(|| format!("{name}.mesh").into());
    }
    info.insert("software".into(), "meshrouter".into());
    info.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    let text = serde_json::Value::Object(info).to_string();
    check(&text).map_err(|e| {
        invalid(
            span,
            format!("nodeinfo: {e} (with software and version added; at most {MAX_NODEINFO})"),
        )
    })?;
    Ok(text)
}
