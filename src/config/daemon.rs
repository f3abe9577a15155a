//! The daemon's settings: TUN device, links, discovery, local API and privileges.
//!
//! [`RawConfig`](super::RawConfig) is what the file holds; [`Daemon`] is the validated form the driver
//! uses. Every refusal points at the offending value in the file.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::link_uri::{LinkUri, MAX_PASSWORD_LEN};
use crate::core::identity::PublicKey;

/// The IPv6 minimum MTU, and our default: every overlay packet then fits in one datagram on a 1500-byte
/// Ethernet or Wi-Fi underlay (1280 + about 150 bytes of headers), so loss is never amplified by
/// fragmentation, and no path can be too small for it.
pub const DEFAULT_TUN_MTU: u16 = 1280;
/// Largest TUN MTU accepted (the largest IPv6 packet without jumbograms).
pub(super) const MAX_TUN_MTU: u16 = 65535;
/// Where the local API listens unless configured.
pub const DEFAULT_API_SOCKET: &str = "/run/meshrouter/meshrouter.sock";
/// Links at most unless configured (`max_links`).
pub(crate) const DEFAULT_MAX_LINKS: usize = 256;
/// The largest `max_links` accepted.
pub(crate) const MAX_MAX_LINKS: usize = 65_536;
/// The TUN interface name unless configured.
pub const DEFAULT_TUN_NAME: &str = "meshrouter0";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscovery {
    interfaces: Spanned<String>,
    #[serde(default = "yes")]
    beacon: bool,
    #[serde(default = "yes")]
    listen: bool,
    #[serde(default)]
    port: u16,
    password: Option<Spanned<String>>,
    #[serde(default)]
    priority: u8,
    #[serde(default)]
    transport: Option<Spanned<String>>,
}

fn yes() -> bool {
    true
}

/// Validated daemon settings.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// TUN interface name; `None` runs a pure router without one (`tun_name = "none"`).
    pub tun_name: Option<String>,
    /// TUN MTU.
    pub tun_mtu: u16,
    /// Peers to connect to.
    pub peers: Vec<LinkUri>,
    /// Addresses to accept links on.
    pub listen: Vec<LinkUri>,
    /// If non-empty, only these keys may connect to a listener (discovered links are not affected).
    pub allowed_public_keys: Vec<PublicKey>,
    /// Closed overlay: only nodes with this password can open sessions with us.
    pub group_password: Option<Vec<u8>>,
    /// Interfaces on which to find peers by themselves.
    pub discovery: Vec<DiscoveryRule>,
    /// Local API socket; `None` disables the API (`api_socket = "none"`).
    pub api_socket: Option<PathBuf>,
    /// Group given access to the API socket.
    pub api_group: Option<String>,
    /// User to run as after setup.
    pub user: Option<String>,
    /// Group to run as after setup.
    pub group: Option<String>,
    /// The CRDT sync service.
    pub crdt: super::CrdtSettings,
    /// The identity service's trusted admins.
    pub identity: super::IdentitySettings,
    /// The overlay firewall (off unless configured).
    pub firewall: crate::core::firewall::Settings,
    /// Interfaces this node is the IPv6 router of: its /64 there, Router Advertisements, DNS.
    pub lan: Vec<String>,
    /// Offer LAN hosts a default route through this node (not only routes to the mesh).
    pub lan_default_route: bool,
    /// The mesh name this node claims (`name.mesh`).
    pub name: Option<String>,
    /// The DNS responder.
    pub dns: super::DnsSettings,
    /// The NodeInfo this node publishes (a JSON object).
    pub nodeinfo: String,
    /// Content-addressed files.
    pub blobs: super::BlobSettings,
    /// The HTTP listener for web apps on the LAN.
    pub apps: super::AppSettings,
    /// Links at most: inbound handshakes past it are refused (configured peers still link). Bounds
    /// the memory strangers can make this node spend, and the metrics' series.
    pub max_links: usize,
    /// Where `GET /metrics` is also served over TCP (off unless configured).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where the read-only status page is served (none unless configured).
    pub status_listen: Vec<std::net::SocketAddr>,
    /// The file this was read from, read again on SIGHUP (`meshrouter reload`); `None` for a
    /// configuration made in memory (`run --autoconf`).
    pub config_path: Option<PathBuf>,
}

