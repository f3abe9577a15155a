//! Link URIs: how peers and listeners are written in the configuration and on the command line.
//!
//! ```text
//! SCHEME://HOST:PORT?key=HEX&password=SECRET&priority=N&interface=IFNAME&mtu=N
//! udp://[2001:db8::1]:9100   udp://[fe80::1%eth0]:9100   tcp://peer.example:9100   tls://0.0.0.0:443
//! ```
//! The scheme ([`Scheme`]) picks the transport. `key` may repeat (any of them is accepted). Query
//! values are percent-decoded, so a password can hold `&` or `=` as `%26` and `%3D`. The same syntax
//! serves listeners, where only `password`, `priority`, `interface` and `mtu` make sense. `mtu` is for
//! datagram transports only: a stream link carries whole super-packets.

use std::fmt;

use super::scheme::Scheme;
use crate::core::identity::PublicKey;

/// Smallest link MTU accepted: a link must carry a 1280-byte IPv6 packet in at most a few fragments.
pub(super) const MIN_LINK_MTU: usize = 576;
/// Largest link MTU accepted (a jumbo frame).
pub(super) const MAX_LINK_MTU: usize = 9000;
/// Longest password accepted, in bytes.
pub(super) const MAX_PASSWORD_LEN: usize = 64;

/// A parsed link URI.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkUri {
    /// The text as written, for display and for `removepeer`.
    pub text: String,
    /// The transport.
    pub scheme: Scheme,
    /// Host name or IP address literal (without brackets; a zone stays as `%zone`).
    pub host: String,
    /// UDP or TCP port.
    pub port: u16,
    /// Accepted peer keys (pinning); empty accepts any key.
    pub keys: Vec<PublicKey>,
    /// Link password.
    pub password: Option<Vec<u8>>,
    /// Lower is preferred among parallel links.
    pub priority: u8,
    /// Interface to bind the socket to (`SO_BINDTODEVICE`).
    pub interface: Option<String>,
    /// Largest datagram sent on the link.
    pub mtu: Option<usize>,
}

impl fmt::Debug for LinkUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkUri({})", self.display())
    }
}

/// Why a link URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkUriError {
    /// Not one of [`Scheme::ALL`].
    #[error("unsupported scheme in {0:?}: expected udp://, tcp:// or tls:// and HOST:PORT")]
    Scheme(String),
    /// `tls://` in a build without TLS.
    #[error(
        "tls:// links need a meshrouter built with TLS (cargo feature \"tls\"); use tcp:// or udp://"
    )]
    NoTls,
    /// The host or port is missing or malformed.
    #[error("bad address {0:?}: expected HOST:PORT or [IPV6]:PORT")]
    Address(String),
    /// A query parameter is unknown or its value is bad.
    #[error("bad parameter {name:?}: {reason}")]
    Parameter {
        /// The parameter.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

impl LinkUri {
    /// Parses a URI.
    pub fn parse(text: &str) -> Result<Self, LinkUriError> {
        let (scheme, rest) =
            Scheme::split(text).ok_or_else(|| LinkUriError::Scheme(text.to_owned()))?;
        if scheme == Scheme::Tls && !cfg!(feature = "tls") {
            return Err(LinkUriError::NoTls);
        }
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| LinkUriError::Address(authority.to_owned()))?;
        let mut uri = Self {
            text: text.to_owned(),
            scheme,
            host,
            port,
            keys: Vec::new(),
            password: None,
            priority: 0,
            interface: None,
            mtu: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            uri.set(name, &percent_decode(name, value)?)?;
        }
        Ok(uri)
    }

    fn set(&mut self, name: &str, value: &[u8]) -> Result<(), LinkUriError> {
        let bad = |reason: &str| LinkUriError::Parameter {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let text = std::str::from_utf8(value).map_err(|_| bad("not UTF-8"))?;
        match name {
            "key" => self.keys.push(
                PublicKey::from_hex(text).map_err(|e| bad(&format!("not a public key: {e}")))?,
            ),
            "password" => {
                if value.is_empty() || value.len() > MAX_PASSWORD_LEN {
                    return Err(bad("must be 1 to 64 bytes"));
                }
                self.password = Some(value.to_vec());
            }
            "priority" => {
                self.priority = text.parse().map_err(|_| bad("expected 0 to 255"))?;
            }
            "interface" => {
                if text.is_empty() || text.len() > 15 || text.contains('/') {
                    return Err(bad("not an interface name"));
                }
                self.interface = Some(text.to_owned());
            }
            "mtu" if self.scheme.is_stream() => {
                return Err(bad(&format!(
                    "{}:// links carry whole packets: no mtu to set",
                    self.scheme
                )));
            }
            "mtu" => {
                let mtu: usize = text.parse().map_err(|_| bad("expected a number"))?;
                if !(MIN_LINK_MTU..=MAX_LINK_MTU).contains(&mtu) {
                    return Err(bad(&format!("must be {MIN_LINK_MTU} to {MAX_LINK_MTU}")));
                }
                self.mtu = Some(mtu);
            }
            _ => {
                return Err(bad(
                    "unknown (known: key, password, priority, interface, mtu)",
                ));
            }
        }
        Ok(())
    }

    /// The URI without its query (which may hold a password): safe to show and to log.
    pub fn display(&self) -> String {
        self.text
            .split_once('?')
            .map_or(self.text.as_str(), |(base, _)| base)
            .to_owned()
    }
}

/// Splits `host:port` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':')?)
    } else {
        let (host, port) = authority.rsplit_once(':')?;
        if host.contains(':') {
            return None;
        }
        (host, port)
    };
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

