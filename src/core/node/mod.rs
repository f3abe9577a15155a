//! The node: one router's whole protocol state behind a sans-IO API in the style of quinn-proto.
//!
//! Feed it with `handle_*` calls (each takes `now`), then drain `poll_transmit`, `poll_deliver` and
//! `poll_event`, and call [`Node::handle_timeout`] when [`Node::poll_timeout`] says so. Every `handle_*`
//! call can produce work for every `poll_*` method.

mod demux;
mod forward;
mod links;
mod lookup;
mod neighbors;
mod receive;
mod session;
mod trace;
mod txqueue;

use std::collections::VecDeque;

pub use self::demux::{
    Arrival, EndpointId, INBOUND_SETUP_TIMEOUT, MAX_UNCONFIRMED_INBOUND, Remote,
};
use self::forward::NextHop;
pub use self::links::LinkId;
use self::links::LinkTable;
pub use self::trace::{ANSWERS_PER_SECOND, MAX_TRACES, TRACE_TTL, TraceStart};
use crate::core::address::PartialKey;
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::link::{Link, LinkDrop, LinkEvent, LinkParams};
use crate::core::lookup::paths::Paths;
use crate::core::lookup::subtrees::Subtrees;
use crate::core::lookup::tags::tag;
use crate::core::password::PasswordKey;
use crate::core::rate::TokenBucket;
use crate::core::rng::Rng;
use crate::core::time::{Instant, earliest};
use crate::core::tree::{Coords, Tree, TreeEvent};
use crate::core::wire::datagram::{DATA_HEADER_LEN, TAG_LEN};
use crate::core::wire::inner::{Message, encode_traffic_prefix};
use crate::core::wire::traffic::{
    KIND_DATA, KIND_LOOKUP_REPLY, KIND_PATH_BROKEN, KIND_SESSION, KIND_TRACE, KIND_TRACE_REPLY,
    Traffic,
};

/// Settings of a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Lower bound for the node's tree sequence numbers; must exceed any used before with this key.
    /// The daemon passes wall-clock microseconds; the simulator passes its virtual time.
    pub seq_base: u64,
    /// Closed overlay: only nodes that know this password can open sessions with us (they still route
    /// for each other). Stretched once by the caller (`core::password`).
    pub group_password: Option<PasswordKey>,
    /// Offer AES-256-GCM for end-to-end sessions: set when this CPU has AES instructions. Two such
    /// nodes then encrypt their traffic with it (see [`crate::core::link::cipher`]).
    pub session_aes_gcm: bool,
}

/// A datagram to send on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The link to send it on.
    pub link: LinkId,
    /// The datagram.
    pub payload: Vec<u8>,
}

/// A payload that reached this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The node that sent it.
    pub source: PublicKey,
    /// What the payload is.
    pub kind: DeliveryKind,
    /// The payload: a slice of the frame it came in where that frame was joined from fragments (a
    /// super-packet, shared rather than copied), else a copy.
    pub payload: bytes::Bytes,
}

/// What a delivered payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// An IPv6 packet that came through an end-to-end session and passed the source and destination
    /// checks: for the TUN device.
    Packet,
    /// A host's TCP super-packet (see `core::offload::passthrough`) that came through an end-to-end
    /// session and passed the same checks as a packet: for the TUN device as one GSO write of
    /// `mss`-byte segments.
    TcpSuperPacket {
        /// Segment payload size.
        mss: u16,
        /// ECN super-packet.
        ecn: bool,
    },
    /// A message for the built-in service on this port, through an end-to-end session.
    Service(u16),
    /// An unencrypted routing probe (`Node::send_traffic`): for tests and diagnostics, never for TUN.
    Probe,
}

