//! The outer link datagram: what travels in one UDP payload or one raw Ethernet frame.
//!
//! ```text
//! version(1) kind(1) body...
//! kind 1 HandshakeInit      sender_index(4) timestamp(8) ciphers(1) static_key(32) ephemeral(32)
//!                           signature(64) mac(16) mac2(16)
//! kind 2 HandshakeResponse  sender_index(4) receiver_index(4) cipher(1) static_key(32) ephemeral(32)
//!                           signature(64) mac(16)
//! kind 3 Data               receiver_index(4) counter(8) ciphertext(n) tag(16)
//! kind 4 CookieReply        receiver_index(4) cookie(16)
//! ```
//! Integers are big-endian. A handshake's `mac` covers everything before it; an initiation's `mac2`
//! covers everything before it too and is keyed by a cookie the responder sent under load (zeros
//! otherwise), as in WireGuard.

use super::{Reader, VERSION, WireError};
use crate::core::identity::PublicKey;

/// Kind byte of [`HandshakeInit`].
pub const KIND_INIT: u8 = 1;
/// Kind byte of [`HandshakeResponse`].
pub const KIND_RESPONSE: u8 = 2;
/// Kind byte of a data frame.
pub const KIND_DATA: u8 = 3;
/// Kind byte of a cookie reply.
pub const KIND_COOKIE: u8 = 4;
/// Bytes before the ciphertext of a data frame; they are the AEAD's associated data.
pub const DATA_HEADER_LEN: usize = 2 + 4 + 8;
/// AEAD tag length (Poly1305 or GHASH).
pub const TAG_LEN: usize = 16;
/// Handshake MAC length.
pub const MAC_LEN: usize = 16;
/// Encoded length of a [`HandshakeInit`].
pub const INIT_LEN: usize = 2 + 4 + 8 + 1 + 32 + 32 + 64 + MAC_LEN + MAC_LEN;
/// Encoded length of a [`HandshakeResponse`].
pub const RESPONSE_LEN: usize = 2 + 4 + 4 + 1 + 32 + 32 + 64 + MAC_LEN;

/// First handshake message: who I am, my fresh ephemeral key, signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeInit {
    /// The index the initiator wants data frames addressed to.
    pub sender_index: u32,
    /// Grows with every initiation the initiator makes (its wall clock in microseconds), so a responder
    /// can refuse a replayed initiation silently.
    pub timestamp: u64,
    /// The data-frame ciphers the initiator accepts, one bit each (`link::cipher`).
    pub ciphers: u8,
    /// The initiator's Ed25519 identity.
    pub static_key: PublicKey,
    /// The initiator's X25519 ephemeral public key.
    pub ephemeral: [u8; 32],
    /// Ed25519 signature by `static_key` (see `link::handshake` for the signed bytes).
    pub signature: [u8; 64],
    /// Keyed by the link password (or a fixed key without one); covers all bytes before it.
    pub mac: [u8; MAC_LEN],
    /// Keyed by the responder's cookie for this initiator, or zeros when it has none.
    pub mac2: [u8; MAC_LEN],
}

/// Second handshake message: the responder's identity and ephemeral, bound to the initiator's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// The index the responder wants data frames addressed to.
    pub sender_index: u32,
    /// The initiator's index this answers.
    pub receiver_index: u32,
    /// The data-frame cipher the responder picked from the initiator's offer (its offer bit).
    pub cipher: u8,
    /// The responder's Ed25519 identity.
    pub static_key: PublicKey,
    /// The responder's X25519 ephemeral public key.
    pub ephemeral: [u8; 32],
    /// Ed25519 signature by `static_key` over both identities and both ephemerals.
    pub signature: [u8; 64],
    /// As in [`HandshakeInit`].
    pub mac: [u8; MAC_LEN],
}

/// A parsed link datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// A handshake initiation.
    Init(HandshakeInit),
    /// A handshake response.
    Response(HandshakeResponse),
    /// A responder under load asks the initiator to prove it can receive at its address.
    Cookie {
        /// The initiation's `sender_index`.
        receiver_index: u32,
        /// The cookie to key `mac2` with.
        cookie: [u8; MAC_LEN],
    },
    /// An encrypted frame.
    Data {
        /// Index chosen by the receiver of this frame, naming the key set.
        receiver_index: u32,
        /// Nonce counter.
        counter: u64,
        /// The header bytes (AEAD associated data).
        header: &'a [u8],
        /// Ciphertext followed by the tag.
        sealed: &'a [u8],
    },
}

impl<'a> Datagram<'a> {
    /// Parses a datagram. Data frames are not decrypted here.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        match r.u8()? {
            KIND_INIT => {
                let init = HandshakeInit {
                    sender_index: r.u32()?,
                    timestamp: r.u64()?,
                    ciphers: r.u8()?,
                    static_key: r.key()?,
                    ephemeral: r.array()?,
                    signature: r.array()?,
                    mac: r.array()?,
                    mac2: r.array()?,
                };
                r.finish()?;
                Ok(Self::Init(init))
            }
            KIND_RESPONSE => {
                let response = HandshakeResponse {
                    sender_index: r.u32()?,
                    receiver_index: r.u32()?,
                    cipher: r.u8()?,
                    static_key: r.key()?,
                    ephemeral: r.array()?,
                    signature: r.array()?,
                    mac: r.array()?,
                };
                r.finish()?;
                Ok(Self::Response(response))
            }
            KIND_DATA => {
                let receiver_index = r.u32()?;
                let counter = r.u64()?;
                let sealed = r.rest();
                if sealed.len() < TAG_LEN {
                    return Err(WireError::Truncated);
                }
                Ok(Self::Data {
                    receiver_index,
                    counter,
                    header: &bytes[..DATA_HEADER_LEN],
                    sealed,
                })
            }
            KIND_COOKIE => {
                let cookie = Self::Cookie {
                    receiver_index: r.u32()?,
                    cookie: r.array()?,
                };
                r.finish()?;
                Ok(cookie)
            }
            other => Err(WireError::UnknownType(other)),
        }
    }
}

