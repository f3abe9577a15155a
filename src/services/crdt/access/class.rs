//! What a namespace's name says about who may do what before any grant: its managers that cannot be
//! revoked (roots) and what anyone may do.

use std::collections::BTreeSet;

use super::op::Level;
use crate::services::crdt::context::Actor;
use crate::services::identity::did_key::parse_did_key;

/// The mesh's admins: the roots of every namespace that has no owner. Every node of a mesh must be
/// configured with the same set (`identity.admins`), or their verdicts differ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustRoot {
    admins: BTreeSet<Actor>,
}

impl TrustRoot {
    /// The trust root of these admins.
    pub fn new(admins: impl IntoIterator<Item = Actor>) -> Self {
        Self {
            admins: admins.into_iter().collect(),
        }
    }

    /// True if `actor` is an admin.
    pub fn is_admin(&self, actor: &Actor) -> bool {
        self.admins.contains(actor)
    }

    /// True when no admin is configured (an open mesh).
    pub fn is_empty(&self) -> bool {
        self.admins.is_empty()
    }
}

/// A namespace's kind, from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceClass {
    /// `~<did:key id>/<label>`: owned by that key, private until it grants access.
    Owned(Actor),
    /// A `~` name whose owner is not a key: nobody may write it.
    Unowned,
    /// `identity`: the registry; the admins manage it, anyone reads it.
    Identity,
    /// `public`, `public/…` and `names` (mesh names, whose own rule keeps each claimant to its own
    /// entries): anyone writes; the admins manage it (and may shut a key out).
    Public,
    /// Any other name on a mesh with admins: theirs until they grant access.
    Shared,
    /// Any name but an owned one on a mesh without admins: anyone writes, as before access
    /// control (nobody could manage it).
    Open,
}

impl NamespaceClass {
    /// The class of `namespace` under `root`.
    pub fn of(namespace: &str, root: &TrustRoot) -> Self {
        if let Some(rest) = namespace.strip_prefix('~') {
            let owner = rest.split_once('/').map_or(rest, |(o, _)| o);
            return match parse_did_key(&format!("did:key:{owner}")) {
                Ok(key) => NamespaceClass::Owned(Actor(*key.as_bytes())),
                Err(_) => NamespaceClass::Unowned,
            };
        }
        if root.is_empty() {
            NamespaceClass::Open
        } else if namespace == "identity" {
            NamespaceClass::Identity
        } else if namespace == "public"
            || namespace.starts_with("public/")
            || namespace == crate::services::names::NAMESPACE
            // `services::blobs::announce::NAMESPACE` (blobs are in the services build only).
            || namespace == "blobs"
        {
            NamespaceClass::Public
        } else {
            NamespaceClass::Shared
        }
    }

    /// True if `actor` manages the namespace whatever the access changes say.
    pub fn is_root(&self, actor: &Actor, root: &TrustRoot) -> bool {
        match self {
            NamespaceClass::Owned(owner) => owner == actor,
            NamespaceClass::Unowned | NamespaceClass::Open => false,
            NamespaceClass::Identity | NamespaceClass::Public | NamespaceClass::Shared => {
                root.is_admin(actor)
            }
        }
    }

    /// What a key holds in `document` without an access change naming it or anyone.
    pub fn default_level(&self, document: &str) -> Level {
        match self {
            NamespaceClass::Owned(_) | NamespaceClass::Unowned | NamespaceClass::Shared => {
                Level::None
            }
            // Users revoke their own keys through any node; which revocations count is the
            // registry's rule (the token's issuer), not the writer's.
            NamespaceClass::Identity if document == "revocations" => Level::Write,
            NamespaceClass::Identity => Level::Read,
            NamespaceClass::Public | NamespaceClass::Open => Level::Write,
        }
    }

    /// False for an open namespace, where no access change applies and every write counts.
    pub fn controlled(&self) -> bool {
        *self != NamespaceClass::Open
    }
}
