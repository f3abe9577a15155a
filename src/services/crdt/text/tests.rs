use proptest::prelude::*;

use crate::services::crdt::context::{Actor, Dot};
use crate::services::crdt::document::{Causal, Document, Edit, EditError, Op, View};
use crate::services::crdt::field::{Field, Kind, ValueKind};
use crate::services::crdt::store::DotStore;

const TEXT: Kind = Kind::Value(ValueKind::Text);

fn actor(n: u8) -> Actor {
    Actor([n; 32])
}

fn text(doc: &Document) -> String {
    match doc.view() {
        View::Text(t) => t,
        other => panic!("not a text: {other:?}"),
    }
}

fn insert(doc: &mut Document, who: u8, pos: usize, s: &str) -> Causal {
    doc.edit(actor(who), &Op::Value(Edit::Insert(pos, s.into())), 1)
        .unwrap()
}

fn delete(doc: &mut Document, who: u8, pos: usize, len: usize) -> Causal {
    doc.edit(actor(who), &Op::Value(Edit::Delete(pos, len)), 1)
        .unwrap()
}

#[test]
fn inserts_and_deletes_at_positions_counted_in_characters() {
    let mut doc = Document::new(TEXT);
    assert_eq!(text(&doc), "");
    insert(&mut doc, 1, 0, "héllo");
    insert(&mut doc, 1, 5, " wörld");
    insert(&mut doc, 1, 0, ">");
    delete(&mut doc, 1, 1, 1);
    assert_eq!(text(&doc), ">éllo wörld");
    delete(&mut doc, 1, 5, 6);
    assert_eq!(text(&doc), ">éllo");
    insert(&mut doc, 1, 5, "!");
    assert_eq!(text(&doc), ">éllo!");
    let past = doc.edit(actor(1), &Op::Value(Edit::Insert(7, "x".into())), 1);
    assert_eq!(past, Err(EditError::Position(7, 6)));
    let past = doc.edit(actor(1), &Op::Value(Edit::Delete(4, 3)), 1);
    assert_eq!(past, Err(EditError::Position(7, 6)));
    for empty in [Edit::Insert(0, String::new()), Edit::Delete(0, 0)] {
        assert_eq!(
            doc.edit(actor(1), &Op::Value(empty), 1),
            Err(EditError::Size)
        );
    }
    let other = doc.edit(actor(1), &Op::Value(Edit::Add("x".into())), 1);
    assert!(matches!(other, Err(EditError::WrongKind(..))));
}

#[test]
fn a_typed_word_is_one_run_and_a_change_carries_only_its_own_dots() {
    let mut doc = Document::new(TEXT);
    let delta = insert(&mut doc, 1, 0, "word");
    let Field::Text(t) = &delta.field else {
        panic!()
    };
    let (runs, deletes) = t.parts();
    assert_eq!(runs.len(), 1);
    assert!(deletes.is_empty());
    let mut dots = Vec::new();
    delta.field.dots(&mut dots);
    assert_eq!(dots.len(), 4);
    assert!(dots.iter().all(|d| delta.ctx.contains(d)));
}

#[test]
fn changes_arriving_before_what_they_name_wait_and_then_apply() {
    let mut a = Document::new(TEXT);
    let d1 = insert(&mut a, 1, 0, "abc");
    let d2 = insert(&mut a, 1, 1, "XY");
    let d3 = delete(&mut a, 1, 0, 2);
    assert_eq!(text(&a), "Ybc");
    let mut b = Document::new(TEXT);
    for d in [&d3, &d2] {
        assert!(b.apply(d));
        assert_eq!(text(&b), "", "nothing can be placed yet");
    }
    b.apply(&d1);
    assert_eq!(text(&b), "Ybc");
    assert_eq!(a, b);
    // Joining again changes nothing.
    for d in [&d1, &d2, &d3] {
        b.apply(d);
    }
    assert_eq!(a, b);
}

