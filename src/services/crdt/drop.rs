//! Sneakernet drops: a file of signed changes carried between nodes that share no link (a USB stick
//! between two islands).
//!
//! ```text
//! drop = "MRDROP" version(1)=1 exporter(32) created_millis(varint) count(varint) (len(varint) change)*
//!        signature(64)
//! ```
//! The exporter (a node key) signs `"meshrouter crdt drop v1\0"` and every byte before the signature,
//! so a truncated or damaged file is refused as a whole before any change is looked at; each change
//! is then verified on its own as always (a drop is a carrier, not an authority). Importing the same
//! drop twice changes nothing, because changes are idempotent.

use crate::core::identity::{NodeKey, PublicKey};
use crate::core::wire::{Reader, WireError, put_varint, split_signature};

const MAGIC: &[u8; 6] = b"MRDROP";
const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"meshrouter crdt drop v1\0";
/// Longest change a drop may carry.
const MAX_CHANGE: usize = 1 << 20;
/// Largest drop file the daemon's API imports (sent as base64, 16 MiB): bodies the API reads are
/// bounded, and a drop is the largest of them.
pub const MAX_DROP_LEN: usize = 12 << 20;

/// Why a drop file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropError {
    /// Not a drop file at all.
    #[error("not a meshrouter drop file")]
    NotADrop,
    /// A drop from a newer (or older) format.
    #[error("unsupported drop format version {0}")]
    Version(u8),
    /// Cut short or malformed (a truncated copy, a damaged stick).
    #[error("damaged or truncated drop file: {0}")]
    Malformed(#[from] WireError),
    /// The exporter's signature does not verify: the file was changed after export.
    #[error("drop file signature does not verify (changed or damaged after export)")]
    BadSignature,
}

/// A verified drop: who exported it, when, and the encoded changes (each still to be verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropFile {
    /// The exporting node.
    pub exporter: PublicKey,
    /// Its wall clock at export, in milliseconds since the Unix epoch.
    pub created_millis: u64,
    /// Encoded signed changes.
    pub changes: Vec<Vec<u8>>,
}

impl DropFile {
    /// Encodes and signs a drop of `changes`.
    pub fn export<B: AsRef<[u8]>>(key: &NodeKey, created_millis: u64, changes: &[B]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(key.public_key().as_bytes());
        put_varint(&mut out, created_millis);
        put_varint(&mut out, changes.len() as u64);
        for change in changes {
            put_varint(&mut out, change.as_ref().len() as u64);
            out.extend_from_slice(change.as_ref());
        }
        let signature = key.sign(&[DOMAIN, &out].concat());
        out.extend_from_slice(&signature);
        out
    }

    /// Reads a drop file, refusing it whole unless it is intact and signed by its exporter.
    pub fn read(bytes: &[u8]) -> Result<Self, DropError> {
        if !bytes.starts_with(MAGIC) {
            return Err(DropError::NotADrop);
        }
        let (body, signature) = split_signature(bytes)?;
        let mut r = Reader::new(body);
        r.take(MAGIC.len())?;
        let version = r.u8()?;
        if version != VERSION {
            return Err(DropError::Version(version));
        }
        let exporter = r.key()?;
        let created_millis = r.varint()?;
        let count = r.length(usize::MAX)?;
        if count > r.remaining() {
            return Err(WireError::Truncated.into());
        }
        let mut changes = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.length(MAX_CHANGE)?;
            changes.push(r.take(len)?.to_vec());
        }
        r.finish()?;
        if !exporter.verify(&[DOMAIN, body].concat(), &signature) {
            return Err(DropError::BadSignature);
        }
        Ok(Self {
            exporter,
            created_millis,
            changes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drop_round_trips_and_any_damage_refuses_it_whole() {
        let key = NodeKey::from_seed(&[9; 32]);
        let changes = vec![b"first change".to_vec(), Vec::new(), vec![7; 300]];
        let file = DropFile::export(&key, 1_764_000_000_000, &changes);
        let drop = DropFile::read(&file).unwrap();
        assert_eq!(drop.changes, changes);
        assert_eq!(drop.exporter, key.public_key());
        for cut in 0..file.len() {
            assert!(DropFile::read(&file[..cut]).is_err(), "truncated at {cut}");
        }
        for i in 0..file.len() {
            let mut damaged = file.clone();
            damaged[i] ^= 0x10;
            assert!(DropFile::read(&damaged).is_err(), "byte {i} damaged");
        }
        assert_eq!(
            DropFile::read(b"PK\x03\x04 a zip file"),
            Err(DropError::NotADrop)
        );
    }
}
