use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;
use sha2::Sha512;

use super::*;
use crate::core::identity::NodeKey;

/// The identity point: a small-order key for which `R = identity, s = 0` verifies every message
/// under the bare cofactored equation.
fn identity_key() -> PublicKey {
    let mut bytes = [0u8; 32];
    bytes[0] = 1;
    PublicKey::from_bytes(bytes)
}

fn wide(parts: &[&[u8]]) -> Scalar {
    let mut hash = Sha512::new();
    for part in parts {
        hash.update(part);
    }
    Scalar::from_bytes_mod_order_wide(&hash.finalize().into())
}

/// A signature by `seed`'s key whose `R` carries a point of order 8: valid under the cofactored
/// (ZIP-215) equation, refused by the strict one. Only the key's holder can make one.
pub(crate) fn torsion_signature(seed: u8, message: &[u8]) -> (PublicKey, [u8; SIGNATURE_LEN]) {
    let expanded = Sha512::digest([seed; 32]);
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&expanded[..32]);
    secret[0] &= 248;
    secret[31] &= 127;
    secret[31] |= 64;
    let a = Scalar::from_bytes_mod_order(secret);
    let public = (ED25519_BASEPOINT_POINT * a).compress();
    let r = wide(&[&expanded[32..], message]);
    let big_r = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[1]).compress();
    let k = wide(&[big_r.as_bytes(), public.as_bytes(), message]);
    let s = r + k * a;
    let mut signature = [0u8; SIGNATURE_LEN];
    signature[..32].copy_from_slice(big_r.as_bytes());
    signature[32..].copy_from_slice(s.as_bytes());
    let key = NodeKey::from_seed(&[seed; 32]).public_key();
    assert_eq!(key.as_bytes(), public.as_bytes());
    (key, signature)
}

fn valid(n: usize) -> (Vec<NodeKey>, Vec<Vec<u8>>) {
    let keys = (0..n)
        .map(|i| NodeKey::from_seed(&[i as u8 % 5; 32]))
        .collect();
    let messages = (0..n)
        .map(|i| format!("message {i}").into_bytes())
        .collect();
    (keys, messages)
}

#[test]
fn a_batch_gives_each_signature_its_own_verdict_under_both_rules() {
    let keys: Vec<NodeKey> = (0..100u8).map(|n| NodeKey::from_seed(&[n; 32])).collect();
    let messages: Vec<Vec<u8>> = (0..100u8).map(|n| vec![n; 40]).collect();
    let mut items: Vec<Item<'_>> = keys
        .iter()
        .zip(&messages)
        .map(|(k, m)| (k.public_key(), m.as_slice(), k.sign(m)))
        .collect();
    let mut verifier = Verifier::default();
    assert!(verifier.verify_batch(&items).iter().all(|v| *v));
    assert!(verifier.verify_batch_zip215(&items).iter().all(|v| *v));
    // A flipped bit, a signature by the wrong key, and a small-order key with the signature that
    // the bare cofactored equation accepts for any message.
    items[3].2[10] ^= 1;
    items[50].2 = keys[51].sign(&messages[50]);
    items[99].0 = identity_key();
    items[99].2 = [0; SIGNATURE_LEN];
    items[99].2[0] = 1;
    for verdicts in [
        verifier.verify_batch(&items),
        verifier.verify_batch_zip215(&items),
    ] {
        for (i, v) in verdicts.iter().enumerate() {
            assert_eq!(*v, ![3, 50, 99].contains(&i), "signature {i}");
        }
    }
    assert!(!verifier.verify_zip215(&items[99].0, items[99].1, &items[99].2));
    assert!(verifier.verify_batch(&[]).is_empty());
}

#[test]
fn a_torsion_signature_gets_the_same_zip215_verdict_alone_and_in_a_batch() {
    let (key, signature) = torsion_signature(7, b"edge case");
    let mut verifier = Verifier::default();
    assert!(!key.verify(b"edge case", &signature));
    assert!(!verifier.verify(&key, b"edge case", &signature));
    assert!(verifier.verify_zip215(&key, b"edge case", &signature));
    assert!(!verifier.verify_zip215(&key, b"edge cases", &signature));

    let (keys, messages) = valid(40);
    let mut items: Vec<Item<'_>> = keys
        .iter()
        .zip(&messages)
        .map(|(k, m)| (k.public_key(), m.as_slice(), k.sign(m)))
        .collect();
    items.insert(17, (key, b"edge case", signature));
    assert!(verifier.verify_batch_zip215(&items).iter().all(|v| *v));
    // With a bad signature beside it, the batch falls back to single checks: still accepted
    // under ZIP-215, refused under the strict rule.
    items[30].2[40] ^= 1;
    let zip215 = verifier.verify_batch_zip215(&items);
    let strict = verifier.verify_batch(&items);
    assert!(zip215[17] && !zip215[30]);
    assert!(!strict[17] && !strict[30]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever mix of valid, torsion, tampered and wrong-key signatures a batch holds, its
    /// ZIP-215 verdicts are exactly those of checking each alone.
    #[test]
    fn zip215_batch_verdicts_equal_single_verdicts(
        kinds in proptest::collection::vec(0u8..5, 0..48),
    ) {
        let (keys, messages) = valid(kinds.len());
        let items: Vec<Item<'_>> = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let (key, message) = (&keys[i], messages[i].as_slice());
                match kind {
                    0 => (key.public_key(), message, key.sign(message)),
                    1 => {
                        let (k, s) = torsion_signature(i as u8 % 5, message);
                        (k, message, s)
                    }
                    2 => {
                        let mut s = key.sign(message);
                        s[i % 64] ^= 0x10;
                        (key.public_key(), message, s)
                    }
                    3 => (NodeKey::from_seed(&[99; 32]).public_key(), message, key.sign(message)),
                    _ => (identity_key(), message, [0; SIGNATURE_LEN]),
                }
            })
            .collect();
        let mut verifier = Verifier::default();
        let batch = verifier.verify_batch_zip215(&items);
        let single: Vec<bool> = items
            .iter()
            .map(|(k, m, s)| Verifier::default().verify_zip215(k, m, s))
            .collect();
        prop_assert_eq!(batch, single);
    }
}
