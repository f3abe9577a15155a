//! Capability delegation in the style of UCAN 0.10 ("UCAN-lite"): a JWT signed by its issuer's
//! did:key grants capabilities to an audience DID until an expiry, and carries in `prf` the tokens it
//! was itself granted by, so any node can check the whole chain offline with nothing but the token.
//!
//! ```text
//! { "iss": did, "aud": did, "exp": secs, "nbf"?: secs,
//!   "att": [{"with": "crdt://village/ledger", "can": "crdt/write"}, …],
//!   "prf": [parent token, …] }
//! ```
//!
//! A chain is accepted only if every link verifies and is in its validity window; each link's
//! issuer is the audience of the proof it relies on; every capability is covered by one its proof
//! granted (`*` and a trailing `/*` or `:*` widen a resource or ability, nothing else does) and ends
//! no later than that grant; a link with no proofs is a root, which the caller decides (say, the
//! mesh's admins); the chain is at most [`MAX_DEPTH`] tokens long; and no token in it has been
//! revoked by one of the issuers above it. A token's id, what revocations name, is the base64url
//! SHA-256 of its text.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::did_key::{did_key, parse_did_key};
use super::jwt::{self, Expect, JwtError, Kind};
use crate::core::identity::{NodeKey, Verifier};

/// Longest chain of tokens, the invoked one included.
pub const MAX_DEPTH: usize = 8;
/// Most capabilities or proofs one token may list.
const MAX_ENTRIES: usize = 32;

/// One capability: an ability on a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    /// The resource, a URI (`crdt://namespace/document`, `mesh://node/…`).
    pub with: String,
    /// The ability (`crdt/write`, `id/enroll`, `*`).
    pub can: String,
}

impl Capability {
    /// Whether holding `self` lets one delegate or use `other`.
    pub fn covers(&self, other: &Capability) -> bool {
        pattern_covers(&self.with, &other.with) && pattern_covers(&self.can, &other.can)
    }
}

fn pattern_covers(pattern: &str, text: &str) -> bool {
    pattern == "*"
        || pattern == text
        || pattern.strip_suffix('*').is_some_and(|prefix| {
            (prefix.ends_with('/') || prefix.ends_with(':')) && text.starts_with(prefix)
        })
}

/// Why a delegation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UcanError {
    /// A token of the chain does not verify as a JWT.
    #[error("token at depth {0}: {1}")]
    Token(usize, JwtError),
    /// A token lacks a required claim or has a malformed one.
    #[error("token at depth {0}: {1}")]
    Malformed(usize, &'static str),
    /// The chain is longer than [`MAX_DEPTH`].
    #[error("delegation chain deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A proof was granted to someone else than the issuer relying on it.
    #[error("token at depth {0}: a proof was granted to {1}, not to its issuer")]
    NotAudience(usize, String),
    /// A capability is wider than (or outlives) what the proofs grant, or a root is not trusted.
    #[error("token at depth {0}: {1} / {2} is not granted by its proofs")]
    Widening(usize, String, String),
    /// A token of the chain was revoked.
    #[error("token {0} was revoked")]
    Revoked(String),
    /// The chain does not give the capability asked for.
    #[error("the delegation does not grant {0} / {1}")]
    NotGranted(String, String),
    /// The delegation was made to someone else than the one presenting it.
    #[error("the delegation is for {0}")]
    WrongAudience(String),
}

/// A delegation whose whole chain verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// The token's id (base64url SHA-256 of its text).
    pub id: String,
    /// Who granted it.
    pub issuer: String,
    /// Who may use it.
    pub audience: String,
    /// What it grants.
    pub capabilities: Vec<Capability>,
    /// When it ends, seconds since the epoch.
    pub expires: u64,
    /// Every issuer on the chain above and including this token's.
    pub issuers: Vec<String>,
}

impl Delegation {
    /// Checks that `audience` may use `wanted` under this delegation.
    pub fn authorizes(&self, audience: &str, wanted: &Capability) -> Result<(), UcanError> {
        if self.audience != audience {
            return Err(UcanError::WrongAudience(self.audience.clone()));
        }
        if !self.capabilities.iter().any(|c| c.covers(wanted)) {
            return Err(UcanError::NotGranted(
                wanted.with.clone(),
                wanted.can.clone(),
            ));
        }
        Ok(())
    }
}

/// The id revocations use for `token`.
pub fn token_id(token: &str) -> String {
    B64URL.encode(Sha256::digest(token.as_bytes()))
}

/// Signs a delegation from `key` to `audience` of `capabilities` until `expires`, relying on
/// `proofs` (tokens granted to `key`; none for a root delegation).
pub fn delegate(
    key: &NodeKey,
    audience: &str,
    capabilities: &[Capability],
    now_secs: u64,
    expires: u64,
    proofs: &[String],
) -> String {
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(did_key(&key.public_key())));
    claims.insert("aud".into(), json!(audience));
    claims.insert("att".into(), json!(capabilities));
    claims.insert("prf".into(), json!(proofs));
    claims.insert("nbf".into(), json!(now_secs));
    claims.insert("exp".into(), json!(expires));
    claims.insert("ucv".into(), json!("0.10-lite"));
    jwt::issue(key, &claims)
}

