//! The announcements a node holds: its own ancestry's and its peers' ancestries', never the whole network.

use std::cmp::Ordering;
use std::collections::HashSet;

// foldhash (randomly seeded) rather than SipHash: every announcement and walk hashes keys here; only
// lookups, `retain` and a minimum use the maps, so their order never shows.
use foldhash::HashMap;
use std::time::Duration;

use super::coords::Coords;
use super::info::order;
use crate::core::identity::PublicKey;
use crate::core::time::Instant;
use crate::core::wire::MAX_PATH_LEN;
use crate::core::wire::tree::Announce;

/// A node's path to its root, as far as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestry {
    /// The node, its parent, ..., the root.
    pub keys: Vec<PublicKey>,
    /// Ports from the root down to the node.
    pub coords: Coords,
    /// The root.
    pub root: PublicKey,
    /// True if the top of the chain is a detached node rather than a real root.
    pub detached: bool,
}

impl Ancestry {
    /// Hops from the node to its root.
    pub fn depth(&self) -> usize {
        self.coords.len()
    }

    /// Returns true if `key` is the node or one of its ancestors.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.keys.contains(key)
    }
}

/// Why a chain could not be walked to a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Walk {
    /// An announcement on the way is missing.
    Incomplete,
    /// The chain loops or is too deep.
    Broken,
}

/// Result of offering an announcement to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// It is newer than what we had (or the first): stored.
    Newer,
    /// We already had exactly this one.
    Same,
    /// We hold a better one, which the sender should get.
    Older,
}

/// Verified announcements by node key.
#[derive(Debug, Default)]
pub(super) struct Store {
    infos: HashMap<PublicKey, Announce>,
    /// When each announcement that is on no ancestry we care about was first found so.
    unreferenced: HashMap<PublicKey, Instant>,
}

impl Store {
    /// Returns the stored announcement of `key`.
    pub(super) fn get(&self, key: &PublicKey) -> Option<&Announce> {
        self.infos.get(key)
    }

    /// Returns every stored announcement (diagnostics: the operator's tree view).
    pub(super) fn iter(&self) -> impl Iterator<Item = &Announce> {
        self.infos.values()
    }

    /// Compares `a` with what we hold, without storing it. Only a `Newer` one needs verifying.
    pub(super) fn compare(&self, a: &Announce) -> Offer {
        match self.infos.get(&a.key).map(|held| order(a, held)) {
            None | Some(Ordering::Greater) => Offer::Newer,
            Some(Ordering::Equal) => Offer::Same,
            Some(Ordering::Less) => Offer::Older,
        }
    }

    /// Stores a verified announcement that [`compare`](Self::compare) called newer.
    pub(super) fn insert(&mut self, a: Announce) {
        self.infos.insert(a.key, a);
    }

    /// Walks from `key` to its root. `None` if an announcement on the way is missing or the chain loops.
    pub(super) fn ancestry(&self, key: &PublicKey) -> Option<Ancestry> {
        self.walk(key).ok()
    }

    /// Like [`ancestry`](Self::ancestry), but tells a chain that is merely incomplete (an announcement not
    /// here yet, most likely on its way) from one that is broken for good.
    pub(super) fn walk(&self, key: &PublicKey) -> Result<Ancestry, Walk> {
        let mut keys = vec![*key];
        let mut ports = Vec::new();
        let mut current = self.infos.get(key).ok_or(Walk::Incomplete)?;
        while current.key != current.parent {
            if keys.len() > MAX_PATH_LEN {
                return Err(Walk::Broken);
            }
            ports.push(current.port);
            let parent = self.infos.get(&current.parent).ok_or(Walk::Incomplete)?;
            if keys.contains(&parent.key) {
                return Err(Walk::Broken);
            }
            keys.push(parent.key);
            current = parent;
        }
        ports.reverse();
        Ok(Ancestry {
            root: current.key,
            detached: current.is_detached(),
            keys,
            coords: ports,
        })
    }

