//! Subtree key sets along tree edges: which child's subtree holds which key.
//!
//! Each node tells its parent the exact set of key tags (see [`super::tags`]) its subtree holds: its
//! own, plus what its children told it. A lookup goes up to the parent always and down only into the
//! children whose set holds the target's tag, so it reaches the root and from there the one subtree
//! that holds the target. Children are told nothing: the parent is where everything outside a
//! subtree is asked for.
//!
//! Sets replace ironwood's 8192-bit bloom filters, which say "maybe" for almost any key once a
//! subtree passes a few thousand nodes, so that near the root of a large mesh a lookup went down
//! every big subtree (75 lookup messages per new destination at 100 000 nodes, 9 at 1 000; PROTOCOL.md
//! §5 has the figures). A set costs 4 bytes a key on the wire where a filter cost 1 KiB whatever it
//! held; a node stores what its children told it and how many of them hold each tag (about 25 bytes
//! a tag of its subtree: summed over the mesh, N times the mean depth), so a leaf holds almost
//! nothing and the root of 100 000 nodes about 2 MB (2 022 KiB measured). All work is per tag
//! changed: a delta of `k` tags costs `O(k)` whatever the sets hold, so sending deltas buys no more
//! work than their bytes.
//!
//! Sets are sent as deltas: a change is a chain of [`SubtreeDelta`]s of at most
//! [`SUBTREE_CHUNK_TAGS`] tags, each naming the version it applies to, acknowledged with the
//! version the receiver then holds. At most [`WINDOW`] deltas are unacknowledged; a delta not
//! acknowledged within the link's retransmission timeout is sent again with those after it
//! (go-back-N); a receiver that answers 0 (it holds nothing of ours: it restarted) gets the whole
//! set again from the empty set.
//!
//! A set is unsigned and a child may change it at will; every change makes each ancestor's set
//! change, up to the root. A member that flipped its set ten times a second would put ten deltas a
//! second on every link from it to the root. While the tree forms, honest sets change just as fast,
//! so no fixed limit tells the two apart. What does is whether the tree *around us* is changing,
//! which a member cannot make happen from outside our subtree:
//!
//! - For [`SETTLE`] after our coordinates last changed (and after start), a child's set is used as
//!   it comes.
//! - After that, each child's changes are *damped*. In time: after [`TAKE_FREE`] takes, they are
//!   taken at most once per gap, which starts at [`TAKE_GAP_MIN`], doubles with each take up to
//!   [`TAKE_GAP_MAX`] and halves for each gap without one (the free takes come back after
//!   [`FREE_BACK_AFTER`] without one), so a child that changes all the time puts a delta on each link to the root
//!   every 4 s, and what changed in between goes as one (a tag added then removed before its turn
//!   never shows; one removed then added back never left). And in tags: a take costs the tags it adds
//!   or removes plus [`CHANGE_COST`] (what a delta's header and framing cost in bytes, about). Adds: a
//!   burst of [`GROW_BURST`], then [`GROW_RATE`] a second. Removals: a burst of [`SHRINK_BURST`], then
//!   [`SHRINK_RATE`] a second. A change that must wait is not lost: until its turn we keep what we
//!   had, and a change larger than a full bucket is taken a bucket at a time.
//!
//! So, once settled, a link to a parent carries at most what its receiver's buckets let through,
//! whatever the subtree below does: one lying child, or many, or a flapping one, adds at most
//! [`GROW_BURST`] + [`SHRINK_BURST`] tags (320 KiB), then 10 tags (40 bytes) a second, to each link
//! from it to the root, in at most a delta per 4 s. Honest changes wait little: a subtree that forms
//! after the tree around us settled (a 100 000-node mesh reshapes for 20 s after its first root)
//! gets 16 takes, then takes 0.25, 0.5, 1, 2 and 4 s apart; a new node is findable as soon as its set
//! reaches the root, within a gap at each ancestor whose subtree was busy. Under churn the children
//! of nodes near the root change all the time, honestly: 1 % of 10 000 nodes leaving and joining a
//! minute changes a root's child's set about once a second. With gaps up to 32 s and takes costing
//! 320 tags (the first values), a destination that moved was not found for up to a minute and 2 % of
//! the packets of ongoing flows were lost; with 4 s and 20, that is what a lie costs a link above it
//! (`tests/sim_adversary.rs`, SubtreeCreep: 1.7 times the idle rate) and honest moves wait at most
//! 4 s per busy ancestor. Counting changes in the tag budget instead (a first version) let a child's
//! first 204 changes through and then one every 40 s: at 100 000 nodes, 175 of 1 000 first lookups
//! found no one. A tag an honest child dropped may be held a while (a needless lookup branch,
//! nothing worse).
//!
//! A child's set holds at most [`MAX_PEER_TAGS`] tags and all children's together
//! [`MAX_TOTAL_TAGS`]: adds beyond those are dropped and the child is then taken to hold everything
//! (every lookup goes to it, within the lookup budget of a child that size). An honest subtree
//! reaches that only in a mesh of over a million nodes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};

