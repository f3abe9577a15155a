//! Routed traffic: a payload travelling greedily towards tree coordinates.
//!
//! ```text
//! dest_path(path) src_path(path) dest_key(32) src_key(32) watermark(varint) kind(1) payload(rest)
//! path = count(varint) port(varint)*
//! ```
//! `kind` says what the payload is: [`KIND_SESSION`] (an end-to-end encrypted session message, which is
//! how IPv6 packets and service messages travel), [`KIND_LOOKUP_REPLY`], [`KIND_PATH_BROKEN`], or
//! [`KIND_DATA`] (an unencrypted probe, used by the simulator's routing tests and never written to TUN). Control replies travel in the same envelope so that they
//! share greedy routing and its loop guard.
//! `watermark` is the lowest tree distance to the destination seen so far on this packet's way; a hop
//! forwards only if it is strictly closer, which makes forwarding loop-free even while coordinates change.

use super::{Reader, WireError, put_path, put_varint};
use crate::core::identity::PublicKey;

/// Payload is data for the destination.
pub const KIND_DATA: u8 = 0;
/// Payload is a [`super::lookup::LookupReply`].
pub const KIND_LOOKUP_REPLY: u8 = 1;
/// Payload is the key of a destination the sender could not reach; the packet goes back to the source.
pub const KIND_PATH_BROKEN: u8 = 2;
/// Payload is an end-to-end session message (handshake or encrypted frame).
pub const KIND_SESSION: u8 = 3;
/// Payload is a trace probe's id (see [`super::trace`]): every node it passes answers the source.
pub const KIND_TRACE: u8 = 4;
/// Payload is a [`super::trace::TraceReply`], for the source of a probe.
pub const KIND_TRACE_REPLY: u8 = 5;

/// A routed packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic<'a> {
    /// Destination's coordinates as the source knew them.
    pub dest_path: Vec<u64>,
    /// Source's coordinates, so that a stuck hop can report back.
    pub src_path: Vec<u64>,
    /// The destination node.
    pub dest_key: PublicKey,
    /// The source node.
    pub src_key: PublicKey,
    /// Lowest distance to the destination so far (`u64::MAX` at the source).
    pub watermark: u64,
    /// What the payload is.
    pub kind: u8,
    /// The carried bytes.
    pub payload: &'a [u8],
}

impl<'a> Traffic<'a> {
    /// Decodes the message body.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        Ok(Self {
            dest_path: r.path()?,
            src_path: r.path()?,
            dest_key: r.key()?,
            src_key: r.key()?,
            watermark: r.varint()?,
            kind: r.u8()?,
            payload: r.rest(),
        })
    }

    /// Appends the message body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_header(out);
        out.extend_from_slice(self.payload);
    }

    /// Appends the message body without the payload (what comes before it).
    pub fn encode_header(&self, out: &mut Vec<u8>) {
        put_path(out, &self.dest_path);
        put_path(out, &self.src_path);
        out.extend_from_slice(self.dest_key.as_bytes());
        out.extend_from_slice(self.src_key.as_bytes());
        put_varint(out, self.watermark);
        out.push(self.kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let t = Traffic {
            dest_path: vec![1, 2, 300],
            src_path: vec![],
            dest_key: PublicKey::from_bytes([1; 32]),
            src_key: PublicKey::from_bytes([2; 32]),
            watermark: u64::MAX,
            kind: KIND_DATA,
            payload: b"hello",
        };
        let mut out = Vec::new();
        t.encode(&mut out);
        assert_eq!(&out[..6], &[3, 1, 2, 0xac, 0x02, 0]);
        assert_eq!(Traffic::parse(&out), Ok(t));
        assert!(Traffic::parse(&[200, 1]).is_err());
        assert_eq!(
            Traffic::parse(&[0x80, 0x02]),
            Err(WireError::Invalid("length out of range"))
        );
    }
}
