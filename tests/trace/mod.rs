//! The `automerge-paper` editing trace (tests/data/automerge-paper.json.gz): every keystroke of
//! writing a LaTeX paper, 182 315 inserts and 77 463 deletes, and the text they leave. Shared by
//! tests/text_trace.rs and benches/text.rs.

use std::io::Read;

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
