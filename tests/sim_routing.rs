//! The routing core in the deterministic simulator: convergence, delivery, stretch, failover,
//! partitions, lossy links, root churn and idle control traffic. Seeds are fixed; every test prints its
//! figures (run with `--nocapture` to see them) and a failing assertion names its seed.
//!
//! Sampled pairs use the real path (IPv6 packet, lookup, greedy forwarding). Steady flows during
//! failures take the destination's current coordinates from an oracle (`Sim::send`), so that their gaps
//! measure routing repair alone; `tests/sim_lookup.rs` covers re-lookup after a broken path.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use meshrouter::core::rng::Rng;
use meshrouter::core::time::Instant;
use meshrouter::core::tree;
use meshrouter::sim::{Misbehaviour, Sim, WireParams, topology};
use support::*;

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

fn cold_start(name: &str, seed: u64, n: usize, edges: &[topology::Edge]) -> f64 {
    let mut sim = Sim::build(seed, n, edges, WireParams::default());
    let converged = run_until_one_root(&mut sim, &all(n), Duration::from_secs(4));
    assert!(
        converged.is_some(),
        "{name}: no single root within 4 s (seed {seed})"
    );
    let sample = sample_pairs(&mut sim, edges, &all(n), 200, Duration::from_millis(200));
    eprintln!(
        "{name}: one root at {:.2} s; delivered {}/{}; stretch {:.3}",
        secs(converged.unwrap()),
        sample.delivered,
        sample.tries,
        sample.stretch()
    );
    assert_eq!(
        sample.delivered, sample.tries,
        "{name}: lost packets (seed {seed})"
    );
    sample.stretch()
}

#[test]
fn cold_start_line_grid_and_random_graph_converge_within_4_s() {
    cold_start("10-node line", 11, 10, &topology::line(10));
    let grid = cold_start("7x7 grid", 12, 49, &topology::grid(7, 7));
    let mut rng = Rng::from_seed([13; 32]);
    let random = cold_start(
        "100-node random",
        13,
        100,
        &topology::random(100, 4.0, &mut rng),
    );
    // Stretch is a goal (1.25), reported above; guard against regressions beyond today's figures.
    assert!(
        grid < 1.4 && random < 1.5,
        "stretch grid {grid:.3} random {random:.3}"
    );
}

/// Converged 100-node random graph and a flow between two distant nodes.
fn failover_setup(seed: u64) -> (Sim, Vec<topology::Edge>, usize, usize) {
    let mut rng = Rng::from_seed([seed as u8; 32]);
    let edges = topology::random(100, 4.0, &mut rng);
    let mut sim = Sim::build(seed, 100, &edges, WireParams::default());
    run_until_one_root(&mut sim, &all(100), Duration::from_secs(4)).unwrap();
    sim.run_for(Duration::from_secs(2));
    let hops = topology::hop_counts(100, &edges, 0);
    let far = (1..100).max_by_key(|&i| hops[i]).unwrap();
    (sim, edges, 0, far)
}

#[test]
fn cutting_an_active_link_under_traffic_resumes_delivery_within_3_s() {
    let (mut sim, edges, a, b) = failover_setup(21);
    let path = path_wires(&mut sim, a, b);
    assert!(path.len() >= 3, "path too short: {path:?}");
    // The middle-most link on the path whose loss leaves a and b connected.
    let mut candidates = path.clone();
    candidates.sort_by_key(|&w| (w as isize - path[path.len() / 2] as isize).abs());
    let victim = *candidates
        .iter()
        .find(|&&w| still_connected(100, &edges, a, b, |e| *e == edges[w]))
        .expect("every path link is a bridge");
    let interval = Duration::from_millis(20);
    let delivered = flow(
        &mut sim,
        a,
        b,
        interval,
        Duration::from_secs(10),
        Duration::from_secs(2),
        |s| s.cut(victim),
    );
    let gap = longest_gap(&delivered, 2.0, 10.0);
    eprintln!(
        "link cut: path {} hops, delivery gap {gap:.2} s",
        path.len()
    );
    assert!(gap <= 3.0, "gap {gap:.2} s (seed 21)");
}

