//! The signed spanning tree: root election, parent choice, coordinates.
//!
//! Ideas from ironwood (Yggdrasil 0.5), adapted to lossy datagram links:
//! - Every node signs an announcement naming its parent; the parent countersigns it (`SigReq`/`SigRes`),
//!   which also fixes the port the parent gave the node. Coordinates are the ports from the root down.
//! - The root is the lowest key reachable. A node keeps only its own ancestry and its peers' ancestries.
//! - Announcements are acknowledged and retransmitted per peer, so a lost datagram delays but never loses
//!   tree state; idle links carry nothing but keepalives and a refresh every [`REFRESH`].
//!
//! And one addition against root churn (Yggdrasil issue #1339): a node that loses its root does not
//! immediately root itself, which would make every node of a cut-off subtree a root for a moment. It
//! *detaches* (announces that it has no root), re-attaches to its old root only through a path no longer
//! than before for [`HOLD_SAME`] (stale paths through its own former subtree are longer), avoids paths
//! through a peer just gone for [`GHOST_HOLD`] while others are on offer, accepts a better root (or the
//! root before the lost one) at once and a worse one only once that root's own moment to root itself
//! has passed by [`RANK_MARGIN`], and roots itself only after [`HOLD_SELF`] plus its key's rank in
//! [`RANK_SPREAD`] — unless it was the root, for [`ROOT_ESTABLISHED`] or more, before the lost
//! one, in which case it takes over at once. When a "better" key joins and leaves, every node therefore
//! changes root once when it joins and once when it leaves. Detached announcements name the best key
//! heard of among detached nodes, so the lowest remaining key is known everywhere before the hold
//! ends: that node roots itself when its hold ends, the others take it then, and a worse root, or
//! their own, only [`BEST_GRACE`] after the moments above.
//! Meanwhile a detached node routes by the coordinates it had under the lost root, and its
//! detached peers' by theirs ([`Tree::coords`], [`Tree::peer_coords`]), so that the mesh less its
//! root still carries packets through the hold.

mod coords;
mod info;
mod peer;
mod select;
mod store;
mod sync;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

pub use self::coords::{Coords, distance};
pub use self::info::AnnounceError;
use self::peer::{PeerTree, Sent};
use self::select::{Action, Candidate, Standing};
use self::store::Store;
pub use self::store::{Ancestry, Offer};
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::rng::Rng;
use crate::core::time::{Instant, earliest};
use crate::core::wire::inner::Message;
use crate::core::wire::tree::{Announce, AnnounceAck, SigReq, SigRes};

