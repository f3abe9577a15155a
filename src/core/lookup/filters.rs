//! Bloom filter exchange along tree edges: which subtree may hold which key.
//!
//! Each node tells its parent which partial keys its subtree holds: its own, plus everything its
//! children told it. A lookup goes up to the parent always and down only into the children whose
//! filter matches, so it reaches the root and from there every subtree that may hold the target.
//! Filters are versioned, acknowledged and retransmitted, like announcements.
//!
//! Children are told a constant all-ones filter ("anything outside your subtree: ask me"), sent once
//! per child. A filter from parent to child used to carry everything outside the child's subtree: it
//! changed whenever any node anywhere joined, left or moved, so every link of the mesh carried a new
//! kilobyte filter for every change in the whole mesh, and beyond a few thousand nodes it was all ones
//! anyway (a 1 000-node mesh forming sent 0.5 GB of filters in its first 0.15 s; see PROTOCOL.md
//! §5, "Why children hear all ones"). Whatever a parent sends is taken as all ones, so nodes that still send the
//! old filters work with these.
//!
//! A filter is unsigned and any peer may change it at will; every change it makes changes what its
//! neighbours tell their tree peers, and theirs, across the whole tree. A member that flipped its
//! filter ten times a second would so put ten filters a second on every link of the mesh. While the
//! tree forms, though, honest filters change just as fast (a link near the root of a forming
//! 1 000-node mesh carries hundreds of versions in a second), so no fixed limit tells the two apart.
//! What does is whether the tree *around us* is changing, which a member cannot make happen from
//! outside our subtree:
//!
//! - For [`SETTLE`] after our coordinates last changed (and after start), a peer's filter is used as
//!   it comes.
//! - After that, each peer's changes are *damped*. Changes that only add bits: a burst of
//!   [`GROW_BURST`], then one per [`GROW_INTERVAL`]. Changes that drop bits: a burst of
//!   [`SHRINK_BURST`], then one per [`SHRINK_INTERVAL`]. A change that must wait is not lost: until
//!   its turn we keep what we had, and when a drop's turn comes we take the union of every version the
//!   peer sent since the last drop. So a peer that flips between everything and nothing soon looks like everything for
//!   good and changes nothing downstream, nor hides the subtree behind it in its "nothing" phase; a
//!   bit an honest peer dropped is dropped here a turn or two later (a needless lookup branch
//!   meanwhile, nothing worse).
//!
//! A peer whose filter changes at our damped pace makes ours change at the same pace, which our
//! neighbours' buckets for us absorb: after the bursts, a misbehaving peer puts at most one filter
//! per interval on any link. The bursts are the price of a mesh that joins ours (filters grow for
//! seconds without moving us): one that makes a link's filter change more often than the burst
//! allows is fully known there a turn (30 s) later per hop. And they are per peer key: a member that
//! links again under a fresh key gets fresh bursts, so it can make its neighbours' links carry up to
//! 320 versions per new link (each costing it a handshake within the node's verification budget);
//! beyond its neighbours the damping of those neighbours holds.

use std::collections::BTreeMap;
use std::time::Duration;

use super::bloom::Filter;
use crate::core::identity::PublicKey;
use crate::core::rate::TokenBucket;
use crate::core::time::{Instant, earliest};
use crate::core::tree::Coords;
use crate::core::wire::ack::VersionAck;
use crate::core::wire::inner::Message;
use crate::core::wire::lookup::Bloom;

/// Peers' filters are used as they come for this long after our coordinates changed.
pub const SETTLE: Duration = Duration::from_secs(10);
/// Changes that only add bits, taken from one peer at once once the tree around us is settled (a
/// mesh joining ours makes filters grow without moving us).
pub const GROW_BURST: f64 = 256.0;
/// After that burst, one change that only adds bits taken from one peer per this long.
pub const GROW_INTERVAL: Duration = Duration::from_secs(30);
/// Changes that drop bits, taken from one peer at once once the tree around us is settled (a
/// 1 000-node mesh still re-forming after 10 s lost first packets with 8: `tests/sim_scale.rs`).
pub const SHRINK_BURST: f64 = 64.0;
/// After that burst, one change that drops bits taken from one peer per this long.
pub const SHRINK_INTERVAL: Duration = Duration::from_secs(30);

/// What a peer told us.
struct Received {
    version: u64,
    /// Its latest filter.
    latest: Filter,
    /// What we use.
    held: Filter,
    /// The union of the versions it sent since a change that drops bits was last taken.
    since_taken: Filter,
    /// Whether a change that drops bits was refused since the last one taken.
    refused: bool,
    grow: TokenBucket,
    shrink: TokenBucket,
}

