//! CRDT service throughput: signed changes verified and applied per second, and the B3.1 case of
//! crdt-benchmarks (1 540 replicas each set the same map key once; one replica merges them all).
//! Run with `cargo bench --bench crdt`; it prints figures rather than asserting them.

use std::time::Instant;

use meshrouter::core::identity::NodeKey;
use meshrouter::driver::parallel::decode_changes as decode_verified_all;
use meshrouter::services::crdt::change::Change;
use meshrouter::services::crdt::context::Actor;
use meshrouter::services::crdt::document::{Document, Edit, Op, View};
use meshrouter::services::crdt::field::{Kind, ValueKind};
use meshrouter::services::crdt::log::DocumentLog;

const KIND: Kind = Kind::Map(ValueKind::Lww);

fn actor(key: &NodeKey) -> Actor {
    Actor(*key.public_key().as_bytes())
}

/// `count` puts by 10 writers over 1 000 keys, each writer editing its own replica, as encoded changes.
fn puts(count: usize) -> Vec<Vec<u8>> {
    let keys: Vec<NodeKey> = (0..10u8)
        .map(|i| NodeKey::from_seed(&[i + 1; 32]))
        .collect();
    let mut replicas = vec![Document::new(KIND); keys.len()];
    let mut seqs = vec![0u64; keys.len()];
    (0..count)
        .map(|i| {
            let w = i % keys.len();
            let op = Op::Key(
                format!("key{}", (i * 7919) % 1000),
                Edit::Write(format!("value {i}")),
            );
            let delta = replicas[w]
                .edit(actor(&keys[w]), &op, i as u64)
                .expect("fits");
            seqs[w] += 1;
            Change::sign(&keys[w], "bench", "m1", KIND, seqs[w], i as u64, delta).encode()
        })
        .collect()
}

fn ingest(encoded: &[Vec<u8>]) -> (DocumentLog, f64) {
    let start = Instant::now();
    let mut log = DocumentLog::new("bench", "m1", KIND);
    for (change, bytes) in decode_verified_all(encoded).into_iter().zip(encoded) {
        log.insert(&change.expect("valid"), bytes);
    }
    (log, start.elapsed().as_secs_f64())
}

fn b3_1() {
    let n = 1540;
    let keys: Vec<NodeKey> = (0..n)
        .map(|i: u32| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            NodeKey::from_seed(&seed)
        })
        .collect();
    let encoded: Vec<Vec<u8>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut replica = Document::new(KIND);
            let delta = replica
                .edit(
                    actor(k),
                    &Op::Key("v".into(), Edit::Write(i.to_string())),
                    1000,
                )
                .expect("fits");
            Change::sign(k, "bench", "b3", KIND, 1, 1000, delta).encode()
        })
        .collect();
    let changes: Vec<Change> = decode_verified_all(&encoded)
        .into_iter()
        .map(|c| c.expect("valid"))
        .collect();
    let start = Instant::now();
    let mut merged = Document::new(KIND);
    for c in &changes {
        merged.apply(&c.delta);
    }
    let merge_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let mut log = DocumentLog::new("bench", "b3", KIND);
    for (change, bytes) in decode_verified_all(&encoded).into_iter().zip(&encoded) {
        log.insert(&change.expect("valid"), bytes);
    }
    let verified_ms = start.elapsed().as_secs_f64() * 1e3;
    let View::Map(m) = merged.view() else {
        unreachable!()
    };
    assert_eq!(log.document().view(), merged.view());
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    println!(
        "B3.1 {n} concurrent writes to one key: merged in {merge_ms:.1} ms; verified and merged in {verified_ms:.1} ms \
         ({:.0} changes/s, every one by a different writer); {bytes} bytes of signed changes ({} per change); winner {:?}",
        n as f64 / verified_ms * 1e3,
        bytes / n as usize,
        m["v"]
    );
}

