//! Strangers on the LAN against link admission (`Node::handle_datagram`): floods of initiations, junk
//! and signed, from fresh addresses, while a real neighbour starts and must link. Everything runs on
//! the sans-IO core with a virtual clock, so the figures are exact and repeatable.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use meshrouter::core::admission::{COOKIE_VERIFY_RATE, LINK_VERIFY_BURST, LINK_VERIFY_RATE};
use meshrouter::core::identity::NodeKey;
use meshrouter::core::link::LinkParams;
use meshrouter::core::link::cipher::Cipher;
use meshrouter::core::link::handshake::{Ephemeral, Psk, make_init};
use meshrouter::core::node::{Arrival, LinkId, MAX_UNCONFIRMED_INBOUND, Node, NodeConfig, Remote};
use meshrouter::core::rng::Rng;
use meshrouter::core::time::Instant;
use meshrouter::core::wire::datagram::{INIT_LEN, KIND_INIT};

const ENDPOINT: u32 = 0;

fn node(seed: u8, now: Instant) -> Node {
    let config = NodeConfig {
        seq_base: 1 + u64::from(seed),
        group_password: None,
        session_aes_gcm: false,
    };
    Node::new(NodeKey::from_seed(&[seed; 32]), config, [seed; 32], now)
}

fn addr(i: u32) -> Remote {
    let ip = std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, (i >> 16) as u16, i as u16);
    Remote::Udp(SocketAddr::new(ip.into(), 1024 + (i % 60000) as u16))
}

fn listener_params() -> Option<LinkParams> {
    Some(LinkParams {
        initiate: false,
        ..LinkParams::default()
    })
}

/// What the attacker sends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flood {
    /// Random bytes with an initiation's length, version and kind.
    Junk,
    /// Initiations correctly signed by fresh keys, from fresh addresses that never answer.
    Signed,
    /// Initiations correctly signed by fresh keys, all from the address of B, a peer that A has
    /// configured (and dials) without pinning its key: spoofed, to lock B out.
    SpoofedPeer,
}

struct Outcome {
    /// Seconds from the neighbour's start until its link to A was up on both sides.
    linked_after: Option<f64>,
    verified: u64,
    cookies: u64,
    most_unconfirmed: usize,
    most_links: usize,
}

