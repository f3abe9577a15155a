//! TUN reads with a virtio header (the host's packets, or a forwarded host's): splitting must never
//! panic, every segment it makes is a bounded IPv6 packet, and coalescing them back for the host is
//! lossless.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::core::offload::{MIN_GSO_SIZE, coalesce, split_read};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    if split_read(data, &mut out).is_ok() {
        assert!(
            out.len() <= data.len() / MIN_GSO_SIZE + 1,
            "{} segments",
            out.len()
        );
        assert!(out.iter().all(|p| p.len() <= data.len()));
        // What we coalesce for the host splits back into the same packets.
        let mut back = Vec::new();
        for write in coalesce(&out) {
            split_read(&write, &mut back).expect("our own writes split");
        }
        assert_eq!(back, out);
    }
});