/// Own announcement is re-signed this often so that peers can tell it is alive (ironwood: 4 min).
pub const REFRESH: Duration = Duration::from_secs(240);
/// After losing its root, a node re-attaches to it only via paths no longer than before for this long:
/// long enough for the news to reach its former subtree over a few hops, short enough to add little to
/// the delivery gap when the only way back is longer.
pub const HOLD_SAME: Duration = Duration::from_millis(250);
/// After losing its root, a node waits this long for a peer to offer one before rooting itself.
pub const HOLD_SELF: Duration = Duration::from_secs(3);
/// Detached nodes root themselves up to this long after [`HOLD_SELF`], the lowest keys first
/// (`select::ranked_wait`): when the root crashes, the best remaining key usually roots itself
/// well before any other, and a detached subtree of m nodes waits about this over m.
pub const RANK_SPREAD: Duration = Duration::from_secs(10);
/// A detached node takes a root worse than the one it lost only this long after that root's own
/// moment to root itself, so that a better root that rooted itself a little earlier reaches it
/// first (a 10 000-node mesh of 1 ms links spreads an announcement in about 20 ms).
pub const RANK_MARGIN: Duration = Duration::from_millis(300);
/// A detached node that heard of a better key among the detached nodes (the `best` of their
/// announcements) waits this much longer before it takes a worse root than that key or roots
/// itself: that key is about to root itself and reach it; if it went, this is what its going costs.
pub const BEST_GRACE: Duration = Duration::from_secs(1);
/// A root follows a better peer that came up at least this long after it became a root, and is a
/// root of its own, only once the peer's link is this old (see `select::decide`): a node that just
/// started is its own root until its links bring it its mesh's, which took 20 ms in the 10 000-node
/// churn run, and a node cut off while that peer was down would otherwise change root twice.
pub const FRESH_ROOT_HOLD: Duration = Duration::from_secs(1);
/// An announcement on nobody's ancestry is kept this long before it is dropped (see `Store`).
const GC_GRACE: Duration = Duration::from_secs(30);
/// An announcement that was on an ancestry and is on none now is kept this long (see
/// `Store::collect_garbage`): longer than the pieces of one chain take to arrive, shorter than the
/// 5 s before nodes move to shallower places after a root change (`SETTLE`), when stale ones mixed in.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);
/// A root whose announcement has not been refreshed for this long (2.5 refresh periods) is presumed dead
/// and no longer followed, even if announcements of the chain towards it are still around: a safety net
/// behind link-level failure detection, as ironwood's 5-minute router timeout.
pub const ROOT_TIMEOUT: Duration = Duration::from_secs(600);
/// Parent choice is re-evaluated at most this often (see [`Tree::settle`]).
pub const RESELECT_COALESCE: Duration = Duration::from_millis(20);
/// A node moves to a merely shallower place only after its coordinates were stable this long.
pub const SETTLE: Duration = Duration::from_secs(5);
/// For this long after a peer's last link went down, a path through it is taken only if no other is
/// on offer: if the peer crashed, its other neighbours notice about when we do, and until their news
/// arrives every path we hold through it looks as good as before (a sibling under a crashed parent
/// offers our old depth), and taking one only moves us again a moment later. If only our link to it
/// failed, such a path is the best there is, and it is still taken when it is the only one.
pub const GHOST_HOLD: Duration = Duration::from_secs(2);
/// A node that was a root at least this long before a better root came takes over at once when that
/// one is lost (see the module notes). Every node starts as a root of its own for a moment: that
/// does not count, or each node whose parent crashed would root itself at once, and its subtree
/// follow it, instead of detaching and finding the way back.
pub const ROOT_ESTABLISHED: Duration = Duration::from_secs(10);
/// Link cost assumed before the first RTT sample, in milliseconds.
pub const UNKNOWN_COST: u64 = 1000;

/// A root announcement of `node` at `seq`, signed (the simulator's adversary makes these for
/// throwaway keys; anyone can).
pub fn root_announcement(node: &NodeKey, seq: u64) -> Announce {
    info::sign_root(node, seq, 0, None)
}

/// Something the node may want to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEvent {
    /// The root changed (`None` while detached).
    RootChanged(Option<PublicKey>),
}

