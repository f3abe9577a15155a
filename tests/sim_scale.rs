//! A 1000-node random graph (mean degree 4): it converges to one root and delivers 1000 random pairs
//! through real lookups. Prints wall time and resident memory per node; run in release
//! (`cargo test --release --test sim_scale -- --nocapture`).

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::time::Duration;

use meshrouter::core::rng::Rng;
use meshrouter::sim::{Sim, WireParams, ipv6_packet, topology};
use support::*;

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow without optimisations: run with cargo test --release"
)]
fn thousand_nodes_converge_and_deliver_a_thousand_pairs() {
    let started = std::time::Instant::now();
    let n = 1000;
    let mut rng = Rng::from_seed([81; 32]);
    let edges = topology::random(n, 4.0, &mut rng);
    let rss_before = rss_kib();
    let mut sim = Sim::build(81, n, &edges, WireParams::default());
    let all: Vec<usize> = (0..n).collect();
    let converged = run_until_one_root(&mut sim, &all, Duration::from_secs(10));
    assert!(converged.is_some(), "no single root (seed 81)");
    sim.run_for(Duration::from_secs(2));
    let kib_per_node = rss_kib().saturating_sub(rss_before) as f64 / n as f64;

    let mut delivered = 0;
    let mut tries = 0;
    for _batch in 0..20 {
        let mut expected = Vec::new();
        while expected.len() < 50 {
            let (a, b) = (sim.random_index(n), sim.random_index(n));
            if a != b {
                let payload = (tries as u32).to_be_bytes();
                tries += 1;
                sim.send_packet(a, b, &payload);
                expected.push((b, ipv6_packet(sim.key(a), sim.key(b), &payload)));
            }
        }
        sim.run_for(Duration::from_millis(500));
        let mut arrived = std::collections::HashMap::new();
        for (b, packet) in expected {
            let at_b = arrived.entry(b).or_insert_with(|| sim.take_delivered(b));
            if at_b.iter().any(|(_, d)| d.payload == packet) {
                delivered += 1;
            }
        }
    }
    let wall = started.elapsed();
    let mut drops = std::collections::BTreeMap::new();
    for i in 0..n {
        for (k, v) in sim.node(i).unwrap().stats().drops {
            *drops.entry(k).or_insert(0u64) += v;
        }
    }
    eprintln!("drops: {drops:?}");
    eprintln!(
        "1000 nodes: one root at {:.2} s simulated; {delivered}/{tries} pairs delivered; wall {:.1} s; \
         {kib_per_node:.0} KiB resident per node (links, tree, filters, simulator queues)",
        secs(converged.unwrap()),
        wall.as_secs_f64(),
    );
    assert_eq!(delivered, tries, "(seed 81)");
}
