//! The `[firewall]` table and its `[[firewall.rule]]`s (see `core::firewall`).
//!
//! ```toml
//! [firewall]
//! inbound = "deny"                 # allow (default) | deny | reject
//! outbound = "allow"
//! [[firewall.rule]]
//! action = "allow"                 # allow | deny | reject
//! direction = "in"                 # in (default) | out
//! proto = "tcp"                    # any (default) | tcp | udp | icmp | ping
//! port = "8080"                    # or 22, or "8000-8100": the destination port
//! from = ["did:key:z6Mk...", "<hex key>", "200:1234::/64"]
//! to = ["300:1:2:3::42"]
//! role = "medic"                   # the sender holds this role in the member registry
//! comment = "the clinic's web server"
//! ```
//! `from` and `to` are the packet's sides: for an inbound rule `from` is the other node (keys,
//! did:keys or prefixes) and `to` this node's addresses or hosts behind it (prefixes); for an
//! outbound rule the other way round.

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use crate::core::firewall::Settings;
use crate::core::firewall::conntrack::DEFAULT_MAX_CONNECTIONS;
use crate::core::firewall::rule::{Action, Direction, Peer, Ports, Prefix, Protocol, Rule};
use crate::core::identity::PublicKey;
use crate::services::identity::did_key::parse_did_key;

/// Rules at most: each packet of a new flow is tried against them in order.
pub(super) const MAX_RULES: usize = 1024;
/// Flows tracked at most, whatever is configured (about 200 bytes each).
pub(super) const MAX_CONNECTIONS: usize = 1 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFirewall {
    inbound: Option<Spanned<String>>,
    outbound: Option<Spanned<String>>,
    #[serde(default)]
    log_only: bool,
    max_connections: Option<Spanned<usize>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPort {
    Number(u16),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    action: Spanned<String>,
    direction: Option<Spanned<String>>,
    proto: Option<Spanned<String>>,
    port: Option<Spanned<RawPort>>,
    #[serde(default)]
    from: Vec<Spanned<String>>,
    #[serde(default)]
    to: Vec<Spanned<String>>,
    role: Option<Spanned<String>>,
    #[serde(default)]
    comment: String,
}

type Invalid<'a> = &'a dyn Fn(std::ops::Range<usize>, String) -> ConfigError;

fn action(text: &Spanned<String>, what: &str, invalid: Invalid<'_>) -> Result<Action, ConfigError> {
    Action::parse(text.get_ref()).ok_or_else(|| {
        invalid(
            text.span(),
            format!("{what}: {}: use allow, deny or reject", text.get_ref()),
        )
    })
}

/// A key, did:key or prefix naming the other side.
fn peer(text: &Spanned<String>, invalid: Invalid<'_>) -> Result<Peer, ConfigError> {
    let t = text.get_ref().trim();
    if t.starts_with("did:") {
        let did = t.split('#').next().unwrap_or_default();
        return parse_did_key(did)
            .map(Peer::Key)
            .map_err(|e| invalid(text.span(), format!("firewall.rule: {did}: {e}")));
    }
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return PublicKey::from_hex(t)
            .map(Peer::Key)
            .map_err(|e| invalid(text.span(), format!("firewall.rule: key {t}: {e}")));
    }
    Prefix::parse(t).map(Peer::Prefix).ok_or_else(|| {
        invalid(
            text.span(),
            format!(
                "firewall.rule: {t}: give a did:key, a 64-hex node key, or an IPv6 address or prefix"
            ),
        )
    })
}

/// An address or prefix of this side.
fn local(text: &Spanned<String>, invalid: Invalid<'_>) -> Result<Prefix, ConfigError> {
    Prefix::parse(text.get_ref().trim()).ok_or_else(|| {
        invalid(
            text.span(),
            format!(
                "firewall.rule: {}: this node's side is an IPv6 address or prefix (keys name the other side)",
                text.get_ref()
            ),
        )
    })
}