use super::tags::{TagSet, tag};
use crate::core::identity::PublicKey;
use crate::core::rate::TokenBucket;
use crate::core::time::{Instant, earliest};
use crate::core::tree::Coords;
use crate::core::wire::ack::VersionAck;
use crate::core::wire::inner::Message;
use crate::core::wire::lookup::{SUBTREE_CHUNK_TAGS, SubtreeDelta};

/// Children's sets are used as they come for this long after our coordinates changed.
pub const SETTLE: Duration = Duration::from_secs(10);
/// What a change costs beyond its tags, in tags: a delta's header and framing cost about 80 bytes,
/// 20 tags. (320 made honest churn near the root spend the burst in minutes.)
pub const CHANGE_COST: usize = 20;
/// Tags added that one child may make us take at once once the tree around us is settled (a mesh
/// joining ours makes sets grow without moving us): 204 small changes, or a subtree of 65 000.
pub const GROW_BURST: f64 = 65_536.0;
/// After that burst, tags added taken from one child per second: a small change per 2.6 s.
pub const GROW_RATE: f64 = 8.0;
/// Tags removed that one child may make us drop at once once the tree around us is settled.
pub const SHRINK_BURST: f64 = 16_384.0;
/// After that burst, tags removed taken from one child per second (a tag held too long costs a
/// needless lookup branch, nothing more).
pub const SHRINK_RATE: f64 = 2.0;
/// Once settled, a child's changes are taken at most once per gap, which starts at this...
pub const TAKE_GAP_MIN: Duration = Duration::from_millis(250);
/// ...doubles with each take up to this, and halves for each gap that passes without one. A child
/// that changes all the time gets a take (one delta up each ancestor link) every 4 s; one that
/// forms its subtree gets a few in its first seconds; one that changes now and then, each at once.
pub const TAKE_GAP_MAX: Duration = Duration::from_secs(4);
/// A child quiet this long gets its [`TAKE_FREE`] takes back (longer than [`TAKE_GAP_MAX`], so that
/// pausing buys a liar no more than 16 deltas per 32 s).
pub const FREE_BACK_AFTER: Duration = Duration::from_secs(32);
/// Takes that wait for no gap, once settled, before the gaps begin; all of them come back after
/// [`FREE_BACK_AFTER`] without a take. The moves that reshape a forming tree come in waves (a node moves
/// to a shallower place once its place was still for 5 s), and one may fall when the damping starts.
pub const TAKE_FREE: u32 = 16;
/// Deltas sent to the parent and not yet acknowledged, at most.
pub const WINDOW: usize = 32;
/// Tags held for one child at most (a subtree of a quarter million nodes).
pub const MAX_PEER_TAGS: usize = 1 << 18;
/// Tags held for all children together at most (a million-node mesh's root; about 25 MB).
pub const MAX_TOTAL_TAGS: usize = 1 << 20;

/// What a change of `tags` tags costs, as far as a bucket of `burst` can pay at once.
fn cost(tags: usize, burst: f64) -> u32 {
    (tags.saturating_add(CHANGE_COST) as f64).min(burst) as u32
}

