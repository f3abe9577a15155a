//! Joining a small delta into a large keyed document without visiting every key.
//!
//! The plain join ([`Causal::join`]) walks all of a map's keys, because a delta may remove entries
//! anywhere: its context names the dots it removes, not their keys. Walking 1 000 keys for each of
//! 100 000 incoming one-key changes is most of the cost of taking them in. So documents whose root is
//! a map or a set keep an index from each entry's dot to its key; a delta whose context holds few
//! dots then touches only the keys it names plus the keys of the dots it removes, which gives the
//! same result as the full join (every other key has nothing the delta adds or removes).

use std::collections::{BTreeSet, HashMap};

use super::context::{CausalContext, Dot};
use super::document::Causal;
use super::field::Field;
use super::hlc::Hlc;
use super::store::{DotMap, DotStore};

/// A delta whose context has at most this many dots takes the indexed path.
const SMALL: u64 = 256;

/// Dot → top-level key of a map or set document, and the highest register clock seen.
#[derive(Debug, Clone, Default)]
pub(super) struct KeyIndex {
    keys: HashMap<Dot, String>,
    latest: Hlc,
}

impl KeyIndex {
    /// The highest HLC of any register entry joined so far.
    pub(super) fn latest(&self) -> Hlc {
        self.latest
    }

    fn rebuild(&mut self, field: &Field) {
        self.keys.clear();
        match field {
            Field::Map(m) => self.note_all(m),
            Field::Set(s) => self.note_all(s),
            _ => {}
        }
    }

    fn note_all<S: DotStore>(&mut self, map: &DotMap<String, S>) {
        for (key, store) in &map.entries {
            let mut dots = Vec::new();
            store.dots(&mut dots);
            self.keys.extend(dots.into_iter().map(|d| (d, key.clone())));
        }
    }
}

/// Every dot of a context, if there are few.
fn few_dots(ctx: &CausalContext) -> Option<Vec<Dot>> {
    let ranged: u64 = ctx.version_vector().values().sum();
    let total = ranged.saturating_add(ctx.cloud().count() as u64);
    (total <= SMALL).then(|| {
        let mut dots: Vec<Dot> = ctx.cloud().copied().collect();
        for (actor, top) in ctx.version_vector() {
            dots.extend((1..=*top).map(|counter| Dot {
                actor: *actor,
                counter,
            }));
        }
        dots
    })
}

fn max_hlc(field: &Field) -> Hlc {
    match field {
        Field::Lww(s) => s
            .entries
            .values()
            .map(|(h, _)| *h)
            .max()
            .unwrap_or_default(),
        Field::Map(m) => m.entries.values().map(max_hlc).max().unwrap_or_default(),
        _ => Hlc::default(),
    }
}

/// Joins `delta` into `state`, keeping `index` current.
pub(super) fn join(state: &mut Causal, index: &mut KeyIndex, delta: &Causal) {
    index.latest = index.latest.max(max_hlc(&delta.field));
    let fast = match (&state.field, &delta.field) {
        (Field::Map(_), Field::Map(_) | Field::Empty)
        | (Field::Set(_), Field::Set(_) | Field::Empty) => few_dots(&delta.ctx),
        _ => None,
    };
    let Some(removed) = fast else {
        state.join(delta);
        index.rebuild(&state.field);
        return;
    };
    let Causal { field, ctx } = state;
    match (&mut *field, &delta.field) {
        (Field::Map(mine), theirs) => {
            let other = match theirs {
                Field::Map(m) => Some(m),
                _ => None,
            };
            join_keys(mine, ctx, other, &delta.ctx, &removed, index);
        }
        (Field::Set(mine), theirs) => {
            let other = match theirs {
                Field::Set(s) => Some(s),
                _ => None,
            };
            join_keys(mine, ctx, other, &delta.ctx, &removed, index);
        }
        _ => {}
    }
    if field.is_bottom() {
        *field = Field::Empty;
    }
    ctx.join(&delta.ctx);
}

fn join_keys<S: DotStore>(
    mine: &mut DotMap<String, S>,
    ours: &CausalContext,
    other: Option<&DotMap<String, S>>,
    theirs: &CausalContext,
    removed: &[Dot],
    index: &mut KeyIndex,
) {
    let mut keys: BTreeSet<String> = other
        .map(|o| o.entries.keys().cloned().collect())
        .unwrap_or_default();
    keys.extend(removed.iter().filter_map(|d| index.keys.get(d).cloned()));
    let empty = S::default();
    for key in keys {
        let incoming = other.and_then(|o| o.entries.get(&key)).unwrap_or(&empty);
        let mut arriving = Vec::new();
        incoming.dots(&mut arriving);
        // Index upkeep from the delta alone, not the key's whole entry: an entry with a dot the
        // delta's context covers survives only if the delta carries it too; an arriving entry is
        // kept if it is news here (or was here already).
        for d in removed {
            if index.keys.get(d) == Some(&key) && !arriving.contains(d) {
                index.keys.remove(d);
            }
        }
        for d in arriving {
            if !ours.contains(&d) {
                index.keys.insert(d, key.clone());
            }
        }
        let entry = mine.entries.entry(key.clone()).or_default();
        entry.join(ours, incoming, theirs);
        if entry.is_bottom() {
            mine.entries.remove(&key);
        }
    }
}
