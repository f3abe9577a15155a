//! A malicious member against CRDT sync under access control, in the simulator: a 3 x 3 grid whose
//! centre (node 4, a neighbour of four honest nodes) misbehaves, on a mesh whose admin is node 0.
//! It (a) writes into a namespace it was not granted, directly and with a forged access point,
//! (d) sends 10 000 empty or badly signed Changes messages, (e) asks for a namespace it may not
//! pull. Every honest replica refuses the same way, keeps its state, and keeps syncing. Prints the
//! figures (`cargo test --release --test sim_crdt_attacks -- --nocapture`).

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::collections::BTreeMap;
use std::time::Duration;

use meshrouter::core::identity::NodeKey;
use meshrouter::services::crdt::access::{AccessOp, Level, Subject, TrustRoot};
use meshrouter::services::crdt::change::{AccessPoint, Change};
use meshrouter::services::crdt::context::Actor;
use meshrouter::services::crdt::document::{Document, Edit, Op, View};
use meshrouter::services::crdt::field::{Kind, ValueKind};
use meshrouter::services::crdt::sync::message::{DocRef, SyncMessage};
use meshrouter::services::crdt::sync::{SYNC_PORT, SyncConfig};
use meshrouter::sim::crdt::{CrdtService, crdt_service_under};
use meshrouter::sim::{Sim, WireParams, topology};

const ADMIN: usize = 0;
const BAD: usize = 4;
const HONEST: [usize; 8] = [0, 1, 2, 3, 5, 6, 7, 8];
const STOCK: Kind = Kind::Map(ValueKind::Counter);

fn crdt(sim: &mut Sim, i: usize) -> &mut CrdtService {
    sim.service::<CrdtService>(i).unwrap()
}

fn actor(sim: &Sim, i: usize) -> Actor {
    Actor(*sim.key(i).as_bytes())
}

fn wall(sim: &Sim) -> u64 {
    sim.now().as_micros() / 1000
}

fn grant(sim: &mut Sim, namespace: &str, to: usize, level: Level) {
    let op = AccessOp::Grant {
        subject: Subject::Key(actor(sim, to)),
        level,
    };
    let (now, wall) = (sim.now(), wall(sim));
    crdt(sim, ADMIN)
        .write_access(now, wall, namespace, &op)
        .unwrap();
    sim.flush(ADMIN);
}

fn add(sim: &mut Sim, i: usize, namespace: &str, item: &str, by: i64) {
    let (now, wall) = (sim.now(), wall(sim));
    let name = (namespace.to_owned(), "ledger".to_owned());
    let op = Op::Key(item.to_owned(), Edit::Increment(by));
    crdt(sim, i).write(now, wall, &name, STOCK, &op).unwrap();
    sim.flush(i);
}

/// Per document held, its heads and view.
type Held = BTreeMap<(String, String), ([u8; 8], View)>;

/// What every honest node holds.
fn honest_state(sim: &mut Sim) -> Vec<Held> {
    HONEST
        .iter()
        .map(|&i| {
            crdt(sim, i)
                .store
                .documents()
                .map(|(name, log)| (name.clone(), (log.heads_hash(), log.document().view())))
                .collect()
        })
        .collect()
}

fn converged(sim: &mut Sim) -> bool {
    let state = honest_state(sim);
    state.iter().all(|s| *s == state[0])
}

fn run_until_converged(sim: &mut Sim, limit: Duration) -> Option<Duration> {
    let start = sim.now();
    while sim.now() < start + limit {
        if converged(sim) {
            return Some(sim.now().saturating_since(start));
        }
        sim.run_for(Duration::from_millis(100));
    }
    None
}

fn changes_message(namespace: &str, document: &str, changes: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    SyncMessage::Changes {
        doc: DocRef {
            namespace,
            document,
        },
        request: 0,
        part: 0,
        parts: 1,
        changes: changes.to_vec(),
    }
    .encode(&mut out);
    out
}

/// A change by `key` adding `by` to `item` of namespace/ledger, signed at `point`.
fn forged(key: &NodeKey, namespace: &str, seq: u64, point: &AccessPoint, item: &str) -> Vec<u8> {
    let me = Actor(*key.public_key().as_bytes());
    let delta = Document::new(STOCK)
        .edit(me, &Op::Key(item.into(), Edit::Increment(1_000)), 1)
        .unwrap();
    Change::sign_at(key, namespace, "ledger", STOCK, seq, 1, point, delta).encode()
}

/// Time for a write at node 8 to reach every honest node.
fn spread_time(sim: &mut Sim, item: &str) -> Duration {
    add(sim, 8, "stock", item, 1);
    let start = sim.now();
    loop {
        if converged(sim) {
            return sim.now().saturating_since(start);
        }
        sim.run_for(Duration::from_millis(1));
    }
}

