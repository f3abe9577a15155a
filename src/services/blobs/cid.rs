//! CIDv1 with a SHA-256 multihash (the only kind this node makes or accepts), in binary and as
//! base32 text (`b...`, lower case, as `ipfs` prints CIDv1).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Multicodec of a block: raw bytes (a leaf) or a dag-pb node (UnixFS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    /// `raw` (0x55): the block is file bytes.
    Raw,
    /// `dag-pb` (0x70): the block is a UnixFS node linking to others.
    DagPb,
}

impl Codec {
    fn code(self) -> u8 {
        match self {
            Codec::Raw => 0x55,
            Codec::DagPb => 0x70,
        }
    }
}

/// `sha2-256` multihash code, and its digest length.
const SHA2_256: u8 = 0x12;
const DIGEST_LEN: usize = 32;
/// Length of a CID in binary: version, codec, hash code, digest length, digest.
pub const CID_LEN: usize = 4 + DIGEST_LEN;

/// A content identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid {
    /// What the block is.
    pub codec: Codec,
    /// SHA-256 of the block.
    pub digest: [u8; DIGEST_LEN],
}

/// Why bytes or text are not a CID this node takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    /// Not `b` + base32.
    #[error("not a base32 CIDv1 (b...)")]
    Text,
    /// Not CIDv1 / raw or dag-pb / sha2-256 with 32 bytes.
    #[error("not a CIDv1 of a raw or dag-pb block hashed with SHA-256")]
    Unsupported,
}

impl Cid {
    /// The CID of `block` as `codec`.
    pub fn of(codec: Codec, block: &[u8]) -> Self {
        Self {
            codec,
            digest: Sha256::digest(block).into(),
        }
    }

    /// True if `block` is what this CID names.
    pub fn matches(&self, block: &[u8]) -> bool {
        Sha256::digest(block).as_slice() == self.digest
    }

    /// Binary form (as in dag-pb links).
    pub fn to_bytes(&self) -> [u8; CID_LEN] {
        let mut out = [0u8; CID_LEN];
        out[..4].copy_from_slice(&[1, self.codec.code(), SHA2_256, DIGEST_LEN as u8]);
        out[4..].copy_from_slice(&self.digest);
        out
    }

    /// Reads the binary form (total).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CidError> {
        let [1, codec, SHA2_256, 32, digest @ ..] = bytes else {
            return Err(CidError::Unsupported);
        };
        let codec = match codec {
            0x55 => Codec::Raw,
            0x70 => Codec::DagPb,
            _ => return Err(CidError::Unsupported),
        };
        let digest = digest.try_into().map_err(|_| CidError::Unsupported)?;
        Ok(Self { codec, digest })
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = data_encoding::BASE32_NOPAD.encode(&self.to_bytes());
        write!(f, "b{}", text.to_ascii_lowercase())
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

impl FromStr for Cid {
    type Err = CidError;

    fn from_str(text: &str) -> Result<Self, CidError> {
        let body = text.strip_prefix('b').ok_or(CidError::Text)?;
        if body.len() > 2 * CID_LEN {
            return Err(CidError::Text);
        }
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|_| CidError::Text)?;
        Self::from_bytes(&bytes)
    }
}

impl serde::Serialize for Cid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_file_has_the_cid_ipfs_gives_it() {
        // `ipfs add --cid-version 1 --raw-leaves` of an empty file.
        let cid = Cid::of(Codec::Raw, b"");
        assert_eq!(
            cid.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        assert_eq!(cid.to_string().parse::<Cid>(), Ok(cid));
        assert!(cid.matches(b"") && !cid.matches(b"x"));
    }

    #[test]
    fn other_cids_are_refused() {
        for text in [
            "",
            "b",
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "bafy!",
            "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA",
        ] {
            assert!(text.parse::<Cid>().is_err(), "{text}");
        }
        let mut bytes = Cid::of(Codec::DagPb, b"x").to_bytes();
        assert!(Cid::from_bytes(&bytes).is_ok());
        bytes[1] = 0x71; // dag-cbor
        assert_eq!(Cid::from_bytes(&bytes), Err(CidError::Unsupported));
        assert_eq!(Cid::from_bytes(&bytes[..10]), Err(CidError::Unsupported));
    }
}
