//! The TOML configuration file.
//!
//! Every key is optional and has a default; unknown keys are refused so that a typo is an error rather
//! than a silently ignored setting. Errors name the file, the line and column, and the key, on one line.
//! `config.example.toml` at the top of the repository documents every key; `meshrouter genconf` prints it
//! with a fresh key filled in.

mod apps;
mod blobs;
mod crdt;
mod daemon;
mod dns;
mod error;
mod firewall;
mod identity;
mod key_file;
mod link_uri;
mod nodeinfo;
mod scheme;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use self::apps::{AppSettings, MAX_APP_ADDRESSES};
pub use self::blobs::{BlobSettings, DEFAULT_BLOB_STORE};
pub use self::crdt::{CrdtSettings, DEFAULT_CRDT_DATABASE};
pub use self::daemon::{
    DEFAULT_API_SOCKET, DEFAULT_TUN_MTU, DEFAULT_TUN_NAME, Daemon, DiscoveryRule,
};
pub use self::dns::{DNS_PORT, DnsSettings, MAX_DNS_ADDRESSES};
pub use self::error::{ConfigError, ConfigErrorKind};
pub use self::identity::IdentitySettings;
pub use self::link_uri::{LinkUri, LinkUriError};
pub use self::scheme::Scheme;
use crate::core::identity::NodeKey;

/// The documented example configuration; `genconf` fills in its key line.
pub const EXAMPLE: &str = include_str!("../../config.example.toml");
/// The line of [`EXAMPLE`] that `genconf` replaces with a real key when it prints the key inline.
pub const EXAMPLE_KEY_LINE: &str = "# private_key = \"\"";
/// The line of [`EXAMPLE`] that `genconf` replaces with the key file it wrote.
pub const EXAMPLE_KEY_FILE_LINE: &str = "# private_key_file = \"\"";
/// The line of [`EXAMPLE`] that `genconf --user` replaces with the daemon's user.
pub const EXAMPLE_USER_LINE: &str = "# user = \"meshrouter\"";
/// Configuration files larger than this are refused before parsing: no real config comes close.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The configuration as written in the file, before the key is resolved.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The node key as hex (seed or Yggdrasil `PrivateKey`).
    #[serde(default)]
    pub private_key: Option<Spanned<String>>,
    /// A file holding the node key (hex or PEM PKCS#8). Relative paths are relative to the config file.
    #[serde(default)]
    pub private_key_file: Option<Spanned<PathBuf>>,
    tun_name: Option<Spanned<String>>,
    tun_mtu: Option<Spanned<u16>>,
    #[serde(default)]
    peers: Vec<Spanned<String>>,
    #[serde(default)]
    listen: Vec<Spanned<String>>,
    #[serde(default)]
    allowed_public_keys: Vec<Spanned<String>>,
    group_password: Option<Spanned<String>>,
    #[serde(default)]
    discovery: Vec<daemon::RawDiscovery>,
    api_socket: Option<PathBuf>,
    api_group: Option<String>,
    user: Option<String>,
    group: Option<String>,
    crdt: Option<crdt::RawCrdt>,
    identity: Option<identity::RawIdentity>,
    firewall: Option<firewall::RawFirewall>,
    #[serde(default)]
    lan: Vec<Spanned<String>>,
    #[serde(default)]
    lan_default_route: bool,
    name: Option<Spanned<String>>,
    dns: Option<dns::RawDns>,
    nodeinfo: Option<Spanned<toml::Table>>,
    blobs: Option<blobs::RawBlobs>,
    apps: Option<apps::RawApps>,
    #[serde(default)]
    nodeinfo_privacy: bool,
    max_links: Option<Spanned<i64>>,
    metrics_listen: Option<Spanned<String>>,
    #[serde(default)]
    status_listen: Vec<Spanned<String>>,
}

