//! Router Advertisements for a LAN behind a node (RFC 4861 §4.2), with the options phones and
//! laptops need to join the mesh with no app: the node's /64 for SLAAC (Prefix Information, §4.6.2),
//! routes to the mesh (Route Information, RFC 4191 §2.3: `200::/7` and `300::/8`), and the node as
//! DNS server (RDNSS, RFC 8106 §5.1). Also reads Router Solicitations (RFC 4861 §4.1). Messages
//! are the ICMPv6 body: a raw ICMPv6 socket adds the IPv6 header and the checksum.

use std::net::Ipv6Addr;
use std::time::Duration;

/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;

/// The mesh's address blocks, announced as routes: node addresses and routed /64s.
pub const MESH_ROUTES: [(Ipv6Addr, u8); 2] = [
    (Ipv6Addr::new(0x200, 0, 0, 0, 0, 0, 0, 0), 7),
    (Ipv6Addr::new(0x300, 0, 0, 0, 0, 0, 0, 0), 8),
];

/// What an advertisement says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// The node's /64 on this LAN (SLAAC).
    pub prefix: Ipv6Addr,
    /// The interface's link-layer address (Source Link-Layer Address option), if it has one.
    pub link_layer: Option<[u8; 6]>,
    /// How long hosts may use this node as their default router (0: not a default router).
    pub router_lifetime: Duration,
    /// How long the routes to the mesh hold.
    pub route_lifetime: Duration,
    /// The prefix's valid and preferred lifetimes.
    pub prefix_lifetimes: (Duration, Duration),
    /// DNS servers to announce (RDNSS), with their lifetime.
    pub dns: Vec<Ipv6Addr>,
    /// See `dns`.
    pub dns_lifetime: Duration,
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl Advertisement {
    /// The same advertisement saying goodbye: the node is no router, its routes and DNS server
    /// are gone (RFC 4861 §6.2.5: a router that stops advertising sends lifetime 0); the prefix's
    /// addresses stop being preferred.
    pub fn withdrawn(&self) -> Self {
        Self {
            router_lifetime: Duration::ZERO,
            route_lifetime: Duration::ZERO,
            prefix_lifetimes: (
                self.prefix_lifetimes.0.min(Duration::from_secs(7200)),
                Duration::ZERO,
            ),
            dns_lifetime: Duration::ZERO,
            ..self.clone()
        }
    }

    /// The ICMPv6 message (checksum zero: the socket fills it in).
    pub fn encode(&self) -> Vec<u8> {
        let mut m = vec![ROUTER_ADVERTISEMENT, 0, 0, 0];
        // Cur hop limit 64; no managed or other-config flags; router lifetime (16 bits, at most
        // 9000 s); reachable time and retransmit timer unspecified.
        m.push(64);
        m.push(0);
        let lifetime = secs(self.router_lifetime).min(9000) as u16;
        m.extend_from_slice(&lifetime.to_be_bytes());
        m.extend_from_slice(&[0; 8]);
        if let Some(mac) = self.link_layer {
            m.extend_from_slice(&[1, 1]);
            m.extend_from_slice(&mac);
        }
        // Prefix information: /64, on-link and autonomous.
        m.extend_from_slice(&[3, 4, 64, 0xc0]);
        m.extend_from_slice(&secs(self.prefix_lifetimes.0).to_be_bytes());
        m.extend_from_slice(&secs(self.prefix_lifetimes.1).to_be_bytes());
        m.extend_from_slice(&[0; 4]);
        m.extend_from_slice(&self.prefix.octets());
        for (network, len) in MESH_ROUTES {
            // Route information: 16 bytes of prefix (length 3) for simplicity, medium preference.
            m.extend_from_slice(&[24, 3, len, 0]);
            m.extend_from_slice(&secs(self.route_lifetime).to_be_bytes());
            m.extend_from_slice(&network.octets());
        }
        if !self.dns.is_empty() {
            m.extend_from_slice(&[25, 1 + 2 * self.dns.len() as u8, 0, 0]);
            m.extend_from_slice(&secs(self.dns_lifetime).to_be_bytes());
            for server in &self.dns {
                m.extend_from_slice(&server.octets());
            }
        }
        m
    }
}

/// Why an ICMPv6 message is not a usable Router Solicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadSolicitation {
    /// Another ICMPv6 type, or a code other than 0.
    #[error("not a router solicitation")]
    NotSolicitation,
    /// Shorter than its header, or an option of length 0 or past the end.
    #[error("malformed")]
    Malformed,
}

