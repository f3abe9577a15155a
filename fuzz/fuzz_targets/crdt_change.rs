//! Changes from the network or a sneakernet file: decoding and verifying never panics, whatever
//! verifies joins a document of its kind, deltas re-encode to what they decoded from, and drop files
//! are read or refused.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::services::crdt::change::Change;
use meshrouter::services::crdt::log::DocumentLog;

fuzz_target!(|data: &[u8]| {
    let _ = meshrouter::services::crdt::drop::DropFile::read(data);
    if let Ok(change) = Change::decode_verified(data) {
        let mut log = DocumentLog::new(&change.namespace, &change.document, change.kind);
        log.insert(&change, data);
        let _ = log.document().view();
    }
    // The delta decoder on its own, without a valid signature in the way.
    let mut r = meshrouter::core::wire::Reader::new(data);
    if let Ok(delta) = meshrouter::services::crdt::codec::decode(&mut r) {
        let mut out = Vec::new();
        meshrouter::services::crdt::codec::encode(&delta, &mut out);
        let mut again = meshrouter::core::wire::Reader::new(&out);
        assert_eq!(
            meshrouter::services::crdt::codec::decode(&mut again).as_ref(),
            Ok(&delta)
        );
    }
});
