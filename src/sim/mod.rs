//! A deterministic network simulator for whole meshes.
//!
//! N [`Node`]s, a virtual clock and a seeded RNG; emulated links with latency, jitter, loss, duplication,
//! reordering and an MTU; link cut and restore, partitions, node crash and restart with the same key.
//! Time jumps from event to event, so simulated minutes take milliseconds when nothing happens, and the
//! same seed always gives the same run, on any number of threads (`MESHROUTER_SIM_THREADS`; see
//! [`Sim::run_until`]). Set `MESHROUTER_SIM_TRACE=FILE` to write every event to a file.

mod adversary;
pub mod crdt;
mod node;
mod parallel;
mod service;
pub mod topology;
mod wire;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::Write;
use std::time::Duration;

pub use self::adversary::Misbehaviour;
pub use self::node::SimNode;
use self::node::{Network, Output, Pending};
pub use self::service::SimService;
use self::wire::Wire;
pub use self::wire::WireParams;
use crate::core::address::node_address;
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::link::LinkParams;
use crate::core::node::{Delivery, Node, NodeConfig};
use crate::core::rng::Rng;
use crate::core::time::{Instant, earliest};

/// Builds an IPv6 packet (next header 59, "no next header") from `src`'s to `dst`'s node address.
pub fn ipv6_packet(src: PublicKey, dst: PublicKey, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0u8; 40];
    packet[0] = 0x60;
    packet[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    packet[6] = 59;
    packet[7] = 64;
    packet[8..24].copy_from_slice(&node_address(&src).octets());
    packet[24..40].copy_from_slice(&node_address(&dst).octets());
    packet.extend_from_slice(payload);
    packet
}

/// One node's share of a window: its index, the node, its events in order, what they produced.
type NodeWork<'a> = (usize, &'a mut SimNode, Vec<(Instant, Pending)>, Output);

/// Events in a window below which its nodes are handled on one thread (starting threads costs more).
const PARALLEL_MIN_EVENTS: usize = 256;

/// The simulated network.
pub struct Sim {
    now: Instant,
    rng: Rng,
    seed: u64,
    nodes: Vec<SimNode>,
    wires: Vec<Wire>,
    queue: BinaryHeap<Reverse<(Instant, u64, Pending)>>,
    /// Adversaries' turns: (when, sequence, node). A turn reads every node, so it is taken alone,
    /// between windows.
    adversary_turns: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    sequence: u64,
    /// The shortest one-way latency of any wire: how far a window may reach (see `run_until`).
    min_latency: Duration,
    /// Threads that handle a window's nodes (`MESHROUTER_SIM_THREADS`; the machine's cores by
    /// default, at most 8).
    threads: usize,
    /// Events handled so far (datagrams, timers, adversary turns), for the scale benchmark.
    handled: u64,
    /// Windows handled on more than one thread.
    threaded_windows: u64,
    trace: Option<std::fs::File>,
}

impl Sim {
    /// Creates an empty network; everything random derives from `seed`.
    pub fn new(seed: u64) -> Self {
        crate::core::shared_verifications::enable();
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let trace =
            std::env::var_os("MESHROUTER_SIM_TRACE").and_then(|p| std::fs::File::create(p).ok());
        Self {
            now: Instant::ZERO,
            rng: Rng::from_seed(seed_bytes),
            seed,
            nodes: Vec::new(),
            wires: Vec::new(),
            queue: BinaryHeap::new(),
            adversary_turns: BinaryHeap::new(),
            sequence: 0,
            min_latency: Duration::MAX,
            threads: std::env::var("MESHROUTER_SIM_THREADS")
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(parallel::default_threads)
                .clamp(1, 8),
            handled: 0,
            threaded_windows: 0,
            trace,
        }
    }

    /// Returns the seed, for failure messages.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Returns the virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Returns how many nodes exist (crashed ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Returns true if there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Returns a node's simulation record.
    pub fn sim_node(&self, i: usize) -> &SimNode {
        &self.nodes[i]
    }