/// A listens; from t = 0 an attacker sends `per_2s` initiations every 2 s (in 100 ms bursts) from
/// fresh addresses; at t = 4.05 s, inside a burst, the neighbour B starts and dials A. Runs 20 virtual
/// seconds.
fn run(flood: Flood, per_2s: u32) -> Outcome {
    let t0 = Instant::ZERO;
    let mut a = node(1, t0);
    let mut b: Option<Node> = None;
    let mut rng = Rng::from_seed([9; 32]);
    let (a_addr, b_addr) = (addr(u32::MAX - 1), addr(u32::MAX - 2));
    let mut a_links: HashMap<LinkId, Remote> = HashMap::new();
    let mut next_source = 0u32;
    let psk = Psk::from_password(None);
    let mut out = Outcome {
        linked_after: None,
        verified: 0,
        cookies: 0,
        most_unconfirmed: 0,
        most_links: 0,
    };
    let step = Duration::from_millis(10);
    // In the middle of a burst of the flood, when the budget is spent.
    let b_start = Instant::from_micros(4_050_000);
    let mut now = t0;
    if flood == Flood::SpoofedPeer {
        let id = a.open_link_to(t0, ENDPOINT, b_addr, LinkParams::default());
        a_links.insert(id, b_addr);
    }
    // Datagrams in flight: (arrival, to A?, from/to remote, bytes).
    let mut wire: Vec<(Instant, bool, Remote, Vec<u8>)> = Vec::new();
    while now < Instant::from_micros(20_000_000) {
        // The flood: per_2s datagrams at the start of every 2 s, spread over the first 100 ms.
        let phase = now.as_micros() % 2_000_000;
        if phase < 100_000 {
            for _ in 0..per_2s / 10 {
                next_source += 1;
                let bytes = match flood {
                    Flood::Junk => {
                        let mut bytes = vec![0u8; INIT_LEN];
                        for chunk in bytes.chunks_mut(32) {
                            let r = rng.bytes32();
                            chunk.copy_from_slice(&r[..chunk.len()]);
                        }
                        bytes[0] = meshrouter::core::wire::VERSION;
                        bytes[1] = KIND_INIT;
                        bytes
                    }
                    Flood::Signed | Flood::SpoofedPeer => make_init(
                        &NodeKey::from_seed(&rng.bytes32()),
                        &Ephemeral::from_random(rng.bytes32()),
                        rng.u32(),
                        now.as_micros(),
                        Cipher::offer(false),
                        &psk,
                    )
                    .encode(),
                };
                let from = if flood == Flood::SpoofedPeer {
                    b_addr
                } else {
                    addr(next_source)
                };
                wire.push((now, true, from, bytes));
            }
        }
        if now >= b_start && b.is_none() {
            let mut node_b = node(2, now);
            node_b.open_link_to(
                now,
                ENDPOINT,
                a_addr,
                LinkParams {
                    initiate: true,
                    ..LinkParams::default()
                },
            );
            b = Some(node_b);
        }
        // Deliver what is due (1 ms one way).
        let (due, later): (Vec<_>, Vec<_>) = wire.into_iter().partition(|d| d.0 <= now);
        wire = later;
        for (_, to_a, remote, mut bytes) in due {
            if to_a {
                match a.handle_datagram(now, ENDPOINT, remote, &mut bytes, listener_params) {
                    Arrival::NewLink(id) => {
                        a_links.insert(id, remote);
                    }
                    Arrival::Reply(reply) if remote == b_addr => {
                        wire.push((now + Duration::from_millis(1), false, a_addr, reply));
                    }
                    _ => {}
                }
            } else if let Some(b) = &mut b {
                b.handle_datagram(now, ENDPOINT, remote, &mut bytes, || None);
            }
        }
        for n in [Some(&mut a), b.as_mut()].into_iter().flatten() {
            if n.poll_timeout().is_some_and(|t| t <= now) {
                n.handle_timeout(now);
            }
        }
        while let Some(t) = a.poll_transmit() {
            if a_links.get(&t.link) == Some(&b_addr) {
                wire.push((now + Duration::from_millis(1), false, a_addr, t.payload));
            }
        }
        while a.poll_event().is_some() {}
        if let Some(b) = &mut b {
            while let Some(t) = b.poll_transmit() {
                wire.push((now + Duration::from_millis(1), true, b_addr, t.payload));
            }
            while b.poll_event().is_some() {}
            let b_key = b.public_key();
            let up = a.peers().any(|p| *p == b_key) && b.peers().count() == 1;
            if up && out.linked_after.is_none() {
                out.linked_after = Some((now.as_micros() - b_start.as_micros()) as f64 / 1e6);
            }
        }
        out.most_unconfirmed = out.most_unconfirmed.max(a.unconfirmed_inbound());
        out.most_links = out.most_links.max(a.links().count());
        now = now + step;
    }
    (out.verified, out.cookies, _) = a.handshake_counters();
    out
}

#[test]
fn junk_initiations_make_no_link_and_a_neighbour_links_at_once() {
    let out = run(Flood::Junk, 1000);
    println!(
        "junk flood, 500/s: linked after {:?} s, {} links at most, {} verified",
        out.linked_after, out.most_links, out.verified
    );
    assert!(out.most_unconfirmed <= 1, "no state for junk (1: B's own)");
    assert!(out.most_links <= 1);
    assert!(out.linked_after.unwrap() < 1.0);
}

#[test]
fn signed_initiations_from_throwaway_keys_are_capped_and_a_neighbour_links() {
    let out = run(Flood::Signed, 1000);
    println!(
        "signed flood, 500/s: linked after {:?} s, {} verified, {} cookie replies, {} unconfirmed at most",
        out.linked_after, out.verified, out.cookies, out.most_unconfirmed
    );
    // Over 20 s: at most the bursts plus the two rates.
    let cap = 2.0 * LINK_VERIFY_BURST + 20.0 * (LINK_VERIFY_RATE + COOKIE_VERIFY_RATE);
    assert!((out.verified as f64) <= cap, "{} > {cap}", out.verified);
    assert!(out.cookies > 0, "the flood put the node under load");
    assert!(
        out.linked_after.is_some_and(|t| t >= 0.002),
        "B needed its cookie"
    );
    assert!(out.most_unconfirmed <= MAX_UNCONFIRMED_INBOUND);
    assert!(
        out.linked_after.is_some_and(|t| t < 10.0),
        "{:?}",
        out.linked_after
    );
}

/// Signed initiations from throwaway keys, spoofed from the address of a peer that A dials without
/// pinning its key, 500 a second: the peer still links (an unconfirmed initiation names no peer,
/// `link/handshaking.rs`).
#[test]
fn spoofed_signed_initiations_never_lock_out_a_configured_peer() {
    let out = run(Flood::SpoofedPeer, 1000);
    println!(
        "spoofed signed flood from the peer's address, 500/s: linked after {:?} s",
        out.linked_after
    );
    assert!(out.linked_after.is_some_and(|t| t < 5.0));
}
