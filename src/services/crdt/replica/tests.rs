//! The replica's limits and access gate.

use super::*;
use crate::services::crdt::access::Subject;
use crate::services::crdt::document::{Edit, View};
use crate::services::crdt::field::ValueKind;
use crate::services::identity::did_key::did_key;

const KIND: Kind = Kind::Map(ValueKind::Counter);

fn key(n: u8) -> NodeKey {
    NodeKey::from_seed(&[n; 32])
}

fn owned(owner: &NodeKey) -> String {
    format!(
        "~{}/plan",
        did_key(&owner.public_key()).trim_start_matches("did:key:")
    )
}

/// `key` adds 1 to `item` in namespace/ledger, signed at the replica's access point.
fn incr(replica: &mut Replica, key: &NodeKey, namespace: &str, item: &str) -> Inserted {
    let op = Op::Key(item.into(), Edit::Increment(1));
    let change = replica
        .prepare_write(key, namespace, "ledger", KIND, &op, 1)
        .unwrap();
    replica.insert_verified(&change, &change.encode())
}

/// `owner` grants `writer` write access to `namespace`, applied.
fn grant_write(replica: &mut Replica, owner: &NodeKey, namespace: &str, writer: &NodeKey) {
    let grant = AccessOp::Grant {
        subject: Subject::Key(Actor(*writer.public_key().as_bytes())),
        level: Level::Write,
    };
    let change = replica.prepare_access(owner, namespace, &grant, 1).unwrap();
    assert_eq!(
        replica.insert_verified(&change, &change.encode()),
        Inserted::Applied
    );
}

fn fish(replica: &Replica, namespace: &str) -> i64 {
    let Some(log) = replica.document(namespace, "ledger") else {
        return 0;
    };
    match log.document().view() {
        View::Map(m) => match m.get("fish") {
            Some(View::Counter(n)) => *n,
            _ => 0,
        },
        _ => 0,
    }
}

#[test]
fn a_namespace_stops_growing_at_the_quota_and_oversized_changes_are_refused() {
    let writer = key(1);
    let mut replica = Replica::new().with_quota(Quota {
        changes: 5,
        bytes: 1 << 20,
        ..Quota::default()
    });
    for _ in 0..5 {
        assert_eq!(
            incr(&mut replica, &writer, "stock", "fish"),
            Inserted::Applied
        );
    }
    assert!(replica.over_quota("stock"));
    assert_eq!(
        incr(&mut replica, &writer, "stock", "fish"),
        Inserted::OverQuota
    );
    assert_eq!(replica.usage("stock").0, 5);
    assert_eq!(
        incr(&mut replica, &writer, "census", "fish"),
        Inserted::Applied
    );
    // A change over 64 KiB, and a writer past 1 000 000 changes to a document: refused everywhere.
    let big = Op::Key("note".into(), Edit::Increment(1));
    let mut change = replica
        .prepare_write(&writer, "census", "big", KIND, &big, 1)
        .unwrap();
    let padded = vec![0u8; MAX_CHANGE_BYTES + 1];
    assert_eq!(
        replica.insert_verified(&change, &padded),
        Inserted::Refused("a change may take 64 KiB")
    );
    change.seq = MAX_SEQ + 1;
    assert!(matches!(
        replica.insert_verified(&change, &change.encode()),
        Inserted::Refused(_)
    ));
}

#[test]
fn a_writer_stops_at_its_quota_while_other_writers_and_the_owner_go_on() {
    let (owner, first, second) = (key(1), key(2), key(3));
    let ns = owned(&owner);
    let mut replica = Replica::new().with_quota(Quota {
        changes: 100,
        bytes: 1 << 20,
        writer_changes: 3,
        writer_bytes: 1 << 20,
    });
    for writer in [&first, &second] {
        grant_write(&mut replica, &owner, &ns, writer);
    }
    for _ in 0..3 {
        assert_eq!(incr(&mut replica, &first, &ns, "fish"), Inserted::Applied);
    }
    let first_actor = Actor(*first.public_key().as_bytes());
    assert!(replica.writer_over_quota(&ns, first_actor));
    assert_eq!(incr(&mut replica, &first, &ns, "fish"), Inserted::OverQuota);
    assert!(!replica.over_quota(&ns), "the namespace itself has room");
    assert_eq!(incr(&mut replica, &second, &ns, "fish"), Inserted::Applied);
    // The owner (a root of its namespace) is bound by the namespace's quota only.
    for _ in 0..5 {
        assert_eq!(incr(&mut replica, &owner, &ns, "fish"), Inserted::Applied);
    }
    assert_eq!(fish(&replica, &ns), 9);
    // In an open namespace (no admins configured) every writer has its quota.
    for _ in 0..3 {
        assert_eq!(
            incr(&mut replica, &owner, "stock", "fish"),
            Inserted::Applied
        );
    }
    assert_eq!(
        incr(&mut replica, &owner, "stock", "fish"),
        Inserted::OverQuota
    );
    assert_eq!(
        incr(&mut replica, &first, "stock", "fish"),
        Inserted::Applied
    );
}

/// `holder`'s redemption of `token` for `level` in `namespace`, signed at `secs`.
fn redeem(
    replica: &mut Replica,
    holder: &NodeKey,
    namespace: &str,
    token: &str,
    level: Level,
    secs: u64,
) -> Inserted {
    let member = serde_json::json!({
        "op": "redeem", "subject": did_key(&holder.public_key()), "level": level.name(),
        "proof": token, "n": 1,
    });
    let op = AccessOp::decode(&member.to_string(), 1).unwrap();
    let change = replica
        .prepare_access(holder, namespace, &op, secs * 1000)
        .unwrap();
    replica.insert_verified(&change, &change.encode())
}