/// Discovery settings for the interfaces whose names match `interfaces`.
#[derive(Debug, Clone)]
pub struct DiscoveryRule {
    /// Interface names this rule covers (the whole name must match).
    pub interfaces: regex_lite::Regex,
    /// Send beacons on these interfaces.
    pub beacon: bool,
    /// Connect to nodes whose beacons we hear.
    pub listen: bool,
    /// UDP port for discovered links (0: any free port).
    pub port: u16,
    /// Only nodes knowing this password are discovered and linked.
    pub password: Option<Vec<u8>>,
    /// Priority of discovered links (lower is preferred).
    pub priority: u8,
    /// Discover and link over UDP (IPv6 link-local).
    pub udp: bool,
    /// Discover and link over raw Ethernet frames.
    pub ethernet: bool,
}

impl DiscoveryRule {
    /// UDP discovery on every interface, as `--autoconf` runs.
    pub fn everywhere() -> Self {
        Self {
            interfaces: regex_lite::Regex::new("^(?:.*)$").expect("constant regex"),
            beacon: true,
            listen: true,
            port: 0,
            password: None,
            priority: 0,
            udp: true,
            ethernet: false,
        }
    }
}

impl Default for Daemon {
    fn default() -> Self {
        Self {
            tun_name: Some(DEFAULT_TUN_NAME.to_owned()),
            tun_mtu: DEFAULT_TUN_MTU,
            peers: Vec::new(),
            listen: Vec::new(),
            allowed_public_keys: Vec::new(),
            group_password: None,
            discovery: Vec::new(),
            api_socket: Some(PathBuf::from(DEFAULT_API_SOCKET)),
            api_group: None,
            user: None,
            group: None,
            crdt: super::CrdtSettings::default(),
            identity: super::IdentitySettings::default(),
            firewall: crate::core::firewall::Settings::default(),
            lan: Vec::new(),
            lan_default_route: false,
            name: None,
            dns: super::DnsSettings::default(),
            nodeinfo: format!(
                "{{\"software\":\"meshrouter\",\"version\":\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            ),
            blobs: super::BlobSettings::default(),
            apps: super::AppSettings::default(),
            max_links: DEFAULT_MAX_LINKS,
            metrics_listen: None,
            status_listen: Vec::new(),
            config_path: None,
        }
    }
}

/// Validates `raw`; `error` turns a span and a problem into a located error.
pub(super) fn validate(
    raw: super::RawConfig,
    error: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<Daemon, ConfigError> {
    let invalid = |s: std::ops::Range<usize>, m: String| error(s, m);
    let mut daemon = Daemon::default();
    if let Some(name) = raw.tun_name {
        let text = name.get_ref();
        daemon.tun_name = match text.as_str() {
            "none" => None,
            "auto" => Some(DEFAULT_TUN_NAME.to_owned()),
            n if is_interface_name(n) => Some(n.to_owned()),
            _ => {
                return Err(invalid(
                    name.span(),
                    "tun_name: expected an interface name of 1 to 15 characters, \"auto\" or \"none\""
                        .into(),
                ));
            }
        };
    }
    if let Some(mtu) = raw.tun_mtu {
        if !(DEFAULT_TUN_MTU..=MAX_TUN_MTU).contains(mtu.get_ref()) {
            return Err(invalid(
                mtu.span(),
                format!("tun_mtu: must be {DEFAULT_TUN_MTU} to {MAX_TUN_MTU}"),
            ));
        }
        daemon.tun_mtu = *mtu.get_ref();
    }
    let uris = |list: Vec<Spanned<String>>, what: &str| -> Result<Vec<LinkUri>, ConfigError> {
        list.into_iter()
            .map(|s| {
                LinkUri::parse(s.get_ref()).map_err(|e| invalid(s.span(), format!("{what}: {e}")))
            })
            .collect()
    };
    daemon.peers = uris(raw.peers, "peers")?;
    daemon.listen = uris(raw.listen, "listen")?;
    for key in raw.allowed_public_keys {
        daemon.allowed_public_keys.push(
            PublicKey::from_hex(key.get_ref())
                .map_err(|e| invalid(key.span(), format!("allowed_public_keys: {e}")))?,
        );
    }
    if let Some(p) = raw.group_password {
        daemon.group_password = Some(password(&p, "group_password", &invalid)?);
    }
    for d in raw.discovery {
        daemon.discovery.push(discovery_rule(d, &invalid)?);
    }
    if let Some(path) = raw.api_socket {
        daemon.api_socket = (path.as_os_str() != "none").then_some(path);
    }
    for name in raw.lan {
        let text = name.get_ref();
        if !is_interface_name(text) {
            return Err(invalid(
                name.span(),
                "lan: expected interface names of 1 to 15 characters".into(),
            ));
        }
        if daemon.tun_name.as_deref() == Some(text.as_str()) {
            return Err(invalid(
                name.span(),
                "lan: the TUN interface cannot be a LAN".into(),
            ));
        }
        if daemon.lan.contains(text) {
            return Err(invalid(name.span(), format!("lan: {text} is listed twice")));
        }
        daemon.lan.push(text.clone());
    }
    daemon.lan_default_route = raw.lan_default_route;
    if let Some(limit) = raw.max_links {
        daemon.max_links = usize::try_from(*limit.get_ref())
            .ok()
            .filter(|n| (1..=MAX_MAX_LINKS).contains(n))
            .ok_or_else(|| {
                invalid(
                    limit.span(),
                    format!("max_links: must be 1 to {MAX_MAX_LINKS}"),
                )
            })?;
    }
    for address in raw.status_listen {
        daemon.status_listen.push(address.get_ref().parse().map_err(|_| {
            invalid(
                address.span(),
                "status_listen: expected addresses and ports, like \"[2001:db8::1]:8090\" or \"0.0.0.0:8090\"".into(),
            )
        })?);
    }
    if let Some(address) = raw.metrics_listen {
        daemon.metrics_listen = Some(address.get_ref().parse().map_err(|_| {
            invalid(
                address.span(),
                "metrics_listen: expected an address and port, like \"[::1]:9464\"".into(),
            )
        })?);
    }
    daemon.api_group = raw.api_group;
    daemon.user = raw.user;
    daemon.group = raw.group;
    Ok(daemon)
}

/// What Linux accepts as an interface name (`IFNAMSIZ` less the terminating zero, no `/` or blanks);
/// `%` is refused too, as it would read as a zone in an address.
fn is_interface_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 15 && !name.contains(['/', ' ', '%', ':'])
}

fn password(
    value: &Spanned<String>,
    what: &str,
    invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<Vec<u8>, ConfigError> {
    let bytes = value.get_ref().as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_PASSWORD_LEN {
        return Err(invalid(
            value.span(),
            format!("{what}: must be 1 to {MAX_PASSWORD_LEN} bytes"),
        ));
    }
    Ok(bytes.to_vec())
}

fn discovery_rule(
    d: RawDiscovery,
    invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<DiscoveryRule, ConfigError> {
    let interfaces =
        regex_lite::Regex::new(&format!("^(?:{})$", d.interfaces.get_ref())).map_err(|e| {
            let first = e.to_string().lines().last().unwrap_or("").trim().to_owned();
            invalid(
                d.interfaces.span(),
                format!("discovery.interfaces: bad regex: {first}"),
            )
        })?;
    let (udp, ethernet) = match &d.transport {
        None => (true, false),
        Some(t) => match t.get_ref().as_str() {
            "udp" => (true, false),
            "ethernet" => (false, true),
            "both" => (true, true),
            _ => {
                return Err(invalid(
                    t.span(),
                    "discovery.transport: expected \"udp\", \"ethernet\" or \"both\"".into(),
                ));
            }
        },
    };
    let password = match &d.password {
        Some(p) => Some(password(p, "discovery.password", invalid)?),
        None => None,
    };
    Ok(DiscoveryRule {
        interfaces,
        beacon: d.beacon,
        listen: d.listen,
        port: d.port,
        password,
        priority: d.priority,
        udp,
        ethernet,
    })
}
