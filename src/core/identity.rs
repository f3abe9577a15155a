//! Node identity: the Ed25519 key pair that a node's addresses, links and signatures all derive from.
//!
//! Two textual forms of the private key are accepted so that operators can move between implementations
//! without changing address:
//! - a 32-byte seed as 64 hex characters (what `meshrouter genconf` writes), and
//! - Yggdrasil's 64-byte `PrivateKey` as 128 hex characters: the seed followed by the public key. The public
//!   half is checked against the seed, so a truncated or edited key is refused instead of silently yielding
//!   another address.
//!
//! PEM-encoded PKCS#8 (as written by `yggdrasil -exportkey` or `openssl genpkey -algorithm ed25519`) is
//! accepted for key files.

use std::fmt;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use zeroize::Zeroizing;

pub use super::verifier::Verifier;

/// Length in bytes of an Ed25519 seed (the secret half of a node key).
pub const SEED_LEN: usize = 32;
/// Length in bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length in bytes of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Why a textual private key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The text has a length that is neither a seed nor a Yggdrasil private key.
    #[error(
        "expected 64 hex characters (a 32-byte seed) or 128 (Yggdrasil's seed followed by public key), got {0} characters"
    )]
    BadLength(usize),
    /// The text has the right length but is not hexadecimal.
    #[error("not hexadecimal: unexpected character {character:?} at position {position}")]
    BadHex {
        /// The offending character.
        character: char,
        /// Its zero-based position in the text.
        position: usize,
    },
    /// A 64-byte key whose second half is not the public key of its first half.
    #[error(
        "the last 32 bytes are not the public key of the first 32: not a valid Yggdrasil PrivateKey"
    )]
    PublicHalfMismatch,
    /// A PEM text that is not a PKCS#8 Ed25519 private key.
    #[error("not a PEM PKCS#8 Ed25519 private key: {0}")]
    BadPem(String),
}

/// A node's Ed25519 key pair. Deliberately not `Debug` or `Clone`: the secret must not end up in logs or
/// be copied around; the seed is wiped when the key is dropped.
pub struct NodeKey {
    signing: SigningKey,
}

impl NodeKey {
    /// Builds the key pair from a 32-byte seed.
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// Parses a hex seed (64 characters) or a Yggdrasil `PrivateKey` (128 characters). Surrounding
    /// whitespace is ignored.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if let Some((position, character)) =
            text.char_indices().find(|(_, c)| !c.is_ascii_hexdigit())
        {
            return Err(KeyError::BadHex {
                character,
                position,
            });
        }
        let mut bytes = Zeroizing::new([0u8; SEED_LEN + PUBLIC_KEY_LEN]);
        match text.len() {
            64 => {
                hex_into(text, &mut bytes[..SEED_LEN]);
                Ok(Self::from_seed(seed_of(&bytes)))
            }
            128 => {
                hex_into(text, &mut bytes[..]);
                let key = Self::from_seed(seed_of(&bytes));
                if key.public_key().as_bytes()[..] != bytes[SEED_LEN..] {
                    return Err(KeyError::PublicHalfMismatch);
                }
                Ok(key)
            }
            other => Err(KeyError::BadLength(other)),
        }
    }

    /// Parses a PEM-encoded PKCS#8 Ed25519 private key.
    pub fn from_pkcs8_pem(text: &str) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_pem(text)
            .map(|signing| Self { signing })
            .map_err(|e| KeyError::BadPem(e.to_string()))
    }

    /// Parses the contents of a key file: PEM if it looks like PEM, hex otherwise.
    pub fn from_file_contents(text: &str) -> Result<Self, KeyError> {
        if text.trim_start().starts_with("-----BEGIN") {
            Self::from_pkcs8_pem(text)
        } else {
            Self::from_hex(text)
        }
    }

    /// Returns the public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// Signs `message` (Ed25519, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        use ed25519_dalek::Signer;
        if super::crypto_stand_in::enabled() {
            let key = self.signing.verifying_key().to_bytes();
            return super::crypto_stand_in::signature(&key, message);
        }
        self.signing.sign(message).to_bytes()
    }

    /// A second handle on the same key, for a service that signs on the node's behalf (the CRDT
    /// store, the identity service). Explicit rather than `Clone`, so copies stay deliberate.
    pub fn duplicate(&self) -> Self {
        Self {
            signing: self.signing.clone(),
        }
    }

    /// A separate key pair derived from this one for another use (HKDF-SHA256 of the seed with
    /// `label`), so that no other protocol ever signs with the node key itself: the TLS certificate
    /// of stream links is made with one.
    pub fn derive(&self, label: &[u8]) -> Self {
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(
            Some(b"meshrouter derived key"),
            self.signing.as_bytes(),
        );
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        // 32 bytes is far below HKDF-SHA256's output limit: expand cannot fail.
        let _ = hkdf.expand(label, &mut seed[..]);
        Self::from_seed(&seed)
    }

    /// A 32-byte secret derived from this key for another use (HKDF-SHA256 of the seed with
    /// `label`, under its own salt), such as a MAC key; wiped on drop.
    pub fn derive_secret(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(
            Some(b"meshrouter derived secret"),
            self.signing.as_bytes(),
        );
        let mut secret = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's output limit: expand cannot fail.
        let _ = hkdf.expand(label, &mut secret[..]);
        secret
    }

    /// The key pair as PKCS#8 DER (RFC 8410), for libraries that take keys in that form (wiped on
    /// drop).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        self.signing
            .to_pkcs8_der()
            .map(|der| Zeroizing::new(der.as_bytes().to_vec()))
            .map_err(|e| KeyError::BadPem(e.to_string()))
    }

    /// Returns the seed as 64 lowercase hex characters (the form `genconf` writes), wiped on drop.
    pub fn seed_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.signing.as_bytes()))
    }
}

