//! The `[blobs]` table: where content-addressed files are kept and how many bytes they may take.

use std::path::PathBuf;

use serde::Deserialize;

use super::error::ConfigError;

/// Where blobs live unless configured.
pub const DEFAULT_BLOB_STORE: &str = "/var/lib/meshrouter/blobs";
/// Bytes blobs may take unless configured: 1 GiB.
pub(super) const DEFAULT_BLOB_BYTES: u64 = 1 << 30;
/// Smallest limit accepted: room for a few full chunks.
const MIN_BLOB_BYTES: u64 = 8 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBlobs {
    store: Option<PathBuf>,
    max_bytes: Option<toml::Spanned<u64>>,
}

/// Validated blob settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobSettings {
    /// The folder (made when first used); `None` turns blobs off (`store = "none"`).
    pub store: Option<PathBuf>,
    /// Bytes of blocks kept at most: past it, unpinned files unused longest are dropped.
    pub max_bytes: u64,
}

impl Default for BlobSettings {
    fn default() -> Self {
        Self {
            store: Some(PathBuf::from(DEFAULT_BLOB_STORE)),
            max_bytes: DEFAULT_BLOB_BYTES,
        }
    }
}

pub(super) fn validate(
    raw: Option<RawBlobs>,
    invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<BlobSettings, ConfigError> {
    let mut settings = BlobSettings::default();
    let Some(raw) = raw else {
        return Ok(settings);
    };
    if let Some(path) = raw.store {
        settings.store = (path.as_os_str() != "none").then_some(path);
    }
    if let Some(bytes) = raw.max_bytes {
        if *bytes.get_ref() < MIN_BLOB_BYTES {
            return Err(invalid(
                bytes.span(),
                format!("blobs.max_bytes: at least {MIN_BLOB_BYTES} (8 MiB)"),
            ));
        }
        settings.max_bytes = *bytes.get_ref();
    }
    Ok(settings)
}
