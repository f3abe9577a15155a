//! Collaborative text: a sequence CRDT value for documents of kind `text`.
//!
//! A text is the set of every character ever inserted, each with its own dot and the two characters
//! it was typed between, plus the set of deleted characters. Both sets only grow, so joining two
//! texts is their union, which is commutative, associative and idempotent like every other join
//! here; the order of the characters follows from their origins ([`sequence`]). A change carries
//! *runs* (characters typed one after another: one origin pair and a string) and the dots it
//! deletes, so typing a word costs one run, not one entry per letter.
//!
//! Changes may arrive in any order (sync pulls writers independently, a sneakernet file may be
//! partial): a run whose origins are not here yet waits in `pending`, and a deletion of a character
//! not here yet waits in `early_deletes`, until what they name arrives. Both are part of the state,
//! so two replicas that joined the same changes are equal whatever the order.

pub mod sequence;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::context::{Actor, Dot};
use sequence::{Entry, Sequence};

/// Characters typed one after another by one writer: the first has dot `first` and was typed
/// between `left` and `right`; each next one has the following counter, was typed after the one
/// before it and before `right`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The first character's dot.
    pub first: Dot,
    /// What the first character was typed after (`None`: the start of the text).
    pub left: Option<Dot>,
    /// What every character was typed before (`None`: the end of the text).
    pub right: Option<Dot>,
    /// The characters (at least one).
    pub text: String,
}

impl Run {
    /// The dot of the run's `n`-th character (`None` past the counter range).
    fn dot(&self, n: usize) -> Option<Dot> {
        Some(Dot {
            actor: self.first.actor,
            counter: self.first.counter.checked_add(n as u64)?,
        })
    }

    /// Every character's dot (stops at the counter range's end; a decoded run never reaches it).
    pub fn dots(&self) -> impl Iterator<Item = Dot> + '_ {
        (0..self.text.chars().count()).map_while(|n| self.dot(n))
    }
}

/// A text's state, or a change to one.
#[derive(Debug, Clone, Default)]
pub struct Text {
    seq: Sequence,
    /// Runs (or their tails) waiting for an origin, by their first dot.
    pending: BTreeMap<Dot, Run>,
    /// A missing origin → the first dots of the pending runs that wait for it: placing a character
    /// retries only what waited for it, so changes arriving in reverse order cost no more than in
    /// order.
    waiting: HashMap<Dot, Vec<Dot>>,
    /// Deletions of characters not here yet.
    early_deletes: BTreeSet<Dot>,
    /// A change's deletions, as ranges of one writer's counters (first dot, count): decoding keeps
    /// them so, so a few bytes naming a long range cost no memory until a join does the work.
    deleting: Vec<(Dot, u64)>,
}

/// Most characters one change may delete (longer deletions take several changes): bounds the work a
/// change's few bytes can ask of a join.
pub const MAX_DELETES: u64 = 64 * 1024;

/// Sorted dots as ranges of consecutive counters of one writer.
pub fn ranges(dots: impl IntoIterator<Item = Dot>) -> Vec<(Dot, u64)> {
    let mut out: Vec<(Dot, u64)> = Vec::new();
    for d in dots {
        match out.last_mut() {
            Some((first, n))
                if first.actor == d.actor && first.counter.checked_add(*n) == Some(d.counter) =>
            {
                *n += 1;
            }
            _ => out.push((d, 1)),
        }
    }
    out
}

fn expand(ranges: &[(Dot, u64)]) -> impl Iterator<Item = Dot> + '_ {
    ranges.iter().flat_map(|(first, n)| {
        (0..*n).map_while(|i| {
            Some(Dot {
                actor: first.actor,
                counter: first.counter.checked_add(i)?,
            })
        })
    })
}

impl PartialEq for Text {
    /// Equal when they hold the same characters (each with its origins) and the same deletions,
    /// placed or still waiting: the order of the characters follows from those alone.
    fn eq(&self, other: &Self) -> bool {
        self.canonical() == other.canonical()
    }
}

impl Eq for Text {}

impl Text {
    /// A change that inserts `run`.
    pub fn insertion(run: Run) -> Self {
        Self {
            pending: [(run.first, run)].into(),
            ..Self::default()
        }
    }

    /// A change that deletes `dots`.
    pub fn deletion(dots: impl IntoIterator<Item = Dot>) -> Self {
        let mut dots: Vec<Dot> = dots.into_iter().collect();
        dots.sort();
        dots.dedup();
        Self {
            deleting: ranges(dots),
            ..Self::default()
        }
    }

    /// A text from its encoded parts: runs (placed as they can be) and deleted ranges (at most
    /// [`MAX_DELETES`] dots, checked by the decoder).
    pub fn from_parts(runs: Vec<Run>, deleting: Vec<(Dot, u64)>) -> Self {
        Self {
            pending: runs.into_iter().map(|r| (r.first, r)).collect(),
            deleting,
            ..Self::default()
        }
    }

    /// Nothing inserted, nothing deleted.
    pub fn is_empty(&self) -> bool {
        self.seq.is_empty()
            && self.pending.is_empty()
            && self.early_deletes.is_empty()
            && self.deleting.is_empty()
    }

    /// Deletions not applied to a placed character.
    fn deleted_early(&self) -> BTreeSet<Dot> {
        let mut out = self.early_deletes.clone();
        out.extend(expand(&self.deleting));
        out
    }

    /// The visible text.
    pub fn text(&self) -> String {
        self.seq.text()
    }