/// Takes from `waiting` (into `changes`, as `added`) what `bucket` pays for: all of it if it can,
/// else, once the bucket is full, as much as a full bucket pays for (the smallest tags first).
fn take_within(
    bucket: &mut TokenBucket,
    now: Instant,
    burst: f64,
    waiting: &mut BTreeSet<u32>,
    added: bool,
    changes: &mut Vec<(u32, bool)>,
) {
    let tokens = bucket.tokens(now);
    let whole = (waiting.len() + CHANGE_COST) as f64;
    let n = if tokens >= whole {
        waiting.len()
    } else if tokens >= burst {
        (burst as usize).saturating_sub(CHANGE_COST)
    } else {
        return;
    };
    if bucket.take_many(now, cost(n, burst)) {
        let taken = match waiting.iter().nth(n).copied() {
            Some(first_left) => {
                let rest = waiting.split_off(&first_left);
                std::mem::replace(waiting, rest)
            }
            None => std::mem::take(waiting),
        };
        changes.extend(taken.into_iter().map(|t| (t, added)));
    }
}

/// About what a delta held in memory costs: its two vectors' headers and their tags.
fn delta_heap_bytes(d: &SubtreeDelta) -> usize {
    48 + 4 * (d.added.capacity() + d.removed.capacity())
}

/// What a child told us, and what of it we use ("held"): `latest` without `missing`, plus `extra`.
struct Received {
    /// The version of `latest`.
    version: u64,
    /// Its set as of `version` (in step with the child).
    latest: TagSet,
    /// Tags of `latest` not yet taken (waiting for their turn).
    missing: BTreeSet<u32>,
    /// Tags no longer in `latest` that we still use (their removal waits for its turn).
    extra: BTreeSet<u32>,
    /// Whether it sent more tags than it may: it is then taken to hold everything.
    overflowed: bool,
    /// Deltas that came before the one they follow (by base), at most [`WINDOW`].
    early: BTreeMap<u64, SubtreeDelta>,
    /// Whether the last delta applied was not the last of its chain: `latest` is then half made
    /// (a set sent again from the empty set lacks what is still to come), and nothing is taken.
    mid_chain: bool,
    grow: TokenBucket,
    shrink: TokenBucket,
    /// When a take may next happen once settled, and the gap after it (see [`TAKE_GAP_MIN`]).
    next_take: Instant,
    gap: Duration,
    /// Takes left that wait for no gap (see [`TAKE_FREE`]).
    free: u32,
}

impl Received {
    fn new(now: Instant) -> Self {
        Self {
            version: 0,
            latest: TagSet::default(),
            missing: BTreeSet::new(),
            extra: BTreeSet::new(),
            overflowed: false,
            early: BTreeMap::new(),
            mid_chain: false,
            grow: TokenBucket::new(GROW_RATE, GROW_BURST, now),
            shrink: TokenBucket::new(SHRINK_RATE, SHRINK_BURST, now),
            next_take: now,
            gap: TAKE_GAP_MIN,
            free: TAKE_FREE,
        }
    }

    /// Whether a lookup for `t` goes to this child: what it told us, waiting or not, and what we
    /// still hold of it. Damping holds back what we pass up, not where we send lookups: a subtree
    /// that moved under this child is found here while its move waits for its turn above.
    fn routes(&self, t: u32) -> bool {
        self.overflowed || self.latest.contains(&t) || self.extra.contains(&t)
    }

    fn held_len(&self) -> usize {
        self.latest.len() - self.missing.len() + self.extra.len()
    }

