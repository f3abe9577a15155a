//! The mesh's member registry and revocations, kept as two CRDT documents so that every node holds
//! a copy, reads it offline, and converges when links return.
//!
//! - `identity/enrollments` (a map of grow-only sets): member DID → every *enrollment* filed for it,
//!   a JWT signed by an admin: `{"typ": "enrollment", "iss": admin, "sub": member, "roles": [...],
//!   "iat": …, "ver": …, "exp"?: …}`. The valid one with the highest `(ver, iat)` counts, so an
//!   older enrollment filed again never replaces a newer one (nothing is ever removed).
//! - `identity/members` (a map of last-writer-wins registers, before `enrollments`): still read,
//!   its enrollments counting as `ver` 0.
//! - `identity/revocations` (a set that every replica keeps grow-only, see
//!   [`crate::services::crdt::log::GROW_ONLY`]: a change removing anything is refused everywhere):
//!   each member is a *revocation* JWT `{"iss": revoker, "revoke": target, "iat": …, "reason"?: …}`
//!   where the target is a member DID, a credential `id` or a delegation token id.
//!
//! Nothing in the documents is trusted for having been replicated: every entry is a signature
//! checked against the admins this node was configured with (and the node itself). A revocation
//! counts when an admin signed it, when a DID revokes itself, or when an issuer the caller names
//! (a credential's issuer, an issuer up a delegation chain) signed it.
//!
//! On a mesh with admins, replicas also refuse to *store* what cannot count ([`admit`], the same
//! verdict everywhere): only admins write the namespace (its access rule), enrollments must be
//! signed by an admin for the DID they are filed under, and a revocation must come from an admin,
//! from the DID it revokes, or from an issuer of the delegation it revokes (carried in its `of`
//! claim). A flood of revocations by anyone else costs a signature check each and stores nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::did_key::parse_did_key;
use super::jwt::{self, Expect, Kind as TokenKind};
use base64::Engine as _;

use crate::core::identity::{NodeKey, PublicKey};
use crate::services::crdt::document::View;
use crate::services::crdt::field::{Kind, ValueKind};

/// The namespace the identity service keeps its documents in.
pub const NAMESPACE: &str = "identity";
/// The members document (read only: enrollments go to [`ENROLLMENTS`]).
pub const MEMBERS: &str = "members";
/// The enrollments document.
pub const ENROLLMENTS: &str = "enrollments";
/// The enrollments document's schema.
pub const ENROLLMENTS_KIND: Kind = Kind::Map(ValueKind::Set);
/// The revocations document.
pub const REVOCATIONS: &str = "revocations";
/// The members document's schema.
pub const MEMBERS_KIND: Kind = Kind::Map(ValueKind::Lww);
/// The revocations document's schema.
pub const REVOCATIONS_KIND: Kind = Kind::Value(ValueKind::Set);
/// Most roles one enrollment may give, and longest role name.
const MAX_ROLES: usize = 32;
const MAX_ROLE_LEN: usize = 64;

/// Why a member or credential is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No admin enrolled the DID.
    #[error("{0} is not an enrolled member")]
    NotMember(String),
    /// The target was revoked.
    #[error("{target} was revoked by {by}{}", reason_suffix(.reason))]
    Revoked {
        /// What was revoked.
        target: String,
        /// Who revoked it.
        by: String,
        /// Why, if they said.
        reason: String,
    },
    /// Not a did:key.
    #[error("{0} is not a did:key")]
    NotDid(String),
    /// A role name is empty, too long, or there are too many.
    #[error("roles must be 1 to {MAX_ROLES} names of at most {MAX_ROLE_LEN} characters")]
    Roles,
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

/// An enrolled member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The member's DID.
    pub did: String,
    /// What the admin let them be.
    pub roles: Vec<String>,
    /// The admin who enrolled them.
    pub enrolled_by: String,
    /// When, seconds since the epoch.
    pub enrolled_at: u64,
}

/// A verified revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revocation {
    /// What it revokes.
    pub target: String,
    /// Who signed it.
    pub by: String,
    /// When.
    pub at: u64,
    /// Why, if given.
    pub reason: String,
}

