//! A verified tree announcement and the order that decides which of two announcements wins.

use std::cmp::Ordering;

use crate::core::identity::{NodeKey, PublicKey};
use crate::core::wire::tree::{Announce, FLAG_DETACHED};

/// Why an announcement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// A signature did not verify.
    #[error("bad signature")]
    BadSignature,
    /// A root announcement with a port, or a non-root one with port 0, or a detached non-root.
    #[error("inconsistent fields")]
    Inconsistent,
    /// The peer sent more new announcements than we verify per second; it retransmits (we did not
    /// acknowledge).
    #[error("over the peer's verification budget")]
    OverBudget,
}

/// Checks both signatures and the field rules of an announcement.
pub(super) fn verify(a: &Announce) -> Result<(), AnnounceError> {
    let root = a.key == a.parent;
    let detached = a.flags & FLAG_DETACHED != 0;
    if root != (a.port == 0) || (detached && !root) || detached != a.best.is_some() {
        return Err(AnnounceError::Inconsistent);
    }
    let signed = a.signed();
    if !a.key.verify(&signed, &a.sig) || !a.parent.verify(&signed, &a.psig) {
        return Err(AnnounceError::BadSignature);
    }
    Ok(())
}

/// Builds and signs our own root announcement, or a detached one naming the best key heard of
/// (`detached_best`).
pub(super) fn sign_root(
    node: &NodeKey,
    seq: u64,
    nonce: u64,
    detached_best: Option<PublicKey>,
) -> Announce {
    let key = node.public_key();
    let mut a = Announce {
        key,
        parent: key,
        seq,
        nonce,
        port: 0,
        flags: if detached_best.is_some() {
            FLAG_DETACHED
        } else {
            0
        },
        best: detached_best,
        psig: [0; 64],
        sig: [0; 64],
    };
    a.sig = node.sign(&a.signed());
    a.psig = a.sig;
    a
}

/// Builds the parent signature a peer asked for with its `SigReq`.
pub(super) fn sign_as_parent(
    node: &NodeKey,
    child: &PublicKey,
    seq: u64,
    nonce: u64,
    port: u64,
) -> [u8; 64] {
    node.sign(&Announce::signed_bytes(
        child,
        &node.public_key(),
        seq,
        nonce,
        port,
        0,
    ))
}

/// Checks a parent signature received in a `SigRes`.
pub(super) fn check_parent_signature(
    child: &PublicKey,
    parent: &PublicKey,
    seq: u64,
    nonce: u64,
    port: u64,
    psig: &[u8; 64],
) -> bool {
    parent.verify(
        &Announce::signed_bytes(child, parent, seq, nonce, port, 0),
        psig,
    )
}

/// Completes our announcement under `parent` with the parent's signature.
pub(super) fn sign_child(
    node: &NodeKey,
    parent: PublicKey,
    seq: u64,
    nonce: u64,
    port: u64,
    psig: [u8; 64],
) -> Announce {
    let key = node.public_key();
    let sig = node.sign(&Announce::signed_bytes(&key, &parent, seq, nonce, port, 0));
    Announce {
        key,
        parent,
        seq,
        nonce,
        port,
        flags: 0,
        best: None,
        psig,
        sig,
    }
}

/// Orders two announcements of the same node; the greater one wins everywhere. Higher seq wins; a node
/// that signed two different announcements with one seq is broken or malicious, and the tie is broken
/// the same way on every node (lower parent, then lower nonce, then the bytes of the signature).
pub(super) fn order(a: &Announce, b: &Announce) -> Ordering {
    a.seq
        .cmp(&b.seq)
        .then_with(|| b.parent.cmp(&a.parent))
        .then_with(|| b.nonce.cmp(&a.nonce))
        .then_with(|| b.sig.cmp(&a.sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_announcements_verify_and_tampering_fails() {
        let root = NodeKey::from_seed(&[1; 32]);
        let child = NodeKey::from_seed(&[2; 32]);
        let r = sign_root(&root, 5, 6, None);
        assert_eq!(verify(&r), Ok(()));
        let psig = sign_as_parent(&root, &child.public_key(), 9, 10, 3);
        assert!(check_parent_signature(
            &child.public_key(),
            &root.public_key(),
            9,
            10,
            3,
            &psig
        ));
        let c = sign_child(&child, root.public_key(), 9, 10, 3, psig);
        assert_eq!(verify(&c), Ok(()));
        for tamper in 0..6 {
            let mut t = c;
            match tamper {
                0 => t.seq += 1,
                1 => t.nonce += 1,
                2 => t.port += 1,
                3 => t.parent = child.public_key(),
                4 => t.psig[0] ^= 1,
                _ => t.sig[63] ^= 1,
            }
            assert!(verify(&t).is_err(), "tamper {tamper}");
        }
        let mut detached_child = c;
        detached_child.flags = FLAG_DETACHED;
        assert_eq!(verify(&detached_child), Err(AnnounceError::Inconsistent));
        // A detached announcement names the best key heard of, under both signatures.
        let d = sign_root(&root, 7, 8, Some(child.public_key()));
        assert_eq!(verify(&d), Ok(()));
        let mut t = d;
        t.best = Some(root.public_key());
        assert_eq!(verify(&t), Err(AnnounceError::BadSignature));
        t.best = None;
        assert_eq!(
            verify(&t),
            Err(AnnounceError::Inconsistent),
            "detached: best required"
        );
        let mut t = r;
        t.best = Some(child.public_key());
        assert_eq!(
            verify(&t),
            Err(AnnounceError::Inconsistent),
            "attached: none"
        );
    }

    #[test]
    fn order_prefers_higher_seq_then_lower_parent() {
        let n = NodeKey::from_seed(&[1; 32]);
        let a = sign_root(&n, 1, 0, None);
        let b = sign_root(&n, 2, 0, None);
        assert_eq!(order(&b, &a), Ordering::Greater);
        let mut c = a;
        c.parent = PublicKey::from_bytes([0; 32]);
        assert_eq!(order(&c, &a), Ordering::Greater);
    }
}
