//! `meshrouter trace` in the simulator: every hop on the way answers a probe with a signed reply;
//! replies that are not what the hop they name signed for this probe are refused; a node answers
//! at most its budget of probes however many come.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::time::Duration;

use meshrouter::core::identity::PublicKey;
use meshrouter::core::node::{ANSWERS_PER_SECOND, Event, MAX_TRACES, TraceStart};
use meshrouter::core::wire::trace::{TraceOutcome, TraceReply};
use meshrouter::core::wire::traffic::KIND_TRACE_REPLY;
use meshrouter::sim::{Sim, WireParams, topology};
use support::*;

fn line(n: usize, seed: u64) -> Sim {
    let mut sim = Sim::build(seed, n, &topology::line(n), WireParams::default());
    run_until_one_root(
        &mut sim,
        &(0..n).collect::<Vec<_>>(),
        Duration::from_secs(5),
    )
    .unwrap();
    sim.run_for(Duration::from_secs(1));
    sim
}

/// The hops node `i` heard of for probe `id`: (hop, outcome, rtt).
fn hops(sim: &Sim, i: usize, id: u64) -> Vec<(PublicKey, TraceOutcome, Duration)> {
    (sim.sim_node(i).trace_hops.iter())
        .filter_map(|(_, e)| match e {
            Event::TraceHop {
                id: got,
                hop,
                outcome,
                rtt,
            } if *got == id => Some((*hop, *outcome, *rtt)),
            _ => None,
        })
        .collect()
}

/// Starts a trace from `from` to `to` (looking `to` up first if needed); the probe's id.
fn probe(sim: &mut Sim, from: usize, to: usize) -> u64 {
    for _ in 0..50 {
        match sim.trace(from, to).unwrap() {
            TraceStart::Probing { id, .. } => return id,
            TraceStart::LookingUp => sim.run_for(Duration::from_millis(20)),
            other => panic!("{other:?}"),
        }
    }
    panic!("{to} was not found");
}

#[test]
fn every_hop_answers_in_order_with_growing_round_trips() {
    let n = 6;
    let mut sim = line(n, 41);
    let id = probe(&mut sim, 0, n - 1);
    sim.run_for(Duration::from_millis(500));
    let got = hops(&sim, 0, id);
    let keys: Vec<PublicKey> = got.iter().map(|h| h.0).collect();
    let want: Vec<PublicKey> = (0..n).map(|i| sim.key(i)).collect();
    assert_eq!(keys, want, "each node once, in the order the probe passed");
    for (i, (_, outcome, _)) in got.iter().enumerate() {
        let expected = if i + 1 < n {
            TraceOutcome::Forwarded(sim.key(i + 1))
        } else {
            TraceOutcome::Delivered
        };
        assert_eq!(*outcome, expected, "hop {i}");
    }
    let rtts: Vec<Duration> = got.iter().map(|h| h.2).collect();
    assert!(rtts.windows(2).all(|w| w[0] < w[1]), "{rtts:?}");
    eprintln!("trace over {} hops: round trips {rtts:?}", n - 1);
}

#[test]
fn a_cut_link_shows_where_the_way_stops() {
    let n = 5;
    let mut sim = line(n, 42);
    let id = probe(&mut sim, 0, n - 1);
    sim.run_for(Duration::from_millis(300));
    let wire = sim
        .wires()
        .position(|(a, b, _)| (a, b) == (3, 4) || (a, b) == (4, 3))
        .unwrap();
    sim.cut(wire);
    sim.run_for(Duration::from_secs(20));
    let id2 = probe(&mut sim, 0, n - 1);
    assert_ne!(id, id2);
    sim.run_for(Duration::from_millis(500));
    let got = hops(&sim, 0, id2);
    let last = got.last().unwrap();
    assert_eq!(last.0, sim.key(3), "the way stops at node 3: {got:?}");
    assert_eq!(last.1, TraceOutcome::NoRoute);
}

/// Attack: a node on the way forges the far end's reply (it saw the probe's id pass), and signs
/// replies with its own key for another hop: the source takes neither.
#[test]
fn forged_replies_are_refused() {
    let n = 5;
    let mut sim = line(n, 43);
    let id = probe(&mut sim, 0, n - 1);
    let far = sim.key(n - 1);
    let (attacker, attacker_key) = (2, sim.node_key(2));
    let mut forged = Vec::new();
    // Signed by the attacker but naming the far end.
    let signed = TraceReply::signed_bytes(&sim.key(0), &far, id, &far, &TraceOutcome::Delivered);
    TraceReply {
        id,
        hop: far,
        outcome: TraceOutcome::Delivered,
        signature: attacker_key.sign(&signed),
    }
    .encode(&mut forged);
    sim.send_raw_routed(attacker, 0, KIND_TRACE_REPLY, &forged);
    // The attacker's own reply, for a probe id the source never sent.
    let mut unknown = Vec::new();
    let me = sim.key(attacker);
    let signed = TraceReply::signed_bytes(&sim.key(0), &far, id ^ 1, &me, &TraceOutcome::NoRoute);
    TraceReply {
        id: id ^ 1,
        hop: me,
        outcome: TraceOutcome::NoRoute,
        signature: attacker_key.sign(&signed),
    }
    .encode(&mut unknown);
    sim.send_raw_routed(attacker, 0, KIND_TRACE_REPLY, &unknown);
    sim.run_for(Duration::from_millis(500));
    let got = hops(&sim, 0, id);
    let from_far: Vec<_> = got.iter().filter(|h| h.0 == far).collect();
    assert_eq!(from_far.len(), 1, "only the far end's real reply: {got:?}");
    assert!(hops(&sim, 0, id ^ 1).is_empty());
    let refused = sim
        .node(0)
        .unwrap()
        .stats()
        .drops
        .get("BadTraceReply")
        .copied();
    assert_eq!(refused, Some(2), "{:?}", sim.node(0).unwrap().stats().drops);
}

/// Attack: two nodes send as many probes as they may at once through a middle node: it answers
/// no more than its budget, and a source keeps no more than its cap in flight.
#[test]
fn a_node_answers_no_more_than_its_budget() {
    let n = 5;
    let mut sim = line(n, 44);
    let mut ids = Vec::new();
    for (from, to) in [(0, n - 1), (n - 1, 0)] {
        probe(&mut sim, from, to);
        for _ in 1..MAX_TRACES {
            match sim.trace(from, to).unwrap() {
                TraceStart::Probing { id, .. } => ids.push((from, id)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(sim.trace(from, to), Some(TraceStart::Busy), "the cap");
    }
    sim.run_for(Duration::from_millis(200));
    let middle = sim.key(2);
    let answered: usize = (ids.iter())
        .map(|(from, id)| {
            hops(&sim, *from, *id)
                .iter()
                .filter(|h| h.0 == middle)
                .count()
        })
        .sum();
    eprintln!(
        "{} probes through the middle node, {answered} answered",
        ids.len() + 2
    );
    assert!(answered <= ANSWERS_PER_SECOND as usize + 1, "{answered}");
    assert!(answered >= ANSWERS_PER_SECOND as usize - 2, "{answered}");
}
