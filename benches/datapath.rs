//! The core's per-packet cost: an IPv6 packet from one node's host to another's, with two nodes wired
//! in memory (no sockets, no TUN): between neighbours (link seal, routing, link open) and in a closed
//! overlay, where every packet also takes a session (lookup, session seal, link seal, routing, link
//! open, session open), as packets to nodes further away do; then the segmentation of a host's 64 KiB
//! TCP super-packet into 1280-byte packets. Run with `cargo bench --bench datapath`; it prints
//! figures, it asserts nothing about speed.

use std::hint::black_box;
use std::time::Instant as WallClock;

use meshrouter::core::identity::NodeKey;
use meshrouter::core::link::LinkParams;
use meshrouter::core::node::{DeliveryKind, LinkId, Node, NodeConfig};
use meshrouter::core::password::PasswordKey;
use meshrouter::core::time::Instant;
use meshrouter::sim::ipv6_packet;

struct Pair {
    nodes: [Node; 2],
    links: [LinkId; 2],
    now: Instant,
}

impl Pair {
    /// Two linked nodes; `group_password` makes it a closed overlay, whose packets all use sessions.
    fn new(group_password: Option<&[u8]>) -> Self {
        let now = Instant::from_micros(1);
        let group_password = group_password.map(PasswordKey::derive);
        let node = |seed: u8| {
            let config = NodeConfig {
                seq_base: 1,
                group_password: group_password.clone(),
                session_aes_gcm: std::env::var_os("MR_BENCH_CHACHA").is_none(),
            };
            Node::new(NodeKey::from_seed(&[seed; 32]), config, [seed; 32], now)
        };
        let mut nodes = [node(1), node(2)];
        // The daemon's UDP link size: a 1280-byte overlay packet fits in one datagram.
        let params = LinkParams {
            mtu: 1452,
            ..LinkParams::default()
        };
        let links = [
            nodes[0].open_link(now, params.clone()),
            nodes[1].open_link(
                now,
                LinkParams {
                    initiate: false,
                    ..params
                },
            ),
        ];
        Self { nodes, links, now }
    }

    /// Moves datagrams both ways until none is left; returns the packets delivered to node 1.
    fn pump(&mut self) -> usize {
        let mut delivered = 0;
        loop {
            let mut moved = false;
            for from in 0..2 {
                while let Some(mut t) = self.nodes[from].poll_transmit() {
                    let to = 1 - from;
                    let link = self.links[to];
                    self.nodes[to].handle_link_datagram(self.now, link, &mut t.payload);
                    moved = true;
                }
            }
            while let Some(d) = self.nodes[1].poll_deliver() {
                delivered += usize::from(d.kind == DeliveryKind::Packet);
                black_box(d);
            }
            if !moved {
                return delivered;
            }
        }
    }

    /// Advances virtual time by `ms`, running due timers.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now = Instant::from_micros(self.now.as_micros() + 1000);
            for node in &mut self.nodes {
                if node.poll_timeout().is_some_and(|t| t <= self.now) {
                    node.handle_timeout(self.now);
                }
            }
            self.pump();
        }
    }
}

fn main() {
    for (path, password) in [
        ("neighbour, link only", None),
        ("through a session   ", Some(&b"closed"[..])),
    ] {
        for size in [64usize, 1232] {
            packets(path, password, size);
        }
    }
    segmentation();
}

fn packets(path: &str, password: Option<&[u8]>, size: usize) {
    let mut pair = Pair::new(password);
    pair.run(500);
    let (a, b) = (pair.nodes[0].public_key(), pair.nodes[1].public_key());
    let packet = ipv6_packet(a, b, &vec![0x5a; size]);
    // Warm up: lookup and session where there is one.
    for _ in 0..20 {
        pair.nodes[0].handle_local_packet(pair.now, &packet);
        pair.run(10);
    }
    let iterations = 200_000;
    let mut delivered = 0;
    let start = WallClock::now();
    for _ in 0..iterations {
        pair.nodes[0].handle_local_packet(pair.now, &packet);
        delivered += pair.pump();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "host to host, {path}, {:>4}-byte IPv6 packets: {:>6.0} ns/packet ({:.0} k packets/s, \
         {:.2} Gb/s; both nodes on one core), {delivered}/{iterations} delivered",
        packet.len(),
        secs * 1e9 / iterations as f64,
        iterations as f64 / secs / 1e3,
        iterations as f64 * packet.len() as f64 * 8.0 / secs / 1e9,
    );
}

/// Cutting a host's TCP super-packet (64 KiB, MSS 1220) into packets with full checksums, as a flow
/// that lost data lately is sent, or a TUN read of a TSO packet is split.
fn segmentation() {
    let mut tcp = vec![0u8; 20];
    tcp[12] = 5 << 4;
    tcp[13] = 0x18;
    tcp.extend((0..64_000u32).map(|i| i as u8));
    let a = NodeKey::from_seed(&[1; 32]).public_key();
    let b = NodeKey::from_seed(&[2; 32]).public_key();
    let mut packet = ipv6_packet(a, b, &tcp);
    packet[6] = 6;
    let iterations = 20_000;
    let mut segments = Vec::new();
    let start = WallClock::now();
    for _ in 0..iterations {
        segments.clear();
        meshrouter::core::offload::segment_super_packet(&packet, 1220, false, &mut segments)
            .unwrap_or_else(|e| panic!("segmenting: {e}"));
        black_box(&segments);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "segmenting a {}-byte TCP super-packet into {} packets: {:.1} us ({:.2} Gb/s)",
        packet.len(),
        segments.len(),
        secs * 1e6 / iterations as f64,
        iterations as f64 * packet.len() as f64 * 8.0 / secs / 1e9,
    );
}