/// Something worth telling the operator or the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A link authenticated its peer.
    LinkUp(LinkId, PublicKey),
    /// A link stopped working.
    LinkDown(LinkId, PublicKey),
    /// The tree root changed (`None`: detached, waiting for a root).
    RootChanged(Option<PublicKey>),
    /// The node closed a link by itself: an inbound link that did not come up in time or made room
    /// for a newer one, or a link replaced by [`Node::open_link_to`]. Its handle is gone.
    LinkClosed(LinkId),
    /// A node on the way of a probe this node sent ([`Node::trace`]) answered (this node itself
    /// first, with no round trip); the reply's signature was checked.
    TraceHop {
        /// The probe.
        id: u64,
        /// The node that answered.
        hop: PublicKey,
        /// What it did with the probe.
        outcome: crate::core::wire::trace::TraceOutcome,
        /// From sending the probe to its reply.
        rtt: std::time::Duration,
    },
}

/// Why a packet was dropped, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A link datagram failed a check.
    Link(LinkDrop),
    /// A handshake initiation refused before its signature was checked.
    Admission(crate::core::admission::Refusal),
    /// An initiation from an address where no link may be made.
    InboundRefused,
    /// A frame's plaintext did not parse.
    MalformedFrame,
    /// A tree announcement failed verification.
    BadAnnounce,
    /// No peer is closer to the destination.
    NoRoute,
    /// A local packet that is not IPv6.
    NotIpv6,
    /// A local packet for an address outside `200::/7`.
    NotOverlay,
    /// Too many packets already wait for lookups.
    LookupQueueFull,
    /// Packets waited too long for a lookup.
    LookupTimeout,
    /// A lookup reply with a bad signature or for the wrong key.
    BadLookupReply,
    /// A peer sent lookups faster than allowed.
    RateLimited,
    /// A broken-path report over its peer's or its reporter's budget (see `Node::report_allowed`).
    ReportLimited,
    /// A trace probe beyond this node's answer budget.
    TraceLimited,
    /// A packet or service message outside a session.
    NotInSession,
    /// A trace reply for no probe of ours, from another node than it names, or badly signed.
    BadTraceReply,
    /// A session message that failed a check.
    Session(crate::core::session::SessionDrop),
    /// A packet from a session whose IPv6 source is not the sender's address or /64, or whose
    /// destination is not ours.
    InnerAddress,
}

/// Counters of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Data packets forwarded for others.
    pub forwarded: u64,
    /// Packets delivered to us.
    pub delivered: u64,
    /// Lookups started.
    pub lookups_sent: u64,
    /// Lookups received from tree peers and taken (within their rate limit): what lookups cost the
    /// mesh, counted at every node they reach.
    pub lookups_handled: u64,
    /// Broken-path reports received.
    pub paths_broken: u64,
    /// Bytes of lookups and lookup replies this node sent or passed on (the messages as encoded,
    /// without link framing): what finding destinations costs the mesh.
    pub lookup_bytes: u64,
    /// Notices of our new coordinates sent to session peers.
    pub moved_notices_sent: u64,
    /// Session peers' notices of their new coordinates taken for a path we hold.
    pub moved_notices_taken: u64,
    /// Datagrams dropped because a link's transmit queue was full.
    pub queue_drops: u64,
    /// Drops by reason.
    pub drops: std::collections::BTreeMap<String, u64>,
}

