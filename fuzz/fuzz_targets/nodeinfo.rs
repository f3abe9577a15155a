//! NodeInfo messages from anyone, in any order and at any time: the service never panics, never
//! holds more requests than its bound, and takes an answer only if it verifies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::core::identity::NodeKey;
use meshrouter::core::time::Instant;
use meshrouter::services::nodeinfo::{NodeInfo, NodeInfoService};

fuzz_target!(|data: &[u8]| {
    let key = NodeKey::from_seed(&[1; 32]);
    let other = NodeKey::from_seed(&[2; 32]).public_key();
    let published = NodeInfo::sign(&key, 1, "{\"name\":\"x\"}".into()).expect("small");
    let mut now = Instant::from_micros(1_000_000);
    let mut service = NodeInfoService::new(key, published, [7; 32], now);
    // Chunks: a length byte, then a message; a zero length asks the other node and steps time.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (message, tail) = tail.split_at(len);
        rest = tail;
        if message.is_empty() {
            service.request(now, other);
            now = now + std::time::Duration::from_millis(700);
            service.handle_timeout(now);
            continue;
        }
        service.handle_message(now, other, message);
        while service.poll_transmit().is_some() {}
        while let Some(outcome) = service.poll_outcome() {
            if let Some(Ok(info)) = outcome.result {
                assert!(info.verify().is_ok());
            }
        }
    }
});
