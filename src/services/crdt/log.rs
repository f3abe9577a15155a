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

use sha2::{Digest, Sha256};

use super::change::{AccessPoint, Change, ChangeId};
use super::context::{Actor, CausalContext};
use super::document::{Causal, Document};
use super::field::Kind;
use super::store::DotStore as _;

/// Documents every replica keeps grow-only, as `(namespace, document)`: a change to one is refused
/// (the same way on every node, so replicas still agree) unless it only adds, that is unless its
/// context is exactly the dots it carries. A set member's remove, or an add crafted to cover dots
/// it does not carry, never applies. The identity service's revocations live in one, so no node can
/// take a revocation back. (Adding a member that is already there would cover its earlier dots:
/// writers add each member once.)
pub const GROW_ONLY: &[(&str, &str)] = &[("identity", "revocations")];

/// True for a document that only grows: one of [`GROW_ONLY`], or any namespace's access document.
pub fn grow_only(namespace: &str, document: &str) -> bool {
    document == super::access::ACCESS_DOCUMENT
        || GROW_ONLY
            .iter()
            .any(|(ns, doc)| *ns == namespace && *doc == document)
}

/// True if `delta` removes nothing: its context holds exactly the dots of its entries.
pub(crate) fn only_adds(delta: &Causal) -> bool {
    let mut dots = Vec::new();
    delta.field.dots(&mut dots);
    !dots.is_empty() && delta.ctx == CausalContext::from_parts(BTreeMap::new(), dots)
}

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
    /// New: stored, and joined unless a revocation cuts it (see [`super::access`]).
    Applied,
    /// Already held (re-import, a retransmission): nothing changed.
    Duplicate,
    /// A different change with the same `(actor, seq)`: kept as evidence, not applied.
    Equivocation,
    /// For another document or schema: refused.
    WrongDocument,
    /// Its writer may not write here at its access point (see [`super::access`]): refused, the
    /// same way on every replica.
    Refused(&'static str),
    /// Its access point names access changes not held yet: not stored (a later pull brings it).
    Pending,
    /// Its namespace has reached this node's quota: not stored here (another node may allow more).
    OverQuota,
}

/// A replica of one document with its changes.
#[derive(Debug, Clone)]
pub struct DocumentLog {
    namespace: String,
    name: String,
    document: Document,
    changes: BTreeMap<(Actor, u64), (ChangeId, Vec<u8>)>,
    /// Per actor, the changes held from 1 without a gap (kept as changes arrive).
    contiguous: BTreeMap<Actor, u64>,
    equivocations: Vec<Equivocation>,
    /// Changes held that do not count (a revocation cut them): stored and synced, not joined.
    suppressed: BTreeSet<(Actor, u64)>,
    /// The closure of each change signed at a non-empty access point.
    closures: BTreeMap<(Actor, u64), AccessPoint>,
}