#[test]
fn crashing_a_transit_node_resumes_delivery_within_3_s() {
    let (mut sim, edges, a, b) = failover_setup(22);
    let path = path_wires(&mut sim, a, b);
    let transit: HashSet<usize> = path
        .iter()
        .flat_map(|&w| {
            let (x, y, _) = sim.wires().nth(w).unwrap();
            [x, y]
        })
        .filter(|&n| n != a && n != b)
        .collect();
    let mut transit: Vec<usize> = transit
        .into_iter()
        .filter(|&v| still_connected(100, &edges, a, b, |&(x, y)| x == v || y == v))
        .collect();
    transit.sort();
    assert!(!transit.is_empty(), "every transit node is a cut vertex");
    let victim = transit[transit.len() / 2];
    let delivered = flow(
        &mut sim,
        a,
        b,
        Duration::from_millis(20),
        Duration::from_secs(10),
        Duration::from_secs(2),
        |s| s.crash(victim),
    );
    let gap = longest_gap(&delivered, 2.0, 10.0);
    eprintln!(
        "transit crash: node {victim} of {} transit nodes, delivery gap {gap:.2} s",
        transit.len()
    );
    assert!(gap <= 3.0, "gap {gap:.2} s (seed 22)");
}

#[test]
fn partition_gives_one_root_per_side_and_heal_restores_delivery() {
    let seed = 31;
    let mut rng = Rng::from_seed([31; 32]);
    let mut edges = topology::random(25, 4.0, &mut rng);
    edges.extend(
        topology::random(25, 4.0, &mut rng)
            .into_iter()
            .map(|(x, y)| (x + 25, y + 25)),
    );
    edges.extend([(0, 25), (7, 31), (13, 44)]);
    let mut sim = Sim::build(seed, 50, &edges, WireParams::default());
    run_until_one_root(&mut sim, &all(50), Duration::from_secs(4)).unwrap();
    sim.run_for(Duration::from_secs(5));

    let (left, right): (Vec<usize>, Vec<usize>) = (0..25).zip(25..50).unzip();
    let cut_at = sim.now();
    let bridges = sim.partition(&left);
    assert_eq!(bridges.len(), 3);
    let mut split = [None, None];
    while sim.now().saturating_since(cut_at) <= Duration::from_secs(15) && split.contains(&None) {
        for (side, nodes) in [&left, &right].into_iter().enumerate() {
            if split[side].is_none() && sim.distinct_roots(nodes) == vec![Some(sim.best_key(nodes))]
            {
                split[side] = Some(secs(sim.now()) - secs(cut_at));
            }
        }
        sim.run_for(Duration::from_millis(50));
    }
    eprintln!("partition: one root per side after {split:?} s");
    assert!(
        split.iter().all(|t| t.is_some_and(|t| t <= 10.0)),
        "{split:?} (seed {seed})"
    );

    sim.run_for(Duration::from_secs(20));
    let heal_at = sim.now();
    for w in bridges {
        sim.restore(w);
    }
    let healed = run_until_one_root(&mut sim, &all(50), Duration::from_secs(10))
        .map(|t| secs(t) - secs(heal_at));
    // Rounds of 20 pairs (100 ms each) until one round delivers everything: "full delivery again".
    let mut full = None;
    while full.is_none() && sim.now().saturating_since(heal_at) < Duration::from_secs(10) {
        let round = sample_pairs(&mut sim, &edges, &all(50), 20, Duration::from_millis(100));
        if round.delivered == round.tries {
            full = Some(secs(sim.now()) - secs(heal_at));
        }
    }
    sim.run_until(heal_at + Duration::from_secs(10));
    let sample = sample_pairs(&mut sim, &edges, &all(50), 100, Duration::from_millis(100));
    eprintln!(
        "heal: one root after {healed:?} s; a full round of 20 pairs delivered by {full:?} s; \
         {}/{} pairs delivered at 10 s",
        sample.delivered, sample.tries
    );
    assert!(healed.is_some_and(|t| t <= 10.0), "(seed {seed})");
    assert!(full.is_some_and(|t| t <= 10.0), "(seed {seed})");
    assert_eq!(sample.delivered, sample.tries, "(seed {seed})");
}

