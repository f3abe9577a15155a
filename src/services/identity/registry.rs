//! The mesh's member registry and revocations, kept as two CRDT documents so that every node holds
//! a copy, reads it offline, and converges when links return.
//!
//! - `identity/members` (a map of last-writer-wins registers): member DID → an *enrollment*, a JWT
//!   signed by an admin: `{"iss": admin, "sub": member, "roles": [...], "iat": …, "exp"?: …}`.
//! - `identity/revocations` (a set that every replica keeps grow-only, see
//!   [`crate::services::crdt::log::GROW_ONLY`]: a change removing anything is refused everywhere):
//!   each member is a *revocation* JWT `{"iss": revoker, "revoke": target, "iat": …, "reason"?: …}`
//!   where the target is a member DID, a credential `id` or a delegation token id.
//!
//! Nothing in the documents is trusted for having been replicated: every entry is a signature
//! checked against the admins this node was configured with (and the node itself). A revocation
//! counts when an admin signed it, when a DID revokes itself, or when an issuer the caller names
//! (a credential's issuer, an issuer up a delegation chain) signed it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::did_key::parse_did_key;
use super::jwt::{self, Expect, Kind as TokenKind};
use crate::core::identity::NodeKey;
use crate::services::crdt::document::View;
use crate::services::crdt::field::{Kind, ValueKind};

/// The namespace the identity service keeps its documents in.
pub const NAMESPACE: &str = "identity";
/// The members document.
pub const MEMBERS: &str = "members";
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

/// Signs the enrollment of `member` with `roles`, by `admin`.
pub fn enrollment(
    admin: &NodeKey,
    member: &str,
    roles: &[String],
    now_secs: u64,
) -> Result<String, RegistryError> {
    parse_did_key(member).map_err(|_| RegistryError::NotDid(member.to_owned()))?;
    if roles.is_empty()
        || roles.len() > MAX_ROLES
        || roles.iter().any(|r| r.is_empty() || r.len() > MAX_ROLE_LEN)
    {
        return Err(RegistryError::Roles);
    }
    let claims =
        claims(json!({ "sub": member, "roles": roles, "iat": now_secs, "typ": "enrollment" }));
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

/// The registry as this node reads it.
#[derive(Debug, Default)]
pub struct Registry {
    admins: BTreeSet<String>,
    members: BTreeMap<String, Member>,
    revocations: BTreeMap<String, Vec<Revocation>>,
    ignored: usize,
}

impl Registry {
    /// Reads the two documents' views (absent documents are empty) at `now_secs`, trusting
    /// enrollments by `admins` only. Entries that do not verify are counted in [`Self::ignored`].
    pub fn load(
        admins: impl IntoIterator<Item = String>,
        members: Option<&View>,
        revocations: Option<&View>,
        now_secs: u64,
    ) -> Self {
        let mut registry = Registry {
            admins: admins.into_iter().collect(),
            ..Registry::default()
        };
        if let Some(View::Map(entries)) = members {
            for (did, view) in entries {
                if let View::Lww(Some(token)) = view {
                    match registry.check_enrollment(did, token, now_secs) {
                        Some(member) => {
                            registry.members.insert(did.clone(), member);
                        }
                        None => registry.ignored += 1,
                    }
                }
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

    fn check_enrollment(&self, did: &str, token: &str, now: u64) -> Option<Member> {
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
        Some(Member {
            did: did.to_owned(),
            roles,
            enrolled_by: signer,
            enrolled_at: verified
                .claims
                .get("iat")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        })
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

#[cfg(test)]
mod tests;