/// 100 000 puts by 10 writers granted Write in a namespace owned by an 11th key, signed at the
/// owner's access point (v2 changes), through the replica's access rule.
fn with_access_checks() {
    use meshrouter::services::crdt::access::{AccessOp, Level, Subject, TrustRoot};
    use meshrouter::services::crdt::replica::Replica;
    use meshrouter::services::identity::did_key::did_key;
    let owner = NodeKey::from_seed(&[99; 32]);
    let ns = format!(
        "~{}/bench",
        did_key(&owner.public_key()).trim_start_matches("did:key:")
    );
    let keys: Vec<NodeKey> = (0..10u8)
        .map(|i| NodeKey::from_seed(&[i + 1; 32]))
        .collect();
    let mut replica = Replica::with_trust_root(TrustRoot::default());
    let mut grants = Vec::new();
    for k in &keys {
        let op = AccessOp::Grant {
            subject: Subject::Key(actor(k)),
            level: Level::Write,
        };
        let change = replica.prepare_access(&owner, &ns, &op, 1).expect("owner");
        let bytes = change.encode();
        replica.insert_verified(&change, &bytes);
        grants.push(bytes);
    }
    let point = replica.access(&ns).expect("owned").point().clone();
    let mut docs = vec![Document::new(KIND); keys.len()];
    let mut seqs = vec![0u64; keys.len()];
    let encoded: Vec<Vec<u8>> = (0..100_000usize)
        .map(|i| {
            let w = i % keys.len();
            let op = Op::Key(
                format!("key{}", (i * 7919) % 1000),
                Edit::Write(format!("value {i}")),
            );
            let delta = docs[w].edit(actor(&keys[w]), &op, i as u64).expect("fits");
            seqs[w] += 1;
            Change::sign_at(&keys[w], &ns, "m1", KIND, seqs[w], i as u64, &point, delta).encode()
        })
        .collect();
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    for round in 1..=3 {
        let mut fresh = Replica::new();
        for g in &grants {
            let c = Change::decode_verified(g).expect("valid");
            fresh.insert_verified(&c, g);
        }
        let start = Instant::now();
        let mut applied = 0;
        for (change, bytes) in decode_verified_all(&encoded).into_iter().zip(&encoded) {
            let inserted = fresh.insert_verified(&change.expect("valid"), bytes);
            applied += usize::from(inserted == meshrouter::services::crdt::log::Inserted::Applied);
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(applied, encoded.len());
        println!(
            "with access checks, round {round}: 100 000 v2 changes ({} bytes each) by 10 granted writers verified, admitted and applied in {:.0} ms: {:.0} changes/s",
            bytes / encoded.len(),
            secs * 1e3,
            encoded.len() as f64 / secs,
        );
    }
}

/// Opening a store of 100 000 changes: verifying every signature (no tags: a file from elsewhere)
/// against checking this node's tags (the daemon's store is built with the services).
#[cfg(feature = "services")]
fn reopen(encoded: &[Vec<u8>]) {
    use meshrouter::driver::crdt_store::CrdtStore;
    use meshrouter::services::crdt::replica::Replica;
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("bench.redb");
    let node = NodeKey::from_seed(&[42; 32]);
    {
        let mut store = CrdtStore::open_sealed(&path, Replica::new(), &node).expect("open");
        for chunk in encoded.chunks(10_000) {
            store.insert(chunk).expect("insert");
        }
    }
    let start = Instant::now();
    let plain = CrdtStore::open(&path).expect("open");
    let verified = start.elapsed().as_secs_f64();
    assert_eq!(plain.verified_at_open(), encoded.len());
    drop(plain);
    let start = Instant::now();
    let sealed = CrdtStore::open_sealed(&path, Replica::new(), &node).expect("open");
    let tagged = start.elapsed().as_secs_f64();
    assert_eq!(sealed.verified_at_open(), 0);
    println!(
        "opening a store of {} changes: {:.0} ms verifying every signature, {:.0} ms checking this node's tags",
        encoded.len(),
        verified * 1e3,
        tagged * 1e3
    );
}

fn main() {
    let encoded = puts(100_000);
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    let start = Instant::now();
    let verified = decode_verified_all(&encoded);
    println!(
        "verification alone: {:.0} ms for {} changes",
        start.elapsed().as_secs_f64() * 1e3,
        verified.len()
    );
    for round in 1..=3 {
        let (log, secs) = ingest(&encoded);
        assert_eq!(log.version_vector().len(), 10);
        println!(
            "round {round}: 100 000 signed LWW-map changes ({} bytes each on average) verified and applied in {:.0} ms: {:.0} changes/s ({} threads)",
            bytes / encoded.len(),
            secs * 1e3,
            encoded.len() as f64 / secs,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        );
    }
    with_access_checks();
    #[cfg(feature = "services")]
    reopen(&encoded);
    b3_1();
}