/// Reads a Router Solicitation (the ICMPv6 message): the sender's link-layer address if it gave
/// one. RFC 4861 §6.1.1's checks that need the IPv6 header (hop limit 255) are the caller's.
pub fn parse_solicitation(message: &[u8]) -> Result<Option<Vec<u8>>, BadSolicitation> {
    if message.len() < 8 {
        return Err(BadSolicitation::Malformed);
    }
    if message[0] != ROUTER_SOLICITATION || message[1] != 0 {
        return Err(BadSolicitation::NotSolicitation);
    }
    let mut options = &message[8..];
    let mut link_layer = None;
    while !options.is_empty() {
        let (kind, len) = match options {
            [kind, len, ..] => (*kind, usize::from(*len) * 8),
            _ => return Err(BadSolicitation::Malformed),
        };
        if len == 0 || len > options.len() {
            return Err(BadSolicitation::Malformed);
        }
        if kind == 1 {
            link_layer = Some(options[2..len].to_vec());
        }
        options = &options[len..];
    }
    Ok(link_layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advertisement() -> Advertisement {
        Advertisement {
            prefix: "300:1234:5678:9abc::".parse().unwrap(),
            link_layer: Some([2, 0, 0, 0, 0, 1]),
            router_lifetime: Duration::ZERO,
            route_lifetime: Duration::from_secs(1800),
            prefix_lifetimes: (Duration::from_secs(86400), Duration::from_secs(14400)),
            dns: vec!["300:1234:5678:9abc::1".parse().unwrap()],
            dns_lifetime: Duration::from_secs(1800),
        }
    }

    /// The options of an advertisement, as (type, body).
    fn options(m: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = &m[16..];
        while !rest.is_empty() {
            let len = usize::from(rest[1]) * 8;
            out.push((rest[0], rest[2..len].to_vec()));
            rest = &rest[len..];
        }
        out
    }

    #[test]
    fn an_advertisement_carries_the_prefix_the_mesh_routes_and_the_dns_server() {
        let m = advertisement().encode();
        assert_eq!(&m[..4], &[ROUTER_ADVERTISEMENT, 0, 0, 0]);
        assert_eq!(m[4], 64);
        assert_eq!(&m[6..8], &[0, 0], "not a default router");
        let opts = options(&m);
        assert_eq!(
            opts.iter().map(|o| o.0).collect::<Vec<_>>(),
            [1, 3, 24, 24, 25]
        );
        let prefix = &opts[1].1;
        assert_eq!(prefix[0], 64);
        assert_eq!(prefix[1], 0xc0, "on-link and autonomous");
        assert_eq!(&prefix[2..6], &86400u32.to_be_bytes());
        assert_eq!(&prefix[6..10], &14400u32.to_be_bytes());
        assert_eq!(&prefix[14..30], &advertisement().prefix.octets());
        assert_eq!(opts[2].1[0], 7);
        assert_eq!(&opts[2].1[6..22], &MESH_ROUTES[0].0.octets());
        assert_eq!(opts[3].1[0], 8);
        assert_eq!(&opts[4].1[2..6], &1800u32.to_be_bytes());
        assert_eq!(&opts[4].1[6..22], &advertisement().dns[0].octets());
        let gone = advertisement().withdrawn().encode();
        let gone_opts = options(&gone);
        assert_eq!(&gone_opts[2].1[2..6], &[0; 4], "the routes end");
        assert_eq!(&gone_opts[4].1[2..6], &[0; 4], "the DNS server ends");
        let mut default = advertisement();
        default.router_lifetime = Duration::from_secs(100_000);
        assert_eq!(&default.encode()[6..8], &9000u16.to_be_bytes());
    }

    #[test]
    fn solicitations_are_read_and_junk_is_refused() {
        let mut rs = vec![ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse_solicitation(&rs), Ok(None));
        rs.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 9]);
        assert_eq!(parse_solicitation(&rs), Ok(Some(vec![2, 0, 0, 0, 0, 9])));
        assert_eq!(
            parse_solicitation(&advertisement().encode()),
            Err(BadSolicitation::NotSolicitation)
        );
        for bad in [
            &rs[..4],
            &[133, 0, 0, 0, 0, 0, 0, 0, 1, 0][..],
            &[133, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0][..],
        ] {
            assert_eq!(
                parse_solicitation(bad),
                Err(BadSolicitation::Malformed),
                "{bad:?}"
            );
        }
    }
}
