//! Where the CRDT service keeps its changes: a redb database, so that a write acknowledged to an
//! application survives `kill -9` and power loss (redb commits are crash-safe and, with the default
//! durability, on disk when `commit` returns). Commits run on a writer thread
//! ([`super::crdt_writer`]): changes from peers are handed over and committed in groups, local
//! writes and imports wait for their commit.
//!
//! Only signed changes are stored; documents are rebuilt from them on start. A change this node
//! verified carries its tag ([`super::crdt_seal`], a MAC under a key derived from the node key), so
//! start-up does not check its signature again; one without a valid tag (an older file, another
//! node's, an edited byte) is verified again, in parallel, so a damaged or edited file cannot smuggle
//! in a forged change. Equivocation evidence is stored too.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::crdt_seal::Seal;
use super::crdt_writer::{Row, Table, Tables, Writer};
use crate::core::identity::NodeKey;
use crate::services::crdt::change::{Change, ChangeError};
use crate::services::crdt::drop::{DropError, DropFile};
use crate::services::crdt::host::Storage;
use crate::services::crdt::log::{DocumentLog, Inserted};
use crate::services::crdt::replica::{DocName, Replica};
use crate::services::crdt::sync::{Accepted, SyncStore};

/// `namespace\0document\0actor(32) seq(8, big-endian)` → the encoded change.
const CHANGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("changes");
/// Same key plus the second change's id → the second change of an equivocation.
const EVIDENCE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("evidence");
/// Same key as [`CHANGES`] → this node's tag of the change (see [`super::crdt_seal`]).
const SEALS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("seals");

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
    /// A drop file was refused.
    #[error("{0}")]
    Drop(#[from] DropError),
    /// A drop file holds a change that does not verify: the whole file is refused.
    #[error("drop file refused: change {index} of {count} is invalid: {error}")]
    DropChange {
        /// Which change, from 0.
        index: usize,
        /// How many the file holds.
        count: usize,
        /// Why it is invalid.
        error: ChangeError,
    },
}

/// What importing a drop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Changes new to this node.
    pub applied: usize,
    /// Changes it already had.
    pub duplicates: usize,
    /// Changes that proved an equivocation (kept as evidence).
    pub equivocations: usize,
}

pub use crate::services::crdt::replica::Have;

