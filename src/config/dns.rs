//! Mesh names and the DNS responder: `name = "clinic"` and the `[dns]` table.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use crate::services::names::is_label;

/// Most addresses the responder listens on, and most upstream servers.
pub const MAX_DNS_ADDRESSES: usize = 16;
/// The DNS port, for addresses given without one.
pub const DNS_PORT: u16 = 53;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    enabled: Option<bool>,
    #[serde(default)]
    listen: Vec<Spanned<String>>,
    #[serde(default)]
    upstream: Vec<Spanned<String>>,
    #[serde(default)]
    allow_overlay: bool,
}

/// Validated DNS responder settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// Run the responder; `None`: when the node serves a LAN (`lan` is set).
    pub enabled: Option<bool>,
    /// Where to listen; empty: port 53 on the node's LAN address(es) and its TUN address.
    pub listen: Vec<SocketAddr>,
    /// Servers other queries are forwarded to; empty: they are refused.
    pub upstream: Vec<SocketAddr>,
    /// Answer queries from other mesh nodes too (not only this node, its LANs and loopback).
    pub allow_overlay: bool,
}

impl DnsSettings {
    /// Whether the responder runs, for a node whose `lan` is `lan`.
    pub fn runs(&self, lan: &[String]) -> bool {
        self.enabled.unwrap_or(!lan.is_empty())
    }
}

/// Reads `IP` or `IP:port` (`[v6]:port`), port 53 by default.
fn socket_address(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(|ip| (ip, DNS_PORT).into()))
}

pub(super) fn validate(
    raw: Option<RawDns>,
    invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<DnsSettings, ConfigError> {
    let raw = raw.unwrap_or_default();
    let addresses = |list: Vec<Spanned<String>>, what: &str| {
        if let Some(extra) = list.get(MAX_DNS_ADDRESSES) {
            return Err(invalid(
                extra.span(),
                format!("dns.{what}: at most {MAX_DNS_ADDRESSES} addresses"),
            ));
        }
        list.into_iter()
            .map(|s| {
                socket_address(s.get_ref()).ok_or_else(|| {
                    invalid(
                        s.span(),
                        format!("dns.{what}: expected IP or IP:port ([IPv6]:port)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(DnsSettings {
        enabled: raw.enabled,
        listen: addresses(raw.listen, "listen")?,
        upstream: addresses(raw.upstream, "upstream")?,
        allow_overlay: raw.allow_overlay,
    })
}

/// Checks the node's `name`.
pub(super) fn name(
    raw: Option<Spanned<String>>,
    invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<Option<String>, ConfigError> {
    let Some(name) = raw else { return Ok(None) };
    let label = name
        .get_ref()
        .strip_suffix(".mesh")
        .unwrap_or(name.get_ref());
    if !is_label(label) {
        return Err(invalid(
            name.span(),
            "name: expected 1 to 63 of a-z, 0-9 and - (not first or last), as in \"clinic\"".into(),
        ));
    }
    Ok(Some(label.to_owned()))
}
