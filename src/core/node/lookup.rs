//! The node's side of lookups: IPv6 packets from the local host, subtree set exchange, lookups along
//! the tree, signed replies and broken-path reports.

use std::net::Ipv6Addr;

use super::{DropReason, Node};
use crate::core::address::{ADDRESS_PREFIX, PartialKey, node_address};
use crate::core::identity::PublicKey;
use crate::core::lookup::paths::Route;
use crate::core::lookup::tags::tag;
use crate::core::rate::TokenBucket;
use crate::core::time::Instant;
use crate::core::wire::inner::Message;
use crate::core::wire::lookup::{Lookup, LookupReply, SubtreeDelta};
use crate::core::wire::payload::{Service, TcpSuperPacket};
use crate::core::wire::traffic::{KIND_LOOKUP_REPLY, KIND_PATH_BROKEN, Traffic};

/// Lookups a peer may make us forward: 20 per second, bursts of twice the rate, plus
/// [`LOOKUP_RATE_PER_NODE`] for every node its side of the tree holds (see [`lookup_budget`]).
const LOOKUP_RATE: f64 = 20.0;
/// Every lookup goes up to the root, so the links near it carry the lookups of whole subtrees: a
/// child may send us this many a second for each node of its subtree (as many as its set holds),
/// and our parent as many for each node of ours (the lookups for it). One lookup per node per 10 s.
const LOOKUP_RATE_PER_NODE: f64 = 0.1;
/// A peer's lookups at most, reached at 9 800 nodes: a member that claims a huge subtree gets no
/// more than that.
const LOOKUP_RATE_MAX: f64 = 1000.0;

/// The lookups per second (and burst) a peer whose side of the tree holds about `nodes` nodes may
/// make us forward.
fn lookup_budget(nodes: f64) -> (f64, f64) {
    let rate = (LOOKUP_RATE + LOOKUP_RATE_PER_NODE * nodes.max(0.0)).min(LOOKUP_RATE_MAX);
    (rate, 2.0 * rate)
}
/// Broken-path reports sent to one source: at most one per this interval.
const PATH_BROKEN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// Broken-path reports one peer may hand us per second (see [`Node::report_allowed`]).
pub(super) const REPORT_RATE: f64 = 10.0;
/// See [`REPORT_RATE`].
pub(super) const REPORT_BURST: f64 = 20.0;
/// Broken-path reports of one reporter that we pass on per second (see [`Node::report_allowed`]).
pub(super) const REPORTER_RATE: f64 = 0.1;
/// See [`REPORTER_RATE`]. A node that cannot forward reports to every source whose packets it
/// holds: when a node near the root crashes, one honest node may have dozens of flows stuck at once
/// (12 in the 10 000-node churn run; with a burst of 4, the sources beyond the fourth heard nothing
/// and sent into a stale path for up to 11 s). A forger gets this burst once, then the rate.
pub(super) const REPORTER_BURST: f64 = 16.0;

/// Minimal IPv6 header length.
const IPV6_HEADER: usize = 40;

impl Node {
    /// Routes an IPv6 packet from the local host (the TUN device) to the node that owns its destination
    /// address, looking the destination up first if needed.
    pub fn handle_local_packet(&mut self, now: Instant, packet: &[u8]) {
        self.send_local(now, packet, &Message::Packet(packet));
    }

    /// Handles a TCP super-packet the host sent (a TSO read, see `core::offload::passthrough`): sent
    /// whole, as one session message, to the node that owns its destination.
    pub fn handle_local_super_packet(&mut self, now: Instant, packet: &[u8], mss: u16, ecn: bool) {
        let message = Message::TcpSuperPacket(TcpSuperPacket { mss, ecn, packet });
        self.send_local(now, packet, &message);
    }

