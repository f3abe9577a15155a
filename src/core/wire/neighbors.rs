//! Neighbour lists: each node tells its peers which keys it is linked to, so that a packet for a node
//! two hops away takes the direct two-hop path instead of a longer one through the tree.
//!
//! ```text
//! Neighbors     version(8) count(varint ≤ 64) key(32)*
//! NeighborsAck  version(8)                                (wire::ack::VersionAck)
//! ```

use super::{Reader, WireError, put_varint};
use crate::core::identity::PublicKey;

/// Most keys in one list; a node with more peers lists the first ones.
pub const MAX_NEIGHBORS: usize = 64;

/// A node's current peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbors {
    /// Increases with every change; the receiver keeps the highest.
    pub version: u64,
    /// The peers' keys.
    pub keys: Vec<PublicKey>,
}

impl Neighbors {
    /// Decodes the message body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let version = r.u64()?;
        let count = r.length(MAX_NEIGHBORS)?;
        let keys = (0..count).map(|_| r.key()).collect::<Result<_, _>>()?;
        r.finish()?;
        Ok(Self { version, keys })
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_be_bytes());
        let keys = &self.keys[..self.keys.len().min(MAX_NEIGHBORS)];
        put_varint(out, keys.len() as u64);
        for key in keys {
            out.extend_from_slice(key.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_bounds() {
        let n = Neighbors {
            version: 3,
            keys: vec![
                PublicKey::from_bytes([1; 32]),
                PublicKey::from_bytes([2; 32]),
            ],
        };
        let mut out = Vec::new();
        n.encode(&mut out);
        assert_eq!(out.len(), 8 + 1 + 64);
        assert_eq!(Neighbors::parse(&out), Ok(n));
        let mut too_many = 7u64.to_be_bytes().to_vec();
        put_varint(&mut too_many, 65);
        assert!(Neighbors::parse(&too_many).is_err());
    }
}