#[test]
fn lossy_duplicating_reordering_links_still_converge_and_never_accept_duplicates_or_forgeries() {
    let seed = 41;
    let mut rng = Rng::from_seed([41; 32]);
    let edges = topology::random(30, 4.0, &mut rng);
    let clean = WireParams::default();
    let lossy = WireParams {
        loss: 0.10,
        duplicate: 0.02,
        reorder: 0.05,
        corrupt: 0.01,
        jitter: Duration::from_millis(1),
        ..WireParams::default()
    };
    let mut sim = Sim::build(seed, 30, &edges, lossy);
    let converged = run_until_one_root(&mut sim, &all(30), Duration::from_secs(20));
    eprintln!("lossy: one root at {:?} s", converged.map(secs));
    assert!(converged.is_some(), "(seed {seed})");
    sim.run_for(Duration::from_secs(5));

    let (mut sent, mut expected, mut got) = (0usize, 0.0f64, 0usize);
    for pair in 0..40 {
        let (a, b) = (sim.random_index(30), sim.random_index(30));
        if a == b {
            continue;
        }
        // Measure the path length on clean links, then send through the lossy ones.
        for w in 0..edges.len() {
            sim.set_params(w, clean);
        }
        let before = sim.total_forwarded();
        sim.send(a, b, b"probe");
        sim.run_for(Duration::from_millis(100));
        sim.take_delivered(b);
        let hops = (sim.total_forwarded() - before + 1) as i32;
        for w in 0..edges.len() {
            sim.set_params(w, lossy);
        }
        for k in 0..25u32 {
            sim.send(a, b, format!("{pair}/{k}").as_bytes());
            sim.run_for(Duration::from_millis(20));
        }
        sim.run_for(Duration::from_millis(200));
        let payloads: Vec<Vec<u8>> = sim
            .take_delivered(b)
            .into_iter()
            .map(|(_, d)| d.payload.to_vec())
            .collect();
        let unique: HashSet<&Vec<u8>> = payloads.iter().collect();
        assert_eq!(
            unique.len(),
            payloads.len(),
            "duplicate delivered (seed {seed})"
        );
        for p in &payloads {
            let text = std::str::from_utf8(p).expect("forged payload delivered");
            assert!(
                text.starts_with(&format!("{pair}/")),
                "foreign payload {text:?}"
            );
        }
        sent += 25;
        expected += 25.0 * 0.9f64.powi(hops);
        got += payloads.len();
    }
    let ratio = got as f64 / expected;
    let unauthentic: u64 = (0..30)
        .filter_map(|i| sim.node(i))
        .map(|n| {
            n.stats()
                .drops
                .iter()
                .filter(|(k, _)| k.contains("Unauthentic"))
                .map(|(_, v)| *v)
                .sum::<u64>()
        })
        .sum();
    eprintln!(
        "lossy: sent {sent}, delivered {got}, expected (1-loss)^hops {expected:.0} (ratio {ratio:.3}); \
         forged or replayed frames refused: {unauthentic}"
    );
    assert!(unauthentic > 0, "the forgery injector did not fire");
    assert!(
        (0.85..=1.1).contains(&ratio),
        "ratio {ratio:.3} (seed {seed})"
    );
}

/// A key lower than every key a normal node will ever draw (many leading zero bits).
fn mined_seed(below: meshrouter::core::identity::PublicKey) -> [u8; 32] {
    let mut rng = Rng::from_seed([99; 32]);
    loop {
        let seed = rng.bytes32();
        if meshrouter::core::identity::NodeKey::from_seed(&seed).public_key() < below {
            return seed;
        }
    }
}

