//! Decrypted frame plaintext: every message type parses totally, and what parses re-encodes to bytes
//! that parse to the same message (whole, or split into its header and bulk as senders seal it);
//! walking the frame by message bounds (as a receiver does, to decrypt in place) finds the same
//! messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshrouter::core::wire::inner::{Message, Messages, next_message};

fuzz_target!(|data: &[u8]| {
    let parsed: Vec<_> = Messages::new(data).collect();
    for message in parsed.iter().flatten() {
        let mut encoded = Vec::new();
        message.encode(&mut encoded);
        let again: Vec<_> = Messages::new(&encoded).collect();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].as_ref().ok(), Some(message));
        let mut split = Vec::new();
        let bulk = message.encode_split(&mut split);
        split.extend_from_slice(bulk);
        assert_eq!(split, encoded);
    }
    // Bounds walk: the same messages, up to the first malformed one.
    let mut walked = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let Ok((kind, body)) = next_message(data, &mut offset) else {
            break;
        };
        match Message::parse(kind, &data[body]) {
            Ok(Some(m)) => walked.push(m),
            Ok(None) => {}
            Err(_) => break,
        }
    }
    let good: Vec<_> = parsed.into_iter().map_while(Result::ok).collect();
    assert_eq!(walked, good);
});
