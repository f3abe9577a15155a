//! An 8192-bit bloom filter over canonical partial keys, with 8 hash functions (as ironwood).

use sha2::{Digest, Sha256};

use crate::core::wire::lookup::BLOOM_WORDS;

const BITS: u64 = (BLOOM_WORDS * 64) as u64;
const HASHES: u64 = 8;

/// A set of partial keys with false positives but no false negatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter(pub [u64; BLOOM_WORDS]);

impl Default for Filter {
    fn default() -> Self {
        Self([0; BLOOM_WORDS])
    }
}

/// Bit positions of `key`: double hashing over SHA-256, so positions are uniform even though partial
/// keys share long runs of one bits.
fn positions(key: &[u8; 32]) -> impl Iterator<Item = u64> {
    let digest = Sha256::digest(key);
    let h1 = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
    let h2 = u64::from_be_bytes(digest[8..16].try_into().unwrap_or_default()) | 1;
    (0..HASHES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % BITS)
}

impl Filter {
    /// Adds a key.
    pub fn insert(&mut self, key: &[u8; 32]) {
        for p in positions(key) {
            self.0[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    /// Returns true if the key may be in the set.
    pub fn contains(&self, key: &[u8; 32]) -> bool {
        positions(key).all(|p| self.0[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }

    /// Adds every key of `other`.
    pub fn union(&mut self, other: &Filter) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// The bits set here but not in `other`.
    pub fn minus(&self, other: &Filter) -> Filter {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0.iter()) {
            *a &= !b;
        }
        out
    }

    /// Returns true if some bit is set in both.
    pub fn intersects(&self, other: &Filter) -> bool {
        self.0.iter().zip(other.0.iter()).any(|(a, b)| a & b != 0)
    }

    /// Returns true if no bit is set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// About how many keys the filter holds, from how many bits are set (Swamidass and Baldi:
    /// n = -(m/k) ln(1 - X/m)); a full filter counts as one bit short of full, about 9 200 keys.
    pub fn estimated_keys(&self) -> f64 {
        let set: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        let m = BITS as f64;
        let x = f64::from(set).min(m - 1.0);
        -(m / HASHES as f64) * (1.0 - x / m).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_follows_the_keys_and_saturates() {
        let mut f = Filter::default();
        assert_eq!(f.estimated_keys(), 0.0);
        for i in 0..500u32 {
            f.insert(&Sha256::digest(i.to_be_bytes()).into());
        }
        let n = f.estimated_keys();
        assert!((450.0..550.0).contains(&n), "{n}");
        let full = Filter([u64::MAX; BLOOM_WORDS]);
        let most = full.estimated_keys();
        assert!((9000.0..9500.0).contains(&most), "{most}");
    }

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let mut f = Filter::default();
        let keys: Vec<[u8; 32]> = (0..200u32)
            .map(|i| Sha256::digest(i.to_be_bytes()).into())
            .collect();
        for k in &keys {
            f.insert(k);
        }
        assert!(keys.iter().all(|k| f.contains(k)));
        let false_positives = (1000..11_000u32)
            .filter(|i| f.contains(&Sha256::digest(i.to_be_bytes()).into()))
            .count();
        // Expected rate with 200 keys: (1 - e^(-8*200/8192))^8 ≈ 3e-6.
        assert!(false_positives < 5, "{false_positives}");
    }
}
