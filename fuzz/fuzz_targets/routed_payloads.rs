//! Payloads of routed control packets (lookup and trace replies), lookups and subtree deltas: parse
//! totally, round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshrouter::core::wire::lookup::{Lookup, LookupReply, SubtreeDelta};
use meshrouter::core::wire::trace::TraceReply;

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = TraceReply::parse(data) {
        let mut out = Vec::new();
        reply.encode(&mut out);
        assert_eq!(TraceReply::parse(&out).ok(), Some(reply));
    }
    if let Ok(reply) = LookupReply::parse(data) {
        let mut out = Vec::new();
        reply.encode(&mut out);
        assert_eq!(LookupReply::parse(&out).ok(), Some(reply));
    }
    if let Ok(delta) = SubtreeDelta::parse(data) {
        let mut out = Vec::new();
        delta.encode(&mut out);
        assert_eq!(out, data, "the encoding is canonical");
        assert_eq!(SubtreeDelta::parse(&out).ok(), Some(delta));
    }
    if let Ok(lookup) = Lookup::parse(data) {
        let mut out = Vec::new();
        lookup.encode(&mut out);
        assert_eq!(Lookup::parse(&out).ok(), Some(lookup));
    }
});
