//! The `[crdt]` table: where the CRDT service keeps its data and what it replicates with whom.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use crate::core::identity::PublicKey;
use crate::services::crdt::change::{MAX_NAMESPACE, valid_name};
use crate::services::crdt::replica::Quota;
use crate::services::crdt::sync::NamespaceFilter;

/// Where the CRDT database lives unless configured.
pub const DEFAULT_CRDT_DATABASE: &str = "/var/lib/meshrouter/crdt.redb";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCrdt {
    database: Option<PathBuf>,
    namespaces: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    peers: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    max_namespace_bytes: Option<u64>,
    max_namespace_changes: Option<u64>,
    max_writer_bytes: Option<u64>,
    max_writer_changes: Option<u64>,
}

/// Validated CRDT settings.
#[derive(Debug, Clone)]
pub struct CrdtSettings {
    /// The database file; `None` turns the service off (`database = "none"`).
    pub database: Option<PathBuf>,
    /// Namespaces replicated at all.
    pub namespaces: NamespaceFilter,
    /// Per peer, the namespaces replicated with it.
    pub peers: BTreeMap<PublicKey, NamespaceFilter>,
    /// What one namespace, and one writer in it, may take on this node (past it, the namespace or
    /// the writer stops growing here).
    pub quota: Quota,
}

impl Default for CrdtSettings {
    fn default() -> Self {
        Self {
            database: Some(PathBuf::from(DEFAULT_CRDT_DATABASE)),
            namespaces: NamespaceFilter::All,
            peers: BTreeMap::new(),
            quota: Quota::default(),
        }
    }
}

fn filter(
    list: &[Spanned<String>],
    invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<NamespaceFilter, ConfigError> {
    for name in list {
        let n = name.get_ref();
        if n != "*" && !valid_name(n, MAX_NAMESPACE) {
            return Err(invalid(
                name.span(),
                format!(
                    "crdt: namespace names are 1 to {MAX_NAMESPACE} bytes without control characters, or \"*\" for all"
                ),
            ));
        }
    }
    let names: Vec<&str> = list.iter().map(|s| s.get_ref().as_str()).collect();
    Ok(NamespaceFilter::from_list(&names))
}

pub(super) fn validate(
    raw: Option<RawCrdt>,
    invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<CrdtSettings, ConfigError> {
    let mut settings = CrdtSettings::default();
    let Some(raw) = raw else {
        return Ok(settings);
    };
    if let Some(path) = raw.database {
        settings.database = (path.as_os_str() != "none").then_some(path);
    }
    if let Some(list) = &raw.namespaces {
        settings.namespaces = filter(list, invalid)?;
    }
    if let Some(bytes) = raw.max_namespace_bytes {
        settings.quota.bytes = bytes;
    }
    if let Some(changes) = raw.max_namespace_changes {
        settings.quota.changes = changes;
    }
    if let Some(bytes) = raw.max_writer_bytes {
        settings.quota.writer_bytes = bytes;
    }
    if let Some(changes) = raw.max_writer_changes {
        settings.quota.writer_changes = changes;
    }
    for (key, list) in &raw.peers {
        let peer = PublicKey::from_hex(key)
            .map_err(|e| invalid(list.span(), format!("crdt.peers: key {key}: {e}")))?;
        settings
            .peers
            .insert(peer, filter(list.get_ref(), invalid)?);
    }
    Ok(settings)
}