/// One router.
pub struct Node {
    key: NodeKey,
    me: PublicKey,
    rng: Rng,
    links: LinkTable,
    tree: Tree,
    transmits: txqueue::TxQueue,
    deliveries: VecDeque<Delivery>,
    events: VecDeque<Event>,
    stats: NodeStats,
    /// The latest `now` passed in; deadlines computed by `poll_timeout` are relative to it.
    now: Instant,
    subtrees: Subtrees,
    paths: Paths,
    /// Our canonical partial key, which lookups for us carry.
    own_target: [u8; 32],
    /// Our node address (derived once: the derivation walks the key bit by bit).
    own_address: std::net::Ipv6Addr,
    lookup_limits: std::collections::HashMap<PublicKey, TokenBucket>,
    /// Broken-path reports each peer may still hand us (`lookup::report_allowed`).
    report_limits: std::collections::HashMap<PublicKey, TokenBucket>,
    /// Broken-path reports each reporter may still send through us (at most 1024 reporters).
    reporter_limits: std::collections::HashMap<PublicKey, TokenBucket>,
    /// A subtree delta or acknowledgement arrived or peers changed since subtree sets were last brought up to date.
    subtrees_dirty: bool,
    /// The tree peers as of the last subtree update.
    subtree_peers: Vec<PublicKey>,
    neighbors: neighbors::NeighborLists,
    /// Wall-clock microseconds at start (the configured `seq_base`): stamps link initiations.
    clock_base: u64,
    sessions: crate::core::session::Sessions,
    /// Our set of peers changed since our neighbour list was last sent.
    neighbors_dirty: bool,
    path_broken_sent: std::collections::HashMap<PublicKey, Instant>,
    /// When to tell our session peers that we moved ([`session::MOVED_NOTICE_WITHIN`]).
    move_notices: session::MoveNotices,
    /// Packets and service messages for a neighbour's own address go straight over the link to it,
    /// not through an end-to-end session inside the link: the link already is an authenticated,
    /// encrypted channel with forward secrecy between exactly those two keys, so a session would
    /// only encrypt the same bytes a second time. Off in a closed overlay (a group password), whose
    /// sessions are what prove the password.
    direct_to_peers: bool,
    /// Links by the address they talk to, and inbound links not yet up.
    demux: demux::Demux,
    /// What every link initiation passes before its signature is checked.
    gate: crate::core::admission::HandshakeGate,
    /// Probes this node sent and takes replies to, by id.
    traces: std::collections::HashMap<u64, trace::SentProbe>,
    /// Probes this node may still answer.
    trace_budget: TokenBucket,
}

impl Node {
    /// Creates a node with no links.
    pub fn new(key: NodeKey, config: NodeConfig, seed: [u8; 32], now: Instant) -> Self {
        let mut rng = Rng::from_seed(seed);
        let tree = Tree::new(&key, config.seq_base, now, &mut rng);
        let me = key.public_key();
        let own_target = *PartialKey::canonical(&me).as_padded_key();
        let mut node = Self {
            key,
            me,
            rng,
            links: LinkTable::default(),
            tree,
            transmits: txqueue::TxQueue::default(),
            deliveries: VecDeque::new(),
            events: VecDeque::new(),
            stats: NodeStats::default(),
            now,
            subtrees: Subtrees::new(&own_target, config.seq_base),
            paths: Paths::default(),
            own_target,
            own_address: crate::core::address::node_address(&me),
            lookup_limits: Default::default(),
            report_limits: Default::default(),
            reporter_limits: Default::default(),
            subtrees_dirty: false,
            subtree_peers: Vec::new(),
            neighbors: neighbors::NeighborLists::new(config.seq_base),
            clock_base: config.seq_base,
            sessions: crate::core::session::Sessions::new(
                config.group_password.clone(),
                config.seq_base,
                config.session_aes_gcm,
                now,
            ),
            neighbors_dirty: false,
            path_broken_sent: Default::default(),
            move_notices: session::MoveNotices::default(),
            direct_to_peers: config
                .group_password
                .as_ref()
                .is_none_or(PasswordKey::is_none),
            demux: Default::default(),
            gate: crate::core::admission::HandshakeGate::new(now),
            traces: Default::default(),
            trace_budget: TokenBucket::new(
                trace::ANSWERS_PER_SECOND,
                trace::ANSWERS_PER_SECOND,
                now,
            ),
        };
        node.drain_tree();
        node
    }

    /// Returns this node's public key.
    pub fn public_key(&self) -> PublicKey {
        self.me
    }

