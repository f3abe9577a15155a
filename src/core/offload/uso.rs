//! UDP super-packets from the host (USO: `TUN_F_USO4 | TUN_F_USO6`): one read holding a train of
//! UDP/IPv6 datagrams that an application sent with `UDP_SEGMENT` (QUIC stacks, tunnels), one IPv6 and
//! UDP header for all. They are cut here into the datagrams they stand for, each with its own lengths
//! and a complete checksum, so that what crosses the overlay is ordinary packets.

use super::{IPV6_HEADER, fold, sum};
use crate::core::wire::WireError;

/// `gso_type`: a UDP super-packet (`VIRTIO_NET_HDR_GSO_UDP_L4`).
pub(super) const GSO_UDP_L4: u8 = 5;
const NEXT_HEADER_UDP: u8 = 17;
const UDP_HEADER: usize = 8;
/// Most datagrams in one super-packet (the kernel's `UDP_MAX_SEGMENTS`): a bound on what a corrupt
/// header can make of one read.
const MAX_SEGMENTS: usize = 128;

/// Cuts the UDP/IPv6 super-packet `data` (its UDP header at `udp_start`) into datagrams of
/// `gso_size` payload bytes (the last may be shorter), appended to `out`.
pub(super) fn segment_udp6(
    data: &[u8],
    udp_start: usize,
    gso_size: usize,
    out: &mut Vec<Vec<u8>>,
) -> Result<(), WireError> {
    if data.len() < IPV6_HEADER + UDP_HEADER
        || data[0] >> 4 != 6
        || data[6] != NEXT_HEADER_UDP
        || udp_start != IPV6_HEADER
    {
        return Err(WireError::Invalid("not UDP right after IPv6"));
    }
    let headers = IPV6_HEADER + UDP_HEADER;
    let payload = &data[headers..];
    if gso_size == 0 || payload.len().div_ceil(gso_size) > MAX_SEGMENTS {
        return Err(WireError::Invalid("UDP segment size"));
    }
    for chunk in payload.chunks(gso_size) {
        let mut packet = Vec::with_capacity(headers + chunk.len());
        packet.extend_from_slice(&data[..headers]);
        packet.extend_from_slice(chunk);
        let udp_len = (UDP_HEADER + chunk.len()) as u16;
        packet[4..6].copy_from_slice(&udp_len.to_be_bytes());
        packet[IPV6_HEADER + 4..IPV6_HEADER + 6].copy_from_slice(&udp_len.to_be_bytes());
        udp6_checksum(&mut packet);
        out.push(packet);
    }
    Ok(())
}

/// Computes a UDP-over-IPv6 checksum from scratch (pseudo-header included) and stores it; a sum of
/// zero is sent as 0xffff, since zero means "no checksum", which IPv6 forbids.
fn udp6_checksum(packet: &mut [u8]) {
    let field = IPV6_HEADER + 6;
    packet[field..field + 2].fill(0);
    let length = (packet.len() - IPV6_HEADER) as u64;
    let acc = sum(&packet[8..40], length + u64::from(NEXT_HEADER_UDP));
    let value = match !fold(sum(&packet[IPV6_HEADER..], acc)) {
        0 => 0xffff,
        v => v,
    };
    packet[field..field + 2].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn super_packet(payload_len: usize) -> Vec<u8> {
        let mut p = vec![0u8; IPV6_HEADER + UDP_HEADER];
        p[0] = 0x60;
        p[6] = NEXT_HEADER_UDP;
        p[7] = 64;
        p[8] = 0x02;
        p[23] = 1;
        p[24] = 0x02;
        p[39] = 2;
        p[40..42].copy_from_slice(&4000u16.to_be_bytes());
        p[42..44].copy_from_slice(&5000u16.to_be_bytes());
        p.extend((0..payload_len).map(|i| (i % 253) as u8));
        p
    }

    #[test]
    fn a_train_becomes_datagrams_with_their_own_lengths_and_checksums() {
        let data = super_packet(3000);
        let mut out = Vec::new();
        segment_udp6(&data, IPV6_HEADER, 1200, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        let mut joined = Vec::new();
        for (i, p) in out.iter().enumerate() {
            let len = if i < 2 { 1200 } else { 600 };
            assert_eq!(p.len(), IPV6_HEADER + UDP_HEADER + len);
            let ipv6_len = u16::from_be_bytes([p[4], p[5]]);
            let udp_len = u16::from_be_bytes([p[44], p[45]]);
            assert_eq!(
                (ipv6_len, udp_len),
                ((UDP_HEADER + len) as u16, (UDP_HEADER + len) as u16)
            );
            assert_eq!(&p[40..44], &data[40..44], "ports kept");
            // A correct checksum sums (with the pseudo-header) to all ones.
            let acc = sum(&p[8..40], (p.len() - IPV6_HEADER) as u64 + 17);
            assert_eq!(fold(sum(&p[IPV6_HEADER..], acc)), 0xffff);
            joined.extend_from_slice(&p[48..]);
        }
        assert_eq!(joined, data[48..]);
    }

    #[test]
    fn bad_super_packets_are_refused() {
        let data = super_packet(3000);
        let mut out = Vec::new();
        assert!(segment_udp6(&data, IPV6_HEADER, 0, &mut out).is_err());
        assert!(
            segment_udp6(&data, IPV6_HEADER, 10, &mut out).is_err(),
            "too many"
        );
        assert!(segment_udp6(&data, 60, 1200, &mut out).is_err());
        assert!(segment_udp6(&data[..44], IPV6_HEADER, 1200, &mut out).is_err());
        let mut tcp = data.clone();
        tcp[6] = 6;
        assert!(segment_udp6(&tcp, IPV6_HEADER, 1200, &mut out).is_err());
        assert!(out.is_empty());
    }
}
