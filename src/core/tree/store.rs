//! The announcements a node holds: its own ancestry's and its peers' ancestries', never the whole network.

use std::cmp::Ordering;

// foldhash (randomly seeded) rather than SipHash: every announcement and walk hashes keys here; only
// lookups, `retain` and a minimum use the maps, so their order never shows.
use foldhash::HashMap;
use std::time::Duration;

use super::coords::Coords;
use super::info::order;
use crate::core::identity::PublicKey;
use crate::core::room::release_peak;
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
    /// When each announcement that is on no ancestry we care about was first found so, and whether
    /// it was on one before (an *orphan*, see [`collect_garbage`](Self::collect_garbage)).
    unreferenced: HashMap<PublicKey, (Instant, bool)>,
    /// The announcements on an ancestry we cared about at the last collection.
    needed_before: foldhash::HashSet<PublicKey>,
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
    /// `grace`, or at once when more than `limit` are held. The grace is for announcements that
    /// arrive before the one that makes them an ancestor (on lossy links), and for the senders, who
    /// take an acknowledged announcement as held.
    ///
    /// An *orphan*, one that was on an ancestry and is on none now although every ancestry walked to
    /// its top, goes after `orphan_grace` instead: everything below it moved away. Kept 30 s, such
    /// announcements once mixed into new chains: after the root crashed, nodes whose parent moved to
    /// a shallower place 10 s later walked through a neighbour's announcement from before the crash
    /// (its node had moved twice since) up to the dead root, took it back for 20 ms, and made their
    /// subtrees change root twice more (the 10 000-node churn run with the root leaving). Dropped,
    /// such a chain is incomplete until the sender's newer copy comes. One that a chain leads through
    /// again after it was dropped comes again too: a sender sends all of a chain above a node that has
    /// a new parent or is new to the receiver (`sync.rs`), and only such a change makes a chain lead
    /// through it again. While some ancestry stops at a missing announcement (part of a chain still
    /// on its way), nothing is taken for an orphan: what is above the gap is not known.
    pub(super) fn collect_garbage<'a>(
        &mut self,
        now: Instant,
        keep: impl IntoIterator<Item = &'a PublicKey>,
        grace: Duration,
        orphan_grace: Duration,
        limit: usize,
    ) {
        let mut needed = foldhash::HashSet::default();
        let mut incomplete = false;
        for start in keep {
            let mut key = *start;
            while needed.insert(key) {
                match self.infos.get(&key) {
                    Some(a) if a.parent != a.key => key = a.parent,
                    Some(_) => break,
                    None => {
                        incomplete = true;
                        break;
                    }
                }
            }
        }
        let over_limit = self.infos.len() > limit;
        let unreferenced = &mut self.unreferenced;
        let needed_before = &self.needed_before;
        unreferenced.retain(|k, _| !needed.contains(k));
        self.infos.retain(|k, _| {
            if needed.contains(k) {
                return true;
            }
            let orphan = !incomplete && needed_before.contains(k);
            let (since, orphaned) = *unreferenced.entry(*k).or_insert((now, orphan));
            let kept_for = if orphaned { orphan_grace } else { grace };
            !over_limit && now.saturating_since(since) < kept_for
        });
        unreferenced.retain(|k, _| self.infos.contains_key(k));
        let infos = &self.infos;
        needed.retain(|k| infos.contains_key(k));
        self.needed_before = needed;
    }

    /// Returns when the oldest unreferenced announcement becomes collectable.
    pub(super) fn next_collection(
        &self,
        grace: Duration,
        orphan_grace: Duration,
    ) -> Option<Instant> {
        self.unreferenced
            .values()
            .map(|&(since, orphan)| since + if orphan { orphan_grace } else { grace })
            .min()
    }

    /// Gives back the room the store kept from a peak (a root change, convergence): see
    /// [`room`](crate::core::room).
    pub(super) fn release_peaks(&mut self) {
        release_peak(&mut self.infos);
        release_peak(&mut self.unreferenced);
        release_peak(&mut self.needed_before);
    }

    /// Returns how many announcements are held.
    pub(super) fn len(&self) -> usize {
        self.infos.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::room::MIN_ROOM;

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
            best: None,
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
        s.collect_garbage(t0, [&key(2)], grace, ORPHAN, 100);
        assert_eq!(s.len(), 3, "unreferenced but within the grace period");
        s.collect_garbage(t0 + grace, [&key(2)], grace, ORPHAN, 100);
        assert_eq!(s.len(), 2);
        assert!(s.get(&key(3)).is_none());
        s.insert(ann(3, 3, 0, 1));
        s.collect_garbage(t0 + grace, [&key(2)], grace, ORPHAN, 2);
        assert_eq!(s.len(), 2, "over the limit: dropped at once");
    }

    /// A peer that made us store announcements for 1 500 throwaway keys (the adversary's
    /// `AnnounceThrowaways`) leaves no room behind once they are collected.
    #[test]
    fn the_room_of_a_flood_of_announcements_is_given_back_once_they_go() {
        let mut s = Store::default();
        s.insert(ann(1, 1, 0, 1));
        s.insert(ann(2, 1, 1, 1));
        for i in 0..1500u32 {
            let mut bytes = [7; 32];
            bytes[..4].copy_from_slice(&i.to_be_bytes());
            let mut a = ann(0, 0, 0, 1);
            a.key = PublicKey::from_bytes(bytes);
            a.parent = a.key;
            s.insert(a);
        }
        let t0 = Instant::ZERO;
        let grace = Duration::from_secs(30);
        s.collect_garbage(t0, [&key(2)], grace, ORPHAN, 10_000);
        let flooded = s.infos.capacity();
        assert!(flooded >= 1502);
        s.release_peaks();
        assert_eq!(
            s.infos.capacity(),
            flooded,
            "all still held: nothing to give back"
        );
        s.collect_garbage(t0 + grace, [&key(2)], grace, ORPHAN, 10_000);
        assert_eq!(s.len(), 2);
        s.release_peaks();
        assert!(s.infos.capacity() <= 2 * MIN_ROOM, "{}", s.infos.capacity());
        assert!(s.unreferenced.capacity() <= 2 * MIN_ROOM);
        assert!(s.needed_before.capacity() <= 2 * MIN_ROOM);
        assert_eq!(s.ancestry(&key(2)).unwrap().root, key(1));
    }

    const ORPHAN: Duration = Duration::from_secs(2);

    /// Chain 4 -> 3 -> 2 -> 1 (root 1), and root 9 (arrived early).
    fn chain_to_1_and_root_9() -> Store {
        let mut s = Store::default();
        for a in [
            ann(1, 1, 0, 1),
            ann(2, 1, 1, 1),
            ann(3, 2, 1, 1),
            ann(4, 3, 1, 1),
        ] {
            s.insert(a);
        }
        s.insert(ann(9, 9, 0, 1));
        s
    }

    /// An announcement that was on a chain we keep and is on none now, every chain being complete,
    /// goes after the orphans' grace; while a chain stops at a gap, the usual grace holds.
    #[test]
    fn an_ancestor_left_behind_by_its_descendants_goes_after_the_orphans_grace() {
        let mut s = chain_to_1_and_root_9();
        let grace = Duration::from_secs(30);
        let t0 = Instant::ZERO;
        s.collect_garbage(t0, [&key(4)], grace, ORPHAN, 100);
        assert_eq!(s.len(), 5);
        // Node 4 moves under 9: 3, 2 and 1 are orphans now.
        s.insert(ann(4, 9, 2, 2));
        s.collect_garbage(t0, [&key(4)], grace, ORPHAN, 100);
        assert_eq!(s.len(), 5, "within the orphans' grace");
        assert_eq!(s.next_collection(grace, ORPHAN), Some(t0 + ORPHAN));
        s.collect_garbage(t0 + ORPHAN, [&key(4)], grace, ORPHAN, 100);
        assert_eq!(s.len(), 2);
        assert!(s.get(&key(3)).is_none() && s.get(&key(1)).is_none());

        // The same while another chain stops at a gap: the usual grace.
        let mut s = chain_to_1_and_root_9();
        s.insert(ann(5, 8, 1, 1));
        s.collect_garbage(t0, [&key(4), &key(5)], grace, ORPHAN, 100);
        s.insert(ann(4, 9, 2, 2));
        s.collect_garbage(t0, [&key(4), &key(5)], grace, ORPHAN, 100);
        s.collect_garbage(t0 + ORPHAN, [&key(4), &key(5)], grace, ORPHAN, 100);
        assert_eq!(s.len(), 6, "5's chain is incomplete: 3, 2 and 1 are kept");
        s.collect_garbage(t0 + grace, [&key(4), &key(5)], grace, ORPHAN, 100);
        assert_eq!(s.len(), 3);
    }
}
