//! Key tags: what subtree sets hold (see `super::subtrees`).
//!
//! A tag is 32 bits of a hash of a node's canonical partial key (the part of its key its address
//! gives away, so that a lookup by address can compute it). Two nodes of a 100 000-node mesh share a
//! tag with probability 100 000 / 2^32 (one pair in the whole mesh, about): a lookup for one then also
//! goes into the other's subtree, nothing worse. A set holding `n` tags says "maybe" for a key it
//! does not hold with probability n / 2^32, where an 8192-bit bloom filter past 5 000 keys says it
//! for almost every key.

use sha2::{Digest, Sha256};

/// The tag of a canonical partial key: the first 32 bits of its SHA-256 (partial keys share long
/// runs of one bits; their hash does not).
pub fn tag(target: &[u8; 32]) -> u32 {
    let digest = Sha256::digest(target);
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A set of tags. Randomly seeded: tags come from peers, who must not choose colliding ones. Nothing
/// depends on its order (what is sent is sorted first).
pub type TagSet = foldhash::HashSet<u32>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_spread_partial_keys_with_long_runs_of_ones() {
        let mut a = [0xff; 32];
        let mut b = [0xff; 32];
        a[31] = 0;
        b[31] = 1;
        assert_ne!(tag(&a), tag(&b));
        assert_ne!(tag(&a), u32::MAX);
    }
}
