//! One malicious member in a 50-node mesh, for each misbehaviour of `sim::Misbehaviour`, against the
//! same node merely crashing and against nobody misbehaving (same seed, same topology with links of
//! 1-20 ms, same pairs): delivery between honest pairs (at least 99 % of the crash's), root changes of
//! honest nodes (at most one), control traffic on links between honest nodes (at most twice idle),
//! traffic the bad node draws (no more than when honest) and what honest nodes hold (bounded).
//! Misbehaving must hurt no more than being absent.

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
    /// Nobody misbehaves: the idle control traffic.
    Honest,
    Crash,
    Misbehave(Misbehaviour),
}

#[derive(Debug)]
struct Outcome {
    delivered: usize,
    /// Pairs lost whose destination's way to the root went through the bad node.
    lost_below_bad: usize,
    /// Honest nodes whose parent is the bad node, before and after it turned bad.
    children: (usize, usize),
    /// Most bytes on one link between honest nodes in the first 30 s of the misbehaviour.
    first_30s: u64,
    /// Packets of the pairs that the bad node forwarded.
    forwarded_by_bad: u64,
    /// Largest bytes per second on one link between honest nodes while the pairs send.
    busiest_link_traffic: f64,
    most_root_changes: usize,
    /// Largest bytes per second on one link between honest nodes, in a 20 s window without traffic
    /// that starts 30 s after the misbehaviour did.
    busiest_link: f64,
    /// Most announcements, sessions and known paths one honest node holds.
    most_stored: usize,
    most_sessions: usize,
}

/// Whether node `x`'s way up the tree to the root goes through node `bad`.
fn below(sim: &Sim, x: usize, bad: usize) -> bool {
    let mut key = sim.key(x);
    for _ in 0..N {
        let Some(i) = (0..N).find(|&i| sim.key(i) == key) else {
            return false;
        };
        if i == bad {
            return true;
        }
        let Some(parent) = sim.node(i).map(|n| n.tree().parent()) else {
            return false;
        };
        if parent == key {
            return false;
        }
        key = parent;
    }
    false
}

