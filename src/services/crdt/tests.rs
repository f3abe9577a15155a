//! Properties of the CRDT core: join laws, convergence whatever order (and however often) changes
//! arrive, and agreement with the `crdts` crate where it has the same type.

use std::collections::BTreeSet;

use crdts::{CmRDT, CvRDT};
use proptest::prelude::*;

use super::context::Actor;
use super::document::{Causal, Document, Edit, Op, View};
use super::field::{Kind, ValueKind};
use super::hlc::Hlc;

const REPLICAS: usize = 3;

fn actor(r: usize) -> Actor {
    Actor([r as u8 + 1; 32])
}

/// One step of a script: replica `r` edits (`what` picks the edit), or replica `r` receives the
/// whole state of replica `from`.
#[derive(Debug, Clone)]
enum Step {
    Edit { r: usize, what: u8, value: u8 },
    Sync { from: usize, r: usize },
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        3 => (0..REPLICAS, any::<u8>(), 0u8..4).prop_map(|(r, what, value)| Step::Edit { r, what, value }),
        1 => (0..REPLICAS, 0..REPLICAS).prop_map(|(from, r)| Step::Sync { from, r }),
    ];
    proptest::collection::vec(step, 0..40)
}

fn op_for(kind: Kind, what: u8, value: u8) -> Op {
    let v = format!("v{value}");
    let edit = |kind: ValueKind| match kind {
        ValueKind::Counter => Edit::Increment(i64::from(what % 7) - 3),
        ValueKind::Lww | ValueKind::Mv => Edit::Write(v.clone()),
        ValueKind::Set if what.is_multiple_of(3) => Edit::Remove(v.clone()),
        ValueKind::Set => Edit::Add(v.clone()),
        ValueKind::Text => Edit::Insert(0, v.clone()),
    };
    match kind {
        Kind::Value(k) => Op::Value(edit(k)),
        Kind::Map(_) if what.is_multiple_of(5) => Op::RemoveKey(format!("k{}", what % 3)),
        Kind::Map(k) => Op::Key(format!("k{}", what % 3), edit(k)),
    }
}

/// Runs a script; returns the replicas and every delta made, in order.
fn run(kind: Kind, script: &[Step]) -> (Vec<Document>, Vec<Causal>) {
    let mut docs = vec![Document::new(kind); REPLICAS];
    let mut deltas = Vec::new();
    for (t, step) in script.iter().enumerate() {
        match *step {
            Step::Edit { r, what, value } => {
                let delta = docs[r]
                    .edit(actor(r), &op_for(kind, what, value), t as u64)
                    .expect("edits suit the schema");
                deltas.push(delta);
            }
            Step::Sync { from, r } => {
                let state = docs[from].state().clone();
                assert!(docs[r].apply(&state));
            }
        }
    }
    (docs, deltas)
}

fn kinds() -> impl Strategy<Value = Kind> {
    let value = prop_oneof![
        Just(ValueKind::Counter),
        Just(ValueKind::Lww),
        Just(ValueKind::Mv),
        Just(ValueKind::Set)
    ];
    prop_oneof![
        value.clone().prop_map(Kind::Value),
        value.prop_map(Kind::Map)
    ]
}

fn join(a: &Causal, b: &Causal) -> Causal {
    let mut j = a.clone();
    j.join(b);
    j
}

proptest! {
    #[test]
    fn join_is_commutative_associative_and_idempotent(kind in kinds(), script in steps()) {
        let (docs, deltas) = run(kind, &script);
        let mut states: Vec<Causal> = docs.iter().map(|d| d.state().clone()).collect();
        states.extend(deltas.into_iter().take(3));
        for a in &states {
            prop_assert_eq!(&join(a, a), a);
            for b in &states {
                prop_assert_eq!(join(a, b), join(b, a));
                for c in &states {
                    prop_assert_eq!(join(&join(a, b), c), join(a, &join(b, c)));
                }
            }
        }
    }

    #[test]
    fn the_same_changes_in_any_order_with_duplicates_give_the_same_replica(
        kind in kinds(),
        script in steps(),
        order in proptest::collection::vec(any::<prop::sample::Index>(), 0..80),
    ) {
        let (docs, deltas) = run(kind, &script);
        let mut everything = Document::new(kind);
        for d in &docs {
            prop_assert!(everything.apply(d.state()));
        }
        // All deltas, each at least once, in a shuffled order with repeats.
        let mut shuffled = Document::new(kind);
        for i in &order {
            if !deltas.is_empty() {
                prop_assert!(shuffled.apply(&deltas[i.index(deltas.len())]));
            }
        }
        for d in deltas.iter().rev() {
            prop_assert!(shuffled.apply(d));
        }
        prop_assert_eq!(shuffled.state(), everything.state());
        prop_assert_eq!(shuffled.view(), everything.view());
    }

    #[test]
    fn agrees_with_the_crdts_crate(kind in prop_oneof![
        Just(ValueKind::Counter), Just(ValueKind::Mv), Just(ValueKind::Set), Just(ValueKind::Lww)
    ], script in steps()) {
        let mut ours = vec![Document::new(Kind::Value(kind)); REPLICAS];
        let mut oracle = vec![Oracle::new(kind); REPLICAS];
        for (t, step) in script.iter().enumerate() {
            match *step {
                Step::Edit { r, what, value } => {
                    let op = op_for(Kind::Value(kind), what, value);
                    ours[r].edit(actor(r), &op, t as u64).expect("suits");
                    oracle[r].edit(r as u8, &op, t as u64);
                }
                Step::Sync { from, r } => {
                    let state = ours[from].state().clone();
                    ours[r].apply(&state);
                    let other = oracle[from].clone();
                    oracle[r].merge(other);
                }
            }
            for r in 0..REPLICAS {
                prop_assert_eq!(ours[r].view(), oracle[r].view(), "replica {} after step {}", r, t);
            }
        }
    }
}

