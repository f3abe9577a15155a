//! Verifiable Credentials 2.0 secured with a Data Integrity proof of the `eddsa-jcs-2022`
//! cryptosuite (W3C VC Data Integrity EdDSA Cryptosuites 1.0, §3.3), issued and verified offline.
//!
//! The proof signs `SHA-256(JCS(proof options)) ‖ SHA-256(JCS(credential without proof))` with
//! Ed25519; the proof value is the multibase base58btc (`z…`) signature. JCS needs no JSON-LD
//! context loading, which is why this suite (and not `eddsa-rdfc-2022`) is the one a node cut off
//! from the Internet can check. The issuer is a `did:key`, so the credential carries everything its
//! verifier needs; whether it was *revoked* is the registry's question, asked by the caller with the
//! credential's `id` (see [`super::registry`]).

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::challenge::{parse_time, rfc3339};
use super::did_key::{did_key, parse_did_key};
use super::jcs::canonical;
use crate::core::identity::{NodeKey, PublicKey, SIGNATURE_LEN};

/// The context every VC 2.0 credential starts with.
pub const CREDENTIALS_V2: &str = "https://www.w3.org/ns/credentials/v2";
/// The cryptosuite implemented here.
pub const CRYPTOSUITE: &str = "eddsa-jcs-2022";
/// Largest credential accepted, canonical bytes.
pub const MAX_CREDENTIAL_LEN: usize = 64 * 1024;

/// Why a credential was not issued or not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VcError {
    /// Not a VC 2.0 credential (context, type, issuer or subject missing or wrong).
    #[error("not a VC 2.0 credential: {0}")]
    NotCredential(&'static str),
    /// No proof, or a proof of another kind.
    #[error("unsupported proof: {0}")]
    Proof(String),
    /// The verification method is not a did:key, or names another key than the issuer's.
    #[error("verification method {0:?} is not the issuer's did:key")]
    VerificationMethod(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `validUntil` has passed.
    #[error("expired at {0}")]
    Expired(String),
    /// `validFrom` is still ahead.
    #[error("not valid before {0}")]
    NotYetValid(String),
    /// Larger than [`MAX_CREDENTIAL_LEN`] or not canonicalizable.
    #[error("credential too large or not canonicalizable")]
    Size,
}

/// A credential whose proof verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedVc {
    /// The credential's `id`, if it has one (what a revocation names).
    pub id: Option<String>,
    /// The issuer's DID.
    pub issuer: String,
    /// The issuer's key.
    pub key: PublicKey,
    /// `credentialSubject.id`, if present.
    pub subject: Option<String>,
    /// The credential without its proof.
    pub credential: Map<String, Value>,
}

fn digest(value: &Value) -> Result<[u8; 32], VcError> {
    let bytes = canonical(value).map_err(|_| VcError::Size)?;
    if bytes.len() > MAX_CREDENTIAL_LEN {
        return Err(VcError::Size);
    }
    Ok(Sha256::digest(&bytes).into())
}

/// The 64 bytes an `eddsa-jcs-2022` proof signs.
fn hash_data(
    document: &Map<String, Value>,
    proof_config: &Map<String, Value>,
) -> Result<[u8; 64], VcError> {
    let mut data = [0u8; 64];
    data[..32].copy_from_slice(&digest(&Value::Object(proof_config.clone()))?);
    data[32..].copy_from_slice(&digest(&Value::Object(document.clone()))?);
    Ok(data)
}

/// Adds an `eddsa-jcs-2022` proof built from `options` (type, cryptosuite, created,
/// verificationMethod, proofPurpose, …) to `document`, signed by `key`. The proof carries the
/// document's `@context`, as the cryptosuite's proof configuration says.
pub fn add_proof(
    key: &NodeKey,
    document: &Map<String, Value>,
    options: &Map<String, Value>,
) -> Result<Map<String, Value>, VcError> {
    let mut proof = options.clone();
    if let Some(context) = document.get("@context") {
        proof.insert("@context".into(), context.clone());
    }
    let mut unsecured = document.clone();
    unsecured.remove("proof");
    let signature = key.sign(&hash_data(&unsecured, &proof)?);
    proof.insert(
        "proofValue".into(),
        json!(format!("z{}", bs58::encode(signature).into_string())),
    );
    unsecured.insert("proof".into(), Value::Object(proof));
    Ok(unsecured)
}

/// Issues `credential` (a VC 2.0 object; `issuer` and `validFrom` are filled in when absent) signed
/// by `key` as its did:key at `now_secs`.
pub fn issue(
    key: &NodeKey,
    credential: &Map<String, Value>,
    now_secs: u64,
) -> Result<Map<String, Value>, VcError> {
    let did = did_key(&key.public_key());
    let mut document = credential.clone();
    document
        .entry("@context")
        .or_insert_with(|| json!([CREDENTIALS_V2]));
    document
        .entry("type")
        .or_insert_with(|| json!(["VerifiableCredential"]));
    document.entry("issuer").or_insert_with(|| json!(did));
    document
        .entry("validFrom")
        .or_insert_with(|| json!(rfc3339(now_secs)));
    check_shape(&document)?;
    if issuer_did(&document) != Some(did.as_str()) {
        return Err(VcError::NotCredential(
            "issuer is not the signing key's did:key",
        ));
    }
    let fragment = did.trim_start_matches("did:key:");
    let options = json!({
        "type": "DataIntegrityProof",
        "cryptosuite": CRYPTOSUITE,
        "created": rfc3339(now_secs),
        "verificationMethod": format!("{did}#{fragment}"),
        "proofPurpose": "assertionMethod",
    });
    let Value::Object(options) = options else {
        unreachable!("a json! object literal is an object")
    };
    add_proof(key, &document, &options)
}

