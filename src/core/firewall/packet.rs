//! What the firewall reads of an IPv6 packet: addresses, the upper-layer protocol past any extension
//! headers, ports (or an ICMPv6 echo identifier) and TCP flags. Total: any bytes give a packet or
//! an error, reading at most the headers.

use std::net::Ipv6Addr;

/// Extension headers skipped at most before the upper layer; more is refused as malformed.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// IP protocol numbers the firewall knows.
pub mod proto {
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// ICMPv6 echo request.
pub const ECHO_REQUEST: u8 = 128;
/// ICMPv6 echo reply.
pub const ECHO_REPLY: u8 = 129;

/// TCP flag bits the tracker follows.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// The upper layer of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upper {
    /// TCP, with its flags.
    Tcp {
        /// Source port.
        source: u16,
        /// Destination port.
        destination: u16,
        /// Flags (FIN, SYN, RST, ACK, ...).
        flags: u8,
    },
    /// UDP.
    Udp {
        /// Source port.
        source: u16,
        /// Destination port.
        destination: u16,
    },
    /// ICMPv6; `id` is the echo identifier of an echo request or reply.
    Icmp {
        /// Type.
        kind: u8,
        /// Code.
        code: u8,
        /// Echo identifier (echo request and reply only).
        id: Option<u16>,
    },
    /// Another protocol, or a fragment past the first: no ports.
    Other(u8),
}

impl Upper {
    /// The IP protocol number.
    pub fn protocol(&self) -> u8 {
        match self {
            Upper::Tcp { .. } => proto::TCP,
            Upper::Udp { .. } => proto::UDP,
            Upper::Icmp { .. } => proto::ICMPV6,
            Upper::Other(p) => *p,
        }
    }

    /// The destination port (TCP, UDP).
    pub fn destination_port(&self) -> Option<u16> {
        match self {
            Upper::Tcp { destination, .. } | Upper::Udp { destination, .. } => Some(*destination),
            _ => None,
        }
    }
}

/// The headers of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Source address.
    pub source: Ipv6Addr,
    /// Destination address.
    pub destination: Ipv6Addr,
    /// What it carries.
    pub upper: Upper,
    /// Where the upper layer starts (its header), in the packet.
    pub upper_offset: usize,
}

/// Why a packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Shorter than its headers.
    #[error("truncated")]
    Truncated,
    /// Not IPv6.
    #[error("not IPv6")]
    NotIpv6,
    /// More than [`MAX_EXTENSION_HEADERS`] extension headers.
    #[error("too many extension headers")]
    TooManyHeaders,
}

fn address(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[..16]);
    Ipv6Addr::from(octets)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Reads the headers of `packet`.
pub fn parse(packet: &[u8]) -> Result<Packet, Malformed> {
    parse_headers(packet, false)
}

/// Reads the headers of a packet quoted in an ICMPv6 error, which may end after the ports (RFC
/// 4443 quotes as much as fits; a router may quote less): a TCP header cut short has no flags.
pub fn parse_quoted(packet: &[u8]) -> Result<Packet, Malformed> {
    parse_headers(packet, true)
}

fn parse_headers(packet: &[u8], quoted: bool) -> Result<Packet, Malformed> {
    if packet.len() < 40 {
        return Err(Malformed::Truncated);
    }
    if packet[0] >> 4 != 6 {
        return Err(Malformed::NotIpv6);
    }
    let source = address(&packet[8..24]);
    let destination = address(&packet[24..40]);
    let mut next = packet[6];
    let mut at = 40;
    let mut first_fragment = true;
    for _ in 0..=MAX_EXTENSION_HEADERS {
        let header = packet.get(at..).ok_or(Malformed::Truncated)?;
        let length = match next {
            // Hop-by-hop, routing, destination options.
            0 | 43 | 60 => (usize::from(*header.get(1).ok_or(Malformed::Truncated)?) + 1) * 8,
            // Fragment: ports only in the first one.
            44 => {
                let offset = u16_at(header, 2).ok_or(Malformed::Truncated)? >> 3;
                first_fragment &= offset == 0;
                8
            }
            // Authentication header.
            51 => (usize::from(*header.get(1).ok_or(Malformed::Truncated)?) + 2) * 4,
            _ => {
                let upper = if first_fragment {
                    upper(next, header, quoted)?
                } else {
                    Upper::Other(next)
                };
                return Ok(Packet {
                    source,
                    destination,
                    upper,
                    upper_offset: at,
                });
            }
        };
        next = header[0];
        at += length;
    }
    Err(Malformed::TooManyHeaders)
}