/// The `crdts` crate's type for each of our value kinds.
#[derive(Clone)]
enum Oracle {
    Counter(crdts::PNCounter<u8>),
    Mv(crdts::MVReg<String, u8>),
    Set(crdts::Orswot<String, u8>),
    Lww(Option<crdts::LWWReg<String, (Hlc, Actor)>>),
}

impl Oracle {
    fn new(kind: ValueKind) -> Self {
        match kind {
            ValueKind::Counter => Self::Counter(Default::default()),
            ValueKind::Mv => Self::Mv(Default::default()),
            ValueKind::Set => Self::Set(Default::default()),
            ValueKind::Lww => Self::Lww(None),
            ValueKind::Text => unreachable!("text has its own tests (text/tests.rs)"),
        }
    }

    fn edit(&mut self, actor_id: u8, op: &Op, t: u64) {
        match (self, op) {
            (Self::Counter(c), Op::Value(Edit::Increment(by))) => {
                let op = if *by >= 0 {
                    c.inc_many(actor_id, by.unsigned_abs())
                } else {
                    c.dec_many(actor_id, by.unsigned_abs())
                };
                c.apply(op);
            }
            (Self::Mv(m), Op::Value(Edit::Write(v))) => {
                let op = m.write(v.clone(), m.read_ctx().derive_add_ctx(actor_id));
                m.apply(op);
            }
            (Self::Set(s), Op::Value(Edit::Add(v))) => {
                let op = s.add(v.clone(), s.read_ctx().derive_add_ctx(actor_id));
                s.apply(op);
            }
            (Self::Set(s), Op::Value(Edit::Remove(v))) => {
                let op = s.rm(v.clone(), s.contains(v).derive_rm_ctx());
                s.apply(op);
            }
            (Self::Lww(reg), Op::Value(Edit::Write(v))) => {
                let latest = reg.as_ref().map(|r| r.marker.0).unwrap_or_default();
                let marker = (Hlc::next(latest, t), actor(usize::from(actor_id)));
                match reg {
                    Some(r) => r.update(v.clone(), marker),
                    None => {
                        *reg = Some(crdts::LWWReg {
                            val: v.clone(),
                            marker,
                        })
                    }
                }
            }
            _ => unreachable!("scripts only make edits that suit the kind"),
        }
    }

    fn merge(&mut self, other: Self) {
        match (self, other) {
            (Self::Counter(a), Self::Counter(b)) => a.merge(b),
            (Self::Mv(a), Self::Mv(b)) => a.merge(b),
            (Self::Set(a), Self::Set(b)) => a.merge(b),
            (Self::Lww(a), Self::Lww(Some(b))) => match a {
                Some(a) => a.merge(b),
                None => *a = Some(b),
            },
            _ => {}
        }
    }

    fn view(&self) -> View {
        match self {
            Self::Counter(c) => View::Counter(c.read().to_string().parse().expect("fits i64")),
            Self::Mv(m) => {
                let mut v = m.read().val;
                v.sort();
                v.dedup();
                View::Mv(v)
            }
            Self::Set(s) => View::Set(
                s.read()
                    .val
                    .into_iter()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            ),
            Self::Lww(reg) => View::Lww(reg.as_ref().map(|r| r.val.clone())),
        }
    }
}