/// A node's view of the spanning tree.
pub struct Tree {
    me: PublicKey,
    store: Store,
    peers: BTreeMap<PublicKey, PeerTree>,
    standing: Standing,
    own_seq: u64,
    request: SigReq,
    lost: Option<select::Lost>,
    previous_root: Option<PublicKey>,
    reported_root: Option<PublicKey>,
    /// When `reported_root` last changed.
    root_since: Instant,
    refresh_at: Instant,
    outbox: VecDeque<(PublicKey, Message<'static>)>,
    events: VecDeque<TreeEvent>,
    my_ancestry: Ancestry,
    /// Something changed since the last [`Tree::settle`]: parent choice must be re-evaluated.
    dirty: bool,
    /// When our coordinates last changed.
    coords_changed_at: Instant,
    /// The last time parent choice was re-evaluated.
    last_settle_check: Instant,
    /// When `reselect` last ran, for coalescing.
    last_reselect: Instant,
    /// Something peers may need to hear about (acks, announcements, requests) was queued.
    changed: bool,
    /// Our root, the sequence number of its announcement, and when we first held that announcement.
    root_heard: (PublicKey, u64, Instant),
    /// While detached, the root we detached from.
    detached_from: Option<PublicKey>,
    /// When the last decision asked to be made again (a detached node waiting for a root's moment).
    revisit: Option<Instant>,
    /// Peers whose last link went down less than [`GHOST_HOLD`] ago, with when (at most one entry
    /// per peer we had).
    gone: Vec<(PublicKey, Instant)>,
    /// The root and coordinates of our last ancestry attached to a root: where we still are for
    /// routing while detached (see [`Tree::coords`]).
    last_attached: Option<(PublicKey, Coords)>,
}

impl Tree {
    /// Drops the tree in parts (see `Node::drop_parts`): the queue of messages to peers, the rest,
    /// the stored announcements, then what each peer told us.
    pub fn drop_parts(self, after_each: &mut dyn FnMut(&'static str)) {
        type Parts = (
            Store,
            BTreeMap<PublicKey, PeerTree>,
            VecDeque<(PublicKey, Message<'static>)>,
        );
        // The fields not taken are dropped when `split` returns.
        fn split(tree: Tree) -> Parts {
            let Tree {
                store,
                peers,
                outbox,
                ..
            } = tree;
            (store, peers, outbox)
        }
        let (store, peers, outbox) = split(self);
        after_each("tree: own ancestry and the rest");
        drop(outbox);
        after_each("tree: messages queued for peers");
        drop(store);
        after_each("tree: announcements stored");
        drop(peers);
        after_each("tree: per-peer state");
    }

    /// Starts as a root of its own. `seq_base` must exceed every sequence number this key used before
    /// (the driver passes wall-clock microseconds), so a restarted node's announcements win.
    pub fn new(node: &NodeKey, seq_base: u64, now: Instant, rng: &mut Rng) -> Self {
        let me = node.public_key();
        let root = info::sign_root(node, seq_base, rng.u64(), None);
        let mut store = Store::default();
        store.insert(root);
        let my_ancestry = Ancestry {
            keys: vec![me],
            coords: Vec::new(),
            root: me,
            detached: false,
        };
        let mut tree = Self {
            me,
            store,
            peers: BTreeMap::new(),
            standing: Standing::Root,
            own_seq: seq_base,
            request: SigReq {
                seq: seq_base.saturating_add(1),
                nonce: rng.u64(),
            },
            lost: None,
            previous_root: None,
            reported_root: None,
            root_since: now,
            refresh_at: now + REFRESH,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            my_ancestry,
            dirty: false,
            coords_changed_at: now,
            last_settle_check: now,
            last_reselect: now - RESELECT_COALESCE,
            changed: false,
            root_heard: (me, seq_base, now),
            gone: Vec::new(),
            detached_from: None,
            revisit: None,
            last_attached: None,
        };
        tree.note_root(now);
        tree
    }

    /// Returns the announcements this node holds (its ancestry's and its peers' ancestries').
    pub fn announcements(&self) -> impl Iterator<Item = &crate::core::wire::tree::Announce> {
        self.store.iter()
    }

    /// Returns our coordinates, the ports from our root down to us. While detached, those we had
    /// under the root we lost: routing goes on by them until we have a root again, as our peers'
    /// (see [`peer_coords`](Self::peer_coords)), so that packets between nodes that can still
    /// reach each other through the old tree, less the root, keep going through the hold.
    pub fn coords(&self) -> &Coords {
        match &self.last_attached {
            Some((_, coords)) if self.my_ancestry.detached => coords,
            _ => &self.my_ancestry.coords,
        }
    }

    /// The root our [`coords`](Self::coords) are relative to.
    fn routing_root(&self) -> Option<PublicKey> {
        match &self.last_attached {
            Some((root, _)) if self.my_ancestry.detached => Some(*root),
            _ => Some(self.my_ancestry.root).filter(|_| !self.my_ancestry.detached),
        }
    }

    /// Returns a peer's coordinates for greedy routing: those of its ancestry; while both it and
    /// we are detached (or its chain is not all here), those it had under the root we lost, if we
    /// saw it attached to it. A root's crash detaches the whole mesh for [`HOLD_SELF`] and more: on
    /// these coordinates every pair whose tree path, or a greedy one, avoids the root still gets
    /// through. A node with a root does not route through a detached peer's old place: a member
    /// that announces itself detached while it still has its links would otherwise keep the
    /// traffic of the place it claims to have left (in the adversary test it lost one pair more
    /// than its crash).
    pub fn peer_coords(&self, peer: &PublicKey) -> Option<Coords> {
        let known = self.peers.get(peer)?;
        match self.store.ancestry(peer) {
            Some(a) if !a.detached => Some(a.coords),
            _ if !self.my_ancestry.detached => None,
            _ => {
                let (root, coords) = known.last_attached.as_ref()?;
                (Some(*root) == self.routing_root()).then(|| coords.clone())
            }
        }
    }

    /// Returns our root, `None` while detached.
    pub fn root(&self) -> Option<PublicKey> {
        (!self.my_ancestry.detached).then_some(self.my_ancestry.root)
    }

    /// Returns our parent (ourselves when root or detached).
    pub fn parent(&self) -> PublicKey {
        match self.standing {
            Standing::Attached(parent) => parent,
            _ => self.me,
        }
    }

    /// Returns a peer's ancestry as we know it.
    pub fn peer_ancestry(&self, peer: &PublicKey) -> Option<Ancestry> {
        self.peers
            .contains_key(peer)
            .then(|| self.store.ancestry(peer))
            .flatten()
    }

    /// Returns true if the link to `peer` is a tree edge (it is our parent or we are its parent).
    pub fn is_tree_peer(&self, peer: &PublicKey) -> bool {
        self.parent() == *peer || self.store.get(peer).is_some_and(|a| a.parent == self.me)
    }

    /// Returns how many announcements are stored (for memory reporting).
    pub fn stored(&self) -> usize {
        self.store.len()
    }

    /// Returns the next message to send, with the peer it is for.
    pub fn poll_message(&mut self) -> Option<(PublicKey, Message<'static>)> {
        let message = self.outbox.pop_front();
        if message.is_none() && self.outbox.capacity() > 0 {
            // All taken: give back its room. A settled node queues something for its peers a few
            // times in [`REFRESH`], and a queue of messages with announcements in them kept the room
            // of its last burst, 5 KiB per node at 10 000 nodes (see `room`).
            self.outbox = VecDeque::new();
        }
        message
    }

    /// Returns the next event.
    pub fn poll_event(&mut self) -> Option<TreeEvent> {
        self.events.pop_front()
    }

    fn free_port(&self) -> u64 {
        let mut used: Vec<u64> = self.peers.values().map(|p| p.port).collect();
        used.sort_unstable();
        let mut port = 1;
        for u in used {
            if u == port {
                port += 1;
            } else if u > port {
                break;
            }
        }
        port
    }

    /// A peer came up (its first link authenticated). `cost_ms` is its link's RTT in milliseconds, if known.
    pub fn add_peer(&mut self, now: Instant, peer: PublicKey, cost_ms: Option<u64>, rto: Duration) {
        if self.peers.contains_key(&peer) || peer == self.me {
            return;
        }
        self.gone.retain(|(k, _)| *k != peer);
        let port = self.free_port();
        let cost = cost_ms.map_or(UNKNOWN_COST, |c| c.max(1));
        self.peers.insert(peer, PeerTree::new(port, cost, rto, now));
        self.dirty = true;
        self.changed = true;
    }

    /// Forgets which announcements `peer` acknowledged, so that everything is sent to it again (it may
    /// have restarted and lost them).
    pub fn resync_peer(&mut self, peer: &PublicKey) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.sent.clear();
            p.req_sent = None;
            self.changed = true;
        }
    }

