//! Spanning-tree messages: parent-signature requests and responses, signed announcements and their acks.
//!
//! ```text
//! SigReq       seq(8) nonce(8)
//! SigRes       seq(8) nonce(8) port(varint) psig(64)
//! Announce     key(32) parent(32) seq(8) nonce(8) port(varint) flags(1) psig(64) sig(64)
//! AnnounceAck  count(varint) { key(32) seq(8) }*
//! ```
//! An announcement is signed twice over the same bytes (see [`Announce::signed_bytes`]): `sig` by the node
//! and `psig` by its parent, so nobody can claim a parent, or a port under it, that did not agree.

use super::{Reader, WireError, put_varint};
use crate::core::identity::PublicKey;

/// Announcement flag: the node has lost its root and is waiting to re-attach; it is no root candidate.
pub const FLAG_DETACHED: u8 = 0x01;
/// Largest port number a node may assign (ports are small integers; this bounds coordinates).
pub const MAX_PORT: u64 = u32::MAX as u64;

/// Asks a peer for its signature on a future announcement of ours naming it as parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigReq {
    /// The sequence number the requester will announce.
    pub seq: u64,
    /// A fresh random value, so that signatures are never reused across requests.
    pub nonce: u64,
}

/// A peer's parent signature, with the port it assigned to the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigRes {
    /// Echo of the request's sequence number.
    pub seq: u64,
    /// Echo of the request's nonce.
    pub nonce: u64,
    /// The port under which the responder knows the requester.
    pub port: u64,
    /// The responder's signature over [`Announce::signed_bytes`] with itself as parent.
    pub psig: [u8; 64],
}

/// A node's signed place in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Announce {
    /// The announcing node.
    pub key: PublicKey,
    /// Its parent; equal to `key` for a root (or a detached node).
    pub parent: PublicKey,
    /// Increases with every change of the node's announcement.
    pub seq: u64,
    /// From the [`SigReq`] the parent answered.
    pub nonce: u64,
    /// The port the parent assigned to the node; 0 for a root.
    pub port: u64,
    /// Flag bits ([`FLAG_DETACHED`]).
    pub flags: u8,
    /// On a detached announcement only (and there always): the lowest key the node heard of among
    /// detached nodes, its own included. It floods through a detached mesh in moments, so that
    /// every node knows the best remaining key before anyone roots itself (PROTOCOL.md §3.3).
    pub best: Option<PublicKey>,
    /// Parent's signature.
    pub psig: [u8; 64],
    /// Node's signature.
    pub sig: [u8; 64],
}

/// Acknowledges announcements, so that a lost one is sent again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceAck {
    /// (node, seq) pairs received.
    pub entries: Vec<(PublicKey, u64)>,
}

impl SigReq {
    /// Decodes the message body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let m = Self {
            seq: r.u64()?,
            nonce: r.u64()?,
        };
        r.finish()?;
        Ok(m)
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.nonce.to_be_bytes());
    }
}

impl SigRes {
    /// Decodes the message body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let m = Self {
            seq: r.u64()?,
            nonce: r.u64()?,
            port: port(&mut r)?,
            psig: r.array()?,
        };
        r.finish()?;
        Ok(m)
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.nonce.to_be_bytes());
        put_varint(out, self.port);
        out.extend_from_slice(&self.psig);
    }
}

fn port(r: &mut Reader<'_>) -> Result<u64, WireError> {
    match r.varint()? {
        p if p <= MAX_PORT => Ok(p),
        _ => Err(WireError::Invalid("port out of range")),
    }
}