    fn held(&self) -> impl Iterator<Item = u32> + '_ {
        self.latest
            .iter()
            .filter(|t| !self.missing.contains(t))
            .chain(self.extra.iter())
            .copied()
    }

    fn add(&mut self, t: u32) {
        if self.latest.insert(t) && !self.extra.remove(&t) {
            self.missing.insert(t);
        }
    }

    fn remove(&mut self, t: u32) {
        if self.latest.remove(&t) && !self.missing.remove(&t) {
            self.extra.insert(t);
        }
    }

    /// Applies a delta that follows what we hold to `latest`, keeping at most `cap` tags there;
    /// returns false if some adds did not fit.
    fn apply(&mut self, delta: &SubtreeDelta, cap: usize) -> bool {
        if delta.base == 0 {
            let all: Vec<u32> = self.latest.iter().copied().collect();
            for t in all {
                self.remove(t);
            }
            self.overflowed = false;
        }
        for t in &delta.removed {
            self.remove(*t);
        }
        let mut fits = true;
        for t in &delta.added {
            if self.latest.len() < cap || self.latest.contains(t) {
                self.add(*t);
            } else {
                fits = false;
            }
        }
        self.version = delta.version;
        fits
    }

    /// Takes what waits: everything while `settling`, else within the damping. Appends the changes
    /// to what we use to `changes` (tag, added).
    fn take(&mut self, now: Instant, settling: bool, changes: &mut Vec<(u32, bool)>) {
        if settling {
            changes.extend(
                std::mem::take(&mut self.missing)
                    .into_iter()
                    .map(|t| (t, true)),
            );
            changes.extend(
                std::mem::take(&mut self.extra)
                    .into_iter()
                    .map(|t| (t, false)),
            );
            return;
        }
        if now < self.next_take {
            return;
        }
        let before = changes.len();
        if !self.missing.is_empty() {
            let (bucket, waiting) = (&mut self.grow, &mut self.missing);
            take_within(bucket, now, GROW_BURST, waiting, true, changes);
        }
        if !self.extra.is_empty() {
            let (bucket, waiting) = (&mut self.shrink, &mut self.extra);
            take_within(bucket, now, SHRINK_BURST, waiting, false, changes);
        }
        if changes.len() > before {
            // Quiet since the last take's gap ended: the gap halves for each gap of quiet, and
            // `FREE_BACK_AFTER` of quiet gives back the free takes.
            let mut quiet = now.saturating_since(self.next_take);
            if quiet >= FREE_BACK_AFTER {
                self.free = TAKE_FREE;
                self.gap = TAKE_GAP_MIN;
            }
            while quiet >= self.gap && self.gap > TAKE_GAP_MIN {
                quiet -= self.gap;
                self.gap = (self.gap / 2).max(TAKE_GAP_MIN);
            }
            if self.free > 0 {
                self.free -= 1;
                self.next_take = now;
            } else {
                self.next_take = now + self.gap;
                self.gap = (self.gap * 2).min(TAKE_GAP_MAX);
            }
        }
    }

    /// When its next turn comes, if something waits for one.
    fn due(&self, now: Instant) -> Option<Instant> {
        if self.mid_chain {
            return None;
        }
        let grow = (!self.missing.is_empty())
            .then(|| self.grow.available_at(cost(self.missing.len(), GROW_BURST)));
        let shrink = (!self.extra.is_empty()).then(|| {
            self.shrink
                .available_at(cost(self.extra.len(), SHRINK_BURST))
        });
        earliest(grow, shrink).map(|at| at.max(self.next_take).max(now + Duration::from_millis(1)))
    }

    fn heap_bytes(&self) -> usize {
        // A hash set slot: the tag and a control byte; a B-tree entry about 6 bytes.
        let early: usize = self.early.values().map(delta_heap_bytes).sum();
        5 * self.latest.capacity() + 6 * (self.missing.len() + self.extra.len()) + early
    }
}

/// What we tell our parent.
struct Upstream {
    parent: PublicKey,
    /// The version the parent acknowledged holding (0: nothing).
    acked_version: u64,
    /// Deltas after `acked_version`, oldest first, not yet acknowledged.
    chain: VecDeque<SubtreeDelta>,
    /// Changes not yet in the chain: tag, added (true) or removed.
    pending: BTreeMap<u32, bool>,
    /// How many of the chain's deltas were sent since the last (re)transmission began.
    sent: usize,
    /// When the oldest unacknowledged delta was last sent.
    sent_at: Instant,
}

/// What an acknowledgement means for what we send.
#[derive(PartialEq, Eq)]
enum Acked {
    Nothing,
    /// Deltas were acknowledged and more wait.
    More,
    /// The parent holds nothing of ours: send the whole set again.
    Lost,
}