    /// Visible characters.
    pub fn visible(&self) -> usize {
        self.seq.visible()
    }

    /// Characters held, deleted ones included (the cost of the text's history).
    pub fn held(&self) -> usize {
        self.seq.len()
    }

    /// The origins of a character typed at visible position `pos` (`None` if past the end).
    pub fn origins_at(&self, pos: usize) -> Option<(Option<Dot>, Option<Dot>)> {
        self.seq.origins_at(pos)
    }

    /// The ids of `len` visible characters from `pos` (`None` if the range passes the end).
    pub fn visible_ids(&self, pos: usize, len: usize) -> Option<Vec<Dot>> {
        self.seq.visible_ids(pos, len)
    }

    /// Every character as (id, left origin, right origin, character), and every deletion.
    #[allow(clippy::type_complexity)]
    fn canonical(
        &self,
    ) -> (
        BTreeSet<(Dot, Option<Dot>, Option<Dot>, char)>,
        BTreeSet<Dot>,
    ) {
        let mut chars = BTreeSet::new();
        let mut deleted = self.deleted_early();
        for e in self.seq.entries() {
            if e.deleted {
                deleted.insert(e.id);
            }
            chars.insert((e.id, e.left, e.right, e.ch));
        }
        for run in self.pending.values() {
            let mut left = run.left;
            for (dot, ch) in run.dots().zip(run.text.chars()) {
                chars.insert((dot, left, run.right, ch));
                left = Some(dot);
            }
        }
        (chars, deleted)
    }

    /// Every dot of a character this text inserts (placed or waiting).
    pub fn dots(&self, out: &mut Vec<Dot>) {
        out.extend(self.seq.entries().map(|e| e.id));
        out.extend(self.pending.values().flat_map(Run::dots));
    }

    /// Every writer a character, an origin or a deletion names.
    pub fn actors(&self, note: &mut impl FnMut(Actor)) {
        self.seq.actors().iter().for_each(|a| note(*a));
        for run in self.pending.values() {
            [Some(run.first), run.left, run.right]
                .into_iter()
                .flatten()
                .for_each(|d| note(d.actor));
        }
        self.early_deletes.iter().for_each(|d| note(d.actor));
        self.deleting.iter().for_each(|(d, _)| note(d.actor));
    }

    /// The text as runs (placed characters in order, grouped where they continue each other, then
    /// the waiting runs) and the deleted dots as ranges: what the encoding carries.
    pub fn parts(&self) -> (Vec<Run>, Vec<(Dot, u64)>) {
        let mut runs: Vec<Run> = Vec::new();
        // Deletions as held (a change's ranges stay ranges: never expanded to be written out).
        let mut deletes = self.early_deletes.clone();
        for Entry {
            id,
            left,
            right,
            ch,
            deleted,
        } in self.seq.entries()
        {
            if deleted {
                deletes.insert(id);
            }
            if let Some(run) = runs.last_mut() {
                let n = run.text.chars().count();
                if run.dot(n) == Some(id) && run.dot(n - 1) == left && run.right == right {
                    run.text.push(ch);
                    continue;
                }
            }
            runs.push(Run {
                first: id,
                left,
                right,
                text: ch.to_string(),
            });
        }
        runs.extend(self.pending.values().cloned());
        let mut deleted = ranges(deletes);
        deleted.extend(self.deleting.iter().copied());
        (runs, deleted)
    }

    /// Joins `other` into `self`: the union of both texts' characters and deletions.
    pub fn join(&mut self, other: &Text) {
        let (runs, deletes) = if other.seq.is_empty() {
            // A change (the common case): nothing to regroup.
            (
                other.pending.values().cloned().collect(),
                other.deleted_early(),
            )
        } else {
            let (runs, ranges) = other.parts();
            (runs, expand(&ranges).collect())
        };
        let mut ready = Vec::new();
        for run in runs {
            self.add_run(run, &mut ready);
        }
        while let Some(first) = ready.pop() {
            if let Some(run) = self.pending.remove(&first) {
                self.add_run(run, &mut ready);
            }
        }
        for dot in deletes {
            if !self.seq.delete(&dot) {
                self.early_deletes.insert(dot);
            }
        }
    }

    /// Places what it can of `run` and keeps the rest waiting for its missing origin; the first dots
    /// of runs that waited for a character it placed go to `ready`.
    fn add_run(&mut self, run: Run, ready: &mut Vec<Dot>) {
        let mut left = run.left;
        for (n, ch) in run.text.chars().enumerate() {
            let Some(dot) = run.dot(n) else {
                return;
            };
            if !self.seq.contains(&dot) {
                if !self.seq.integrate(dot, left, run.right, ch) {
                    let missing = match left {
                        Some(l) if !self.seq.contains(&l) => l,
                        _ => run.right.unwrap_or(dot),
                    };
                    if let std::collections::btree_map::Entry::Vacant(slot) =
                        self.pending.entry(dot)
                    {
                        slot.insert(Run {
                            first: dot,
                            left,
                            right: run.right,
                            text: run.text.chars().skip(n).collect(),
                        });
                        self.waiting.entry(missing).or_default().push(dot);
                    }
                    return;
                }
                if let Some(waiters) = self.waiting.remove(&dot) {
                    ready.extend(waiters);
                }
                if !self.early_deletes.is_empty() && self.early_deletes.remove(&dot) {
                    self.seq.delete(&dot);
                }
            }
            left = Some(dot);
        }
    }
}