    /// Mixes fresh entropy into the node's random stream (see [`Rng::reseed`]). The daemon calls it
    /// with OS randomness at start and every [`crate::core::rng::RESEED_INTERVAL`]; the core itself
    /// draws none (it is sans-IO), and the same `extra` replays the same way in the simulator.
    pub fn reseed(&mut self, extra: &[u8; 32]) {
        self.rng.reseed(extra);
    }

    /// Builds a signed discovery beacon advertising our links on UDP `port` (0 on raw Ethernet); `stamp`
    /// is the caller's clock in microseconds; `password` is the discovery rule's, stretched.
    pub fn beacon(
        &self,
        flags: u8,
        port: u16,
        stamp: u64,
        password: Option<&PasswordKey>,
    ) -> Vec<u8> {
        crate::core::wire::beacon::Beacon::encode(&self.key, flags, port, stamp, password)
    }

    /// Returns the spanning tree state.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The subtree set we told our parent `peer` (the simulator's adversary builds its lies on it).
    pub fn sent_subtree(&self, peer: &PublicKey) -> Option<Vec<u32>> {
        self.subtrees.sent_set(peer).map(|s| s.as_slice().to_vec())
    }

    /// How many tags our subtree set holds.
    pub fn subtree_len(&self) -> usize {
        self.subtrees.subtree_len()
    }

