//! TCP super-packets carried whole across the overlay.
//!
//! Segmenting a host's 64 KiB TSO read into 1280-byte packets (see [`super::split_read`]) costs a
//! seal, a route lookup, a header and a few copies per segment, at the sender, at every relay and at
//! the destination. When the read is a TCP super-packet we can instead send it as one session message
//! ([`crate::core::wire::payload::TcpSuperPacket`]): links fragment it to their MTU as they do any
//! large frame, and the destination writes it to its TUN device as one GSO packet, which its kernel
//! takes as is (local delivery never needs the segments). The segment size (the sender host's MSS)
//! travels along, so a destination that must segment (a kernel without TUN offloads, or a packet
//! forwarded on to its /64) cuts the same segments the sender's host would have.
//!
//! The receiving side treats the message as untrusted input: it was authenticated by the session, but
//! the peer may still send anything. Everything the kernel will rely on (IPv6 and TCP headers, sizes,
//! the checksum seed) is checked or recomputed here.

use super::{
    GSO_ECN, GSO_TCPV6, IPV6_HEADER, MIN_GSO_SIZE, NEEDS_CSUM, VNET_HDR_LEN, fold, segment_tcp6,
    sum,
};
use crate::core::wire::WireError;

/// IPv6 next-header value for TCP.
const NEXT_HEADER_TCP: u8 = 6;

/// A TCP/IPv6 super-packet from a TUN read, still in the read's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuperPacket<'a> {
    /// IPv6 header, TCP header and the payload of every segment.
    pub packet: &'a [u8],
    /// Segment payload size (the host's MSS).
    pub mss: u16,
    /// ECN super-packet: CWR set on the first segment only.
    pub ecn: bool,
}

/// Returns the TCP/IPv6 header length of `packet` if it is a TCP segment directly after a plain IPv6
/// header (no extension headers) with an IPv6 payload length that fits the field.
fn tcp6_headers(packet: &[u8]) -> Result<usize, WireError> {
    if packet.len() < IPV6_HEADER + 20 || packet[0] >> 4 != 6 {
        return Err(WireError::Invalid("not IPv6"));
    }
    if packet[6] != NEXT_HEADER_TCP {
        return Err(WireError::Invalid("not TCP right after the IPv6 header"));
    }
    let tcp_len = usize::from(packet[IPV6_HEADER + 12] >> 4) * 4;
    let headers = IPV6_HEADER + tcp_len;
    if tcp_len < 20 || packet.len() < headers {
        return Err(WireError::Invalid("TCP header"));
    }
    if packet.len() - IPV6_HEADER > usize::from(u16::MAX) {
        return Err(WireError::Invalid(
            "larger than an IPv6 packet without jumbogram",
        ));
    }
    Ok(headers)
}

/// If `read` (a TUN read with its `virtio_net_hdr`) is a TCP/IPv6 super-packet of more than one
/// segment, returns it to be carried whole; `None` for anything else, which [`super::split_read`]
/// handles.
pub fn super_packet(read: &[u8]) -> Option<SuperPacket<'_>> {
    let (hdr, packet) = read.split_at_checked(VNET_HDR_LEN)?;
    let field = |i: usize| u16::from_le_bytes([hdr[i], hdr[i + 1]]);
    let (flags, gso_type, mss, csum_start) = (hdr[0], hdr[1], field(4), field(6));
    if gso_type & !GSO_ECN != GSO_TCPV6
        || flags & NEEDS_CSUM == 0
        || usize::from(csum_start) != IPV6_HEADER
        || usize::from(mss) < MIN_GSO_SIZE
    {
        return None;
    }
    let headers = tcp6_headers(packet).ok()?;
    (packet.len() - headers > usize::from(mss)).then_some(SuperPacket {
        packet,
        mss,
        ecn: gso_type & GSO_ECN != 0,
    })
}

/// Checks a super-packet that arrived through a session: TCP right after IPv6, a segment size the
/// kernel accepts, and more payload than one segment.
fn check(packet: &[u8], mss: u16) -> Result<usize, WireError> {
    let headers = tcp6_headers(packet)?;
    if usize::from(mss) < MIN_GSO_SIZE {
        return Err(WireError::Invalid("segment size"));
    }
    if packet.len() - headers <= usize::from(mss) {
        return Err(WireError::Invalid("super-packet of one segment"));
    }
    Ok(headers)
}

/// Builds the TUN write (with `virtio_net_hdr`) for a super-packet that came through a session: one
/// GSO write, the IPv6 payload length set from the real size and the checksum field re-seeded with
/// our own pseudo-header sum, so nothing the sender wrote in those fields reaches the kernel.
pub fn super_packet_write(packet: &[u8], mss: u16, ecn: bool) -> Result<Vec<u8>, WireError> {
    let (mut write, headers) = super_packet_head(packet, mss, ecn)?;
    write.extend_from_slice(&packet[headers..]);
    Ok(write)
}

