//! Wire formats: how every message meshrouter sends is laid out in bytes.
//!
//! Panic contract: every decoder here is total. Given any byte string it returns a value or a
//! [`WireError`]; it never panics, never reads out of bounds and never allocates more than a small multiple
//! of its input (lengths read from the wire are checked against the bytes actually present before anything
//! is allocated). Encoders cannot fail. `docs/PROTOCOL.md` describes every message; each message type has
//! a round-trip test and a fuzz target.

mod reader;

pub mod ack;
pub mod beacon;
pub mod datagram;
pub mod fragment;
pub mod inner;
pub mod keepalive;
pub mod lookup;
pub mod neighbors;
pub mod payload;
pub mod trace;
pub mod traffic;
pub mod tree;

pub use self::reader::Reader;

/// Protocol version carried in the first byte of every link datagram, and in discovery beacons. 2:
/// passwords are stretched with Argon2id (`core::password`), so keys differ from version 1's and the
/// two do not interoperate.
pub const VERSION: u8 = 2;
/// Longest tree path (coordinates) accepted: deeper trees are refused rather than stored.
pub const MAX_PATH_LEN: usize = 255;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ended inside a field.
    #[error("truncated")]
    Truncated,
    /// Bytes were left over after a complete message.
    #[error("trailing bytes")]
    TrailingBytes,
    /// The datagram is from another protocol version.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// The type byte names no known message.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A variable-length integer is longer than ten bytes or overflows 64 bits.
    #[error("malformed varint")]
    Varint,
    /// A field holds a value the format forbids.
    #[error("invalid field: {0}")]
    Invalid(&'static str),
}

/// Splits a message that ends in an Ed25519 signature into the signed bytes and the signature.
pub fn split_signature(
    bytes: &[u8],
) -> Result<(&[u8], [u8; crate::core::identity::SIGNATURE_LEN]), WireError> {
    let body_len = bytes
        .len()
        .checked_sub(crate::core::identity::SIGNATURE_LEN)
        .ok_or(WireError::Truncated)?;
    let (body, signature) = bytes.split_at(body_len);
    Ok((
        body,
        signature.try_into().map_err(|_| WireError::Truncated)?,
    ))
}

/// Appends an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Returns the encoded length of a varint.
pub fn varint_len(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
}

/// Appends a tree path: its length as a varint, then each port as a varint.
pub fn put_path(out: &mut Vec<u8>, path: &[u64]) {
    put_varint(out, path.len() as u64);
    for &port in path {
        put_varint(out, port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overlong() {
        for value in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value));
            let mut r = Reader::new(&buf);
            assert_eq!(r.varint(), Ok(value));
            assert_eq!(r.finish(), Ok(()));
        }
        assert_eq!(Reader::new(&[0x80; 11]).varint(), Err(WireError::Varint));
        assert_eq!(
            Reader::new(&[0xff; 9].iter().chain(&[0x02]).copied().collect::<Vec<_>>()).varint(),
            Err(WireError::Varint)
        );
        assert_eq!(Reader::new(&[0x80]).varint(), Err(WireError::Truncated));
    }
}