#[test]
fn a_better_root_joining_and_leaving_changes_each_root_at_most_once_per_event() {
    let seed = 51;
    let mut rng = Rng::from_seed([51; 32]);
    let edges = topology::random(50, 4.0, &mut rng);
    let mut sim = Sim::build(seed, 50, &edges, WireParams::default());
    let nodes = all(50);
    run_until_one_root(&mut sim, &nodes, Duration::from_secs(4)).unwrap();
    sim.run_for(Duration::from_secs(10));
    let old_root = sim.best_key(&nodes);

    let count_changes = |sim: &Sim, since: f64| -> usize {
        nodes
            .iter()
            .map(|&i| {
                let mut last = None;
                let mut changes = 0;
                for (t, root) in &sim.sim_node(i).root_changes {
                    let Some(root) = root else { continue };
                    if secs(*t) >= since && last.is_some_and(|l| l != *root) {
                        changes += 1;
                    }
                    last = Some(*root);
                }
                changes
            })
            .max()
            .unwrap()
    };

    // Join.
    let x = sim.add_node_with_seed(mined_seed(old_root));
    let join_at = secs(sim.now());
    sim.connect(x, 17, WireParams::default());
    let joined =
        run_until_one_root(&mut sim, &all(51), Duration::from_secs(10)).map(|t| secs(t) - join_at);
    sim.run_for(Duration::from_secs(10));
    let join_changes = count_changes(&sim, join_at);
    eprintln!(
        "better root joins: all switched after {joined:?} s; max root changes per node {join_changes}"
    );
    assert!(joined.is_some());
    assert!(join_changes <= 1, "(seed {seed})");

    // Leave, with five flows running to measure the delivery gap.
    let pairs = [(3, 40), (8, 22), (30, 1), (45, 12), (17, 36)];
    let leave_at = sim.now();
    let mut back = None;
    let mut sent: Vec<Vec<f64>> = vec![Vec::new(); pairs.len()];
    let mut arrived: Vec<Vec<f64>> = vec![Vec::new(); pairs.len()];
    sim.crash(x);
    while sim.now().saturating_since(leave_at) < Duration::from_secs(20) {
        let t = secs(sim.now()) - secs(leave_at);
        for (k, &(a, b)) in pairs.iter().enumerate() {
            sim.send(
                a,
                b,
                &(k as u64 * 1_000_000 + sent[k].len() as u64).to_be_bytes(),
            );
            sent[k].push(t);
        }
        sim.run_for(Duration::from_millis(20));
        for (k, &(_, b)) in pairs.iter().enumerate() {
            for (_, d) in sim.take_delivered(b) {
                let id = u64::from_be_bytes(d.payload[..].try_into().unwrap());
                if id / 1_000_000 == k as u64 {
                    arrived[k].push(sent[k][(id % 1_000_000) as usize]);
                }
            }
        }
        if back.is_none() && sim.distinct_roots(&nodes) == vec![Some(old_root)] {
            back = Some(t);
        }
    }
    let gap = arrived
        .iter()
        .map(|a| longest_gap(a, 0.0, 19.9))
        .fold(0.0, f64::max);
    let leave_changes = count_changes(&sim, secs(leave_at));
    eprintln!(
        "better root leaves: old root back everywhere after {back:?} s; max root changes per node \
         {leave_changes}; longest delivery gap over 5 flows {gap:.2} s"
    );
    assert_eq!(sim.distinct_roots(&nodes), vec![Some(old_root)]);
    assert!(leave_changes <= 1, "(seed {seed})");
}

/// A random mesh of `n` nodes (mean degree 4) with one root, settled for 15 s; and its root.
fn settled_mesh(n: usize, seed: u64) -> (Sim, Vec<topology::Edge>, usize) {
    let mut rng = Rng::from_seed([seed as u8; 32]);
    let edges = topology::random(n, 4.0, &mut rng);
    let mut sim = Sim::build(seed, n, &edges, WireParams::default());
    run_until_one_root(&mut sim, &all(n), Duration::from_secs(4)).unwrap();
    sim.run_for(Duration::from_secs(15));
    let best = sim.best_key(&all(n));
    let root = (0..n).find(|&i| sim.key(i) == best).unwrap();
    (sim, edges, root)
}

