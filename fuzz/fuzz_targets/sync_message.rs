//! CRDT sync messages from the network: decoding never panics, what decodes re-encodes to a message
//! that decodes the same, and the sync engine takes any message without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::core::identity::NodeKey;
use meshrouter::core::time::Instant;
use meshrouter::services::crdt::replica::Replica;
use meshrouter::services::crdt::sync::message::SyncMessage;
use meshrouter::services::crdt::sync::{SyncConfig, SyncEngine};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SyncMessage::decode(data) {
        let mut out = Vec::new();
        message.encode(&mut out);
        assert_eq!(SyncMessage::decode(&out).as_ref(), Ok(&message));
    }
    let peer = NodeKey::from_seed(&[2; 32]).public_key();
    let mut replica = Replica::new();
    let mut engine = SyncEngine::new(SyncConfig::default(), [1; 32]);
    engine.handle_peer_up(Instant::ZERO, peer, &replica);
    engine.handle_message(Instant::from_micros(1), peer, data, &mut replica);
    engine.handle_timeout(Instant::from_micros(10_000_000), &replica);
    while engine.poll_transmit().is_some() {}
});
