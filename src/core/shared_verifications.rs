//! Signature checks shared by every node of one process, for the simulator's large meshes only.
//!
//! In a tree of N nodes, the root's announcement is checked by all N of them, its children's by
//! nearly as many: a 1 000-node simulation spent 58 % of its time in Ed25519 verification, almost
//! all of it repeating checks another simulated node had already made. A check is a pure function
//! of (key, message, signature), so remembering the ones that passed, process-wide, changes no
//! verdict: it is not a stand-in for verification, only a memo of it. Only passes are remembered
//! (by a 128-bit digest of the three), so a forged signature is still checked, and refused, every
//! time. Off unless [`enable`] is called: the daemon never calls it (each node is its own process
//! there, and keeps no memo); [`crate::sim::Sim`] does.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

/// Digests remembered at most; the memo is emptied when full (about 200 MiB at this size).
const MAX_REMEMBERED: usize = 8 << 20;

static ENABLED: AtomicBool = AtomicBool::new(false);
static PASSED: Mutex<Option<HashSet<u128>>> = Mutex::new(None);

/// Turns the memo on for the rest of this process.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Returns `check()`'s verdict for (key, message, signature), from the memo when that triple
/// passed before in this process (and the memo is on).
pub fn verify(
    key: &[u8; 32],
    message: &[u8],
    signature: &[u8; 64],
    check: impl FnOnce() -> bool,
) -> bool {
    if !ENABLED.load(Ordering::Relaxed) {
        return check();
    }
    let digest = Sha256::new()
        .chain_update(key)
        .chain_update(signature)
        .chain_update((message.len() as u64).to_be_bytes())
        .chain_update(message)
        .finalize();
    let id = u128::from_be_bytes(digest[..16].try_into().unwrap_or_default());
    let seen = (PASSED.lock().ok())
        .and_then(|memo| memo.as_ref().map(|m| m.contains(&id)))
        .unwrap_or(false);
    if seen {
        return true;
    }
    let passed = check();
    if passed && let Ok(mut memo) = PASSED.lock() {
        let memo = memo.get_or_insert_with(HashSet::new);
        if memo.len() >= MAX_REMEMBERED {
            memo.clear();
        }
        memo.insert(id);
    }
    passed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::NodeKey;

    #[test]
    fn the_memo_keeps_passes_only_and_changes_no_verdict() {
        enable();
        let key = NodeKey::from_seed(&[7; 32]);
        let public = key.public_key();
        let signature = key.sign(b"hello");
        let mut checks = 0;
        let mut check = |message: &[u8], signature: &[u8; 64]| {
            verify(public.as_bytes(), message, signature, || {
                checks += 1;
                public.verify(message, signature)
            })
        };
        assert!(check(b"hello", &signature));
        assert!(check(b"hello", &signature));
        let mut forged = signature;
        forged[3] ^= 1;
        assert!(!check(b"hello", &forged));
        assert!(!check(b"hello", &forged));
        assert!(!check(b"hellp", &signature));
        assert_eq!(checks, 4, "one check for the pass, one per refusal");
    }
}