fn rule(raw: &Spanned<RawRule>, invalid: Invalid<'_>) -> Result<Rule, ConfigError> {
    let r = raw.get_ref();
    let direction = match r.direction.as_ref().map(|d| (d, d.get_ref().as_str())) {
        None | Some((_, "in")) => Direction::In,
        Some((_, "out")) => Direction::Out,
        Some((d, other)) => {
            return Err(invalid(
                d.span(),
                format!("firewall.rule.direction: {other}: use in or out"),
            ));
        }
    };
    let protocol = match &r.proto {
        None => Protocol::Any,
        Some(p) => Protocol::parse(p.get_ref()).ok_or_else(|| {
            invalid(
                p.span(),
                format!(
                    "firewall.rule.proto: {}: use any, tcp, udp, icmp or ping",
                    p.get_ref()
                ),
            )
        })?,
    };
    let ports = match &r.port {
        None => None,
        Some(p) => {
            let parsed = match p.get_ref() {
                RawPort::Number(n) => Some(Ports {
                    first: *n,
                    last: *n,
                }),
                RawPort::Text(t) => Ports::parse(t),
            };
            if parsed.is_none() {
                return Err(invalid(
                    p.span(),
                    "firewall.rule.port: a port (22) or a range (\"8000-8100\")".into(),
                ));
            }
            if !matches!(protocol, Protocol::Tcp | Protocol::Udp) {
                return Err(invalid(
                    p.span(),
                    "firewall.rule.port: ports need proto = \"tcp\" or \"udp\"".into(),
                ));
            }
            parsed
        }
    };
    let (remote, ours) = match direction {
        Direction::In => (&r.from, &r.to),
        Direction::Out => (&r.to, &r.from),
    };
    let peers = remote
        .iter()
        .map(|p| peer(p, invalid))
        .collect::<Result<Vec<_>, _>>()?;
    let local = ours
        .iter()
        .map(|p| local(p, invalid))
        .collect::<Result<Vec<_>, _>>()?;
    let roles = match &r.role {
        Some(role) if direction == Direction::Out => {
            return Err(invalid(
                role.span(),
                "firewall.rule.role: roles are known of senders: inbound rules only".into(),
            ));
        }
        Some(role) if role.get_ref().trim().is_empty() => {
            return Err(invalid(role.span(), "firewall.rule.role: empty".into()));
        }
        Some(role) => vec![role.get_ref().trim().to_owned()],
        None => Vec::new(),
    };
    Ok(Rule {
        direction,
        action: action(&r.action, "firewall.rule.action", invalid)?,
        peers,
        roles,
        local,
        protocol,
        ports,
        comment: r.comment.clone(),
    })
}

pub(super) fn validate(
    raw: Option<RawFirewall>,
    invalid: Invalid<'_>,
) -> Result<Settings, ConfigError> {
    let mut settings = Settings::default();
    let Some(raw) = raw else {
        return Ok(settings);
    };
    if let Some(a) = &raw.inbound {
        settings.inbound = action(a, "firewall.inbound", invalid)?;
    }
    if let Some(a) = &raw.outbound {
        settings.outbound = action(a, "firewall.outbound", invalid)?;
    }
    settings.log_only = raw.log_only;
    settings.max_connections = match &raw.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(n) if (1..=MAX_CONNECTIONS).contains(n.get_ref()) => *n.get_ref(),
        Some(n) => {
            return Err(invalid(
                n.span(),
                format!("firewall.max_connections: 1 to {MAX_CONNECTIONS}"),
            ));
        }
    };
    if let Some(extra) = raw.rule.get(MAX_RULES) {
        return Err(invalid(
            extra.span(),
            format!("firewall: at most {MAX_RULES} rules"),
        ));
    }
    settings.rules = (raw.rule.iter())
        .map(|r| rule(r, invalid))
        .collect::<Result<_, _>>()?;
    Ok(settings)
}
