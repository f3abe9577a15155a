//! One replica's record of a document: the changes it holds, by `(actor, seq)`, and the proof of any
//! actor that signed two different changes under one number.
//!
//! Changes are joined into the document as they arrive, in any order (deltas commute). The version
//! vector counts, per actor, the changes held without a gap; a peer that sends its own vector gets
//! exactly the changes it lacks. An actor that signs a second, different change with a `seq` already
//! used has equivocated: the second change is kept as evidence with the first and is not applied,
//! and the actor is reported, so replicas never diverge silently over it (Kleppmann, "Making CRDTs
//! Byzantine fault tolerant", PaPoC 2022).

use std::collections::{BTreeMap, BTreeSet};

use super::change::{Change, ChangeId};
use super::context::Actor;
use super::document::Document;
use super::field::Kind;

/// Two different changes signed by one actor with one `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// The actor.
    pub actor: Actor,
    /// The number used twice.
    pub seq: u64,
    /// The change held first, encoded (signed, so anyone can check it).
    pub first: Vec<u8>,
    /// The other one, encoded.
    pub second: Vec<u8>,
}

/// What inserting a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// New: stored and joined.
    Applied,
    /// Already held (re-import, a retransmission): nothing changed.
    Duplicate,
    /// A different change with the same `(actor, seq)`: kept as evidence, not applied.
    Equivocation,
    /// For another document or schema: refused.
    WrongDocument,
}

/// A replica of one document with its changes.
#[derive(Debug, Clone)]
pub struct DocumentLog {
    namespace: String,
    name: String,
    document: Document,
    changes: BTreeMap<(Actor, u64), (ChangeId, Vec<u8>)>,
    equivocations: Vec<Equivocation>,
}

