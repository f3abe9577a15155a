//! Text documents fed anything: deltas decoded from the input (runs naming missing or bogus origins,
//! deletions of unknown characters, repeated dots) joined in the input's order, between local
//! inserts and deletes at positions from the input. Nothing panics, the visible text always has the
//! length the document reports, and a replica that takes in the same deltas twice is unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::core::wire::Reader;
use meshrouter::services::crdt::codec;
use meshrouter::services::crdt::context::Actor;
use meshrouter::services::crdt::document::{Causal, Document, Edit, Op, View};
use meshrouter::services::crdt::field::{Field, Kind, ValueKind};

const TEXT: Kind = Kind::Value(ValueKind::Text);

fn visible(doc: &Document) -> usize {
    match &doc.state().field {
        Field::Text(t) => t.visible(),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut doc = Document::new(TEXT);
    let mut taken: Vec<Causal> = Vec::new();
    // Records: a tag byte, then either a local edit (4 bytes) or a length-prefixed delta.
    let mut rest = data;
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        if tag & 1 == 0 {
            let Some((edit, tail)) = rest.split_first_chunk::<4>() else {
                break;
            };
            rest = tail;
            let len = visible(&doc);
            let pos = usize::from(edit[1]) % (len + 1);
            let op = if tag & 2 == 0 {
                Edit::Insert(pos, char::from(b'a' + edit[2] % 26).to_string().repeat(usize::from(edit[3] % 4) + 1))
            } else {
                Edit::Delete(pos, usize::from(edit[2] % 4) + 1)
            };
            let actor = Actor([edit[0] % 3 + 1; 32]);
            if let Ok(delta) = doc.edit(actor, &Op::Value(op), 0) {
                taken.push(delta);
            }
        } else {
            let n = usize::from(tag >> 1).min(rest.len());
            let (bytes, tail) = rest.split_at(n);
            rest = tail;
            if let Ok(delta) = codec::decode(&mut Reader::new(bytes)) {
                if doc.apply(&delta) {
                    taken.push(delta);
                }
            }
        }
        let View::Text(t) = doc.view() else {
            panic!("a text document that does not read as text");
        };
        assert_eq!(t.chars().count(), visible(&doc));
    }
    let before = doc.clone();
    for d in &taken {
        doc.apply(d);
    }
    assert!(doc == before, "joining what was joined changed the text");
});
