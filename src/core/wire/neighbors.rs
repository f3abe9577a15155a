//! Neighbour lists: each node tells its peers which keys it is linked to, so that a packet for a node
//! two hops away takes the direct two-hop path instead of a longer one through the tree.
//!
//! ```text
//! Neighbors     version(8) attestation(64) count(varint ≤ 64) (key(32) proof(64))*
//! NeighborsAck  version(8)                                (wire::ack::VersionAck)
//! ```
//! A list is a routing claim ("send me what is for these keys"), so every entry carries its proof: the
//! listed node's own signature saying it is linked to the sender, `sig_key("meshrouter neighbor v1\0"
//! | key | sender)`. The sender got it from that node, as `attestation` in the node's list to it. A
//! peer can therefore list only nodes that linked with it, never arbitrary victims.

use super::{Reader, WireError, put_varint};
use crate::core::identity::{NodeKey, PublicKey, SIGNATURE_LEN};

/// Most keys in one list; a node with more peers lists the first ones.
pub const MAX_NEIGHBORS: usize = 64;
const ATTESTATION_DOMAIN: &[u8] = b"meshrouter neighbor v1\0";

/// The bytes `attester` signs to say it is linked to `peer`.
fn attestation_bytes(attester: &PublicKey, peer: &PublicKey) -> Vec<u8> {
    [ATTESTATION_DOMAIN, attester.as_bytes(), peer.as_bytes()].concat()
}

/// Signs that `node` is linked to `peer`.
pub fn attest(node: &NodeKey, peer: &PublicKey) -> [u8; SIGNATURE_LEN] {
    node.sign(&attestation_bytes(&node.public_key(), peer))
}

/// Checks that `attester` signed that it is linked to `peer`.
pub fn check_attestation(
    attester: &PublicKey,
    peer: &PublicKey,
    signature: &[u8; SIGNATURE_LEN],
) -> bool {
    attester.verify(&attestation_bytes(attester, peer), signature)
}

/// A node's current peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbors {
    /// Increases with every change; the receiver keeps the highest.
    pub version: u64,
    /// The sender's signature saying it is linked to the receiver ([`attest`]).
    pub attestation: [u8; SIGNATURE_LEN],
    /// The peers' keys, each with its attestation that it is linked to the sender.
    pub entries: Vec<(PublicKey, [u8; SIGNATURE_LEN])>,
}

impl Neighbors {
    /// Decodes the message body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let version = r.u64()?;
        let attestation = r.array()?;
        let count = r.length(MAX_NEIGHBORS)?;
        let entries = (0..count)
            .map(|_| Ok((r.key()?, r.array()?)))
            .collect::<Result<_, WireError>>()?;
        r.finish()?;
        Ok(Self {
            version,
            attestation,
            entries,
        })
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.attestation);
        let entries = &self.entries[..self.entries.len().min(MAX_NEIGHBORS)];
        put_varint(out, entries.len() as u64);
        for (key, proof) in entries {
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(proof);
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
            attestation: [4; 64],
            entries: vec![
                (PublicKey::from_bytes([1; 32]), [5; 64]),
                (PublicKey::from_bytes([2; 32]), [6; 64]),
            ],
        };
        let mut out = Vec::new();
        n.encode(&mut out);
        assert_eq!(out.len(), 8 + 64 + 1 + 2 * 96);
        assert_eq!(Neighbors::parse(&out), Ok(n));
        let mut too_many = 7u64.to_be_bytes().to_vec();
        too_many.extend_from_slice(&[0; 64]);
        put_varint(&mut too_many, 65);
        assert!(Neighbors::parse(&too_many).is_err());
    }

    #[test]
    fn attestations_name_both_ends() {
        let (a, b) = (NodeKey::from_seed(&[1; 32]), NodeKey::from_seed(&[2; 32]));
        let proof = attest(&a, &b.public_key());
        assert!(check_attestation(&a.public_key(), &b.public_key(), &proof));
        assert!(!check_attestation(&b.public_key(), &a.public_key(), &proof));
        let c = NodeKey::from_seed(&[3; 32]).public_key();
        assert!(!check_attestation(&a.public_key(), &c, &proof));
    }
}
