//! The standard editing trace (automerge-paper, see tests/data/README.md) replayed through a text
//! document, on the replica that types it and on one that only takes in its changes (in order, and
//! all at once in reverse): both must end with the trace's exact text. Speed is measured by
//! `cargo bench --bench text`, not here.

mod trace;

use meshrouter::services::crdt::context::Actor;
use meshrouter::services::crdt::document::{Document, View};
use trace::TEXT;

fn text(doc: &Document) -> String {
    match doc.view() {
        View::Text(t) => t,
        other => panic!("not a text: {other:?}"),
    }
}

#[test]
fn the_automerge_paper_trace_ends_with_its_exact_text_on_every_replica() {
    let trace = trace::automerge_paper();
    assert_eq!(trace.patches.len(), 259_778);
    let (typist, deltas) = trace::type_it(&trace, Actor([7; 32]));
    assert_eq!(text(&typist).as_bytes(), trace.end.as_bytes());

    let mut reader = Document::new(TEXT);
    for d in &deltas {
        assert!(reader.apply(d));
    }
    assert_eq!(text(&reader).as_bytes(), trace.end.as_bytes());
    assert!(reader == typist);

    // Every change before the ones it builds on: all wait, then fall into place.
    let mut backwards = Document::new(TEXT);
    for d in deltas.iter().rev() {
        assert!(backwards.apply(d));
    }
    assert_eq!(text(&backwards).as_bytes(), trace.end.as_bytes());
    assert!(backwards == typist);
}
