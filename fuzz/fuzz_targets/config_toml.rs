//! Configuration text: any bytes give a config or a one-line error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use meshrouter::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(error) = Config::from_toml(text, Path::new("fuzz.toml")) {
            assert!(
                !error.to_string().contains('\n'),
                "multi-line error: {error}"
            );
        }
    }
});
