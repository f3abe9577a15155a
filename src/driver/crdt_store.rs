//! Where the CRDT service keeps its changes: a redb database, so that a write acknowledged to an
//! application survives `kill -9` and power loss (redb commits are crash-safe and, with the default
//! durability, on disk when `commit` returns).
//!
//! Only signed changes are stored; documents are rebuilt from them on start (changes are verified
//! again, in parallel, so a damaged or edited file cannot smuggle in a forged change). Equivocation
//! evidence is stored too.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::services::crdt::change::{Change, ChangeError};
use crate::services::crdt::log::{DocumentLog, Inserted};

/// `namespace\0document\0actor(32) seq(8, big-endian)` → the encoded change.
const CHANGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("changes");
/// Same key plus the second change's id → the second change of an equivocation.
const EVIDENCE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("evidence");

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("CRDT store {path}: {reason}")]
    Database {
        /// Its file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A change was refused.
    #[error("{0}")]
    Change(#[from] ChangeError),
}

/// The changes and the documents they make.
pub struct CrdtStore {
    db: Database,
    path: String,
    docs: BTreeMap<(String, String), DocumentLog>,
}

fn key(change: &Change) -> Vec<u8> {
    let mut k = Vec::with_capacity(change.namespace.len() + change.document.len() + 42);
    k.extend_from_slice(change.namespace.as_bytes());
    k.push(0);
    k.extend_from_slice(change.document.as_bytes());
    k.push(0);
    k.extend_from_slice(change.actor.as_bytes());
    k.extend_from_slice(&change.seq.to_be_bytes());
    k
}

impl CrdtStore {
    /// Opens (or creates) the database at `path` and rebuilds every document from it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let fail = |e: &dyn std::fmt::Display| StoreError::Database {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let db = Database::create(path).map_err(|e| fail(&e))?;
        let write = db.begin_write().map_err(|e| fail(&e))?;
        write.open_table(CHANGES).map_err(|e| fail(&e))?;
        write.open_table(EVIDENCE).map_err(|e| fail(&e))?;
        write.commit().map_err(|e| fail(&e))?;
        let mut stored = Vec::new();
        {
            let read = db.begin_read().map_err(|e| fail(&e))?;
            let table = read.open_table(CHANGES).map_err(|e| fail(&e))?;
            for entry in table.iter().map_err(|e| fail(&e))? {
                let (_, value) = entry.map_err(|e| fail(&e))?;
                stored.push(value.value().to_vec());
            }
        }
        let mut store = Self {
            db,
            path: shown.clone(),
            docs: BTreeMap::new(),
        };
        for (result, bytes) in super::parallel::decode_changes(&stored)
            .into_iter()
            .zip(&stored)
        {
            let change = result.map_err(|e| fail(&format!("a stored change is invalid: {e}")))?;
            store.log_for(&change).insert(&change, bytes);
        }
        Ok(store)
    }

    fn log_for(&mut self, change: &Change) -> &mut DocumentLog {
        self.docs
            .entry((change.namespace.clone(), change.document.clone()))
            .or_insert_with(|| DocumentLog::new(&change.namespace, &change.document, change.kind))
    }

    /// Verifies, stores and applies changes (from a peer, a file or a local write), in one
    /// transaction: when this returns `Ok`, every change it reports as applied is on disk.
    pub fn insert(
        &mut self,
        encoded: &[Vec<u8>],
    ) -> Result<Vec<Result<Inserted, ChangeError>>, StoreError> {
        let fail = |e: &dyn std::fmt::Display| StoreError::Database {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let verified = super::parallel::decode_changes(encoded);
        let write = self.db.begin_write().map_err(|e| fail(&e))?;
        let mut outcomes = Vec::with_capacity(encoded.len());
        {
            let mut changes = write.open_table(CHANGES).map_err(|e| fail(&e))?;
            let mut evidence = write.open_table(EVIDENCE).map_err(|e| fail(&e))?;
            for (result, bytes) in verified.into_iter().zip(encoded) {
                let change = match result {
                    Ok(c) => c,
                    Err(e) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                };
                let entry = self
                    .docs
                    .entry((change.namespace.clone(), change.document.clone()))
                    .or_insert_with(|| {
                        DocumentLog::new(&change.namespace, &change.document, change.kind)
                    });
                let outcome = entry.insert(&change, bytes);
                let k = key(&change);
                match outcome {
                    Inserted::Applied => {
                        changes
                            .insert(k.as_slice(), bytes.as_slice())
                            .map_err(|e| fail(&e))?;
                    }
                    Inserted::Equivocation => {
                        let mut ek = k;
                        ek.extend_from_slice(&change.id().0);
                        evidence
                            .insert(ek.as_slice(), bytes.as_slice())
                            .map_err(|e| fail(&e))?;
                    }
                    Inserted::Duplicate | Inserted::WrongDocument => {}
                }
                outcomes.push(Ok(outcome));
            }
        }
        write.commit().map_err(|e| fail(&e))?;
        Ok(outcomes)
    }

    /// A document, if any change to it is held.
    pub fn document(&self, namespace: &str, document: &str) -> Option<&DocumentLog> {
        self.docs.get(&(namespace.to_owned(), document.to_owned()))
    }

    /// Every document held, by namespace and name.
    pub fn documents(&self) -> impl Iterator<Item = (&(String, String), &DocumentLog)> {
        self.docs.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::NodeKey;
    use crate::services::crdt::context::Actor;
    use crate::services::crdt::document::{Document, Edit, Op, View};
    use crate::services::crdt::field::{Kind, ValueKind};

    #[test]
    fn changes_survive_reopening_and_reinserting_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crdt.redb");
        let key = NodeKey::from_seed(&[3; 32]);
        let actor = Actor(*key.public_key().as_bytes());
        let kind = Kind::Map(ValueKind::Counter);
        let mut local = Document::new(kind);
        let encoded: Vec<Vec<u8>> = (1..=5u64)
            .map(|seq| {
                let op = Op::Key(format!("k{}", seq % 2), Edit::Increment(seq as i64));
                let delta = local.edit(actor, &op, seq).unwrap();
                Change::sign(&key, "stock", "boat", kind, seq, seq, delta).encode()
            })
            .collect();
        let mut forged = encoded[0].clone();
        forged[30] ^= 1;
        {
            let mut store = CrdtStore::open(&path).unwrap();
            let outcomes = store
                .insert(&[encoded.clone(), vec![forged]].concat())
                .unwrap();
            assert!(outcomes[..5].iter().all(|o| *o == Ok(Inserted::Applied)));
            assert!(outcomes[5].is_err(), "a forged change is refused");
        }
        let mut store = CrdtStore::open(&path).unwrap();
        let doc = store.document("stock", "boat").unwrap();
        assert_eq!(doc.document().view(), local.view());
        assert_eq!(
            doc.document().view(),
            View::Map(
                [
                    ("k0".into(), View::Counter(6)),
                    ("k1".into(), View::Counter(9))
                ]
                .into()
            )
        );
        let again = store.insert(&encoded).unwrap();
        assert!(again.iter().all(|o| *o == Ok(Inserted::Duplicate)));
    }
}