#[test]
fn a_malicious_member_is_refused_alike_everywhere_and_honest_sync_goes_on() {
    let mut sim = Sim::build(23, 9, &topology::grid(3, 3), WireParams::default());
    let root = TrustRoot::new([Actor(*sim.key(ADMIN).as_bytes())]);
    for i in 0..sim.len() {
        let mut seed = [0u8; 32];
        seed[0] = i as u8;
        let service =
            crdt_service_under(&sim.node_key(i), SyncConfig::default(), seed, root.clone());
        sim.attach(i, Box::new(service));
    }
    sim.run_for(Duration::from_secs(3));
    // The admin lets every honest node write "stock" and pull "secret"; the bad node gets nothing.
    for &i in &HONEST[1..] {
        grant(&mut sim, "stock", i, Level::Write);
        grant(&mut sim, "secret", i, Level::Pull);
    }
    let granted = run_until_converged(&mut sim, Duration::from_secs(20)).unwrap();
    println!("16 grants by the admin reached every honest node in {granted:?}");
    for &i in &HONEST {
        add(&mut sim, i, "stock", &format!("crate{i}"), 1);
    }
    add(&mut sim, ADMIN, "secret", "plans", 7);
    let settle = run_until_converged(&mut sim, Duration::from_secs(20)).unwrap();
    println!("granted and written: honest replicas identical after {settle:?}");
    let quiet = spread_time(&mut sim, "quiet");
    println!(
        "an honest write from node 8 reaches every honest node in {quiet:?} without an attack"
    );
    let before = honest_state(&mut sim);
    let neighbours: Vec<usize> = vec![1, 3, 5, 7];
    let counted = |sim: &mut Sim| -> (u64, u64) {
        neighbours.iter().fold((0, 0), |(b, p), &n| {
            let s = crdt(sim, n).engine.stats();
            (b + s.bad_changes, p + s.pending_changes)
        })
    };
    let (bad_before, pending_before) = counted(&mut sim);

    // (a) Writing "stock" without a grant: the bad node's own replica refuses it ...
    let (now, wall_ms) = (sim.now(), wall(&sim));
    let name = ("stock".to_owned(), "ledger".to_owned());
    let op = Op::Key("crate4".into(), Edit::Increment(1_000));
    let local = crdt(&mut sim, BAD).write(now, wall_ms, &name, STOCK, &op);
    assert!(local.is_err(), "refused at home: {local:?}");
    println!("(a) the bad node's own write: {}", local.unwrap_err());
    // ... so it pushes signed changes itself: at the admin's real access point, and at a forged
    // one naming access changes that do not exist.
    let bad_key = sim.node_key(BAD);
    let point = crdt(&mut sim, 1)
        .store
        .access("stock")
        .unwrap()
        .point()
        .clone();
    let mut invented = point.clone();
    invented.insert(actor(&sim, ADMIN), 999);
    let refused = forged(&bad_key, "stock", 1, &point, "crate4");
    let waiting = forged(&bad_key, "stock", 2, &invented, "crate4");
    for &n in &neighbours {
        let message = changes_message("stock", "ledger", &[&refused, &waiting]);
        sim.send_service(BAD, n, SYNC_PORT, &message);
    }
    // (e) Asking for "secret": a want and a digest that differs.
    for &n in &neighbours {
        let mut want = Vec::new();
        SyncMessage::Want {
            doc: DocRef {
                namespace: "secret",
                document: "ledger",
            },
            request: 7,
            have: Vec::new(),
        }
        .encode(&mut want);
        sim.send_service(BAD, n, SYNC_PORT, &want);
        let mut digest = Vec::new();
        SyncMessage::Digest(vec![(
            DocRef {
                namespace: "secret",
                document: "ledger",
            },
            [9; 8],
        )])
        .encode(&mut digest);
        sim.send_service(BAD, n, SYNC_PORT, &digest);
    }
    sim.run_for(Duration::from_secs(15));
    assert_eq!(
        honest_state(&mut sim),
        before,
        "honest state unchanged by (a) and (e)"
    );
    let (bad_after, pending_after) = counted(&mut sim);
    let (bad_changes, pending) = (bad_after - bad_before, pending_after - pending_before);
    assert_eq!(
        (bad_changes, pending),
        (4, 4),
        "each neighbour: one refused, one waiting"
    );
    let bad_holds_secret = crdt(&mut sim, BAD)
        .store
        .documents()
        .any(|((ns, _), _)| ns == "secret");
    assert!(
        !bad_holds_secret,
        "(e) the bad node never received the namespace"
    );
    let bad_holds_stock = crdt(&mut sim, BAD)
        .store
        .document("stock", "ledger")
        .is_some();
    println!(
        "(a) refused by all 4 neighbours ({bad_changes} bad, {pending} waiting, never stored); \
         (e) secret reached the bad node: {bad_holds_secret}; stock reached it: {bad_holds_stock}"
    );

    // (d) 10 000 Changes messages, half empty, half badly signed, over 10 s, spread over the four
    // neighbours; an honest write in the middle must still reach everyone.
    let mut bad_sig = forged(&bad_key, "stock", 3, &point, "crate4");
    bad_sig[60] ^= 1;
    let start = sim.now();
    let mut honest_write_at = None;
    let mut reached = None;
    for k in 0..10_000 {
        let n = neighbours[k % 4];
        let message = if (k / 4) % 2 == 0 {
            changes_message("stock", "ledger", &[])
        } else {
            changes_message("stock", "ledger", &[&bad_sig])
        };
        sim.send_service(BAD, n, SYNC_PORT, &message);
        if k == 5_000 {
            add(&mut sim, 8, "stock", "crate8", 1);
            honest_write_at = Some(sim.now());
        }
        if let Some(at) = honest_write_at
            && reached.is_none()
            && k % 10 == 0
            && converged(&mut sim)
        {
            reached = Some(sim.now().saturating_since(at));
        }
        sim.run_for(Duration::from_millis(1));
    }
    let spread = run_until_converged(&mut sim, Duration::from_secs(20)).unwrap();
    let reached = reached.expect("the honest write spread during the flood");
    assert!(
        reached <= quiet * 2 + Duration::from_millis(20),
        "{reached:?} vs {quiet:?}"
    );
    let mut totals = [0u64; 4];
    for &n in &neighbours {
        let s = crdt(&mut sim, n).engine.stats();
        for (t, v) in totals
            .iter_mut()
            .zip([s.bad_changes, s.penalties, s.ignored, s.over_budget])
        {
            *t += v;
        }
    }
    println!(
        "(d) 10 000 messages in {:?}: neighbours counted {} bad changes, {} penalties, {} \
         messages ignored, {} over budget; an honest write during the flood reached every honest \
         node within {reached:?} (converged {spread:?} after the flood)",
        sim.now().saturating_since(start),
        totals[0],
        totals[1],
        totals[2],
        totals[3]
    );
    // Each neighbour checked at most 64 + 1 bad changes per 30 s penalty: 2 windows in 10 s.
    assert!(totals[0] <= 4 * 2 * 65, "{totals:?}");
    assert!(
        totals[1] >= 4,
        "every neighbour stopped listening: {totals:?}"
    );
    let view = crdt(&mut sim, 2)
        .store
        .document("stock", "ledger")
        .unwrap()
        .document()
        .view();
    let View::Map(entries) = view else { panic!() };
    assert!(!entries.contains_key("crate4"), "{entries:?}");
    assert!(entries.contains_key("crate8"));
}

