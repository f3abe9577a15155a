//! The decision rule on the cases it exists for, and, by property, the same verdicts whatever order
//! the changes arrive in.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::services::crdt::change::AccessPoint;
use crate::services::crdt::context::Actor;

fn a(n: u8) -> Actor {
    Actor([n; 32])
}

fn point(entries: &[(u8, u64)]) -> AccessPoint {
    entries.iter().map(|(n, s)| (a(*n), *s)).collect()
}

fn grant(author: u8, seq: u64, at: &[(u8, u64)], to: u8, level: Level) -> OpEntry {
    OpEntry {
        author: a(author),
        seq,
        point: point(at),
        op: AccessOp::Grant {
            subject: Subject::Key(a(to)),
            level,
        },
    }
}

fn revoke(
    author: u8,
    seq: u64,
    at: &[(u8, u64)],
    who: u8,
    level: Level,
    keep: &[(&str, u64)],
) -> OpEntry {
    OpEntry {
        author: a(author),
        seq,
        point: point(at),
        op: AccessOp::Revoke {
            subject: Subject::Key(a(who)),
            level,
            keep: keep.iter().map(|(d, n)| ((*d).to_owned(), *n)).collect(),
        },
    }
}

/// `holder` redeems, in its access change `seq`, a token from `issuer` for `level`.
fn redeem(holder: u8, seq: u64, at: &[(u8, u64)], issuer: u8, level: Level) -> OpEntry {
    OpEntry {
        author: a(holder),
        seq,
        point: point(at),
        op: AccessOp::Redeem {
            holder: a(holder),
            level,
            issuer: a(issuer),
            proof: Box::new(op::Proof {
                token: format!("token of {issuer} for {holder}"),
                capabilities: Vec::new(),
                not_before: 0,
                expires: u64::MAX,
            }),
        },
    }
}

/// A namespace owned by key 1.
fn owned() -> AccessLog {
    AccessLog::new(NamespaceClass::Owned(a(1)), TrustRoot::default())
}

fn admit(log: &mut AccessLog, writer: u8, at: &[(u8, u64)]) -> Admission {
    log.admit_change(a(writer), "d", &point(at)).0
}

fn counts(log: &mut AccessLog, writer: u8, seq: u64, at: &[(u8, u64)]) -> bool {
    let (admission, closure) = log.admit_change(a(writer), "d", &point(at));
    admission == Admission::Admitted && log.counts(a(writer), "d", seq, &closure)
}

#[test]
fn the_level_memo_stays_bounded_and_changes_no_verdict() {
    let mut log = owned();
    assert_eq!(
        log.insert_op(grant(1, 1, &[], 2, Level::Write)),
        Admission::Admitted
    );
    // Writers that were never granted, each a new key: every one is a new memo entry.
    let strangers = (super::resolve::MAX_CACHED_LEVELS + 500) as u32;
    for i in 0..strangers {
        let mut key = [0xee; 32];
        key[..4].copy_from_slice(&i.to_le_bytes());
        let (admission, _) = log.admit_change(Actor(key), "d", &point(&[(1, 1)]));
        assert!(matches!(admission, Admission::Refused(_)), "stranger {i}");
        assert!(log.cached_levels() <= super::resolve::MAX_CACHED_LEVELS);
    }
    assert!(log.cached_levels() < strangers as usize);
    // The granted writer, before and after the memo was emptied.
    assert_eq!(admit(&mut log, 2, &[(1, 1)]), Admission::Admitted);
    assert!(matches!(
        admit(&mut log, 3, &[(1, 1)]),
        Admission::Refused(_)
    ));
}

