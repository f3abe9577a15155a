//! Bytes a TCP or TLS peer sends on a link connection, through the daemon's real stream reader in
//! pieces of any size: it must never panic, hand on only frames of 1 to MAX_FRAME bytes exactly as
//! they were framed, and close the connection at the first bad length.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::driver::transport::stream::{MAX_FRAME, read_all};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let (frames, closed) = read_all(bytes, usize::from(chunk) * 97 + 1);
    // What the frames should be: walk the same bytes by hand.
    let mut expected = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 4) {
        let len = u32::from_be_bytes(header.try_into().unwrap()) as usize;
        if len == 0 || len > MAX_FRAME {
            break;
        }
        let Some(frame) = bytes.get(at + 4..at + 4 + len) else {
            break;
        };
        expected.push(frame.to_vec());
        at += 4 + len;
    }
    assert_eq!(frames, expected);
    assert!(!closed.is_empty(), "the reader always says why it stopped");
});
