//! What sessions carry: IPv6 packets for the TUN device and messages for built-in services.
//!
//! ```text
//! Packet   ipv6_packet(rest)
//! Service  port(2) payload(rest)
//! ```
//! Both travel only inside end-to-end sessions; a node ignores them on a link.

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

#[cfg(test)]
mod tests {
    use super::*;

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
