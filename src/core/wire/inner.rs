//! The plaintext of a link data frame: one or more messages, each `type(1) length(varint) body`.
//!
//! Several small control messages (a keepalive, acks, an announcement) share one encrypted frame, which
//! saves a header, a tag and a datagram for each. An unknown type is skipped using its length, so a newer
//! peer can add message types without breaking older ones.

use super::ack::VersionAck;
use super::fragment::Fragment;
use super::keepalive::Keepalive;
use super::lookup::{Lookup, SubtreeDelta};
use super::neighbors::Neighbors;
use super::payload::{Moved, Service, TcpSuperPacket};
use super::traffic::Traffic;
use super::tree::{Announce, AnnounceAck, SigReq, SigRes};
use super::{Reader, WireError, put_varint, varint_len};

/// Message type bytes.
pub mod kind {
    /// [`super::Keepalive`].
    pub const KEEPALIVE: u8 = 0x01;
    /// [`super::Fragment`].
    pub const FRAGMENT: u8 = 0x02;
    /// [`super::SigReq`].
    pub const SIG_REQ: u8 = 0x10;
    /// [`super::SigRes`].
    pub const SIG_RES: u8 = 0x11;
    /// [`super::Announce`].
    pub const ANNOUNCE: u8 = 0x12;
    /// [`super::AnnounceAck`].
    pub const ANNOUNCE_ACK: u8 = 0x13;
    /// [`super::Neighbors`].
    pub const NEIGHBORS: u8 = 0x14;
    /// [`super::VersionAck`] for a neighbour list.
    pub const NEIGHBORS_ACK: u8 = 0x15;
    /// An IPv6 packet (sessions only).
    pub const PACKET: u8 = 0x40;
    /// [`super::TcpSuperPacket`] (sessions only).
    pub const TCP_SUPER_PACKET: u8 = 0x42;
    /// [`super::Service`] (sessions only).
    pub const SERVICE: u8 = 0x41;
    /// [`super::Moved`] (sessions only).
    pub const MOVED: u8 = 0x43;
    /// [`super::Traffic`].
    pub const TRAFFIC: u8 = 0x20;
    // 0x30 and 0x31 carried bloom filters before subtree key sets replaced them: skipped as unknown.
    /// [`super::SubtreeDelta`].
    pub const SUBTREE_DELTA: u8 = 0x33;
    /// [`super::VersionAck`] for a subtree delta.
    pub const SUBTREE_ACK: u8 = 0x34;
    /// [`super::Lookup`].
    pub const LOOKUP: u8 = 0x32;
}

