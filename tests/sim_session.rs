//! End-to-end sessions in the simulator: five hops of lossy, reordering, duplicating links for ten
//! simulated minutes, rekeys included; no packet is refused as a replay that was not one; a restarted
//! peer gets a fresh session quickly.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use meshrouter::core::node::DeliveryKind;
use meshrouter::sim::{Sim, WireParams, ipv6_packet, topology};
use support::*;

/// Sends a numbered packet from 0 to 5 every 100 ms for `duration`; returns (sent, delivered ids).
fn stream(sim: &mut Sim, duration: Duration) -> (u32, Vec<u32>) {
    let mut sent = 0u32;
    let start = sim.now();
    let mut ids = Vec::new();
    while sim.now().saturating_since(start) < duration {
        sim.send_packet(0, 5, &sent.to_be_bytes());
        sent += 1;
        sim.run_for(Duration::from_millis(100));
        for (_, d) in sim.take_delivered(5) {
            assert_eq!(d.kind, DeliveryKind::Packet);
            ids.push(u32::from_be_bytes(d.payload[40..44].try_into().unwrap()));
        }
    }
    sim.run_for(Duration::from_millis(500));
    ids.extend(
        sim.take_delivered(5)
            .iter()
            .map(|(_, d)| u32::from_be_bytes(d.payload[40..44].try_into().unwrap())),
    );
    (sent, ids)
}

/// A six-node line (five hops from 0 to 5) with one root.
fn converged_line(seed: u64, params: WireParams) -> Sim {
    let mut sim = Sim::build(seed, 6, &topology::line(6), params);
    run_until_one_root(
        &mut sim,
        &(0..6).collect::<Vec<_>>(),
        Duration::from_secs(10),
    )
    .unwrap();
    sim
}

/// Key sets node 0's session with node 5 has installed (first handshake and rekeys).
fn key_sets_0_to_5(sim: &Sim) -> u64 {
    sim.node(0)
        .unwrap()
        .session_stats(&sim.key(5))
        .unwrap()
        .key_sets
}

#[test]
fn a_session_over_five_lossy_hops_survives_ten_minutes_of_rekeys() {
    let lossy = WireParams {
        loss: 0.05,
        reorder: 0.05,
        duplicate: 0.01,
        jitter: Duration::from_millis(2),
        ..WireParams::default()
    };
    let mut sim = converged_line(101, lossy);
    let (sent, ids) = stream(&mut sim, Duration::from_secs(600));
    let unique: HashSet<u32> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a packet was delivered twice");
    let key_sets = key_sets_0_to_5(&sim);
    let ratio = ids.len() as f64 / sent as f64;
    eprintln!(
        "session over 5 lossy hops: {} of {sent} packets delivered ({ratio:.3}; expected 0.95^5 = 0.774), \
         {key_sets} key sets (first handshake and rekeys) in 10 minutes",
        ids.len()
    );
    assert!(key_sets >= 6, "fewer than 5 rekeys: {key_sets} key sets");
    assert!(ratio > 0.7, "(seed 101)");
}

#[test]
fn reordering_and_duplication_without_loss_lose_nothing_across_rekeys() {
    let shuffled = WireParams {
        reorder: 0.05,
        duplicate: 0.01,
        jitter: Duration::from_millis(2),
        ..WireParams::default()
    };
    let mut sim = converged_line(102, shuffled);
    let (sent, ids) = stream(&mut sim, Duration::from_secs(600));
    let unique: HashSet<u32> = ids.iter().copied().collect();
    let key_sets = key_sets_0_to_5(&sim);
    eprintln!(
        "no loss: {} of {sent} delivered exactly once across {key_sets} key sets",
        unique.len()
    );
    assert_eq!(unique.len(), ids.len(), "a packet was delivered twice");
    assert_eq!(
        unique.len() as u32,
        sent,
        "a packet was refused as a replay or lost in a rekey (seed 102)"
    );
}

#[test]
fn a_restarted_peer_gets_a_fresh_session_within_2_s_of_its_first_packet() {
    let mut sim = Sim::build(103, 6, &topology::line(6), WireParams::default());
    run_until_one_root(
        &mut sim,
        &(0..6).collect::<Vec<_>>(),
        Duration::from_secs(10),
    )
    .unwrap();
    stream(&mut sim, Duration::from_secs(5));
    sim.crash(5);
    sim.run_for(Duration::from_secs(3));
    sim.restart(5);
    sim.run_for(Duration::from_secs(1));
    // Node 0 still holds the old session; the restarted node's first packet must fix that.
    let first = sim.now();
    sim.send_packet(5, 0, b"I am back");
    let (mut to_0, mut to_5) = (false, false);
    let mut back = None;
    for i in 0..40u32 {
        sim.send_packet(0, 5, &i.to_be_bytes());
        sim.run_for(Duration::from_millis(50));
        to_0 |= !sim.take_delivered(0).is_empty();
        to_5 |= !sim.take_delivered(5).is_empty();
        if to_0 && to_5 {
            back = Some(secs(sim.now()) - secs(first));
            break;
        }
    }
    eprintln!("restarted peer: packets flow both ways again {back:?} s after its first packet");
    assert!(back.is_some_and(|t| t <= 2.0), "(seed 103)");
}