impl Received {
    fn new(version: u64, filter: Filter, now: Instant) -> Self {
        Self {
            version,
            latest: filter,
            held: filter,
            since_taken: filter,
            refused: false,
            grow: TokenBucket::new(1.0 / GROW_INTERVAL.as_secs_f64(), GROW_BURST, now),
            shrink: TokenBucket::new(1.0 / SHRINK_INTERVAL.as_secs_f64(), SHRINK_BURST, now),
        }
    }

    /// Takes what it said: everything at once while `settling`, else within its damping. A change
    /// that drops bits, taken after one was refused, takes the union of everything said since the
    /// last one taken, so flips between two filters settle on their union.
    fn take(&mut self, now: Instant, settling: bool) {
        if settling {
            self.held = self.latest;
            self.since_taken = self.latest;
            self.refused = false;
        } else {
            if !self.latest.minus(&self.held).is_empty() && self.grow.take(now) {
                self.held.union(&self.latest);
            }
            if !self.held.minus(&self.latest).is_empty() {
                if self.shrink.take(now) {
                    self.held = if self.refused {
                        self.since_taken
                    } else {
                        self.latest
                    };
                    self.since_taken = self.latest;
                    self.refused = false;
                } else {
                    self.refused = true;
                }
            }
        }
    }

    /// When its next turn comes, if it waits for one.
    fn due(&self, now: Instant) -> Option<Instant> {
        let grows = !self.latest.minus(&self.held).is_empty();
        let shrinks = !self.held.minus(&self.latest).is_empty();
        let at = match (grows, shrinks) {
            (false, false) => return None,
            (true, false) => self.grow.next_token_at(),
            (false, true) => self.shrink.next_token_at(),
            (true, true) => self.grow.next_token_at().min(self.shrink.next_token_at()),
        };
        Some(at.max(now + Duration::from_millis(1)))
    }
}

struct Sent {
    filter: Filter,
    version: u64,
    at: Instant,
    acked: bool,
}

/// What every child is told: all ones.
const EVERYTHING: Filter = Filter([u64::MAX; crate::core::wire::lookup::BLOOM_WORDS]);

/// Filter state for all tree peers.
pub struct Filters {
    own: Filter,
    /// Our parent as of the latest update (ourselves when root or detached: then nobody).
    parent: Option<PublicKey>,
    /// About how many keys our subtree holds, from the filter last made for the parent.
    subtree_keys: f64,
    received: BTreeMap<PublicKey, Received>,
    sent: BTreeMap<PublicKey, Sent>,
    next_version: u64,
    /// Our coordinates, and when they last changed.
    coords: Coords,
    moved_at: Instant,
    /// The time of the latest call, for `next_retransmit`.
    now: Instant,
}

impl Filters {
    /// Starts with only our own canonical partial key; versions start at `version_base` so that a
    /// restarted node's filters are newer than its old ones.
    pub fn new(own_target: &[u8; 32], version_base: u64) -> Self {
        let mut own = Filter::default();
        own.insert(own_target);
        Self {
            own,
            parent: None,
            subtree_keys: 1.0,
            received: BTreeMap::new(),
            sent: BTreeMap::new(),
            next_version: version_base,
            coords: Coords::default(),
            moved_at: Instant::ZERO,
            now: Instant::ZERO,
        }
    }

    fn settling(&self, now: Instant) -> bool {
        now < self.moved_at + SETTLE
    }

    /// Stores a peer's filter (if newer; within its damping, see the module's notes) and returns the
    /// acknowledgement to send. It is kept even if we do not (yet) see the peer as a tree peer: our
    /// view of the tree may lag the sender's, and an acknowledged filter is not sent again.
    pub fn handle_bloom(&mut self, now: Instant, from: PublicKey, bloom: &Bloom) -> VersionAck {
        self.now = self.now.max(now);
        let filter = Filter(bloom.words);
        let settling = self.settling(now);
        match self.received.get_mut(&from) {
            Some(r) if r.version >= bloom.version => {}
            Some(r) => {
                r.version = bloom.version;
                r.latest = filter;
                r.since_taken.union(&filter);
                r.take(now, settling);
            }
            None => {
                self.received
                    .insert(from, Received::new(bloom.version, filter, now));
            }
        }
        VersionAck {
            version: bloom.version,
        }
    }

