//! Payloads of routed control packets (lookup and trace replies) and bloom filters: parse totally,
//! round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshrouter::core::wire::lookup::{Bloom, Lookup, LookupReply};
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
    if let Ok(bloom) = Bloom::parse(data) {
        let mut out = Vec::new();
        bloom.encode(&mut out);
        assert_eq!(Bloom::parse(&out).ok(), Some(bloom));
    }
    if let Ok(lookup) = Lookup::parse(data) {
        let mut out = Vec::new();
        lookup.encode(&mut out);
        assert_eq!(Lookup::parse(&out).ok(), Some(lookup));
    }
});