#[test]
fn a_redeemed_token_counts_as_its_issuers_grant_and_falls_with_the_issuer() {
    let mut log = owned();
    // The owner's token, redeemed by 2 without any grant on the log.
    assert_eq!(
        log.insert_op(redeem(2, 1, &[], 1, Level::Write)),
        Admission::Admitted
    );
    assert!(counts(&mut log, 2, 1, &[(2, 1)]));
    assert_eq!(log.level_now(a(2), "d"), Level::Write);
    // A token from someone who does not manage: refused; one redeemed by another key: refused.
    assert!(matches!(
        log.insert_op(redeem(4, 1, &[], 3, Level::Write)),
        Admission::Refused(_)
    ));
    let mut stolen = redeem(5, 1, &[], 1, Level::Write);
    stolen.author = a(6);
    assert!(matches!(log.insert_op(stolen), Admission::Refused(_)));
    // 3 is made a manager and gives 4 a token; the owner, not having seen 4's redemption,
    // demotes 3: the redemption falls with its issuer, as 3's own concurrent grants would.
    assert_eq!(
        log.insert_op(grant(1, 1, &[], 3, Level::Manage)),
        Admission::Admitted
    );
    assert_eq!(
        log.insert_op(redeem(4, 1, &[(1, 1)], 3, Level::Write)),
        Admission::Admitted
    );
    assert_eq!(log.level_now(a(4), "d"), Level::Write);
    assert_eq!(
        log.insert_op(revoke(1, 2, &[(1, 1)], 3, Level::Read, &[])),
        Admission::Admitted
    );
    assert_eq!(log.verdict(a(4), 1), Some(false), "cut with its issuer");
    assert_eq!(log.level_now(a(4), "d"), Level::None);
    // Redeemed after the demotion was seen: 3 no longer manages there.
    assert!(matches!(
        log.insert_op(redeem(4, 2, &[(1, 2)], 3, Level::Write)),
        Admission::Refused(_)
    ));
    // The holder itself can be revoked like any grantee.
    assert_eq!(
        log.insert_op(revoke(1, 3, &[(1, 2), (2, 1)], 2, Level::None, &[])),
        Admission::Admitted
    );
    assert_eq!(log.level_now(a(2), "d"), Level::None);
}

#[test]
fn an_owner_grants_and_strangers_are_refused() {
    let mut log = owned();
    assert_eq!(admit(&mut log, 1, &[]), Admission::Admitted, "the owner");
    assert!(matches!(admit(&mut log, 2, &[]), Admission::Refused(_)));
    assert_eq!(
        log.insert_op(grant(1, 1, &[], 2, Level::Write)),
        Admission::Admitted
    );
    assert!(counts(&mut log, 2, 1, &[(1, 1)]));
    // Signed before the grant was seen: refused.
    assert!(matches!(admit(&mut log, 2, &[]), Admission::Refused(_)));
    assert!(matches!(
        admit(&mut log, 3, &[(1, 1)]),
        Admission::Refused(_)
    ));
    // A point naming an access change not held yet waits.
    assert_eq!(admit(&mut log, 2, &[(1, 2)]), Admission::Pending);
    // A non-manager cannot grant.
    assert!(matches!(
        log.insert_op(grant(2, 1, &[(1, 1)], 3, Level::Write)),
        Admission::Refused(_)
    ));
    assert_eq!(log.level_now(a(2), "d"), Level::Write);
    assert_eq!(log.level_now(a(3), "d"), Level::None);
}

#[test]
fn a_revocation_cuts_what_the_revoked_writer_did_unseen() {
    let mut log = owned();
    log.insert_op(grant(1, 1, &[], 2, Level::Write));
    // The owner saw 3 of the writer's changes when it revoked; the writer, cut off, made 2 more.
    assert_eq!(
        log.insert_op(revoke(1, 2, &[(1, 1)], 2, Level::Read, &[("d", 3)])),
        Admission::Admitted
    );
    for seq in 1..=3 {
        assert!(
            counts(&mut log, 2, seq, &[(1, 1)]),
            "seen by the revoker: {seq}"
        );
    }
    for seq in 4..=5 {
        assert_eq!(admit(&mut log, 2, &[(1, 1)]), Admission::Admitted);
        assert!(!counts(&mut log, 2, seq, &[(1, 1)]), "unseen: cut: {seq}");
    }
    // Signed after seeing the revocation: never stored.
    assert!(matches!(
        admit(&mut log, 2, &[(1, 2)]),
        Admission::Refused(_)
    ));
    // Signing at an old point does not escape the cut.
    assert!(!counts(&mut log, 2, 6, &[]));
    assert_eq!(log.level_now(a(2), "d"), Level::Read);
    // Granted again later: writes count again.
    log.insert_op(grant(1, 3, &[(1, 2)], 2, Level::Write));
    assert!(counts(&mut log, 2, 7, &[(1, 3)]));
}

#[test]
fn a_revocation_beats_a_concurrent_grant_until_a_later_one() {
    let mut log = owned();
    log.insert_op(grant(1, 1, &[], 4, Level::Manage));
    // The manager grants 2; the owner, concurrently, shuts 2 out.
    log.insert_op(grant(4, 1, &[(1, 1)], 2, Level::Write));
    log.insert_op(revoke(1, 2, &[(1, 1)], 2, Level::None, &[]));
    assert_eq!(log.level_now(a(2), "d"), Level::None);
    // The owner, having seen both, grants again.
    log.insert_op(grant(1, 3, &[(1, 2), (4, 1)], 2, Level::Write));
    assert_eq!(log.level_now(a(2), "d"), Level::Write);
}