fn run(case: Case) -> Outcome {
    let mut topo_rng = Rng::from_seed([7; 32]);
    let edges = topology::random(N, 3.0, &mut topo_rng);
    let mut sim = Sim::build(SEED, N, &edges, WireParams::default());
    // Links of different lengths (1-20 ms one way), so that round trips decide parents and next
    // hops and a lie about them could matter.
    for w in 0..edges.len() {
        let latency = Duration::from_millis(1 + topo_rng.below(20) as u64);
        sim.set_params(
            w,
            WireParams {
                latency,
                ..WireParams::default()
            },
        );
    }
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
    let children = |sim: &Sim| {
        honest
            .iter()
            .filter(|&&i| {
                sim.node(i)
                    .is_some_and(|n| n.tree().parent() == sim.key(bad))
            })
            .count()
    };
    let children_before = children(&sim);
    let changes_before: Vec<usize> = honest
        .iter()
        .map(|&i| sim.sim_node(i).root_changes.len())
        .collect();
    match case {
        Case::Honest => {}
        Case::Crash => sim.crash(bad),
        Case::Misbehave(m) => sim.misbehave(bad, m),
    }
    // The first 30 s: what it costs before the damping of `lookup/filters.rs` is spent.
    let honest_wires: Vec<usize> = sim
        .wires()
        .enumerate()
        .filter(|(_, (a, b, _))| *a != bad && *b != bad)
        .map(|(w, _)| w)
        .collect();
    let bytes = |sim: &Sim| -> Vec<u64> {
        honest_wires
            .iter()
            .map(|&w| sim.wire_bytes(w).iter().sum())
            .collect()
    };
    let at_start = bytes(&sim);
    sim.run_for(Duration::from_secs(30));
    let first_30s = bytes(&sim)
        .iter()
        .zip(&at_start)
        .map(|(now, before)| now - before)
        .max()
        .unwrap_or(0);
    // Control traffic alone, 20 s, on links between honest nodes.
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
    let children_after = children(&sim);
    let forwarded = |sim: &Sim| sim.node(bad).map_or(0, |n| n.stats().forwarded);
    let forwarded_before = forwarded(&sim);
    let before_pairs: Vec<u64> = honest_wires
        .iter()
        .map(|&w| sim.wire_bytes(w).iter().sum())
        .collect();
    // The same pairs in every case.
    let mut pair_rng = Rng::from_seed([8; 32]);
    let mut delivered = 0;
    let mut lost_below_bad = 0;
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
        let got = sim.take_delivered(b).len().min(1);
        delivered += got;
        if got == 0 && below(&sim, b, bad) {
            lost_below_bad += 1;
        }
    }
    let forwarded_by_bad = forwarded(&sim) - forwarded_before;
    let busiest_link_traffic = honest_wires
        .iter()
        .zip(&before_pairs)
        .map(|(&w, b)| (sim.wire_bytes(w).iter().sum::<u64>() - b) as f64 / (PAIRS as f64 * 0.6))
        .fold(0.0, f64::max);
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
        lost_below_bad,
        children: (children_before, children_after),
        first_30s,
        forwarded_by_bad,
        busiest_link_traffic,
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
    let honest = run(Case::Honest);
    eprintln!("honest:   {honest:?}");
    let crashed = run(Case::Crash);
    eprintln!("crashed:  {crashed:?}");
    let idle = honest.busiest_link;
    let mut failures = Vec::new();
    for m in [
        Misbehaviour::AnnounceAboutPeers,
        Misbehaviour::SigReqStorm,
        Misbehaviour::AnnounceThrowaways,
        Misbehaviour::NeighbourLies,
        Misbehaviour::FragmentFlood,
        Misbehaviour::PathBrokenForOthers,
        Misbehaviour::HugeSubtree,
        Misbehaviour::SubtreeFlips,
        Misbehaviour::SubtreeCreep,
        Misbehaviour::FakeRtt,
        // Its lie about the best key matters only while a mesh has lost its root, which
        // `sim_routing.rs` measures; here it is a member that announces itself detached, which
        // loses its subtree as its crash does (0.951 of the crash's delivery while detached nodes'
        // attached peers still routed through their old places, SECURITY.md).
        Misbehaviour::LieAboutBest,
    ] {
        let o = run(Case::Misbehave(m));
        // A member that lies about its subtree set can hide the honest nodes below it from lookups
        // (their tags no longer reach its parent), as a parent that drops its children's traffic
        // hides them: a known limit (SECURITY.md), not counted here. Everyone else must fare as well
        // as with a crash.
        let hides_below = matches!(
            m,
            Misbehaviour::HugeSubtree | Misbehaviour::SubtreeFlips | Misbehaviour::SubtreeCreep
        );
        let counted = o.delivered + if hides_below { o.lost_below_bad } else { 0 };
        let ratio = counted as f64 / crashed.delivered.max(1) as f64;
        eprintln!(
            "{m:?}: {o:?}; delivery {:.3} of the crash's; busiest honest link {:.2}x idle, \
             {:.2}x the crash's",
            ratio,
            o.busiest_link / idle,
            o.busiest_link / crashed.busiest_link.max(1.0)
        );
        if ratio < 0.99 {
            failures.push(format!("{m:?}: delivery {ratio:.3}"));
        }
        // A member that announces itself detached cuts the mesh where its crash would (here two
        // roots for a while): as many root changes as the crash, no more.
        let root_changes_allowed = if m == Misbehaviour::LieAboutBest {
            crashed.most_root_changes
        } else {
            1
        };
        if o.most_root_changes > root_changes_allowed {
            failures.push(format!("{m:?}: {} root changes", o.most_root_changes));
        }
        if o.busiest_link > 2.0 * idle {
            failures.push(format!(
                "{m:?}: busiest honest link {:.0} B/s, idle {idle:.0}",
                o.busiest_link
            ));
        }
        // Before that window: a filter liar may spend the damping's bursts (`lookup/filters.rs`:
        // 256 growing and 64 shrinking versions of its filter, each at most two ways), about 1.2 KB
        // a version.
        let burst = (256 + 2 * 64 + 4) * 1200;
        if o.first_30s > honest.first_30s + burst {
            failures.push(format!(
                "{m:?}: {} bytes on a link in the first 30 s, idle {}",
                o.first_30s, honest.first_30s
            ));
        }
        // Lookups that all-ones filters attract, and the like, while the pairs send.
        if o.busiest_link_traffic > 2.0 * honest.busiest_link_traffic {
            failures.push(format!(
                "{m:?}: busiest honest link with traffic {:.0} B/s vs {:.0}",
                o.busiest_link_traffic, honest.busiest_link_traffic
            ));
        }
        // Lies (about round trips, neighbours) must win it neither children it did not have nor
        // traffic it would not carry honestly, give or take 5 % of timing (without the RTT floor of
        // `link/liveness.rs`, a FakeRtt node forwards 151 packets of the pairs' here, against 134 when
        // honest).
        if o.children.1 > o.children.0 {
            failures.push(format!("{m:?}: children {:?}", o.children));
        }
        if o.forwarded_by_bad as f64 > 1.05 * honest.forwarded_by_bad as f64 {
            failures.push(format!(
                "{m:?}: forwarded {} packets, {} when honest",
                o.forwarded_by_bad, honest.forwarded_by_bad
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
