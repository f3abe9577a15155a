//! `did:key` identifiers for Ed25519 keys (W3C CCG did:key method).
//!
//! The identifier is `did:key:` followed by the multibase base58btc (`z`) encoding of the multicodec
//! `ed25519-pub` prefix (varint 0xed, i.e. bytes `ed 01`) and the 32-byte public key, so every Ed25519
//! DID starts with `did:key:z6Mk`.

use crate::core::identity::{PUBLIC_KEY_LEN, PublicKey};

const DID_KEY_PREFIX: &str = "did:key:";
const BASE58BTC: char = 'z';
const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];
/// A base58 string of 34 bytes is at most 47 characters; anything much longer is refused before decoding.
const MAX_ENCODED_LEN: usize = 64;

/// Why a `did:key` string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DidKeyError {
    /// It does not start with `did:key:z`.
    #[error("not a did:key with base58btc multibase (expected \"did:key:z...\")")]
    NotDidKey,
    /// The multibase part is not valid base58 or is too long.
    #[error("the key part is not valid base58btc")]
    BadEncoding,
    /// The decoded bytes are not an `ed25519-pub` multicodec key of 32 bytes.
    #[error("not an Ed25519 public key (multicodec 0xed01 with 32 bytes)")]
    NotEd25519,
}

/// Returns the `did:key` of an Ed25519 public key.
pub fn did_key(key: &PublicKey) -> String {
    let mut bytes = [0u8; 2 + PUBLIC_KEY_LEN];
    bytes[..2].copy_from_slice(&ED25519_MULTICODEC);
    bytes[2..].copy_from_slice(key.as_bytes());
    format!(
        "{DID_KEY_PREFIX}{BASE58BTC}{}",
        bs58::encode(bytes).into_string()
    )
}

/// Parses a `did:key` of an Ed25519 key. A DID URL fragment (`#...`) is ignored.
pub fn parse_did_key(did: &str) -> Result<PublicKey, DidKeyError> {
    let did = did.split_once('#').map_or(did, |(d, _)| d);
    let encoded = did
        .strip_prefix(DID_KEY_PREFIX)
        .and_then(|rest| rest.strip_prefix(BASE58BTC))
        .ok_or(DidKeyError::NotDidKey)?;
    if encoded.len() > MAX_ENCODED_LEN {
        return Err(DidKeyError::BadEncoding);
    }
    let bytes = bs58::decode(encoded)
        .into_vec()
        .map_err(|_| DidKeyError::BadEncoding)?;
    match bytes.split_first_chunk::<2>() {
        Some((codec, key)) if *codec == ED25519_MULTICODEC && key.len() == PUBLIC_KEY_LEN => {
            let mut raw = [0u8; PUBLIC_KEY_LEN];
            raw.copy_from_slice(key);
            Ok(PublicKey::from_bytes(raw))
        }
        _ => Err(DidKeyError::NotEd25519),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published pairs of (publicKeyBase58, did:key) from did:key implementations' test data.
    const VECTORS: [(&str, &str); 2] = [
        (
            "8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K",
            "did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th",
        ),
        (
            "HrBXe7XnjMbscM1roSDTSMCcLNraetDQM9wSVjnzDxn3",
            "did:key:z6MkwJSaEMnE4u6LiqrZV1BJHSkc9x8S4mTm3ArNL1m19BZR",
        ),
    ];

    #[test]
    fn published_vectors() {
        for (base58, did) in VECTORS {
            let raw: [u8; 32] = bs58::decode(base58).into_vec().unwrap().try_into().unwrap();
            let key = PublicKey::from_bytes(raw);
            assert_eq!(did_key(&key), did);
            assert_eq!(parse_did_key(did), Ok(key));
            assert_eq!(parse_did_key(&format!("{did}#{}", &did[8..])), Ok(key));
        }
    }

    #[test]
    fn malformed_dids_are_refused() {
        assert_eq!(
            parse_did_key("did:web:example.org"),
            Err(DidKeyError::NotDidKey)
        );
        assert_eq!(
            parse_did_key("did:key:z0OIl"),
            Err(DidKeyError::BadEncoding)
        );
        // An X25519 did:key (multicodec 0xec) is not an Ed25519 identity.
        assert_eq!(
            parse_did_key("did:key:z6LSnHCakA8zvH61bCXv7goaT2MyVf8PjfW7XjeKTEGCgG9N"),
            Err(DidKeyError::NotEd25519)
        );
        assert_eq!(
            parse_did_key(&format!("did:key:z{}", "1".repeat(200))),
            Err(DidKeyError::BadEncoding)
        );
    }
}
