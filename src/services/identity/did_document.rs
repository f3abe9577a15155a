//! The DID document of an Ed25519 `did:key`, as the did:key method derives it: one `Multikey`
//! verification method (fragment = the key's multibase form) used for every relationship, and the
//! X25519 key-agreement key the Ed25519 key converts to. A did:key cannot rotate or be deactivated,
//! so the document is a pure function of the key and needs no resolver, network or cache.

use serde_json::{Value, json};

use super::did_key::did_key;
use crate::core::identity::PublicKey;

/// Multicodec `x25519-pub` (varint 0xec).
const X25519_MULTICODEC: [u8; 2] = [0xec, 0x01];

/// The multibase (`z…`) X25519 public key of an Ed25519 key (birational map to Montgomery form);
/// `None` for bytes that are not a curve point.
pub fn x25519_multibase(key: &PublicKey) -> Option<String> {
    let point = ed25519_dalek::VerifyingKey::from_bytes(key.as_bytes()).ok()?;
    let mut bytes = [0u8; 34];
    bytes[..2].copy_from_slice(&X25519_MULTICODEC);
    bytes[2..].copy_from_slice(point.to_montgomery().as_bytes());
    Some(format!("z{}", bs58::encode(bytes).into_string()))
}

/// The DID document of `key`'s did:key.
pub fn did_document(key: &PublicKey) -> Value {
    let did = did_key(key);
    let multibase = did.trim_start_matches("did:key:");
    let method_id = format!("{did}#{multibase}");
    let mut document = json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "verificationMethod": [{
            "id": method_id,
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": multibase,
        }],
        "authentication": [method_id],
        "assertionMethod": [method_id],
        "capabilityDelegation": [method_id],
        "capabilityInvocation": [method_id],
    });
    if let Some(x25519) = x25519_multibase(key) {
        let agreement_id = format!("{did}#{x25519}");
        document["verificationMethod"]
            .as_array_mut()
            .expect("built as an array above")
            .push(json!({
                "id": agreement_id,
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": x25519,
            }));
        document["keyAgreement"] = json!([agreement_id]);
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::identity::did_key::parse_did_key;

    /// The did:key specification's Ed25519 example and the X25519 key its document derives.
    #[test]
    fn specification_example() {
        let did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
        let key = parse_did_key(did).unwrap();
        let doc = did_document(&key);
        assert_eq!(doc["id"], did);
        let method = &doc["verificationMethod"][0];
        assert_eq!(
            method["id"],
            format!("{did}#z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
        );
        assert_eq!(method["type"], "Multikey");
        assert_eq!(doc["assertionMethod"][0], method["id"]);
        assert_eq!(
            doc["keyAgreement"][0],
            format!("{did}#z6LSj72tK8brWgZja8NLRwPigth2T9QRiG1uH9oKZuKjdh9p")
        );
    }
}