/// What the verifier trusts and what it knows was revoked.
pub struct Policy<'a> {
    /// Whether `issuer` may grant `capability` with no proof (owns the resource, or is an admin).
    pub is_root: &'a dyn Fn(&str, &Capability) -> bool,
    /// Whether token `id` was revoked by one of `issuers` (its own issuer or one above it).
    pub is_revoked: &'a dyn Fn(&str, &[String]) -> bool,
}

/// A token's claims, checked for shape.
struct Claims {
    issuer: String,
    audience: String,
    expires: u64,
    not_before: u64,
    capabilities: Vec<Capability>,
    proofs: Vec<String>,
}

fn claims_of(verified: &jwt::Verified, depth: usize) -> Result<Claims, UcanError> {
    let claims = &verified.claims;
    let bad = |what| UcanError::Malformed(depth, what);
    let issuer = verified
        .self_issued()
        .ok_or(bad("iss must be the signer's did:key"))?;
    let audience = claims
        .get("aud")
        .and_then(Value::as_str)
        .filter(|aud| parse_did_key(aud).is_ok())
        .ok_or(bad("aud must be a did:key"))?
        .to_owned();
    let expires = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or(bad("exp is required"))?;
    let not_before = match claims.get("nbf") {
        None => 0,
        Some(v) => v.as_u64().ok_or(bad("nbf must be seconds"))?,
    };
    let capabilities: Vec<Capability> = claims
        .get("att")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .filter(|c: &Vec<Capability>| !c.is_empty() && c.len() <= MAX_ENTRIES)
        .ok_or(bad("att must list 1 to 32 {with, can} capabilities"))?;
    let proofs: Vec<String> = match claims.get("prf") {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v.clone())
            .ok()
            .filter(|p: &Vec<String>| p.len() <= MAX_ENTRIES)
            .ok_or(bad("prf must list at most 32 tokens"))?,
    };
    Ok(Claims {
        issuer,
        audience,
        expires,
        not_before,
        capabilities,
        proofs,
    })
}

/// A delegation that rests on no proof, checked for its signature and shape only: whether its
/// issuer may grant what it says, and whether it was in force, is for the caller to decide (the
/// CRDT access rule decides both from replicated data, the same way on every replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectDelegation {
    /// Who signed it.
    pub issuer: crate::core::identity::PublicKey,
    /// Who may use it (a did:key).
    pub audience: String,
    /// What it grants.
    pub capabilities: Vec<Capability>,
    /// In force from (`nbf`, 0 without one) to (`exp`), seconds since the epoch.
    pub not_before: u64,
    /// See `not_before`.
    pub expires: u64,
}

/// Checks a delegation with no proofs (`prf` empty) by its signature (ZIP-215, so that every
/// replica agrees) and shape, at no particular time.
pub fn verify_direct(token: &str) -> Result<DirectDelegation, UcanError> {
    let verified = jwt::verify_untimed(token, &Expect::kind(Kind::Ucan))
        .map_err(|e| UcanError::Token(1, e))?;
    let claims = claims_of(&verified, 1)?;
    if !claims.proofs.is_empty() {
        return Err(UcanError::Malformed(
            1,
            "a direct delegation rests on no proofs (its issuer must hold the capability itself)",
        ));
    }
    Ok(DirectDelegation {
        issuer: verified.signer,
        audience: claims.audience,
        capabilities: claims.capabilities,
        not_before: claims.not_before,
        expires: claims.expires,
    })
}

/// Verifies `token` and its whole proof chain at `now_secs`.
pub fn verify(token: &str, now_secs: u64, policy: &Policy<'_>) -> Result<Delegation, UcanError> {
    verify_at(token, now_secs, policy, 1, &mut Verifier::default())
}

fn verify_at(
    token: &str,
    now: u64,
    policy: &Policy<'_>,
    depth: usize,
    keys: &mut Verifier,
) -> Result<Delegation, UcanError> {
    if depth > MAX_DEPTH {
        return Err(UcanError::TooDeep);
    }
    let verified = jwt::verify_cached(token, &Expect::kind(Kind::Ucan), now, keys)
        .map_err(|e| UcanError::Token(depth, e))?;
    let Claims {
        issuer,
        audience,
        expires,
        capabilities,
        proofs,
        ..
    } = claims_of(&verified, depth)?;
    let mut parents = Vec::with_capacity(proofs.len());
    for proof in &proofs {
        let parent = verify_at(proof, now, policy, depth + 1, keys)?;
        if parent.audience != issuer {
            return Err(UcanError::NotAudience(depth, parent.audience));
        }
        parents.push(parent);
    }
    for cap in &capabilities {
        let granted = parents
            .iter()
            .any(|p| p.expires >= expires && p.capabilities.iter().any(|g| g.covers(cap)))
            || (policy.is_root)(&issuer, cap);
        if !granted {
            return Err(UcanError::Widening(
                depth,
                cap.with.clone(),
                cap.can.clone(),
            ));
        }
    }
    let mut issuers = vec![issuer.clone()];
    for parent in &parents {
        for above in &parent.issuers {
            if !issuers.contains(above) {
                issuers.push(above.clone());
            }
        }
    }
    let id = token_id(token);
    if (policy.is_revoked)(&id, &issuers) {
        return Err(UcanError::Revoked(id));
    }
    Ok(Delegation {
        id,
        issuer,
        audience,
        capabilities,
        expires,
        issuers,
    })
}

#[cfg(test)]
mod tests;
