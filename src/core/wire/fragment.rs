//! Link-layer fragments: one frame too large for a link's MTU travels as several.
//!
//! ```text
//! id(4) index(1) count(1) data(rest)
//! ```
//! Each fragment is the only message of its own authenticated frame, so fragments cannot be forged or
//! mixed between peers; the receiver joins `count` fragments with the same `id` and parses the result as
//! an ordinary frame. This lets the overlay carry IPv6 packets up to the TUN MTU over links with a
//! smaller MTU (a 1280-byte packet over a 1280-byte UDP path, a 9000-byte one over Ethernet).

use super::{Reader, WireError};

/// One piece of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// Identifies the frame among those in flight on the link.
    pub id: u32,
    /// Position of this piece, from 0.
    pub index: u8,
    /// Number of pieces.
    pub count: u8,
    /// The bytes.
    pub data: &'a [u8],
}

impl<'a> Fragment<'a> {
    /// Decodes the message body.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let m = Self {
            id: r.u32()?,
            index: r.u8()?,
            count: r.u8()?,
            data: r.rest(),
        };
        if m.count == 0 || m.index >= m.count {
            return Err(WireError::Invalid("fragment index or count"));
        }
        Ok(m)
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.push(self.index);
        out.push(self.count);
        out.extend_from_slice(self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let f = Fragment {
            id: 7,
            index: 1,
            count: 3,
            data: b"abc",
        };
        let mut out = Vec::new();
        f.encode(&mut out);
        assert_eq!(out, [0, 0, 0, 7, 1, 3, b'a', b'b', b'c']);
        assert_eq!(Fragment::parse(&out), Ok(f));
        assert!(Fragment::parse(&[0, 0, 0, 7, 3, 3]).is_err());
        assert!(Fragment::parse(&[0, 0, 0, 7, 0, 0]).is_err());
    }
}