/// One replica's step: type, delete, or take in what another replica made.
#[derive(Debug, Clone)]
enum Step {
    Insert { who: usize, at: u16, s: String },
    Delete { who: usize, at: u16, len: u8 },
    Deliver { to: usize, pick: u16 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize, any::<u16>(), "[a-zé]{1,4}").prop_map(|(who, at, s)| Step::Insert { who, at, s }),
        2 => (0..3usize, any::<u16>(), 1..4u8).prop_map(|(who, at, len)| Step::Delete { who, at, len }),
        3 => (0..3usize, any::<u16>()).prop_map(|(to, pick)| Step::Deliver { to, pick }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Three replicas edit concurrently and take in each other's changes in any order (before what
    /// the changes name, twice, ...); once all have all changes they hold the same text.
    #[test]
    fn any_interleaving_of_concurrent_edits_converges(
        steps in prop::collection::vec(step(), 1..60),
        orders in prop::collection::vec(any::<u64>(), 3),
    ) {
        let mut docs = [Document::new(TEXT), Document::new(TEXT), Document::new(TEXT)];
        let mut made: Vec<Causal> = Vec::new();
        for s in &steps {
            match s {
                Step::Insert { who, at, s } => {
                    let len = text(&docs[*who]).chars().count();
                    let pos = usize::from(*at) % (len + 1);
                    made.push(insert(&mut docs[*who], *who as u8 + 1, pos, s));
                }
                Step::Delete { who, at, len } => {
                    let have = text(&docs[*who]).chars().count();
                    if have == 0 {
                        continue;
                    }
                    let pos = usize::from(*at) % have;
                    let n = usize::from(*len).min(have - pos);
                    made.push(delete(&mut docs[*who], *who as u8 + 1, pos, n));
                }
                Step::Deliver { to, pick } => {
                    if !made.is_empty() {
                        let d = made[usize::from(*pick) % made.len()].clone();
                        prop_assert!(docs[*to].apply(&d));
                    }
                }
            }
        }
        // Everyone takes in everything, each in its own shuffled order.
        for (doc, seed) in docs.iter_mut().zip(&orders) {
            let mut order: Vec<usize> = (0..made.len()).collect();
            let mut x = *seed | 1;
            for i in (1..order.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            for i in order {
                doc.apply(&made[i]);
            }
        }
        prop_assert_eq!(text(&docs[0]), text(&docs[1]));
        prop_assert_eq!(text(&docs[1]), text(&docs[2]));
        prop_assert!(docs[0] == docs[1] && docs[1] == docs[2]);
    }

    /// Writers type runs concurrently at the same or nearby places, one keystroke per change; after
    /// merging, each run is one unbroken piece of the text.
    #[test]
    fn a_run_typed_by_one_writer_is_never_interleaved_with_another(
        base in "[a-z]{0,6}",
        starts in prop::collection::vec(any::<u8>(), 3),
        lens in prop::collection::vec(1..6usize, 3),
        backward in prop::collection::vec(any::<bool>(), 3),
        seed in any::<u64>(),
    ) {
        let mut origin = Document::new(TEXT);
        let mut made = Vec::new();
        if !base.is_empty() {
            made.push(insert(&mut origin, 9, 0, &base));
        }
        let mut docs = [origin.clone(), origin.clone(), origin];
        let mut runs: Vec<Vec<Dot>> = Vec::new();
        for w in 0..3 {
            let mut pos = usize::from(starts[w]) % (base.chars().count() + 1);
            let mut dots = Vec::new();
            for k in 0..lens[w] {
                let ch = char::from(b'A' + (w as u8) * 8 + k as u8);
                let d = insert(&mut docs[w], w as u8 + 1, pos, &ch.to_string());
                let mut new = Vec::new();
                d.field.dots(&mut new);
                dots.extend(new);
                made.push(d);
                if !backward[w] {
                    pos += 1;
                }
            }
            runs.push(dots);
        }
        let mut merged = Document::new(TEXT);
        let mut order: Vec<usize> = (0..made.len()).collect();
        let mut x = seed | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for i in order {
            merged.apply(&made[i]);
        }
        let Field::Text(t) = &merged.state().field else { panic!() };
        let ids: Vec<Dot> = t.visible_ids(0, t.visible()).unwrap();
        for (w, run) in runs.iter().enumerate() {
            let at: Vec<usize> = run.iter().map(|d| ids.iter().position(|x| x == d).unwrap()).collect();
            let (lo, hi) = (at.iter().min().unwrap(), at.iter().max().unwrap());
            prop_assert_eq!(hi - lo + 1, run.len(), "writer {}'s run is split: {}", w, text(&merged));
        }
    }
}

#[test]
fn concurrent_runs_at_one_place_order_by_writer_key_on_every_replica() {
    let mut base = Document::new(TEXT);
    let common = insert(&mut base, 9, 0, "[]");
    let (mut a, mut b) = (base.clone(), base.clone());
    let da = insert(&mut a, 2, 1, "two");
    let db = insert(&mut b, 1, 1, "one");
    a.apply(&db);
    b.apply(&da);
    assert_eq!(text(&a), "[onetwo]");
    assert_eq!(a, b);
    let mut c = Document::new(TEXT);
    for d in [&da, &db, &common] {
        c.apply(d);
    }
    assert_eq!(a, c);
}

#[test]
fn a_long_text_splits_into_chunks_and_keeps_its_order() {
    let mut doc = Document::new(TEXT);
    let mut expect = String::new();
    let mut deltas = Vec::new();
    for i in 0..3000usize {
        let ch = char::from(b'a' + (i % 26) as u8);
        let pos = (i * 7919) % (expect.chars().count() + 1);
        expect.insert(
            expect
                .char_indices()
                .nth(pos)
                .map_or(expect.len(), |(b, _)| b),
            ch,
        );
        deltas.push(insert(&mut doc, 1, pos, &ch.to_string()));
    }
    for i in 0..500usize {
        let pos = (i * 104_729) % expect.chars().count();
        let b = expect.char_indices().nth(pos).unwrap().0;
        expect.remove(b);
        deltas.push(delete(&mut doc, 1, pos, 1));
    }
    assert_eq!(text(&doc), expect);
    let mut copy = Document::new(TEXT);
    for d in deltas.iter().rev() {
        copy.apply(d);
    }
    assert_eq!(text(&copy), expect);
    assert_eq!(copy, doc);
}
