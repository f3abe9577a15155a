//! Identity service throughput on one core: JWT verifications and sign-in (challenge) verifications
//! per second, plus a bare Ed25519 verification for reference. Run with
//! `cargo bench --bench identity`; it prints figures rather than asserting them.

use std::time::Instant;

use meshrouter::core::identity::NodeKey;
use meshrouter::services::identity::challenge::Challenges;
use meshrouter::services::identity::did_key::did_key;
use meshrouter::services::identity::jwt::{Expect, issue, verify, verify_batch, verify_cached};
use serde_json::json;

const NOW: u64 = 1_790_000_000;
const N: usize = 20_000;

fn rate(what: &str, n: usize, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{what}: {n} in {:.0} ms = {:.0}/s on one core",
        secs * 1e3,
        n as f64 / secs
    );
}

fn main() {
    let user = NodeKey::from_seed(&[7; 32]);
    let public = user.public_key();
    let claims = json!({ "sub": "alice", "iat": NOW, "exp": NOW + 600, "role": "member" });
    let token = issue(&user, claims.as_object().expect("object"));
    println!("JWT of {} bytes", token.len());

    let message = b"meshrouter identity benchmark";
    let signature = user.sign(message);
    let start = Instant::now();
    for _ in 0..N {
        assert!(public.verify(message, &signature));
    }
    rate("bare Ed25519 verify (strict)", N, start);
    let mut cache = meshrouter::core::identity::Verifier::default();
    let start = Instant::now();
    for _ in 0..N {
        assert!(cache.verify(&public, message, &signature));
    }
    rate("Ed25519 verify, key point cached", N, start);

    let start = Instant::now();
    for _ in 0..N {
        verify(&token, &Expect::bearer(None, None), NOW).expect("valid");
    }
    rate("JWT verify (signer from its did:key)", N, start);
    let mut keys = meshrouter::core::identity::Verifier::default();
    let start = Instant::now();
    for _ in 0..N {
        verify_cached(&token, &Expect::bearer(None, None), NOW, &mut keys).expect("valid");
    }
    rate("JWT verify, signer's key point cached", N, start);

    // At most 4 096 nonces are outstanding, so sign-ins are issued and checked in rounds.
    let did = did_key(&public);
    let mut node = Challenges::new("bench.mesh", [1; 32]);
    let mut elapsed = std::time::Duration::ZERO;
    for _round in 0..N / 4000 {
        let signed: Vec<_> = (0..4000)
            .map(|_| {
                let (_, text) = node.issue(NOW, &did, "bench");
                let sig = user.sign(text.as_bytes());
                (text, sig)
            })
            .collect();
        let start = Instant::now();
        for (text, sig) in &signed {
            node.verify(NOW + 1, text, sig).expect("valid");
        }
        elapsed += start.elapsed();
    }
    println!(
        "sign-in challenge verify: {N} in {:.0} ms = {:.0}/s on one core",
        elapsed.as_secs_f64() * 1e3,
        N as f64 / elapsed.as_secs_f64()
    );

    // Batch verification: tokens of 100 different users, checked 64 or 256 at a time.
    let users: Vec<NodeKey> = (0..100u8).map(|n| NodeKey::from_seed(&[n; 32])).collect();
    let tokens: Vec<String> = (0..N)
        .map(|i| issue(&users[i % users.len()], claims.as_object().expect("object")))
        .collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    for batch in [64, 256] {
        let mut keys = meshrouter::core::identity::Verifier::default();
        let start = Instant::now();
        for chunk in refs.chunks(batch) {
            assert!(
                verify_batch(chunk, &Expect::bearer(None, None), NOW, &mut keys)
                    .iter()
                    .all(Result::is_ok)
            );
        }
        rate(
            &format!("JWT verify, batches of {batch} (100 signers)"),
            N,
            start,
        );
    }
    let mut elapsed = std::time::Duration::ZERO;
    for _round in 0..N / 4000 {
        let signed: Vec<(String, [u8; 64])> = (0..4000)
            .map(|i| {
                let user = &users[i % users.len()];
                let (_, text) = node.issue(NOW, &did_key(&user.public_key()), "bench");
                let sig = user.sign(text.as_bytes());
                (text, sig)
            })
            .collect();
        let refs: Vec<(&str, [u8; 64])> = signed.iter().map(|(t, s)| (t.as_str(), *s)).collect();
        let start = Instant::now();
        for chunk in refs.chunks(256) {
            assert!(node.verify_batch(NOW + 1, chunk).iter().all(Result::is_ok));
        }
        elapsed += start.elapsed();
    }
    println!(
        "sign-in challenge verify, batches of 256 (100 users): {N} in {:.0} ms = {:.0}/s on one core",
        elapsed.as_secs_f64() * 1e3,
        N as f64 / elapsed.as_secs_f64()
    );
}
