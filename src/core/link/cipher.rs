//! Which AEAD protects a link's data frames.
//!
//! Every node speaks ChaCha20-Poly1305. Links between two nodes whose CPUs have AES instructions
//! (x86-64 AES-NI with CLMUL, ARMv8 AES with PMULL: a Raspberry Pi 5, not a Pi 4) use AES-256-GCM
//! instead, which is 3-4 times cheaper there; elsewhere ChaCha20 is both faster and free of cache-timing
//! leaks. This is the choice TLS stacks make, and the one Yggdrasil's TLS links get. End-to-end sessions
//! choose the same way between their two ends' CPUs (relays never touch their frames). The initiator
//! offers, the responder picks, and both messages are signed and hashed into the keys, so a man in the
//! middle cannot downgrade the choice.

use ring::aead::{AES_256_GCM, Algorithm, CHACHA20_POLY1305};

/// Offer bit for [`Cipher::ChaCha20Poly1305`].
pub const OFFER_CHACHA20_POLY1305: u8 = 0x01;
/// Offer bit for [`Cipher::Aes256Gcm`].
pub const OFFER_AES_256_GCM: u8 = 0x02;

/// A data-frame AEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// RFC 8439, the default.
    ChaCha20Poly1305,
    /// AES-256-GCM, only between CPUs with AES instructions.
    Aes256Gcm,
}

impl Cipher {
    /// The byte a response carries: the cipher's offer bit.
    pub fn wire(self) -> u8 {
        match self {
            Self::ChaCha20Poly1305 => OFFER_CHACHA20_POLY1305,
            Self::Aes256Gcm => OFFER_AES_256_GCM,
        }
    }

    /// Reads a response's byte.
    pub fn from_wire(byte: u8) -> Option<Self> {
        match byte {
            OFFER_CHACHA20_POLY1305 => Some(Self::ChaCha20Poly1305),
            OFFER_AES_256_GCM => Some(Self::Aes256Gcm),
            _ => None,
        }
    }

    /// The offer of a node that may (or may not) use AES-256-GCM.
    pub fn offer(aes_gcm: bool) -> u8 {
        OFFER_CHACHA20_POLY1305 | if aes_gcm { OFFER_AES_256_GCM } else { 0 }
    }

    /// The responder's pick among what both offer: AES-256-GCM if both can, else ChaCha20-Poly1305;
    /// `None` if the two have nothing in common.
    pub fn choose(theirs: u8, ours: u8) -> Option<Self> {
        let common = theirs & ours;
        if common & OFFER_AES_256_GCM != 0 {
            Some(Self::Aes256Gcm)
        } else if common & OFFER_CHACHA20_POLY1305 != 0 {
            Some(Self::ChaCha20Poly1305)
        } else {
            None
        }
    }

    /// Name shown to operators.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
            Self::Aes256Gcm => "aes-256-gcm",
        }
    }

    pub(super) fn algorithm(self) -> &'static Algorithm {
        match self {
            Self::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            Self::Aes256Gcm => &AES_256_GCM,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_responder_picks_aes_only_when_both_offer_it() {
        let (aes, plain) = (Cipher::offer(true), Cipher::offer(false));
        assert_eq!(Cipher::choose(aes, aes), Some(Cipher::Aes256Gcm));
        assert_eq!(Cipher::choose(aes, plain), Some(Cipher::ChaCha20Poly1305));
        assert_eq!(Cipher::choose(plain, aes), Some(Cipher::ChaCha20Poly1305));
        assert_eq!(Cipher::choose(OFFER_AES_256_GCM, plain), None);
        assert_eq!(Cipher::choose(0, aes), None);
        for c in [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm] {
            assert_eq!(Cipher::from_wire(c.wire()), Some(c));
        }
        assert_eq!(Cipher::from_wire(3), None);
        assert_eq!(Cipher::from_wire(0), None);
    }
}