/// Crashes `root`, then runs until every node of `among` has the best key of `among` as root (at
/// most `limit_s` seconds): when it crashed, and how long after that one root held.
fn crash_until_one_root(
    sim: &mut Sim,
    root: usize,
    among: &[usize],
    limit_s: u64,
) -> (Instant, Option<f64>) {
    let next = sim.best_key(among);
    let crash_at = sim.now();
    sim.crash(root);
    let mut one_root = None;
    while one_root.is_none() && sim.now().saturating_since(crash_at) < Duration::from_secs(limit_s)
    {
        sim.run_for(Duration::from_millis(10));
        if sim.distinct_roots(among) == vec![Some(next)] {
            one_root = Some(secs(sim.now()) - secs(crash_at));
        }
    }
    (crash_at, one_root)
}

/// How long after `since` each node of `among` first had no root.
fn detach_times(sim: &Sim, among: &[usize], since: Instant) -> Vec<f64> {
    among
        .iter()
        .filter_map(|&i| {
            let changes = &sim.sim_node(i).root_changes;
            changes.iter().find(|(t, r)| *t >= since && r.is_none())
        })
        .map(|(t, _)| secs(*t) - secs(since))
        .collect()
}

/// A detached node's moment by rank for `key`: its first 32 bits as a fraction of `RANK_SPREAD`.
fn ranked_moment(key: &meshrouter::core::identity::PublicKey) -> f64 {
    let rank = f64::from(u32::from_be_bytes(key.as_bytes()[..4].try_into().unwrap()));
    tree::RANK_SPREAD.as_secs_f64() * rank / 2f64.powi(32)
}

/// When the root of a village-sized mesh crashes and no root came before it (nothing to go back
/// to), every node takes the best remaining key, once: after the crash is noticed on idle links,
/// the hold (`HOLD_SELF`), that key's ranked moment (its rank as a fraction of `RANK_SPREAD`) and
/// `RANK_MARGIN`. Prints how long the mesh was without one root (PROTOCOL.md §3.3).
#[test]
fn crashing_the_root_of_a_small_mesh_moves_every_node_once_to_the_next_best_key() {
    for (n, seed) in [(10, 61), (25, 62), (50, 63)] {
        let (mut sim, edges, root) = settled_mesh(n, seed);
        let best = sim.key(root);
        let rest: Vec<usize> = (0..n).filter(|&i| i != root).collect();
        let connected = rest
            .iter()
            .all(|&b| still_connected(n, &edges, rest[0], b, |&(x, y)| x == root || y == root));
        assert!(connected, "the root is a cut vertex (seed {seed})");
        let next = sim.best_key(&rest);
        let moment = ranked_moment(&next);
        let (crash_at, one_root) = crash_until_one_root(&mut sim, root, &rest, 20);
        sim.run_for(Duration::from_secs(5));
        let changes = rest
            .iter()
            .map(|&i| {
                let mut last = best;
                let mut changes = 0;
                for (t, r) in &sim.sim_node(i).root_changes {
                    if *t >= crash_at
                        && let Some(r) = r
                        && *r != last
                    {
                        changes += 1;
                        last = *r;
                    }
                }
                changes
            })
            .max()
            .unwrap();
        let detached = detach_times(&sim, &rest, crash_at);
        let first = detached.iter().copied().fold(f64::INFINITY, f64::min);
        let last = detached.iter().copied().fold(0.0, f64::max);
        eprintln!(
            "root crash, {n} nodes: nodes detached {first:.2}-{last:.2} s after it, one root (the next \
             best key, its moment {moment:.2} s) after {one_root:?} s, most root changes of a node \
             {changes}"
        );
        // From the last node to detach (idle links notice the crash 3-4 s after it, each of the
        // root's peers on its own), plus 0.3 s for the new root's announcements to come down.
        let bound = tree::HOLD_SELF.as_secs_f64() + moment + tree::RANK_MARGIN.as_secs_f64() + 0.3;
        let rooted = one_root.map(|t| t - last);
        assert!(
            rooted.is_some_and(|t| t <= bound),
            "{rooted:?} > {bound:.2} s (seed {seed})"
        );
        assert_eq!(changes, 1, "(seed {seed})");
    }
}

