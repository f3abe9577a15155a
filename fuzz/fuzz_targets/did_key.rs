//! did:key strings from users and remote nodes: parse totally, and round-trip what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshrouter::services::identity::did_key::{did_key, parse_did_key};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = parse_did_key(text) {
            assert_eq!(parse_did_key(&did_key(&key)), Ok(key));
        }
    }
});