/// One message inside a data frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// Liveness and RTT.
    Keepalive(Keepalive),
    /// A piece of a frame too large for the link.
    Fragment(Fragment<'a>),
    /// Parent-signature request.
    SigReq(SigReq),
    /// Parent-signature response.
    SigRes(SigRes),
    /// Tree announcement.
    Announce(Announce),
    /// Announcement acknowledgement.
    AnnounceAck(AnnounceAck),
    /// Routed traffic.
    Traffic(Traffic<'a>),
    /// A step of a child's subtree key set.
    SubtreeDelta(Box<SubtreeDelta>),
    /// The version of a subtree key set held.
    SubtreeAck(VersionAck),
    /// A key lookup travelling along the tree.
    Lookup(Lookup),
    /// A peer's list of its own peers.
    Neighbors(Neighbors),
    /// Neighbour list acknowledgement.
    NeighborsAck(VersionAck),
    /// An IPv6 packet, inside a session.
    Packet(&'a [u8]),
    /// A service message, inside a session.
    Service(Service<'a>),
    /// A host's TCP super-packet, inside a session.
    TcpSuperPacket(TcpSuperPacket<'a>),
    /// The sender's new coordinates, inside a session.
    Moved(Moved),
}

impl<'a> Message<'a> {
    fn kind(&self) -> u8 {
        match self {
            Self::Keepalive(_) => kind::KEEPALIVE,
            Self::Fragment(_) => kind::FRAGMENT,
            Self::SigReq(_) => kind::SIG_REQ,
            Self::SigRes(_) => kind::SIG_RES,
            Self::Announce(_) => kind::ANNOUNCE,
            Self::AnnounceAck(_) => kind::ANNOUNCE_ACK,
            Self::Traffic(_) => kind::TRAFFIC,
            Self::SubtreeDelta(_) => kind::SUBTREE_DELTA,
            Self::SubtreeAck(_) => kind::SUBTREE_ACK,
            Self::Lookup(_) => kind::LOOKUP,
            Self::Neighbors(_) => kind::NEIGHBORS,
            Self::NeighborsAck(_) => kind::NEIGHBORS_ACK,
            Self::Packet(_) => kind::PACKET,
            Self::Service(_) => kind::SERVICE,
            Self::TcpSuperPacket(_) => kind::TCP_SUPER_PACKET,
            Self::Moved(_) => kind::MOVED,
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Self::Keepalive(m) => m.encode(out),
            Self::Fragment(m) => m.encode(out),
            Self::SigReq(m) => m.encode(out),
            Self::SigRes(m) => m.encode(out),
            Self::Announce(m) => m.encode(out),
            Self::AnnounceAck(m) => m.encode(out),
            Self::Traffic(m) => m.encode(out),
            Self::SubtreeDelta(m) => m.encode(out),
            Self::SubtreeAck(m) => m.encode(out),
            Self::Lookup(m) => m.encode(out),
            Self::Neighbors(m) => m.encode(out),
            Self::NeighborsAck(m) => m.encode(out),
            Self::Packet(p) => out.extend_from_slice(p),
            Self::Service(m) => m.encode(out),
            Self::TcpSuperPacket(m) => m.encode(out),
            Self::Moved(m) => m.encode(out),
        }
    }

    /// The body's length where it is known without encoding: the bulky messages, which are then
    /// written straight into `out` instead of through a temporary buffer.
    fn known_body_len(&self) -> Option<usize> {
        match self {
            Self::Packet(p) => Some(p.len()),
            Self::TcpSuperPacket(m) => Some(3 + m.packet.len()),
            Self::Fragment(m) => Some(6 + m.data.len()),
            _ => None,
        }
    }

    /// Appends `type length body`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Self::Traffic(t) = self {
            out.reserve(128 + t.payload.len());
            encode_traffic_prefix(t, out);
            out.extend_from_slice(t.payload);
            return;
        }
        if let Some(len) = self.known_body_len() {
            out.reserve(1 + varint_len(len as u64) + len);
            out.push(self.kind());
            put_varint(out, len as u64);
            self.encode_body(out);
            return;
        }
        let mut body = Vec::new();
        self.encode_body(&mut body);
        out.push(self.kind());
        put_varint(out, body.len() as u64);
        out.extend_from_slice(&body);
    }

    /// Appends the encoding of the message up to its bulk bytes (an IPv6 packet, a routed payload)
    /// and returns those bytes, which complete it: senders pass the two as parts, so the bulk is
    /// copied once, when it is sealed. Messages without bulk are appended whole.
    pub fn encode_split(&self, out: &mut Vec<u8>) -> &'a [u8] {
        match self {
            Self::Traffic(t) => {
                encode_traffic_prefix(t, out);
                t.payload
            }
            Self::Packet(p) => {
                out.push(kind::PACKET);
                put_varint(out, p.len() as u64);
                p
            }
            Self::TcpSuperPacket(m) => {
                out.push(kind::TCP_SUPER_PACKET);
                put_varint(out, (3 + m.packet.len()) as u64);
                m.encode_header(out);
                m.packet
            }
            _ => {
                self.encode(out);
                &[]
            }
        }
    }

    /// Returns the encoded size, header included.
    pub fn encoded_len(&self) -> usize {
        let mut body = Vec::new();
        self.encode_body(&mut body);
        1 + varint_len(body.len() as u64) + body.len()
    }

    /// Decodes a message body of type `kind_byte`; `None` for a type we do not know (skipped).
    pub fn parse(kind_byte: u8, body: &'a [u8]) -> Result<Option<Self>, WireError> {
        Ok(Some(match kind_byte {
            kind::KEEPALIVE => Self::Keepalive(Keepalive::parse(body)?),
            kind::FRAGMENT => Self::Fragment(Fragment::parse(body)?),
            kind::SIG_REQ => Self::SigReq(SigReq::parse(body)?),
            kind::SIG_RES => Self::SigRes(SigRes::parse(body)?),
            kind::ANNOUNCE => Self::Announce(Announce::parse(body)?),
            kind::ANNOUNCE_ACK => Self::AnnounceAck(AnnounceAck::parse(body)?),
            kind::TRAFFIC => Self::Traffic(Traffic::parse(body)?),
            kind::SUBTREE_DELTA => Self::SubtreeDelta(Box::new(SubtreeDelta::parse(body)?)),
            kind::SUBTREE_ACK => Self::SubtreeAck(VersionAck::parse(body)?),
            kind::LOOKUP => Self::Lookup(Lookup::parse(body)?),
            kind::NEIGHBORS => Self::Neighbors(Neighbors::parse(body)?),
            kind::NEIGHBORS_ACK => Self::NeighborsAck(VersionAck::parse(body)?),
            kind::PACKET => Self::Packet(body),
            kind::SERVICE => Self::Service(Service::parse(body)?),
            kind::TCP_SUPER_PACKET => Self::TcpSuperPacket(TcpSuperPacket::parse(body)?),
            kind::MOVED => Self::Moved(Moved::parse(body)?),
            _ => return Ok(None),
        }))
    }
}

/// Appends what comes before a traffic message's payload: `type length` and the traffic header.
/// Routed traffic is the bulk of all frames, and a link sends this prefix and the payload as two
/// parts (`Link::send_parts`), so that the payload is copied once, into the datagrams.
pub fn encode_traffic_prefix(t: &Traffic<'_>, out: &mut Vec<u8>) {
    let mut header = Vec::with_capacity(128);
    t.encode_header(&mut header);
    let len = header.len() + t.payload.len();
    out.push(kind::TRAFFIC);
    put_varint(out, len as u64);
    out.extend_from_slice(&header);
}

/// Reads the `type length` header of the message at `*offset` in `frame`: returns its type and where
/// its body lies, and moves `*offset` past it. For walking a frame whose bodies are then decrypted or
/// rewritten in place, which [`Messages`] (borrowing the frame) cannot allow.
pub fn next_message(
    frame: &[u8],
    offset: &mut usize,
) -> Result<(u8, std::ops::Range<usize>), WireError> {
    let rest = frame.get(*offset..).ok_or(WireError::Truncated)?;
    let mut r = Reader::new(rest);
    let kind_byte = r.u8()?;
    let len = r.length(usize::MAX)?;
    let start = *offset + (rest.len() - r.remaining());
    r.take(len)?;
    *offset = start + len;
    Ok((kind_byte, start..start + len))
}

/// Iterates over the messages of a decrypted frame. Unknown types are skipped; the first malformed
/// message ends the iteration with its error.
pub struct Messages<'a> {
    reader: Reader<'a>,
    failed: bool,
}