/// The start of [`super_packet_write`]: the `virtio_net_hdr` and the packet's IPv6 and TCP headers
/// as rewritten, and where in `packet` the rest of the write starts. Writing the two with one
/// `writev` spares copying the payload.
pub fn super_packet_head(
    packet: &[u8],
    mss: u16,
    ecn: bool,
) -> Result<(Vec<u8>, usize), WireError> {
    let headers = check(packet, mss)?;
    let mut write = Vec::with_capacity(VNET_HDR_LEN + headers);
    write.push(NEEDS_CSUM);
    write.push(if ecn { GSO_TCPV6 | GSO_ECN } else { GSO_TCPV6 });
    write.extend_from_slice(&(headers as u16).to_le_bytes());
    write.extend_from_slice(&mss.to_le_bytes());
    write.extend_from_slice(&(IPV6_HEADER as u16).to_le_bytes());
    write.extend_from_slice(&16u16.to_le_bytes());
    write.extend_from_slice(&packet[..headers]);
    let head = &mut write[VNET_HDR_LEN..];
    let payload_len = (packet.len() - IPV6_HEADER) as u16;
    head[4..6].copy_from_slice(&payload_len.to_be_bytes());
    // As the kernel's own GSO packets: the pseudo-header sum without the length.
    let seed = fold(sum(&head[8..40], u64::from(NEXT_HEADER_TCP)));
    head[IPV6_HEADER + 16..IPV6_HEADER + 18].copy_from_slice(&seed.to_be_bytes());
    Ok((write, headers))
}

/// Cuts a super-packet that came through a session into ordinary packets with complete checksums,
/// for a TUN device that refused the GSO write.
pub fn segment_super_packet(
    packet: &[u8],
    mss: u16,
    ecn: bool,
    out: &mut Vec<Vec<u8>>,
) -> Result<(), WireError> {
    check(packet, mss)?;
    segment_tcp6(packet, IPV6_HEADER, usize::from(mss), ecn, out)
}

#[cfg(test)]
mod tests {
    use super::super::split_read;
    use super::super::tests::{super_packet as tso_read, tcp_checksum_ok};
    use super::*;

    fn payload(len: u32) -> Vec<u8> {
        (0..len).map(|i| (i * 31) as u8).collect()
    }

    #[test]
    fn a_tso_read_travels_whole_and_splits_as_the_host_would() {
        let read = tso_read(&payload(5000), 1220, 0x18);
        let sp = super_packet(&read).expect("a super-packet");
        assert_eq!((sp.mss, sp.ecn, sp.packet.len()), (1220, false, 5060));
        // At the destination: one GSO write, whose segments are those the sender would have cut.
        let write = super_packet_write(sp.packet, sp.mss, sp.ecn).unwrap();
        let (mut direct, mut via_write, mut fallback) = (Vec::new(), Vec::new(), Vec::new());
        split_read(&read, &mut direct).unwrap();
        split_read(&write, &mut via_write).unwrap();
        segment_super_packet(sp.packet, sp.mss, sp.ecn, &mut fallback).unwrap();
        assert_eq!(direct.len(), 5);
        assert_eq!(via_write, direct);
        assert_eq!(fallback, direct);
        assert!(fallback.iter().all(|p| tcp_checksum_ok(p)));
    }

    #[test]
    fn the_senders_length_and_checksum_fields_are_not_trusted() {
        let read = tso_read(&payload(3000), 1000, 0x10);
        let mut packet = super_packet(&read).unwrap().packet.to_vec();
        let honest = super_packet_write(&packet, 1000, false).unwrap();
        packet[4..6].copy_from_slice(&[0xff, 0xff]);
        packet[56..58].copy_from_slice(&[0x12, 0x34]);
        assert_eq!(super_packet_write(&packet, 1000, false).unwrap(), honest);
    }

    #[test]
    fn anything_but_a_multi_segment_tcp6_packet_is_refused() {
        let read = tso_read(&payload(3000), 1000, 0x10);
        let packet = super_packet(&read).unwrap().packet.to_vec();
        assert!(
            super_packet_write(&packet, 535, false).is_err(),
            "tiny segments"
        );
        assert!(
            super_packet_write(&packet, 3000, false).is_err(),
            "one segment"
        );
        let mut udp = packet.clone();
        udp[6] = 17;
        assert!(super_packet_write(&udp, 1000, false).is_err());
        let mut v4 = packet.clone();
        v4[0] = 0x45;
        assert!(super_packet_write(&v4, 1000, false).is_err());
        assert!(super_packet_write(&packet[..50], 1000, false).is_err());
        let mut huge = packet.clone();
        huge.resize(70_000, 0);
        assert!(super_packet_write(&huge, 1000, false).is_err());
        // Reads that are not multi-segment TCP super-packets go the ordinary way.
        assert!(super_packet(&tso_read(&payload(900), 1000, 0x10)).is_none());
        let mut plain = read.clone();
        plain[1] = 0;
        assert!(super_packet(&plain).is_none());
        assert!(super_packet(&read[..5]).is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_session_message_is_written_segmented_or_refused_without_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000),
            mss in 0u16..2000,
            ecn in proptest::bool::ANY,
        ) {
            let _ = super_packet_write(&bytes, mss, ecn);
            let _ = segment_super_packet(&bytes, mss, ecn, &mut Vec::new());
            let _ = super_packet(&bytes);
        }
    }
}