#[test]
fn concurrent_writes_show_as_a_conflict_until_one_write_sees_them() {
    let kind = Kind::Map(ValueKind::Mv);
    let (mut a, mut b) = (Document::new(kind), Document::new(kind));
    let put = |v: &str| Op::Key("colour".into(), Edit::Write(v.into()));
    let da = a.edit(actor(0), &put("red"), 1).unwrap();
    let db = b.edit(actor(1), &put("blue"), 1).unwrap();
    a.apply(&db);
    b.apply(&da);
    let both = View::Mv(vec!["blue".into(), "red".into()]);
    assert_eq!(a.view(), View::Map([("colour".into(), both)].into()));
    assert_eq!(a.view(), b.view());
    let resolved = a.edit(actor(0), &put("green"), 2).unwrap();
    b.apply(&resolved);
    assert_eq!(
        b.view(),
        View::Map([("colour".into(), View::Mv(vec!["green".into()]))].into())
    );
}

#[test]
fn an_add_concurrent_with_a_remove_wins_and_a_key_edit_survives_its_removal() {
    let set = Kind::Value(ValueKind::Set);
    let (mut a, mut b) = (Document::new(set), Document::new(set));
    let added = a
        .edit(actor(0), &Op::Value(Edit::Add("x".into())), 1)
        .unwrap();
    b.apply(&added);
    let removed = b
        .edit(actor(1), &Op::Value(Edit::Remove("x".into())), 2)
        .unwrap();
    let re_added = a
        .edit(actor(0), &Op::Value(Edit::Add("x".into())), 2)
        .unwrap();
    a.apply(&removed);
    b.apply(&re_added);
    assert_eq!(a.view(), View::Set(vec!["x".into()]));
    assert_eq!(a.view(), b.view());

    let map = Kind::Map(ValueKind::Counter);
    let (mut a, mut b) = (Document::new(map), Document::new(map));
    let inc = |n| Op::Key("apples".into(), Edit::Increment(n));
    b.apply(&a.edit(actor(0), &inc(5), 1).unwrap());
    let gone = a
        .edit(actor(0), &Op::RemoveKey("apples".into()), 2)
        .unwrap();
    let more = b.edit(actor(1), &inc(2), 2).unwrap();
    a.apply(&more);
    b.apply(&gone);
    // The removal took the 5 it saw; the concurrent +2 survives.
    assert_eq!(
        a.view(),
        View::Map([("apples".into(), View::Counter(2))].into())
    );
    assert_eq!(a.view(), b.view());
}

#[test]
fn edits_that_do_not_suit_the_schema_are_refused() {
    let mut counter = Document::new(Kind::Value(ValueKind::Counter));
    assert!(
        counter
            .edit(actor(0), &Op::Value(Edit::Add("x".into())), 1)
            .is_err()
    );
    assert!(
        counter
            .edit(actor(0), &Op::RemoveKey("x".into()), 1)
            .is_err()
    );
    let mut set = Document::new(Kind::Value(ValueKind::Set));
    let delta = set
        .edit(actor(0), &Op::Value(Edit::Add("x".into())), 1)
        .unwrap();
    assert!(
        !counter.apply(&delta),
        "a set delta does not join a counter"
    );
    assert_eq!(counter.view(), View::Counter(0));
    counter
        .edit(actor(0), &Op::Value(Edit::Increment(i64::MAX)), 1)
        .unwrap();
    assert!(
        counter
            .edit(actor(0), &Op::Value(Edit::Increment(i64::MAX)), 2)
            .is_ok()
    );
    assert!(
        counter
            .edit(actor(0), &Op::Value(Edit::Increment(i64::MAX)), 3)
            .is_err(),
        "u64 total overflows"
    );
}

#[test]
fn last_writer_wins_by_clock_then_by_key() {
    let lww = Kind::Value(ValueKind::Lww);
    let (mut a, mut b) = (Document::new(lww), Document::new(lww));
    let w = |v: &str| Op::Value(Edit::Write(v.into()));
    let early = a.edit(actor(0), &w("early"), 100).unwrap();
    let late = b.edit(actor(1), &w("late"), 200).unwrap();
    a.apply(&late);
    b.apply(&early);
    assert_eq!(a.view(), View::Lww(Some("late".into())));
    assert_eq!(a.view(), b.view());
    // Same clock reading: the higher key wins, on both sides.
    let (mut c, mut d) = (Document::new(lww), Document::new(lww));
    let low = c.edit(actor(0), &w("low key"), 5).unwrap();
    let high = d.edit(actor(2), &w("high key"), 5).unwrap();
    c.apply(&high);
    d.apply(&low);
    assert_eq!(c.view(), View::Lww(Some("high key".into())));
    assert_eq!(c.view(), d.view());
}