fn seed_of(bytes: &[u8; SEED_LEN + PUBLIC_KEY_LEN]) -> &[u8; SEED_LEN] {
    bytes.first_chunk().unwrap_or(&[0; SEED_LEN])
}

/// Decodes hex that the caller has already checked (all hex digits, exactly twice `out.len()` characters).
fn hex_into(text: &str, out: &mut [u8]) {
    // Cannot fail: the caller checked every character and the length.
    let _ = hex::decode_to_slice(text, out);
}

/// An Ed25519 public key: the identity of a node on the wire and in routing. Ordered bytewise, which is the
/// order root election uses.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Wraps 32 raw bytes. Any 32 bytes are accepted: whether they are a valid curve point matters only when
    /// a signature is checked, and that check refuses bad points.
    pub const fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Returns the raw bytes.
    pub const fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if let Some((position, character)) =
            text.char_indices().find(|(_, c)| !c.is_ascii_hexdigit())
        {
            return Err(KeyError::BadHex {
                character,
                position,
            });
        }
        if text.len() != 2 * PUBLIC_KEY_LEN {
            return Err(KeyError::BadLength(text.len()));
        }
        let mut bytes = [0u8; PUBLIC_KEY_LEN];
        hex_into(text, &mut bytes);
        Ok(Self(bytes))
    }

    /// Verifies an Ed25519 signature strictly: weak (small-order) keys, non-canonical encodings and
    /// malleable signatures are all refused, so one key has exactly one valid identity.
    /// (In a simulation, checks another simulated node already passed are remembered:
    /// [`super::shared_verifications`].)
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        if super::crypto_stand_in::enabled() {
            return super::crypto_stand_in::signature(&self.0, message) == *signature;
        }
        super::shared_verifications::verify(&self.0, message, signature, || {
            ed25519_dalek::VerifyingKey::from_bytes(&self.0).is_ok_and(|key| {
                key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
                    .is_ok()
            })
        })
    }

    /// Returns the key as 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    /// Shows the first 8 bytes: enough to tell nodes apart in traces without flooding them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}…)", hex::encode(&self.0[..8]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "3470790270a4706335da0209a4a043babff4200ac0532a630fde1007dea627cd";
    const PUBLIC: &str = "ffbbc89ea3b287796ada7a79689641e27b782b79b461c1063ba8d4a594115013";

    #[test]
    fn seed_and_yggdrasil_forms_give_the_same_key() {
        let a = NodeKey::from_hex(SEED).unwrap();
        let b = NodeKey::from_hex(&format!("{SEED}{PUBLIC}")).unwrap();
        assert_eq!(a.public_key().to_hex(), PUBLIC);
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(&*b.seed_hex(), SEED);
    }

    #[test]
    fn wrong_public_half_is_refused() {
        let mut wrong = format!("{SEED}{PUBLIC}");
        wrong.replace_range(127.., "0");
        assert_eq!(
            NodeKey::from_hex(&wrong).err(),
            Some(KeyError::PublicHalfMismatch)
        );
    }

    #[test]
    fn malformed_text_is_refused() {
        assert_eq!(
            NodeKey::from_hex("abcd").err(),
            Some(KeyError::BadLength(4))
        );
        let bad = format!("{}g", &SEED[..63]);
        assert_eq!(
            NodeKey::from_hex(&bad).err(),
            Some(KeyError::BadHex {
                character: 'g',
                position: 63
            })
        );
        assert!(matches!(
            NodeKey::from_hex("é").err(),
            Some(KeyError::BadHex { position: 0, .. })
        ));
        assert!(matches!(
            NodeKey::from_file_contents("-----BEGIN PRIVATE KEY-----\nxx\n").err(),
            Some(KeyError::BadPem(_))
        ));
    }

    #[test]
    fn pem_key_is_read() {
        // RFC 8410 §10.3 example private key.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
        let key = NodeKey::from_file_contents(pem).unwrap();
        assert_eq!(
            &*key.seed_hex(),
            "d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842"
        );
    }

    #[test]
    fn signatures_verify_only_for_the_signed_message_and_key() {
        let key = NodeKey::from_hex(SEED).unwrap();
        let sig = key.sign(b"hello");
        assert!(key.public_key().verify(b"hello", &sig));
        assert!(!key.public_key().verify(b"hellp", &sig));
        let other = NodeKey::from_seed(&[1; 32]).public_key();
        assert!(!other.verify(b"hello", &sig));
        // The identity point is a small-order key: strict verification refuses it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(!PublicKey::from_bytes(identity).verify(b"hello", &sig));
    }

    #[test]
    fn public_key_hex_round_trips() {
        let key = PublicKey::from_hex(PUBLIC).unwrap();
        assert_eq!(key.to_hex(), PUBLIC);
        assert_eq!(
            PublicKey::from_hex("00").err(),
            Some(KeyError::BadLength(2))
        );
    }
}