/// A 3 x 3 grid whose node 0 is the admin, each replica following the identity registry's rule.
fn registry_mesh() -> Sim {
    use meshrouter::services::crdt::replica::Replica;
    use meshrouter::services::identity::registry;
    let mut sim = Sim::build(29, 9, &topology::grid(3, 3), WireParams::default());
    let root = TrustRoot::new([Actor(*sim.key(ADMIN).as_bytes())]);
    for i in 0..sim.len() {
        let replica =
            Replica::with_trust_root(root.clone()).validated(registry::NAMESPACE, registry::admit);
        let mut seed = [0u8; 32];
        seed[0] = i as u8;
        let service = meshrouter::sim::crdt::crdt_service_on(
            &sim.node_key(i),
            SyncConfig::default(),
            seed,
            replica,
        );
        sim.attach(i, Box::new(service));
    }
    sim.run_for(Duration::from_secs(3));
    sim
}

/// A change by `key` adding `member` (under `map_key` if given) to identity/`document`.
fn identity_change(
    key: &NodeKey,
    document: &str,
    map_key: Option<&str>,
    seq: u64,
    member: &str,
) -> Vec<u8> {
    let me = Actor(*key.public_key().as_bytes());
    let (kind, op) = match map_key {
        Some(k) => (
            Kind::Map(ValueKind::Set),
            Op::Key(k.to_owned(), Edit::Add(member.to_owned())),
        ),
        None => (
            Kind::Value(ValueKind::Set),
            Op::Value(Edit::Add(member.to_owned())),
        ),
    };
    let delta = Document::new(kind).edit(me, &op, 1).unwrap();
    Change::sign(key, "identity", document, kind, seq, 1, delta).encode()
}