    /// A peer's last link went down at `now`.
    pub fn remove_peer(&mut self, now: Instant, peer: &PublicKey) {
        if self.peers.remove(peer).is_some() {
            self.gone
                .retain(|(k, at)| k != peer && now < *at + GHOST_HOLD);
            self.gone.push((*peer, now));
            self.dirty = true;
            self.changed = true;
        }
    }

    /// Updates a peer's link cost and retransmission timeout.
    pub fn set_peer_cost(&mut self, peer: &PublicKey, cost_ms: Option<u64>, rto: Duration) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.cost = cost_ms.map_or(UNKNOWN_COST, |c| c.max(1));
            p.rto = rto;
        }
    }

    /// Takes a peer's request for our signature as its parent. A repeated request is answered again
    /// from the cache; a new one is answered at the next [`settle`](Self::settle), so that of many
    /// requests in one frame only the last costs a signature, and within the peer's signing budget.
    pub fn handle_sig_req(&mut self, from: PublicKey, req: SigReq) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        match peer.sig_answered {
            Some(res) if (res.seq, res.nonce) == (req.seq, req.nonce) => {
                self.outbox.push_back((from, Message::SigRes(res)));
            }
            _ => {
                peer.sig_req = Some(req);
                self.changed = true;
            }
        }
    }

    /// Signs the requests taken since the last settle, each peer within its budget (a request over
    /// it is dropped: the peer asks again after its retransmission timeout).
    fn answer_sig_reqs(&mut self, now: Instant, node: &NodeKey) {
        for (from, peer) in &mut self.peers {
            let Some(req) = peer.sig_req.take() else {
                continue;
            };
            if !peer.sign_budget.take(now) {
                continue;
            }
            let psig = info::sign_as_parent(node, from, req.seq, req.nonce, peer.port);
            let res = SigRes {
                seq: req.seq,
                nonce: req.nonce,
                port: peer.port,
                psig,
            };
            peer.sig_answered = Some(res);
            self.outbox.push_back((*from, Message::SigRes(res)));
        }
    }

    /// Stores a peer's parent signature for our next announcement.
    pub fn handle_sig_res(&mut self, from: PublicKey, res: SigRes) {
        if res.seq != self.request.seq || res.nonce != self.request.nonce {
            return;
        }
        let valid =
            info::check_parent_signature(&self.me, &from, res.seq, res.nonce, res.port, &res.psig);
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        if valid && peer.sig_res.is_none() {
            peer.sig_res = Some(res);
            self.dirty = true;
        }
    }

    /// Processes an announcement from a peer. Returns an error if it failed verification.
    pub fn handle_announce(
        &mut self,
        now: Instant,
        node: &NodeKey,
        rng: &mut Rng,
        from: PublicKey,
        announce: Announce,
    ) -> Result<(), AnnounceError> {
        let Some(peer) = self.peers.get_mut(&from) else {
            return Ok(());
        };
        let offer = self.store.compare(&announce);
        if offer == Offer::Newer {
            // Not acknowledged unless accepted: over budget, the peer sends it again later.
            if !peer.verify_budget.take(now) {
                return Err(AnnounceError::OverBudget);
            }
            info::verify(&announce)?;
        }
        peer.acks.push((announce.key, announce.seq));
        self.changed = true;
        // The sender evidently holds this version now.
        peer.sent.insert(
            announce.key,
            Sent {
                seq: announce.seq,
                parent: announce.parent,
                at: now,
                acked: true,
            },
        );
        match offer {
            Offer::Same => {}
            Offer::Older => {
                // We hold a newer version: make sure the sender gets it.
                peer.sent.remove(&announce.key);
            }
            Offer::Newer if announce.key == self.me => self.outbid(now, node, rng, announce.seq),
            Offer::Newer => {
                self.store.insert(announce);
                self.dirty = true;
            }
        }
        Ok(())
    }

    /// Our own announcement came back with a sequence number at or above ours, signed by us: one
    /// from before a restart whose clock went back. Outbid it once (a replay of it later is older);
    /// at the top of the range there is nothing to outbid with and we keep ours.
    fn outbid(&mut self, now: Instant, node: &NodeKey, rng: &mut Rng, seq: u64) {
        if seq == u64::MAX {
            return;
        }
        self.own_seq = seq;
        self.republish(now, node, rng);
    }

    /// Processes an acknowledgement.
    pub fn handle_ack(&mut self, from: &PublicKey, ack: &AnnounceAck) {
        if let Some(peer) = self.peers.get_mut(from) {
            for (key, seq) in &ack.entries {
                peer.acked(key, *seq);
            }
        }
    }

    /// Runs timers: hold-downs, refresh, retransmissions.
    pub fn handle_timeout(&mut self, now: Instant, node: &NodeKey, rng: &mut Rng) {
        if now >= self.refresh_at {
            self.republish(now, node, rng);
        }
        self.dirty = true;
        self.changed = true;
        self.settle(now, node, rng);
    }

    /// Acts on everything received since the last call: re-evaluates the parent if anything changed and
    /// queues what each peer is missing. Call it after a whole frame was handled, so that an
    /// announcement and its ancestors' arriving together are judged together.
    /// Returns true if anything was (re)queued for peers, i.e. the tree may have changed.
    ///
    /// Parent choice is re-evaluated at most once per [`RESELECT_COALESCE`]: during a cold start or a
    /// root change a node hears many improvements in quick succession, and acting on each would sign and
    /// flood an announcement for each.
    pub fn settle(&mut self, now: Instant, node: &NodeKey, rng: &mut Rng) -> bool {
        self.note_root_heard(now);
        self.answer_sig_reqs(now, node);
        if self.dirty && now >= self.last_reselect + RESELECT_COALESCE {
            self.dirty = false;
            self.reselect(now, node, rng);
            self.changed = true;
        }
        let due = self
            .peers
            .values()
            .any(|p| p.next_retransmit(true).is_some_and(|t| t <= now));
        if std::mem::take(&mut self.changed) || due {
            self.flush(now);
            return true;
        }
        false
    }

    /// Returns when [`handle_timeout`](Self::handle_timeout) next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = Some(self.refresh_at);
        if self.dirty {
            next = earliest(next, Some(self.last_reselect + RESELECT_COALESCE));
        }
        next = earliest(next, self.store.next_collection(GC_GRACE, ORPHAN_GRACE));
        // Deadlines that call for a re-evaluation cannot be earlier than the coalescing allows.
        let floor = self.last_reselect + RESELECT_COALESCE;
        if self.root_heard.0 != self.me {
            next = earliest(next, Some((self.root_heard.2 + ROOT_TIMEOUT).max(floor)));
        }
        if let Some(lost) = &self.lost {
            next = earliest(next, Some((lost.since + HOLD_SAME).max(floor)));
        }
        if now_unsettled(self) {
            next = earliest(next, Some((self.coords_changed_at + SETTLE).max(floor)));
        }
        if let Standing::Detached(since) = self.standing {
            next = earliest(next, Some((since + HOLD_SELF).max(floor)));
        }
        if let Some(at) = self.revisit {
            next = earliest(next, Some(at.max(floor)));
        }
        for (_, at) in &self.gone {
            next = earliest(next, Some((*at + GHOST_HOLD).max(floor)));
        }
        for peer in self.peers.values() {
            next = earliest(next, peer.next_retransmit(true));
        }
        next
    }

    /// Remembers when our root's announcement last changed (it changes at least every [`REFRESH`]).
    fn note_root_heard(&mut self, now: Instant) {
        if self.my_ancestry.detached {
            // Still the root we lost: a silent one stays silent while we look for a way back.
            return;
        }
        let root = self.my_ancestry.root;
        let seq = self.store.get(&root).map_or(0, |a| a.seq);
        if (root, seq) != (self.root_heard.0, self.root_heard.1) {
            self.root_heard = (root, seq, now);
        }
    }

    /// Returns the root presumed dead: ours, if it is not us and its announcement is too old.
    fn silent_root(&self, now: Instant) -> Option<PublicKey> {
        let (root, _, heard) = self.root_heard;
        (root != self.me && now.saturating_since(heard) >= ROOT_TIMEOUT).then_some(root)
    }

    /// Returns the peers we could attach to, and whether our current parent's chain is merely
    /// incomplete (an announcement still on its way), in which case it is not given up on.
    fn candidates(&self, now: Instant) -> (Vec<Candidate>, bool) {
        let silent = self.silent_root(now);
        let parent_incomplete = match self.standing {
            Standing::Attached(p) => self.store.walk(&p).err() == Some(store::Walk::Incomplete),
            _ => false,
        };
        let ghost = |a: &Ancestry| {
            self.gone
                .iter()
                .any(|(k, at)| now < *at + GHOST_HOLD && a.contains(k))
        };
        let candidates = self
            .peers
            .iter()
            .filter_map(|(key, peer)| {
                let ancestry = self.store.ancestry(key)?;
                let usable = !ancestry.contains(&self.me)
                    && !ancestry.detached
                    && Some(ancestry.root) != silent;
                usable.then(|| Candidate {
                    peer: *key,
                    root: ancestry.root,
                    depth: ancestry.depth() + 1,
                    cost: (ancestry.depth() as u64 + 1).saturating_mul(peer.cost),
                    since: peer.since,
                    signed: peer.sig_res.is_some(),
                    ghost: ghost(&ancestry),
                })
            })
            .collect();
        (candidates, parent_incomplete)
    }

    /// Re-evaluates our place in the tree and acts on the decision.
    fn reselect(&mut self, now: Instant, node: &NodeKey, rng: &mut Rng) {
        self.last_reselect = now;
        self.last_settle_check = now;
        if self.lost.is_some_and(|l| now >= l.since + HOLD_SAME) {
            self.lost = None;
        }
        self.gone.retain(|(_, at)| now < *at + GHOST_HOLD);
        let (candidates, parent_incomplete) = self.candidates(now);
        if parent_incomplete {
            // Judge the parent when its whole chain is here; it is acknowledged and retransmitted.
            return;
        }
        let best_heard = match self.standing {
            Standing::Detached(_) => Some(self.best_heard()),
            _ => None,
        };
        let decision = select::decide(&select::Situation {
            me: self.me,
            now,
            standing: self.standing,
            old_root: self.reported_root,
            my_depth: self.my_ancestry.depth(),
            candidates,
            lost: self.lost,
            detached_from: self.detached_from,
            fallback_root: self.previous_root,
            best_heard,
            best_grace: BEST_GRACE,
            hold_same: HOLD_SAME,
            hold_self: HOLD_SELF,
            rank_spread: RANK_SPREAD,
            rank_margin: RANK_MARGIN,
            settled: now >= self.coords_changed_at + SETTLE,
            root_since: self.root_since,
            fresh_root_hold: FRESH_ROOT_HOLD,
        });
        if decision.lost.is_some() {
            self.lost = decision.lost;
        }
        self.revisit = decision.revisit;
        match decision.action {
            Action::Stay => {
                if let (Standing::Detached(since), Some(best)) = (self.standing, best_heard)
                    && self
                        .store
                        .get(&self.me)
                        .and_then(|a| a.best)
                        .is_some_and(|announced| best < announced)
                {
                    // Still detached: pass the better key on, but only once `HOLD_SAME` is over.
                    // A new announcement of ours asks every peer to sign again, and a node that
                    // finds its way back within moments (the lost root by another path, the root
                    // before it) would wait for those signatures.
                    if now >= since + HOLD_SAME {
                        self.become_root(now, node, rng, true);
                        self.standing = Standing::Detached(since);
                    } else {
                        self.revisit = earliest(self.revisit, Some(since + HOLD_SAME));
                    }
                }
            }
            Action::Attach(parent) => self.attach(now, node, rng, parent),
            Action::BecomeRoot => self.become_root(now, node, rng, false),
            Action::Detach => {
                self.detached_from = self.reported_root;
                if self.previous_root == Some(self.me) {
                    self.become_root(now, node, rng, false);
                } else {
                    self.become_root(now, node, rng, true);
                }
            }
        }
        self.update_ancestry(now);
    }

    fn attach(&mut self, now: Instant, node: &NodeKey, rng: &mut Rng, parent: PublicKey) {
        let Some(res) = self.peers.get(&parent).and_then(|p| p.sig_res) else {
            return;
        };
        let announce = info::sign_child(node, parent, res.seq, res.nonce, res.port, res.psig);
        self.standing = Standing::Attached(parent);
        self.detached_from = None;
        self.publish(now, rng, announce);
    }

    fn become_root(&mut self, now: Instant, node: &NodeKey, rng: &mut Rng, detached: bool) {
        let best = detached.then(|| self.best_heard());
        let announce = info::sign_root(node, self.request.seq, rng.u64(), best);
        self.standing = if detached {
            Standing::Detached(now)
        } else {
            self.detached_from = None;
            Standing::Root
        };
        self.publish(now, rng, announce);
    }

    /// The lowest key we heard of among detached nodes: ours, or one a peer's detached chain names
    /// (the `best` of the detached announcement its chain ends at).
    fn best_heard(&self) -> PublicKey {
        self.peers
            .keys()
            .filter_map(|peer| {
                let a = self.store.ancestry(peer)?;
                a.detached
                    .then(|| self.store.get(&a.root).and_then(|top| top.best))
                    .flatten()
            })
            .fold(self.me, PublicKey::min)
    }

    /// Re-signs our announcement in place (same parent, new seq).
    fn republish(&mut self, now: Instant, node: &NodeKey, rng: &mut Rng) {
        self.request.seq = self.request.seq.max(self.own_seq.saturating_add(1));
        match self.standing {
            Standing::Attached(parent)
                if self.peers.get(&parent).is_some_and(|p| p.sig_res.is_some()) =>
            {
                self.attach(now, node, rng, parent)
            }
            Standing::Attached(_) => {}
            Standing::Root => self.become_root(now, node, rng, false),
            Standing::Detached(since) => {
                self.become_root(now, node, rng, true);
                self.standing = Standing::Detached(since);
            }
        }
        self.refresh_at = now + REFRESH;
    }

    /// Installs our new announcement and asks every peer for a signature on the next one.
    fn publish(&mut self, now: Instant, rng: &mut Rng, announce: Announce) {
        self.changed = true;
        self.own_seq = announce.seq;
        self.store.insert(announce);
        self.request = SigReq {
            seq: self.own_seq.saturating_add(1),
            nonce: rng.u64(),
        };
        for peer in self.peers.values_mut() {
            peer.sig_res = None;
            peer.req_sent = None;
        }
        self.refresh_at = now + REFRESH;
        self.update_ancestry(now);
    }

    fn update_ancestry(&mut self, now: Instant) {
        if let Some(a) = self.store.ancestry(&self.me) {
            if a.coords != self.my_ancestry.coords || a.root != self.my_ancestry.root {
                self.coords_changed_at = now;
            }
            if !a.detached {
                remember_attached(&mut self.last_attached, &a);
            }
            self.my_ancestry = a;
        }
        self.note_root(now);
        self.note_root_heard(now);
    }

    /// Tracks root changes: remembers a superseded root as the fallback and reports the change.
    fn note_root(&mut self, now: Instant) {
        let root = self.root();
        if root == self.reported_root {
            return;
        }
        if let (Some(old), Some(new)) = (self.reported_root, root)
            && new < old
        {
            let brief = old == self.me && now < self.root_since + ROOT_ESTABLISHED;
            self.previous_root = (!brief).then_some(old);
        }
        self.reported_root = root;
        self.root_since = now;
        self.events.push_back(TreeEvent::RootChanged(root));
    }
}

/// Keeps `a`'s root and coordinates in `slot` (an attached ancestry), allocating only if they
/// changed.
fn remember_attached(slot: &mut Option<(PublicKey, Coords)>, a: &Ancestry) {
    match slot {
        Some((root, coords)) if *root == a.root && *coords == a.coords => {}
        Some((root, coords)) => {
            *root = a.root;
            coords.clone_from(&a.coords);
        }
        None => *slot = Some((a.root, a.coords.clone())),
    }
}

/// True until the settle-time re-evaluation has run (it runs once, at `coords_changed_at + SETTLE`).
fn now_unsettled(tree: &Tree) -> bool {
    tree.last_settle_check < tree.coords_changed_at + SETTLE
}

#[cfg(test)]
mod tests;
