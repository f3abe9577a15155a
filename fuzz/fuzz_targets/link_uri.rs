//! Link URIs from the config file and the local API: parsing must never panic, and what parses must
//! display without its query (which may hold a password).
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::config::LinkUri;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for candidate in [text.to_owned(), format!("udp://{text}")] {
        if let Ok(uri) = LinkUri::parse(&candidate) {
            assert!(!uri.display().contains('?'));
        }
    }
});
