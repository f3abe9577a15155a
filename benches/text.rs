//! Collaborative text: the `automerge-paper` editing trace (259 778 keystrokes, the B4 case of the
//! CRDT benchmarks) replayed through a text document, and what signing each keystroke as a change
//! costs. Run with `cargo bench --bench text`; it prints figures rather than asserting them.

#[path = "../tests/trace/mod.rs"]
mod trace;

use std::time::Instant;

use meshrouter::core::identity::NodeKey;
use meshrouter::driver::parallel::decode_changes;
use meshrouter::services::crdt::change::Change;
use meshrouter::services::crdt::context::Actor;
use meshrouter::services::crdt::document::{Document, View};
use meshrouter::services::crdt::log::DocumentLog;
use trace::TEXT;

fn rate(ops: usize, seconds: f64) -> String {
    format!("{:>9.0} ops/s ({:.3} s)", ops as f64 / seconds, seconds)
}

fn main() {
    let trace = trace::automerge_paper();
    let ops = trace.patches.len();
    let key = NodeKey::from_seed(&[7; 32]);
    let me = Actor(*key.public_key().as_bytes());
    println!(
        "automerge-paper: {ops} edits, final text {} bytes",
        trace.end.len()
    );

    // 1. The typist's replica: each keystroke as an edit (position → origins, delta, join).
    let start = Instant::now();
    let (typist, deltas) = trace::type_it(&trace, me);
    let local = start.elapsed().as_secs_f64();
    assert!(matches!(typist.view(), View::Text(t) if t == trace.end));
    println!("local edits (type the trace):        {}", rate(ops, local));

    // 2. Another replica joining the typist's deltas one by one (sync, in order).
    let start = Instant::now();
    let mut reader = Document::new(TEXT);
    for d in &deltas {
        reader.apply(d);
    }
    let remote = start.elapsed().as_secs_f64();
    assert!(reader == typist);
    println!("remote deltas (join in order):       {}", rate(ops, remote));

    // 2b. The same deltas in reverse: each waits for what it names.
    let start = Instant::now();
    let mut backwards = Document::new(TEXT);
    for d in deltas.iter().rev() {
        backwards.apply(d);
    }
    let reverse = start.elapsed().as_secs_f64();
    assert!(backwards == typist);
    println!(
        "remote deltas (join in reverse):     {}",
        rate(ops, reverse)
    );

    // 3. Every keystroke as a signed change: sign, encode, then verify and store on a replica.
    let start = Instant::now();
    let encoded: Vec<Vec<u8>> = deltas
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Change::sign(&key, "notes", "paper", TEXT, i as u64 + 1, 0, d.clone()).encode()
        })
        .collect();
    let sign = start.elapsed().as_secs_f64();
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    let start = Instant::now();
    let mut log = DocumentLog::new("notes", "paper", TEXT);
    for (change, raw) in decode_changes(&encoded).into_iter().zip(&encoded) {
        log.insert(&change.expect("valid"), raw);
    }
    let ingest = start.elapsed().as_secs_f64();
    assert!(*log.document() == typist);
    println!("sign + encode each edit:             {}", rate(ops, sign));
    println!("verify + store + join each change:   {}", rate(ops, ingest));
    println!(
        "signed change per edit: {:.1} bytes on the wire ({} bytes in all; 64 of each are the signature)",
        bytes as f64 / deltas.len() as f64,
        bytes
    );
}