/// A loaded configuration with its node key resolved.
pub struct Config {
    /// The node's key pair.
    pub node_key: NodeKey,
    /// Daemon settings.
    pub daemon: Daemon,
    /// Things worth telling the operator that do not stop the node (e.g. a world-readable inline key).
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads, parses and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read_bounded(path, MAX_CONFIG_BYTES).map_err(|e| ConfigError::io(path, e))?;
        let mut config = Self::from_toml(&text, path)?;
        config.daemon.config_path = Some(path.to_path_buf());
        if let Some(readers) = config_exposes_inline_key(path, &text) {
            config.warnings.push(format!(
                "{}: holds private_key and is readable by {readers}, who can then act as this node; move the key to its own \
                 file (private_key_file, mode 0600: `meshrouter genconf --output` writes a configuration that way) or chmod 600 it",
                path.display()
            ));
        }
        Ok(config)
    }

    /// Parses and validates configuration text; `origin` names the file in errors and anchors relative
    /// paths.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::syntax(origin, text, &e))?;
        let node_key = resolve_node_key(&raw, text, origin)?;
        let located =
            |span, message| ConfigError::at(origin, text, span, ConfigErrorKind::Invalid(message));
        let mut raw = raw;
        let crdt = crdt::validate(raw.crdt.take(), &located)?;
        let identity = identity::validate(raw.identity.take(), &located)?;
        let firewall = firewall::validate(raw.firewall.take(), &located)?;
        let name = dns::name(raw.name.take(), &located)?;
        let dns = dns::validate(raw.dns.take(), &located)?;
        let blobs = blobs::validate(raw.blobs.take(), &located)?;
        let apps = apps::validate(raw.apps.take(), &located)?;
        let nodeinfo = nodeinfo::validate(
            raw.nodeinfo.take(),
            raw.nodeinfo_privacy,
            name.as_deref(),
            &located,
        )?;
        let mut daemon = daemon::validate(raw, &located)?;
        daemon.crdt = crdt;
        daemon.identity = identity;
        daemon.firewall = firewall;
        daemon.name = name;
        daemon.dns = dns;
        daemon.nodeinfo = nodeinfo;
        daemon.blobs = blobs;
        daemon.apps = apps;
        Ok(Self {
            node_key,
            daemon,
            warnings: Vec::new(),
        })
    }

    /// The configuration `run --autoconf` uses: `node_key` (fresh, in memory), the default TUN device,
    /// and UDP discovery on every interface.
    pub fn autoconf(node_key: NodeKey) -> Self {
        Self {
            node_key,
            daemon: Daemon {
                discovery: vec![DiscoveryRule::everywhere()],
                ..Daemon::default()
            },
            warnings: Vec::new(),
        }
    }
}

fn resolve_node_key(raw: &RawConfig, text: &str, origin: &Path) -> Result<NodeKey, ConfigError> {
    match (&raw.private_key, &raw.private_key_file) {
        (Some(_), Some(file)) => Err(ConfigError::at(
            origin,
            text,
            file.span(),
            ConfigErrorKind::TwoKeys,
        )),
        (Some(hex), None) => NodeKey::from_hex(hex.get_ref())
            .map_err(|e| ConfigError::at(origin, text, hex.span(), ConfigErrorKind::Key(e))),
        (None, Some(file)) => {
            let path = origin
                .parent()
                .unwrap_or(Path::new("."))
                .join(file.get_ref());
            key_file::read(&path).map_err(|kind| ConfigError::at(origin, text, file.span(), kind))
        }
        (None, None) => Err(ConfigError::whole_file(origin, ConfigErrorKind::NoKey)),
    }
}

/// Reads a whole file, refusing one larger than `limit` bytes.
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(text)
}

/// Who besides the file's owner can read an inline `private_key`, if anyone: every user, or the
/// members of the file's group (such as the daemon's group, which may be the API's too).
fn config_exposes_inline_key(path: &Path, text: &str) -> Option<&'static str> {
    use std::os::unix::fs::PermissionsExt;
    let has_inline_key =
        toml::from_str::<RawConfig>(text).is_ok_and(|raw| raw.private_key.is_some());
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    match () {
        () if !has_inline_key => None,
        () if mode & 0o004 != 0 => Some("every user"),
        () if mode & 0o040 != 0 => Some("the members of its group"),
        () => None,
    }
}

#[cfg(test)]
mod tests;
