//! Who wrote what: actors, dots and the causal context of a replica.
//!
//! Every entry a replica stores (a set member, a register value, a counter's share) is tagged with a
//! *dot*: the writing actor and a number that actor never uses twice. A replica's *causal context* is
//! the set of every dot it has seen, kept as a version vector (all dots of an actor up to a number)
//! plus the few seen out of order. An entry that is absent although its dot is in the context was
//! removed; an entry whose dot is not in the context is news. That one rule gives add-wins sets, and
//! registers that show concurrent writes, without tombstones.

use std::collections::{BTreeMap, BTreeSet};

/// A writer: the Ed25519 public key of the node that made the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Actor(pub [u8; 32]);

/// One event of one actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    /// Who.
    pub actor: Actor,
    /// The actor's event number, from 1.
    pub counter: u64,
}

/// The dots a replica has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CausalContext {
    /// Per actor, every dot up to this counter has been seen.
    vv: BTreeMap<Actor, u64>,
    /// Dots seen beyond an actor's contiguous range (a change that arrived early).
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// True if `dot` was seen.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.vv.get(&dot.actor).is_some_and(|c| dot.counter <= *c) || self.cloud.contains(dot)
    }

    /// The next unused dot of `actor`.
    pub fn next_dot(&self, actor: Actor) -> Dot {
        let contiguous = self.vv.get(&actor).copied().unwrap_or(0);
        let beyond = self
            .cloud
            .range(
                Dot { actor, counter: 0 }..=Dot {
                    actor,
                    counter: u64::MAX,
                },
            )
            .next_back()
            .map_or(0, |d| d.counter);
        Dot {
            actor,
            counter: contiguous.max(beyond).saturating_add(1),
        }
    }

    /// Records `dot` as seen.
    pub fn insert(&mut self, dot: Dot) {
        if !self.contains(&dot) {
            self.cloud.insert(dot);
            self.compact(dot.actor);
        }
    }

    /// Adds everything `other` has seen.
    pub fn join(&mut self, other: &Self) {
        for (actor, counter) in &other.vv {
            let mine = self.vv.entry(*actor).or_default();
            *mine = (*mine).max(*counter);
        }
        self.cloud.extend(other.cloud.iter().copied());
        let actors: BTreeSet<Actor> = other
            .vv
            .keys()
            .chain(other.cloud.iter().map(|d| &d.actor))
            .copied()
            .collect();
        for actor in actors {
            self.compact(actor);
        }
    }

    /// Moves `actor`'s cloud dots that continue its contiguous range into the version vector, and
    /// drops those it already covers.
    fn compact(&mut self, actor: Actor) {
        let mut contiguous = self.vv.get(&actor).copied().unwrap_or(0);
        // Touches only the dots it removes: a replica holding many early dots of one writer (a
        // text whose changes arrived in reverse) pays a lookup per join, not a walk of them all.
        let covered: Vec<Dot> = self
            .cloud
            .range(
                Dot { actor, counter: 0 }..=Dot {
                    actor,
                    counter: contiguous,
                },
            )
            .copied()
            .collect();
        for dot in covered {
            self.cloud.remove(&dot);
        }
        while let Some(next) = contiguous.checked_add(1) {
            if !self.cloud.remove(&Dot {
                actor,
                counter: next,
            }) {
                break;
            }
            contiguous = next;
        }
        if contiguous > 0 {
            self.vv.insert(actor, contiguous);
        }
    }

    /// The version vector part: per actor, the contiguous range of dots seen.
    pub fn version_vector(&self) -> &BTreeMap<Actor, u64> {
        &self.vv
    }

    /// The dots seen out of order.
    pub fn cloud(&self) -> impl Iterator<Item = &Dot> {
        self.cloud.iter()
    }

    /// Builds a context from its parts (as decoded), compacted.
    pub fn from_parts(vv: BTreeMap<Actor, u64>, cloud: impl IntoIterator<Item = Dot>) -> Self {
        let mut ctx = Self {
            vv: vv.into_iter().filter(|(_, c)| *c > 0).collect(),
            cloud: cloud.into_iter().collect(),
        };
        let actors: BTreeSet<Actor> = ctx.cloud.iter().map(|d| d.actor).collect();
        for actor in actors {
            ctx.compact(actor);
        }
        ctx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn actor(n: u8) -> Actor {
        Actor([n; 32])
    }

    fn dot(n: u8, counter: u64) -> Dot {
        Dot {
            actor: actor(n),
            counter,
        }
    }

    #[test]
    fn out_of_order_dots_compact_once_the_gap_fills() {
        let mut c = CausalContext::default();
        c.insert(dot(1, 2));
        assert!(c.contains(&dot(1, 2)) && !c.contains(&dot(1, 1)));
        assert_eq!(c.next_dot(actor(1)), dot(1, 3));
        c.insert(dot(1, 1));
        assert_eq!(c.version_vector()[&actor(1)], 2);
        assert_eq!(c.cloud().count(), 0);
        let mut d = CausalContext::default();
        d.insert(dot(1, 4));
        d.insert(dot(2, 1));
        c.join(&d);
        assert!(c.contains(&dot(1, 4)) && !c.contains(&dot(1, 3)));
        assert_eq!(c.next_dot(actor(2)), dot(2, 2));
        assert_eq!(
            CausalContext::from_parts([(actor(1), 2)].into(), [dot(1, 3), dot(1, 1)]),
            CausalContext::from_parts([(actor(1), 3)].into(), [])
        );
    }
}