    /// Records an acknowledgement.
    pub fn handle_ack(&mut self, from: &PublicKey, ack: VersionAck) {
        if let Some(s) = self.sent.get_mut(from)
            && s.version == ack.version
        {
            s.acked = true;
        }
    }

    /// Forgets what was sent to `peer`, so that the next update sends it a filter again.
    pub fn forget_sent(&mut self, peer: &PublicKey) {
        self.sent.remove(peer);
    }

    /// The filter last sent to `peer`.
    pub fn sent_filter(
        &self,
        peer: &PublicKey,
    ) -> Option<[u64; crate::core::wire::lookup::BLOOM_WORDS]> {
        self.sent.get(peer).map(|s| s.filter.0)
    }

    /// About how many nodes a lookup from `peer` may speak for: a child's subtree (from its filter),
    /// or, for our parent, which sends us the lookups for our subtree, our own subtree.
    pub fn subtree_estimate(&self, peer: &PublicKey) -> f64 {
        if self.parent.as_ref() == Some(peer) {
            self.subtree_keys
        } else {
            self.received
                .get(peer)
                .map_or(1.0, |r| r.held.estimated_keys())
        }
    }

    /// Returns true if a lookup for `target` should go to `peer`: our parent always, a child if its
    /// subtree may hold it.
    pub fn matches(&self, peer: &PublicKey, target: &[u8; 32]) -> bool {
        self.parent.as_ref() == Some(peer)
            || self
                .received
                .get(peer)
                .is_some_and(|r| r.held.contains(target))
    }

    /// Brings the exchange up to date with our coordinates, the current peers, tree peers and parent
    /// (`None` when root or detached); returns the messages to send. `rto` gives each peer's
    /// retransmission timeout.
    pub fn update(
        &mut self,
        now: Instant,
        coords: &Coords,
        peers: &[PublicKey],
        tree_peers: &[PublicKey],
        parent: Option<PublicKey>,
        rto: impl Fn(&PublicKey) -> Duration,
    ) -> Vec<(PublicKey, Message<'static>)> {
        self.now = self.now.max(now);
        self.parent = parent.filter(|p| tree_peers.contains(p));
        if *coords != self.coords {
            self.coords = coords.clone();
            self.moved_at = now;
        }
        let settling = self.settling(now);
        self.received.retain(|k, _| peers.contains(k));
        for r in self.received.values_mut() {
            if r.due(now)
                .is_some_and(|t| settling || t <= now + Duration::from_millis(1))
            {
                r.take(now, settling);
            }
        }
        self.sent.retain(|k, _| tree_peers.contains(k));
        let mut out = Vec::new();
        let mut subtree = self.own;
        for (other, r) in &self.received {
            if Some(*other) != self.parent && tree_peers.contains(other) {
                subtree.union(&r.held);
            }
        }
        self.subtree_keys = subtree.estimated_keys();
        for peer in tree_peers {
            let filter = if Some(*peer) == self.parent {
                subtree
            } else {
                EVERYTHING
            };
            let resend = match self.sent.get(peer) {
                Some(s) if s.filter == filter => !s.acked && s.at + rto(peer) <= now,
                _ => {
                    self.next_version += 1;
                    true
                }
            };
            if resend {
                let version = match self.sent.get(peer) {
                    Some(s) if s.filter == filter => s.version,
                    _ => self.next_version,
                };
                self.sent.insert(
                    *peer,
                    Sent {
                        filter,
                        version,
                        at: now,
                        acked: false,
                    },
                );
                out.push((
                    *peer,
                    Message::Bloom(Box::new(Bloom {
                        version,
                        words: filter.0,
                    })),
                ));
            }
        }
        out
    }