impl Upstream {
    /// Starts telling `parent` our whole subtree (`counts`' tags).
    fn new(parent: PublicKey, counts: &HashMap<u32, u32>, now: Instant) -> Self {
        Self {
            parent,
            acked_version: 0,
            chain: VecDeque::new(),
            pending: counts.keys().map(|t| (*t, true)).collect(),
            sent: 0,
            sent_at: now,
        }
    }

    /// Notes that tag `t` entered (`present`) or left our subtree.
    fn note(&mut self, t: u32, present: bool) {
        if self.pending.get(&t).is_some_and(|p| *p != present) {
            self.pending.remove(&t);
        } else {
            self.pending.insert(t, present);
        }
    }

    /// Turns the pending changes into deltas at the end of the chain.
    fn flush(&mut self, next_version: &mut u64) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let added: Vec<u32> = pending
            .iter()
            .filter(|(_, a)| **a)
            .map(|(t, _)| *t)
            .collect();
        let removed: Vec<u32> = pending
            .iter()
            .filter(|(_, a)| !**a)
            .map(|(t, _)| *t)
            .collect();
        let (mut added, mut removed) = (&added[..], &removed[..]);
        while !added.is_empty() || !removed.is_empty() {
            let a = added.len().min(SUBTREE_CHUNK_TAGS);
            let r = removed.len().min(SUBTREE_CHUNK_TAGS - a);
            *next_version += 1;
            let base = self.chain.back().map_or(self.acked_version, |d| d.version);
            self.chain.push_back(SubtreeDelta {
                version: *next_version,
                base,
                last: a == added.len() && r == removed.len(),
                added: added[..a].to_vec(),
                removed: removed[..r].to_vec(),
            });
            (added, removed) = (&added[a..], &removed[r..]);
        }
    }

    /// The deltas to send now: the next ones within the window, or the window again from the
    /// oldest unacknowledged one once `rto` passed without an acknowledgement.
    fn poll(&mut self, now: Instant, rto: Duration) -> Vec<SubtreeDelta> {
        if self.sent > 0 && self.sent_at + rto <= now {
            self.sent = 0;
        }
        let mut out = Vec::new();
        while self.sent < self.chain.len().min(WINDOW) {
            if self.sent == 0 {
                self.sent_at = now;
            }
            out.push(self.chain[self.sent].clone());
            self.sent += 1;
        }
        out
    }

    /// Takes the parent's acknowledgement of holding `version`.
    fn acknowledged(&mut self, now: Instant, version: u64) -> Acked {
        if version == self.acked_version {
            return Acked::Nothing;
        }
        if let Some(i) = self.chain.iter().position(|d| d.version == version) {
            self.chain.drain(..=i);
            self.acked_version = version;
            self.sent = self.sent.saturating_sub(i + 1);
            self.sent_at = now;
            return if self.chain.is_empty() {
                Acked::Nothing
            } else {
                Acked::More
            };
        }
        if version == 0 {
            return Acked::Lost;
        }
        Acked::Nothing
    }

    fn next_retransmit(&self, rto: Duration) -> Option<Instant> {
        (self.sent > 0).then(|| self.sent_at + rto)
    }

    fn heap_bytes(&self) -> usize {
        let chain: usize = self.chain.iter().map(delta_heap_bytes).sum();
        // A B-tree entry: the tag, the flag and about a third again for the nodes.
        chain + 8 * self.pending.len()
    }
}

/// Adds (`added`) or removes one holder of each tag in `changes` to `counts`, noting tags that
/// enter or leave our subtree for the parent.
fn recount(
    counts: &mut HashMap<u32, u32>,
    mut upstream: Option<&mut Upstream>,
    changes: impl IntoIterator<Item = (u32, bool)>,
) {
    for (t, added) in changes {
        if added {
            let c = counts.entry(t).or_insert(0);
            *c += 1;
            if *c == 1
                && let Some(u) = upstream.as_deref_mut()
            {
                u.note(t, true);
            }
        } else if let Some(c) = counts.get_mut(&t) {
            *c -= 1;
            if *c == 0 {
                counts.remove(&t);
                if let Some(u) = upstream.as_deref_mut() {
                    u.note(t, false);
                }
            }
        }
    }
}

