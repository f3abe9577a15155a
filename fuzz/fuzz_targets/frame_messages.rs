//! Decrypted frame plaintext: every message type parses totally, and what parses re-encodes to bytes
//! that parse to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshrouter::core::wire::inner::Messages;

fuzz_target!(|data: &[u8]| {
    for message in Messages::new(data).flatten() {
        let mut encoded = Vec::new();
        message.encode(&mut encoded);
        let again: Vec<_> = Messages::new(&encoded).collect();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].as_ref().ok(), Some(&message));
    }
});
