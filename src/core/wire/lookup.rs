//! Key lookup: subtree key sets along the tree, lookups that follow them, and signed replies.
//!
//! ```text
//! SubtreeDelta  version(8) base(8) flags(1) added(2) removed(2) tag(4)*(added+removed)
//! SubtreeAck    version(8)                                       (wire::ack::VersionAck)
//! Lookup        nonce(8) source(32) source_path(path) target(32)
//! LookupReply   nonce(8) signature(64)                (the payload of a KIND_LOOKUP_REPLY packet)
//! ```
//! A reply's coordinates are the routed packet's source path: the signature covers them there, so
//! they are not sent twice (at 100 000 nodes, 3.5 % of the lookup bytes).
//! A delta turns the set of tags the receiver holds at version `base` (0: the empty set) into the set
//! at `version`: the `added` tags then the `removed` ones, each list strictly ascending, at most
//! [`SUBTREE_CHUNK_TAGS`] in all. A change too big for one message is a chain of deltas; flag bit 0
//! marks the last of a chain (the other bits are zero). See `core::lookup::subtrees`.

use super::{Reader, WireError, put_path};
use crate::core::identity::PublicKey;

/// Tags one delta carries at most: 1 KiB of tags, the size of the 8192-bit filters they replace.
pub const SUBTREE_CHUNK_TAGS: usize = 256;

/// One step of a node's subtree key set as told to its parent (see `core::lookup::subtrees`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtreeDelta {
    /// This step's version; increases with every delta.
    pub version: u64,
    /// The version the delta applies to (0: the empty set).
    pub base: u64,
    /// Whether this is the last delta of a change (the set is then whole).
    pub last: bool,
    /// Tags added, strictly ascending.
    pub added: Vec<u32>,
    /// Tags removed, strictly ascending.
    pub removed: Vec<u32>,
}

/// A search for the node whose canonical partial key is `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Chosen by the source; echoed and signed in the reply, so replies cannot be replayed.
    pub nonce: u64,
    /// Who is looking.
    pub source: PublicKey,
    /// Where the reply should go.
    pub source_path: Vec<u64>,
    /// The canonical (/64-level) partial key sought, unknown bits set to one.
    pub target: [u8; 32],
}

/// A node's answer: a signature over its coordinates (the packet's source path), the requester and
/// the nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupReply {
    /// The lookup's nonce.
    pub nonce: u64,
    /// Signature by the replying node over [`LookupReply::signed_bytes`] with the coordinates the
    /// reply's packet carries as its source path.
    pub signature: [u8; 64],
}

impl SubtreeDelta {
    /// Decodes the message body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let version = r.u64()?;
        let base = r.u64()?;
        let flags = r.u8()?;
        if flags & !1 != 0 {
            return Err(WireError::Invalid("unknown subtree delta flags"));
        }
        let added = usize::from(r.u16()?);
        let removed = usize::from(r.u16()?);
        if added + removed > SUBTREE_CHUNK_TAGS {
            return Err(WireError::Invalid("subtree delta too long"));
        }
        if r.remaining() != 4 * (added + removed) {
            return Err(WireError::Invalid("subtree delta length"));
        }
        let mut tags = |n: usize| -> Result<Vec<u32>, WireError> {
            let mut out: Vec<u32> = Vec::with_capacity(n);
            for _ in 0..n {
                let t = r.u32()?;
                if out.last().is_some_and(|p| *p >= t) {
                    return Err(WireError::Invalid("subtree tags not ascending"));
                }
                out.push(t);
            }
            Ok(out)
        };
        let added = tags(added)?;
        let removed = tags(removed)?;
        if version <= base {
            return Err(WireError::Invalid("subtree delta older than its base"));
        }
        r.finish()?;
        Ok(Self {
            version,
            base,
            last: flags & 1 != 0,
            added,
            removed,
        })
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.base.to_be_bytes());
        out.push(u8::from(self.last));
        for n in [self.added.len(), self.removed.len()] {
            out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        }
        for t in self.added.iter().chain(&self.removed) {
            out.extend_from_slice(&t.to_be_bytes());
        }
    }
}

impl Lookup {
    /// Decodes the message body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let m = Self {
            nonce: r.u64()?,
            source: r.key()?,
            source_path: r.path()?,
            target: r.array()?,
        };
        r.finish()?;
        Ok(m)
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(self.source.as_bytes());
        put_path(out, &self.source_path);
        out.extend_from_slice(&self.target);
    }
}

impl LookupReply {
    /// Decodes a reply payload.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let m = Self {
            nonce: r.u64()?,
            signature: r.array()?,
        };
        r.finish()?;
        Ok(m)
    }

    /// Appends the reply payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(&self.signature);
    }

    /// The bytes the replying node signs: who asked, the nonce, who answers and where it is.
    pub fn signed_bytes(
        requester: &PublicKey,
        responder: &PublicKey,
        nonce: u64,
        coords: &[u64],
    ) -> Vec<u8> {
        let mut out = b"meshrouter lookup reply v2\0".to_vec();
        out.extend_from_slice(requester.as_bytes());
        out.extend_from_slice(responder.as_bytes());
        out.extend_from_slice(&nonce.to_be_bytes());
        put_path(&mut out, coords);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_deltas_round_trip_and_bad_ones_are_refused() {
        let d = SubtreeDelta {
            version: 9,
            base: 7,
            last: true,
            added: vec![1, 5, u32::MAX],
            removed: vec![3],
        };
        let mut out = Vec::new();
        d.encode(&mut out);
        assert_eq!(out.len(), 8 + 8 + 1 + 4 + 16);
        assert_eq!(SubtreeDelta::parse(&out), Ok(d.clone()));
        for len in 0..out.len() {
            assert!(SubtreeDelta::parse(&out[..len]).is_err());
        }
        let bad = |f: &dyn Fn(&mut SubtreeDelta)| {
            let mut m = d.clone();
            f(&mut m);
            let mut out = Vec::new();
            m.encode(&mut out);
            SubtreeDelta::parse(&out).is_err()
        };
        assert!(bad(&|m| m.added = vec![5, 1]), "not ascending");
        assert!(bad(&|m| m.removed = vec![3, 3]), "repeated");
        assert!(bad(&|m| m.base = 9), "not newer than its base");
        assert!(bad(&|m| m.added = (0..SUBTREE_CHUNK_TAGS as u32).collect()));
        let mut full = d.clone();
        full.added = (0..SUBTREE_CHUNK_TAGS as u32 - 1).collect();
        let mut out = Vec::new();
        full.encode(&mut out);
        assert_eq!(SubtreeDelta::parse(&out), Ok(full));
        let mut flagged = Vec::new();
        d.encode(&mut flagged);
        flagged[16] = 3;
        assert!(SubtreeDelta::parse(&flagged).is_err(), "unknown flags");
    }

    #[test]
    fn lookup_messages_round_trip() {
        let l = Lookup {
            nonce: 1,
            source: PublicKey::from_bytes([2; 32]),
            source_path: vec![1, 2],
            target: [3; 32],
        };
        let mut out = Vec::new();
        l.encode(&mut out);
        assert_eq!(Lookup::parse(&out), Ok(l));
        let r = LookupReply {
            nonce: 5,
            signature: [8; 64],
        };
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(out.len(), 8 + 64);
        assert_eq!(LookupReply::parse(&out), Ok(r));
        assert!(LookupReply::parse(&out[..71]).is_err());
        out.push(0);
        assert!(LookupReply::parse(&out).is_err(), "trailing byte");
    }
}
