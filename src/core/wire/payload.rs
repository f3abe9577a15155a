//! What sessions carry: IPv6 packets for the TUN device and messages for built-in services.
//!
//! ```text
//! Packet          ipv6_packet(rest)
//! TcpSuperPacket  flags(1) mss(2) ipv6_tcp_packet(rest)
//! Service         port(2) payload(rest)
//! Moved           path
//! ```
//! All travel only inside end-to-end sessions; a node ignores them on a link.

use super::{Reader, WireError};

/// A message for a built-in service (CRDT sync, identity) on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service<'a> {
    /// Which service.
    pub port: u16,
    /// The service's bytes.
    pub payload: &'a [u8],
}

impl<'a> Service<'a> {
    /// Decodes the message body.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        Ok(Self {
            port: r.u16()?,
            payload: r.rest(),
        })
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.port.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

/// A node's new coordinates, sent in its sessions when its place in the tree changed (its parent
/// went away, say), so that a peer that sends to it need not wait for a lookup: lookups find a node
/// that just moved only once its key reached the ancestors it moved under, which a busy ancestor
/// near the root may hold back for up to 32 s (PROTOCOL.md §5). The session authenticates it and
/// refuses replays, so only the node itself can move its peers' path to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The sender's coordinates.
    pub coords: Vec<u64>,
}

impl Moved {
    /// Decodes the message body (a path and nothing after it).
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let coords = r.path()?;
        r.finish()?;
        Ok(Self { coords })
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        super::put_path(out, &self.coords);
    }
}

/// A host's TCP super-packet (TSO) carried whole: the destination's TUN device takes it as one GSO
/// write and the destination's kernel cuts it into `mss`-byte segments if it needs to. Sealing and
/// routing 64 KiB once instead of fifty 1280-byte packets is most of what it saves; see
/// `core::offload::passthrough`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSuperPacket<'a> {
    /// Segment payload size the host chose (its MSS).
    pub mss: u16,
    /// The segments carry ECN: CWR stays on the first only.
    pub ecn: bool,
    /// IPv6 header, TCP header and the payload of all segments.
    pub packet: &'a [u8],
}

/// `flags` bit: [`TcpSuperPacket::ecn`].
const SUPER_ECN: u8 = 0x01;

impl<'a> TcpSuperPacket<'a> {
    /// Decodes the message body; unknown flag bits are refused, not ignored, since they would change
    /// what the kernel is asked to do.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let flags = r.u8()?;
        if flags & !SUPER_ECN != 0 {
            return Err(WireError::Invalid("super-packet flags"));
        }
        Ok(Self {
            ecn: flags & SUPER_ECN != 0,
            mss: r.u16()?,
            packet: r.rest(),
        })
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_header(out);
        out.extend_from_slice(self.packet);
    }

    /// Appends the message body without the packet (what comes before it).
    pub fn encode_header(&self, out: &mut Vec<u8>) {
        out.push(if self.ecn { SUPER_ECN } else { 0 });
        out.extend_from_slice(&self.mss.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_round_trip_and_nothing_after_the_path() {
        let m = Moved {
            coords: vec![1, 300, 2],
        };
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out, [3, 1, 0xac, 0x02, 2]);
        assert_eq!(Moved::parse(&out), Ok(m));
        out.push(0);
        assert!(Moved::parse(&out).is_err(), "trailing byte");
        assert!(Moved::parse(&[5, 1]).is_err(), "truncated");
        assert_eq!(Moved::parse(&[0]), Ok(Moved { coords: vec![] }));
    }

    #[test]
    fn super_packet_round_trip() {
        let s = TcpSuperPacket {
            mss: 1220,
            ecn: true,
            packet: b"ipv6",
        };
        let mut out = Vec::new();
        s.encode(&mut out);
        assert_eq!(out[..3], [1, 0x04, 0xc4]);
        assert_eq!(TcpSuperPacket::parse(&out), Ok(s));
        assert!(TcpSuperPacket::parse(&[0, 1]).is_err());
        assert!(TcpSuperPacket::parse(&[2, 0, 0]).is_err(), "unknown flag");
    }

    #[test]
    fn round_trip() {
        let s = Service {
            port: 0x1234,
            payload: b"hi",
        };
        let mut out = Vec::new();
        s.encode(&mut out);
        assert_eq!(out, [0x12, 0x34, b'h', b'i']);
        assert_eq!(Service::parse(&out), Ok(s));
        assert!(Service::parse(&[1]).is_err());
    }
}