fn percent_decode(name: &str, value: &str) -> Result<Vec<u8>, LinkUriError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| LinkUriError::Parameter {
                    name: name.to_owned(),
                    reason: "bad percent escape".to_owned(),
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ffbbc89ea3b287796ada7a79689641e27b782b79b461c1063ba8d4a594115013";

    #[test]
    fn parses_every_form() {
        let u = LinkUri::parse(&format!(
            "udp://[2001:db8::1]:9100?key={KEY}&password=a%26b&priority=3&interface=eth0&mtu=1400"
        ))
        .unwrap();
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 9100));
        assert_eq!(u.keys.len(), 1);
        assert_eq!(u.password.as_deref(), Some(&b"a&b"[..]));
        assert_eq!((u.priority, u.mtu), (3, Some(1400)));
        assert_eq!(u.interface.as_deref(), Some("eth0"));
        assert_eq!(u.display(), "udp://[2001:db8::1]:9100");
        let u = LinkUri::parse("udp://10.0.0.1:1").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.1", 1));
        let u = LinkUri::parse("udp://[fe80::1%eth0]:9").unwrap();
        assert_eq!(u.host, "fe80::1%eth0");
        assert!(LinkUri::parse("udp://peer.example:9100/").is_ok());
        let u = LinkUri::parse(&format!("tls://peer.example:443?key={KEY}&priority=2")).unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (Scheme::Tls, "peer.example", 443)
        );
        assert_eq!((u.keys.len(), u.priority), (1, 2));
        assert_eq!(u.display(), "tls://peer.example:443");
        let u = LinkUri::parse("tcp://[::]:9100?password=x&interface=eth1").unwrap();
        assert_eq!((u.scheme, u.host.as_str()), (Scheme::Tcp, "::"));
        assert_eq!(LinkUri::parse("udp://h:1").unwrap().scheme, Scheme::Udp);
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            "quic://1.2.3.4:5",
            "udp:/1.2.3.4:5",
            "tcp://1.2.3.4:5?mtu=1400",
            "tls://1.2.3.4",
            "udp://1.2.3.4",
            "udp://2001:db8::1:9100",
            "udp://[::1]",
            "udp://:9",
            "udp://h:99999",
            "udp://h:1?key=zz",
            "udp://h:1?priority=256",
            "udp://h:1?mtu=100",
            "udp://h:1?password=",
            "udp://h:1?password=%zz",
            "udp://h:1?colour=red",
            "udp://h:1?interface=a/b",
        ] {
            assert!(LinkUri::parse(bad).is_err(), "{bad} accepted");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in ".{0,80}") {
            for scheme in Scheme::ALL {
                let _ = LinkUri::parse(&format!("{scheme}://{text}"));
            }
        }
    }
}
