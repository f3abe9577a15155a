//! A node's replicas: every document it holds, by namespace and name, and the one way changes get
//! in (verified first). The daemon keeps this behind its database; the simulator keeps it in memory.

use std::collections::BTreeMap;

use super::change::{Change, ChangeError, decode_verified_all};
use super::context::Actor;
use super::document::{Document, EditError, Op};
use super::field::Kind;
use super::log::{DocumentLog, Inserted};
use crate::core::identity::NodeKey;

/// A document's namespace and name.
pub type DocName = (String, String);

/// Per document, the version vector of a replica (what it has), for exports.
pub type Have = BTreeMap<DocName, BTreeMap<Actor, u64>>;

/// Why a local write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// A name that changes may not carry.
    #[error("invalid namespace or document name")]
    Name,
    /// The document exists with another schema.
    #[error("document {0}/{1} is a {2:?} document")]
    Schema(String, String, Kind),
    /// The edit does not suit the schema.
    #[error("{0}")]
    Edit(#[from] EditError),
}

/// Every document a node holds.
#[derive(Debug, Clone, Default)]
pub struct Replica {
    docs: BTreeMap<DocName, DocumentLog>,
}

impl Replica {
    /// No documents.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts a change already verified (see [`Change::decode_verified`]) with its encoding.
    pub fn insert_verified(&mut self, change: &Change, encoded: &[u8]) -> Inserted {
        self.docs
            .entry((change.namespace.clone(), change.document.clone()))
            .or_insert_with(|| DocumentLog::new(&change.namespace, &change.document, change.kind))
            .insert(change, encoded)
    }

    /// Verifies and inserts encoded changes (from a peer, a file), one outcome each.
    pub fn insert<B: AsRef<[u8]>>(&mut self, encoded: &[B]) -> Vec<Result<Inserted, ChangeError>> {
        decode_verified_all(encoded)
            .into_iter()
            .zip(encoded)
            .map(|(r, b)| r.map(|c| self.insert_verified(&c, b.as_ref())))
            .collect()
    }

    /// Makes the signed change for a local edit of a document (created with `kind` if new). The
    /// change is not inserted: the caller stores it first (so an acknowledged write is durable),
    /// then inserts it.
    pub fn prepare_write(
        &self,
        key: &NodeKey,
        namespace: &str,
        document: &str,
        kind: Kind,
        op: &Op,
        wall_millis: u64,
    ) -> Result<Change, WriteError> {
        use super::change::{MAX_DOCUMENT, MAX_NAMESPACE, valid_name};
        if !valid_name(namespace, MAX_NAMESPACE) || !valid_name(document, MAX_DOCUMENT) {
            return Err(WriteError::Name);
        }
        let actor = Actor(*key.public_key().as_bytes());
        let (mut replica, seq) = match self.document(namespace, document) {
            Some(log) if log.document().kind() != kind => {
                return Err(WriteError::Schema(
                    namespace.into(),
                    document.into(),
                    log.document().kind(),
                ));
            }
            Some(log) => (log.document().clone(), log.next_seq(actor)),
            None => (Document::new(kind), 1),
        };
        let delta = replica.edit(actor, op, wall_millis)?;
        Ok(Change::sign(
            key,
            namespace,
            document,
            kind,
            seq,
            wall_millis,
            delta,
        ))
    }

    /// A document, if any change to it is held.
    pub fn document(&self, namespace: &str, document: &str) -> Option<&DocumentLog> {
        self.docs.get(&(namespace.to_owned(), document.to_owned()))
    }

    /// Every document held, by namespace and name.
    pub fn documents(&self) -> impl Iterator<Item = (&DocName, &DocumentLog)> {
        self.docs.iter()
    }

    /// Per document, the version vector held (what a peer's export can skip).
    pub fn have(&self) -> Have {
        self.docs
            .iter()
            .map(|(doc, log)| (doc.clone(), log.version_vector()))
            .collect()
    }

    /// The encoded changes a replica that has `since` lacks (every change if `since` is empty).
    pub fn missing<'a>(&'a self, since: &'a Have) -> Vec<&'a [u8]> {
        self.docs
            .iter()
            .flat_map(|(doc, log)| {
                let theirs = since.get(doc);
                log.missing_for(move |a| theirs.and_then(|t| t.get(a)).copied().unwrap_or(0))
                    .map(|(_, _, bytes)| bytes)
            })
            .collect()
    }
}