impl Announce {
    /// Decodes the message body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let m = Self {
            key: r.key()?,
            parent: r.key()?,
            seq: r.u64()?,
            nonce: r.u64()?,
            port: port(&mut r)?,
            flags: r.u8()?,
            best: None,
            psig: [0; 64],
            sig: [0; 64],
        };
        let mut m = m;
        if m.is_detached() {
            m.best = Some(r.key()?);
        }
        m.psig = r.array()?;
        m.sig = r.array()?;
        r.finish()?;
        Ok(m)
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.signed()[DOMAIN.len()..]);
        out.extend_from_slice(&self.psig);
        out.extend_from_slice(&self.sig);
    }

    /// The bytes both signatures cover: a domain tag, then the fields in wire order up to `flags`
    /// ([`Announce::signed`] adds `best` on a detached one).
    pub fn signed_bytes(
        key: &PublicKey,
        parent: &PublicKey,
        seq: u64,
        nonce: u64,
        port: u64,
        flags: u8,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(DOMAIN.len() + 32 + 32 + 8 + 8 + 5 + 1);
        out.extend_from_slice(DOMAIN);
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(parent.as_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&nonce.to_be_bytes());
        put_varint(&mut out, port);
        out.push(flags);
        out
    }

    /// The bytes both signatures of this announcement cover: [`Announce::signed_bytes`], then
    /// `best` if it is detached.
    pub fn signed(&self) -> Vec<u8> {
        let mut out = Self::signed_bytes(
            &self.key,
            &self.parent,
            self.seq,
            self.nonce,
            self.port,
            self.flags,
        );
        if self.is_detached() {
            out.extend_from_slice(self.best.unwrap_or(self.key).as_bytes());
        }
        out
    }

    /// Returns true for a root's (or detached node's) announcement.
    pub fn is_root(&self) -> bool {
        self.key == self.parent
    }

    /// Returns true if the node says it has lost its root.
    pub fn is_detached(&self) -> bool {
        self.flags & FLAG_DETACHED != 0
    }
}

/// Domain separation for announcement signatures, so they can never be confused with another signature.
const DOMAIN: &[u8] = b"meshrouter tree announce v1\0";

impl AnnounceAck {
    /// Most entries in one ack; more are split over several.
    pub const MAX_ENTRIES: usize = 24;

    /// Decodes the message body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let count = r.length(Self::MAX_ENTRIES)?;
        let entries = (0..count)
            .map(|_| Ok((r.key()?, r.u64()?)))
            .collect::<Result<_, WireError>>()?;
        r.finish()?;
        Ok(Self { entries })
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.entries.len() as u64);
        for (key, seq) in &self.entries {
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&seq.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce() -> Announce {
        Announce {
            key: PublicKey::from_bytes([1; 32]),
            parent: PublicKey::from_bytes([2; 32]),
            seq: 3,
            nonce: 4,
            port: 300,
            flags: FLAG_DETACHED,
            best: Some(PublicKey::from_bytes([9; 32])),
            psig: [5; 64],
            sig: [6; 64],
        }
    }

    #[test]
    fn round_trips() {
        let mut out = Vec::new();
        announce().encode(&mut out);
        assert_eq!(out.len(), 32 + 32 + 8 + 8 + 2 + 1 + 32 + 128);
        assert_eq!(&out[80..83], &[0xac, 0x02, FLAG_DETACHED]);
        assert_eq!(&out[83..115], &[9; 32], "best, on a detached one only");
        assert_eq!(Announce::parse(&out), Ok(announce()));
        for len in 0..out.len() {
            assert!(Announce::parse(&out[..len]).is_err());
        }
        let attached = Announce {
            flags: 0,
            best: None,
            ..announce()
        };
        let mut out = Vec::new();
        attached.encode(&mut out);
        assert_eq!(out.len(), 32 + 32 + 8 + 8 + 2 + 1 + 128);
        assert_eq!(Announce::parse(&out), Ok(attached));
        assert_eq!(attached.signed().len() + 32, announce().signed().len());

        let req = SigReq { seq: 1, nonce: 2 };
        let mut out = Vec::new();
        req.encode(&mut out);
        assert_eq!(SigReq::parse(&out), Ok(req));

        let res = SigRes {
            seq: 1,
            nonce: 2,
            port: 7,
            psig: [9; 64],
        };
        let mut out = Vec::new();
        res.encode(&mut out);
        assert_eq!(out.len(), 8 + 8 + 1 + 64);
        assert_eq!(SigRes::parse(&out), Ok(res));

        let ack = AnnounceAck {
            entries: vec![(PublicKey::from_bytes([3; 32]), 9)],
        };
        let mut out = Vec::new();
        ack.encode(&mut out);
        assert_eq!(AnnounceAck::parse(&out), Ok(ack));
    }

    #[test]
    fn bounds_are_enforced() {
        let mut out = Vec::new();
        put_varint(&mut out, 1_000_000);
        assert!(AnnounceAck::parse(&out).is_err());
        let mut res = Vec::new();
        SigRes {
            seq: 1,
            nonce: 2,
            port: MAX_PORT + 1,
            psig: [0; 64],
        }
        .encode(&mut res);
        assert_eq!(
            SigRes::parse(&res),
            Err(WireError::Invalid("port out of range"))
        );
    }
}