    /// Sends `message`, which carries the host's IPv6 `packet`, towards the packet's destination.
    fn send_local(&mut self, now: Instant, packet: &[u8], message: &Message<'_>) {
        self.now = now;
        if packet.len() < IPV6_HEADER || packet[0] >> 4 != 6 {
            self.count_drop(DropReason::NotIpv6);
            return;
        }
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&packet[24..40]);
        let mut prefix = Vec::with_capacity(16);
        let bulk = message.encode_split(&mut prefix);
        self.send_to_address(now, Ipv6Addr::from(dst), &[&prefix, bulk]);
    }

    /// Sends a message to the built-in service on `port` of node `dest`, inside the session with it
    /// (looking the node up first if needed).
    pub fn send_service(&mut self, now: Instant, dest: PublicKey, port: u16, payload: &[u8]) {
        self.now = now;
        let mut frame = Vec::with_capacity(payload.len() + 8);
        Message::Service(Service { port, payload }).encode(&mut frame);
        self.send_to_address(now, node_address(&dest), &[&frame]);
    }

    /// Sends a frame, given as consecutive parts, in the session with the node that owns `dst`,
    /// finding the node first if needed.
    fn send_to_address(&mut self, now: Instant, dst: Ipv6Addr, frame: &[&[u8]]) {
        let (Some(partial), Some(canonical)) = (
            PartialKey::from_address(&dst),
            PartialKey::canonical_for_address(&dst),
        ) else {
            self.count_drop(DropReason::NotOverlay);
            return;
        };
        // A neighbour's own address: straight over the link to it (see `Node::direct_to_peers`).
        if self.direct_to_peers
            && dst.octets()[0] == ADDRESS_PREFIX
            && let Some(peer) = self
                .links
                .peers
                .keys()
                .find(|k| partial.matches(k))
                .copied()
        {
            let flow = super::txqueue::flow_of(&self.me, &peer);
            self.send_frame_parts(now, &peer, frame, Some(flow));
            return;
        }
        let target = *canonical.as_padded_key();
        let nonce = self.rng.u64();
        match self.paths.route(now, partial, target, frame, nonce) {
            Route::Send(key, coords) => self.send_in_session(now, key, coords, frame),
            Route::SendAndLookup(key, coords, nonce) => {
                self.send_in_session(now, key, coords, frame);
                self.start_lookup(now, nonce, target);
            }
            Route::Lookup(nonce) => self.start_lookup(now, nonce, target),
            Route::Queued => {}
            Route::Dropped => self.count_drop(DropReason::LookupQueueFull),
        }
        self.drain_tree();
    }

    pub(super) fn start_lookup(&mut self, now: Instant, nonce: u64, target: [u8; 32]) {
        self.stats.lookups_sent += 1;
        let lookup = Lookup {
            nonce,
            source: self.me,
            source_path: self.tree.coords().clone(),
            target,
        };
        self.forward_lookup(now, lookup, None);
    }

    /// Sends a lookup to every tree peer (except the one it came from) whose subtree set holds the
    /// target: the parent, and a child that holds it.
    fn forward_lookup(&mut self, now: Instant, lookup: Lookup, from: Option<PublicKey>) {
        let target = tag(&lookup.target);
        let peers: Vec<PublicKey> = self
            .links
            .peers
            .keys()
            .filter(|p| {
                Some(**p) != from && self.tree.is_tree_peer(p) && self.subtrees.matches(p, target)
            })
            .copied()
            .collect();
        for peer in peers {
            let mut frame = Vec::new();
            Message::Lookup(lookup.clone()).encode(&mut frame);
            self.stats.lookup_bytes += frame.len() as u64;
            self.send_frame(now, &peer, &frame, None);
        }
    }

    /// Whether a broken-path report from `reporter` that peer `from` hands us may go on (or be
    /// taken). Reports are not authenticated and anyone can make them, so each peer may pass us
    /// [`REPORT_RATE`] a second (bursts of [`REPORT_BURST`]) and each reporter
    /// [`REPORTER_RATE`] (bursts of [`REPORTER_BURST`]), at every hop: a node forging reports can
    /// keep a link no busier than that, wherever it sends them. An honest relay reports once per
    /// source per 500 ms, and only while a path through it is broken.
    pub(super) fn report_allowed(
        &mut self,
        now: Instant,
        from: PublicKey,
        reporter: PublicKey,
    ) -> bool {
        if self.reporter_limits.len() >= 1024 && !self.reporter_limits.contains_key(&reporter) {
            self.reporter_limits.clear();
        }
        let per_reporter = self
            .reporter_limits
            .entry(reporter)
            .or_insert_with(|| TokenBucket::new(REPORTER_RATE, REPORTER_BURST, now))
            .take(now);
        per_reporter
            && self
                .report_limits
                .entry(from)
                .or_insert_with(|| TokenBucket::new(REPORT_RATE, REPORT_BURST, now))
                .take(now)
    }

    /// Handles a lookup from a peer: answers it if it is for us, passes it on into matching subtrees.
    pub(super) fn handle_lookup(&mut self, now: Instant, from: PublicKey, lookup: Lookup) {
        if !self.tree.is_tree_peer(&from) {
            return;
        }
        let (rate, burst) = lookup_budget(self.subtrees.subtree_estimate(&from));
        let bucket = self
            .lookup_limits
            .entry(from)
            .or_insert_with(|| TokenBucket::new(rate, burst, now));
        bucket.set_rate(now, rate, burst);
        if !bucket.take(now) {
            self.count_drop(DropReason::RateLimited);
            return;
        }
        self.stats.lookups_handled += 1;
        if lookup.target == self.own_target {
            let coords = self.tree.coords().clone();
            let signed = LookupReply::signed_bytes(&lookup.source, &self.me, lookup.nonce, &coords);
            // `send_routed` puts these same coordinates in the packet as its source path.
            let reply = LookupReply {
                nonce: lookup.nonce,
                signature: self.key.sign(&signed),
            };
            let mut payload = Vec::new();
            reply.encode(&mut payload);
            self.send_routed(
                now,
                lookup.source,
                lookup.source_path.clone(),
                KIND_LOOKUP_REPLY,
                &payload,
            );
        }
        self.forward_lookup(now, lookup, Some(from));
    }

    /// Handles a lookup reply delivered to us.
    pub(super) fn handle_lookup_reply(&mut self, now: Instant, traffic: &Traffic<'_>) {
        let Ok(reply) = LookupReply::parse(traffic.payload) else {
            self.count_drop(DropReason::MalformedFrame);
            return;
        };
        let Some(target) = self.paths.target_for_nonce(reply.nonce) else {
            return;
        };
        let responder = traffic.src_key;
        let coords = &traffic.src_path;
        let signed = LookupReply::signed_bytes(&self.me, &responder, reply.nonce, coords);
        if *PartialKey::canonical(&responder).as_padded_key() != target
            || !responder.verify(&signed, &reply.signature)
        {
            self.count_drop(DropReason::BadLookupReply);
            return;
        }
        for frame in self.paths.found(now, target, responder, coords.clone()) {
            self.send_in_session(now, responder, coords.clone(), &[&frame]);
        }
    }

    /// Tells the source of a packet we cannot forward that its path is broken.
    pub(super) fn report_broken(&mut self, now: Instant, traffic: &Traffic<'_>) {
        if traffic.src_key == self.me {
            self.paths.broken(&traffic.dest_key);
            return;
        }
        let last = self.path_broken_sent.get(&traffic.src_key);
        if last.is_some_and(|t| now.saturating_since(*t) < PATH_BROKEN_INTERVAL) {
            return;
        }
        if self.path_broken_sent.len() >= 1024 {
            self.path_broken_sent.clear();
        }
        self.path_broken_sent.insert(traffic.src_key, now);
        let payload = *traffic.dest_key.as_bytes();
        self.send_routed(
            now,
            traffic.src_key,
            traffic.src_path.clone(),
            KIND_PATH_BROKEN,
            &payload,
        );
    }

    /// Handles a broken-path report delivered to us: look the destination up again.
    pub(super) fn handle_path_broken(&mut self, traffic: &Traffic<'_>) {
        if let Ok(key) = <[u8; 32]>::try_from(traffic.payload) {
            self.stats.paths_broken += 1;
            self.paths.broken(&PublicKey::from_bytes(key));
        }
    }

    /// Handles a child's subtree delta.
    pub(super) fn handle_subtree_delta(
        &mut self,
        now: Instant,
        from: PublicKey,
        delta: &SubtreeDelta,
    ) {
        let ack = self.subtrees.handle_delta(now, from, delta);
        self.subtrees_dirty = true;
        let mut frame = Vec::new();
        Message::SubtreeAck(ack).encode(&mut frame);
        self.send_frame(now, &from, &frame, None);
    }

    /// Returns true if a subtree delta retransmission, or a child's change that waited, is due.
    pub(super) fn subtree_retransmit_due(&self) -> bool {
        let links = &self.links;
        let rto = |p: &PublicKey| links.rto(p);
        self.subtrees
            .next_retransmit(rto)
            .is_some_and(|t| t <= self.now)
    }

    /// Our tree peers (parent and children) among the linked peers.
    pub(super) fn tree_peers(&self) -> Vec<PublicKey> {
        self.links
            .peers
            .keys()
            .filter(|p| self.tree.is_tree_peer(p))
            .copied()
            .collect()
    }

    /// Queues subtree deltas and retransmissions for the current parent; `tree_peers` as
    /// [`Node::tree_peers`] gives them.
    pub(super) fn update_subtrees(
        &mut self,
        tree_peers: &[PublicKey],
    ) -> Vec<(PublicKey, Message<'static>)> {
        let peers: Vec<PublicKey> = self.links.peers.keys().copied().collect();
        let parent = Some(self.tree.parent()).filter(|p| *p != self.me);
        let links = &self.links;
        let rto = |p: &PublicKey| links.rto(p);
        self.subtrees.update(
            self.now,
            self.tree.coords(),
            &peers,
            tree_peers,
            parent,
            rto,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::NodeKey;
    use crate::core::node::NodeConfig;
    use std::time::Duration;

    /// One reporter's reports pass a hop in a burst of `REPORTER_BURST`, then one per
    /// 1 / `REPORTER_RATE` s; one peer's, from any reporters, in a burst of `REPORT_BURST`.
    #[test]
    fn reports_pass_within_the_reporters_and_the_peers_budgets() {
        let t0 = Instant::ZERO;
        let mut node = Node::new(
            NodeKey::from_seed(&[1; 32]),
            NodeConfig {
                seq_base: 1,
                group_password: None,
                session_aes_gcm: false,
            },
            [1; 32],
            t0,
        );
        let key = |n: u8| NodeKey::from_seed(&[n; 32]).public_key();
        let passed = |node: &mut Node, now: Instant, peer: u8, reporter: u8, n: usize| {
            (0..n)
                .filter(|_| node.report_allowed(now, key(peer), key(reporter)))
                .count()
        };
        assert_eq!(passed(&mut node, t0, 2, 9, 100), REPORTER_BURST as usize);
        let refill = Duration::from_secs_f64(1.0 / REPORTER_RATE);
        assert_eq!(passed(&mut node, t0 + refill / 2, 2, 9, 10), 0);
        assert_eq!(passed(&mut node, t0 + refill, 2, 9, 10), 1);
        // Other reporters through another peer: that peer's budget is what stops them.
        let mut many = 0;
        for reporter in 10..60 {
            many += passed(&mut node, t0 + refill, 3, reporter, 1);
        }
        assert_eq!(many, REPORT_BURST as usize);
    }

    /// A leaf gets the old 20 a second; a child of 3 000 nodes 320; a child at the cap of tags (a
    /// liar, or a subtree past a quarter million nodes) no more than the cap.
    #[test]
    fn the_lookup_budget_grows_with_the_subtree_up_to_a_cap() {
        let (rate, burst) = lookup_budget(1.0);
        assert!(
            (20.0..20.2).contains(&rate) && burst == 2.0 * rate,
            "{rate}"
        );
        let (rate, _) = lookup_budget(3000.0);
        assert!((319.9..320.1).contains(&rate), "{rate}");
        let liar = lookup_budget(crate::core::lookup::subtrees::MAX_PEER_TAGS as f64).0;
        assert_eq!(liar, LOOKUP_RATE_MAX);
        assert_eq!(lookup_budget(f64::INFINITY).0, LOOKUP_RATE_MAX);
    }
}
