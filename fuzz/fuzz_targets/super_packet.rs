//! A TCP super-packet as it arrives through a session from another node (untrusted, though
//! authenticated): building the TUN write or the fallback segments must never panic, and when both
//! succeed, the write splits into exactly the fallback's segments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::core::offload::{
    segment_super_packet, split_read, super_packet, super_packet_write,
};

fuzz_target!(|data: &[u8]| {
    let Some((head, packet)) = data.split_at_checked(3) else {
        return;
    };
    let (mss, ecn) = (u16::from_be_bytes([head[0], head[1]]), head[2] & 1 != 0);
    let write = super_packet_write(packet, mss, ecn);
    let mut segments = Vec::new();
    let segmented = segment_super_packet(packet, mss, ecn, &mut segments);
    assert_eq!(write.is_ok(), segmented.is_ok());
    if let Ok(write) = write {
        let mut split = Vec::new();
        split_read(&write, &mut split).expect("our own write splits");
        assert_eq!(split, segments);
        // Read back from a TUN device, it is the same super-packet.
        let again = super_packet(&write).expect("a super-packet");
        assert_eq!((again.mss, again.ecn), (mss, ecn));
    }
});
