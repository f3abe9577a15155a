//! A cheap, deterministic, **insecure** stand-in for Ed25519 and X25519, for the scale benchmark only.
//!
//! At 10 000 simulated nodes a third of the simulator's time went to elliptic-curve arithmetic that
//! the shared memo ([`super::shared_verifications`]) cannot save: each node's own signatures (one per
//! announcement and parent signature it makes), the first check of each, and each link's handshake
//! (two signature checks and a Diffie-Hellman). A scale run measures routing, not authenticity, so
//! `benches/scale.rs` turns this on: a signature becomes SHA-512 of the signer's key and the message
//! (anyone can make one), a handshake's shared secret SHA-256 of the two ephemeral public halves
//! (anyone can compute it). Every decision that depends on a check passing or failing for honest
//! nodes stays the same, so routing, traffic and timing are what they would be; the bytes on the wire
//! have the same sizes.
//!
//! Off unless [`enable`] is called, and never called by the daemon, the tests or any simulation that
//! has an adversary in it: with it on, anyone can forge anything.

use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256, Sha512};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Replaces signatures and key agreement with their stand-ins for the rest of this process. For
/// scale measurements only: it makes every signature forgeable and every link readable.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether the stand-in is on.
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The stand-in signature of `message` by `key`.
pub(crate) fn signature(key: &[u8; 32], message: &[u8]) -> [u8; 64] {
    Sha512::new()
        .chain_update(b"meshrouter insecure stand-in signature")
        .chain_update(key)
        .chain_update(message)
        .finalize()
        .into()
}

/// The stand-in public half of an ephemeral key pair.
pub(crate) fn ephemeral_public(secret: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"meshrouter insecure stand-in ephemeral")
        .chain_update(secret)
        .finalize()
        .into()
}

/// The stand-in shared secret of two ephemeral public halves (the same whichever side computes it).
pub(crate) fn shared_secret(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    Sha256::new()
        .chain_update(b"meshrouter insecure stand-in shared")
        .chain_update(low)
        .chain_update(high)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use crate::core::identity::NodeKey;

    /// No unit test turns the stand-in on (it is process-wide): these show it is off by default.
    #[test]
    fn without_enable_a_stand_in_signature_is_refused_and_real_ones_are_made() {
        assert!(!super::enabled());
        let key = NodeKey::from_seed(&[9; 32]);
        let public = key.public_key();
        let forged = super::signature(public.as_bytes(), b"message");
        assert!(!public.verify(b"message", &forged));
        let real = key.sign(b"message");
        assert_ne!(real, forged);
        assert!(public.verify(b"message", &real));
    }
}