#[test]
fn a_delegation_token_is_redeemed_only_in_its_namespace_level_and_time() {
    use crate::services::identity::ucan::{Capability, delegate};
    let (owner, holder) = (key(1), key(2));
    let ns = owned(&owner);
    let write_here = |with: &str| {
        delegate(
            &owner,
            &did_key(&holder.public_key()),
            &[Capability {
                with: with.to_owned(),
                can: "crdt/write".into(),
            }],
            1_000,
            2_000,
            &[],
        )
    };
    let token = write_here(&format!("crdt://{ns}"));
    let mut replica = Replica::new();
    assert!(matches!(
        incr(&mut replica, &holder, &ns, "fish"),
        Inserted::Refused(_)
    ));
    let elsewhere = write_here("crdt://other");
    for (token, level, secs, why) in [
        (&token, Level::Write, 2_001, "expired"),
        (&token, Level::Write, 999, "not yet"),
        (&token, Level::Manage, 1_500, "wider than the token"),
        (&elsewhere, Level::Write, 1_500, "another namespace"),
    ] {
        let inserted = redeem(&mut replica, &holder, &ns, token, level, secs);
        assert!(matches!(inserted, Inserted::Refused(_)), "{why}");
    }
    // Someone else presenting the holder's token: its audience is not them.
    let member = serde_json::json!({
        "op": "redeem", "subject": did_key(&key(3).public_key()), "level": "write",
        "proof": token, "n": 1,
    });
    assert!(AccessOp::decode(&member.to_string(), 1).is_err());
    assert_eq!(
        redeem(&mut replica, &holder, &ns, &token, Level::Write, 1_500),
        Inserted::Applied
    );
    assert_eq!(incr(&mut replica, &holder, &ns, "fish"), Inserted::Applied);
    assert_eq!(fish(&replica, &ns), 1);
    // A wildcard resource covers the namespace too.
    let wide = write_here("crdt://*");
    let mut other = Replica::new();
    assert_eq!(
        redeem(&mut other, &holder, &ns, &wide, Level::Read, 1_500),
        Inserted::Applied
    );
}

#[test]
fn writes_follow_grants_and_a_revocation_rebuilds_the_document_without_cut_changes() {
    let (owner, writer, stranger) = (key(1), key(2), key(3));
    let ns = owned(&owner);
    let mut replica = Replica::new();
    assert_eq!(incr(&mut replica, &owner, &ns, "fish"), Inserted::Applied);
    assert!(matches!(
        incr(&mut replica, &stranger, &ns, "fish"),
        Inserted::Refused(_)
    ));
    assert_eq!(fish(&replica, &ns), 1, "the refused change is not stored");
    grant_write(&mut replica, &owner, &ns, &writer);
    // The writer writes twice; the owner, having seen one, revokes it; the second is cut.
    let op = Op::Key("fish".into(), Edit::Increment(10));
    let first = replica
        .prepare_write(&writer, &ns, "ledger", KIND, &op, 1)
        .unwrap();
    let mut other = replica.clone();
    assert_eq!(
        replica.insert_verified(&first, &first.encode()),
        Inserted::Applied
    );
    other.insert_verified(&first, &first.encode());
    let second = other
        .prepare_write(&writer, &ns, "ledger", KIND, &op, 2)
        .unwrap();
    let revoke = AccessOp::Revoke {
        subject: grant_subject(&writer),
        level: Level::Read,
        keep: replica.seen_of(&ns, Actor(*writer.public_key().as_bytes())),
    };
    let revocation = replica.prepare_access(&owner, &ns, &revoke, 2).unwrap();
    assert_eq!(
        replica.insert_verified(&revocation, &revocation.encode()),
        Inserted::Applied
    );
    assert_eq!(fish(&replica, &ns), 11);
    assert_eq!(
        replica.insert_verified(&second, &second.encode()),
        Inserted::Applied
    );
    assert_eq!(fish(&replica, &ns), 11, "stored but cut");
    // Where the second write arrived first, the revocation rebuilds the document without it.
    assert_eq!(
        other.insert_verified(&second, &second.encode()),
        Inserted::Applied
    );
    assert_eq!(fish(&other, &ns), 21);
    other.insert_verified(&revocation, &revocation.encode());
    assert_eq!(fish(&other, &ns), 11);
    assert_eq!(other.document(&ns, "ledger").unwrap().suppressed(), 1);
}

#[test]
fn refused_changes_naming_ever_new_namespaces_leave_nothing_behind() {
    let stranger = key(9);
    let mut replica = Replica::new();
    for n in 0..10_000u32 {
        let mut seed = [1u8; 32];
        seed[..4].copy_from_slice(&n.to_le_bytes());
        let ns = owned(&NodeKey::from_seed(&seed));
        assert!(matches!(
            incr(&mut replica, &stranger, &ns, "fish"),
            Inserted::Refused(_)
        ));
    }
    assert_eq!((replica.access.len(), replica.docs.len()), (0, 0));
}

fn grant_subject(key: &NodeKey) -> Subject {
    Subject::Key(Actor(*key.public_key().as_bytes()))
}