    /// Drops announcements that have been on no ancestry of `keep` (our own key and our peers') for
    /// `grace`, or at once when more than `limit` are held. The grace matters on lossy links: an ancestor's
    /// announcement can arrive before the one that makes it an ancestor, and it is acknowledged already.
    pub(super) fn collect_garbage<'a>(
        &mut self,
        now: Instant,
        keep: impl IntoIterator<Item = &'a PublicKey>,
        grace: Duration,
        limit: usize,
    ) {
        let mut needed = HashSet::new();
        for start in keep {
            let mut key = *start;
            while needed.insert(key) {
                match self.infos.get(&key) {
                    Some(a) if a.parent != a.key => key = a.parent,
                    _ => break,
                }
            }
        }
        let over_limit = self.infos.len() > limit;
        let unreferenced = &mut self.unreferenced;
        unreferenced.retain(|k, _| !needed.contains(k));
        self.infos.retain(|k, _| {
            if needed.contains(k) {
                return true;
            }
            let since = *unreferenced.entry(*k).or_insert(now);
            !over_limit && now.saturating_since(since) < grace
        });
        unreferenced.retain(|k, _| self.infos.contains_key(k));
    }

    /// Returns when the oldest unreferenced announcement becomes collectable.
    pub(super) fn next_collection(&self, grace: Duration) -> Option<Instant> {
        self.unreferenced.values().min().map(|t| *t + grace)
    }

    /// Returns how many announcements are held.
    pub(super) fn len(&self) -> usize {
        self.infos.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey::from_bytes([n; 32])
    }

    fn ann(k: u8, parent: u8, port: u64, seq: u64) -> Announce {
        Announce {
            key: key(k),
            parent: key(parent),
            seq,
            nonce: 0,
            port,
            flags: 0,
            psig: [0; 64],
            sig: [0; 64],
        }
    }

    #[test]
    fn ancestry_walks_to_the_root_and_detects_gaps_and_loops() {
        let mut s = Store::default();
        for a in [ann(1, 1, 0, 1), ann(2, 1, 4, 1), ann(3, 2, 7, 1)] {
            s.insert(a);
        }
        let a = s.ancestry(&key(3)).unwrap();
        assert_eq!(a.coords, vec![4, 7]);
        assert_eq!(a.root, key(1));
        assert_eq!(a.keys, vec![key(3), key(2), key(1)]);
        assert_eq!(s.walk(&key(9)), Err(Walk::Incomplete));
        s.insert(ann(1, 3, 1, 2));
        assert_eq!(s.walk(&key(3)), Err(Walk::Broken), "loop 3 -> 2 -> 1 -> 3");
    }

    #[test]
    fn newer_seq_wins_and_gc_keeps_only_needed_chains() {
        let mut s = Store::default();
        s.insert(ann(1, 1, 0, 5));
        assert_eq!(s.compare(&ann(1, 1, 0, 4)), Offer::Older);
        assert_eq!(s.compare(&ann(1, 1, 0, 5)), Offer::Same);
        assert_eq!(s.compare(&ann(1, 1, 0, 6)), Offer::Newer);
        s.insert(ann(2, 1, 1, 1));
        s.insert(ann(3, 3, 0, 1));
        let grace = Duration::from_secs(10);
        let t0 = Instant::ZERO;
        s.collect_garbage(t0, [&key(2)], grace, 100);
        assert_eq!(s.len(), 3, "unreferenced but within the grace period");
        s.collect_garbage(t0 + grace, [&key(2)], grace, 100);
        assert_eq!(s.len(), 2);
        assert!(s.get(&key(3)).is_none());
        s.insert(ann(3, 3, 0, 1));
        s.collect_garbage(t0 + grace, [&key(2)], grace, 2);
        assert_eq!(s.len(), 2, "over the limit: dropped at once");
    }
}