fn issuer_did(document: &Map<String, Value>) -> Option<&str> {
    match document.get("issuer")? {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("id")?.as_str(),
        _ => None,
    }
}

/// The VC 2.0 data model's required members.
fn check_shape(document: &Map<String, Value>) -> Result<(), VcError> {
    let first_context = match document.get("@context") {
        Some(Value::Array(items)) => items.first().and_then(Value::as_str),
        _ => None,
    };
    if first_context != Some(CREDENTIALS_V2) {
        return Err(VcError::NotCredential(
            "@context must start with the VC 2.0 context",
        ));
    }
    let is_vc = match document.get("type") {
        Some(Value::Array(types)) => types.iter().any(|t| t == "VerifiableCredential"),
        Some(Value::String(t)) => t == "VerifiableCredential",
        _ => false,
    };
    if !is_vc {
        return Err(VcError::NotCredential(
            "type must include VerifiableCredential",
        ));
    }
    if issuer_did(document).is_none() {
        return Err(VcError::NotCredential("no issuer"));
    }
    if !matches!(
        document.get("credentialSubject"),
        Some(Value::Object(_) | Value::Array(_))
    ) {
        return Err(VcError::NotCredential("no credentialSubject"));
    }
    Ok(())
}

/// Checks only the `eddsa-jcs-2022` proof of `secured` against `key` (cryptosuite §3.3.2): no data
/// model or validity-period checks. Returns the document without its proof.
pub fn verify_proof(
    secured: &Map<String, Value>,
    key: &PublicKey,
) -> Result<Map<String, Value>, VcError> {
    let mut unsecured = secured.clone();
    let Some(Value::Object(mut proof)) = unsecured.remove("proof") else {
        return Err(VcError::Proof("no single proof object".into()));
    };
    if proof.get("type").and_then(Value::as_str) != Some("DataIntegrityProof")
        || proof.get("cryptosuite").and_then(Value::as_str) != Some(CRYPTOSUITE)
    {
        return Err(VcError::Proof(format!(
            "only DataIntegrityProof with {CRYPTOSUITE} is accepted"
        )));
    }
    let signature = match proof.remove("proofValue") {
        Some(Value::String(text)) => decode_proof_value(&text)?,
        _ => return Err(VcError::Proof("no proofValue".into())),
    };
    if let Some(proof_context) = proof.get("@context") {
        let starts_with = match (unsecured.get("@context"), proof_context) {
            (Some(Value::Array(doc)), Value::Array(p)) => doc.starts_with(p),
            (Some(doc), p) => doc == p,
            (None, _) => false,
        };
        if !starts_with {
            return Err(VcError::Proof(
                "proof @context does not match the document's".into(),
            ));
        }
        unsecured.insert("@context".into(), proof_context.clone());
    }
    if !key.verify(&hash_data(&unsecured, &proof)?, &signature) {
        return Err(VcError::BadSignature);
    }
    Ok(unsecured)
}

fn decode_proof_value(text: &str) -> Result<[u8; SIGNATURE_LEN], VcError> {
    let bad = || VcError::Proof("proofValue is not a base58btc Ed25519 signature".into());
    let encoded = text
        .strip_prefix('z')
        .filter(|e| e.len() <= 100)
        .ok_or_else(bad)?;
    bs58::decode(encoded)
        .into_vec()
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(bad)
}

/// Verifies a credential at `now_secs`: data model shape, proof purpose `assertionMethod`, a
/// verification method that is the issuer's own did:key, the signature, then `validFrom` and
/// `validUntil` (with [`super::jwt::LEEWAY_SECS`]).
pub fn verify(secured: &Value, now_secs: u64) -> Result<VerifiedVc, VcError> {
    let Value::Object(secured) = secured else {
        return Err(VcError::NotCredential("not a JSON object"));
    };
    check_shape(secured)?;
    let proof = secured.get("proof").and_then(Value::as_object);
    let method = proof
        .and_then(|p| p.get("verificationMethod"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if proof
        .and_then(|p| p.get("proofPurpose"))
        .and_then(Value::as_str)
        != Some("assertionMethod")
    {
        return Err(VcError::Proof(
            "proofPurpose must be assertionMethod".into(),
        ));
    }
    let issuer = issuer_did(secured).unwrap_or_default().to_owned();
    let method_did = method.split('#').next().unwrap_or_default();
    let key = match parse_did_key(method_did) {
        Ok(key) if method_did == issuer => key,
        _ => return Err(VcError::VerificationMethod(method.to_owned())),
    };
    let credential = verify_proof(secured, &key)?;
    let leeway = super::jwt::LEEWAY_SECS;
    if let Some(text) = credential.get("validFrom").and_then(Value::as_str)
        && parse_time(text).is_none_or(|t| t > now_secs + leeway)
    {
        return Err(VcError::NotYetValid(text.to_owned()));
    }
    if let Some(text) = credential.get("validUntil").and_then(Value::as_str)
        && parse_time(text).is_none_or(|t| t + leeway <= now_secs)
    {
        return Err(VcError::Expired(text.to_owned()));
    }
    Ok(VerifiedVc {
        id: credential
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        subject: credential
            .get("credentialSubject")
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        issuer,
        key,
        credential,
    })
}

#[cfg(test)]
mod tests;