impl DocumentLog {
    /// An empty replica.
    pub fn new(namespace: &str, name: &str, kind: Kind) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            document: Document::new(kind),
            changes: BTreeMap::new(),
            equivocations: Vec::new(),
        }
    }

    /// The document as joined so far.
    pub fn document(&self) -> &Document {
        &self.document
    }

    /// Inserts a verified change (see [`Change::decode_verified`]) and its encoding.
    pub fn insert(&mut self, change: &Change, encoded: &[u8]) -> Inserted {
        if change.namespace != self.namespace
            || change.document != self.name
            || change.kind != self.document.kind()
        {
            return Inserted::WrongDocument;
        }
        let actor = Actor(*change.actor.as_bytes());
        let id = change.id();
        match self.changes.get(&(actor, change.seq)) {
            Some((held, _)) if *held == id => Inserted::Duplicate,
            Some((_, first)) => {
                if !self
                    .equivocations
                    .iter()
                    .any(|e| e.actor == actor && e.seq == change.seq && e.second == encoded)
                {
                    self.equivocations.push(Equivocation {
                        actor,
                        seq: change.seq,
                        first: first.clone(),
                        second: encoded.to_vec(),
                    });
                }
                Inserted::Equivocation
            }
            None => {
                if !self.document.apply(&change.delta) {
                    return Inserted::WrongDocument;
                }
                self.changes
                    .insert((actor, change.seq), (id, encoded.to_vec()));
                Inserted::Applied
            }
        }
    }

    /// Per actor, how many of its changes are held from 1 without a gap.
    pub fn version_vector(&self) -> BTreeMap<Actor, u64> {
        let mut vv = BTreeMap::new();
        for (actor, seq) in self.changes.keys() {
            let next = vv.entry(*actor).or_insert(0u64);
            if *seq == *next + 1 {
                *next = *seq;
            }
        }
        vv.retain(|_, n| *n > 0);
        vv
    }

    /// The encoded changes a replica with version vector `theirs` lacks, in `(actor, seq)` order.
    pub fn missing_for<'a>(
        &'a self,
        theirs: &'a BTreeMap<Actor, u64>,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.changes
            .iter()
            .filter(move |((actor, seq), _)| *seq > theirs.get(actor).copied().unwrap_or(0))
            .map(|(_, (_, bytes))| bytes.as_slice())
    }

    /// The next `seq` for changes by `actor` (a node's own writes).
    pub fn next_seq(&self, actor: Actor) -> u64 {
        self.changes
            .range((actor, 0)..=(actor, u64::MAX))
            .next_back()
            .map_or(1, |((_, seq), _)| seq + 1)
    }

    /// Proof of every equivocation seen.
    pub fn equivocations(&self) -> &[Equivocation] {
        &self.equivocations
    }

    /// Actors that equivocated.
    pub fn equivocators(&self) -> BTreeSet<Actor> {
        self.equivocations.iter().map(|e| e.actor).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::NodeKey;
    use crate::services::crdt::document::{Edit, Op, View};
    use crate::services::crdt::field::ValueKind;

    const KIND: Kind = Kind::Map(ValueKind::Lww);

    /// A node writing `key = value` as its `seq`-th change, from its own replica.
    fn write(
        key: &NodeKey,
        replica: &mut Document,
        seq: u64,
        k: &str,
        v: &str,
    ) -> (Change, Vec<u8>) {
        let actor = Actor(*key.public_key().as_bytes());
        let delta = replica
            .edit(actor, &Op::Key(k.into(), Edit::Write(v.into())), seq)
            .unwrap();
        let change = Change::sign(key, "ns", "doc", KIND, seq, seq, delta);
        let bytes = change.encode();
        (Change::decode_verified(&bytes).unwrap(), bytes)
    }

    #[test]
    fn duplicates_are_no_ops_and_peers_get_exactly_what_they_lack() {
        let key = NodeKey::from_seed(&[1; 32]);
        let actor = Actor(*key.public_key().as_bytes());
        let mut replica = Document::new(KIND);
        let writes: Vec<_> = (1..=3)
            .map(|s| write(&key, &mut replica, s, "k", &format!("v{s}")))
            .collect();
        let mut log = DocumentLog::new("ns", "doc", KIND);
        // Out of order, with a duplicate.
        for (i, expect) in [
            (2, Inserted::Applied),
            (0, Inserted::Applied),
            (2, Inserted::Duplicate),
            (1, Inserted::Applied),
        ] {
            let (c, b) = &writes[i];
            assert_eq!(log.insert(c, b), expect);
            if log.changes.len() == 1 {
                assert!(
                    log.version_vector().is_empty(),
                    "1 and 2 missing: no gap-free prefix"
                );
            }
        }
        assert_eq!(log.version_vector(), [(actor, 3)].into());
        assert_eq!(log.next_seq(actor), 4);
        assert_eq!(log.document().view(), replica.view());
        let theirs = [(actor, 1)].into();
        let missing: Vec<&[u8]> = log.missing_for(&theirs).collect();
        assert_eq!(missing, vec![&writes[1].1[..], &writes[2].1[..]]);
        let other = DocumentLog::new("ns", "other", KIND);
        let (c, b) = &writes[0];
        assert_eq!(other.clone().insert(c, b), Inserted::WrongDocument);
    }

    #[test]
    fn two_changes_under_one_seq_are_evidence_not_merged() {
        let key = NodeKey::from_seed(&[1; 32]);
        let (mut one, mut two) = (Document::new(KIND), Document::new(KIND));
        let (a, a_bytes) = write(&key, &mut one, 1, "k", "honest");
        let (b, b_bytes) = write(&key, &mut two, 1, "k", "forked");
        let mut log = DocumentLog::new("ns", "doc", KIND);
        assert_eq!(log.insert(&a, &a_bytes), Inserted::Applied);
        assert_eq!(log.insert(&b, &b_bytes), Inserted::Equivocation);
        assert_eq!(log.insert(&b, &b_bytes), Inserted::Equivocation);
        assert_eq!(log.equivocations().len(), 1);
        let e = &log.equivocations()[0];
        assert_eq!((e.seq, &e.first, &e.second), (1, &a_bytes, &b_bytes));
        assert_eq!(
            log.equivocators(),
            [Actor(*key.public_key().as_bytes())].into()
        );
        let View::Map(m) = log.document().view() else {
            panic!()
        };
        assert_eq!(m["k"], View::Lww(Some("honest".into())));
    }
}
