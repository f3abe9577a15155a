//! Acknowledgement of versioned per-peer state (subtree sets, neighbour lists).
//!
//! ```text
//! version(8)
//! ```

use super::{Reader, WireError};

/// Acknowledges the version of a piece of state a peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionAck {
    /// The version received.
    pub version: u64,
}

impl VersionAck {
    /// Decodes the message body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let m = Self { version: r.u64()? };
        r.finish()?;
        Ok(m)
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let a = VersionAck { version: 0x0102 };
        let mut out = Vec::new();
        a.encode(&mut out);
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(VersionAck::parse(&out), Ok(a));
        assert!(VersionAck::parse(&out[..7]).is_err());
    }
}