/// Subtree set state for all tree peers.
pub struct Subtrees {
    /// Our parent as of the latest update (ourselves when root or detached: then nobody).
    parent: Option<PublicKey>,
    /// How many of us and our counted children hold each tag: our subtree is its tags.
    counts: HashMap<u32, u32>,
    /// The children whose held sets `counts` includes.
    counted: BTreeSet<PublicKey>,
    received: BTreeMap<PublicKey, Received>,
    /// The tags of every `latest` together.
    total: usize,
    upstream: Option<Upstream>,
    next_version: u64,
    /// Our coordinates, and when they last changed.
    coords: Coords,
    moved_at: Instant,
    /// The time of the latest call, for `next_retransmit`.
    now: Instant,
}

impl Subtrees {
    /// Starts with only our own canonical partial key; versions start at `version_base` so that a
    /// restarted node's sets are newer than its old ones.
    pub fn new(own_target: &[u8; 32], version_base: u64) -> Self {
        let mut counts = HashMap::new();
        counts.insert(tag(own_target), 1);
        Self {
            parent: None,
            counts,
            counted: BTreeSet::new(),
            received: BTreeMap::new(),
            total: 0,
            upstream: None,
            next_version: version_base,
            coords: Coords::default(),
            moved_at: Instant::ZERO,
            now: Instant::ZERO,
        }
    }

    fn settling(&self, now: Instant) -> bool {
        now < self.moved_at + SETTLE
    }

    /// Applies a child's delta (if it follows what we hold; see the module's notes on damping) and
    /// returns the acknowledgement to send: the version we then hold. It is kept even if we do not
    /// (yet) see the sender as our child: our view of the tree may lag the sender's.
    pub fn handle_delta(
        &mut self,
        now: Instant,
        from: PublicKey,
        delta: &SubtreeDelta,
    ) -> VersionAck {
        self.now = self.now.max(now);
        let settling = self.settling(now);
        let r = self
            .received
            .entry(from)
            .or_insert_with(|| Received::new(now));
        if delta.version <= r.version {
            return VersionAck { version: r.version };
        }
        if delta.base != 0 && delta.base != r.version {
            // Ahead of what we hold (a delta before it is lost or late): kept for when that comes.
            if delta.base > r.version
                && (r.early.len() < WINDOW || r.early.contains_key(&delta.base))
            {
                r.early.insert(delta.base, delta.clone());
            }
            return VersionAck { version: r.version };
        }
        let before = r.latest.len();
        let others = self.total - before;
        let cap = MAX_PEER_TAGS.min(MAX_TOTAL_TAGS.saturating_sub(others));
        let mut fits = r.apply(delta, cap);
        r.mid_chain = !delta.last;
        while let Some(next) = r.early.remove(&r.version) {
            fits &= r.apply(&next, cap);
            r.mid_chain = !next.last;
        }
        let version = r.version;
        r.early.retain(|base, _| *base > version);
        r.overflowed |= !fits;
        self.total = others + r.latest.len();
        if !r.mid_chain {
            let mut changes = Vec::new();
            r.take(now, settling, &mut changes);
            if self.counted.contains(&from) {
                recount(&mut self.counts, self.upstream.as_mut(), changes);
            }
        }
        VersionAck { version: r.version }
    }

    /// Records our parent's acknowledgement; returns true if an update should follow (more deltas
    /// may go, or the parent lost our set).
    pub fn handle_ack(&mut self, now: Instant, from: &PublicKey, ack: VersionAck) -> bool {
        self.now = self.now.max(now);
        let Some(u) = self.upstream.as_mut().filter(|u| u.parent == *from) else {
            return false;
        };
        match u.acknowledged(now, ack.version) {
            Acked::Nothing => false,
            Acked::More => true,
            Acked::Lost => {
                *u = Upstream::new(*from, &self.counts, now);
                true
            }
        }
    }

    /// Forgets what `peer` acknowledged, so that the next update sends it our whole set again.
    pub fn forget_sent(&mut self, peer: &PublicKey) {
        if self.upstream.as_ref().is_some_and(|u| u.parent == *peer) {
            self.upstream = None;
        }
    }

