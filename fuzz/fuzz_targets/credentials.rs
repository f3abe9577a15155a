//! Credentials, delegations and proof messages from anywhere: verifying any bytes as a VC, as a
//! delegation chain, as registry entries, or handling them as a proof-of-possession message never
//! panics, and a delegation that verifies always names its own issuer first in its chain.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::core::identity::NodeKey;
use meshrouter::core::time::Instant;
use meshrouter::services::crdt::document::View;
use meshrouter::services::identity::proof::ProofService;
use meshrouter::services::identity::registry::{self, Registry};
use meshrouter::services::identity::{ucan, vc};

const NOW: u64 = 1_790_000_000;

fuzz_target!(|data: &[u8]| {
    let now = Instant::from_micros(1_000_000);
    let mut proofs = ProofService::new(NodeKey::from_seed(&[1; 32]), [2; 32], now);
    let peer = NodeKey::from_seed(&[3; 32]).public_key();
    proofs.request(now, peer);
    proofs.handle_message(now, peer, data);
    while proofs.poll_transmit().is_some() {}
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(value) = serde_json::from_str(text) {
        let _ = vc::verify(&value, NOW);
    }
    let anyone = |_: &str, _: &ucan::Capability| true;
    let never = |_: &str, _: &[String]| false;
    let policy = ucan::Policy {
        is_root: &anyone,
        is_revoked: &never,
    };
    if let Ok(d) = ucan::verify(text, NOW, &policy) {
        assert_eq!(d.issuers.first(), Some(&d.issuer));
    }
    let members = View::Map([(text.to_owned(), View::Lww(Some(text.to_owned())))].into());
    let enrollments = View::Map([(text.to_owned(), View::Set(vec![text.to_owned()]))].into());
    let revocations = View::Set(vec![text.to_owned()]);
    let _ = Registry::load(
        [text.to_owned()],
        Some(&members),
        Some(&enrollments),
        Some(&revocations),
        NOW,
    );
    // What a replica stores: decided for any token, never a panic.
    let admin = |_: &meshrouter::core::identity::PublicKey| true;
    let _ = registry::admit(registry::ENROLLMENTS, &enrollments, &admin);
    let _ = registry::admit(registry::REVOCATIONS, &revocations, &admin);
});
