//! Seeded randomness for the core.
//!
//! The core draws every random value (ephemeral keys, nonces, link indices, jitter) from one ChaCha20
//! stream seeded by the caller. In the daemon the seed comes from the OS, so the stream is a CSPRNG; in the
//! simulator it comes from the test's seed, so a run replays exactly.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng};
use std::time::Duration;

/// The core's random source.
pub struct Rng(ChaCha20Rng);

impl Rng {
    /// Builds the stream from a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ChaCha20Rng::from_seed(seed))
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
