//! One malicious member in a 50-node mesh, for each misbehaviour of `sim::Misbehaviour`, against the
//! same node merely crashing (same seed, same topology, same pairs): delivery between honest pairs,
//! root changes of honest nodes, control traffic on links between honest nodes and what honest nodes
//! hold. Misbehaving must hurt no more than being absent.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::time::Duration;

use meshrouter::core::rng::Rng;
use meshrouter::sim::{Misbehaviour, Sim, WireParams, topology};
use support::run_until_one_root;

const N: usize = 50;
const SEED: u64 = 2718;
const PAIRS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Crash,
    Misbehave(Misbehaviour),
}

#[derive(Debug)]
struct Outcome {
    delivered: usize,
    most_root_changes: usize,
    /// Largest bytes per second on one link between honest nodes, in a 20 s window without traffic.
    busiest_link: f64,
    /// Most announcements, sessions and known paths one honest node holds.
    most_stored: usize,
    most_sessions: usize,
}

fn run(case: Case) -> Outcome {
    let mut topo_rng = Rng::from_seed([7; 32]);
    let edges = topology::random(N, 3.0, &mut topo_rng);
    let mut sim = Sim::build(SEED, N, &edges, WireParams::default());
    let all: Vec<usize> = (0..N).collect();
    assert!(run_until_one_root(&mut sim, &all, Duration::from_secs(10)).is_some());
    sim.run_for(Duration::from_secs(10));
    // The bad node: the best-connected one that is not the root (a root that crashes makes
    // everyone change root once, which is not what is measured here).
    let root = sim.best_key(&all);
    let degree = |i: usize| edges.iter().filter(|(a, b)| *a == i || *b == i).count();
    let bad = (0..N)
        .filter(|&i| sim.key(i) != root)
        .max_by_key(|&i| (degree(i), std::cmp::Reverse(i)))
        .unwrap();
    let honest: Vec<usize> = (0..N).filter(|&i| i != bad).collect();
    let changes_before: Vec<usize> = honest
        .iter()
        .map(|&i| sim.sim_node(i).root_changes.len())
        .collect();
    match case {
        Case::Crash => sim.crash(bad),
        Case::Misbehave(m) => sim.misbehave(bad, m),
    }
    sim.run_for(Duration::from_secs(5));
    // Control traffic alone, 20 s, on links between honest nodes.
    let honest_wires: Vec<usize> = sim
        .wires()
        .enumerate()
        .filter(|(_, (a, b, _))| *a != bad && *b != bad)
        .map(|(w, _)| w)
        .collect();
    let before: Vec<u64> = honest_wires
        .iter()
        .map(|&w| sim.wire_bytes(w).iter().sum())
        .collect();
    sim.run_for(Duration::from_secs(20));
    let busiest_link = honest_wires
        .iter()
        .zip(&before)
        .map(|(&w, b)| (sim.wire_bytes(w).iter().sum::<u64>() - b) as f64 / 20.0)
        .fold(0.0, f64::max);
    // The same pairs in every case.
    let mut pair_rng = Rng::from_seed([8; 32]);
    let mut delivered = 0;
    for k in 0..PAIRS {
        let (a, b) = loop {
            let a = honest[pair_rng.below(honest.len())];
            let b = honest[pair_rng.below(honest.len())];
            if a != b {
                break (a, b);
            }
        };
        sim.send_packet(a, b, b"warm up");
        sim.run_for(Duration::from_millis(300));
        sim.take_delivered(b);
        sim.send_packet(a, b, format!("pair {k}").as_bytes());
        sim.run_for(Duration::from_millis(300));
        delivered += sim.take_delivered(b).len().min(1);
    }
    let most_root_changes = honest
        .iter()
        .zip(&changes_before)
        .map(|(&i, before)| sim.sim_node(i).root_changes.len() - before)
        .max()
        .unwrap_or(0);
    let most_stored = honest
        .iter()
        .map(|&i| sim.node(i).unwrap().tree().stored())
        .max()
        .unwrap_or(0);
    let most_sessions = honest
        .iter()
        .map(|&i| sim.node(i).unwrap().sessions().len())
        .max()
        .unwrap_or(0);
    Outcome {
        delivered,
        most_root_changes,
        busiest_link,
        most_stored,
        most_sessions,
    }
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow without optimisations: run with cargo test --release"
)]
fn a_misbehaving_member_hurts_no_more_than_a_crashed_one() {
    let crashed = run(Case::Crash);
    eprintln!("crashed:  {crashed:?}");
    let mut failures = Vec::new();
    for m in [
        Misbehaviour::AnnounceAboutPeers,
        Misbehaviour::SigReqStorm,
        Misbehaviour::AnnounceThrowaways,
        Misbehaviour::NeighbourLies,
        Misbehaviour::FragmentFlood,
        Misbehaviour::PathBrokenForOthers,
    ] {
        let o = run(Case::Misbehave(m));
        let ratio = o.delivered as f64 / crashed.delivered.max(1) as f64;
        eprintln!(
            "{m:?}: {o:?}; delivery {:.3} of the crash's; busiest honest link {:.2}x the crash's",
            ratio,
            o.busiest_link / crashed.busiest_link.max(1.0)
        );
        if ratio < 0.99 {
            failures.push(format!("{m:?}: delivery {ratio:.3}"));
        }
        if o.most_root_changes > 1 {
            failures.push(format!("{m:?}: {} root changes", o.most_root_changes));
        }
        // Forged broken-path reports are traffic the adversary injects itself; every hop passes at
        // most 0.5 a second of one reporter's (`node/lookup.rs`), which on this mesh is 2.3x the
        // crash's busiest link (341 B/s): the one case over 2x.
        let allowed = if m == Misbehaviour::PathBrokenForOthers {
            2.5
        } else {
            2.0
        };
        if o.busiest_link > allowed * crashed.busiest_link.max(1.0) {
            failures.push(format!(
                "{m:?}: busiest honest link {:.0} B/s vs {:.0}",
                o.busiest_link, crashed.busiest_link
            ));
        }
        // What a peer can make us hold: its verification budget's burst plus its rate over the 30 s
        // an announcement on no chain is kept (`tree/peer.rs`, `tree/mod.rs` GC_GRACE).
        if o.most_stored > crashed.most_stored + 200 + 50 * 30 {
            failures.push(format!("{m:?}: {} announcements held", o.most_stored));
        }
        if o.most_sessions > crashed.most_sessions + 256 {
            failures.push(format!("{m:?}: {} sessions held", o.most_sessions));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
