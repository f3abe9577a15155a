//! CRDT sync over the simulated mesh: replicas written on both sides of a partition converge after
//! it heals, with sync traffic close to the size of what was missing. Prints the figures; run in
//! release (`cargo test --release --test sim_crdt -- --nocapture`).

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use meshrouter::core::rng::Rng;
use meshrouter::services::crdt::document::{Edit, Op, View};
use meshrouter::services::crdt::field::{Kind, ValueKind};
use meshrouter::services::crdt::replica::Have;
use meshrouter::services::crdt::sync::SyncConfig;
use meshrouter::sim::crdt::{CrdtService, crdt_service};
use meshrouter::sim::{Sim, WireParams, topology};
use support::*;

const DOCS: [(&str, Kind); 4] = [
    ("inventory", Kind::Map(ValueKind::Lww)),
    ("ledger", Kind::Map(ValueKind::Counter)),
    ("members", Kind::Value(ValueKind::Set)),
    ("notes", Kind::Map(ValueKind::Mv)),
];

fn attach_all(sim: &mut Sim, config: &SyncConfig) {
    for i in 0..sim.len() {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64 + 1000 * sim.seed()).to_le_bytes());
        let service = crdt_service(&sim.node_key(i), config.clone(), seed);
        sim.attach(i, Box::new(service));
    }
}

/// The wall clock of a write: the simulated time, in milliseconds.
fn wall(now: meshrouter::core::time::Instant) -> u64 {
    now.as_micros() / 1000
}

fn crdt(sim: &mut Sim, i: usize) -> &mut CrdtService {
    sim.service::<CrdtService>(i).unwrap()
}

/// A random edit of a random document.
fn random_edit(rng: &mut Rng, n: u64) -> (&'static str, Kind, Op) {
    let (name, kind) = DOCS[rng.below(DOCS.len())];
    let key = format!("item{}", rng.below(40));
    let op = match kind {
        Kind::Map(ValueKind::Lww) => Op::Key(key, Edit::Write(format!("v{n}"))),
        Kind::Map(ValueKind::Counter) => Op::Key(key, Edit::Increment(rng.below(10) as i64 - 3)),
        Kind::Map(_) => Op::Key(key, Edit::Write(format!("note {n}"))),
        _ if rng.chance(0.3) => Op::Value(Edit::Remove(format!("m{}", rng.below(30)))),
        _ => Op::Value(Edit::Add(format!("m{}", rng.below(30)))),
    };
    (name, kind, op)
}

/// Writes at a random node of `side`.
fn write_at(sim: &mut Sim, rng: &mut Rng, side: &[usize], n: u64) {
    let i = side[rng.below(side.len())];
    let (doc, kind, op) = random_edit(rng, n);
    let now = sim.now();
    let name = ("island".to_owned(), doc.to_owned());
    crdt(sim, i)
        .write(now, wall(now), &name, kind, &op)
        .unwrap();
    sim.flush(i);
}

/// Per document, the heads hash and view at node `i`.
fn snapshot(sim: &mut Sim, i: usize) -> BTreeMap<(String, String), ([u8; 8], View)> {
    crdt(sim, i)
        .store
        .documents()
        .map(|(name, log)| (name.clone(), (log.heads_hash(), log.document().view())))
        .collect()
}

fn identical(sim: &mut Sim, among: &[usize]) -> bool {
    let first = snapshot(sim, among[0]);
    among[1..].iter().all(|&i| snapshot(sim, i) == first)
}

/// Runs in 100 ms steps until the replicas of `among` are identical; returns the time it took.
fn run_until_identical(sim: &mut Sim, among: &[usize], limit: Duration) -> Option<Duration> {
    let start = sim.now();
    while sim.now() < start + limit {
        if identical(sim, among) {
            return Some(sim.now().saturating_since(start));
        }
        sim.run_for(Duration::from_millis(100));
    }
    None
}

fn sync_bytes(sim: &mut Sim) -> u64 {
    (0..sim.len())
        .map(|i| crdt(sim, i).engine.stats().bytes_sent)
        .sum()
}

/// The sync counters of every node, summed.
fn total_stats(sim: &mut Sim) -> [u64; 6] {
    let mut t = [0; 6];
    for i in 0..sim.len() {
        let s = crdt(sim, i).engine.stats();
        for (slot, v) in t.iter_mut().zip([
            s.messages_sent,
            s.bytes_sent,
            s.change_bytes_sent,
            s.changes_received,
            s.changes_applied,
            s.pulls,
        ]) {
            *slot += v;
        }
    }
    t
}

fn wire_total(sim: &Sim) -> u64 {
    (0..sim.wires().count())
        .map(|w| sim.wire_bytes(w).iter().sum::<u64>())
        .sum()
}

/// Bytes of every change some replica holds and node `i` does not.
fn missing_bytes(sim: &mut Sim) -> u64 {
    let mut all = BTreeSet::new();
    let mut held = Vec::new();
    for i in 0..sim.len() {
        let mine: BTreeSet<Vec<u8>> = crdt(sim, i)
            .store
            .missing(&Have::new())
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        all.extend(mine.iter().cloned());
        held.push(mine);
    }
    held.iter()
        .map(|mine| all.difference(mine).map(|c| c.len() as u64).sum::<u64>())
        .sum()
}

