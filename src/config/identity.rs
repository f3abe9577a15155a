//! The `[identity]` table: whose signatures this node's identity service trusts.

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use crate::services::identity::did_key::parse_did_key;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    #[serde(default)]
    admins: Vec<Spanned<String>>,
}

/// Validated identity settings.
#[derive(Debug, Clone, Default)]
pub struct IdentitySettings {
    /// DIDs (did:key) whose enrollments and revocations this node honours, besides its own.
    pub admins: Vec<String>,
}

pub(super) fn validate(
    raw: Option<RawIdentity>,
    invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<IdentitySettings, ConfigError> {
    let mut settings = IdentitySettings::default();
    for admin in raw.map(|r| r.admins).unwrap_or_default() {
        let did = admin.get_ref().split('#').next().unwrap_or_default();
        parse_did_key(did)
            .map_err(|e| invalid(admin.span(), format!("identity.admins: {did}: {e}")))?;
        settings.admins.push(did.to_owned());
    }
    Ok(settings)
}
