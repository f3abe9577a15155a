//! Each limit of one peer's sync, hit.

use super::*;
use crate::core::identity::{NodeKey, PublicKey};
use crate::services::crdt::change::Change;
use crate::services::crdt::context::Actor;
use crate::services::crdt::document::{Document, Edit, Op};
use crate::services::crdt::field::{Kind, ValueKind};
use crate::services::crdt::replica::{DocName, Replica};
use crate::services::crdt::sync::message::{DocRef, SyncMessage};
use crate::services::crdt::sync::{Accepted, SyncConfig, SyncEngine, SyncStore};

const KIND: Kind = Kind::Value(ValueKind::Set);

/// A replica that counts the changes it was asked to check.
#[derive(Default)]
struct Counting {
    replica: Replica,
    checked: usize,
}

impl SyncStore for Counting {
    fn replica(&self) -> &Replica {
        &self.replica
    }

    fn accept(&mut self, doc: &DocName, changes: &[&[u8]]) -> Accepted {
        self.checked += changes.len();
        self.replica.accept(doc, changes)
    }
}

fn encode(message: &SyncMessage<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    message.encode(&mut out);
    out
}

fn doc(document: &str) -> DocRef<'_> {
    DocRef {
        namespace: "island",
        document,
    }
}

/// `n` signed adds by `key` to island/`document`, seq 1..=n.
fn changes(key: &NodeKey, document: &str, n: u64) -> Vec<Vec<u8>> {
    let actor = Actor(*key.public_key().as_bytes());
    let mut local = Document::new(KIND);
    (1..=n)
        .map(|seq| {
            let delta = local
                .edit(actor, &Op::Value(Edit::Add(format!("m{seq}"))), seq)
                .unwrap();
            Change::sign(key, "island", document, KIND, seq, seq, delta).encode()
        })
        .collect()
}

fn push(document: &str, changes: &[Vec<u8>]) -> Vec<u8> {
    encode(&SyncMessage::Changes {
        doc: doc(document),
        request: 0,
        part: 0,
        parts: 1,
        changes: changes.iter().map(Vec::as_slice).collect(),
    })
}

fn peer(n: u8) -> PublicKey {
    NodeKey::from_seed(&[n; 32]).public_key()
}

#[test]
fn only_direct_peers_are_listened_to() {
    let now = Instant::ZERO;
    let mut store = Counting::default();
    let mut engine = SyncEngine::new(SyncConfig::default(), [1; 32]);
    let writer = NodeKey::from_seed(&[9; 32]);
    let batch = changes(&writer, "boats", 3);
    engine.handle_message(now, peer(2), &push("boats", &batch), &mut store);
    assert_eq!((store.checked, engine.stats().not_peer), (0, 1));
    engine.handle_peer_up(now, peer(2), &store.replica);
    engine.handle_message(now, peer(2), &push("boats", &batch), &mut store);
    assert_eq!(store.checked, 3);
    assert_eq!(engine.stats().changes_applied, 3);
}

#[test]
fn a_digest_naming_countless_documents_starts_few_pulls_and_is_remembered_in_part() {
    let now = Instant::ZERO;
    let mut store = Counting::default();
    let mut engine = SyncEngine::new(SyncConfig::default(), [1; 32]);
    let (flooder, honest) = (peer(2), peer(3));
    engine.handle_peer_up(now, flooder, &store.replica);
    engine.handle_peer_up(now, honest, &store.replica);
    let names: Vec<String> = (0..100_000).map(|i| format!("d{i}")).collect();
    for chunk in names.chunks(1000) {
        let entries = chunk.iter().map(|n| (doc(n), [7; 8])).collect();
        engine.handle_message(
            now,
            flooder,
            &encode(&SyncMessage::Digest(entries)),
            &mut store,
        );
    }
    assert_eq!(engine.pulls_running(), MAX_NEW_PULLS_PER_PEER);
    assert!(engine.known_of(&flooder) <= MAX_KNOWN);
    assert_eq!(
        engine.stats().digest_entries_skipped,
        100_000 - MAX_NEW_PULLS_PER_PEER as u64
    );
    // The honest peer's document is still pulled.
    let entries = vec![(doc("boats"), [1; 8])];
    engine.handle_message(
        now,
        honest,
        &encode(&SyncMessage::Digest(entries)),
        &mut store,
    );
    assert_eq!(engine.pulls_running(), MAX_NEW_PULLS_PER_PEER + 1);
    // Many flooders: never more than MAX_PULLS in all.
    for n in 10..40u8 {
        engine.handle_peer_up(now, peer(n), &store.replica);
        for chunk in names.chunks(1000).take(3) {
            let entries = chunk.iter().map(|n| (doc(n), [7; 8])).collect();
            engine.handle_message(
                now,
                peer(n),
                &encode(&SyncMessage::Digest(entries)),
                &mut store,
            );
        }
    }
    assert!(engine.pulls_running() <= MAX_PULLS);
}

#[test]
fn a_peer_over_its_check_budget_is_dropped_before_any_check() {
    let now = Instant::ZERO;
    let mut store = Counting::default();
    let mut engine = SyncEngine::new(SyncConfig::default(), [1; 32]);
    engine.handle_peer_up(now, peer(2), &store.replica);
    let writer = NodeKey::from_seed(&[9; 32]);
    // The same 10 valid changes 2 000 times in one instant: 20 000 checks asked for.
    let message = push("boats", &changes(&writer, "boats", 10));
    for _ in 0..2_000 {
        engine.handle_message(now, peer(2), &message, &mut store);
    }
    assert_eq!(store.checked, VERIFY_BURST as usize);
    assert_eq!(engine.stats().over_budget, 1_000);
    // A second later the budget has refilled by the rate.
    let later = now + Duration::from_secs(1);
    for _ in 0..2_000 {
        engine.handle_message(later, peer(2), &message, &mut store);
    }
    assert_eq!(store.checked, (VERIFY_BURST + VERIFY_RATE) as usize);
}

#[test]
fn a_peer_sending_bad_changes_is_ignored_for_a_while() {
    let now = Instant::ZERO;
    let mut store = Counting::default();
    let mut engine = SyncEngine::new(SyncConfig::default(), [1; 32]);
    let (liar, honest) = (peer(2), peer(3));
    engine.handle_peer_up(now, liar, &store.replica);
    engine.handle_peer_up(now, honest, &store.replica);
    let writer = NodeKey::from_seed(&[9; 32]);
    let mut forged = changes(&writer, "boats", 1);
    forged[0][40] ^= 1;
    for i in 0..1_000 {
        let t = now + Duration::from_millis(i);
        engine.handle_message(t, liar, &push("boats", &forged), &mut store);
    }
    assert_eq!(store.checked, MAX_BAD_CHANGES as usize + 1, "then ignored");
    assert_eq!(engine.stats().penalties, 1);
    assert_eq!(
        engine.stats().ignored,
        1_000 - u64::from(MAX_BAD_CHANGES) - 1
    );
    // The honest peer is heard meanwhile.
    engine.handle_message(
        now,
        honest,
        &push("boats", &changes(&writer, "boats", 2)),
        &mut store,
    );
    assert_eq!(engine.stats().changes_applied, 2);
    // After the penalty the liar is heard again.
    let after = now + PENALTY + Duration::from_secs(1);
    let good = changes(&writer, "boats", 3);
    engine.handle_message(after, liar, &push("boats", &good[2..]), &mut store);
    assert_eq!(engine.stats().changes_applied, 3);
}
