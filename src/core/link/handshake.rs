//! The link handshake: mutual Ed25519 authentication over fresh X25519 ephemerals, one round trip.
//!
//! ```text
//! I -> R  Init     { i_index, t, offer, I, e_I, sig_I("init" | I | e_I | i_index | t | offer), mac }
//! R -> I  Response { r_index, i_index, pick, R, e_R,
//!                    sig_R("response" | R | e_R | r_index | pick | I | e_I | i_index | offer), mac }
//! keys    HKDF-SHA256(salt = psk, ikm = X25519(e_I, e_R), info = SHA-256(init | response)) -> k_I->R | k_R->I
//! ```
//! - Forward secrecy: only the ephemerals enter the key exchange, and they are dropped after use.
//! - Authentication: each side signs its ephemeral; the responder also signs the initiator's, so a response
//!   cannot be replayed to another initiation. The responder learns that the initiator holds `e_I` when the
//!   first frame under the new keys arrives (key confirmation), so a replayed Init costs it work but gives an
//!   attacker nothing and disturbs no established keys.
//! - Replay: `t` grows with every initiation (the initiator's wall clock); a responder answers only an
//!   initiation newer than the last one it accepted from that peer, so a replayed one gets silence.
//! - Password: `psk = SHA-256("meshrouter link psk v1" | K)`, where `K` is the password stretched once with
//!   Argon2id (`core::password`; 32 zero bytes without a password). It keys the MAC that is checked before
//!   any signature, so a sender without the password gets silence for the price of one HMAC, and it salts
//!   the key derivation.
//! - Cipher: the initiator offers data-frame ciphers, the responder picks one it also offers
//!   (`link::cipher`); both are signed and in the transcript, so they cannot be downgraded in transit.
//! - Non-contributory (low-order) ephemerals are refused.

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey as XPublic, StaticSecret};
use zeroize::Zeroizing;

use super::cipher::Cipher;
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::password::{self, PasswordKey};
use crate::core::wire::datagram::{HandshakeInit, HandshakeResponse, INIT_LEN, MAC_LEN};

/// Domain-separation strings of one use of the handshake, so that a link handshake can never be taken
/// for a session handshake or the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain {
    init: &'static [u8],
    response: &'static [u8],
    psk: &'static [u8],
    keys: &'static [u8],
}

/// Handshakes between neighbours (link layer).
pub const LINK: Domain = Domain {
    init: b"meshrouter link init v1\0",
    response: b"meshrouter link response v1\0",
    psk: b"meshrouter link psk v1\0",
    keys: b"meshrouter link keys v1\0",
};

/// End-to-end handshakes between any two nodes (sessions).
pub const SESSION: Domain = Domain {
    init: b"meshrouter session init v1\0",
    response: b"meshrouter session response v1\0",
    psk: b"meshrouter session psk v1\0",
    keys: b"meshrouter session keys v1\0",
};

/// Why a handshake message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The MAC did not verify: wrong password, or not a handshake for us.
    #[error("bad handshake MAC (wrong password?)")]
    BadMac,
    /// The Ed25519 signature did not verify.
    #[error("bad handshake signature")]
    BadSignature,
    /// The two sides have no data-frame cipher in common, or a response picked one not offered.
    #[error("no common cipher")]
    NoCommonCipher,
    /// The Diffie-Hellman result was all zeros (a low-order ephemeral).
    #[error("non-contributory ephemeral key")]
    WeakEphemeral,
}

/// A pre-shared key derived from a stretched password (or from none), with the domain it serves.
#[derive(Clone)]
pub struct Psk {
    key: Zeroizing<[u8; 32]>,
    domain: Domain,
}

impl Psk {
    /// Derives a link key from a stretched password; `None` gives the public key of no password.
    pub fn from_password(password: Option<&PasswordKey>) -> Self {
        Self::for_domain(LINK, password)
    }

    /// Derives the key of `domain` from a stretched password: one SHA-256, never the password
    /// stretching itself.
    pub fn for_domain(domain: Domain, password: Option<&PasswordKey>) -> Self {
        Self {
            key: password::subkey(password, domain.psk),
            domain,
        }
    }

    fn mac(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        mac16(&self.key[..], bytes)
    }

    /// Checks `mac` over `covered`.
    fn mac_ok(&self, covered: &[u8], mac: &[u8; MAC_LEN]) -> bool {
        equal(&self.mac(covered), mac)
    }
}

