//! The `[apps]` table: the HTTP listener that serves local-first web apps and their API to browsers on
//! the LAN (off unless `listen` is set).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;

/// Most addresses the app listener binds, and most CORS origins.
pub const MAX_APP_ADDRESSES: usize = 16;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApps {
    #[serde(default)]
    listen: Vec<Spanned<String>>,
    root: Option<PathBuf>,
    #[serde(default)]
    cors_origins: Vec<Spanned<String>>,
}

/// Validated app listener settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSettings {
    /// Where to listen (`[IPv6]:port` or `IPv4:port`); empty: no app listener.
    pub listen: Vec<SocketAddr>,
    /// The folder whose files are served at `/` (a village's app); `None`: only `/api/`.
    pub root: Option<PathBuf>,
    /// Origins (`https://host[:port]`) whose pages may call the API from elsewhere; `*` for any.
    /// Empty: only pages served by this listener.
    pub cors_origins: Vec<String>,
}

pub(super) fn validate(
    raw: Option<RawApps>,
    invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<AppSettings, ConfigError> {
    let raw = raw.unwrap_or_default();
    for list in [&raw.listen, &raw.cors_origins] {
        if let Some(extra) = list.get(MAX_APP_ADDRESSES) {
            return Err(invalid(
                extra.span(),
                format!("apps: at most {MAX_APP_ADDRESSES} entries per list"),
            ));
        }
    }
    let listen = raw
        .listen
        .into_iter()
        .map(|s| {
            s.get_ref().parse::<SocketAddr>().map_err(|_| {
                invalid(
                    s.span(),
                    "apps.listen: expected IP:port ([IPv6]:port), e.g. \"[fd00::1]:8080\"".into(),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cors_origins = raw
        .cors_origins
        .into_iter()
        .map(|s| {
            let origin = s.get_ref().trim_end_matches('/').to_owned();
            let ok = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.contains(char::is_whitespace)
                    && origin.split("://").nth(1).is_some_and(|h| !h.is_empty() && !h.contains('/')));
            ok.then_some(origin).ok_or_else(|| {
                invalid(
                    s.span(),
                    "apps.cors_origins: expected \"*\" or an origin such as \"https://notes.example\"".into(),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(root) = &raw.root
        && root.as_os_str().is_empty()
    {
        return Err(invalid(0..0, "apps.root: an empty path".into()));
    }
    Ok(AppSettings {
        listen,
        root: raw.root,
        cors_origins,
    })
}
