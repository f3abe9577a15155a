//! Firewall rules: what a rule matches and what it does. Rules are tried in order; the first that
//! matches decides, and the direction's default policy decides the rest.

use std::net::Ipv6Addr;

use super::packet::{ECHO_REQUEST, Packet, Upper, proto};
use crate::core::address::{node_address, node_subnet};
use crate::core::identity::PublicKey;

/// What a rule (or a default policy) does with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it through (and track its connection).
    Allow,
    /// Drop it silently.
    Deny,
    /// Drop it and tell the sender (ICMPv6 destination unreachable, administratively prohibited).
    Reject,
}

impl Action {
    /// From its name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "allow" => Some(Action::Allow),
            "deny" => Some(Action::Deny),
            "reject" => Some(Action::Reject),
            _ => None,
        }
    }
}

/// Which traffic a rule judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Arriving over the overlay for this node's address or its /64.
    In,
    /// Leaving this node (or a host behind it) into the overlay.
    Out,
}

/// An IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// The network (bits past `len` are zero).
    pub network: Ipv6Addr,
    /// Its length, 0 to 128.
    pub len: u8,
}

impl Prefix {
    /// `addr/len`, or an address alone (a /128).
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().ok().filter(|l| *l <= 128)?),
            None => (text, 128),
        };
        let addr: Ipv6Addr = addr.parse().ok()?;
        Some(Self::new(addr, len))
    }

    /// The prefix of length `len` (at most 128) containing `addr`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Self {
        let len = len.min(128);
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        Self {
            network: Ipv6Addr::from(u128::from(addr) & mask),
            len,
        }
    }

    /// Whether `addr` is in it.
    pub fn contains(&self, addr: &Ipv6Addr) -> bool {
        Self::new(*addr, self.len).network == self.network
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

/// Who is on the other side of a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A node key: the sender of inbound packets; for outbound ones, the node whose address or /64
    /// the destination is.
    Key(PublicKey),
    /// An address or prefix of the other side.
    Prefix(Prefix),
}

impl Peer {
    fn matches(&self, direction: Direction, remote: &Ipv6Addr, key: Option<&PublicKey>) -> bool {
        match self {
            Peer::Key(k) => match direction {
                Direction::In => key == Some(k),
                Direction::Out => node_address(k) == *remote || node_subnet(k).contains(remote),
            },
            Peer::Prefix(p) => p.contains(remote),
        }
    }
}

/// Which protocol a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Any.
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Any ICMPv6.
    Icmp,
    /// ICMPv6 echo requests (ping).
    Ping,
}

impl Protocol {
    /// From its name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "any" => Some(Protocol::Any),
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "icmp" | "icmpv6" => Some(Protocol::Icmp),
            "ping" => Some(Protocol::Ping),
            _ => None,
        }
    }

    fn matches(self, upper: &Upper) -> bool {
        match self {
            Protocol::Any => true,
            Protocol::Tcp => upper.protocol() == proto::TCP,
            Protocol::Udp => upper.protocol() == proto::UDP,
            Protocol::Icmp => upper.protocol() == proto::ICMPV6,
            Protocol::Ping => matches!(
                upper,
                Upper::Icmp {
                    kind: ECHO_REQUEST,
                    ..
                }
            ),
        }
    }
}

/// A range of ports, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

impl Ports {
    /// `"22"` or `"8000-8100"`.
    pub fn parse(text: &str) -> Option<Self> {
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let p = text.trim().parse().ok()?;
                (p, p)
            }
        };
        (first <= last).then_some(Self { first, last })
    }

    fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl std::fmt::Display for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// What the firewall knows of who holds which roles (the identity registry's view): node keys
/// enrolled as members, with their roles.
pub trait Roles {
    /// Whether `key` holds `role`.
    fn has_role(&self, key: &PublicKey, role: &str) -> bool;
}

/// No registry: nobody holds a role.
impl Roles for () {
    fn has_role(&self, _: &PublicKey, _: &str) -> bool {
        false
    }
}

impl Roles for std::collections::HashMap<PublicKey, Vec<String>> {
    fn has_role(&self, key: &PublicKey, role: &str) -> bool {
        self.get(key)
            .is_some_and(|roles| roles.iter().any(|r| r == role))
    }
}

/// One rule. Empty lists match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Which traffic it judges.
    pub direction: Direction,
    /// What it does.
    pub action: Action,
    /// The other side: any of these (keys, did:keys, prefixes).
    pub peers: Vec<Peer>,
    /// The other side holds one of these roles (inbound only: an outbound packet's destination
    /// key is not known from the packet).
    pub roles: Vec<String>,
    /// This side: the addresses (of this node, or of hosts behind it) it is about.
    pub local: Vec<Prefix>,
    /// The protocol.
    pub protocol: Protocol,
    /// Destination ports (TCP, UDP).
    pub ports: Option<Ports>,
    /// The operator's note, shown with the rule.
    pub comment: String,
}

impl Rule {
    /// Whether the rule matches `packet` going `direction`, from or to `key` (inbound: the
    /// sender's key).
    pub fn matches(
        &self,
        direction: Direction,
        packet: &Packet,
        key: Option<&PublicKey>,
        roles: &dyn Roles,
    ) -> bool {
        let (local, remote) = match direction {
            Direction::In => (&packet.destination, &packet.source),
            Direction::Out => (&packet.source, &packet.destination),
        };
        self.direction == direction
            && self.protocol.matches(&packet.upper)
            && self.ports.is_none_or(|p| {
                packet
                    .upper
                    .destination_port()
                    .is_some_and(|d| p.contains(d))
            })
            && (self.peers.is_empty()
                || self.peers.iter().any(|p| p.matches(direction, remote, key)))
            && (self.roles.is_empty()
                || (direction == Direction::In
                    && key.is_some_and(|k| self.roles.iter().any(|r| roles.has_role(k, r)))))
            && (self.local.is_empty() || self.local.iter().any(|p| p.contains(local)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_ports_parse_and_contain() {
        let p = Prefix::parse("300:1:2:3::/64").unwrap();
        assert!(p.contains(&"300:1:2:3::42".parse().unwrap()));
        assert!(!p.contains(&"300:1:2:4::42".parse().unwrap()));
        assert_eq!(p.to_string(), "300:1:2:3::/64");
        assert_eq!(Prefix::parse("::/0").unwrap().len, 0);
        assert!(
            Prefix::parse("::/0")
                .unwrap()
                .contains(&"200::1".parse().unwrap())
        );
        assert_eq!(Prefix::parse("200::1").unwrap().len, 128);
        for bad in ["", "200::/129", "x/64", "10.0.0.0/8", "200::/-1"] {
            assert!(Prefix::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            Ports::parse("8000-8100"),
            Some(Ports {
                first: 8000,
                last: 8100
            })
        );
        assert_eq!(Ports::parse("22").unwrap().to_string(), "22");
        for bad in ["", "9-1", "70000", "a", "1-"] {
            assert!(Ports::parse(bad).is_none(), "{bad}");
        }
    }
}