/// The changes and the documents they make.
pub struct CrdtStore {
    writer: Writer,
    path: String,
    replica: Replica,
    /// Tags changes as verified (none: every change is verified at every start).
    seal: Option<Seal>,
    /// Changes whose signatures were checked when the store was opened.
    verified_at_open: usize,
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
    /// Opens (or creates) the database at `path` and rebuilds every document from it, on a mesh
    /// without admins.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_into(path, Replica::new())
    }

    /// [`Self::open`] into `replica` (empty; it carries the mesh's trust root and the namespaces'
    /// own rules, which access follows).
    pub fn open_into(path: &Path, replica: Replica) -> Result<Self, StoreError> {
        Self::open_with(path, replica, None)
    }

    /// [`Self::open_into`] for the node with `key`: changes it verified before are taken in
    /// without checking their signatures again (their tags are checked instead).
    pub fn open_sealed(path: &Path, replica: Replica, key: &NodeKey) -> Result<Self, StoreError> {
        Self::open_with(path, replica, Some(Seal::of(key)))
    }

    fn open_with(path: &Path, replica: Replica, seal: Option<Seal>) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let fail = |e: &dyn std::fmt::Display| StoreError::Database {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let db = Database::create(path).map_err(|e| fail(&e))?;
        let write = db.begin_write().map_err(|e| fail(&e))?;
        write.open_table(CHANGES).map_err(|e| fail(&e))?;
        write.open_table(EVIDENCE).map_err(|e| fail(&e))?;
        write.open_table(SEALS).map_err(|e| fail(&e))?;
        write.commit().map_err(|e| fail(&e))?;
        // (key, bytes, tag checks)
        let mut stored: Vec<(Vec<u8>, Vec<u8>, bool)> = Vec::new();
        {
            let read = db.begin_read().map_err(|e| fail(&e))?;
            let table = read.open_table(CHANGES).map_err(|e| fail(&e))?;
            let seals = read.open_table(SEALS).map_err(|e| fail(&e))?;
            for entry in table.iter().map_err(|e| fail(&e))? {
                let (key, value) = entry.map_err(|e| fail(&e))?;
                let bytes = value.value().to_vec();
                let sealed = match &seal {
                    Some(seal) => seals
                        .get(key.value())
                        .map_err(|e| fail(&e))?
                        .is_some_and(|tag| seal.checks(&bytes, tag.value())),
                    None => false,
                };
                stored.push((key.value().to_vec(), bytes, sealed));
            }
        }
        // Untagged changes are verified again (in parallel); tagged ones are only decoded.
        let unsealed: Vec<&[u8]> = (stored.iter())
            .filter(|(_, _, sealed)| !sealed)
            .map(|(_, b, _)| b.as_slice())
            .collect();
        let mut verified = super::parallel::decode_changes(&unsealed).into_iter();
        let mut changes = Vec::with_capacity(stored.len());
        for (_, bytes, sealed) in &stored {
            let result = match sealed {
                true => Change::decode_trusted(bytes),
                false => verified.next().unwrap_or(Err(ChangeError::BadSignature)),
            };
            changes.push(result.map_err(|e| fail(&format!("a stored change is invalid: {e}")))?);
        }
        let verified_at_open = unsealed.len();
        if let Some(seal) = seal.as_ref().filter(|_| verified_at_open > 0) {
            let write = db.begin_write().map_err(|e| fail(&e))?;
            {
                let mut seals = write.open_table(SEALS).map_err(|e| fail(&e))?;
                for (key, bytes, _) in stored.iter().filter(|(_, _, sealed)| !sealed) {
                    let tag = seal.tag(bytes);
                    seals
                        .insert(key.as_slice(), tag.as_slice())
                        .map_err(|e| fail(&e))?;
                }
            }
            write.commit().map_err(|e| fail(&e))?;
        }
        let stored: Vec<Vec<u8>> = stored.into_iter().map(|(_, bytes, _)| bytes).collect();
        let tables = Tables {
            changes: CHANGES,
            evidence: EVIDENCE,
            seals: SEALS,
        };
        let writer = Writer::start(db, tables).map_err(|e| fail(&e))?;
        let mut store = Self {
            writer,
            path: shown.clone(),
            replica,
            seal,
            verified_at_open,
        };
        let mut outcomes: Vec<Result<Inserted, ChangeError>> = (changes.iter().zip(&stored))
            .map(|(change, bytes)| Ok(store.replica.insert_verified(change, bytes)))
            .collect();
        store
            .replica
            .retry_pending(&mut outcomes, |i| Some((&changes[i], stored[i].as_slice())));
        Ok(store)
    }

    /// Verifies, stores and applies changes (from a peer, a file or a local write), in one
    /// transaction: when this returns `Ok`, every change it reports as applied is on disk.
    pub fn insert<B: AsRef<[u8]> + Sync>(
        &mut self,
        encoded: &[B],
    ) -> Result<Vec<Result<Inserted, ChangeError>>, StoreError> {
        self.insert_into(None, encoded, true)
    }

    /// [`Self::insert`], refusing (as [`Inserted::WrongDocument`]) changes to any document but
    /// `only`, when given.
    ///
    /// `durable`: return only once what was kept is committed (a local write, an import); else the
    /// rows are handed to the writer thread and committed with others (changes from peers).
    pub fn insert_into<B: AsRef<[u8]> + Sync>(
        &mut self,
        only: Option<&DocName>,
        encoded: &[B],
        durable: bool,
    ) -> Result<Vec<Result<Inserted, ChangeError>>, StoreError> {
        let fail = |e: &dyn std::fmt::Display| StoreError::Database {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let verified = super::parallel::decode_changes(encoded);
        // In memory first (with changes waiting for access changes later in the batch tried
        // again), then one transaction for what is to be kept, and none at all for a batch that
        // keeps nothing (empty, junk, bad signatures, refused, other documents, held already): a
        // message that changes nothing costs no fsync.
        let mut outcomes: Vec<Result<Inserted, ChangeError>> = verified
            .iter()
            .zip(encoded)
            .map(|(result, bytes)| {
                let change = result.clone()?;
                if only.is_some_and(|d| d.0 != change.namespace || d.1 != change.document) {
                    return Ok(Inserted::WrongDocument);
                }
                Ok(self.replica.insert_verified(&change, bytes.as_ref()))
            })
            .collect();
        self.replica.retry_pending(&mut outcomes, |i| {
            verified[i].as_ref().ok().map(|c| (c, encoded[i].as_ref()))
        });
        let kept: Vec<(Vec<u8>, &[u8], bool)> = (outcomes.iter().zip(&verified).zip(encoded))
            .filter_map(|((outcome, change), bytes)| {
                let change = change.as_ref().ok()?;
                match outcome {
                    Ok(Inserted::Applied) => Some((key(change), bytes.as_ref(), false)),
                    Ok(Inserted::Equivocation) => {
                        let mut k = key(change);
                        k.extend_from_slice(&change.id().0);
                        Some((k, bytes.as_ref(), true))
                    }
                    _ => None,
                }
            })
            .collect();
        if kept.is_empty() {
            return Ok(outcomes);
        }
        let mut rows = Vec::with_capacity(kept.len() * 2);
        for (key, bytes, is_evidence) in kept {
            if is_evidence {
                rows.push(Row {
                    table: Table::Evidence,
                    key,
                    value: bytes.to_vec(),
                });
                continue;
            }
            if let Some(seal) = &self.seal {
                rows.push(Row {
                    table: Table::Seals,
                    key: key.clone(),
                    value: seal.tag(bytes).to_vec(),
                });
            }
            rows.push(Row {
                table: Table::Changes,
                key,
                value: bytes.to_vec(),
            });
        }
        match durable {
            true => self.writer.write_durably(rows),
            false => self.writer.write(rows),
        }
        .map_err(|e| fail(&e))?;
        Ok(outcomes)
    }

    /// Waits until everything handed to the writer is committed.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.writer
            .write_durably(Vec::new())
            .map_err(|reason| StoreError::Database {
                path: self.path.clone(),
                reason,
            })
    }

    /// Write transactions committed since the store was opened (each one fsync).
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    /// Changes whose signatures were checked when the store was opened (those without this node's
    /// tag).
    pub fn verified_at_open(&self) -> usize {
        self.verified_at_open
    }

    /// Reads a drop file and takes in its changes, all or none: a damaged file, a bad signature or
    /// any invalid change refuses the file and changes nothing. Importing a file twice is a no-op.
    pub fn import_drop(&mut self, file: &[u8]) -> Result<ImportReport, StoreError> {
        let drop = DropFile::read(file)?;
        let count = drop.changes.len();
        if let Some((index, Err(error))) = super::parallel::decode_changes(&drop.changes)
            .into_iter()
            .enumerate()
            .find(|(_, r)| r.is_err())
        {
            return Err(StoreError::DropChange {
                index,
                count,
                error,
            });
        }
        let mut report = ImportReport::default();
        for outcome in self.insert(&drop.changes)? {
            match outcome {
                Ok(Inserted::Applied) => report.applied += 1,
                Ok(Inserted::Duplicate) => report.duplicates += 1,
                Ok(Inserted::Equivocation) => report.equivocations += 1,
                _ => {}
            }
        }
        Ok(report)
    }

    /// A signed drop file of the changes a replica that has `since` lacks (every change if `since`
    /// is empty).
    pub fn export_drop(&self, key: &NodeKey, created_millis: u64, since: &Have) -> Vec<u8> {
        DropFile::export(key, created_millis, &self.replica.missing(since))
    }

    /// Per document, the version vector held (what a peer's export can skip).
    pub fn have(&self) -> Have {
        self.replica.have()
    }

    /// A document, if any change to it is held.
    pub fn document(&self, namespace: &str, document: &str) -> Option<&DocumentLog> {
        self.replica.document(namespace, document)
    }

    /// The documents held.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }
}

