//! Keepalive: proves the link is alive and measures its round-trip time without a separate pong.
//!
//! ```text
//! timestamp_ms(4) echo_timestamp_ms(4) echo_delay_ms(2) flags(1)
//! ```
//! Like TCP timestamps: each side stamps its keepalives with its own clock (milliseconds, wrapping) and
//! echoes the latest stamp it received together with how long it held it, so the sender of the original
//! stamp computes `rtt = now - echo_timestamp - echo_delay`. Flag bit 0 asks for an immediate reply.

use super::{Reader, WireError};

/// Flag bit: the sender wants a keepalive back at once (it is probing a link that went quiet).
pub const REPLY_WANTED: u8 = 0x01;
/// Encoded length.
pub const LEN: usize = 11;

/// A keepalive message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keepalive {
    /// Sender's clock in milliseconds, wrapping.
    pub timestamp_ms: u32,
    /// The latest `timestamp_ms` received from the peer, or 0 if none yet.
    pub echo_timestamp_ms: u32,
    /// Milliseconds between receiving that stamp and sending this message (saturating).
    pub echo_delay_ms: u16,
    /// Flag bits; unknown bits are ignored.
    pub flags: u8,
}

impl Keepalive {
    /// Decodes the message body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let message = Self {
            timestamp_ms: r.u32()?,
            echo_timestamp_ms: r.u32()?,
            echo_delay_ms: r.u16()?,
            flags: r.u8()?,
        };
        r.finish()?;
        Ok(message)
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.echo_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.echo_delay_ms.to_be_bytes());
        out.push(self.flags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_golden_bytes() {
        let k = Keepalive {
            timestamp_ms: 0x01020304,
            echo_timestamp_ms: 5,
            echo_delay_ms: 6,
            flags: REPLY_WANTED,
        };
        let mut out = Vec::new();
        k.encode(&mut out);
        assert_eq!(out, [1, 2, 3, 4, 0, 0, 0, 5, 0, 6, 1]);
        assert_eq!(out.len(), LEN);
        assert_eq!(Keepalive::parse(&out), Ok(k));
        assert_eq!(Keepalive::parse(&out[..10]), Err(WireError::Truncated));
    }
}
