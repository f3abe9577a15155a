//! The `automerge-paper` editing trace (tests/data/automerge-paper.json.gz): every keystroke of
//! writing a LaTeX paper, 182 315 inserts and 77 463 deletes, and the text they leave. Shared by
//! tests/text_trace.rs and benches/text.rs.

use std::io::Read;

use meshrouter::services::crdt::context::Actor;
use meshrouter::services::crdt::document::{Causal, Document, Edit, Op};
use meshrouter::services::crdt::field::{Kind, ValueKind};

/// The document kind the trace is typed into.
pub(crate) const TEXT: Kind = Kind::Value(ValueKind::Text);

/// One edit: at character position `pos`, delete `del` characters, then insert `ins`.
pub(crate) struct Patch {
    pub(crate) pos: usize,
    pub(crate) del: usize,
    pub(crate) ins: String,
}

/// The trace's edits in order and the text they must leave.
pub(crate) struct Trace {
    pub(crate) patches: Vec<Patch>,
    pub(crate) end: String,
}

/// Reads the trace shipped in tests/data.
pub(crate) fn automerge_paper() -> Trace {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/automerge-paper.json.gz"
    );
    let file = std::fs::File::open(path).expect("tests/data/automerge-paper.json.gz");
    let mut json = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut json)
        .expect("gzip");
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    let mut patches = Vec::new();
    for txn in value["txns"].as_array().expect("txns") {
        for p in txn["patches"].as_array().expect("patches") {
            patches.push(Patch {
                pos: p[0].as_u64().expect("pos") as usize,
                del: p[1].as_u64().expect("del") as usize,
                ins: p[2].as_str().expect("ins").to_owned(),
            });
        }
    }
    Trace {
        patches,
        end: value["endContent"].as_str().expect("endContent").to_owned(),
    }
}

/// Types the trace into a new text document as `actor`, one edit per patch part: the document and
/// the delta of every edit, in order.
pub(crate) fn type_it(trace: &Trace, actor: Actor) -> (Document, Vec<Causal>) {
    let mut doc = Document::new(TEXT);
    let mut deltas = Vec::with_capacity(trace.patches.len());
    for p in &trace.patches {
        if p.del > 0 {
            let op = Op::Value(Edit::Delete(p.pos, p.del));
            deltas.push(doc.edit(actor, &op, 0).expect("delete"));
        }
        if !p.ins.is_empty() {
            let op = Op::Value(Edit::Insert(p.pos, p.ins.clone()));
            deltas.push(doc.edit(actor, &op, 0).expect("insert"));
        }
    }
    (doc, deltas)
}
