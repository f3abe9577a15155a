//! The names rule on real replicas: claims, rewrites and releases pass; writing or removing
//! another's entry, another schema and bad claims are refused the same way everywhere.

use super::*;
use crate::core::identity::NodeKey;
use crate::services::crdt::access::class::TrustRoot;
use crate::services::crdt::change::Change;
use crate::services::crdt::context::Actor;
use crate::services::crdt::document::{Edit, Op};
use crate::services::crdt::field::{Kind, ValueKind};
use crate::services::crdt::log::Inserted;
use crate::services::crdt::replica::Replica;

fn replica(admins: &[&NodeKey]) -> Replica {
    let root = TrustRoot::new(admins.iter().map(|k| Actor(*k.public_key().as_bytes())));
    Replica::with_trust_root(root).ruled(NAMESPACE, admit)
}

fn write(r: &Replica, key: &NodeKey, label: &str, kind: Kind, op: Op) -> Change {
    r.prepare_write(key, NAMESPACE, label, kind, &op, 1_000)
        .unwrap()
}

fn put(r: &mut Replica, change: &Change) -> Inserted {
    r.insert_verified(change, &change.encode())
}

fn set(key: &NodeKey, claim: &Claim) -> Op {
    Op::Key(key.public_key().to_hex(), Edit::Write(claim.encode()))
}

fn bare(since: u64) -> Claim {
    Claim {
        since,
        target: None,
        seen: vec![],
    }
}

#[test]
fn claimants_write_and_release_only_their_own_entries() {
    let (c, x) = (NodeKey::from_seed(&[3; 32]), NodeKey::from_seed(&[9; 32]));
    for admins in [vec![], vec![&c]] {
        let mut r = replica(&admins);
        let claim = write(&r, &c, "server", admit::KIND, set(&c, &bare(100)));
        assert_eq!(put(&mut r, &claim), Inserted::Applied);
        // x writes under c's key, removes c's entry, or names c's node: all refused.
        let forged = write(&r, &x, "server", admit::KIND, set(&c, &bare(1)));
        assert!(matches!(put(&mut r, &forged), Inserted::Refused(_)));
        let removal = write(
            &r,
            &x,
            "server",
            admit::KIND,
            Op::RemoveKey(c.public_key().to_hex()),
        );
        assert!(
            matches!(put(&mut r, &removal), Inserted::Refused(_)),
            "{}",
            admins.len()
        );
        let mut pointed = bare(5);
        pointed.target = Some(c.public_key());
        let other = write(&r, &x, "server", admit::KIND, set(&x, &pointed));
        assert!(matches!(put(&mut r, &other), Inserted::Refused(_)));
        // x's own claim, seeing c's, is stored; then released.
        let mut own = bare(200);
        own.seen = vec![(c.public_key(), 100)];
        let mine = write(&r, &x, "server", admit::KIND, set(&x, &own));
        assert_eq!(put(&mut r, &mine), Inserted::Applied);
        let release = write(
            &r,
            &x,
            "server",
            admit::KIND,
            Op::RemoveKey(x.public_key().to_hex()),
        );
        assert_eq!(put(&mut r, &release), Inserted::Applied);
        let view = r.document(NAMESPACE, "server").unwrap().document().view();
        let table = NameTable::from_views([("server", &view)], &|_| false);
        assert_eq!(table.labels().map(|(_, e)| e.len()).sum::<usize>(), 1);
    }
}

#[test]
fn other_schemas_labels_and_claims_are_refused() {
    let x = NodeKey::from_seed(&[9; 32]);
    let mut r = replica(&[]);
    let counter = write(
        &r,
        &x,
        "server",
        Kind::Value(ValueKind::Counter),
        Op::Value(Edit::Increment(1)),
    );
    assert!(matches!(put(&mut r, &counter), Inserted::Refused(_)));
    let label = write(&r, &x, "Server", admit::KIND, set(&x, &bare(1)));
    assert!(matches!(put(&mut r, &label), Inserted::Refused(_)));
    let junk = Op::Key(
        x.public_key().to_hex(),
        Edit::Write("{\"since\":\"no\"}".into()),
    );
    let junk = write(&r, &x, "server", admit::KIND, junk);
    assert!(matches!(put(&mut r, &junk), Inserted::Refused(_)));
    // The label is still free for a real claim.
    let claim = write(&r, &x, "server", admit::KIND, set(&x, &bare(1)));
    assert_eq!(put(&mut r, &claim), Inserted::Applied);
}

#[test]
fn an_admin_may_name_any_node() {
    let (admin, c) = (NodeKey::from_seed(&[1; 32]), NodeKey::from_seed(&[3; 32]));
    let mut r = replica(&[&admin]);
    let mut grant = bare(10);
    grant.target = Some(c.public_key());
    let change = write(&r, &admin, "clinic", admit::KIND, set(&admin, &grant));
    assert_eq!(put(&mut r, &change), Inserted::Applied);
}
