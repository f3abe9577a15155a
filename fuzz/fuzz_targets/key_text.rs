//! Key text from a config or key file: any bytes give a key or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshrouter::core::identity::{NodeKey, PublicKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = NodeKey::from_file_contents(text) {
            // A key that parsed must round-trip through its seed form.
            let again = NodeKey::from_hex(&key.seed_hex()).expect("seed_hex parses");
            assert!(again.public_key() == key.public_key());
        }
        if let Ok(public) = PublicKey::from_hex(text) {
            assert_eq!(PublicKey::from_hex(&public.to_hex()), Ok(public));
        }
    }
});