impl HandshakeInit {
    /// Encodes the message, MAC included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(INIT_LEN);
        out.extend_from_slice(&[VERSION, KIND_INIT]);
        out.extend_from_slice(&self.sender_index.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.push(self.ciphers);
        out.extend_from_slice(self.static_key.as_bytes());
        out.extend_from_slice(&self.ephemeral);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.mac);
        out.extend_from_slice(&self.mac2);
        out
    }
}

/// Encodes a cookie reply.
pub fn encode_cookie(receiver_index: u32, cookie: &[u8; MAC_LEN]) -> Vec<u8> {
    let mut out = vec![VERSION, KIND_COOKIE];
    out.extend_from_slice(&receiver_index.to_be_bytes());
    out.extend_from_slice(cookie);
    out
}

impl HandshakeResponse {
    /// Encodes the message, MAC included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RESPONSE_LEN);
        out.extend_from_slice(&[VERSION, KIND_RESPONSE]);
        out.extend_from_slice(&self.sender_index.to_be_bytes());
        out.extend_from_slice(&self.receiver_index.to_be_bytes());
        out.push(self.cipher);
        out.extend_from_slice(self.static_key.as_bytes());
        out.extend_from_slice(&self.ephemeral);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.mac);
        out
    }
}

/// Writes a data-frame header into the front of `out` (which must be at least [`DATA_HEADER_LEN`] long).
pub fn write_data_header(out: &mut [u8], receiver_index: u32, counter: u64) {
    out[0] = VERSION;
    out[1] = KIND_DATA;
    out[2..6].copy_from_slice(&receiver_index.to_be_bytes());
    out[6..14].copy_from_slice(&counter.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() -> HandshakeInit {
        HandshakeInit {
            sender_index: 0x0102_0304,
            timestamp: 0x0506,
            ciphers: 3,
            static_key: PublicKey::from_bytes([7; 32]),
            ephemeral: [8; 32],
            signature: [9; 64],
            mac: [10; 16],
            mac2: [11; 16],
        }
    }

    #[test]
    fn handshakes_round_trip_with_golden_layout() {
        let bytes = init().encode();
        assert_eq!(bytes.len(), INIT_LEN);
        assert_eq!(&bytes[..15], &[2, 1, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 5, 6, 3]);
        assert_eq!(Datagram::parse(&bytes), Ok(Datagram::Init(init())));
        let response = HandshakeResponse {
            sender_index: 5,
            receiver_index: 6,
            cipher: 2,
            static_key: PublicKey::from_bytes([1; 32]),
            ephemeral: [2; 32],
            signature: [3; 64],
            mac: [4; 16],
        };
        let bytes = response.encode();
        assert_eq!(bytes.len(), RESPONSE_LEN);
        assert_eq!(&bytes[..11], &[2, 2, 0, 0, 0, 5, 0, 0, 0, 6, 2]);
        assert_eq!(Datagram::parse(&bytes), Ok(Datagram::Response(response)));
    }

    #[test]
    fn data_frame_layout() {
        let mut bytes = vec![0u8; DATA_HEADER_LEN + TAG_LEN + 3];
        write_data_header(&mut bytes, 9, 0x0a0b);
        assert_eq!(
            &bytes[..DATA_HEADER_LEN],
            &[2, 3, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b]
        );
        match Datagram::parse(&bytes).unwrap() {
            Datagram::Data {
                receiver_index,
                counter,
                header,
                sealed,
            } => {
                assert_eq!((receiver_index, counter), (9, 0x0a0b));
                assert_eq!(header.len(), DATA_HEADER_LEN);
                assert_eq!(sealed.len(), TAG_LEN + 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_datagrams_are_errors() {
        let bytes = init().encode();
        for len in 0..bytes.len() {
            assert!(Datagram::parse(&bytes[..len]).is_err(), "prefix {len}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(Datagram::parse(&long), Err(WireError::TrailingBytes));
        // Version 1 (passwords hashed once with SHA-256) is not understood.
        assert_eq!(Datagram::parse(&[1, 1]), Err(WireError::Version(1)));
        assert_eq!(Datagram::parse(&[3, 1]), Err(WireError::Version(3)));
        assert_eq!(Datagram::parse(&[2, 9]), Err(WireError::UnknownType(9)));
        let cookie = encode_cookie(7, &[3; 16]);
        assert_eq!(cookie.len(), 22);
        assert_eq!(
            Datagram::parse(&cookie),
            Ok(Datagram::Cookie {
                receiver_index: 7,
                cookie: [3; 16]
            })
        );
        assert_eq!(
            Datagram::parse(&[2, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
            Err(WireError::Truncated)
        );
    }
}