fn claims(pairs: Value) -> Map<String, Value> {
    match pairs {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Signs the enrollment of `member` with `roles`, by `admin`, as version `ver` (one more than the
/// highest the registry holds for `member`, [`Registry::version_of`]).
pub fn enrollment(
    admin: &NodeKey,
    member: &str,
    roles: &[String],
    now_secs: u64,
    ver: u64,
) -> Result<String, RegistryError> {
    parse_did_key(member).map_err(|_| RegistryError::NotDid(member.to_owned()))?;
    if roles.is_empty()
        || roles.len() > MAX_ROLES
        || roles.iter().any(|r| r.is_empty() || r.len() > MAX_ROLE_LEN)
    {
        return Err(RegistryError::Roles);
    }
    let claims = claims(
        json!({ "sub": member, "roles": roles, "iat": now_secs, "ver": ver, "typ": "enrollment" }),
    );
    Ok(jwt::issue(admin, &claims))
}

/// Signs the revocation of `target` (a DID, a credential id or a delegation id) by `revoker`.
pub fn revocation(revoker: &NodeKey, target: &str, reason: &str, now_secs: u64) -> String {
    let mut claims = claims(json!({ "revoke": target, "iat": now_secs, "typ": "revocation" }));
    if !reason.is_empty() {
        claims.insert("reason".into(), json!(reason));
    }
    jwt::issue(revoker, &claims)
}

/// Signs the revocation of delegation `token` (its id is the target) by `revoker`, an issuer in
/// its chain; the token rides along (claim `of`) so every replica can check that.
pub fn revocation_of(revoker: &NodeKey, token: &str, reason: &str, now_secs: u64) -> String {
    let target = super::ucan::token_id(token);
    let mut claims =
        claims(json!({ "revoke": target, "of": token, "iat": now_secs, "typ": "revocation" }));
    if !reason.is_empty() {
        claims.insert("reason".into(), json!(reason));
    }
    jwt::issue(revoker, &claims)
}

/// The registry as this node reads it.
#[derive(Debug, Default)]
pub struct Registry {
    admins: BTreeSet<String>,
    members: BTreeMap<String, Member>,
    /// Per member, the `(ver, iat)` of the enrollment that counts.
    versions: BTreeMap<String, (u64, u64)>,
    revocations: BTreeMap<String, Vec<Revocation>>,
    ignored: usize,
}

impl Registry {
    /// Reads the documents' views (absent documents are empty) at `now_secs`, trusting
    /// enrollments by `admins` only. Entries that do not verify are counted in [`Self::ignored`].
    pub fn load(
        admins: impl IntoIterator<Item = String>,
        members: Option<&View>,
        enrollments: Option<&View>,
        revocations: Option<&View>,
        now_secs: u64,
    ) -> Self {
        let mut registry = Registry {
            admins: admins.into_iter().collect(),
            ..Registry::default()
        };
        let mut candidates: Vec<(&String, &String)> = Vec::new();
        if let Some(View::Map(entries)) = members {
            for (did, view) in entries {
                if let View::Lww(Some(token)) = view {
                    candidates.push((did, token));
                }
            }
        }
        if let Some(View::Map(entries)) = enrollments {
            for (did, view) in entries {
                if let View::Set(tokens) = view {
                    candidates.extend(tokens.iter().map(|t| (did, t)));
                }
            }
        }
        for (did, token) in candidates {
            match registry.check_enrollment(did, token, now_secs) {
                Some((member, version)) => {
                    let newer = (registry.versions.get(did)).is_none_or(|held| version > *held);
                    if newer {
                        registry.versions.insert(did.clone(), version);
                        registry.members.insert(did.clone(), member);
                    }
                }
                None => registry.ignored += 1,
            }
        }
        if let Some(View::Set(tokens)) = revocations {
            for token in tokens {
                match check_revocation(token, now_secs) {
                    Some(r) => registry
                        .revocations
                        .entry(r.target.clone())
                        .or_default()
                        .push(r),
                    None => registry.ignored += 1,
                }
            }
        }
        registry
    }

    /// The member an enrollment makes, with its `(ver, iat)`, if it verifies.
    fn check_enrollment(&self, did: &str, token: &str, now: u64) -> Option<(Member, (u64, u64))> {
        let verified = jwt::verify(token, &Expect::kind(TokenKind::Enrollment), now).ok()?;
        let signer = verified.self_issued()?;
        if !self.admins.contains(&signer) || verified.claims.get("sub")?.as_str()? != did {
            return None;
        }
        let roles = verified
            .claims
            .get("roles")?
            .as_array()?
            .iter()
            .map(|r| r.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        let number = |name| {
            verified
                .claims
                .get(name)
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let member = Member {
            did: did.to_owned(),
            roles,
            enrolled_by: signer,
            enrolled_at: number("iat"),
        };
        Some((member, (number("ver"), number("iat"))))
    }

    /// The version of `did`'s enrollment that counts (0 if none).
    pub fn version_of(&self, did: &str) -> u64 {
        self.versions.get(did).map_or(0, |(ver, _)| *ver)
    }

    /// Whether `did` is a configured admin.
    pub fn is_admin(&self, did: &str) -> bool {
        self.admins.contains(did)
    }

    /// The revocation of `target` that counts, if any: one signed by an admin, by the target
    /// itself, or by one of `issuers`.
    pub fn revoked(&self, target: &str, issuers: &[String]) -> Option<&Revocation> {
        self.revocations
            .get(target)?
            .iter()
            .find(|r| self.admins.contains(&r.by) || r.by == target || issuers.contains(&r.by))
    }

    /// Checks that `did` is an enrolled member no one revoked.
    pub fn member(&self, did: &str) -> Result<&Member, RegistryError> {
        if let Some(r) = self.revoked(did, &[]) {
            return Err(revoked_error(r));
        }
        self.members
            .get(did)
            .ok_or_else(|| RegistryError::NotMember(did.to_owned()))
    }

    /// Every enrolled member, revoked or not.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Every verified revocation, counted or not.
    pub fn revocations(&self) -> impl Iterator<Item = &Revocation> {
        self.revocations.values().flatten()
    }

    /// Entries that did not verify (forged, by a non-admin, or malformed).
    pub fn ignored(&self) -> usize {
        self.ignored
    }
}

/// The error a counted revocation gives.
pub fn revoked_error(r: &Revocation) -> RegistryError {
    RegistryError::Revoked {
        target: r.target.clone(),
        by: r.by.clone(),
        reason: r.reason.clone(),
    }
}

fn check_revocation(token: &str, now: u64) -> Option<Revocation> {
    let verified = jwt::verify(token, &Expect::kind(TokenKind::Revocation), now).ok()?;
    let by = verified.self_issued()?;
    Some(Revocation {
        target: verified.claims.get("revoke")?.as_str()?.to_owned(),
        by,
        at: verified
            .claims
            .get("iat")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        reason: verified
            .claims
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

/// Whether a replica stores a change adding `added` (the change's delta as a view) to identity
/// document `document`, on a mesh whose admins `is_admin` names: the same verdict on every
/// replica, from signed data alone (no clock). See the module documentation.
pub fn admit(
    document: &str,
    added: &View,
    is_admin: &dyn Fn(&PublicKey) -> bool,
) -> Result<(), &'static str> {
    match (document, added) {
        (ENROLLMENTS, View::Map(entries)) => {
            let entries: Vec<_> = entries.iter().collect();
            let [(did, View::Set(tokens))] = entries.as_slice() else {
                return Err("an enrollment change adds one token under one DID");
            };
            let [token] = tokens.as_slice() else {
                return Err("an enrollment change adds one token under one DID");
            };
            let verified = jwt::verify_untimed(token, &Expect::kind(TokenKind::Enrollment))
                .map_err(|_| "not a valid enrollment")?;
            let sub = verified.claims.get("sub").and_then(Value::as_str);
            if verified.self_issued().is_none() || sub != Some(did.as_str()) {
                return Err("an enrollment must be its issuer's, for the DID it is filed under");
            }
            if !is_admin(&verified.signer) {
                return Err("an enrollment must be signed by an admin");
            }
            Ok(())
        }
        (ENROLLMENTS, _) => Err("not an enrollment change"),
        (REVOCATIONS, View::Set(tokens)) => {
            let [token] = tokens.as_slice() else {
                return Err("a revocation change adds one token");
            };
            let verified = jwt::verify_untimed(token, &Expect::kind(TokenKind::Revocation))
                .map_err(|_| "not a valid revocation")?;
            let by = verified
                .self_issued()
                .ok_or("a revocation must be signed by its issuer")?;
            let target = verified.claims.get("revoke").and_then(Value::as_str);
            let target = target.ok_or("a revocation names what it revokes")?;
            if is_admin(&verified.signer) || target == by {
                return Ok(());
            }
            let of = verified.claims.get("of").and_then(Value::as_str);
            match of {
                Some(revoked)
                    if super::ucan::token_id(revoked) == target && issued_by(revoked, &by) =>
                {
                    Ok(())
                }
                _ => Err("a revocation by someone who may not revoke its target"),
            }
        }
        (REVOCATIONS, _) => Err("not a revocation change"),
        _ => Ok(()),
    }
}

/// True if `did` issued `token` or a delegation in its proof chain (read from the claims: the
/// token is named by its hash, so it cannot be made up to fit).
fn issued_by(token: &str, did: &str) -> bool {
    let mut pending = vec![(token.to_owned(), 0)];
    while let Some((token, depth)) = pending.pop() {
        let Some(claims) = token
            .split('.')
            .nth(1)
            .and_then(|c| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
            })
            .and_then(|c| serde_json::from_slice::<Map<String, Value>>(&c).ok())
        else {
            continue;
        };
        if claims.get("iss").and_then(Value::as_str) == Some(did) {
            return true;
        }
        if depth < 8
            && let Some(Value::Array(proofs)) = claims.get("prf")
        {
            pending.extend(
                proofs
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|p| (p.to_owned(), depth + 1)),
            );
        }
    }
    false
}

#[cfg(test)]
mod tests;
