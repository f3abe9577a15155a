//! Dot stores: the shapes a replica's entries take, and the one join rule they share.
//!
//! A store is joined with another together with both replicas' causal contexts: an entry survives if
//! both have it, or if one has it and the other has not seen its dot (so it is news, not a removal).
//! This join is commutative, associative and idempotent whatever order changes arrive in, which is
//! what lets replicas converge over lossy links and sneakernet alike (δ-CRDTs, Almeida et al.).

use std::collections::BTreeMap;

use super::context::{CausalContext, Dot};

/// A store of dotted entries.
pub trait DotStore: Clone + Default + PartialEq {
    /// True if it holds nothing.
    fn is_bottom(&self) -> bool;
    /// Appends every dot it holds.
    fn dots(&self, out: &mut Vec<Dot>);
    /// Joins `other` (whose replica has seen `theirs`) into `self` (whose replica has seen `ours`).
    fn join(&mut self, ours: &CausalContext, other: &Self, theirs: &CausalContext);
}

/// Dot → value: each entry was written once, under its own dot, and never changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotFun<V> {
    /// The entries.
    pub entries: BTreeMap<Dot, V>,
}

impl<V> Default for DotFun<V> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<V: Clone + PartialEq> DotStore for DotFun<V> {
    fn is_bottom(&self) -> bool {
        self.entries.is_empty()
    }

    fn dots(&self, out: &mut Vec<Dot>) {
        out.extend(self.entries.keys().copied());
    }

    fn join(&mut self, ours: &CausalContext, other: &Self, theirs: &CausalContext) {
        self.entries
            .retain(|dot, _| other.entries.contains_key(dot) || !theirs.contains(dot));
        for (dot, value) in &other.entries {
            if !ours.contains(dot) {
                self.entries.entry(*dot).or_insert_with(|| value.clone());
            }
        }
    }
}

/// Key → nested store, sharing the replica's context; keys whose store is empty are absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotMap<K: Ord, S> {
    /// The entries.
    pub entries: BTreeMap<K, S>,
}

impl<K: Ord, S> Default for DotMap<K, S> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone, S: DotStore> DotStore for DotMap<K, S> {
    fn is_bottom(&self) -> bool {
        self.entries.is_empty()
    }

    fn dots(&self, out: &mut Vec<Dot>) {
        for store in self.entries.values() {
            store.dots(out);
        }
    }

    fn join(&mut self, ours: &CausalContext, other: &Self, theirs: &CausalContext) {
        let empty = S::default();
        for (key, store) in self.entries.iter_mut() {
            store.join(ours, other.entries.get(key).unwrap_or(&empty), theirs);
        }
        for (key, store) in &other.entries {
            if !self.entries.contains_key(key) {
                let mut mine = S::default();
                mine.join(ours, store, theirs);
                self.entries.insert(key.clone(), mine);
            }
        }
        self.entries.retain(|_, s| !s.is_bottom());
    }
}
