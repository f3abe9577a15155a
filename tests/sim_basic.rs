//! Quick end-to-end checks of the simulator and the routing core.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::time::Duration;

use meshrouter::core::time::Instant;
use meshrouter::sim::{Sim, WireParams, topology};

#[test]
fn two_nodes_agree_on_a_root_and_deliver() {
    let mut sim = Sim::build(1, 2, &topology::line(2), WireParams::default());
    sim.run_until(Instant::from_micros(1_000_000));
    let best = sim.best_key(&[0, 1]);
    assert_eq!(
        sim.roots(),
        vec![Some(best), Some(best)],
        "seed {}",
        sim.seed()
    );
    sim.send(0, 1, b"hi");
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.take_delivered(1).len(), 1);
}

#[test]
fn line_of_ten() {
    let mut sim = Sim::build(2, 10, &topology::line(10), WireParams::default());
    sim.run_until(Instant::from_micros(4_000_000));
    let all: Vec<usize> = (0..10).collect();
    assert_eq!(sim.distinct_roots(&all), vec![Some(sim.best_key(&all))]);
    sim.send(0, 9, b"end to end");
    sim.send(9, 0, b"back");
    sim.run_for(Duration::from_millis(50));
    assert_eq!(sim.take_delivered(9).len(), 1);
    assert_eq!(sim.take_delivered(0).len(), 1);
}

/// Threads handle a window's nodes side by side; what they did is applied in node order, so the
/// number of threads must change nothing: the same events, bytes on every wire, trees and roots.
#[test]
fn threads_change_nothing_in_a_run() {
    let n = 400;
    let mut rng = meshrouter::core::rng::Rng::from_seed([3; 32]);
    let edges = topology::random(n, 4.0, &mut rng);
    let run = |threads: usize| {
        let mut sim = Sim::new(5);
        sim.set_threads(threads);
        for _ in 0..n {
            sim.add_node();
        }
        for &(a, b) in &edges {
            sim.connect(a, b, WireParams::default());
        }
        sim.run_until(Instant::from_micros(3_000_000));
        sim.send_packet(0, n - 1, b"across");
        sim.run_for(Duration::from_secs(1));
        let wires: Vec<[u64; 2]> = (0..edges.len()).map(|w| sim.wire_bytes(w)).collect();
        let trees: Vec<_> = (0..n)
            .map(|i| {
                let node = sim.node(i).unwrap();
                (
                    node.tree().coords().clone(),
                    sim.sim_node(i).root_changes.clone(),
                )
            })
            .collect();
        let delivered = sim.take_delivered(n - 1).len();
        (
            (sim.events_handled(), wires, trees, delivered),
            sim.threaded_windows(),
        )
    };
    let (one, on_one) = run(1);
    let (two, on_two) = run(2);
    let (four, _) = run(4);
    assert_eq!(on_one, 0);
    assert!(on_two > 10, "only {on_two} windows went to threads");
    assert_eq!(one.3, 1, "the packet across did not arrive");
    assert!(one == two, "two threads changed the run");
    assert!(one == four, "four threads changed the run");
}