impl SyncStore for CrdtStore {
    fn replica(&self) -> &Replica {
        &self.replica
    }

    fn accept(&mut self, doc: &DocName, changes: &[&[u8]]) -> Accepted {
        match self.insert_into(Some(doc), changes, false) {
            Ok(outcomes) => Accepted {
                applied: (outcomes.iter())
                    .filter(|o| **o == Ok(Inserted::Applied))
                    .count(),
                bad: (outcomes.iter())
                    .filter(|o| {
                        matches!(
                            o,
                            Err(_) | Ok(Inserted::WrongDocument | Inserted::Refused(_))
                        )
                    })
                    .count(),
                pending: (outcomes.iter())
                    .filter(|o| **o == Ok(Inserted::Pending))
                    .count(),
                over_quota: (outcomes.iter())
                    .filter(|o| **o == Ok(Inserted::OverQuota))
                    .count(),
            },
            Err(e) => {
                tracing::error!("CRDT store: {e}");
                Accepted::default()
            }
        }
    }
}

impl Storage for CrdtStore {
    type Error = StoreError;

    fn replica_mut(&mut self) -> &mut Replica {
        &mut self.replica
    }

    /// One transaction with fsync: an acknowledged local write survives a crash.
    fn commit(&mut self, _change: &Change, encoded: &[u8]) -> Result<Inserted, StoreError> {
        let outcome = self.insert(&[encoded])?;
        // The change was made here and signed by us: it decodes; a failure would be a bug.
        Ok(match outcome.into_iter().next() {
            Some(Ok(inserted)) => inserted,
            _ => Inserted::WrongDocument,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::crdt::context::Actor;
    use crate::services::crdt::document::{Document, Edit, Op, View};
    use crate::services::crdt::field::{Kind, ValueKind};

    /// `n` signed counter changes by `key` to stock/boat.
    fn counter_changes(key: &NodeKey, n: u64) -> Vec<Vec<u8>> {
        let actor = Actor(*key.public_key().as_bytes());
        let kind = Kind::Map(ValueKind::Counter);
        let mut local = Document::new(kind);
        (1..=n)
            .map(|seq| {
                let op = Op::Key(format!("k{}", seq % 7), Edit::Increment(1));
                let delta = local.edit(actor, &op, seq).unwrap();
                Change::sign(key, "stock", "boat", kind, seq, seq, delta).encode()
            })
            .collect()
    }

    #[test]
    fn changes_from_peers_are_committed_by_the_writer_in_groups_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crdt.redb");
        let encoded = counter_changes(&NodeKey::from_seed(&[5; 32]), 500);
        let doc = ("stock".to_owned(), "boat".to_owned());
        {
            let mut store = CrdtStore::open(&path).unwrap();
            // 500 sync messages of one change each: handed over, not waited for.
            for change in &encoded {
                assert_eq!(store.accept(&doc, &[change.as_slice()]).applied, 1);
            }
            store.flush().unwrap();
            println!("500 sync messages: {} commits", store.commits());
            assert!((1..=500).contains(&store.commits()));
        }
        let reopened = CrdtStore::open(&path).unwrap();
        assert_eq!(reopened.document("stock", "boat").unwrap().len(), 500);
    }

    #[test]
    fn changes_this_node_verified_are_not_verified_again_and_an_edited_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crdt.redb");
        let (node, other) = (NodeKey::from_seed(&[3; 32]), NodeKey::from_seed(&[4; 32]));
        let writer = NodeKey::from_seed(&[5; 32]);
        let encoded = counter_changes(&writer, 200);
        let view = {
            let mut store = CrdtStore::open_sealed(&path, Replica::new(), &node).unwrap();
            store.insert(&encoded).unwrap();
            store.document("stock", "boat").unwrap().document().view()
        };
        let reopened = CrdtStore::open_sealed(&path, Replica::new(), &node).unwrap();
        assert_eq!(
            reopened.verified_at_open(),
            0,
            "every change carries the node's tag"
        );
        assert_eq!(
            reopened
                .document("stock", "boat")
                .unwrap()
                .document()
                .view(),
            view
        );
        drop(reopened);
        // Without the key (or under another node's), every change is verified; the other node tags
        // them for its next start.
        assert_eq!(CrdtStore::open(&path).unwrap().verified_at_open(), 200);
        let moved = CrdtStore::open_sealed(&path, Replica::new(), &other).unwrap();
        assert_eq!(moved.verified_at_open(), 200);
        drop(moved);
        assert_eq!(
            CrdtStore::open_sealed(&path, Replica::new(), &other)
                .unwrap()
                .verified_at_open(),
            0
        );
        // One stored change edited on disk: its tag no longer fits, it is verified, and refused.
        {
            let db = Database::create(&path).unwrap();
            let write = db.begin_write().unwrap();
            {
                let mut table = write.open_table(CHANGES).unwrap();
                let (k, mut v) = {
                    let first = table.iter().unwrap().next().unwrap().unwrap();
                    (first.0.value().to_vec(), first.1.value().to_vec())
                };
                let last = v.len() - 1;
                v[last] ^= 1;
                table.insert(k.as_slice(), v.as_slice()).unwrap();
            }
            write.commit().unwrap();
        }
        let refused = CrdtStore::open_sealed(&path, Replica::new(), &other);
        assert!(
            refused
                .as_ref()
                .err()
                .is_some_and(|e| e.to_string().contains("invalid")),
            "{:?}",
            refused.err()
        );
    }

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

    /// A sync message that can change nothing (empty, junk, forged, for another document, held
    /// already) costs no write transaction and so no fsync: 10 000 of them leave the disk alone.
    #[test]
    fn batches_that_cannot_change_anything_open_no_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = CrdtStore::open(&dir.path().join("crdt.redb")).unwrap();
        let key = NodeKey::from_seed(&[3; 32]);
        let kind = Kind::Value(ValueKind::Set);
        let delta = Document::new(kind)
            .edit(
                Actor(*key.public_key().as_bytes()),
                &Op::Value(Edit::Add("a".into())),
                1,
            )
            .unwrap();
        let good = Change::sign(&key, "stock", "boat", kind, 1, 1, delta).encode();
        let mut forged = good.clone();
        forged[30] ^= 1;
        let elsewhere = ("stock".to_owned(), "nets".to_owned());
        for _ in 0..10_000 {
            assert!(store.insert(&[] as &[Vec<u8>]).unwrap().is_empty());
        }
        assert!(store.insert(&[b"junk".to_vec(), forged]).unwrap()[0].is_err());
        let other = store
            .insert_into(Some(&elsewhere), std::slice::from_ref(&good), true)
            .unwrap();
        assert_eq!(other, vec![Ok(Inserted::WrongDocument)]);
        assert_eq!(
            store.commits(),
            0,
            "no transaction for what changes nothing"
        );
        assert_eq!(
            store.insert(std::slice::from_ref(&good)).unwrap(),
            vec![Ok(Inserted::Applied)]
        );
        assert_eq!(store.commits(), 1);
        // Sent again (a retransmission, or a member replaying it): no transaction either.
        assert_eq!(
            store.insert(&[good]).unwrap(),
            vec![Ok(Inserted::Duplicate)]
        );
        assert_eq!(store.commits(), 1);
    }

