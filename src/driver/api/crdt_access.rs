//! Namespace access: grant, revoke, and who may do what. Documented in `docs/API.md` ("Namespace
//! access"); the rule is PROTOCOL.md §6c.

use serde::Deserialize;
use serde_json::{Value, json};

use super::crdt::{parse, with_crdt};
use super::handlers::error;
use super::{ApiRequest, ApiResponse};
use crate::core::identity::PublicKey;
use crate::driver::service_thread::ServiceContext;
use crate::services::crdt::access::{ACCESS_DOCUMENT, AccessOp, Level, NamespaceClass, Subject};
use crate::services::crdt::context::Actor;
use crate::services::crdt::host::Storage as _;
use crate::services::identity::did_key::did_key;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    namespace: String,
    /// A did:key, a 64-hex node key, or `*` (anyone).
    subject: String,
    /// `pull`, `read`, `write` or `manage`.
    level: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeemBody {
    namespace: String,
    /// A delegation token given to this node by a manager of the namespace.
    token: String,
    /// What to take: at most what the token grants (default: all of it).
    level: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    namespace: String,
    subject: String,
    /// What the subject keeps: `none` (default), `pull`, `read` or `write`.
    level: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceBody {
    namespace: String,
}

fn subject(text: &str) -> Result<Subject, ApiResponse> {
    if let Some(s) = Subject::parse(text) {
        return Ok(s);
    }
    PublicKey::from_hex(text)
        .map(|k| Subject::Key(Actor(*k.as_bytes())))
        .map_err(|_| {
            error(
                400,
                format!("subject {text}: give a did:key, a 64-hex key or *"),
            )
        })
}

fn level(text: &str) -> Result<Level, ApiResponse> {
    Level::parse(text).ok_or_else(|| {
        error(
            400,
            format!("level {text}: one of none, pull, read, write, manage"),
        )
    })
}

fn wall_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn refused(e: crate::driver::crdt::HostError) -> ApiResponse {
    use crate::services::crdt::host::HostError;
    match e {
        HostError::Write(w) => error(403, w.to_string()),
        HostError::Store(s) => error(500, s.to_string()),
        full @ (HostError::Quota(_) | HostError::WriterQuota(_)) => error(507, full.to_string()),
        other => error(403, other.to_string()),
    }
}

/// `POST /v1/crdt/access/grant`.
pub(super) fn crdt_grant(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    with_crdt(r, |crdt, now| {
        let b: GrantBody = parse(&request.body)?;
        let level = level(&b.level)?;
        if level == Level::None {
            return Err(error(400, "granting none is a revocation: use revoke"));
        }
        let op = AccessOp::Grant {
            subject: subject(&b.subject)?,
            level,
        };
        crdt.write_access(now, wall_millis(), &b.namespace, &op)
            .map_err(refused)?;
        Ok(access_json(crdt, &b.namespace))
    })
}

/// `POST /v1/crdt/access/redeem`: this node takes, in the namespace, what a manager's delegation
/// token gives it.
pub(super) fn crdt_redeem(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    with_crdt(r, |crdt, now| {
        let b: RedeemBody = parse(&request.body)?;
        let me = Actor(*crdt.host.key().public_key().as_bytes());
        let op = AccessOp::decode(&redemption_member(&b.token, me), 1)
            .map_err(|e| error(400, e.to_string()))?;
        let AccessOp::Redeem {
            holder,
            issuer,
            proof,
            ..
        } = op
        else {
            return Err(error(400, "not a delegation token"));
        };
        let granted = proof.grants(&b.namespace).ok_or_else(|| {
            error(
                400,
                format!(
                    "the token grants nothing in {}: it needs crdt/<level> on crdt://{}",
                    b.namespace, b.namespace
                ),
            )
        })?;
        let level = match &b.level {
            Some(text) => level(text)?,
            None => granted,
        };
        if level == Level::None || level > granted {
            return Err(error(
                400,
                format!(
                    "the token grants at most {} in {}",
                    granted.name(),
                    b.namespace
                ),
            ));
        }
        let op = AccessOp::Redeem {
            holder,
            level,
            issuer,
            proof,
        };
        crdt.write_access(now, wall_millis(), &b.namespace, &op)
            .map_err(refused)?;
        Ok(access_json(crdt, &b.namespace))
    })
}

/// The set member redeeming `token` for `holder` (decoded again to check the token).
fn redemption_member(token: &str, holder: Actor) -> String {
    json!({
        "op": "redeem",
        "subject": key_text(&holder),
        "level": "pull",
        "proof": token,
        "n": 1,
    })
    .to_string()
}

/// `POST /v1/crdt/access/revoke`: the revocation keeps what this node holds of the subject's
/// changes; the rest of its changes, made concurrently, are cut everywhere.
pub(super) fn crdt_revoke(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    with_crdt(r, |crdt, now| {
        let b: RevokeBody = parse(&request.body)?;
        let level = level(b.level.as_deref().unwrap_or("none"))?;
        if level == Level::Manage {
            return Err(error(400, "revoking down to manage takes nothing away"));
        }
        let subject = subject(&b.subject)?;
        let keep = match subject {
            Subject::Key(key) => crdt.host.store.replica().seen_of(&b.namespace, key),
            Subject::Anyone => Default::default(),
        };
        if keep.len() > crate::services::crdt::access::op::MAX_KEEP {
            return Err(error(
                409,
                "the subject wrote more documents than one revocation can name",
            ));
        }
        let op = AccessOp::Revoke {
            subject,
            level,
            keep,
        };
        crdt.write_access(now, wall_millis(), &b.namespace, &op)
            .map_err(refused)?;
        Ok(access_json(crdt, &b.namespace))
    })
}

/// `POST /v1/crdt/access`: who may do what in a namespace.
pub(super) fn crdt_access(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    with_crdt(r, |crdt, _| {
        let b: NamespaceBody = parse(&request.body)?;
        Ok(access_json(crdt, &b.namespace))
    })
}

fn class_json(class: &NamespaceClass) -> Value {
    let name = match class {
        NamespaceClass::Owned(_) => "owned",
        NamespaceClass::Unowned => "unowned",
        NamespaceClass::Identity => "identity",
        NamespaceClass::Public => "public",
        NamespaceClass::Shared => "shared",
        NamespaceClass::Open => "open",
    };
    json!(name)
}

fn key_text(actor: &Actor) -> String {
    did_key(&PublicKey::from_bytes(actor.0))
}

/// A namespace's access as the API shows it.
fn access_json(crdt: &mut crate::driver::crdt::DaemonCrdt, namespace: &str) -> Value {
    let me = Actor(*crdt.host.key().public_key().as_bytes());
    let replica = crdt.host.store.replica_mut();
    let you = replica.level(namespace, "", me);
    let root = replica.trust_root().clone();
    let class = NamespaceClass::of(namespace, &root);
    let suppressed: usize = (replica.documents())
        .filter(|((ns, doc), _)| ns == namespace && doc != ACCESS_DOCUMENT)
        .map(|(_, log)| log.suppressed())
        .sum();
    let mut answer = json!({
        "namespace": namespace,
        "class": class_json(&class),
        "you": you.name(),
        "suppressed": suppressed,
    });
    if let NamespaceClass::Owned(owner) = &class {
        answer["owner"] = json!(key_text(owner));
    }
    if let Some(log) = replica.access(namespace) {
        answer["members"] = log
            .members()
            .into_iter()
            .map(|(s, l)| json!({ "subject": s.text(), "level": l.name() }))
            .collect();
        answer["changes"] = log
            .entries()
            .map(|(entry, counts)| {
                let (op, keep, by) = match &entry.op {
                    AccessOp::Grant { .. } => ("grant", None, None),
                    AccessOp::Revoke { keep, .. } => ("revoke", Some(keep), None),
                    AccessOp::Redeem { issuer, .. } => ("redeem", None, Some(key_text(issuer))),
                };
                let mut change = json!({
                    "author": key_text(&entry.author),
                    "seq": entry.seq,
                    "op": op,
                    "subject": entry.op.subject().text(),
                    "level": entry.op.level().name(),
                    "keep": keep,
                    "counts": counts,
                });
                if let Some(issuer) = by {
                    change["delegated_by"] = json!(issuer);
                }
                change
            })
            .collect();
    }
    answer
}