#[test]
fn a_revoked_managers_concurrent_grants_do_not_count() {
    let mut log = owned();
    log.insert_op(grant(1, 1, &[], 4, Level::Manage));
    log.insert_op(revoke(1, 2, &[(1, 1)], 4, Level::Write, &[]));
    // Made at a point where 4 still managed: stored, but cut.
    assert_eq!(
        log.insert_op(grant(4, 1, &[(1, 1)], 5, Level::Write)),
        Admission::Admitted
    );
    assert_eq!(log.verdict(a(4), 1), Some(false));
    assert_eq!(log.level_now(a(5), "d"), Level::None);
    // 5's writes relying on that grant are stored, and do not count.
    assert_eq!(admit(&mut log, 5, &[(1, 1), (4, 1)]), Admission::Admitted);
    assert!(!counts(&mut log, 5, 1, &[(1, 1), (4, 1)]));
    // After seeing its revocation, 4 cannot grant at all.
    assert!(matches!(
        log.insert_op(grant(4, 2, &[(1, 2), (4, 1)], 6, Level::Write)),
        Admission::Refused(_)
    ));
}

#[test]
fn managers_revoking_each_other_concurrently_both_lose() {
    let mut log = owned();
    log.insert_op(grant(1, 1, &[], 4, Level::Manage));
    log.insert_op(grant(1, 2, &[(1, 1)], 5, Level::Manage));
    log.insert_op(revoke(4, 1, &[(1, 2)], 5, Level::Read, &[]));
    log.insert_op(revoke(5, 1, &[(1, 2)], 4, Level::Read, &[]));
    assert_eq!(
        (log.verdict(a(4), 1), log.verdict(a(5), 1)),
        (Some(true), Some(true))
    );
    assert_eq!(log.level_now(a(4), "d"), Level::Read);
    assert_eq!(log.level_now(a(5), "d"), Level::Read);
}

#[test]
fn roots_cannot_be_revoked_and_members_can_leave() {
    let mut log = owned();
    log.insert_op(grant(1, 1, &[], 4, Level::Manage));
    assert!(matches!(
        log.insert_op(revoke(4, 1, &[(1, 1)], 1, Level::None, &[])),
        Admission::Refused(_)
    ));
    log.insert_op(grant(1, 2, &[(1, 1)], 2, Level::Write));
    assert_eq!(
        log.insert_op(revoke(2, 1, &[(1, 2)], 2, Level::Pull, &[])),
        Admission::Admitted
    );
    assert_eq!(log.level_now(a(2), "d"), Level::Pull);
    assert_eq!(log.level_now(a(1), "d"), Level::Manage);
}

#[test]
fn public_namespaces_let_anyone_write_until_an_admin_shuts_a_key_out() {
    let root = TrustRoot::new([a(1)]);
    let mut log = AccessLog::new(NamespaceClass::of("public/market", &root), root);
    assert_eq!(admit(&mut log, 7, &[]), Admission::Admitted);
    log.insert_op(revoke(1, 1, &[], 7, Level::Read, &[("d", 2)]));
    assert!(counts(&mut log, 7, 2, &[]));
    assert!(!counts(&mut log, 7, 3, &[]));
    assert!(counts(&mut log, 8, 1, &[(1, 1)]), "others still write");
    assert!(matches!(
        log.insert_op(revoke(8, 1, &[(1, 1)], 9, Level::None, &[])),
        Admission::Refused(_)
    ));
}

#[test]
fn names_give_classes() {
    let root = TrustRoot::new([a(1)]);
    let did = crate::services::identity::did_key::did_key(
        &crate::core::identity::NodeKey::from_seed(&[3; 32]).public_key(),
    );
    let id = did.trim_start_matches("did:key:");
    let owner = Actor(
        *crate::core::identity::NodeKey::from_seed(&[3; 32])
            .public_key()
            .as_bytes(),
    );
    assert_eq!(
        NamespaceClass::of(&format!("~{id}/notes"), &root),
        NamespaceClass::Owned(owner)
    );
    assert_eq!(
        NamespaceClass::of("~nobody/notes", &root),
        NamespaceClass::Unowned
    );
    assert_eq!(
        NamespaceClass::of("identity", &root),
        NamespaceClass::Identity
    );
    assert_eq!(NamespaceClass::of("public", &root), NamespaceClass::Public);
    assert_eq!(NamespaceClass::of("stock", &root), NamespaceClass::Shared);
    let open = TrustRoot::default();
    for name in ["stock", "identity", "public"] {
        assert_eq!(NamespaceClass::of(name, &open), NamespaceClass::Open);
    }
    assert_eq!(
        NamespaceClass::of(&format!("~{id}/notes"), &open),
        NamespaceClass::Owned(owner)
    );
}

