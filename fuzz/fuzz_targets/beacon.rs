//! Discovery beacons from anyone on the LAN: decoding and checking must never panic, and a beacon
//! must verify only if it is exactly what its key signed under the checked password.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

use meshrouter::core::identity::NodeKey;
use meshrouter::core::password::PasswordKey;
use meshrouter::core::wire::beacon::Beacon;

/// Stretched once (Argon2id is slow on purpose), as the daemon does.
static PASSWORDS: LazyLock<[PasswordKey; 2]> = LazyLock::new(|| {
    [
        PasswordKey::derive(b"password"),
        PasswordKey::derive(b"island"),
    ]
});

fuzz_target!(|data: &[u8]| {
    let _ = Beacon::parse_verified(data, None);
    let _ = Beacon::parse_verified(data, Some(&PASSWORDS[0]));
    // Structured: a genuine beacon from fuzzed fields, one byte flipped at a fuzzed place.
    if data.len() < 16 {
        return;
    }
    let key = NodeKey::from_seed(&[data[0]; 32]);
    let port = u16::from_be_bytes([data[1], data[2]]);
    let stamp = u64::from_be_bytes(data[3..11].try_into().unwrap_or_default());
    let password = (data[11] & 1 == 1).then(|| &PASSWORDS[usize::from(data[12] & 1)]);
    let mut beacon = Beacon::encode(&key, data[11], port, stamp, password);
    let genuine = Beacon::parse_verified(&beacon, password).expect("a genuine beacon verifies");
    assert_eq!((genuine.port, genuine.stamp), (port, stamp));
    if let Some(&flip) = data.get(16) {
        let at = usize::from(flip) % beacon.len();
        beacon[at] ^= data.get(17).copied().unwrap_or(1).max(1);
        assert!(
            Beacon::parse_verified(&beacon, password).is_err(),
            "tampered beacon verified"
        );
    }
});