    #[test]
    fn a_drop_carries_what_the_other_side_lacks_and_a_damaged_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut island_a, mut island_b) = (
            CrdtStore::open(&dir.path().join("a.redb")).unwrap(),
            CrdtStore::open(&dir.path().join("b.redb")).unwrap(),
        );
        let (ka, kb) = (NodeKey::from_seed(&[1; 32]), NodeKey::from_seed(&[2; 32]));
        let kind = Kind::Value(ValueKind::Set);
        let write = |store: &mut CrdtStore, key: &NodeKey, seq: u64, member: &str| {
            let actor = Actor(*key.public_key().as_bytes());
            let mut replica = store
                .document("census", "boats")
                .map(|l| l.document().clone())
                .unwrap_or_else(|| Document::new(kind));
            let delta = replica
                .edit(actor, &Op::Value(Edit::Add(member.into())), seq)
                .unwrap();
            let change = Change::sign(key, "census", "boats", kind, seq, seq, delta).encode();
            store.insert(&[change]).unwrap();
        };
        write(&mut island_a, &ka, 1, "Aurora");
        write(&mut island_a, &ka, 2, "Bounty");
        write(&mut island_b, &kb, 1, "Calypso");
        // A -> B: everything B lacks; B -> A: only what A lacks.
        let to_b = island_a.export_drop(&ka, 100, &island_b.have());
        let to_a = island_b.export_drop(&kb, 100, &island_a.have());
        assert_eq!(DropFile::read(&to_a).unwrap().changes.len(), 1);
        let mut damaged = to_b.clone();
        let last = damaged.len() - 70;
        damaged[last] ^= 1;
        assert!(island_b.import_drop(&damaged).is_err());
        assert!(island_b.import_drop(&to_b[..to_b.len() - 1]).is_err());
        assert_eq!(
            island_b
                .document("census", "boats")
                .unwrap()
                .document()
                .view(),
            View::Set(vec!["Calypso".into()])
        );
        // Signed by its exporter but carrying a change nobody signed: refused whole.
        let mut payload = DropFile::read(&to_b).unwrap().changes;
        payload[1][40] ^= 1;
        let forged = DropFile::export(&ka, 100, &payload);
        assert!(matches!(
            island_b.import_drop(&forged),
            Err(StoreError::DropChange {
                index: 1,
                count: 2,
                ..
            })
        ));
        let report = island_b.import_drop(&to_b).unwrap();
        assert_eq!((report.applied, report.duplicates), (2, 0));
        assert_eq!(
            island_b.import_drop(&to_b).unwrap().duplicates,
            2,
            "re-import is a no-op"
        );
        island_a.import_drop(&to_a).unwrap();
        let all = View::Set(vec!["Aurora".into(), "Bounty".into(), "Calypso".into()]);
        for island in [&island_a, &island_b] {
            assert_eq!(
                island
                    .document("census", "boats")
                    .unwrap()
                    .document()
                    .view(),
                all
            );
        }
    }
}
