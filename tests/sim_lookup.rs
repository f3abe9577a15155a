//! Key lookups in the simulator: packets addressed to IPv6 addresses find their nodes through subtree
//! key sets along the tree, the first packets wait for the lookup, and a broken path is re-looked-up.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::time::Duration;

use meshrouter::core::rng::Rng;
use meshrouter::sim::{Sim, WireParams, ipv6_packet, topology};
use support::*;

#[test]
fn packets_to_addresses_are_delivered_after_a_lookup() {
    let mut rng = Rng::from_seed([71; 32]);
    let n = 100;
    let edges = topology::random(n, 4.0, &mut rng);
    let mut sim = Sim::build(71, n, &edges, WireParams::default());
    run_until_one_root(
        &mut sim,
        &(0..n).collect::<Vec<_>>(),
        Duration::from_secs(4),
    )
    .unwrap();
    sim.run_for(Duration::from_secs(1));
    let (mut tries, mut first_ok, mut all_ok, mut lookups) = (0, 0, 0, 0);
    for k in 0..200 {
        let (a, b) = (sim.random_index(n), sim.random_index(n));
        if a == b {
            continue;
        }
        tries += 1;
        let before: u64 = sim.node(a).unwrap().stats().lookups_sent;
        // Three packets back to back: all wait for the same lookup.
        for i in 0..3u8 {
            sim.send_packet(a, b, &[k as u8, i]);
        }
        sim.run_for(Duration::from_millis(200));
        let got = sim.take_delivered(b);
        lookups += sim.node(a).unwrap().stats().lookups_sent - before;
        let expected: Vec<Vec<u8>> = (0..3u8)
            .map(|i| ipv6_packet(sim.key(a), sim.key(b), &[k as u8, i]))
            .collect();
        let payloads: Vec<Vec<u8>> = got.into_iter().map(|(_, d)| d.payload.to_vec()).collect();
        if payloads.first() == expected.first() {
            first_ok += 1;
        }
        if payloads == expected {
            all_ok += 1;
        }
    }
    eprintln!(
        "lookups: {all_ok}/{tries} pairs got all 3 queued packets in order ({first_ok} got the first); {lookups} lookups sent"
    );
    assert_eq!(all_ok, tries);
    assert!(
        lookups <= tries as u64,
        "one lookup per new destination at most"
    );
}

#[test]
fn a_broken_path_is_looked_up_again_at_once() {
    let n = 49;
    let edges = topology::grid(7, 7);
    // A seed whose cut makes the destination move under another branch, so that packets to its old
    // place dead-end and a report is needed (with some seeds its new place is on the old way).
    let mut sim = Sim::build(75, n, &edges, WireParams::default());
    run_until_one_root(
        &mut sim,
        &(0..n).collect::<Vec<_>>(),
        Duration::from_secs(4),
    )
    .unwrap();
    sim.run_for(Duration::from_secs(1));
    let (a, b) = (0, 48);
    sim.send_packet(a, b, b"warm up");
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.take_delivered(b).len(), 1);
    // Cut the destination's link to its tree parent: its coordinates change, the cached path breaks.
    let parent_key = sim.node(b).unwrap().tree().parent();
    let parent = (0..n).find(|&i| sim.key(i) == parent_key).unwrap();
    let parent_wire = sim
        .wires()
        .position(|(x, y, _)| (x, y) == (b, parent) || (x, y) == (parent, b))
        .unwrap();
    let old_coords = sim.node(b).unwrap().tree().coords().clone();
    sim.cut(parent_wire);
    let start = sim.now();
    let mut first_after = None;
    for i in 0..200u32 {
        sim.send_packet(a, b, &i.to_be_bytes());
        sim.run_for(Duration::from_millis(20));
        if first_after.is_none()
            && !sim.take_delivered(b).is_empty()
            && sim.now().saturating_since(start) > Duration::from_millis(100)
        {
            first_after = Some(secs(sim.now()) - secs(start));
        }
    }
    let broken: u64 = sim.node(a).unwrap().stats().paths_broken;
    let taken = sim.node(a).unwrap().stats().moved_notices_taken;
    let new_coords = sim.node(b).unwrap().tree().coords().clone();
    eprintln!(
        "broken path: coords {old_coords:?} -> {new_coords:?}; delivery again {first_after:?} s after the cut; \
         {broken} broken-path reports reached the source, {taken} notices of the move"
    );
    assert_ne!(old_coords, new_coords);
    assert!(broken > 0);
    // The destination heard the source in their session, so it told the source where it went.
    assert!(taken >= 1, "no notice of the move reached the source");
    let known = sim
        .node(a)
        .unwrap()
        .paths()
        .get(&sim.key(b))
        .unwrap()
        .coords
        .clone();
    assert_eq!(known, new_coords);
    assert!(first_after.is_some_and(|t| t < 5.0));
}

#[test]
fn packets_larger_than_the_link_mtu_cross_several_hops_in_fragments() {
    let small = WireParams {
        mtu: 576,
        ..WireParams::default()
    };
    let mut sim = Sim::build(73, 5, &topology::line(5), small);
    run_until_one_root(
        &mut sim,
        &(0..5).collect::<Vec<_>>(),
        Duration::from_secs(4),
    )
    .unwrap();
    let mut sizes = Vec::new();
    for size in [100usize, 1280 - 40, 9000 - 40, 65_000] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        sim.send_packet(0, 4, &payload);
        sim.run_for(Duration::from_millis(300));
        let got = sim.take_delivered(4);
        if got.len() == 1 && got[0].1.payload == ipv6_packet(sim.key(0), sim.key(4), &payload) {
            sizes.push(size + 40);
        }
    }
    eprintln!("mtu: IPv6 packets of {sizes:?} bytes crossed 4 hops of 576-byte links");
    assert_eq!(sizes, vec![140, 1280, 9000, 65_040]);
}