/// While a crashed root's mesh is detached (the hold, then the wait for the next best key),
/// packets go on by the coordinates nodes had under it (`Tree::coords`, `Tree::peer_coords`):
/// flows between nodes that reach each other greedily without the root keep their packets, where
/// every one sent while all nodes were detached was lost before. Once the next key is the root,
/// each path is looked up again (`Paths::note_root`). The flows use the real path (IPv6
/// packets, lookups, sessions).
#[test]
fn flows_keep_going_while_a_crashed_roots_mesh_is_detached() {
    let (n, seed) = (50, 63);
    let (mut sim, _, root) = settled_mesh(n, seed);
    let rest: Vec<usize> = (0..n).filter(|&i| i != root).collect();
    let mut pick = Rng::from_seed([64; 32]);
    let mut flows = Vec::new();
    while flows.len() < 20 {
        let (a, b) = (rest[pick.below(rest.len())], rest[pick.below(rest.len())]);
        if a != b {
            flows.push((a, b));
        }
    }
    for &(a, b) in &flows {
        sim.send_packet(a, b, b"warm up");
    }
    sim.run_for(Duration::from_secs(2));
    for &(_, b) in &flows {
        sim.take_delivered(b);
    }
    let crash_at = sim.now();
    sim.crash(root);
    // A numbered packet on every flow each 100 ms for 15 s.
    let mut sent_at = Vec::new();
    for _ in 0..150 {
        for &(a, b) in &flows {
            sim.send_packet(a, b, &(sent_at.len() as u32).to_be_bytes());
            sent_at.push(secs(sim.now()) - secs(crash_at));
        }
        sim.run_for(Duration::from_millis(100));
    }
    sim.run_for(Duration::from_secs(1));
    let mut arrived = vec![false; sent_at.len()];
    for &(_, b) in &flows {
        for (_, d) in sim.take_delivered(b) {
            let tail = d.payload.len().saturating_sub(4);
            if let Ok(seq) = <[u8; 4]>::try_from(&d.payload[tail..])
                && let Some(a) = arrived.get_mut(u32::from_be_bytes(seq) as usize)
            {
                *a = true;
            }
        }
    }
    // The moments every node was detached: from the last to detach to the first to have a root.
    let detached = detach_times(&sim, &rest, crash_at);
    assert_eq!(
        detached.len(),
        rest.len(),
        "every node detached (seed {seed})"
    );
    let all_detached = detached.iter().copied().fold(0.0, f64::max);
    let first_root = rest
        .iter()
        .filter_map(|&i| {
            let changes = &sim.sim_node(i).root_changes;
            changes
                .iter()
                .find(|(t, r)| secs(*t) - secs(crash_at) > all_detached && r.is_some())
        })
        .map(|(t, _)| secs(*t) - secs(crash_at))
        .fold(f64::INFINITY, f64::min);
    let share = |from: f64, to: f64| {
        let within: Vec<bool> = (0..sent_at.len())
            .filter(|&i| sent_at[i] >= from && sent_at[i] < to)
            .map(|i| arrived[i])
            .collect();
        let got = within.iter().filter(|&&a| a).count();
        (got, within.len())
    };
    let (during, sent_during) = share(all_detached, first_root);
    let (after, sent_after) = share(first_root + 2.0, 15.0);
    eprintln!(
        "root crash, {n} nodes, {} flows: all detached {all_detached:.2}-{first_root:.2} s after \
         it; delivered {during}/{sent_during} of the packets sent then, {after}/{sent_after} of \
         those sent from 2 s after the first node had a root again",
        flows.len()
    );
    assert!(
        sent_during > 0,
        "no moment with every node detached (seed {seed})"
    );
    assert!(
        during * 2 >= sent_during,
        "{during}/{sent_during} delivered while detached (seed {seed})"
    );
    assert!(
        after * 100 >= sent_after * 95,
        "{after}/{sent_after} delivered after the new root (seed {seed})"
    );
}

