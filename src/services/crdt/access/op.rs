//! Access changes: what one grant or revocation says, as the set member it is stored as.
//!
//! ```json
//! {"op":"grant","subject":"did:key:z6Mk…","level":"write","n":3}
//! {"op":"revoke","subject":"*","level":"read","keep":{"stock":12,"_access":2},"n":4}
//! {"op":"redeem","subject":"did:key:z6Mk…","level":"write","proof":"eyJ…","n":1}
//! ```
//! `subject` is a did:key or `*` (anyone); `n` is the carrying change's `seq`, so every member is
//! new (a set add of a member already there would cover the older dot). `keep` (revocations
//! only): per document, how many of the subject's changes the author had seen; the subject's later
//! changes it had not seen are cut (see [`super::resolve`]). A redemption is a grant its author
//! makes to itself with a manager's delegation token (`proof`, a UCAN with no proofs of its own,
//! granting `crdt/<level>` on `crdt://<namespace>`): it counts as if the token's issuer had made it
//! at the redemption's access point.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::services::crdt::change::MAX_DOCUMENT;
use crate::services::crdt::context::Actor;
use crate::services::identity::did_key::{did_key, parse_did_key};
use crate::services::identity::ucan::{self, Capability};

/// Documents a revocation's `keep` may name, at most.
pub const MAX_KEEP: usize = 1_024;
/// Longest encoded access change, in bytes.
pub const MAX_OP_LEN: usize = 64 * 1024;

/// What a key may do with a namespace; each level includes the ones below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing.
    None,
    /// Replicate it (hold and relay the bytes; this node's API does not show them).
    Pull,
    /// Replicate and read it.
    Read,
    /// Read and write it.
    Write,
    /// Write it and grant or revoke others' access.
    Manage,
}

impl Level {
    /// The level named `name` (`none`, `pull`, `read`, `write`, `manage`).
    pub fn parse(name: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_ascii_lowercase())).ok()
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Pull => "pull",
            Level::Read => "read",
            Level::Write => "write",
            Level::Manage => "manage",
        }
    }
}

/// Whom an access change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// One key.
    Key(Actor),
    /// Every key without an access change of its own.
    Anyone,
}

impl Subject {
    /// `*` or a did:key.
    pub fn parse(text: &str) -> Option<Self> {
        if text == "*" {
            return Some(Subject::Anyone);
        }
        parse_did_key(text)
            .ok()
            .map(|k| Subject::Key(Actor(*k.as_bytes())))
    }

    /// `*` or the did:key.
    pub fn text(&self) -> String {
        match self {
            Subject::Anyone => "*".to_owned(),
            Subject::Key(actor) => did_key(&crate::core::identity::PublicKey::from_bytes(actor.0)),
        }
    }
}

/// One access change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessOp {
    /// `subject` holds `level` from here on (a grant, or a promotion).
    Grant {
        /// Who.
        subject: Subject,
        /// What it may do (at least [`Level::Pull`]).
        level: Level,
    },
    /// `subject` holds at most `level` from here on, and its changes the author had not seen
    /// (past `keep`) are cut.
    Revoke {
        /// Who.
        subject: Subject,
        /// What it keeps (below what it had).
        level: Level,
        /// Per document, how many of the subject's changes the author had seen.
        keep: BTreeMap<String, u64>,
    },
    /// `holder`, the author, takes `level` by `issuer`'s delegation token.
    Redeem {
        /// Who takes the level: the token's audience, and the change's author.
        holder: Actor,
        /// What it takes.
        level: Level,
        /// Who signed the token: must manage the namespace at the redemption's access point.
        issuer: Actor,
        /// The token and what it says.
        proof: Box<Proof>,
    },
}

/// A delegation token as a redemption carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The token (a JWT).
    pub token: String,
    /// What it grants.
    pub capabilities: Vec<Capability>,
    /// In force from, seconds since the epoch.
    pub not_before: u64,
    /// In force until, seconds since the epoch.
    pub expires: u64,
}

impl Proof {
    /// The highest level the token grants in `namespace` (`crdt/<level>` on `crdt://<namespace>`,
    /// or a wider pattern), if any.
    pub fn grants(&self, namespace: &str) -> Option<Level> {
        let resource = format!("crdt://{namespace}");
        [Level::Manage, Level::Write, Level::Read, Level::Pull]
            .into_iter()
            .find(|level| {
                let wanted = Capability {
                    with: resource.clone(),
                    can: format!("crdt/{}", level.name()),
                };
                self.capabilities.iter().any(|c| c.covers(&wanted))
            })
    }

