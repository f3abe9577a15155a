//! Giving back the room a collection kept from a peak.
//!
//! Rust's maps and queues never shrink by themselves: a tree's store or a peer's sent log that held
//! hundreds of entries while the tree converged (or a root changed) keeps room for them afterwards,
//! although a settled node holds a few tens. At 100 000 simulated nodes that spare room was about a
//! quarter of each node's heap, and it grew with the mesh (bigger peaks), not with what the protocol
//! must hold. [`release_peak`] is called where such a collection is next touched after a burst; it
//! shrinks only when most of the room is unused, so a collection that swings a little is not
//! reallocated over and over.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Room always kept, in entries: small collections are not worth reallocating.
pub const MIN_ROOM: usize = 8;
/// A collection is shrunk once its room exceeds this many times what it holds (and [`MIN_ROOM`]).
pub const SPARE_FACTOR: usize = 2;

/// A collection whose spare room can be given back.
pub trait Room {
    /// Entries held.
    fn held(&self) -> usize;
    /// Entries there is room for without reallocating.
    fn room(&self) -> usize;
    /// Gives back room down to at least `entries`.
    fn shrink_room(&mut self, entries: usize);
}

/// Shrinks `c` to what it holds (at least [`MIN_ROOM`]; hash maps round up to a power of two) when
/// its room exceeds [`SPARE_FACTOR`] times that. Returns whether it did. A shrunk collection that
/// grows again doubles its room, and is shrunk again only once it holds less than half of that: a
/// reallocation of a few kilobytes now and then, where every change that causes one also costs a
/// signature check or a datagram.
pub fn release_peak(c: &mut impl Room) -> bool {
    let wanted = c.held().max(MIN_ROOM);
    if c.room() <= SPARE_FACTOR * wanted {
        return false;
    }
    c.shrink_room(wanted);
    true
}

/// Every collection here has `len`, `capacity` and `shrink_to` of the same meaning.
macro_rules! room_by_len_and_capacity {
    ($([$($generics:tt)*] $collection:ty),* $(,)?) => {$(
        impl<$($generics)*> Room for $collection {
            fn held(&self) -> usize {
                self.len()
            }
            fn room(&self) -> usize {
                self.capacity()
            }
            fn shrink_room(&mut self, entries: usize) {
                self.shrink_to(entries);
            }
        }
    )*};
}

room_by_len_and_capacity!(
    [K: Eq + Hash, V, S: BuildHasher] HashMap<K, V, S>,
    [K: Eq + Hash, S: BuildHasher] HashSet<K, S>,
    [T] Vec<T>,
    [T] VecDeque<T>,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_left_from_a_peak_is_shrunk_and_one_in_use_is_not() {
        let mut m: HashMap<u32, [u8; 200]> = HashMap::new();
        for i in 0..1000 {
            m.insert(i, [0; 200]);
        }
        let peak = m.capacity();
        assert!(!release_peak(&mut m), "full: nothing to give back");
        m.retain(|k, _| *k < 20);
        assert!(release_peak(&mut m));
        assert!(m.capacity() < peak / 10, "{} of {peak}", m.capacity());
        assert!(m.capacity() >= 20);
        assert_eq!(m.len(), 20);
        assert!((0..20).all(|k| m.contains_key(&k)));
        // Within SPARE_FACTOR times what it holds: no second reallocation.
        assert!(!release_peak(&mut m));
    }

    #[test]
    fn small_collections_keep_min_room() {
        let mut v: VecDeque<u64> = VecDeque::with_capacity(SPARE_FACTOR * MIN_ROOM);
        assert!(!release_peak(&mut v), "not over the limit");
        let mut v: VecDeque<u64> = VecDeque::with_capacity(SPARE_FACTOR * MIN_ROOM + 1);
        assert!(release_peak(&mut v));
        assert!(v.capacity() >= MIN_ROOM && v.capacity() < 2 * MIN_ROOM);
        let mut s: HashSet<u8> = HashSet::with_capacity(1000);
        s.insert(1);
        assert!(release_peak(&mut s));
        assert!(s.capacity() >= MIN_ROOM && s.capacity() <= 2 * MIN_ROOM);
        let mut w: Vec<u8> = Vec::with_capacity(100);
        w.push(1);
        assert!(release_peak(&mut w));
        assert_eq!(w.capacity(), MIN_ROOM);
    }
}
