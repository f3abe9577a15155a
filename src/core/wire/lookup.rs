//! Key lookup: bloom filters along the tree, lookups that follow them, and signed replies.
//!
//! ```text
//! Bloom        version(8) present0(16) present1(16) word(8)*   (words neither all-zero nor all-one)
//! BloomAck     version(8)                                       (wire::ack::VersionAck)
//! Lookup       nonce(8) source(32) source_path(path) target(32)
//! LookupReply  nonce(8) coords(path) signature(64)   (the payload of a KIND_LOOKUP_REPLY packet)
//! ```
//! A filter is 8192 bits; `present0`/`present1` are bitmaps over its 128 words marking those that are
//! all zeros / all ones and therefore not sent, so a filter with few keys costs a few dozen bytes.

use super::{Reader, WireError, put_path};
use crate::core::identity::PublicKey;

/// Words of a bloom filter (8192 bits).
pub const BLOOM_WORDS: usize = 128;

/// A node's bloom filter for one tree peer, with a version for acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    /// Increases with every change; the receiver keeps the highest.
    pub version: u64,
    /// The filter bits.
    pub words: [u64; BLOOM_WORDS],
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

/// A node's answer: its coordinates, signed together with the requester and the nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupReply {
    /// The lookup's nonce.
    pub nonce: u64,
    /// The replying node's coordinates.
    pub coords: Vec<u64>,
    /// Signature by the replying node over [`LookupReply::signed_bytes`].
    pub signature: [u8; 64],
}

impl Bloom {
    /// Decodes the message body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let version = r.u64()?;
        let zeros = u128::from_be_bytes(r.array()?);
        let ones = u128::from_be_bytes(r.array()?);
        if zeros & ones != 0 {
            return Err(WireError::Invalid("bloom word both all-zero and all-one"));
        }
        let mut words = [0u64; BLOOM_WORDS];
        for (i, word) in words.iter_mut().enumerate() {
            let bit = 1u128 << (BLOOM_WORDS - 1 - i);
            *word = if zeros & bit != 0 {
                0
            } else if ones & bit != 0 {
                u64::MAX
            } else {
                r.u64()?
            };
        }
        r.finish()?;
        Ok(Self { version, words })
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (mut zeros, mut ones) = (0u128, 0u128);
        for (i, &w) in self.words.iter().enumerate() {
            let bit = 1u128 << (BLOOM_WORDS - 1 - i);
            match w {
                0 => zeros |= bit,
                u64::MAX => ones |= bit,
                _ => {}
            }
        }
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&zeros.to_be_bytes());
        out.extend_from_slice(&ones.to_be_bytes());
        for &w in self.words.iter().filter(|&&w| w != 0 && w != u64::MAX) {
            out.extend_from_slice(&w.to_be_bytes());
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
            coords: r.path()?,
            signature: r.array()?,
        };
        r.finish()?;
        Ok(m)
    }

    /// Appends the reply payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.nonce.to_be_bytes());
        put_path(out, &self.coords);
        out.extend_from_slice(&self.signature);
    }

    /// The bytes the replying node signs: who asked, the nonce, who answers and where it is.
    pub fn signed_bytes(
        requester: &PublicKey,
        responder: &PublicKey,
        nonce: u64,
        coords: &[u64],
    ) -> Vec<u8> {
        let mut out = b"meshrouter lookup reply v1\0".to_vec();
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
    fn bloom_compresses_trivial_words_and_round_trips() {
        let mut words = [0u64; BLOOM_WORDS];
        words[3] = 0x8000_0000_0000_0001;
        words[127] = u64::MAX;
        let b = Bloom { version: 9, words };
        let mut out = Vec::new();
        b.encode(&mut out);
        assert_eq!(out.len(), 8 + 16 + 16 + 8);
        assert_eq!(Bloom::parse(&out), Ok(b));
        let mut full = Bloom {
            version: 1,
            words: [0x1234; BLOOM_WORDS],
        };
        full.words[0] = 0;
        let mut out = Vec::new();
        full.encode(&mut out);
        assert_eq!(out.len(), 8 + 32 + 127 * 8);
        assert_eq!(Bloom::parse(&out), Ok(full));
        for len in 0..out.len() {
            assert!(Bloom::parse(&out[..len]).is_err());
        }
        let mut both = vec![0u8; 40];
        both[8] = 0x80;
        both[24] = 0x80;
        assert!(Bloom::parse(&both).is_err());
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
            coords: vec![7],
            signature: [8; 64],
        };
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(LookupReply::parse(&out), Ok(r));
    }
}