/// A member that, detached or not, names a key below every real one as the best it heard of
/// (`Misbehaviour::LieAboutBest`) makes a detached mesh wait for a key that never comes: the
/// wait is bounded by `BEST_GRACE`, after which the best remaining key roots itself at its ranked
/// moment as it did before detached nodes named keys, and every honest node moves once.
#[test]
fn a_lie_about_the_best_key_delays_a_new_root_by_the_grace_only() {
    let (n, seed) = (25, 62);
    let (mut sim, _, root) = settled_mesh(n, seed);
    let liar = (0..n).find(|&i| i != root).unwrap();
    let honest: Vec<usize> = (0..n).filter(|&i| i != root && i != liar).collect();
    sim.misbehave(liar, Misbehaviour::LieAboutBest);
    sim.run_for(Duration::from_secs(2));
    let moment = ranked_moment(&sim.best_key(&honest));
    let (crash_at, one_root) = crash_until_one_root(&mut sim, root, &honest, 25);
    let last_detached = detach_times(&sim, &honest, crash_at)
        .into_iter()
        .fold(0.0, f64::max);
    let bound = tree::HOLD_SELF.as_secs_f64()
        + moment
        + tree::RANK_MARGIN.as_secs_f64()
        + tree::BEST_GRACE.as_secs_f64()
        + 0.3;
    let rooted = one_root.map(|t| t - last_detached);
    eprintln!(
        "root crash with a liar about the best key, {n} nodes: one root after {one_root:?} s, \
         {rooted:?} s after the last honest node detached (bound {bound:.2} s)"
    );
    assert!(
        rooted.is_some_and(|t| t <= bound),
        "{rooted:?} > {bound:.2} s (seed {seed})"
    );
}

#[test]
fn idle_control_traffic_per_link_stays_under_100_bytes_per_second() {
    let mut rng = Rng::from_seed([61; 32]);
    let edges = topology::random(30, 4.0, &mut rng);
    let mut sim = Sim::build(61, 30, &edges, WireParams::default());
    run_until_one_root(&mut sim, &all(30), Duration::from_secs(4)).unwrap();
    sim.run_for(Duration::from_secs(30));
    let total = |sim: &Sim| -> u64 {
        (0..edges.len())
            .map(|w| sim.wire_bytes(w).iter().sum::<u64>())
            .sum()
    };
    let before = total(&sim);
    let window = 600.0;
    sim.run_for(Duration::from_secs_f64(window));
    let per_link = (total(&sim) - before) as f64 / edges.len() as f64 / window;
    eprintln!(
        "idle control traffic: {per_link:.1} B/s per link (both directions, datagram payloads)"
    );
    assert!(per_link <= 100.0, "{per_link:.1} B/s");
}

#[test]
fn parallel_links_carry_traffic_on_the_faster_one_and_fail_over_to_the_other() {
    let mut sim = Sim::new(91);
    let (a, b) = (sim.add_node(), sim.add_node());
    let slow = sim.connect(
        a,
        b,
        WireParams {
            latency: Duration::from_millis(20),
            ..WireParams::default()
        },
    );
    let fast = sim.connect(
        a,
        b,
        WireParams {
            latency: Duration::from_millis(2),
            ..WireParams::default()
        },
    );
    sim.run_for(Duration::from_secs(5));
    let bytes = |sim: &Sim, w: usize| sim.wire_bytes(w).iter().sum::<u64>();
    let (slow0, fast0) = (bytes(&sim, slow), bytes(&sim, fast));
    for _ in 0..50 {
        sim.send(a, b, &[0; 1000]);
        sim.run_for(Duration::from_millis(10));
    }
    let (slow1, fast1) = (bytes(&sim, slow), bytes(&sim, fast));
    assert!(
        fast1 - fast0 > 50_000 && slow1 - slow0 < 5_000,
        "fast {} slow {}",
        fast1 - fast0,
        slow1 - slow0
    );
    let delivered = flow(
        &mut sim,
        a,
        b,
        Duration::from_millis(20),
        Duration::from_secs(6),
        Duration::from_secs(1),
        |s| s.cut(fast),
    );
    let gap = longest_gap(&delivered, 1.0, 6.0);
    eprintln!(
        "parallel links: faster link carried the traffic; after cutting it, gap {gap:.2} s on the slower one"
    );
    assert!(gap <= 3.0, "gap {gap:.2} s");
}

