//! Seeded randomness for the core.
//!
//! The core draws every random value (ephemeral keys, nonces, link indices, jitter) from one ChaCha20
//! stream seeded by the caller. In the daemon the seed comes from the OS, so the stream is a CSPRNG; in the
//! simulator it comes from the test's seed, so a run replays exactly.
//!
//! The stream's state (its ChaCha20 key and position) yields every output since it was seeded, forward
//! and backward, so the daemon [reseeds](Rng::reseed) it with fresh OS randomness at start and every
//! [`RESEED_INTERVAL`]: whoever reads the process's memory learns at most what was drawn since the last
//! reseed and until the next, not the ephemeral keys of earlier or later handshakes.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng};
use sha2::{Digest, Sha256};
use std::time::Duration;
use zeroize::Zeroizing;

/// How often the daemon reseeds: the link and session rekey interval, so that a state read from
/// memory reveals the ephemeral keys of about one generation of key sets.
pub const RESEED_INTERVAL: Duration = crate::core::link::REKEY_AFTER;

/// Domain separation for [`Rng::reseed`].
const RESEED_DOMAIN: &[u8] = b"meshrouter rng reseed v1\0";

/// The core's random source.
pub struct Rng(ChaCha20Rng);

impl Rng {
    /// Builds the stream from a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ChaCha20Rng::from_seed(seed))
    }

    /// Mixes `extra` (fresh entropy from the OS, in the daemon) into the stream: the new seed is
    /// SHA-256(domain | next 32 bytes of the stream | `extra`), and the new state overwrites the old
    /// one in place. Without `extra`, knowing the old state does not give the new one; with the new
    /// state, the old one cannot be recovered. The same state and `extra` give the same stream, so the
    /// simulator stays deterministic.
    pub fn reseed(&mut self, extra: &[u8; 32]) {
        let mut current = Zeroizing::new([0u8; 32]);
        self.0.fill_bytes(&mut current[..]);
        let mut seed = Zeroizing::new([0u8; 32]);
        let mut hash = Sha256::new();
        hash.update(RESEED_DOMAIN);
        hash.update(&current[..]);
        hash.update(extra);
        seed.copy_from_slice(&hash.finalize());
        self.0 = ChaCha20Rng::from_seed(*seed);
    }

    /// Returns 32 random bytes (key material).
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.0.fill_bytes(&mut out);
        out
    }

    /// Returns a random `u32`.
    pub fn u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    /// Returns a random `u64`.
    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Returns a random duration in `[0, max)`, used to de-synchronise timers.
    pub fn jitter(&mut self, max: Duration) -> Duration {
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        if micros == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.u64() % micros)
    }

    /// Returns true with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }

    /// Returns a uniform index below `n` (`n` must be non-zero; returns 0 otherwise).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.u64() % n as u64) as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(rng: &mut Rng) -> [u8; 32] {
        rng.bytes32()
    }

    #[test]
    fn reseeding_changes_the_stream_deterministically() {
        let (mut plain, mut a, mut b, mut other) = (
            Rng::from_seed([1; 32]),
            Rng::from_seed([1; 32]),
            Rng::from_seed([1; 32]),
            Rng::from_seed([1; 32]),
        );
        for rng in [&mut plain, &mut a, &mut b, &mut other] {
            draw(rng);
        }
        a.reseed(&[7; 32]);
        b.reseed(&[7; 32]);
        other.reseed(&[8; 32]);
        let (p, x, y, z) = (
            draw(&mut plain),
            draw(&mut a),
            draw(&mut b),
            draw(&mut other),
        );
        assert_ne!(x, p, "reseeding did not change the stream");
        assert_eq!(x, y, "the same state and entropy must give the same stream");
        assert_ne!(x, z, "the entropy must matter");
        // The position matters too: the same entropy later in the stream gives another seed.
        let mut later = Rng::from_seed([1; 32]);
        draw(&mut later);
        draw(&mut later);
        later.reseed(&[7; 32]);
        assert_ne!(draw(&mut later), x);
        // Pinned, so that the derivation cannot change unnoticed (a replayed simulation would). The
        // value was computed independently: SHA-256(domain | the zero key's first 32 bytes of
        // ChaCha20 keystream | 32 zeros) as the key of a new keystream, its first 32 bytes.
        let mut pinned = Rng::from_seed([0; 32]);
        pinned.reseed(&[0; 32]);
        assert_eq!(
            hex::encode(draw(&mut pinned)),
            "a9ba5557ce67136f30407c2ce08d27afe1459185ba8a0c3891803aaf28ab8d1e"
        );
    }
}