#[test]
fn access_changes_round_trip_and_junk_is_refused() {
    let did = crate::services::identity::did_key::did_key(
        &crate::core::identity::NodeKey::from_seed(&[3; 32]).public_key(),
    );
    let subject = Subject::parse(&did).unwrap();
    let ops = [
        AccessOp::Grant {
            subject,
            level: Level::Write,
        },
        AccessOp::Grant {
            subject: Subject::Anyone,
            level: Level::Pull,
        },
        AccessOp::Revoke {
            subject,
            level: Level::None,
            keep: BTreeMap::from([("stock".to_owned(), 4)]),
        },
    ];
    for op in ops {
        let text = op.encode(9);
        assert_eq!(AccessOp::decode(&text, 9), Ok(op), "{text}");
        assert_eq!(AccessOp::decode(&text, 8), Err(op::OpError::Number));
    }
    for junk in [
        "",
        "{}",
        r#"{"op":"grant","subject":"*","level":"none","n":1}"#,
        r#"{"op":"revoke","subject":"*","level":"manage","keep":{},"n":1}"#,
        r#"{"op":"grant","subject":"did:key:zzz","level":"write","n":1}"#,
        r#"{"op":"grant","subject":"*","level":"write","n":1,"extra":1}"#,
        r#"{"op":"revoke","subject":"*","level":"read","n":1}"#,
    ] {
        assert!(AccessOp::decode(junk, 1).is_err(), "{junk}");
    }
}

/// What one simulated member does.
#[derive(Debug, Clone)]
enum Step {
    /// Member `by` grants `to` `level`.
    Grant { by: usize, to: usize, level: u8 },
    /// Member `by` lowers `to` to `level`, keeping what it saw.
    Revoke { by: usize, to: usize, level: u8 },
    /// Member `by` writes document "d".
    Write { by: usize },
    /// Member `to` learns everything `from` holds.
    Sync { from: usize, to: usize },
}

const MEMBERS: usize = 5;

fn step() -> impl Strategy<Value = Step> {
    let m = 0..MEMBERS;
    // Grants lean to Manage and syncs are frequent, so managers often act concurrently.
    prop_oneof![
        3 => (m.clone(), m.clone(), 2..6u8).prop_map(|(by, to, level)| Step::Grant { by, to, level }),
        2 => (m.clone(), m.clone(), 0..4u8).prop_map(|(by, to, level)| Step::Revoke { by, to, level }),
        2 => m.clone().prop_map(|by| Step::Write { by }),
        4 => (m.clone(), m).prop_map(|(from, to)| Step::Sync { from, to }),
    ]
}

fn level(n: u8) -> Level {
    [
        Level::None,
        Level::Pull,
        Level::Read,
        Level::Write,
        Level::Manage,
    ][usize::from(n.min(4))]
}

/// A data change: writer, seq, the point it was signed at.
type Write = (Actor, u64, AccessPoint);

/// Member `i` (member 0 owns the namespace).
fn member(i: usize) -> Actor {
    a(i as u8 + 1)
}

/// Inserts `ops` into `log` in the given order, retrying pending ones until nothing moves.
fn insert_all(log: &mut AccessLog, ops: &[OpEntry]) -> BTreeMap<(Actor, u64), Admission> {
    let mut verdicts = BTreeMap::new();
    let mut waiting: Vec<&OpEntry> = ops.iter().collect();
    loop {
        let before = waiting.len();
        waiting.retain(|op| match log.insert_op((*op).clone()) {
            Admission::Pending => true,
            other => {
                verdicts.insert((op.author, op.seq), other);
                false
            }
        });
        if waiting.len() == before {
            break;
        }
    }
    verdicts
}

