//! Which documents a node replicates, and with whom.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::core::identity::PublicKey;

/// A set of namespaces: every one, or those listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NamespaceFilter {
    /// Every namespace (the default: replicate everything given).
    #[default]
    All,
    /// Only these.
    Only(BTreeSet<String>),
}

impl NamespaceFilter {
    /// From a configuration list, where `"*"` means every namespace.
    pub fn from_list<S: AsRef<str>>(names: &[S]) -> Self {
        if names.iter().any(|n| n.as_ref() == "*") {
            Self::All
        } else {
            Self::Only(names.iter().map(|n| n.as_ref().to_owned()).collect())
        }
    }

    /// True if `namespace` is in the set.
    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.contains(namespace),
        }
    }
}

/// Settings of the sync engine.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Namespaces this node replicates at all.
    pub namespaces: NamespaceFilter,
    /// Per peer, the namespaces replicated with it (default: all of [`Self::namespaces`]).
    pub peers: BTreeMap<PublicKey, NamespaceFilter>,
    /// Full digests to every peer this often (jittered ±50 %), to catch anything missed.
    pub digest_interval: Duration,
    /// Changes learnt from a peer are announced to the other peers after this (coalescing bursts).
    pub announce_delay: Duration,
    /// After a local write is pushed, peers get a digest this much later (to notice a lost push).
    pub push_check_delay: Duration,
    /// A pull that made no progress for this long is asked again.
    pub pull_timeout: Duration,
    /// Largest sync message, in bytes (changes are batched up to this).
    pub batch_bytes: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            namespaces: NamespaceFilter::All,
            peers: BTreeMap::new(),
            digest_interval: Duration::from_secs(10),
            announce_delay: Duration::from_millis(20),
            push_check_delay: Duration::from_secs(1),
            pull_timeout: Duration::from_secs(2),
            batch_bytes: 1200,
        }
    }
}

impl SyncConfig {
    /// True if documents of `namespace` are replicated with `peer`.
    pub fn allows(&self, peer: &PublicKey, namespace: &str) -> bool {
        self.namespaces.allows(namespace)
            && self.peers.get(peer).is_none_or(|f| f.allows(namespace))
    }
}