fn upper(protocol: u8, header: &[u8], quoted: bool) -> Result<Upper, Malformed> {
    let short = Malformed::Truncated;
    Ok(match protocol {
        proto::TCP => Upper::Tcp {
            source: u16_at(header, 0).ok_or(short)?,
            destination: u16_at(header, 2).ok_or(short)?,
            flags: match header.get(13) {
                Some(flags) => *flags,
                None if quoted => 0,
                None => return Err(short),
            },
        },
        proto::UDP => Upper::Udp {
            source: u16_at(header, 0).ok_or(short)?,
            destination: u16_at(header, 2).ok_or(short)?,
        },
        proto::ICMPV6 => {
            let kind = *header.first().ok_or(short)?;
            let code = *header.get(1).ok_or(short)?;
            let id = match kind {
                ECHO_REQUEST | ECHO_REPLY => Some(u16_at(header, 4).ok_or(short)?),
                _ => None,
            };
            Upper::Icmp { kind, code, id }
        }
        other => Upper::Other(other),
    })
}

#[cfg(test)]
pub(crate) mod build {
    //! Packets for tests.
    use super::*;

    /// An IPv6 packet from `source` to `destination` carrying `upper` (`protocol`).
    pub(crate) fn ipv6(
        source: Ipv6Addr,
        destination: Ipv6Addr,
        protocol: u8,
        upper: &[u8],
    ) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(upper.len() as u16).to_be_bytes());
        p.extend_from_slice(&[protocol, 64]);
        p.extend_from_slice(&source.octets());
        p.extend_from_slice(&destination.octets());
        p.extend_from_slice(upper);
        p
    }

    /// A TCP segment's header.
    pub(crate) fn tcp(source: u16, destination: u16, flags: u8) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[..2].copy_from_slice(&source.to_be_bytes());
        h[2..4].copy_from_slice(&destination.to_be_bytes());
        h[12] = 5 << 4;
        h[13] = flags;
        h
    }

    /// A UDP header with 4 bytes of data.
    pub(crate) fn udp(source: u16, destination: u16) -> Vec<u8> {
        let mut h = vec![0u8; 12];
        h[..2].copy_from_slice(&source.to_be_bytes());
        h[2..4].copy_from_slice(&destination.to_be_bytes());
        h[4..6].copy_from_slice(&12u16.to_be_bytes());
        h
    }

    /// An ICMPv6 echo request (`reply` false) or reply with identifier `id`.
    pub(crate) fn echo(id: u16, reply: bool) -> Vec<u8> {
        let mut h = vec![
            if reply { ECHO_REPLY } else { ECHO_REQUEST },
            0,
            0,
            0,
            0,
            0,
            0,
            1,
        ];
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    const A: Ipv6Addr = Ipv6Addr::new(0x200, 1, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0x200, 2, 0, 0, 0, 0, 0, 2);

    #[test]
    fn reads_ports_flags_and_echo_ids_past_extension_headers() {
        let syn = ipv6(A, B, proto::TCP, &tcp(40000, 443, tcp_flags::SYN));
        let p = parse(&syn).unwrap();
        assert_eq!((p.source, p.destination), (A, B));
        assert_eq!(
            p.upper,
            Upper::Tcp {
                source: 40000,
                destination: 443,
                flags: tcp_flags::SYN
            }
        );
        // Behind a hop-by-hop header (8 bytes) and a destination-options header (16 bytes).
        let mut upper = vec![60, 0, 0, 0, 0, 0, 0, 0];
        upper.extend_from_slice(&[proto::UDP, 1]);
        upper.extend_from_slice(&[0; 14]);
        upper.extend_from_slice(&udp(5353, 53));
        let p = parse(&ipv6(A, B, 0, &upper)).unwrap();
        assert_eq!(p.upper.destination_port(), Some(53));
        assert_eq!(p.upper_offset, 64);
        let ping = parse(&ipv6(A, B, proto::ICMPV6, &echo(77, false))).unwrap();
        assert_eq!(
            ping.upper,
            Upper::Icmp {
                kind: ECHO_REQUEST,
                code: 0,
                id: Some(77)
            }
        );
        // A fragment past the first has no ports.
        let mut later = vec![proto::TCP, 0, 0, 0x08, 0, 0, 0, 1];
        later.extend_from_slice(&[0; 20]);
        assert_eq!(
            parse(&ipv6(A, B, 44, &later)).unwrap().upper,
            Upper::Other(proto::TCP)
        );
    }

    #[test]
    fn junk_is_an_error_never_a_panic() {
        assert_eq!(parse(&[0x60; 39]), Err(Malformed::Truncated));
        assert_eq!(parse(&[0x45; 60]), Err(Malformed::NotIpv6));
        let short_tcp = ipv6(A, B, proto::TCP, &[0; 10]);
        assert_eq!(parse(&short_tcp), Err(Malformed::Truncated));
        // A chain of hop-by-hop headers longer than the limit.
        let chain: Vec<u8> = (0..10).flat_map(|_| [0u8, 0, 0, 0, 0, 0, 0, 0]).collect();
        assert_eq!(
            parse(&ipv6(A, B, 0, &chain)),
            Err(Malformed::TooManyHeaders)
        );
        for len in 0..80 {
            let mut p = ipv6(A, B, 0, &chain);
            p.truncate(len);
            let _ = parse(&p);
        }
    }
}