#[test]
fn a_malicious_member_can_neither_roll_back_the_registry_nor_flood_revocations() {
    use meshrouter::services::identity::did_key::did_key;
    use meshrouter::services::identity::registry::{self, Registry};
    let mut sim = registry_mesh();
    let admin = sim.node_key(ADMIN);
    let admin_did = did_key(&admin.public_key());
    let member = did_key(&NodeKey::from_seed(&[77; 32]).public_key());
    // The admin enrolls a medic, then takes the role back (version 2).
    let medic = registry::enrollment(&admin, &member, &["medic".into()], 1_000, 1).unwrap();
    let visitor = registry::enrollment(&admin, &member, &["visitor".into()], 2_000, 2).unwrap();
    for token in [&medic, &visitor] {
        let (now, wall) = (sim.now(), wall(&sim));
        let name = ("identity".to_owned(), "enrollments".to_owned());
        let op = Op::Key(member.clone(), Edit::Add(token.clone()));
        crdt(&mut sim, ADMIN)
            .write(now, wall, &name, Kind::Map(ValueKind::Set), &op)
            .unwrap();
        sim.flush(ADMIN);
    }
    run_until_converged(&mut sim, Duration::from_secs(20)).unwrap();
    let before = honest_state(&mut sim);
    let roles = |sim: &mut Sim, i: usize| -> Vec<String> {
        let replica = &crdt(sim, i).store;
        let view = |doc: &str| {
            replica
                .document("identity", doc)
                .map(|l| l.document().view())
        };
        let registry = Registry::load(
            [admin_did.clone()],
            view("members").as_ref(),
            view("enrollments").as_ref(),
            view("revocations").as_ref(),
            3_000,
        );
        registry
            .member(&member)
            .map(|m| m.roles.clone())
            .unwrap_or_default()
    };
    let bad_key = sim.node_key(BAD);
    let neighbours = [1, 3, 5, 7];
    // (b) Roll back: the bad node files the older enrollment (admin-signed!) under its own key, and
    // writes the legacy members document; (c) then 10 000 revocations of everyone, signed by itself.
    let replay = identity_change(&bad_key, "enrollments", Some(&member), 1, &medic);
    let legacy = {
        let me = Actor(*bad_key.public_key().as_bytes());
        let kind = Kind::Map(ValueKind::Lww);
        let delta = Document::new(kind)
            .edit(me, &Op::Key(member.clone(), Edit::Write(medic.clone())), 1)
            .unwrap();
        Change::sign(&bad_key, "identity", "members", kind, 1, 1, delta).encode()
    };
    for &n in &neighbours {
        sim.send_service(
            BAD,
            n,
            SYNC_PORT,
            &changes_message("identity", "enrollments", &[&replay]),
        );
        sim.send_service(
            BAD,
            n,
            SYNC_PORT,
            &changes_message("identity", "members", &[&legacy]),
        );
    }
    sim.run_for(Duration::from_secs(2));
    let stored_before = crdt(&mut sim, 2).store.documents().count();
    for k in 0..10_000u64 {
        let target = did_key(
            &NodeKey::from_seed(&{
                let mut s = [5u8; 32];
                s[..8].copy_from_slice(&k.to_le_bytes());
                s
            })
            .public_key(),
        );
        let token = registry::revocation(&bad_key, &target, "flood", 1_000);
        let change = identity_change(&bad_key, "revocations", None, k + 1, &token);
        let n = neighbours[k as usize % 4];
        sim.send_service(
            BAD,
            n,
            SYNC_PORT,
            &changes_message("identity", "revocations", &[&change]),
        );
        if k % 10 == 0 {
            sim.run_for(Duration::from_millis(1));
        }
    }
    sim.run_for(Duration::from_secs(15));
    assert_eq!(honest_state(&mut sim), before, "honest registry unchanged");
    for &i in &HONEST {
        assert_eq!(roles(&mut sim, i), ["visitor"], "node {i}");
    }
    assert_eq!(crdt(&mut sim, 2).store.documents().count(), stored_before);
    let mut bad = 0;
    let mut penalties = 0;
    for &n in &neighbours {
        let s = crdt(&mut sim, n).engine.stats();
        bad += s.bad_changes;
        penalties += s.penalties;
    }
    println!(
        "(b) replayed enrollment and legacy overwrite refused by all 4 neighbours; every honest \
         node reads the member as visitor (version 2); (c) 10 000 revocations by a non-admin: none \
         stored, {bad} checked and refused before the neighbours stopped listening ({penalties} \
         penalties)"
    );
    assert!(bad <= 4 * 2 * 65, "{bad}");
}