impl DocumentLog {
    /// An empty replica.
    pub fn new(namespace: &str, name: &str, kind: Kind) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            document: Document::new(kind),
            changes: BTreeMap::new(),
            contiguous: BTreeMap::new(),
            equivocations: Vec::new(),
            suppressed: BTreeSet::new(),
            closures: BTreeMap::new(),
        }
    }

    /// The document as joined so far.
    pub fn document(&self) -> &Document {
        &self.document
    }

    /// Whether exactly this change is held already (inserting it again would be a no-op).
    pub fn holds(&self, change: &Change) -> bool {
        let actor = Actor(*change.actor.as_bytes());
        (self.changes.get(&(actor, change.seq))).is_some_and(|(held, _)| *held == change.id())
    }

    /// Whether a different change with this one's `(actor, seq)` is held.
    pub fn conflicts(&self, change: &Change) -> bool {
        let actor = Actor(*change.actor.as_bytes());
        (self.changes.get(&(actor, change.seq))).is_some_and(|(held, _)| *held != change.id())
    }

    /// Inserts a verified change (see [`Change::decode_verified`]) and its encoding.
    pub fn insert(&mut self, change: &Change, encoded: &[u8]) -> Inserted {
        self.insert_gated(change, encoded, AccessPoint::new(), true)
    }

    /// [`Self::insert`] for a change admitted at `closure` (its access point's closure) that
    /// `counts` or not: one that does not is stored, and not joined.
    pub fn insert_gated(
        &mut self,
        change: &Change,
        encoded: &[u8],
        closure: AccessPoint,
        counts: bool,
    ) -> Inserted {
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
                if grow_only(&self.namespace, &self.name) && !only_adds(&change.delta) {
                    return Inserted::WrongDocument;
                }
                if counts {
                    if !self.document.apply(&change.delta) {
                        return Inserted::WrongDocument;
                    }
                } else if !change.delta.field.fits(self.document.kind()) {
                    return Inserted::WrongDocument;
                } else {
                    self.suppressed.insert((actor, change.seq));
                }
                if !closure.is_empty() {
                    self.closures.insert((actor, change.seq), closure);
                }
                self.changes
                    .insert((actor, change.seq), (id, encoded.to_vec()));
                let held = self.contiguous.entry(actor).or_insert(0);
                while self.changes.contains_key(&(actor, *held + 1)) {
                    *held += 1;
                }
                if *held == 0 {
                    self.contiguous.remove(&actor);
                }
                Inserted::Applied
            }
        }
    }

    /// Decides again which held changes count (`counts(actor, seq, closure)`), after the
    /// namespace's access changes changed; rebuilds the document from the changes that count if
    /// that differs. True if it did.
    pub fn reassess(&mut self, counts: &mut dyn FnMut(Actor, u64, &AccessPoint) -> bool) -> bool {
        let empty = AccessPoint::new();
        let suppressed: BTreeSet<(Actor, u64)> = (self.changes.keys())
            .filter(|k| !counts(k.0, k.1, self.closures.get(k).unwrap_or(&empty)))
            .copied()
            .collect();
        if suppressed == self.suppressed {
            return false;
        }
        let mut document = Document::new(self.document.kind());
        for (k, (_, bytes)) in &self.changes {
            if suppressed.contains(k) {
                continue;
            }
            // Stored only after it verified: decoding again cannot fail short of memory damage.
            if let Ok(change) = Change::decode_trusted(bytes) {
                document.apply(&change.delta);
            }
        }
        self.document = document;
        self.suppressed = suppressed;
        true
    }

    /// Changes held that do not count.
    pub fn suppressed(&self) -> usize {
        self.suppressed.len()
    }

    /// Per actor, how many of its changes are held from 1 without a gap.
    pub fn version_vector(&self) -> BTreeMap<Actor, u64> {
        self.contiguous.clone()
    }

    /// A short digest of what is held: equal for two replicas that hold the same changes (the version
    /// vector plus the count, so changes held past a gap count too). Sync compares these first.
    pub fn heads_hash(&self) -> [u8; 8] {
        let mut hash = Sha256::new();
        for (actor, seq) in &self.contiguous {
            hash.update(actor.0);
            hash.update(seq.to_le_bytes());
        }
        hash.update((self.changes.len() as u64).to_le_bytes());
        let digest = hash.finalize();
        let mut out = [0; 8];
        out.copy_from_slice(&digest[..8]);
        out
    }

    /// How many changes are held.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// True when no change is held.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The namespace and name.
    pub fn name(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }

    /// Every actor with a change held.
    pub fn actors(&self) -> impl Iterator<Item = Actor> + '_ {
        let mut next = Some(Actor([0; 32]));
        std::iter::from_fn(move || {
            let from = next.take()?;
            let ((actor, _), _) = self.changes.range((from, 0)..).next()?;
            let actor = *actor;
            next = successor(actor);
            Some(actor)
        })
    }

    /// The changes a replica that holds, per actor, `held(actor)` changes from 1 lacks, in
    /// `(actor, seq)` order, each with its actor and `seq`.
    pub fn missing_for<'a>(
        &'a self,
        held: impl Fn(&Actor) -> u64 + 'a,
    ) -> impl Iterator<Item = (Actor, u64, &'a [u8])> + 'a {
        self.actors().flat_map(move |actor| {
            let from = held(&actor).saturating_add(1);
            self.changes
                .range((actor, from)..=(actor, u64::MAX))
                .map(|((a, seq), (_, bytes))| (*a, *seq, bytes.as_slice()))
        })
    }

    /// The runs of `actor`'s changes held past the first gap, as inclusive `(first, last)` ranges
    /// (at most `max` of them): with the version vector, what a peer can skip resending.
    pub fn held_beyond_gap(&self, actor: &Actor, max: usize) -> Vec<(u64, u64)> {
        let from = self.contiguous.get(actor).copied().unwrap_or(0) + 1;
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for ((_, seq), _) in self.changes.range((*actor, from)..=(*actor, u64::MAX)) {
            let full = runs.len() == max;
            match runs.last_mut() {
                Some((_, last)) if *last + 1 == *seq => *last = *seq,
                _ if full => break,
                _ => runs.push((*seq, *seq)),
            }
        }
        runs
    }

    /// True if some change is held past a gap (something sent was lost on the way).
    pub fn has_gaps(&self) -> bool {
        self.contiguous.values().sum::<u64>() != self.changes.len() as u64
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

/// The next actor in key order, if any.
fn successor(actor: Actor) -> Option<Actor> {
    let mut bytes = actor.0;
    for b in bytes.iter_mut().rev() {
        if *b == u8::MAX {
            *b = 0;
        } else {
            *b += 1;
            return Some(Actor(bytes));
        }
    }
    None
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
        let theirs: BTreeMap<Actor, u64> = [(actor, 1)].into();
        let missing: Vec<&[u8]> = log
            .missing_for(|a| theirs.get(a).copied().unwrap_or(0))
            .map(|(_, _, bytes)| bytes)
            .collect();
        assert_eq!(missing, vec![&writes[1].1[..], &writes[2].1[..]]);
        let other = DocumentLog::new("ns", "other", KIND);
        let (c, b) = &writes[0];
        assert_eq!(other.clone().insert(c, b), Inserted::WrongDocument);
    }

    #[test]
    fn a_grow_only_document_refuses_every_removal() {
        const SET: Kind = Kind::Value(ValueKind::Set);
        let (ns, doc) = GROW_ONLY[0];
        let signed = |key: &NodeKey, replica: &mut Document, seq: u64, op: Op| {
            let actor = Actor(*key.public_key().as_bytes());
            let delta = replica.edit(actor, &op, seq).unwrap();
            let bytes = Change::sign(key, ns, doc, SET, seq, seq, delta).encode();
            (Change::decode_verified(&bytes).unwrap(), bytes)
        };
        let (a, b) = (NodeKey::from_seed(&[1; 32]), NodeKey::from_seed(&[2; 32]));
        let (mut a_replica, mut b_replica) = (Document::new(SET), Document::new(SET));
        let mut log = DocumentLog::new(ns, doc, SET);
        let (add, add_bytes) = signed(&a, &mut a_replica, 1, Op::Value(Edit::Add("r1".into())));
        assert_eq!(log.insert(&add, &add_bytes), Inserted::Applied);
        // B saw the add and removes it: refused everywhere.
        b_replica.apply(&add.delta);
        let (remove, remove_bytes) =
            signed(&b, &mut b_replica, 1, Op::Value(Edit::Remove("r1".into())));
        assert_eq!(log.insert(&remove, &remove_bytes), Inserted::WrongDocument);
        // An add that also covers r1's dot (re-adding r1 where it is held does that): refused too.
        let mut holder = Document::new(SET);
        holder.apply(&add.delta);
        let (readd, readd_bytes) = signed(&b, &mut holder, 2, Op::Value(Edit::Add("r1".into())));
        assert_eq!(log.insert(&readd, &readd_bytes), Inserted::WrongDocument);
        let (fresh, fresh_bytes) = signed(&b, &mut b_replica, 3, Op::Value(Edit::Add("r2".into())));
        assert_eq!(log.insert(&fresh, &fresh_bytes), Inserted::Applied);
        assert_eq!(
            log.document().view(),
            View::Set(vec!["r1".into(), "r2".into()])
        );
        // Elsewhere, sets still shrink.
        let mut plain = DocumentLog::new("ns", "set", SET);
        let plain_change = |c: &Change| {
            let bytes = Change::sign(&a, "ns", "set", SET, c.seq, c.seq, c.delta.clone()).encode();
            (Change::decode_verified(&bytes).unwrap(), bytes)
        };
        let (c, bytes) = plain_change(&add);
        assert_eq!(plain.insert(&c, &bytes), Inserted::Applied);
        let bytes = Change::sign(&b, "ns", "set", SET, 1, 1, remove.delta.clone()).encode();
        let c = Change::decode_verified(&bytes).unwrap();
        assert_eq!(plain.insert(&c, &bytes), Inserted::Applied);
        assert_eq!(plain.document().view(), View::Set(vec![]));
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