    /// Drops the node one part at a time, calling `after_each` with the part's name after each, so
    /// that a benchmark counting its allocator's live bytes can tell what each part held (the scale
    /// benchmark's memory by structure). Every field is named here: a new one cannot be missed.
    pub fn drop_parts(self, after_each: &mut dyn FnMut(&'static str)) {
        let Self {
            key,
            me,
            rng,
            links,
            tree,
            transmits,
            deliveries,
            events,
            stats,
            now,
            subtrees,
            paths,
            own_target,
            own_address,
            lookup_limits,
            report_limits,
            reporter_limits,
            subtrees_dirty,
            subtree_peers,
            neighbors,
            clock_base,
            sessions,
            neighbors_dirty,
            path_broken_sent,
            move_notices,
            direct_to_peers,
            demux,
            gate,
            traces,
            trace_budget,
        } = self;
        let _ = (me, now, own_target, own_address, subtrees_dirty);
        let _ = (clock_base, neighbors_dirty, direct_to_peers);
        drop(links);
        after_each("links (keys, buffers, liveness)");
        tree.drop_parts(after_each);
        drop(subtrees);
        drop(subtree_peers);
        after_each("subtree sets");
        drop(paths);
        drop(path_broken_sent);
        after_each("paths to destinations");
        drop(sessions);
        drop(move_notices);
        after_each("sessions");
        drop(neighbors);
        after_each("neighbour lists");
        drop((lookup_limits, report_limits, reporter_limits, trace_budget));
        after_each("rate limits");
        drop((transmits, deliveries, events, traces));
        after_each("queues");
        drop((demux, gate));
        after_each("demux and admission");
        drop((key, rng, stats));
        after_each("key, counters");
    }

    /// Heap bytes of the subtree sets we hold (for memory reports).
    pub fn subtree_heap_bytes(&self) -> usize {
        self.subtrees.heap_bytes()
    }

    /// Returns true if a lookup for the node with public key `target_key` would go to `peer`
    /// (diagnostics for tests).
    pub fn filter_matches(&self, peer: &PublicKey, target_key: &PublicKey) -> bool {
        let target = tag(PartialKey::canonical(target_key).as_padded_key());
        self.subtrees.matches(peer, target)
    }

    /// Returns the counters.
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            queue_drops: self.transmits.dropped,
            ..self.stats.clone()
        }
    }

    /// Returns a link.
    pub fn link(&self, id: LinkId) -> Option<&Link> {
        self.links.links.get(&id)
    }

    /// Returns the counters of our session with `peer`, if there is one.
    pub fn session_stats(&self, peer: &PublicKey) -> Option<crate::core::link::LinkStats> {
        self.sessions.stats(peer)
    }

    /// Returns the end-to-end sessions (for the operator's view).
    pub fn sessions(&self) -> &crate::core::session::Sessions {
        &self.sessions
    }

    /// Returns the destinations found by lookups.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Returns every link with its handle.
    pub fn links(&self) -> impl Iterator<Item = (LinkId, &Link)> {
        self.links.links.iter().map(|(id, l)| (*id, l))
    }

    /// Returns the peers that have at least one link up.
    pub fn peers(&self) -> impl Iterator<Item = &PublicKey> {
        self.links.peers.keys()
    }

    /// Adds a link; an initiating link starts its handshake at the next timeout.
    pub fn open_link(&mut self, now: Instant, params: LinkParams) -> LinkId {
        self.now = now;
        self.links.insert(Link::new(params, now, self.clock_base))
    }

    /// Removes a link for good (its socket or interface is gone).
    pub fn close_link(&mut self, now: Instant, id: LinkId) {
        self.now = now;
        if let Some(link) = self.links.links.remove(&id)
            && let Some(peer) = link.peer().filter(|_| link.is_up())
        {
            self.on_link_down(id, peer);
        }
        self.transmits.forget_link(id);
        self.demux.forget(id);
        self.drain_tree();
    }

    /// Sends encoded messages `frame` as one authenticated frame on the best link to `peer`, whatever
    /// they say. The simulator's adversary uses it to make a member misbehave; it gives a caller no
    /// more than a modified build of this node could do.
    pub fn send_raw_frame(&mut self, now: Instant, peer: &PublicKey, frame: &[u8]) {
        self.now = now;
        self.send_frame(now, peer, frame, None);
    }

    /// Makes every link report echo delays `extra_ms` longer than they were, so that peers measure a
    /// shorter round trip to us than there is (the simulator's adversary; a modified build could do
    /// the same).
    pub fn overstate_echo_delay(&mut self, extra_ms: u16) {
        for link in self.links.links.values_mut() {
            link.overstate_echo_delay(extra_ms);
        }
    }

    /// Routes a message of traffic `kind` with `payload` to `dest` at `dest_path`, unencrypted (the
    /// simulator's adversary: forged broken-path reports).
    pub fn send_raw_routed(
        &mut self,
        now: Instant,
        dest: PublicKey,
        dest_path: Coords,
        kind: u8,
        payload: &[u8],
    ) {
        self.now = now;
        self.send_routed(now, dest, dest_path, kind, payload);
        self.drain_tree();
    }

    /// Sends `payload` to `dest` at coordinates `dest_path`, greedily through the tree.
    pub fn send_traffic(
        &mut self,
        now: Instant,
        dest: PublicKey,
        dest_path: Coords,
        payload: &[u8],
    ) {
        self.send_raw_routed(now, dest, dest_path, KIND_DATA, payload);
    }

    fn send_routed(
        &mut self,
        now: Instant,
        dest: PublicKey,
        dest_path: Coords,
        kind: u8,
        payload: &[u8],
    ) {
        let traffic = Traffic {
            dest_path,
            src_path: self.tree.coords().clone(),
            dest_key: dest,
            src_key: self.me,
            watermark: u64::MAX,
            kind,
            payload,
        };
        self.route(now, traffic);
    }

    fn route(&mut self, now: Instant, traffic: Traffic<'_>) {
        let hop = self.next_hop(&traffic);
        if traffic.kind == KIND_TRACE {
            self.answer_trace(now, &traffic, hop);
        }
        self.act(now, traffic, hop);
    }

    /// Where `traffic` goes from here.
    fn next_hop(&self, traffic: &Traffic<'_>) -> NextHop {
        let peers = self.links.peers.keys().filter_map(|p| {
            let link = self.links.best_link(p)?;
            let cost = self.links.links[&link]
                .srtt()
                .map_or(1000, |d| (d.as_millis() as u64).max(1));
            Some((*p, cost))
        });
        let via = self
            .neighbors
            .via(&traffic.dest_key, self.links.peers.keys());
        forward::next_hop(
            &self.tree,
            &self.me,
            peers,
            &traffic.dest_key,
            &traffic.dest_path,
            traffic.watermark,
            via,
        )
    }

    /// Sends `traffic` on to `hop`, or takes it if it is for us.
    fn act(&mut self, now: Instant, mut traffic: Traffic<'_>, hop: NextHop) {
        match hop {
            NextHop::Deliver => match traffic.kind {
                KIND_DATA | KIND_SESSION => {
                    // Traffic from here to here (received traffic takes `handle_traffic`): rare, so
                    // its payload is copied to be decrypted.
                    let mut payload = traffic.payload.to_vec();
                    let mut pending = Vec::new();
                    let (src, kind) = (traffic.src_key, traffic.kind);
                    let src_path = std::mem::take(&mut traffic.src_path);
                    self.take_traffic(now, src, src_path, kind, &mut payload, 0, &mut pending);
                    self.deliver_copies(&payload, pending);
                }
                KIND_LOOKUP_REPLY => self.handle_lookup_reply(now, &traffic),
                KIND_PATH_BROKEN => self.handle_path_broken(&traffic),
                KIND_TRACE_REPLY => self.handle_trace_reply(now, &traffic),
                // Answered on arrival (`answer_trace`).
                KIND_TRACE => {}
                _ => self.count_drop(DropReason::MalformedFrame),
            },
            NextHop::Peer { peer, watermark } => {
                if traffic.src_key != self.me && matches!(traffic.kind, KIND_DATA | KIND_SESSION) {
                    self.stats.forwarded += 1;
                }
                traffic.watermark = watermark;
                let flow = txqueue::flow_of(&traffic.src_key, &traffic.dest_key);
                let mut prefix = Vec::with_capacity(160);
                encode_traffic_prefix(&traffic, &mut prefix);
                // Only data makes the link "carry traffic" (and probe fast when the peer falls
                // silent): a one-off reply or report needs no quick failover, and forged reports
                // must not buy a stream of probes on every link they cross.
                let data = matches!(traffic.kind, KIND_DATA | KIND_SESSION);
                if traffic.kind == KIND_LOOKUP_REPLY {
                    self.stats.lookup_bytes += (prefix.len() + traffic.payload.len()) as u64;
                }
                self.send_frame_flow(now, &peer, &[&prefix, traffic.payload], flow, data);
            }
            NextHop::Stuck => {
                self.count_drop(DropReason::NoRoute);
                if matches!(traffic.kind, KIND_DATA | KIND_SESSION) {
                    self.report_broken(now, &traffic);
                }
            }
        }
    }

    fn send_frame(&mut self, now: Instant, peer: &PublicKey, frame: &[u8], flow: Option<u64>) {
        self.send_frame_parts(now, peer, &[frame], flow);
    }

    /// Sends a frame given as consecutive parts on the best link to `peer`.
    fn send_frame_parts(
        &mut self,
        now: Instant,
        peer: &PublicKey,
        parts: &[&[u8]],
        flow: Option<u64>,
    ) {
        match flow {
            Some(flow) => self.send_frame_flow(now, peer, parts, flow, true),
            None => self.send_frame_flow(now, peer, parts, txqueue::CONTROL_FLOW, false),
        }
    }

    /// Sends a frame in queue `flow`; `traffic` says whether it counts as carrying traffic for the
    /// link's liveness.
    fn send_frame_flow(
        &mut self,
        now: Instant,
        peer: &PublicKey,
        parts: &[&[u8]],
        flow: u64,
        traffic: bool,
    ) {
        let Some(id) = self.links.best_link(peer) else {
            return;
        };
        if let Some(link) = self.links.links.get_mut(&id) {
            link.send_parts(now, parts, traffic);
        }
        self.drain_link_flow(now, id, flow);
    }

    /// Runs every timer that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let due: Vec<LinkId> = self
            .links
            .links
            .iter()
            .filter(|(_, l)| l.poll_timeout(now).is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(link) = self.links.links.get_mut(&id) {
                link.handle_timeout(now, &self.key, &mut self.rng);
            }
            self.drain_link(now, id);
        }
        if self.demux.next_expiry().is_some_and(|t| t <= now) {
            self.expire_unconfirmed(now);
        }
        if self.tree.poll_timeout().is_some_and(|t| t <= now) {
            self.tree.handle_timeout(now, &self.key, &mut self.rng);
        }
        if self.sessions.poll_timeout(now).is_some_and(|t| t <= now) {
            self.session_timeouts(now);
        }
        if self.paths.next_expiry().is_some_and(|t| t <= now) {
            for _ in 0..self.paths.expire(now) {
                self.count_drop(DropReason::LookupTimeout);
            }
            let rng = &mut self.rng;
            for (target, nonce) in self.paths.retries(now, || rng.u64()) {
                self.start_lookup(now, nonce, target);
            }
        }
        self.drain_tree();
    }

    /// Returns when [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.links
            .links
            .values()
            .filter_map(|l| l.poll_timeout(self.now))
            .chain(self.paths.next_expiry())
            .chain(self.demux.next_expiry())
            .chain(self.sessions.poll_timeout(self.now))
            .chain(self.subtrees.next_retransmit(|p| self.links.rto(p)))
            .chain(self.neighbors.next_retransmit(|p| self.links.rto(p)))
            .chain(self.move_notices.next_due())
            .fold(self.tree.poll_timeout(), |acc, t| earliest(acc, Some(t)))
    }

    /// Returns the next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits
            .pop()
            .map(|(link, payload)| Transmit { link, payload })
    }

    /// Gives back the payload of a [`Transmit`] once sent, to be reused for a later datagram of the
    /// same link (saves an allocation per datagram).
    pub fn recycle(&mut self, link: LinkId, payload: Vec<u8>) {
        if let Some(link) = self.links.links.get_mut(&link) {
            link.recycle(payload);
        }
    }

    /// Returns the next payload delivered to this node.
    pub fn poll_deliver(&mut self) -> Option<Delivery> {
        self.deliveries.pop_front()
    }

    /// Returns the next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn count_drop(&mut self, reason: DropReason) {
        *self.stats.drops.entry(format!("{reason:?}")).or_default() += 1;
    }

    /// Moves a link's datagrams to the transmit queue and acts on its events.
    /// Returns true if the link had events (up, down).
    fn drain_link(&mut self, now: Instant, id: LinkId) -> bool {
        self.drain_link_flow(now, id, txqueue::CONTROL_FLOW)
    }

    /// Moves a link's datagrams, all of one flow, to the transmit queue and acts on its events;
    /// returns true if there were events.
    fn drain_link_flow(&mut self, now: Instant, id: LinkId, flow: u64) -> bool {
        let Some(link) = self.links.links.get_mut(&id) else {
            return false;
        };
        while let Some(payload) = link.poll_datagram() {
            self.transmits.push(id, flow, payload);
        }
        let mut events = Vec::new();
        while let Some(e) = link.poll_event() {
            events.push(e);
        }
        let (srtt, rto) = (link.srtt(), link.rto());
        let had_events = !events.is_empty();
        for event in events {
            match event {
                LinkEvent::Up(peer) => {
                    self.demux.confirmed(id);
                    self.events.push_back(Event::LinkUp(id, peer));
                    if self.links.link_up(id, peer) {
                        self.neighbors_dirty = true;
                        let cost = srtt.map(|d| d.as_millis() as u64);
                        self.tree.add_peer(now, peer, cost, rto);
                    } else {
                        // Another link to a peer we know: perhaps the same node restarted and
                        // dialled again before its old link timed out.
                        self.resync_peer(&peer);
                    }
                }
                LinkEvent::Down(peer) => self.on_link_down(id, peer),
            }
        }
        had_events
    }

    /// Forgets what `peer` acknowledged, so that the tree, subtree set and neighbour list are sent to
    /// it again: a restarted peer has lost them. For a peer that did not restart this costs one
    /// round of (already acknowledged) messages.
    fn resync_peer(&mut self, peer: &PublicKey) {
        self.tree.resync_peer(peer);
        self.subtrees.forget_sent(peer);
        self.neighbors.forget_sent(peer);
        self.subtrees_dirty = true;
        self.neighbors_dirty = true;
    }

    fn on_link_down(&mut self, id: LinkId, peer: PublicKey) {
        self.subtrees_dirty = true;
        self.neighbors_dirty = true;
        self.events.push_back(Event::LinkDown(id, peer));
        if self.links.link_down(id, &peer) {
            self.tree.remove_peer(self.now, &peer);
            self.lookup_limits.remove(&peer);
            self.report_limits.remove(&peer);
        }
    }

    /// Packs the tree's queued messages into frames per peer and sends them; forwards tree events.
    fn drain_tree(&mut self) {
        let tree_changed = self.tree.settle(self.now, &self.key, &mut self.rng);
        let mut per_peer: std::collections::BTreeMap<PublicKey, Vec<Message<'static>>> =
            Default::default();
        while let Some((peer, message)) = self.tree.poll_message() {
            per_peer.entry(peer).or_default().push(message);
        }
        let links = &self.links;
        let neighbors_due = self
            .neighbors
            .next_retransmit(|p| links.rto(p))
            .is_some_and(|t| t <= self.now);
        if std::mem::take(&mut self.neighbors_dirty) || neighbors_due {
            let peers: Vec<PublicKey> = links.peers.keys().copied().collect();
            for (peer, message) in self
                .neighbors
                .update(self.now, &self.key, &peers, |p| links.rto(p))
            {
                per_peer.entry(peer).or_default().push(message);
            }
        }
        // A child is known as one when its announcement naming us arrives, which changes nothing we
        // send (so not `tree_changed`): its set then starts to count.
        let tree_peers = self.tree_peers();
        if tree_changed
            || tree_peers != self.subtree_peers
            || std::mem::take(&mut self.subtrees_dirty)
            || self.subtree_retransmit_due()
        {
            for (peer, message) in self.update_subtrees(&tree_peers) {
                per_peer.entry(peer).or_default().push(message);
            }
            self.subtree_peers = tree_peers;
        }
        while let Some(TreeEvent::RootChanged(root)) = self.tree.poll_event() {
            if let Some(root) = root {
                self.paths.note_root(root);
            }
            self.events.push_back(Event::RootChanged(root));
        }
        for (peer, messages) in per_peer {
            let Some(id) = self.links.best_link(&peer) else {
                continue;
            };
            let budget = self.links.links[&id]
                .params()
                .mtu
                .saturating_sub(DATA_HEADER_LEN + TAG_LEN)
                .max(256);
            let mut frame = Vec::new();
            for message in messages {
                let mut encoded = Vec::new();
                message.encode(&mut encoded);
                if !frame.is_empty() && frame.len() + encoded.len() > budget {
                    self.send_control(id, std::mem::take(&mut frame));
                }
                frame.extend_from_slice(&encoded);
            }
            if !frame.is_empty() {
                self.send_control(id, frame);
            }
        }
        self.tell_moved(self.now);
    }

    fn send_control(&mut self, id: LinkId, frame: Vec<u8>) {
        let now = self.now;
        let Some(link) = self.links.links.get_mut(&id) else {
            return;
        };
        link.send(now, &frame, false);
        while let Some(payload) = link.poll_datagram() {
            self.transmits.push(id, txqueue::CONTROL_FLOW, payload);
        }
    }
}
