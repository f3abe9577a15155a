//! TUN reads with a virtio header (the host's packets, or a forwarded host's): splitting must never
//! panic, and every segment it makes is a bounded IPv6 packet.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::core::offload::{MIN_GSO_SIZE, split_read};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    if split_read(data, &mut out).is_ok() {
        assert!(out.len() <= data.len() / MIN_GSO_SIZE + 1, "{} segments", out.len());
        assert!(out.iter().all(|p| p.len() <= data.len()));
    }
});
