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