/// HMAC-SHA256 truncated to 16 bytes.
pub fn mac16(key: &[u8], bytes: &[u8]) -> [u8; MAC_LEN] {
    let mut mac =
        <Hmac<Sha256>>::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(bytes);
    let full: [u8; 32] = mac.finalize().into_bytes().into();
    full[..MAC_LEN].try_into().unwrap_or_default()
}

/// Constant-time comparison, so a MAC cannot be found byte by byte.
fn equal(a: &[u8; MAC_LEN], b: &[u8; MAC_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bytes an initiation's `mac` covers: everything before it.
fn init_mac_covered(encoded: &[u8]) -> &[u8] {
    &encoded[..encoded.len().saturating_sub(2 * MAC_LEN)]
}

/// The bytes an initiation's `mac2` covers: everything before it.
fn init_mac2_covered(encoded: &[u8]) -> &[u8] {
    &encoded[..encoded.len().saturating_sub(MAC_LEN)]
}

/// Keys `mac2` of `init` with a cookie the responder sent.
pub fn set_mac2(init: &mut HandshakeInit, cookie: &[u8; MAC_LEN]) {
    init.mac2 = mac16(cookie, init_mac2_covered(&init.encode()));
}

/// Returns true if `init`'s `mac2` is keyed with `cookie`.
pub fn check_mac2(init: &HandshakeInit, cookie: &[u8; MAC_LEN]) -> bool {
    equal(
        &mac16(cookie, init_mac2_covered(&init.encode())),
        &init.mac2,
    )
}

/// An X25519 ephemeral key pair, wiped on drop.
pub struct Ephemeral {
    secret: StaticSecret,
    /// The public half, sent in the handshake.
    pub public: [u8; 32],
}

impl Ephemeral {
    /// Builds the pair from 32 random bytes.
    pub fn from_random(bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = if crate::core::crypto_stand_in::enabled() {
            crate::core::crypto_stand_in::ephemeral_public(&bytes)
        } else {
            XPublic::from(&secret).to_bytes()
        };
        Self { secret, public }
    }
}

fn init_signed_bytes(
    domain: &Domain,
    key: &PublicKey,
    ephemeral: &[u8; 32],
    index: u32,
    timestamp: u64,
    ciphers: u8,
) -> Vec<u8> {
    [
        domain.init,
        key.as_bytes(),
        ephemeral,
        &index.to_be_bytes(),
        &timestamp.to_be_bytes(),
        &[ciphers],
    ]
    .concat()
}

fn response_signed_bytes(domain: &Domain, r: &HandshakeResponse, init: &HandshakeInit) -> Vec<u8> {
    [
        domain.response,
        r.static_key.as_bytes(),
        &r.ephemeral,
        &r.sender_index.to_be_bytes(),
        &[r.cipher],
        init.static_key.as_bytes(),
        &init.ephemeral,
        &init.sender_index.to_be_bytes(),
        &[init.ciphers],
    ]
    .concat()
}

/// Builds a signed, MACed initiation offering `ciphers` (`Cipher::offer`).
pub fn make_init(
    node: &NodeKey,
    ephemeral: &Ephemeral,
    index: u32,
    timestamp: u64,
    ciphers: u8,
    psk: &Psk,
) -> HandshakeInit {
    let static_key = node.public_key();
    let mut init = HandshakeInit {
        sender_index: index,
        timestamp,
        ciphers,
        static_key,
        ephemeral: ephemeral.public,
        signature: node.sign(&init_signed_bytes(
            &psk.domain,
            &static_key,
            &ephemeral.public,
            index,
            timestamp,
            ciphers,
        )),
        mac: [0; MAC_LEN],
        mac2: [0; MAC_LEN],
    };
    set_mac(&mut init, psk);
    init
}

/// Sets an initiation's `mac` under `psk` (after any change to the fields it covers).
pub fn set_mac(init: &mut HandshakeInit, psk: &Psk) {
    init.mac = psk.mac(init_mac_covered(&init.encode()));
}

/// Checks an initiation's MAC only: cheap, done before anything else.
pub fn check_init_mac(init: &HandshakeInit, psk: &Psk) -> Result<(), HandshakeError> {
    if psk.mac_ok(init_mac_covered(&init.encode()), &init.mac) {
        Ok(())
    } else {
        Err(HandshakeError::BadMac)
    }
}

/// [`check_init_mac`] on an initiation's bytes as they arrived (`INIT_LEN` of them): no parsing, no
/// allocation, so it can run for every datagram of a flood.
pub fn check_init_mac_bytes(bytes: &[u8], psk: &Psk) -> bool {
    bytes.len() == INIT_LEN
        && bytes[INIT_LEN - 2 * MAC_LEN..INIT_LEN - MAC_LEN]
            .try_into()
            .is_ok_and(|mac: &[u8; MAC_LEN]| psk.mac_ok(init_mac_covered(bytes), mac))
}

/// Returns true if the initiation `bytes` (as they arrived) carries in `mac2` the MAC keyed by
/// `cookie`.
pub fn check_mac2_bytes(bytes: &[u8], cookie: &[u8; MAC_LEN]) -> bool {
    bytes.len() == INIT_LEN
        && bytes[INIT_LEN - MAC_LEN..]
            .try_into()
            .is_ok_and(|mac2: &[u8; MAC_LEN]| equal(&mac16(cookie, init_mac2_covered(bytes)), mac2))
}

/// Checks an initiation's signature (after its MAC).
pub fn check_init_signature(init: &HandshakeInit, psk: &Psk) -> Result<(), HandshakeError> {
    let signed = init_signed_bytes(
        &psk.domain,
        &init.static_key,
        &init.ephemeral,
        init.sender_index,
        init.timestamp,
        init.ciphers,
    );
    if init.static_key.verify(&signed, &init.signature) {
        Ok(())
    } else {
        Err(HandshakeError::BadSignature)
    }
}

/// Builds the signed, MACed response to `init`, with the cipher we picked.
pub fn make_response(
    node: &NodeKey,
    ephemeral: &Ephemeral,
    index: u32,
    init: &HandshakeInit,
    cipher: Cipher,
    psk: &Psk,
) -> HandshakeResponse {
    let mut response = HandshakeResponse {
        sender_index: index,
        receiver_index: init.sender_index,
        cipher: cipher.wire(),
        static_key: node.public_key(),
        ephemeral: ephemeral.public,
        signature: [0; 64],
        mac: [0; MAC_LEN],
    };
    response.signature = node.sign(&response_signed_bytes(&psk.domain, &response, init));
    let encoded = response.encode();
    response.mac = psk.mac(&encoded[..encoded.len() - MAC_LEN]);
    response
}

/// Checks a response to our `init`: MAC, then signature, then that it picked a cipher we offered,
/// which it returns.
pub fn check_response(
    response: &HandshakeResponse,
    init: &HandshakeInit,
    psk: &Psk,
) -> Result<Cipher, HandshakeError> {
    let encoded = response.encode();
    if !psk.mac_ok(&encoded[..encoded.len() - MAC_LEN], &response.mac) {
        return Err(HandshakeError::BadMac);
    }
    let signed = response_signed_bytes(&psk.domain, response, init);
    if !response.static_key.verify(&signed, &response.signature) {
        return Err(HandshakeError::BadSignature);
    }
    Cipher::from_wire(response.cipher)
        .filter(|c| init.ciphers & c.wire() != 0)
        .ok_or(HandshakeError::NoCommonCipher)
}

/// The two directional keys of a link, wiped on drop.
pub struct DirectionalKeys {
    /// Key for frames we send.
    pub send: Zeroizing<[u8; 32]>,
    /// Key for frames we receive.
    pub recv: Zeroizing<[u8; 32]>,
}

/// Derives the link keys. `we_initiated` picks which half is ours to send with.
pub fn derive_keys(
    ephemeral: &Ephemeral,
    init: &HandshakeInit,
    response: &HandshakeResponse,
    psk: &Psk,
    we_initiated: bool,
) -> Result<DirectionalKeys, HandshakeError> {
    let remote = if we_initiated {
        response.ephemeral
    } else {
        init.ephemeral
    };
    let stand_in;
    let real;
    let shared: &[u8; 32] = if crate::core::crypto_stand_in::enabled() {
        stand_in = Zeroizing::new(crate::core::crypto_stand_in::shared_secret(
            &ephemeral.public,
            &remote,
        ));
        &stand_in
    } else {
        real = ephemeral.secret.diffie_hellman(&XPublic::from(remote));
        if !real.was_contributory() {
            return Err(HandshakeError::WeakEphemeral);
        }
        real.as_bytes()
    };
    let transcript: [u8; 32] = Sha256::new()
        .chain_update(psk.domain.keys)
        .chain_update(init.encode())
        .chain_update(response.encode())
        .finalize()
        .into();
    let hkdf = hkdf::Hkdf::<Sha256>::new(Some(&psk.key[..]), shared);
    let mut okm = Zeroizing::new([0u8; 64]);
    hkdf.expand(&transcript, &mut okm[..])
        .map_err(|_| HandshakeError::WeakEphemeral)?;
    let (i_to_r, r_to_i) = okm.split_at(32);
    let (send, recv) = if we_initiated {
        (i_to_r, r_to_i)
    } else {
        (r_to_i, i_to_r)
    };
    // Copied straight into their wiped buffers: no key passes through a temporary array.
    let mut keys = DirectionalKeys {
        send: Zeroizing::new([0; 32]),
        recv: Zeroizing::new([0; 32]),
    };
    keys.send.copy_from_slice(send);
    keys.recv.copy_from_slice(recv);
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state that holds key material on its way to `DirectionalKeys` wipes itself when dropped:
    /// the SHA-256 states inside HKDF's and the MACs' HMAC (`Hmac<Sha256>` is two SHA-256 cores and a
    /// block buffer, wiped by the `zeroize` features of `sha2` and `hmac`), the X25519 secrets, and the
    /// keys' own buffers. Fails to compile otherwise.
    #[test]
    fn key_material_is_wiped_on_drop() {
        use sha2::digest::block_api::{Buffer, CoreProxy};
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wiped_on_drop::<<Sha256 as CoreProxy>::Core>();
        wiped_on_drop::<Buffer<<Sha256 as CoreProxy>::Core>>();
        wiped_on_drop::<Sha256>();
        wiped_on_drop::<StaticSecret>();
        wiped_on_drop::<x25519_dalek::SharedSecret>();
        wiped_on_drop::<Zeroizing<[u8; 32]>>();
    }

    #[test]
    fn both_sides_derive_mirrored_keys_and_bad_inputs_fail() {
        let (a, b) = (NodeKey::from_seed(&[1; 32]), NodeKey::from_seed(&[2; 32]));
        let secret = PasswordKey::derive(b"secret");
        let psk = Psk::from_password(Some(&secret));
        let (ea, eb) = (
            Ephemeral::from_random([3; 32]),
            Ephemeral::from_random([4; 32]),
        );
        let init = make_init(&a, &ea, 11, 1000, Cipher::offer(true), &psk);
        check_init_mac(&init, &psk).unwrap();
        check_init_signature(&init, &psk).unwrap();
        assert_eq!(
            check_init_mac(&init, &Psk::from_password(None)),
            Err(HandshakeError::BadMac)
        );
        let response = make_response(&b, &eb, 22, &init, Cipher::Aes256Gcm, &psk);
        assert_eq!(
            check_response(&response, &init, &psk),
            Ok(Cipher::Aes256Gcm)
        );
        let ka = derive_keys(&ea, &init, &response, &psk, true).unwrap();
        let kb = derive_keys(&eb, &init, &response, &psk, false).unwrap();
        assert_eq!(*ka.send, *kb.recv);
        assert_eq!(*ka.recv, *kb.send);
        assert_ne!(*ka.send, *ka.recv);
        // The same messages mean nothing in the session domain.
        let session = Psk::for_domain(SESSION, Some(&secret));
        assert_eq!(
            check_init_signature(&init, &session),
            Err(HandshakeError::BadSignature)
        );

        // A response to a different initiation does not verify.
        let other_init = make_init(
            &a,
            &Ephemeral::from_random([5; 32]),
            11,
            1000,
            Cipher::offer(true),
            &psk,
        );
        assert_eq!(
            check_response(&response, &other_init, &psk),
            Err(HandshakeError::BadSignature)
        );
        // A tampered signature fails after a correct MAC is recomputed by an attacker who knows the psk.
        let mut forged = init.clone();
        forged.signature[0] ^= 1;
        let enc = forged.encode();
        forged.mac = psk.mac(init_mac_covered(&enc));
        assert_eq!(
            check_init_signature(&forged, &psk),
            Err(HandshakeError::BadSignature)
        );
        // A cipher the initiator did not offer is refused, even correctly signed and MACed.
        let chacha_only = make_init(&a, &ea, 11, 1000, Cipher::offer(false), &psk);
        let pushy = make_response(&b, &eb, 22, &chacha_only, Cipher::Aes256Gcm, &psk);
        assert_eq!(
            check_response(&pushy, &chacha_only, &psk),
            Err(HandshakeError::NoCommonCipher)
        );
        // The offer is signed: stripping AES from it in transit breaks the initiator's signature.
        let mut downgraded = init.clone();
        downgraded.ciphers = Cipher::offer(false);
        assert_eq!(
            check_init_signature(&downgraded, &psk),
            Err(HandshakeError::BadSignature)
        );
        // A low-order ephemeral (zero point) is refused.
        let mut weak = response.clone();
        weak.ephemeral = [0; 32];
        assert_eq!(
            derive_keys(&ea, &init, &weak, &psk, true).err(),
            Some(HandshakeError::WeakEphemeral)
        );
    }
}
