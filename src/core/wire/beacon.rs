//! Discovery beacons: "node K takes links on UDP port P here", sent to a link-local multicast group or
//! as an Ethernet broadcast.
//!
//! ```text
//! magic(3) = "MRB"  version(1)  flags(1)  port(2)  key(32)  stamp(8)  mac(16)  signature(64)
//! ```
//! The first byte (`M`) differs from a link datagram's version byte, so beacons and link datagrams can
//! share one raw Ethernet EtherType. `mac` is HMAC-SHA256 (truncated) under a key derived from the
//! interface password, stretched once (`core::password`), or from none, covering everything before
//! it: a node with another password
//! ignores the beacon without spending a signature check. `signature` is the sender's Ed25519 signature
//! over everything before it, so no one can advertise someone else's key. A replayed beacon is harmless:
//! it can only make us try a handshake that pins the beacon's key.

use zeroize::Zeroizing;

use super::{Reader, VERSION, WireError};
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::link::handshake::mac16;
use crate::core::password::{self, PasswordKey};

/// First bytes of a beacon.
pub const MAGIC: &[u8; 3] = b"MRB";
/// Encoded length of a beacon.
pub const BEACON_LEN: usize = 3 + 1 + 1 + 2 + 32 + 8 + 16 + 64;
/// Flag: the sender connects to nodes whose beacons it hears.
pub const FLAG_LISTENS: u8 = 1;
const MAC_KEY_DOMAIN: &[u8] = b"meshrouter beacon mac v1\0";
const SIGNED_DOMAIN: &[u8] = b"meshrouter beacon v1\0";

/// A decoded beacon, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon {
    /// [`FLAG_LISTENS`] and future bits.
    pub flags: u8,
    /// UDP port of the sender's discovery link socket (0 on raw Ethernet).
    pub port: u16,
    /// The sender's key.
    pub key: PublicKey,
    /// The sender's clock in microseconds when it sent the beacon (informational).
    pub stamp: u64,
    mac: [u8; 16],
    signature: [u8; 64],
}

/// Why a beacon was not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    /// Malformed.
    #[error("malformed beacon: {0}")]
    Wire(#[from] WireError),
    /// The MAC did not verify: another password (or none where we have one).
    #[error("beacon for another password")]
    Password,
    /// The signature did not verify.
    #[error("beacon signature does not verify")]
    Signature,
}

/// SHA-256(domain | stretched password): one hash per beacon, never the stretching.
fn mac_key(password: Option<&PasswordKey>) -> Zeroizing<[u8; 32]> {
    password::subkey(password, MAC_KEY_DOMAIN)
}

fn signed_message(covered: &[u8]) -> Vec<u8> {
    [SIGNED_DOMAIN, covered].concat()
}

impl Beacon {
    /// Builds and signs a beacon.
    pub fn encode(
        node: &NodeKey,
        flags: u8,
        port: u16,
        stamp: u64,
        password: Option<&PasswordKey>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(BEACON_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(flags);
        out.extend_from_slice(&port.to_be_bytes());
        out.extend_from_slice(node.public_key().as_bytes());
        out.extend_from_slice(&stamp.to_be_bytes());
        let mac = mac16(&mac_key(password)[..], &out);
        out.extend_from_slice(&mac);
        let signature = node.sign(&signed_message(&out));
        out.extend_from_slice(&signature);
        out
    }

    /// Returns true if `bytes` starts like a beacon (as opposed to a link datagram).
    pub fn looks_like(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC)
    }

    /// Decodes a beacon without checking it.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        if r.array::<3>()? != *MAGIC {
            return Err(WireError::Invalid("beacon magic"));
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        let beacon = Self {
            flags: r.u8()?,
            port: r.u16()?,
            key: PublicKey::from_bytes(r.array()?),
            stamp: r.u64()?,
            mac: r.array()?,
            signature: r.array()?,
        };
        r.finish()?;
        Ok(beacon)
    }

    /// Decodes and checks a beacon: password first (cheap), then signature.
    pub fn parse_verified(
        bytes: &[u8],
        password: Option<&PasswordKey>,
    ) -> Result<Self, BeaconError> {
        let beacon = Self::parse_authenticated(bytes, password)?;
        beacon.verify_signature(bytes)?;
        Ok(beacon)
    }

    /// Decodes a beacon and checks its password MAC only: one HMAC, so it can run for every beacon of
    /// a flood before any budget is spent on it.
    pub fn parse_authenticated(
        bytes: &[u8],
        password: Option<&PasswordKey>,
    ) -> Result<Self, BeaconError> {
        let beacon = Self::parse(bytes)?;
        let covered_by_mac = &bytes[..BEACON_LEN - 64 - 16];
        let expected = mac16(&mac_key(password)[..], covered_by_mac);
        let diff = expected
            .iter()
            .zip(&beacon.mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(BeaconError::Password);
        }
        Ok(beacon)
    }

    /// Checks the signature of a beacon decoded from `bytes` (after its MAC).
    pub fn verify_signature(&self, bytes: &[u8]) -> Result<(), BeaconError> {
        let signed = bytes.get(..BEACON_LEN - 64).ok_or(BeaconError::Signature)?;
        if self.key.verify(&signed_message(signed), &self.signature) {
            Ok(())
        } else {
            Err(BeaconError::Signature)
        }
    }

    /// Returns true if the sender connects to nodes it hears.
    pub fn listens(&self) -> bool {
        self.flags & FLAG_LISTENS != 0
    }

    /// The UDP port to dial for a beacon that came from `source_port`: that port, if it is the one
    /// the beacon names. Beacons leave from the socket that takes links, so a beacon never makes us
    /// dial a port it did not come from (another service of the host it claims to be).
    pub fn dial_port(&self, source_port: u16) -> Option<u16> {
        (self.port != 0 && self.port == source_port).then_some(self.port)
    }
}

