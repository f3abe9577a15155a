//! Ed25519 verification of many signatures by few keys, under one of two rules.
//!
//! - **Strict** ([`Verifier::verify`], and [`crate::core::identity::PublicKey::verify`]): the
//!   cofactorless equation, canonical encodings, no small-order points. One key has exactly one
//!   valid signature per message; used for links, the tree and sign-ins.
//! - **ZIP-215** ([`Verifier::verify_zip215`], [`Verifier::verify_batch_zip215`]): the cofactored
//!   equation with the encoding rules of Zcash's ZIP-215, under which a single check and a batch
//!   check always reach the same verdict. Replicated data (CRDT changes) needs that: every node must
//!   decide alike whether a change is valid however it happened to receive it (alone, or in a batch of
//!   a thousand), or replicas would diverge. Small-order keys are refused in both paths too, so no
//!   change can be signed in the name of a key that anyone can sign for.
//!
//! Batches use `ed25519-zebra`'s batch verifier: one multi-scalar multiplication with one term per
//! key and one per signature, two to three times cheaper per signature than checking them one by one
//! when a few writers made many signatures. Its random coefficients come from a ChaCha20 stream
//! seeded by a hash of the whole batch (as BIP-340's batch verification does): unpredictable to
//! whoever made the signatures, since changing any of them changes every coefficient, and
//! deterministic, so the core stays free of global randomness.

use std::collections::HashMap;

use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

use super::identity::{PUBLIC_KEY_LEN, PublicKey, SIGNATURE_LEN};

/// Signatures per multi-scalar multiplication: past a few hundred the gain flattens and a failed
/// batch costs more to sort out.
const CHUNK: usize = 256;
/// Decoded keys remembered; the cache is emptied when it is full.
const MAX_KEYS: usize = 4096;
const TRANSCRIPT_DOMAIN: &[u8] = b"meshrouter ed25519 batch v1\0";

/// One signature to check: the signer's key, the signed message, the signature.
pub type Item<'a> = (PublicKey, &'a [u8], [u8; SIGNATURE_LEN]);

/// A key decoded once (`None` in the cache for bytes that are not a usable key: not a curve point,
/// or a small-order one). The ZIP-215 form is made on first use: batches never need it.
struct Decoded {
    strict: ed25519_dalek::VerifyingKey,
    zip215: Option<ed25519_zebra::VerificationKey>,
}

/// Verifies many signatures by a few keys: decoding a key's curve point costs about as much as a
/// third of a verification, so it is done once per key. Holds at most 4 096 keys.
#[derive(Default)]
pub struct Verifier {
    keys: HashMap<[u8; PUBLIC_KEY_LEN], Option<Decoded>>,
}

impl Verifier {
    /// [`PublicKey::verify`] (strict), with the key's decoded point remembered.
    pub fn verify(
        &mut self,
        key: &PublicKey,
        message: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> bool {
        self.decode(key).is_some_and(|k| {
            k.strict
                .verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
                .is_ok()
        })
    }

    /// Verifies one signature under the ZIP-215 rule (see the module documentation); gives the same
    /// verdict as [`Self::verify_batch_zip215`] on it.
    pub fn verify_zip215(
        &mut self,
        key: &PublicKey,
        message: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> bool {
        let Some(decoded) = self.decode(key) else {
            return false;
        };
        if decoded.zip215.is_none() {
            decoded.zip215 = ed25519_zebra::VerificationKey::try_from(*key.as_bytes()).ok();
        }
        decoded.zip215.is_some_and(|k| {
            k.verify(&ed25519_zebra::Signature::from_bytes(signature), message)
                .is_ok()
        })
    }

    /// Verifies many signatures at once, with the strict rule's answer for each. A batch that
    /// passes proves every signature valid under ZIP-215, which can accept a signature whose `R`
    /// carries a small-order component that the strict rule refuses; only the key's holder can make
    /// one, so this is fine for *authenticating* that holder (sign-ins, tokens), not where every
    /// node must reach the same verdict (use [`Self::verify_batch_zip215`]). A batch that fails is
    /// checked one by one to find the bad signatures.
    pub fn verify_batch(&mut self, items: &[Item<'_>]) -> Vec<bool> {
        self.batch(items, Self::verify)
    }

    /// Verifies many signatures at once under the ZIP-215 rule: each verdict equals
    /// [`Self::verify_zip215`]'s on that signature alone.
    pub fn verify_batch_zip215(&mut self, items: &[Item<'_>]) -> Vec<bool> {
        self.batch(items, Self::verify_zip215)
    }

    fn batch(
        &mut self,
        items: &[Item<'_>],
        one: fn(&mut Self, &PublicKey, &[u8], &[u8; SIGNATURE_LEN]) -> bool,
    ) -> Vec<bool> {
        let mut verdicts = Vec::with_capacity(items.len());
        for chunk in items.chunks(CHUNK) {
            if self.batch_passes(chunk) {
                verdicts.extend(std::iter::repeat_n(true, chunk.len()));
            } else {
                verdicts.extend(chunk.iter().map(|(k, m, s)| one(self, k, m, s)));
            }
        }
        verdicts
    }

    /// True when every signature in `chunk` is valid under ZIP-215 and no key is unusable.
    fn batch_passes(&mut self, chunk: &[Item<'_>]) -> bool {
        if chunk.len() < 2 {
            return false; // one signature alone is cheaper to check alone
        }
        if chunk.iter().any(|(key, ..)| self.decode(key).is_none()) {
            return false;
        }
        let mut transcript = Sha256::new_with_prefix(TRANSCRIPT_DOMAIN);
        let mut batch = ed25519_zebra::batch::Verifier::new();
        for (key, message, signature) in chunk {
            transcript.update(key.as_bytes());
            transcript.update(signature);
            transcript.update((message.len() as u64).to_le_bytes());
            transcript.update(message);
            batch.queue((
                ed25519_zebra::VerificationKeyBytes::from(*key.as_bytes()),
                ed25519_zebra::Signature::from_bytes(signature),
                *message,
            ));
        }
        let coefficients = rand_chacha::ChaCha20Rng::from_seed(transcript.finalize().into());
        batch.verify(coefficients).is_ok()
    }

    fn decode(&mut self, key: &PublicKey) -> Option<&mut Decoded> {
        let bytes = key.as_bytes();
        if self.keys.len() >= MAX_KEYS && !self.keys.contains_key(bytes) {
            self.keys.clear();
        }
        self.keys
            .entry(*bytes)
            .or_insert_with(|| {
                let strict = ed25519_dalek::VerifyingKey::from_bytes(bytes).ok()?;
                (!strict.is_weak()).then_some(Decoded {
                    strict,
                    zip215: None,
                })
            })
            .as_mut()
    }
}

#[cfg(test)]
pub(crate) mod tests;
