//! Tokens and sign-in messages from anywhere: verifying any string as a JWT or as a signed challenge
//! never panics, and never accepts a token that is not signed by the key it is checked against.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::core::identity::NodeKey;
use meshrouter::services::identity::jwt::{Expect, Kind, verify};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    for kind in [Kind::Bearer, Kind::Enrollment, Kind::Revocation, Kind::Ucan] {
        let _ = verify(token, &Expect::kind(kind), 1_790_000_000);
    }
    let _ = verify(
        token,
        &Expect::bearer(None, Some("did:key:z")),
        1_790_000_000,
    );
    let key = NodeKey::from_seed(&[3; 32]).public_key();
    if let Ok(v) = verify(token, &Expect::bearer(Some(&key), None), 1_790_000_000) {
        assert_eq!(v.signer, key);
    }
    let mut challenges = meshrouter::services::identity::challenge::Challenges::new("n", [1; 32]);
    let _ = challenges.verify(1_790_000_000, token, &[0; 64]);
});