    /// Returns when a retransmission, or a peer's change that waits for its turn, is next due.
    pub fn next_retransmit(&self, rto: impl Fn(&PublicKey) -> Duration) -> Option<Instant> {
        self.sent
            .iter()
            .filter(|(_, s)| !s.acked)
            .map(|(k, s)| s.at + rto(k))
            .chain(self.received.values().filter_map(|r| r.due(self.now)))
            .fold(None, |a, t| earliest(a, Some(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey::from_bytes([n; 32])
    }

    fn bloom(version: u64, keys: &[u8]) -> Bloom {
        let mut f = Filter::default();
        for k in keys {
            f.insert(&[*k; 32]);
        }
        Bloom {
            version,
            words: f.0,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const RTO: fn(&PublicKey) -> Duration = |_| Duration::from_millis(100);

    /// Runs an update at `now` with peers 2 (a child) and 3 (the parent) as tree peers and fixed
    /// coordinates, acknowledges everything sent, and returns the versions sent to peer 3.
    fn step(f: &mut Filters, now: Instant) -> Vec<Bloom> {
        let peers = [key(2), key(3)];
        let mut to_3 = Vec::new();
        for (to, m) in f.update(now, &vec![1], &peers, &peers, Some(key(3)), RTO) {
            let Message::Bloom(b) = m else { panic!() };
            f.handle_ack(&to, VersionAck { version: b.version });
            if to == key(3) {
                to_3.push(*b);
            }
        }
        to_3
    }

    #[test]
    fn filters_flow_to_other_tree_peers_and_are_retransmitted_until_acked() {
        let mut f = Filters::new(&[1; 32], 10);
        let t0 = Instant::ZERO;
        let peers = [key(2), key(3)];
        let coords = vec![1];
        let out = f.update(t0, &coords, &peers, &peers, Some(key(3)), RTO);
        assert_eq!(out.len(), 2);
        for (to, m) in &out {
            let Message::Bloom(b) = m else { panic!() };
            f.handle_ack(to, VersionAck { version: b.version });
        }
        // Peer 2 tells us about key [9; 32]; peer 3 must hear of it, peer 2 need not.
        f.handle_bloom(t0, key(2), &bloom(1, &[9]));
        assert!(f.matches(&key(2), &[9; 32]));
        let out = f.update(t0, &coords, &peers, &peers, Some(key(3)), RTO);
        assert_eq!(out.len(), 1);
        let (to, Message::Bloom(b)) = &out[0] else {
            panic!()
        };
        assert_eq!(*to, key(3));
        assert!(Filter(b.words).contains(&[9; 32]));
        // Unacknowledged: resent after the RTO, with the same version.
        assert!(
            f.update(t0 + ms(50), &coords, &peers, &peers, Some(key(3)), RTO)
                .is_empty()
        );
        assert_eq!(f.next_retransmit(RTO), Some(t0 + ms(100)));
        let again = f.update(t0 + ms(100), &coords, &peers, &peers, Some(key(3)), RTO);
        assert_eq!(again.len(), 1);
        let (to, Message::Bloom(b2)) = &again[0] else {
            panic!()
        };
        assert_eq!((*to, b2.version), (key(3), b.version));
        // A peer that is gone is forgotten.
        f.update(t0, &coords, &[key(3)], &[key(3)], Some(key(3)), RTO);
        assert!(!f.matches(&key(2), &[9; 32]));
    }

    /// After `SETTLE`, a peer whose filter grows all the time gets its changes passed on in a burst
    /// of `GROW_BURST`, then one per `GROW_INTERVAL`; what goes is always the latest state.
    #[test]
    fn a_settled_peers_growth_is_damped_and_the_latest_state_goes() {
        let mut f = Filters::new(&[1; 32], 10);
        step(&mut f, Instant::ZERO);
        let mut now = Instant::ZERO + SETTLE;
        let mut sent_to_3 = 0;
        let mut theirs = Filter::default();
        let mut last_key = [0; 32];
        for v in 0..6000u64 {
            last_key[..8].copy_from_slice(&v.to_be_bytes());
            theirs.insert(&last_key);
            let b = Bloom {
                version: v + 1,
                words: theirs.0,
            };
            f.handle_bloom(now, key(2), &b);
            sent_to_3 += step(&mut f, now).len();
            now = now + ms(10);
        }
        let allowed = GROW_BURST as usize + 60 / GROW_INTERVAL.as_secs() as usize + 1;
        assert!(
            sent_to_3 <= allowed && sent_to_3 >= GROW_BURST as usize / 2,
            "{sent_to_3} versions in 60 s, damping allows {allowed}"
        );
        // When the changes stop, the latest state still goes out when its turn comes.
        let due = f.next_retransmit(RTO).expect("a change waits");
        assert!(due <= now + GROW_INTERVAL);
        let b = step(&mut f, due).pop().expect("the latest state goes out");
        assert!(Filter(b.words).contains(&last_key));
    }

    /// While the tree around us forms (after start, or for `SETTLE` after our coordinates changed),
    /// changes are taken as they come, however many.
    #[test]
    fn changes_are_taken_at_once_while_the_tree_around_us_forms() {
        let mut f = Filters::new(&[1; 32], 10);
        let peers = [key(2), key(3)];
        let mut sent = 0;
        let t = Instant::ZERO + SETTLE * 3;
        f.update(t, &vec![1], &peers, &peers, Some(key(3)), RTO);
        for v in 0..1000u64 {
            let keys = if v % 2 == 0 { vec![5, 6] } else { vec![5] };
            f.handle_bloom(t, key(2), &bloom(v + 1, &keys));
            for (to, m) in f.update(t, &vec![2], &peers, &peers, Some(key(3)), RTO) {
                let Message::Bloom(b) = m else { panic!() };
                f.handle_ack(&to, VersionAck { version: b.version });
                sent += usize::from(to == key(3));
            }
        }
        assert_eq!(sent, 1000);
        assert!(!f.matches(&key(2), &[6; 32]));
    }

    /// A settled peer whose filter flips between everything and nothing is, once its burst of
    /// drops is spent, held at everything: its flips neither reach our other peers nor hide its
    /// subtree.
    #[test]
    fn a_settled_peers_flips_settle_on_their_union() {
        let mut f = Filters::new(&[1; 32], 10);
        step(&mut f, Instant::ZERO);
        let t0 = Instant::ZERO + SETTLE;
        let full = Bloom {
            version: 1,
            words: [u64::MAX; crate::core::wire::lookup::BLOOM_WORDS],
        };
        f.handle_bloom(t0, key(2), &full);
        let mut versions_to_3 = step(&mut f, t0).len();
        let flips = 3000u64;
        for i in 1..flips {
            let now = t0 + ms(100 * i);
            let b = if i % 2 == 0 {
                Bloom {
                    version: i + 1,
                    ..full.clone()
                }
            } else {
                bloom(i + 1, &[])
            };
            f.handle_bloom(now, key(2), &b);
            if i > 2 * SHRINK_BURST as u64 + 1 {
                assert!(f.matches(&key(2), &[77; 32]), "at {i}");
            }
            versions_to_3 += step(&mut f, now).len();
        }
        // 300 s of flips: the burst, then nothing.
        assert!(
            versions_to_3 <= 2 * SHRINK_BURST as usize + 2,
            "{versions_to_3} versions"
        );
    }

    /// A settled peer's first drops apply at once: a subtree that shrinks is not held.
    #[test]
    fn a_shrinking_subtree_is_not_held() {
        let mut f = Filters::new(&[1; 32], 10);
        step(&mut f, Instant::ZERO);
        let t0 = Instant::ZERO + SETTLE;
        f.handle_bloom(t0, key(2), &bloom(1, &[5, 6, 7]));
        f.handle_bloom(t0 + ms(10), key(2), &bloom(2, &[5, 6]));
        f.handle_bloom(t0 + ms(20), key(2), &bloom(3, &[5, 6, 8]));
        assert!(!f.matches(&key(2), &[7; 32]));
        assert!(f.matches(&key(2), &[8; 32]));
    }

    /// A child is told all ones, once, however its siblings' subtrees change; the parent is told the
    /// subtree, and a lookup always may go up, whatever the parent sent.
    #[test]
    fn children_hear_all_ones_once_and_the_parent_the_subtree() {
        let mut f = Filters::new(&[1; 32], 10);
        let t0 = Instant::ZERO;
        let peers = [key(2), key(3), key(4)];
        let coords = vec![1];
        let mut to_children = 0;
        for v in 0..50u64 {
            f.handle_bloom(t0, key(2), &bloom(v + 1, &[(v % 200) as u8]));
            f.handle_bloom(t0, key(3), &bloom(v + 1, &[]));
            for (to, m) in f.update(t0, &coords, &peers, &peers, Some(key(3)), RTO) {
                let Message::Bloom(b) = m else { panic!() };
                f.handle_ack(&to, VersionAck { version: b.version });
                if to == key(3) {
                    let sent = Filter(b.words);
                    assert!(sent.contains(&[1; 32]) && sent.contains(&[(v % 200) as u8; 32]));
                    assert!(
                        !sent.contains(&[250; 32]),
                        "the parent hears the subtree only"
                    );
                } else {
                    assert_eq!(Filter(b.words), EVERYTHING);
                    to_children += 1;
                }
            }
        }
        assert_eq!(to_children, 2, "one all-ones filter per child");
        assert!(
            f.matches(&key(3), &[250; 32]),
            "the parent's empty filter is taken as all ones"
        );
        assert!(!f.matches(&key(4), &[250; 32]));
        // The root has no parent: only its children's filters steer.
        f.update(t0, &coords, &peers, &peers, None, RTO);
        assert!(!f.matches(&key(3), &[250; 32]));
    }
}
