use std::cell::RefCell;

use super::*;

const NOW: u64 = 1_790_000_000;
const HOUR: u64 = 3600;

fn key(n: u8) -> NodeKey {
    NodeKey::from_seed(&[n; 32])
}

fn did(n: u8) -> String {
    did_key(&key(n).public_key())
}

fn cap(with: &str, can: &str) -> Capability {
    Capability {
        with: with.into(),
        can: can.into(),
    }
}

/// Admin (1) is the root of everything; nobody else is a root.
fn admin_root(issuer: &str, _: &Capability) -> bool {
    issuer == did(1)
}

fn never_revoked(_: &str, _: &[String]) -> bool {
    false
}

const POLICY: Policy<'static> = Policy {
    is_root: &admin_root,
    is_revoked: &never_revoked,
};

/// admin → alice (2): write anything in the village namespace for 2 h;
/// alice → bob (3): write the ledger for 1 h.
fn chain() -> (String, String) {
    let to_alice = delegate(
        &key(1),
        &did(2),
        &[cap("crdt://village/*", "crdt/*")],
        NOW,
        NOW + 2 * HOUR,
        &[],
    );
    let to_bob = delegate(
        &key(2),
        &did(3),
        &[cap("crdt://village/ledger", "crdt/write")],
        NOW,
        NOW + HOUR,
        std::slice::from_ref(&to_alice),
    );
    (to_alice, to_bob)
}

#[test]
fn an_attenuated_chain_verifies_offline() {
    let (to_alice, to_bob) = chain();
    let bob = verify(&to_bob, NOW + 5, &POLICY).unwrap();
    assert_eq!(bob.issuer, did(2));
    assert_eq!(bob.audience, did(3));
    assert_eq!(bob.issuers, vec![did(2), did(1)]);
    assert_eq!(bob.id, token_id(&to_bob));
    bob.authorizes(&did(3), &cap("crdt://village/ledger", "crdt/write"))
        .unwrap();
    assert_eq!(
        bob.authorizes(&did(3), &cap("crdt://village/ledger", "crdt/delete")),
        Err(UcanError::NotGranted(
            "crdt://village/ledger".into(),
            "crdt/delete".into()
        ))
    );
    assert!(matches!(
        bob.authorizes(&did(4), &cap("crdt://village/ledger", "crdt/write")),
        Err(UcanError::WrongAudience(_))
    ));
    verify(&to_alice, NOW, &POLICY)
        .unwrap()
        .authorizes(&did(2), &cap("crdt://village/roster", "crdt/add"))
        .unwrap();
}

#[test]
fn widening_is_refused() {
    let (to_alice, _) = chain();
    for wider in [
        cap("crdt://*", "crdt/write"),
        cap("crdt://town/ledger", "crdt/write"),
        cap("crdt://village/ledger", "*"),
        cap("crdt://village/ledger", "id/enroll"),
    ] {
        let token = delegate(
            &key(2),
            &did(3),
            std::slice::from_ref(&wider),
            NOW,
            NOW + HOUR,
            std::slice::from_ref(&to_alice),
        );
        assert!(
            matches!(
                verify(&token, NOW, &POLICY),
                Err(UcanError::Widening(1, _, _))
            ),
            "{wider:?}"
        );
    }
    // Outliving the grant is widening in time.
    let longer = delegate(
        &key(2),
        &did(3),
        &[cap("crdt://village/ledger", "crdt/write")],
        NOW,
        NOW + 3 * HOUR,
        std::slice::from_ref(&to_alice),
    );
    assert!(matches!(
        verify(&longer, NOW, &POLICY),
        Err(UcanError::Widening(1, _, _))
    ));
    // A root that is not trusted.
    let self_made = delegate(
        &key(2),
        &did(3),
        &[cap("crdt://village/ledger", "crdt/write")],
        NOW,
        NOW + HOUR,
        &[],
    );
    assert!(matches!(
        verify(&self_made, NOW, &POLICY),
        Err(UcanError::Widening(1, _, _))
    ));
}

