//! Seal-and-open throughput of session/link frames, full handshakes per second, and the time to
//! stretch a password (Argon2id, once per password at start-up), on one core.
//! Run with `cargo bench --bench crypto`; it prints figures rather than asserting them.

use std::hint::black_box;
use std::time::Instant as WallClock;

use meshrouter::core::identity::NodeKey;
use meshrouter::core::link::cipher::Cipher;
use meshrouter::core::link::handshake::{
    DirectionalKeys, Ephemeral, LINK, Psk, check_init_mac, check_init_signature, check_response,
    derive_keys, make_init, make_response,
};
use meshrouter::core::link::keys::KeySet;
use meshrouter::core::time::Instant;
use meshrouter::core::wire::datagram::Datagram;
use zeroize::Zeroizing;

fn pair(cipher: Cipher) -> (KeySet, KeySet) {
    let (k1, k2) = (Zeroizing::new([1u8; 32]), Zeroizing::new([2u8; 32]));
    let a = DirectionalKeys {
        send: k1.clone(),
        recv: k2.clone(),
    };
    let b = DirectionalKeys { send: k2, recv: k1 };
    (
        KeySet::new(&a, cipher, 1, 2, Instant::ZERO, Instant::ZERO, true),
        KeySet::new(&b, cipher, 2, 1, Instant::ZERO, Instant::ZERO, false),
    )
}

fn seal_open(cipher: Cipher, size: usize) {
    let (mut a, mut b) = pair(cipher);
    let payload = vec![0x5au8; size];
    let iterations = (200_000_000 / (size + 100)).clamp(2_000, 500_000);
    let start = WallClock::now();
    for _ in 0..iterations {
        let datagram = a.seal(&payload).unwrap_or_default();
        if let Ok(Datagram::Data {
            counter,
            header,
            sealed,
            ..
        }) = Datagram::parse(&datagram)
        {
            black_box(b.open(counter, header, sealed));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let pps = iterations as f64 / secs;
    println!(
        "{:<17} seal+open {size:>5} B: {:>10.0} packets/s  {:>6.2} Gb/s of payload",
        cipher.name(),
        pps,
        pps * size as f64 * 8.0 / 1e9
    );
}

fn handshakes() {
    let (a, b) = (NodeKey::from_seed(&[1; 32]), NodeKey::from_seed(&[2; 32]));
    let psk = Psk::for_domain(LINK, None);
    let iterations = 2_000;
    let start = WallClock::now();
    for i in 0..iterations {
        let (ea, eb) = (
            Ephemeral::from_random([i as u8 | 1; 32]),
            Ephemeral::from_random([7; 32]),
        );
        let init = make_init(&a, &ea, 1, i, Cipher::offer(false), &psk);
        let ok = check_init_mac(&init, &psk).and_then(|()| check_init_signature(&init, &psk));
        let response = make_response(&b, &eb, 2, &init, Cipher::ChaCha20Poly1305, &psk);
        let checked = check_response(&response, &init, &psk);
        let keys = (
            derive_keys(&ea, &init, &response, &psk, true),
            derive_keys(&eb, &init, &response, &psk, false),
        );
        assert!(ok.is_ok() && checked.is_ok() && keys.0.is_ok() && keys.1.is_ok());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "handshakes: {:.0} per second (both sides: 2 signatures, 2 verifications, 2 X25519, on one core)",
        iterations as f64 / secs
    );
}

fn main() {
    // Sessions always use ChaCha20-Poly1305; links use AES-256-GCM between CPUs with AES instructions.
    for cipher in [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm] {
        for size in [64, 1280, 9000, 65_000] {
            seal_open(cipher, size);
        }
    }
    handshakes();
    password_stretching();
}

fn password_stretching() {
    use meshrouter::core::password::{MEMORY_KIB, PASSES, PasswordKey};
    let runs = 10;
    let start = WallClock::now();
    for i in 0..runs {
        black_box(PasswordKey::derive(format!("password {i}").as_bytes()));
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / f64::from(runs);
    println!(
        "Argon2id m={} MiB t={PASSES} p=1: {ms:.1} ms per password",
        MEMORY_KIB / 1024
    );
}