    /// Whether the token was in force at `secs`.
    pub fn in_force_at(&self, secs: u64) -> bool {
        self.not_before <= secs && secs <= self.expires
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    op: String,
    subject: String,
    level: Level,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keep: Option<BTreeMap<String, u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proof: Option<String>,
    n: u64,
}

/// Why an access change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// Not an access change.
    #[error("not an access change: {0}")]
    Malformed(&'static str),
    /// `n` differs from the carrying change's `seq`.
    #[error("n is not the change's seq")]
    Number,
    /// A redemption's token does not verify, or is not the subject's.
    #[error("delegation token: {0}")]
    Proof(String),
}

impl AccessOp {
    /// The subject.
    pub fn subject(&self) -> Subject {
        match self {
            AccessOp::Grant { subject, .. } | AccessOp::Revoke { subject, .. } => *subject,
            AccessOp::Redeem { holder, .. } => Subject::Key(*holder),
        }
    }

    /// The level it sets.
    pub fn level(&self) -> Level {
        match self {
            AccessOp::Grant { level, .. }
            | AccessOp::Revoke { level, .. }
            | AccessOp::Redeem { level, .. } => *level,
        }
    }

    /// The set member carrying it in the change numbered `seq`.
    pub fn encode(&self, seq: u64) -> String {
        let wire = match self {
            AccessOp::Grant { subject, level } => Wire {
                op: "grant".into(),
                subject: subject.text(),
                level: *level,
                keep: None,
                proof: None,
                n: seq,
            },
            AccessOp::Redeem {
                holder,
                level,
                proof,
                ..
            } => Wire {
                op: "redeem".into(),
                subject: Subject::Key(*holder).text(),
                level: *level,
                keep: None,
                proof: Some(proof.token.clone()),
                n: seq,
            },
            AccessOp::Revoke {
                subject,
                level,
                keep,
            } => Wire {
                op: "revoke".into(),
                subject: subject.text(),
                level: *level,
                keep: Some(keep.clone()),
                proof: None,
                n: seq,
            },
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// The access change a set member of the change numbered `seq` carries.
    pub fn decode(member: &str, seq: u64) -> Result<Self, OpError> {
        if member.len() > MAX_OP_LEN {
            return Err(OpError::Malformed("too long"));
        }
        let wire: Wire =
            serde_json::from_str(member).map_err(|_| OpError::Malformed("not the JSON form"))?;
        if wire.n != seq {
            return Err(OpError::Number);
        }
        let subject = Subject::parse(&wire.subject).ok_or(OpError::Malformed("subject"))?;
        match (wire.op.as_str(), wire.keep, wire.proof) {
            ("grant", None, None) if wire.level > Level::None => Ok(AccessOp::Grant {
                subject,
                level: wire.level,
            }),
            ("redeem", None, Some(token)) if wire.level > Level::None => {
                redemption(subject, wire.level, token)
            }
            ("revoke", Some(keep), None)
                if wire.level < Level::Manage
                    && keep.len() <= MAX_KEEP
                    && keep
                        .keys()
                        .all(|d| !d.is_empty() && d.len() <= MAX_DOCUMENT) =>
            {
                Ok(AccessOp::Revoke {
                    subject,
                    level: wire.level,
                    keep,
                })
            }
            _ => Err(OpError::Malformed("op, level, keep or proof")),
        }
    }
}

/// A redemption of `token` by `subject`, which must be the token's audience.
fn redemption(subject: Subject, level: Level, token: String) -> Result<AccessOp, OpError> {
    let Subject::Key(holder) = subject else {
        return Err(OpError::Malformed("a redemption's subject is its author"));
    };
    let delegation = ucan::verify_direct(&token).map_err(|e| OpError::Proof(e.to_string()))?;
    let audience =
        parse_did_key(&delegation.audience).map_err(|e| OpError::Proof(e.to_string()))?;
    if audience.as_bytes() != &holder.0 {
        return Err(OpError::Proof(format!(
            "it was given to {}, not to the subject",
            delegation.audience
        )));
    }
    Ok(AccessOp::Redeem {
        holder,
        level,
        issuer: Actor(*delegation.issuer.as_bytes()),
        proof: Box::new(Proof {
            token,
            capabilities: delegation.capabilities,
            not_before: delegation.not_before,
            expires: delegation.expires,
        }),
    })
}
