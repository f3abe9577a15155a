//! The answer to a rejected packet: ICMPv6 destination unreachable, code 1 ("communication with
//! destination administratively prohibited", RFC 4443 §3.1), carrying as much of the rejected
//! packet as fits in the IPv6 minimum MTU.

use std::net::Ipv6Addr;

use super::packet::proto;

/// Largest answer: the IPv6 minimum MTU.
const MAX_ANSWER: usize = 1280;

/// ICMPv6 destination unreachable.
pub const DESTINATION_UNREACHABLE: u8 = 1;
/// Its code for "administratively prohibited".
pub const ADMINISTRATIVELY_PROHIBITED: u8 = 1;

/// The ICMPv6 error for `rejected`, from `from` (the address it was sent to) to `to` (its
/// sender).
pub fn prohibited(from: Ipv6Addr, to: Ipv6Addr, rejected: &[u8]) -> Vec<u8> {
    let quoted = &rejected[..rejected.len().min(MAX_ANSWER - 48)];
    let length = 8 + quoted.len();
    let mut packet = Vec::with_capacity(40 + length);
    packet.extend_from_slice(&[0x60, 0, 0, 0]);
    packet.extend_from_slice(&(length as u16).to_be_bytes());
    packet.extend_from_slice(&[proto::ICMPV6, 64]);
    packet.extend_from_slice(&from.octets());
    packet.extend_from_slice(&to.octets());
    packet.extend_from_slice(&[DESTINATION_UNREACHABLE, ADMINISTRATIVELY_PROHIBITED, 0, 0]);
    packet.extend_from_slice(&[0, 0, 0, 0]);
    packet.extend_from_slice(quoted);
    let sum = checksum(&from, &to, &packet[40..]);
    packet[42..44].copy_from_slice(&sum.to_be_bytes());
    packet
}

/// The ICMPv6 checksum of `message` (its checksum field zero) between `source` and
/// `destination` (RFC 4443 §2.3: over the IPv6 pseudo-header and the message).
pub fn checksum(source: &Ipv6Addr, destination: &Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
            sum += u32::from(word);
        }
    };
    add(&source.octets());
    add(&destination.octets());
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, proto::ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::firewall::packet::{Upper, build, parse};

    #[test]
    fn the_answer_quotes_the_packet_and_its_checksum_verifies() {
        let a: Ipv6Addr = "200:1::1".parse().unwrap();
        let c: Ipv6Addr = "300:3::9".parse().unwrap();
        let syn = build::ipv6(a, c, proto::TCP, &build::tcp(40000, 8080, 2));
        let answer = prohibited(c, a, &syn);
        let p = parse(&answer).unwrap();
        assert_eq!((p.source, p.destination), (c, a));
        assert_eq!(
            p.upper,
            Upper::Icmp {
                kind: DESTINATION_UNREACHABLE,
                code: ADMINISTRATIVELY_PROHIBITED,
                id: None
            }
        );
        assert_eq!(&answer[48..], &syn[..]);
        // Summing the message with its checksum in place gives zero.
        assert_eq!(checksum(&c, &a, &answer[40..]), 0);
        let huge = vec![0x60; 9000];
        assert_eq!(prohibited(c, a, &huge).len(), MAX_ANSWER);
    }
}