#[test]
fn a_crashed_node_restarted_with_the_same_key_is_reachable_again() {
    let mut rng = Rng::from_seed([92; 32]);
    let edges = topology::random(30, 4.0, &mut rng);
    let mut sim = Sim::build(92, 30, &edges, WireParams::default());
    run_until_one_root(&mut sim, &all(30), Duration::from_secs(4)).unwrap();
    sim.run_for(Duration::from_secs(5));
    // Crash the root itself: the hardest case (its old announcements carry high sequence numbers).
    let root = (0..30)
        .find(|&i| Some(sim.key(i)) == sim.roots()[0])
        .unwrap();
    let other = (root + 7) % 30;
    sim.send_packet(other, root, b"before");
    sim.run_for(Duration::from_millis(200));
    assert_eq!(sim.take_delivered(root).len(), 1);
    sim.crash(root);
    sim.run_for(Duration::from_secs(10));
    let restarted_at = sim.now();
    sim.restart(root);
    let back = run_until_one_root(&mut sim, &all(30), Duration::from_secs(10))
        .map(|t| secs(t) - secs(restarted_at));
    let delivered_at = probe_until_delivered(&mut sim, other, root, restarted_at);
    eprintln!(
        "restart: root again everywhere after {back:?} s; reachable again after {delivered_at:?} s"
    );
    assert!(
        back.is_some() && delivered_at.is_some_and(|t| t < 5.0),
        "(seed 92)"
    );
}

#[test]
fn a_node_restarted_at_once_on_the_same_links_rejoins_the_tree() {
    // The daemon case of a `kill -9` and an immediate restart at the same address: the neighbours'
    // links never go down, they just see a new handshake, which looks like a rekey. The neighbours
    // must still send the new incarnation their tree state, or it stays a root of its own.
    for seed in [93u64, 94, 95] {
        let mut sim = Sim::build(seed, 5, &topology::line(5), WireParams::default());
        run_until_one_root(&mut sim, &all(5), Duration::from_secs(4)).unwrap();
        sim.run_for(Duration::from_secs(5));
        let end = 4;
        sim.crash(end);
        sim.run_for(Duration::from_millis(200));
        let restarted_at = sim.now();
        sim.restart(end);
        let back = run_until_one_root(&mut sim, &all(5), Duration::from_secs(10))
            .map(|t| secs(t) - secs(restarted_at));
        let delivered_at = probe_until_delivered(&mut sim, 0, end, restarted_at);
        eprintln!(
            "immediate restart (seed {seed}): one root again after {back:?} s; reachable after \
             {delivered_at:?} s"
        );
        assert!(
            back.is_some_and(|t| t < 2.0) && delivered_at.is_some_and(|t| t < 3.0),
            "(seed {seed})"
        );
    }
}

/// Sends a packet from `from` to `to` every 100 ms for up to 10 s; returns the seconds from `since`
/// until one arrived.
fn probe_until_delivered(sim: &mut Sim, from: usize, to: usize, since: Instant) -> Option<f64> {
    for i in 0..100u32 {
        sim.send_packet(from, to, &i.to_be_bytes());
        sim.run_for(Duration::from_millis(100));
        if !sim.take_delivered(to).is_empty() {
            return Some(secs(sim.now()) - secs(since));
        }
    }
    None
}