/// The access changes made, those refused where they were made, and the writes.
fn run(steps: &[Step]) -> (Vec<OpEntry>, Vec<OpEntry>, Vec<Write>) {
    let mut logs: Vec<AccessLog> = (0..MEMBERS).map(|_| owned()).collect();
    let mut held: Vec<Vec<OpEntry>> = vec![Vec::new(); MEMBERS];
    let mut seqs = [0u64; MEMBERS];
    let mut written = [0u64; MEMBERS];
    // Per member, how many of each member's writes it has seen.
    let mut seen = [[0u64; MEMBERS]; MEMBERS];
    let mut ops = Vec::new();
    let mut refused = Vec::new();
    let mut writes = Vec::new();
    for step in steps {
        match *step {
            Step::Grant { by, to, level: l } | Step::Revoke { by, to, level: l } => {
                let op = match step {
                    Step::Grant { .. } => AccessOp::Grant {
                        subject: Subject::Key(member(to)),
                        level: level(l),
                    },
                    _ => AccessOp::Revoke {
                        subject: Subject::Key(member(to)),
                        level: level(l),
                        keep: BTreeMap::from([
                            ("d".to_owned(), seen[by][to]),
                            (
                                ACCESS_DOCUMENT.to_owned(),
                                logs[by].point().get(&member(to)).copied().unwrap_or(0),
                            ),
                        ]),
                    },
                };
                let entry = OpEntry {
                    author: member(by),
                    seq: seqs[by] + 1,
                    point: logs[by].point().clone(),
                    op,
                };
                // Made whether or not it may be: a bad member signs anyway.
                if logs[by].insert_op(entry.clone()) == Admission::Admitted {
                    seqs[by] += 1;
                    held[by].push(entry.clone());
                    ops.push(entry);
                } else {
                    refused.push(entry);
                }
            }
            Step::Write { by } => {
                written[by] += 1;
                seen[by][by] = written[by];
                writes.push((member(by), written[by], logs[by].point().clone()));
            }
            Step::Sync { from, to } => {
                let theirs = held[from].clone();
                insert_all(&mut logs[to], &theirs);
                for op in theirs {
                    if !held[to].contains(&op) {
                        held[to].push(op);
                    }
                }
                let theirs = seen[from];
                for (mine, other) in seen[to].iter_mut().zip(theirs) {
                    *mine = (*mine).max(other);
                }
            }
        }
    }
    (ops, refused, writes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Concurrent grants and revocations, applied in any order on any replica, give the same
    /// verdict for every access change and every write; and whether a change is stored at all is
    /// decided the same way whenever it arrives.
    #[test]
    fn any_order_gives_the_same_decisions(
        steps in proptest::collection::vec(step(), 1..120),
        seed in any::<u64>(),
    ) {
        let (ops, refused, writes) = run(&steps);
        let mut shuffled = ops.clone();
        let mut rng = crate::core::rng::Rng::from_seed([seed as u8; 32]);
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i + 1));
        }
        let (mut one, mut two) = (owned(), owned());
        let first = insert_all(&mut one, &ops);
        let second = insert_all(&mut two, &shuffled);
        prop_assert_eq!(&first, &second);
        for op in &ops {
            prop_assert_eq!(one.verdict(op.author, op.seq), two.verdict(op.author, op.seq));
        }
        for m in 0..MEMBERS {
            prop_assert_eq!(one.level_now(member(m), "d"), two.level_now(member(m), "d"));
        }
        for (writer, seq, at) in &writes {
            let (admitted, closure) = one.admit_change(*writer, "d", at);
            let (admitted_two, closure_two) = two.admit_change(*writer, "d", at);
            prop_assert_eq!(admitted, admitted_two);
            prop_assert_eq!(&closure, &closure_two);
            if admitted == Admission::Admitted {
                prop_assert_eq!(
                    one.counts(*writer, "d", *seq, &closure),
                    two.counts(*writer, "d", *seq, &closure_two)
                );
            }
        }
        // Admission never flips: what a log decided on arrival, a log holding everything decides
        // too; what its maker's own log refused, every log refuses.
        for op in &ops {
            prop_assert_eq!(first.get(&(op.author, op.seq)), Some(&Admission::Admitted));
            prop_assert_eq!(one.check_op(op), Admission::Admitted);
        }
        for op in &refused {
            prop_assert!(matches!(one.check_op(op), Admission::Refused(_)));
            prop_assert!(matches!(two.check_op(op), Admission::Refused(_)));
        }
        if std::env::var_os("ACCESS_STATS").is_some() {
            let not_counted = ops.iter().filter(|o| one.verdict(o.author, o.seq) == Some(false)).count();
            let cut = writes.iter().filter(|(w, s, at)| {
                let (admitted, closure) = one.admit_change(*w, "d", at);
                admitted == Admission::Admitted && !one.counts(*w, "d", *s, &closure)
            }).count();
            eprintln!("ops {} refused {} not counted {} writes {} cut {}", ops.len(), refused.len(), not_counted, writes.len(), cut);
        }
    }
}
