use serde_json::{Value, json};

use super::*;

const KEY_PAIR: &str = include_str!("../../../../tests/data/vc-di-eddsa/keyPair.json");
const SIGNED: &str = include_str!("../../../../tests/data/vc-di-eddsa/signedJCS.json");
const SIGNED_NO_PROOF_CONTEXT: &str =
    include_str!("../../../../tests/data/vc-di-eddsa/signedJCS-no-proof-context.json");
const NOW: u64 = 1_790_000_000;

fn object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text).unwrap() {
        Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

/// The specification's key pair: a multibase `ed25519-pub` key and an `ed25519-priv` (0x8026) seed.
fn spec_key() -> (NodeKey, PublicKey) {
    let pair = object(KEY_PAIR);
    let secret = bs58::decode(&pair["privateKeyMultibase"].as_str().unwrap()[1..])
        .into_vec()
        .unwrap();
    assert_eq!(secret[..2], [0x80, 0x26]);
    let key = NodeKey::from_seed(&secret[2..].try_into().unwrap());
    let public = pair["publicKeyMultibase"].as_str().unwrap();
    let did = format!("did:key:{public}");
    assert_eq!(parse_did_key(&did), Ok(key.public_key()));
    let public = key.public_key();
    (key, public)
}

#[test]
fn specification_vectors_verify() {
    let (_, public) = spec_key();
    for text in [SIGNED, SIGNED_NO_PROOF_CONTEXT] {
        let unsecured = verify_proof(&object(text), &public).unwrap();
        assert_eq!(unsecured["name"], "Alumni Credential");
        assert!(!unsecured.contains_key("proof"));
    }
}

#[test]
fn issuing_reproduces_the_specification_proof() {
    let (key, _) = spec_key();
    let mut signed = object(SIGNED);
    let Some(Value::Object(mut proof)) = signed.remove("proof") else {
        panic!("no proof")
    };
    let expected = proof.remove("proofValue").unwrap();
    proof.remove("@context");
    let ours = add_proof(&key, &signed, &proof).unwrap();
    assert_eq!(ours["proof"]["proofValue"], expected);
    assert_eq!(
        Value::Object(ours),
        serde_json::from_str::<Value>(SIGNED).unwrap()
    );
}

fn alumni(issuer: &NodeKey) -> Map<String, Value> {
    let credential = json!({
        "@context": [CREDENTIALS_V2],
        "id": "urn:uuid:0b7c0e52-1bd6-4ad4-9d55-9c2e5a4d2f10",
        "type": ["VerifiableCredential", "MembershipCredential"],
        "validUntil": rfc3339(NOW + 3600),
        "credentialSubject": {"id": "did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th", "role": "medic"}
    });
    issue(issuer, credential.as_object().unwrap(), NOW).unwrap()
}

#[test]
fn issued_credentials_verify_offline() {
    let issuer = NodeKey::from_seed(&[3; 32]);
    let vc = alumni(&issuer);
    let verified = verify(&Value::Object(vc.clone()), NOW + 10).unwrap();
    assert_eq!(verified.issuer, did_key(&issuer.public_key()));
    assert_eq!(verified.key, issuer.public_key());
    assert_eq!(
        verified.id.as_deref(),
        Some("urn:uuid:0b7c0e52-1bd6-4ad4-9d55-9c2e5a4d2f10")
    );
    assert_eq!(verified.credential["credentialSubject"]["role"], "medic");
    // Member order and spacing do not matter: JCS signs the canonical form.
    let reordered: Value = serde_json::from_str(
        &serde_json::to_string_pretty(&Value::Object(vc.into_iter().rev().collect())).unwrap(),
    )
    .unwrap();
    verify(&reordered, NOW).unwrap();
}

#[test]
fn every_negative_case_is_refused() {
    let issuer = NodeKey::from_seed(&[3; 32]);
    let vc = alumni(&issuer);
    let check = |doc: &Map<String, Value>, now| verify(&Value::Object(doc.clone()), now);

    let mut tampered = vc.clone();
    tampered["credentialSubject"]["role"] = json!("admin");
    assert_eq!(check(&tampered, NOW), Err(VcError::BadSignature));

    let mut tampered_proof = vc.clone();
    tampered_proof["proof"]["created"] = json!(rfc3339(NOW + 1));
    assert_eq!(check(&tampered_proof, NOW), Err(VcError::BadSignature));

    assert!(matches!(
        check(&vc, NOW + 3600 + 61),
        Err(VcError::Expired(_))
    ));
    assert!(matches!(
        check(&vc, NOW - 120),
        Err(VcError::NotYetValid(_))
    ));

    // Signed by someone else than the issuer it names.
    let mut forged = vc.clone();
    forged.remove("proof");
    let mallory = NodeKey::from_seed(&[4; 32]);
    let proof = alumni(&mallory)["proof"].as_object().unwrap().clone();
    let forged = add_proof(&mallory, &forged, &proof).unwrap();
    assert!(matches!(
        check(&forged, NOW),
        Err(VcError::VerificationMethod(_))
    ));

    let mut other_suite = vc.clone();
    other_suite["proof"]["cryptosuite"] = json!("eddsa-rdfc-2022");
    assert!(matches!(check(&other_suite, NOW), Err(VcError::Proof(_))));

    let mut no_proof = vc.clone();
    no_proof.remove("proof");
    assert!(matches!(check(&no_proof, NOW), Err(VcError::Proof(_))));

    let mut purpose = vc.clone();
    purpose["proof"]["proofPurpose"] = json!("authentication");
    assert!(matches!(check(&purpose, NOW), Err(VcError::Proof(_))));

    let mut context = vc.clone();
    context["@context"] = json!(["https://www.w3.org/2018/credentials/v1"]);
    assert!(matches!(
        check(&context, NOW),
        Err(VcError::NotCredential(_))
    ));

    let mut garbage = vc.clone();
    garbage["proof"]["proofValue"] = json!("zzzz0OIl");
    assert!(matches!(check(&garbage, NOW), Err(VcError::Proof(_))));

    assert!(matches!(
        verify(&json!([1, 2]), NOW),
        Err(VcError::NotCredential(_))
    ));
}
