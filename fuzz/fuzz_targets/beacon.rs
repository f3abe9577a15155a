//! Discovery beacons from anyone on the LAN: decoding and checking must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::core::wire::beacon::Beacon;

fuzz_target!(|data: &[u8]| {
    let _ = Beacon::parse_verified(data, None);
    let _ = Beacon::parse_verified(data, Some(b"password"));
});