    /// Returns a running node.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].node.as_ref()
    }

    /// Returns a node's public key.
    pub fn key(&self, i: usize) -> PublicKey {
        self.nodes[i].key
    }

    fn log(&mut self, line: std::fmt::Arguments<'_>) {
        if let Some(f) = &mut self.trace {
            let _ = writeln!(f, "{:?} {}", self.now, line);
        }
    }

    /// The key of node `i` (for services that sign).
    pub fn node_key(&self, i: usize) -> NodeKey {
        NodeKey::from_seed(&self.nodes[i].seed)
    }

    /// Adds a node with a random key.
    pub fn add_node(&mut self) -> usize {
        let seed = self.rng.bytes32();
        self.add_node_with_seed(seed)
    }

    /// Adds a node whose key derives from `seed`.
    pub fn add_node_with_seed(&mut self, seed: [u8; 32]) -> usize {
        let key = NodeKey::from_seed(&seed).public_key();
        let rng = Rng::from_seed(self.rng.bytes32());
        self.nodes.push(SimNode {
            seed,
            node: None,
            key,
            links: HashMap::new(),
            timer_generation: 0,
            timer_at: None,
            last_timer: None,
            spins: 0,
            rng,
            delivered: Vec::new(),
            root_changes: Vec::new(),
            trace_hops: Vec::new(),
            service: None,
            adversary: None,
        });
        let i = self.nodes.len() - 1;
        self.start(i);
        i
    }

    fn start(&mut self, i: usize) {
        let node_seed = self.rng.bytes32();
        let config = NodeConfig {
            seq_base: self.now.as_micros() + 1,
            group_password: None,
            session_aes_gcm: false,
        };
        let node = Node::new(
            NodeKey::from_seed(&self.nodes[i].seed),
            config,
            node_seed,
            self.now,
        );
        self.nodes[i].node = Some(node);
        self.nodes[i].links.clear();
        for w in 0..self.wires.len() {
            for side in 0..2 {
                if self.wires[w].ends[side].0 == i {
                    self.open_end(w, side);
                }
            }
        }
        self.after(i);
    }

    fn open_end(&mut self, w: usize, side: usize) {
        let i = self.wires[w].ends[side].0;
        let mtu = self.wires[w].params.mtu;
        if let Some(node) = &mut self.nodes[i].node {
            let id = node.open_link(
                self.now,
                LinkParams {
                    mtu,
                    ..LinkParams::default()
                },
            );
            self.wires[w].ends[side].1 = Some(id);
            self.nodes[i].links.insert(id, w);
        }
    }

    /// Joins two nodes with an emulated link; both ends initiate handshakes.
    pub fn connect(&mut self, a: usize, b: usize, params: WireParams) -> usize {
        self.min_latency = self.min_latency.min(params.latency);
        self.wires.push(Wire {
            ends: [(a, None), (b, None)],
            params,
            up: true,
            bytes: [0; 2],
        });
        let w = self.wires.len() - 1;
        self.open_end(w, 0);
        self.open_end(w, 1);
        self.after(a);
        self.after(b);
        w
    }

    /// Builds `n` nodes joined by `edges`, all links with `params`.
    pub fn build(seed: u64, n: usize, edges: &[topology::Edge], params: WireParams) -> Self {
        let mut sim = Self::new(seed);
        for _ in 0..n {
            sim.add_node();
        }
        for &(a, b) in edges {
            sim.connect(a, b, params);
        }
        sim
    }

    /// Returns the wires, as (node a, node b, up).
    pub fn wires(&self) -> impl Iterator<Item = (usize, usize, bool)> + '_ {
        self.wires.iter().map(|w| (w.ends[0].0, w.ends[1].0, w.up))
    }

    /// Returns bytes sent over wire `w` in each direction.
    pub fn wire_bytes(&self, w: usize) -> [u64; 2] {
        self.wires[w].bytes
    }

    /// Changes how a wire behaves from now on.
    pub fn set_params(&mut self, w: usize, params: WireParams) {
        self.wires[w].params = params;
        self.min_latency = self
            .wires
            .iter()
            .map(|w| w.params.latency)
            .min()
            .unwrap_or(Duration::MAX);
    }

    /// Cuts a wire: everything sent on it is lost until [`restore`](Self::restore).
    pub fn cut(&mut self, w: usize) {
        self.wires[w].up = false;
        self.log(format_args!("cut wire {w}"));
    }

    /// Restores a cut wire.
    pub fn restore(&mut self, w: usize) {
        self.wires[w].up = true;
        self.log(format_args!("restore wire {w}"));
    }

    /// Cuts every wire between `side` and the other nodes; returns the wires cut.
    pub fn partition(&mut self, side: &[usize]) -> Vec<usize> {
        let inside: std::collections::HashSet<usize> = side.iter().copied().collect();
        let cut: Vec<usize> = (0..self.wires.len())
            .filter(|&w| {
                inside.contains(&self.wires[w].ends[0].0)
                    != inside.contains(&self.wires[w].ends[1].0)
            })
            .collect();
        for &w in &cut {
            self.cut(w);
        }
        cut
    }

    /// Restores every cut wire.
    pub fn heal(&mut self) {
        for w in 0..self.wires.len() {
            if !self.wires[w].up {
                self.restore(w);
            }
        }
    }

    /// Stops a node: it loses all state and everything sent to it is lost.
    pub fn crash(&mut self, i: usize) {
        drop(self.take_node(i));
    }

    /// Stops a node as [`crash`](Self::crash) does and hands over its state (to measure it).
    pub fn take_node(&mut self, i: usize) -> Option<Node> {
        let node = self.nodes[i].node.take();
        self.nodes[i].timer_generation += 1;
        self.nodes[i].timer_at = None;
        for w in 0..self.wires.len() {
            for side in 0..2 {
                if self.wires[w].ends[side].0 == i {
                    self.wires[w].ends[side].1 = None;
                }
            }
        }
        self.log(format_args!("crash node {i}"));
        node
    }

    /// Makes node `i` misbehave from now on (it keeps running the protocol besides).
    pub fn misbehave(&mut self, i: usize, misbehaviour: Misbehaviour) {
        let seed = self.rng.bytes32();
        let key = self.node_key(i);
        self.nodes[i].adversary = Some(adversary::Adversary::new(misbehaviour, seed, key));
        self.log(format_args!("node {i} misbehaves: {misbehaviour:?}"));
        self.sequence += 1;
        self.adversary_turns
            .push(Reverse((self.now, self.sequence, i)));
    }

    /// Starts a crashed node again with the same key.
    pub fn restart(&mut self, i: usize) {
        self.log(format_args!("restart node {i}"));
        self.start(i);
    }

    /// Sends `payload` from node `from` to node `to`, using `to`'s current coordinates (an oracle that
    /// stands in for a lookup).
    pub fn send(&mut self, from: usize, to: usize, payload: &[u8]) {
        self.send_raw_routed(from, to, crate::core::wire::traffic::KIND_DATA, payload);
    }

    /// Sends an IPv6 packet carrying `payload` from node `from` to node `to`'s address, as the local host
    /// would through the TUN device: the real lookup path is used.
    pub fn send_packet(&mut self, from: usize, to: usize, payload: &[u8]) {
        let packet = ipv6_packet(self.nodes[from].key, self.nodes[to].key, payload);
        if let Some(node) = &mut self.nodes[from].node {
            node.handle_local_packet(self.now, &packet);
        }
        self.after(from);
    }

    /// Sends a TCP super-packet (as a host's TSO read gives one) of `payload` in `mss`-byte segments
    /// from node `from` to node `to`.
    pub fn send_super_packet(&mut self, from: usize, to: usize, payload: &[u8], mss: u16) {
        let mut tcp = vec![0u8; 20];
        tcp[12] = 5 << 4;
        tcp[13] = 0x10;
        tcp.extend_from_slice(payload);
        let mut packet = ipv6_packet(self.nodes[from].key, self.nodes[to].key, &tcp);
        packet[6] = 6;
        if let Some(node) = &mut self.nodes[from].node {
            node.handle_local_super_packet(self.now, &packet, mss, false);
        }
        self.after(from);
    }

    /// Traces the way from node `from` to node `to`'s address ([`Node::trace`]); the hops arrive in
    /// [`SimNode::trace_hops`] of `from`.
    pub fn trace(&mut self, from: usize, to: usize) -> Option<crate::core::node::TraceStart> {
        let address = crate::core::address::node_address(&self.nodes[to].key);
        let now = self.now;
        let started = self.nodes[from]
            .node
            .as_mut()
            .map(|n| n.trace(now, address));
        self.after(from);
        started
    }

    /// Sends a routed message of traffic `kind` from node `from` to node `to` as is (an adversary's
    /// forgery: a trace reply, a broken-path report).
    pub fn send_raw_routed(&mut self, from: usize, to: usize, kind: u8, payload: &[u8]) {
        let Some(dest) = self.nodes[to]
            .node
            .as_ref()
            .map(|n| (n.public_key(), n.tree().coords().clone()))
        else {
            return;
        };
        if let Some(node) = &mut self.nodes[from].node {
            node.send_raw_routed(self.now, dest.0, dest.1, kind, payload);
        }
        self.after(from);
    }

    /// Sends a service message from node `from` to the built-in service on `port` of node `to`.
    pub fn send_service(&mut self, from: usize, to: usize, port: u16, payload: &[u8]) {
        let dest = self.nodes[to].key;
        if let Some(node) = &mut self.nodes[from].node {
            node.send_service(self.now, dest, port, payload);
        }
        self.after(from);
    }

    /// Drains a node's output into the network and reschedules its timer (outside any window).
    fn after(&mut self, i: usize) {
        let now = self.now;
        let net = Network {
            wires: &self.wires,
            trace: self.trace.is_some(),
            seed: self.seed,
        };
        let mut out = Output::default();
        self.nodes[i].after(i, now, now, net, &mut out, &mut None);
        self.apply(out);
    }

    /// Applies what handling a node's events did to the network.
    fn apply(&mut self, out: Output) {
        for (w, side, bytes) in out.bytes {
            self.wires[w].bytes[side] += bytes;
        }
        if let Some(f) = &mut self.trace {
            for line in &out.logs {
                let _ = writeln!(f, "{line}");
            }
        }
        for (at, pending) in out.pushes {
            self.push(at, pending);
        }
        self.handled += out.handled;
        if let Some(last) = out.last {
            self.now = self.now.max(last);
        }
    }

    fn push(&mut self, at: Instant, pending: Pending) {
        self.sequence += 1;
        self.queue.push(Reverse((at, self.sequence, pending)));
    }

    /// Runs `service` beside node `i` from now on.
    pub fn attach(&mut self, i: usize, service: Box<dyn SimService>) {
        self.nodes[i].service = Some(service);
        self.after(i);
    }

    /// The service attached to node `i`, if it is a `T`.
    pub fn service<T: SimService>(&mut self, i: usize) -> Option<&mut T> {
        self.nodes[i]
            .service
            .as_mut()
            .and_then(|s| s.as_any_mut().downcast_mut::<T>())
    }

    /// Lets node `i`'s service send what it queued (after a test drove it directly).
    pub fn flush(&mut self, i: usize) {
        self.after(i);
    }

    /// Runs the network until virtual time `until`.
    ///
    /// Time advances in windows as long as the shortest wire's latency: nothing a node sends within a
    /// window arrives before the window ends, so each node's events in it depend on nothing but the
    /// node itself, and the nodes are handled side by side, on [`Sim`]'s threads when there are at
    /// least [`PARALLEL_MIN_EVENTS`] events. What they send is queued afterwards in node order, so a run
    /// is the same on one thread or eight. An adversary's turn reads every node and is taken alone,
    /// between windows. With a wire of zero latency, events are taken one at a time.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next = self.queue.peek().map(|Reverse((at, _, _))| *at);
            let turn = self.adversary_turns.peek().map(|Reverse((at, _, _))| *at);
            let Some(start) = earliest(next, turn) else {
                break;
            };
            if start > until {
                break;
            }
            if turn.is_some_and(|t| t <= start) {
                self.adversary_turn();
                continue;
            }
            let one_at_a_time = self.min_latency < Duration::from_micros(1);
            let end = if one_at_a_time {
                start
            } else {
                (start + self.min_latency)
                    .min(until + Duration::from_micros(1))
                    .min(turn.unwrap_or(Instant::from_micros(u64::MAX)))
            };
            self.run_window(end, one_at_a_time);
        }
        self.now = self.now.max(until);
    }

    /// Handles the queued events before `end` (or only the first one), node by node.
    fn run_window(&mut self, end: Instant, one_at_a_time: bool) {
        let mut taken: Vec<(Instant, Pending)> = Vec::new();
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at >= end && !(one_at_a_time && taken.is_empty()) {
                break;
            }
            let Some(Reverse((at, _, pending))) = self.queue.pop() else {
                break;
            };
            taken.push((at, pending));
        }
        // Queue order (time, then sequence) within each node.
        taken.sort_by_key(|(_, p)| p.node());
        let mut groups: Vec<(usize, Vec<(Instant, Pending)>)> = Vec::new();
        for (at, pending) in taken {
            let i = pending.node();
            match groups.last_mut() {
                Some((last, events)) if *last == i => events.push((at, pending)),
                _ => groups.push((i, vec![(at, pending)])),
            }
        }
        let events: usize = groups.iter().map(|(_, e)| e.len()).sum();
        let net = Network {
            wires: &self.wires,
            trace: self.trace.is_some(),
            seed: self.seed,
        };
        // Each node with events, borrowed on its own.
        let mut work: Vec<NodeWork<'_>> = Vec::new();
        let (mut rest, mut base) = (&mut self.nodes[..], 0);
        for (i, node_events) in groups {
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(i - base);
            let Some((node, tail)) = tail.split_first_mut() else {
                break;
            };
            rest = tail;
            base = i + 1;
            work.push((i, node, node_events, Output::default()));
        }
        let run = |part: &mut [NodeWork<'_>]| {
            for (i, node, node_events, out) in part {
                node.run_window(*i, std::mem::take(node_events), end, net, out);
            }
        };
        if self.threads > 1 && events >= PARALLEL_MIN_EVENTS {
            // Contiguous parts of about equal events, one per thread.
            let per_thread = events.div_ceil(self.threads);
            let mut parts = Vec::new();
            let mut rest = &mut work[..];
            while !rest.is_empty() {
                let (mut n, mut count) = (0, 0);
                while n < rest.len() && count < per_thread {
                    count += rest[n].2.len();
                    n += 1;
                }
                let (part, tail) = std::mem::take(&mut rest).split_at_mut(n);
                parts.push(part);
                rest = tail;
            }
            parallel::for_each_part(parts, run);
            self.threaded_windows += 1;
        } else {
            run(&mut work);
        }
        let outputs: Vec<Output> = work.into_iter().map(|(_, _, _, out)| out).collect();
        for out in outputs {
            self.apply(out);
        }
    }

    /// Lets the adversary whose turn is first act.
    fn adversary_turn(&mut self) {
        let Some(Reverse((at, _, node))) = self.adversary_turns.pop() else {
            return;
        };
        self.now = self.now.max(at);
        self.handled += 1;
        let others: Vec<(PublicKey, crate::core::tree::Coords)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != node)
            .filter_map(|(_, n)| {
                let n = n.node.as_ref()?;
                Some((n.public_key(), n.tree().coords().clone()))
            })
            .collect();
        // The adversary's longest round trip, for lies about it: overstating every echo
        // delay by that much makes every link of its look 0 ms long.
        let round_trip = self
            .wires
            .iter()
            .filter(|w| w.ends.iter().any(|(i, _)| *i == node))
            .map(|w| 2 * w.params.latency)
            .max()
            .unwrap_or_default();
        let now = self.now;
        let sim_node = &mut self.nodes[node];
        if let (Some(adversary), Some(n)) = (&mut sim_node.adversary, &mut sim_node.node) {
            adversary.act(now, n, &others, round_trip);
            self.sequence += 1;
            self.adversary_turns
                .push(Reverse((now + adversary::TICK, self.sequence, node)));
            self.after(node);
        }
    }

    /// Runs the network for `duration` more.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }

    /// Returns each running node's root (`None` for detached or crashed nodes).
    pub fn roots(&self) -> Vec<Option<PublicKey>> {
        self.nodes
            .iter()
            .map(|n| n.node.as_ref().and_then(|n| n.tree().root()))
            .collect()
    }

    /// Returns the distinct roots among running nodes, if every running node has one.
    pub fn distinct_roots(&self, among: &[usize]) -> Vec<Option<PublicKey>> {
        let mut roots: Vec<Option<PublicKey>> = among
            .iter()
            .map(|&i| self.node(i).and_then(|n| n.tree().root()))
            .collect();
        roots.sort();
        roots.dedup();
        roots
    }

    /// Returns the lowest key among `among`: the root the tree should elect.
    pub fn best_key(&self, among: &[usize]) -> PublicKey {
        among
            .iter()
            .map(|&i| self.nodes[i].key)
            .min()
            .unwrap_or(PublicKey::from_bytes([0xff; 32]))
    }

    /// Takes the payloads delivered to node `i` so far.
    pub fn take_delivered(&mut self, i: usize) -> Vec<(Instant, Delivery)> {
        std::mem::take(&mut self.nodes[i].delivered)
    }

    /// Returns the packets all running nodes forwarded so far (a packet's hop count is one more than the
    /// forwards it caused).
    pub fn total_forwarded(&self) -> u64 {
        self.nodes
            .iter()
            .filter_map(|n| n.node.as_ref())
            .map(|n| n.stats().forwarded)
            .sum()
    }

    /// Returns how many events (datagrams, timers, adversary turns) the simulator has handled.
    pub fn events_handled(&self) -> u64 {
        self.handled
    }

    /// Returns how many events are queued (for the scale benchmark's memory report).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// About the bytes one queued event takes (its entry; a datagram's bytes come on top).
    pub fn queue_entry_bytes(&self) -> usize {
        std::mem::size_of::<Reverse<(Instant, u64, Pending)>>()
    }

    /// Returns how many time windows were handled on more than one thread.
    pub fn threaded_windows(&self) -> u64 {
        self.threaded_windows
    }

    /// Sets how many threads handle a window's nodes (1: all on the caller's); a run is the same
    /// whatever the number.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.clamp(1, 8);
    }

    /// Draws a random index below `n` from the simulator's RNG.
    pub fn random_index(&mut self, n: usize) -> usize {
        self.rng.below(n)
    }
}
