//! Passwords: stretched once, then used cheaply.
//!
//! A password (a link's, a discovery rule's, or the overlay's group password) never keys anything
//! directly: [`PasswordKey::derive`] stretches it with Argon2id ([`MEMORY_KIB`] KiB, [`PASSES`]
//! passes, [`LANES`] lane, salt [`SALT`]), and the keys that are used — the psk of link and session
//! handshakes (`link::handshake::Psk`) and the MAC key of discovery beacons (`wire::beacon`) — are
//! each one SHA-256 of their own domain label and that stretched key ([`subkey`]). So a captured
//! initiation or beacon lets an attacker test password guesses only at the price of one Argon2id
//! each, while nothing slow runs per datagram or per link: the driver stretches each distinct
//! password once, when it loads the configuration (and once for a new password an `addpeer` brings),
//! and keeps the results.
//!
//! The salt is a fixed, public label: there is no network name to salt with, so a guess costs the
//! same against every meshrouter network (a table of stretched common passwords serves them all).
//! Long random passwords stay the real defence.
//!
//! Without a password the stretched key is 32 zero bytes, which costs nothing and is as public as the
//! keys it gives (a network without a password is open).

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Argon2id memory cost in KiB: 19 MiB, OWASP's recommendation for Argon2id with two passes.
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes over the memory.
pub const PASSES: u32 = 2;
/// Argon2id lanes (one: a Raspberry Pi or a router stretches on one core).
pub const LANES: u32 = 1;
/// The Argon2id salt: fixed and public (see the module documentation).
pub const SALT: &[u8] = b"meshrouter password v2";

/// A stretched password: the secret that every key of a password comes from. Wiped on drop; its
/// `Debug` never shows it.
#[derive(Clone)]
pub struct PasswordKey(Zeroizing<[u8; 32]>);

impl PasswordKey {
    /// The key of no password (and of the empty one): 32 zero bytes, public, computed by nothing.
    pub fn none() -> Self {
        Self(Zeroizing::new([0; 32]))
    }

    /// Stretches `password` with Argon2id. Slow on purpose (tens of milliseconds and 19 MiB on a
    /// desktop, about ten times longer on a Raspberry Pi 3): call it once per distinct password and
    /// keep the result. The empty password gives [`PasswordKey::none`] without any work.
    ///
    /// # Panics
    /// If the 19 MiB of working memory cannot be allocated.
    pub fn derive(password: &[u8]) -> Self {
        if password.is_empty() {
            return Self::none();
        }
        #[cfg(test)]
        DERIVATIONS.with(|d| d.set(d.get() + 1));
        let params = argon2::Params::new(MEMORY_KIB, PASSES, LANES, Some(32))
            .unwrap_or_else(|_| unreachable!("valid constant parameters"));
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0; 32]);
        // The only possible failures are a password of 4 GiB or more and an allocation failure.
        if let Err(e) = argon.hash_password_into(password, SALT, &mut key[..]) {
            panic!("Argon2id: {e}");
        }
        Self(key)
    }

    /// Returns true if this is the key of no password.
    pub fn is_none(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }

    /// The key of one use (`label` names it): SHA-256(`label` | stretched key). Cheap.
    pub fn subkey(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut hash = Sha256::new();
        hash.update(label);
        hash.update(&self.0[..]);
        Zeroizing::new(hash.finalize().into())
    }
}

impl std::fmt::Debug for PasswordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_none() {
            f.write_str("PasswordKey(none)")
        } else {
            f.write_str("PasswordKey(..)")
        }
    }
}

/// The key of one use (`label`) of a password, or of no password (`None`).
pub fn subkey(password: Option<&PasswordKey>, label: &[u8]) -> Zeroizing<[u8; 32]> {
    match password {
        Some(p) => p.subkey(label),
        None => PasswordKey::none().subkey(label),
    }
}

#[cfg(test)]
thread_local! {
    /// Argon2id runs on this thread, for tests that check a path never stretches.
    static DERIVATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many times [`PasswordKey::derive`] ran Argon2id on the calling thread (tests only).
#[cfg(test)]
pub(crate) fn derivations_on_this_thread() -> u64 {
    DERIVATIONS.with(std::cell::Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Argon2id(m = 19 MiB, t = 2, p = 1, salt "meshrouter password v2", 32 bytes) of "island",
    /// computed with the reference C implementation (argon2-cffi's `hash_secret_raw`).
    const ISLAND: &str = "73149535bad019f4fe806d44dbb6fd05b8ca456e7a40f9ef664ebc6a61efb02c";

    #[test]
    fn derive_is_argon2id_with_the_chosen_parameters() {
        assert_eq!(
            (MEMORY_KIB, PASSES, LANES, SALT),
            (19 * 1024, 2, 1, &b"meshrouter password v2"[..])
        );
        let before = derivations_on_this_thread();
        let key = PasswordKey::derive(b"island");
        assert_eq!(hex::encode(&key.0[..]), ISLAND);
        assert_eq!(derivations_on_this_thread(), before + 1);
        // The same with the argon2 crate called directly, and not with a smaller memory cost.
        let with_memory = |kib| {
            let params = argon2::Params::new(kib, PASSES, LANES, Some(32)).unwrap();
            let mut out = [0; 32];
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(b"island", SALT, &mut out)
                .unwrap();
            hex::encode(out)
        };
        assert_eq!(with_memory(MEMORY_KIB), ISLAND);
        assert_ne!(with_memory(MEMORY_KIB / 2), ISLAND);
    }

    #[test]
    fn the_keys_of_a_password_are_not_one_sha256_of_it() {
        let label = b"meshrouter link psk v1\0";
        let key = PasswordKey::derive(b"island");
        // What version 1 used: SHA-256(label | password).
        let old: [u8; 32] = Sha256::new()
            .chain_update(label)
            .chain_update(b"island")
            .finalize()
            .into();
        assert_ne!(*key.subkey(label), old);
        assert_eq!(
            hex::encode(*key.subkey(label)),
            // SHA-256(label | ISLAND), computed with Python's hashlib.
            "a34f9dd8fb47b86be2c0290c54b567db5d8bff8f8411d168e093e4d09521399e"
        );
        assert_ne!(*key.subkey(b"another label"), *key.subkey(label));
        assert_ne!(*key.subkey(label), *subkey(None, label));
    }

    #[test]
    fn no_password_is_free_public_and_the_same_as_the_empty_one() {
        let before = derivations_on_this_thread();
        let empty = PasswordKey::derive(b"");
        assert_eq!(
            derivations_on_this_thread(),
            before,
            "no Argon2id for no password"
        );
        assert!(empty.is_none() && PasswordKey::none().is_none());
        let label = b"meshrouter link psk v1\0";
        assert_eq!(*subkey(None, label), *empty.subkey(label));
        let mut zero_key = Sha256::new();
        zero_key.update(label);
        zero_key.update([0; 32]);
        assert_eq!(*subkey(None, label), <[u8; 32]>::from(zero_key.finalize()));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = PasswordKey::derive(b"island");
        let shown = format!("{key:?} {:?}", PasswordKey::none());
        assert_eq!(shown, "PasswordKey(..) PasswordKey(none)");
        assert!(!shown.contains(&ISLAND[..8]));
    }
}