impl<'a> Messages<'a> {
    /// Starts iterating over `plaintext`.
    pub fn new(plaintext: &'a [u8]) -> Self {
        Self {
            reader: Reader::new(plaintext),
            failed: false,
        }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed && self.reader.remaining() > 0 {
            let next = (|| {
                let kind_byte = self.reader.u8()?;
                let len = self.reader.length(usize::MAX)?;
                let body = self.reader.take(len)?;
                Message::parse(kind_byte, body)
            })();
            match next {
                Ok(Some(message)) => return Some(Ok(message)),
                Ok(None) => continue,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::PublicKey;

    #[test]
    fn several_messages_share_a_frame_and_unknown_ones_are_skipped() {
        let keepalive = Message::Keepalive(Keepalive {
            timestamp_ms: 1,
            ..Default::default()
        });
        let req = Message::SigReq(SigReq { seq: 1, nonce: 2 });
        let traffic = Message::Traffic(Traffic {
            dest_path: vec![1],
            src_path: vec![2],
            dest_key: PublicKey::from_bytes([1; 32]),
            src_key: PublicKey::from_bytes([2; 32]),
            watermark: 7,
            kind: 0,
            payload: b"x",
        });
        let mut frame = Vec::new();
        keepalive.encode(&mut frame);
        frame.extend_from_slice(&[0x7f, 2, 0xaa, 0xbb]); // a future message type
        req.encode(&mut frame);
        traffic.encode(&mut frame);
        assert_eq!(keepalive.encoded_len(), 13);
        let parsed: Vec<_> = Messages::new(&frame).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed, vec![keepalive, req, traffic.clone()]);
        // Walking by bounds finds the same messages; split encodings are the whole encoding.
        let mut offset = 0;
        let mut walked = Vec::new();
        while offset < frame.len() {
            let (kind_byte, body) = next_message(&frame, &mut offset).unwrap();
            walked.extend(Message::parse(kind_byte, &frame[body]).unwrap());
        }
        assert_eq!(walked, parsed);
        assert_eq!(next_message(&frame, &mut offset), Err(WireError::Truncated));
        let packet = [0x60u8; 50];
        let super_packet = Message::TcpSuperPacket(super::super::payload::TcpSuperPacket {
            mss: 1000,
            ecn: true,
            packet: &packet,
        });
        for m in [
            traffic,
            Message::Packet(&packet),
            super_packet,
            parsed[0].clone(),
        ] {
            let (mut whole, mut split) = (Vec::new(), Vec::new());
            m.encode(&mut whole);
            let bulk = m.encode_split(&mut split);
            split.extend_from_slice(bulk);
            assert_eq!(split, whole);
        }
    }

    #[test]
    fn malformed_message_stops_iteration() {
        let frame = [kind::SIG_REQ, 3, 1, 2, 3, kind::KEEPALIVE, 0];
        let parsed: Vec<_> = Messages::new(&frame).collect();
        assert_eq!(parsed, vec![Err(WireError::Truncated)]);
        let frame = [kind::KEEPALIVE, 50, 1];
        assert_eq!(
            Messages::new(&frame).next(),
            Some(Err(WireError::Truncated))
        );
    }
}
