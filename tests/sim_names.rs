//! Mesh names over the simulated mesh (PROTOCOL.md §6d): every replica applies the names rule to the
//! same signed claims and agrees on who holds a label, before, during and after a partition; a claim
//! made on the far side of a cut by a node that knew the holder's claim never takes the name, nor
//! does a concurrent newer one; a release passes the name to the next claim everywhere.
//! Prints the figures (`cargo test --release --test sim_names -- --nocapture`).

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::time::Duration;

use meshrouter::core::address::node_address;
use meshrouter::core::identity::PublicKey;
use meshrouter::services::crdt::document::{Edit, Op};
use meshrouter::services::crdt::replica::Replica;
use meshrouter::services::crdt::sync::SyncConfig;
use meshrouter::services::names::admit::KIND;
use meshrouter::services::names::claim::plan;
use meshrouter::services::names::{NAMESPACE, NameTable, Resolution, admit};
use meshrouter::sim::crdt::{CrdtService, crdt_service_on};
use meshrouter::sim::{Sim, WireParams, topology};
use support::*;

fn names(sim: &mut Sim, i: usize) -> &mut CrdtService {
    sim.service::<CrdtService>(i).unwrap()
}

/// The table node `i` resolves with.
fn table(sim: &mut Sim, i: usize) -> NameTable {
    let store = &names(sim, i).store;
    let views: Vec<(String, _)> = store
        .documents()
        .filter(|((ns, _), _)| ns == NAMESPACE)
        .map(|((_, doc), log)| (doc.clone(), log.document().view()))
        .collect();
    NameTable::from_views(views.iter().map(|(l, v)| (l.as_str(), v)), &|_| false)
}

/// Who `name` is at node `i`.
fn who(sim: &mut Sim, i: usize, name: &str) -> Option<PublicKey> {
    match table(sim, i).resolve(name) {
        Resolution::Address(_, key) => key,
        _ => None,
    }
}

/// Node `i` claims `label` as the daemon does (listing the claims it holds as seen), its clock
/// saying `clock_ms` (default: the simulated time).
fn claim_at(sim: &mut Sim, i: usize, label: &str, clock_ms: Option<u64>) {
    let now = sim.now();
    let me = sim.node_key(i).public_key();
    let host = names(sim, i);
    let view = host
        .store
        .document(NAMESPACE, label)
        .map(|l| l.document().view());
    let since = clock_ms.unwrap_or(now.as_micros() / 1000);
    let claim = plan(view.as_ref(), me, None, since).unwrap();
    let doc = (NAMESPACE.to_owned(), label.to_owned());
    let op = Op::Key(me.to_hex(), Edit::Write(claim.encode()));
    host.write(now, now.as_micros() / 1000, &doc, KIND, &op)
        .unwrap();
    sim.flush(i);
}

fn claim(sim: &mut Sim, i: usize, label: &str) {
    claim_at(sim, i, label, None);
}

fn release(sim: &mut Sim, i: usize, label: &str) {
    let now = sim.now();
    let me = sim.node_key(i).public_key();
    let doc = (NAMESPACE.to_owned(), label.to_owned());
    let op = Op::RemoveKey(me.to_hex());
    names(sim, i)
        .write(now, now.as_micros() / 1000, &doc, KIND, &op)
        .unwrap();
    sim.flush(i);
}

/// Runs in 50 ms steps until `name` is `key` on every node of `among`; the time it took.
fn run_until_all(
    sim: &mut Sim,
    among: &[usize],
    name: &str,
    key: PublicKey,
    limit: Duration,
) -> Option<Duration> {
    let start = sim.now();
    while sim.now() < start + limit {
        if among.iter().all(|&i| who(sim, i, name) == Some(key)) {
            return Some(sim.now().saturating_since(start));
        }
        sim.run_for(Duration::from_millis(50));
    }
    None
}

#[test]
fn a_name_in_use_stays_with_its_holder_across_a_partition_and_passes_on_release() {
    let (width, height) = (4, 4);
    let n = width * height;
    let params = WireParams {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(2),
        ..WireParams::default()
    };
    let mut sim = Sim::build(23, n, &topology::grid(width, height), params);
    for i in 0..n {
        let replica = Replica::new().ruled(NAMESPACE, admit);
        let service = crdt_service_on(
            &sim.node_key(i),
            SyncConfig::default(),
            [i as u8; 32],
            replica,
        );
        sim.attach(i, Box::new(service));
    }
    let all: Vec<usize> = (0..n).collect();
    assert!(run_until_one_root(&mut sim, &all, Duration::from_secs(20)).is_some());
    let keys: Vec<PublicKey> = (0..n).map(|i| sim.node_key(i).public_key()).collect();

    // c (the far corner) claims "server".
    let (c, s, t) = (n - 1, 0, 1);
    claim(&mut sim, c, "server");
    let known = run_until_all(
        &mut sim,
        &all,
        "server.mesh",
        keys[c],
        Duration::from_secs(10),
    );
    println!("names sim: c's claim resolves on all {n} nodes after {known:?}");
    assert!(known.is_some());

    // The west half is cut off. s, there, claims "server" knowing c's claim, its clock set back
    // to 1970 (so its claim looks older than c's); later t, also west, claims it too (it knows
    // both).
    let west: Vec<usize> = all.iter().copied().filter(|i| i % width < 2).collect();
    let east: Vec<usize> = all.iter().copied().filter(|i| i % width >= 2).collect();
    sim.partition(&west);
    sim.run_for(Duration::from_secs(2));
    claim_at(&mut sim, s, "server", Some(1));
    sim.run_for(Duration::from_millis(300));
    claim(&mut sim, t, "server");
    sim.run_for(Duration::from_secs(3));
    for &i in &all {
        assert_eq!(
            who(&mut sim, i, "server.mesh"),
            Some(keys[c]),
            "node {i} during the cut"
        );
    }
    let prefix = &keys[s].to_hex()[..16];
    for &i in &west {
        assert_eq!(
            who(&mut sim, i, &format!("server.{prefix}.mesh")),
            Some(keys[s])
        );
    }
    assert_eq!(
        who(&mut sim, east[0], &format!("server.{prefix}.mesh")),
        None
    );

    sim.heal();
    let healed = run_until_all(
        &mut sim,
        &all,
        &format!("server.{prefix}.mesh"),
        keys[s],
        Duration::from_secs(20),
    );
    println!("names sim: s's later claim known everywhere {healed:?} after healing");
    assert!(healed.is_some());
    for &i in &all {
        assert_eq!(
            who(&mut sim, i, "server.mesh"),
            Some(keys[c]),
            "node {i} after healing"
        );
        assert_eq!(
            table(&mut sim, i)
                .reverse(&node_address(&keys[c]))
                .as_deref(),
            Some("server.mesh")
        );
    }

    // c releases: s's claim (which t's followed) holds the name everywhere.
    release(&mut sim, c, "server");
    let passed = run_until_all(
        &mut sim,
        &all,
        "server.mesh",
        keys[s],
        Duration::from_secs(10),
    );
    println!("names sim: after c released, s holds server.mesh on every node after {passed:?}");
    assert!(passed.is_some());
    // c claims again: it follows s's claim and stays behind it.
    claim(&mut sim, c, "server");
    sim.run_for(Duration::from_secs(3));
    for &i in &all {
        assert_eq!(who(&mut sim, i, "server.mesh"), Some(keys[s]), "node {i}");
    }
}