#[test]
fn service_messages_reach_the_service_port_through_the_session() {
    let mut sim = Sim::build(104, 6, &topology::line(6), WireParams::default());
    run_until_one_root(
        &mut sim,
        &(0..6).collect::<Vec<_>>(),
        Duration::from_secs(10),
    )
    .unwrap();
    sim.send_service(0, 5, 7, b"sync digest");
    sim.run_for(Duration::from_millis(200));
    let got = sim.take_delivered(5);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.kind, DeliveryKind::Service(7));
    assert_eq!(&got[0].1.payload[..], b"sync digest");
    assert_eq!(got[0].1.source, sim.key(0));
}

/// A host's 60 KiB TCP super-packets cross five hops whole (fragmented by each link, joined again) and
/// arrive intact, tagged with their segment size; through lossy links some are lost, none is damaged.
#[test]
fn super_packets_cross_five_hops_whole() {
    for (loss, seed) in [(0.0, 41), (0.01, 42)] {
        let params = WireParams {
            loss,
            ..WireParams::default()
        };
        let mut sim = converged_line(seed, params);
        // A first packet makes the lookup and the session.
        sim.send_packet(0, 5, b"hello");
        sim.run_for(Duration::from_secs(2));
        sim.take_delivered(5);
        let mut intact = 0;
        for i in 0..20u8 {
            let payload: Vec<u8> = (0..60_000u32).map(|b| (b as u8) ^ i).collect();
            sim.send_super_packet(0, 5, &payload, 1220);
            sim.run_for(Duration::from_millis(200));
            for (_, d) in sim.take_delivered(5) {
                assert_eq!(
                    d.kind,
                    DeliveryKind::TcpSuperPacket {
                        mss: 1220,
                        ecn: false
                    }
                );
                assert_eq!(&d.payload[60..], &payload[..], "seed {seed}: damaged");
                intact += 1;
            }
        }
        if loss == 0.0 {
            assert_eq!(intact, 20, "seed {seed}: lost on clean links");
        } else {
            assert!(intact > 0, "seed {seed}: none arrived");
        }
        println!(
            "super-packets over 5 hops at {:.0} % loss per link: {intact}/20 arrived",
            loss * 100.0
        );
    }
}

/// Packets, super-packets and service messages for a neighbour go straight over the link to it, with
/// no session (the link already encrypts between exactly those two nodes); two hops away, a session.
#[test]
fn neighbours_talk_over_their_link_without_a_session() {
    let mut sim = Sim::build(105, 3, &topology::line(3), WireParams::default());
    run_until_one_root(
        &mut sim,
        &(0..3).collect::<Vec<_>>(),
        Duration::from_secs(10),
    )
    .unwrap();
    sim.send_packet(0, 1, b"next door");
    let payload: Vec<u8> = (0..60_000u32).map(|b| b as u8).collect();
    sim.send_super_packet(0, 1, &payload, 1220);
    sim.send_service(0, 1, 7, b"digest");
    sim.run_for(Duration::from_millis(200));
    let got: Vec<_> = sim.take_delivered(1).into_iter().map(|(_, d)| d).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|d| d.source == sim.key(0)));
    assert_eq!(got[0].kind, DeliveryKind::Packet);
    assert_eq!(
        got[0].payload,
        ipv6_packet(sim.key(0), sim.key(1), b"next door")
    );
    assert_eq!(&got[1].payload[60..], &payload[..]);
    assert_eq!(got[2].kind, DeliveryKind::Service(7));
    let (a, b) = (sim.node(0).unwrap(), sim.node(1).unwrap());
    assert!(a.sessions().is_empty() && b.sessions().is_empty());
    assert_eq!(a.stats().lookups_sent, 0, "a neighbour needs no lookup");
    // Two hops away: looked up, and through a session.
    sim.send_packet(0, 2, b"across the street");
    sim.run_for(Duration::from_secs(1));
    let got = sim.take_delivered(2);
    assert_eq!(got.len(), 1);
    assert!(sim.node(0).unwrap().session_stats(&sim.key(2)).is_some());
}