#[test]
fn a_proof_granted_to_someone_else_is_refused() {
    let (to_alice, _) = chain();
    // Mallory (4) presents alice's grant as her own proof.
    let stolen = delegate(
        &key(4),
        &did(3),
        &[cap("crdt://village/ledger", "crdt/write")],
        NOW,
        NOW + HOUR,
        &[to_alice],
    );
    assert_eq!(
        verify(&stolen, NOW, &POLICY),
        Err(UcanError::NotAudience(1, did(2)))
    );
}

#[test]
fn expiry_anywhere_in_the_chain_ends_it() {
    let (_, to_bob) = chain();
    assert!(matches!(
        verify(&to_bob, NOW + HOUR + 61, &POLICY),
        Err(UcanError::Token(1, JwtError::Expired(_)))
    ));
    let short_root = delegate(&key(1), &did(2), &[cap("*", "*")], NOW, NOW + 60, &[]);
    let leaf = delegate(
        &key(2),
        &did(3),
        &[cap("x:y", "z")],
        NOW,
        NOW + 60,
        &[short_root],
    );
    assert!(verify(&leaf, NOW, &POLICY).is_ok());
    assert!(matches!(
        verify(&leaf, NOW + 200, &POLICY),
        Err(UcanError::Token(_, JwtError::Expired(_)))
    ));
}

#[test]
fn chains_deeper_than_eight_are_refused() {
    let mut token = delegate(&key(1), &did(10), &[cap("*", "*")], NOW, NOW + HOUR, &[]);
    for n in 10..17u8 {
        token = delegate(
            &key(n),
            &did(n + 1),
            &[cap("*", "*")],
            NOW,
            NOW + HOUR,
            &[token],
        );
    }
    // Eight tokens: accepted.
    assert_eq!(verify(&token, NOW, &POLICY).unwrap().issuers.len(), 8);
    let nine = delegate(
        &key(17),
        &did(18),
        &[cap("*", "*")],
        NOW,
        NOW + HOUR,
        &[token],
    );
    assert_eq!(verify(&nine, NOW, &POLICY), Err(UcanError::TooDeep));
}

#[test]
fn revocation_by_an_issuer_above_is_honoured_and_by_a_stranger_ignored() {
    let (to_alice, to_bob) = chain();
    let alice_id = token_id(&to_alice);
    let revoker = RefCell::new(did(1));
    let is_revoked =
        |id: &str, issuers: &[String]| id == alice_id && issuers.contains(&revoker.borrow());
    let policy = Policy {
        is_root: &admin_root,
        is_revoked: &is_revoked,
    };
    assert_eq!(
        verify(&to_bob, NOW, &policy),
        Err(UcanError::Revoked(alice_id.clone()))
    );
    // Bob cannot revoke the grant his own proof rests on: he is not above it.
    *revoker.borrow_mut() = did(3);
    assert!(verify(&to_bob, NOW, &policy).is_ok());
}

#[test]
fn forged_or_malformed_tokens_are_refused() {
    let (_, to_bob) = chain();
    let mut parts: Vec<&str> = to_bob.split('.').collect();
    let other = delegate(&key(2), &did(3), &[cap("*", "*")], NOW, NOW + HOUR, &[]);
    parts[1] = other.split('.').nth(1).unwrap();
    assert!(matches!(
        verify(&parts.join("."), NOW, &POLICY),
        Err(UcanError::Token(1, JwtError::BadSignature))
    ));
    let mut claims = Map::new();
    claims.insert("aud".into(), json!(did(3)));
    claims.insert("exp".into(), json!(NOW + 10));
    let not_a_delegation = jwt::issue(&key(1), &claims);
    assert!(matches!(
        verify(&not_a_delegation, NOW, &POLICY),
        Err(UcanError::Token(1, JwtError::WrongKind { .. }))
    ));
    claims.insert("ucv".into(), json!("0.9.0"));
    let no_att = jwt::issue(&key(1), &claims);
    assert!(matches!(
        verify(&no_att, NOW, &POLICY),
        Err(UcanError::Malformed(1, _))
    ));
    claims.insert("att".into(), json!([{"with": "*", "can": "*"}]));
    claims.insert("iss".into(), json!(did(2)));
    let lying_iss = jwt::issue(&key(1), &claims);
    assert!(matches!(
        verify(&lying_iss, NOW, &POLICY),
        Err(UcanError::Token(1, JwtError::KidMismatch))
    ));
}