/// Decides whether we open the link to a node whose beacon we heard, so that two nodes hearing each
/// other open one link, not two: the smaller key dials, unless the other will not (it does not listen
/// for beacons, or it cannot hear ours because we send none).
pub fn we_dial(me: &PublicKey, beacon: &Beacon, we_listen: bool, we_beacon: bool) -> bool {
    we_listen && beacon.key != *me && (me < &beacon.key || !beacon.listens() || !we_beacon)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> NodeKey {
        NodeKey::from_seed(&[n; 32])
    }

    #[test]
    fn round_trip_and_checks() {
        let k = key(1);
        let pw = PasswordKey::derive(b"pw");
        let bytes = Beacon::encode(&k, FLAG_LISTENS, 9100, 42, Some(&pw));
        assert_eq!(bytes.len(), BEACON_LEN);
        assert!(Beacon::looks_like(&bytes));
        assert_ne!(bytes[0], VERSION, "must not look like a link datagram");
        // Version 2: passwords stretched with Argon2id. A version 1 beacon is not understood.
        assert_eq!(bytes[3], 2);
        let mut old = bytes.clone();
        old[3] = 1;
        assert_eq!(Beacon::parse(&old), Err(WireError::Version(1)));
        let b = Beacon::parse_verified(&bytes, Some(&pw)).unwrap();
        assert_eq!((b.port, b.stamp, b.key), (9100, 42, k.public_key()));
        assert_eq!(b.dial_port(9100), Some(9100));
        assert_eq!(
            b.dial_port(22),
            None,
            "a beacon cannot point us at another port"
        );
        assert!(b.listens());
        assert_eq!(
            Beacon::parse_verified(&bytes, None),
            Err(BeaconError::Password)
        );
        assert_eq!(
            Beacon::parse_verified(&bytes, Some(&PasswordKey::derive(b"other"))),
            Err(BeaconError::Password)
        );
    }

    #[test]
    fn forged_key_or_tampered_field_is_refused() {
        let bytes = Beacon::encode(&key(1), 0, 9100, 42, None);
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x10;
            assert!(Beacon::parse_verified(&t, None).is_err(), "byte {i}");
        }
        // Someone else's key with a valid MAC (the no-password MAC key is public) but our signature.
        let mut forged = bytes.clone();
        forged[7..39].copy_from_slice(key(2).public_key().as_bytes());
        let mac = mac16(&mac_key(None)[..], &forged[..BEACON_LEN - 80]);
        forged[BEACON_LEN - 80..BEACON_LEN - 64].copy_from_slice(&mac);
        assert_eq!(
            Beacon::parse_verified(&forged, None),
            Err(BeaconError::Signature)
        );
    }

    #[test]
    fn one_side_dials() {
        let (a, b) = (key(1).public_key(), key(2).public_key());
        let beacon_from =
            |k: &NodeKey, flags| Beacon::parse(&Beacon::encode(k, flags, 1, 0, None)).unwrap();
        let from_a = beacon_from(&key(1), FLAG_LISTENS);
        let from_b = beacon_from(&key(2), FLAG_LISTENS);
        assert_ne!(
            we_dial(&a, &from_b, true, true),
            we_dial(&b, &from_a, true, true)
        );
        assert!(!we_dial(
            &a,
            &beacon_from(&key(1), FLAG_LISTENS),
            true,
            true
        ));
        let b_deaf = beacon_from(&key(2), 0);
        let a_deaf = beacon_from(&key(1), 0);
        assert!(we_dial(&a, &b_deaf, true, true) && we_dial(&b, &a_deaf, true, true));
        assert!(!we_dial(&a, &from_b, false, true));
        let bigger = if a < b { &b } else { &a };
        let smaller_beacon = if a < b { &from_a } else { &from_b };
        assert!(we_dial(bigger, smaller_beacon, true, false));
    }

    static X: std::sync::LazyLock<PasswordKey> =
        std::sync::LazyLock::new(|| PasswordKey::derive(b"x"));

    proptest::proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = Beacon::parse_verified(&bytes, None);
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&bytes);
            let _ = Beacon::parse_verified(&b, Some(&X));
        }
    }
}