#[test]
fn three_nodes_in_a_line_converge_and_a_write_reaches_the_far_end() {
    let mut sim = Sim::build(7, 3, &topology::line(3), WireParams::default());
    attach_all(&mut sim, &SyncConfig::default());
    sim.run_for(Duration::from_secs(3));
    let now = sim.now();
    let op = Op::Value(Edit::Add("Aurora".into()));
    let kind = Kind::Value(ValueKind::Set);
    let name = ("census".to_owned(), "boats".to_owned());
    crdt(&mut sim, 0)
        .write(now, wall(now), &name, kind, &op)
        .unwrap();
    sim.flush(0);
    let took = run_until_identical(&mut sim, &[0, 1, 2], Duration::from_secs(5)).unwrap();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let log = crdt(&mut sim, 2).store.document("census", "boats").cloned();
    assert_eq!(
        log.unwrap().document().view(),
        View::Set(vec!["Aurora".into()])
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow without optimisations: run with cargo test --release"
)]
fn fifty_nodes_partitioned_with_a_thousand_writes_a_side_converge_after_healing() {
    let started = std::time::Instant::now();
    let (width, height) = (10, 5);
    let edges = topology::grid(width, height);
    let n = width * height;
    let diameter = (0..n)
        .map(|i| *topology::hop_counts(n, &edges, i).iter().max().unwrap())
        .max()
        .unwrap();
    assert!(diameter >= 6, "diameter {diameter}");
    let params = WireParams {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(3),
        loss: std::env::var("SIM_LOSS").map_or(0.02, |v| v.parse().unwrap()),
        reorder: std::env::var("SIM_REORDER").map_or(0.05, |v| v.parse().unwrap()),
        ..WireParams::default()
    };
    let mut sim = Sim::build(91, n, &edges, params);
    let mut config = SyncConfig::default();
    if let Ok(ms) = std::env::var("SYNC_ANNOUNCE_MS") {
        config.announce_delay = Duration::from_millis(ms.parse().unwrap());
    }
    attach_all(&mut sim, &config);
    let all: Vec<usize> = (0..n).collect();
    assert!(run_until_one_root(&mut sim, &all, Duration::from_secs(20)).is_some());

    // Left half and right half of the grid; both stay connected.
    let west: Vec<usize> = all
        .iter()
        .copied()
        .filter(|i| i % width < width / 2)
        .collect();
    let east: Vec<usize> = all
        .iter()
        .copied()
        .filter(|i| i % width >= width / 2)
        .collect();
    let cut = sim.partition(&west);
    sim.run_for(Duration::from_secs(30));

    let mut rng = Rng::from_seed([91; 32]);
    for n in 0..1000u64 {
        write_at(&mut sim, &mut rng, &west, 2 * n);
        write_at(&mut sim, &mut rng, &east, 2 * n + 1);
        sim.run_for(Duration::from_millis(20));
    }
    let west_settled = run_until_identical(&mut sim, &west, Duration::from_secs(60));
    let east_settled = run_until_identical(&mut sim, &east, Duration::from_secs(60));
    assert!(west_settled.is_some() && east_settled.is_some());
    assert!(!identical(&mut sim, &all), "the sides diverged while apart");

    let missing = missing_bytes(&mut sim);
    let (sync_before, wire_before) = (sync_bytes(&mut sim), wire_total(&sim));
    let stats_before = total_stats(&mut sim);
    sim.heal();
    let converged = run_until_identical(&mut sim, &all, Duration::from_secs(120));
    let took = converged.expect("replicas did not converge within 120 s after healing");
    sim.run_for(Duration::from_secs(5));
    assert!(identical(&mut sim, &all));
    let sync_after = sync_bytes(&mut sim) - sync_before;
    let stats_after = total_stats(&mut sim);
    let d: Vec<u64> = (0..6).map(|k| stats_after[k] - stats_before[k]).collect();
    println!(
        "after healing: {} messages, {} bytes, {} bytes of changes, {} changes received, {} new, {} pulls",
        d[0], d[1], d[2], d[3], d[4], d[5]
    );
    let wire_after = wire_total(&sim) - wire_before;
    let ratio = sync_after as f64 / missing as f64;
    println!(
        "crdt sim: 50 nodes (grid 10x5, diameter {diameter}, 2% loss, 5% reordering), {} wires cut, \
         1000 writes a side: converged {:.1} s after healing; sync bytes {} for {} bytes of missing \
         changes = {:.3}x (wire bytes incl. routing {}); wall {:.1} s",
        cut.len(),
        took.as_secs_f64(),
        sync_after,
        missing,
        ratio,
        wire_after,
        started.elapsed().as_secs_f64(),
    );
    assert!(took < Duration::from_secs(10), "convergence took {took:?}");
    assert!(ratio <= 1.2, "sync bytes {ratio:.3}x the missing changes");
}