    /// Our subtree's tags, ascending, if `peer` is our parent (the simulator's adversary builds its
    /// lies on them).
    pub fn sent_set(&self, peer: &PublicKey) -> Option<Vec<u32>> {
        self.upstream.as_ref().filter(|u| u.parent == *peer)?;
        let mut tags: Vec<u32> = self.counts.keys().copied().collect();
        tags.sort_unstable();
        Some(tags)
    }

    /// About how many nodes a lookup from `peer` may speak for: a child's subtree, or, for our parent,
    /// which sends us the lookups for our subtree, our own subtree.
    pub fn subtree_estimate(&self, peer: &PublicKey) -> f64 {
        let n = if self.parent.as_ref() == Some(peer) {
            self.counts.len()
        } else {
            self.received.get(peer).map_or(1, |r| {
                if r.overflowed {
                    MAX_PEER_TAGS
                } else {
                    r.held_len()
                }
            })
        };
        n as f64
    }

    /// Returns true if a lookup for the key with tag `target` should go to `peer`: our parent always,
    /// a child if its subtree holds it.
    pub fn matches(&self, peer: &PublicKey, target: u32) -> bool {
        self.parent.as_ref() == Some(peer)
            || self.received.get(peer).is_some_and(|r| r.routes(target))
    }

    /// How many tags our subtree holds.
    pub fn subtree_len(&self) -> usize {
        self.counts.len()
    }

    /// Heap bytes of the sets held (for the memory report).
    pub fn heap_bytes(&self) -> usize {
        let received: usize = self.received.values().map(Received::heap_bytes).sum();
        let upstream = self.upstream.as_ref().map_or(0, Upstream::heap_bytes);
        // A hash map slot: the tag, its count and a control byte.
        received + upstream + 9 * self.counts.capacity()
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
        if self.upstream.as_ref().map(|u| u.parent) != self.parent {
            self.upstream = self.parent.map(|p| Upstream::new(p, &self.counts, now));
        }
        // Children counted: the tree peers other than the parent that told us a set.
        let children: BTreeSet<PublicKey> = self
            .received
            .keys()
            .filter(|k| Some(**k) != self.parent && tree_peers.contains(k) && peers.contains(k))
            .copied()
            .collect();
        for k in self.counted.difference(&children) {
            if let Some(r) = self.received.get(k) {
                let held: Vec<u32> = r.held().collect();
                recount(
                    &mut self.counts,
                    self.upstream.as_mut(),
                    held.into_iter().map(|t| (t, false)),
                );
            }
        }
        for k in children.difference(&self.counted) {
            if let Some(r) = self.received.get(k) {
                let held: Vec<u32> = r.held().collect();
                recount(
                    &mut self.counts,
                    self.upstream.as_mut(),
                    held.into_iter().map(|t| (t, true)),
                );
            }
        }
        self.counted = children;
        let total = &mut self.total;
        self.received.retain(|k, r| {
            let keep = peers.contains(k);
            if !keep {
                *total -= r.latest.len();
            }
            keep
        });
        let mut changes = Vec::new();
        for (k, r) in &mut self.received {
            if r.due(now)
                .is_some_and(|t| settling || t <= now + Duration::from_millis(1))
            {
                r.take(now, settling, &mut changes);
                if self.counted.contains(k) {
                    recount(&mut self.counts, self.upstream.as_mut(), changes.drain(..));
                }
                changes.clear();
            }
        }
        let Some(up) = self.upstream.as_mut() else {
            return Vec::new();
        };
        up.flush(&mut self.next_version);
        let parent = up.parent;
        up.poll(now, rto(&parent))
            .into_iter()
            .map(|d| (parent, Message::SubtreeDelta(Box::new(d))))
            .collect()
    }

    /// Returns when a retransmission, or a child's change that waits for its turn, is next due.
    pub fn next_retransmit(&self, rto: impl Fn(&PublicKey) -> Duration) -> Option<Instant> {
        self.upstream
            .as_ref()
            .and_then(|u| u.next_retransmit(rto(&u.parent)))
            .into_iter()
            .chain(self.received.values().filter_map(|r| r.due(self.now)))
            .fold(None, |a, t| earliest(a, Some(t)))
    }
}

#[cfg(test)]
#[path = "subtrees_tests.rs"]
mod tests;
