//! TUN offloads: turning what the host's kernel hands a TUN device opened with `IFF_VNET_HDR` and
//! TSO (and USO, `uso`) enabled into ordinary IPv6 packets.
//!
//! With offloads the host's TCP sends up to 64 KiB per read (a "super-packet" cut into MSS-sized
//! segments by whoever receives it) and leaves checksums for the device to complete. That saves the
//! host's stack and our TUN reads most of their per-packet work; we segment here, into packets no
//! larger than the TUN MTU, so the overlay still carries 1280-byte packets. Every read starts with a
//! `virtio_net_hdr` (10 bytes, little-endian):
//!
//! ```text
//! flags(1) gso_type(1) hdr_len(2) gso_size(2) csum_start(2) csum_offset(2)
//! ```
//!
//! Writes to the device carry an all-zero header: no segmentation, checksum already complete.

use crate::core::wire::WireError;

pub mod flows;
pub mod passthrough;
mod uso;
pub use passthrough::{
    SuperPacket, segment_super_packet, super_packet, super_packet_head, super_packet_write,
};

/// Length of the `virtio_net_hdr` in front of every read and write.
pub const VNET_HDR_LEN: usize = 10;
/// `flags`: the checksum at `csum_start + csum_offset` must be completed.
const NEEDS_CSUM: u8 = 1;
/// `gso_type`: an ordinary packet.
const GSO_NONE: u8 = 0;
/// `gso_type`: a TCP over IPv6 super-packet.
const GSO_TCPV6: u8 = 4;
/// Bit of `gso_type` saying the segments carry ECN (CWR on the first only).
const GSO_ECN: u8 = 0x80;
const IPV6_HEADER: usize = 40;
/// Smallest segment size accepted (the smallest MSS a kernel uses): a tiny one from a corrupt header
/// would turn one read into tens of thousands of packets.
pub const MIN_GSO_SIZE: usize = 536;
const TCP_FLAG_FIN: u8 = 0x01;
const TCP_FLAG_PSH: u8 = 0x08;
const TCP_FLAG_CWR: u8 = 0x80;

/// Ones'-complement sum of `bytes` (big-endian 16-bit words, odd tail padded), not folded.
fn sum(bytes: &[u8], mut acc: u64) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Completes a partial checksum: the field at `start + offset` holds the pseudo-header sum; the
/// device adds everything from `start` on and stores the complement.
fn complete_checksum(packet: &mut [u8], start: usize, offset: usize) -> Result<(), WireError> {
    let field = start
        .checked_add(offset)
        .filter(|f| f + 2 <= packet.len() && start <= packet.len())
        .ok_or(WireError::Invalid("checksum offset"))?;
    let total = fold(sum(&packet[start..], 0));
    let value = !total;
    packet[field..field + 2].copy_from_slice(&value.to_be_bytes());
    Ok(())
}

/// Computes a TCP-over-IPv6 checksum from scratch (pseudo-header included) and stores it.
fn tcp6_checksum(packet: &mut [u8], tcp_start: usize) {
    packet[tcp_start + 16..tcp_start + 18].fill(0);
    let length = (packet.len() - tcp_start) as u64;
    let acc = sum(&packet[8..40], length + 6);
    let value = !fold(sum(&packet[tcp_start..], acc));
    packet[tcp_start + 16..tcp_start + 18].copy_from_slice(&value.to_be_bytes());
}

/// Splits one TUN read (header + data) into IPv6 packets of at most `mtu` bytes, appended to `out`.
pub fn split_read(read: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), WireError> {
    if read.len() < VNET_HDR_LEN {
        return Err(WireError::Truncated);
    }
    let (hdr, data) = read.split_at(VNET_HDR_LEN);
    let field = |i: usize| usize::from(u16::from_le_bytes([hdr[i], hdr[i + 1]]));
    let (flags, gso_type, gso_size) = (hdr[0], hdr[1], field(4));
    let (csum_start, csum_offset) = (field(6), field(8));
    match gso_type & !GSO_ECN {
        GSO_NONE => {
            let mut packet = data.to_vec();
            if flags & NEEDS_CSUM != 0 {
                complete_checksum(&mut packet, csum_start, csum_offset)?;
            }
            out.push(packet);
            Ok(())
        }
        GSO_TCPV6 => segment_tcp6(data, csum_start, gso_size, gso_type & GSO_ECN != 0, out),
        uso::GSO_UDP_L4 => uso::segment_udp6(data, csum_start, gso_size, out),
        _ => Err(WireError::Invalid("unsupported GSO type")),
    }
}

fn segment_tcp6(
    data: &[u8],
    tcp_start: usize,
    gso_size: usize,
    ecn: bool,
    out: &mut Vec<Vec<u8>>,
) -> Result<(), WireError> {
    if data.len() < IPV6_HEADER || data[0] >> 4 != 6 || tcp_start < IPV6_HEADER {
        return Err(WireError::Invalid("not IPv6"));
    }
    let tcp_len = data
        .get(tcp_start + 12)
        .map(|b| usize::from(b >> 4) * 4)
        .filter(|l| *l >= 20)
        .ok_or(WireError::Truncated)?;
    let headers = tcp_start + tcp_len;
    if data.len() < headers || gso_size < MIN_GSO_SIZE {
        return Err(WireError::Invalid("TCP segment"));
    }
    let seq = u32::from_be_bytes([
        data[tcp_start + 4],
        data[tcp_start + 5],
        data[tcp_start + 6],
        data[tcp_start + 7],
    ]);
    let payload = &data[headers..];
    let count = payload.len().div_ceil(gso_size).max(1);
    for (i, chunk) in payload
        .chunks(gso_size)
        .chain(payload.is_empty().then_some(&[][..]))
        .enumerate()
    {
        let mut packet = Vec::with_capacity(headers + chunk.len());
        packet.extend_from_slice(&data[..headers]);
        packet.extend_from_slice(chunk);
        let ipv6_payload = (packet.len() - IPV6_HEADER) as u16;
        packet[4..6].copy_from_slice(&ipv6_payload.to_be_bytes());
        let offset = (i * gso_size) as u32;
        packet[tcp_start + 4..tcp_start + 8]
            .copy_from_slice(&seq.wrapping_add(offset).to_be_bytes());
        if i + 1 < count {
            packet[tcp_start + 13] &= !(TCP_FLAG_FIN | TCP_FLAG_PSH);
        }
        if i > 0 && ecn {
            packet[tcp_start + 13] &= !TCP_FLAG_CWR;
        }
        tcp6_checksum(&mut packet, tcp_start);
        out.push(packet);
    }
    Ok(())
}

/// Largest coalesced write: the kernel's limit for one GSO packet.
const MAX_COALESCED: usize = 65_535;

/// The TCP/IPv6 fields that decide whether two packets are consecutive segments of one stream.
struct TcpSegment {
    /// Bytes 0..(40 + TCP header) that must be equal between segments, with the fields that may
    /// differ (payload length, flow label stays, sequence number, checksum) masked out.
    key: Vec<u8>,
    seq: u32,
    payload: usize,
    headers: usize,
}

fn tcp_segment(packet: &[u8]) -> Option<TcpSegment> {
    if packet.len() < IPV6_HEADER + 20 || packet[0] >> 4 != 6 || packet[6] != 6 {
        return None;
    }
    let tcp_len = usize::from(packet[IPV6_HEADER + 12] >> 4) * 4;
    let headers = IPV6_HEADER + tcp_len;
    let flags = packet[IPV6_HEADER + 13];
    // Only plain data segments (ACK, maybe PSH on the last) are merged.
    if tcp_len < 20 || packet.len() <= headers || flags & !(TCP_FLAG_PSH | 0x10) != 0 {
        return None;
    }
    let mut key = packet[..headers].to_vec();
    key[4..6].fill(0); // payload length
    key[IPV6_HEADER + 4..IPV6_HEADER + 8].fill(0); // sequence number
    key[IPV6_HEADER + 13] &= !TCP_FLAG_PSH;
    key[IPV6_HEADER + 16..IPV6_HEADER + 18].fill(0); // checksum
    let seq = u32::from_be_bytes(packet[IPV6_HEADER + 4..IPV6_HEADER + 8].try_into().ok()?);
    Some(TcpSegment {
        key,
        seq,
        payload: packet.len() - headers,
        headers,
    })
}

fn plain_write(packet: &[u8]) -> Vec<u8> {
    let mut write = Vec::with_capacity(VNET_HDR_LEN + packet.len());
    write.extend_from_slice(&[0; VNET_HDR_LEN]);
    write.extend_from_slice(packet);
    write
}

/// Turns delivered IPv6 packets into TUN writes (each with its `virtio_net_hdr`): consecutive
/// segments of one TCP stream become one GSO write, which the host's stack takes in one go (GRO done
/// by us), the rest one write each. Packets keep their order.
pub fn coalesce<P: AsRef<[u8]>>(packets: &[P]) -> Vec<Vec<u8>> {
    let packets: Vec<&[u8]> = packets.iter().map(AsRef::as_ref).collect();
    let packets = packets.as_slice();
    let mut writes = Vec::new();
    let mut i = 0;
    while i < packets.len() {
        let Some(first) = tcp_segment(packets[i]) else {
            writes.push(plain_write(packets[i]));
            i += 1;
            continue;
        };
        let mut end = i + 1;
        let mut next_seq = first.seq.wrapping_add(first.payload as u32);
        let mut total = packets[i].len();
        let mut psh = packets[i][IPV6_HEADER + 13] & TCP_FLAG_PSH != 0;
        while end < packets.len() && !psh {
            let Some(s) = tcp_segment(packets[end]) else {
                break;
            };
            let fits = total + s.payload <= MAX_COALESCED;
            if s.key != first.key || s.seq != next_seq || s.payload > first.payload || !fits {
                break;
            }
            next_seq = next_seq.wrapping_add(s.payload as u32);
            total += s.payload;
            psh = packets[end][IPV6_HEADER + 13] & TCP_FLAG_PSH != 0;
            end += 1;
            if s.payload < first.payload {
                break; // a short segment ends the train
            }
        }
        if end - i == 1 {
            writes.push(plain_write(packets[i]));
        } else {
            writes.push(gso_write(&packets[i..end], &first, psh));
        }
        i = end;
    }
    writes
}

fn gso_write(train: &[&[u8]], first: &TcpSegment, psh: bool) -> Vec<u8> {
    let headers = first.headers;
    let total: usize = headers + train.iter().map(|p| p.len() - headers).sum::<usize>();
    let mut write = Vec::with_capacity(VNET_HDR_LEN + total);
    write.push(NEEDS_CSUM);
    write.push(GSO_TCPV6);
    write.extend_from_slice(&(headers as u16).to_le_bytes());
    write.extend_from_slice(&(first.payload as u16).to_le_bytes());
    write.extend_from_slice(&(IPV6_HEADER as u16).to_le_bytes());
    write.extend_from_slice(&16u16.to_le_bytes());
    write.extend_from_slice(&train[0][..headers]);
    for p in train {
        write.extend_from_slice(&p[headers..]);
    }
    let packet = &mut write[VNET_HDR_LEN..];
    packet[4..6].copy_from_slice(&((total - IPV6_HEADER) as u16).to_be_bytes());
    if psh {
        packet[IPV6_HEADER + 13] |= TCP_FLAG_PSH;
    }
    // As the kernel's own GSO packets: the checksum field holds the pseudo-header sum without the
    // length, and the kernel completes each segment's checksum if it ever segments the packet.
    let seed = fold(sum(&packet[8..40], 6));
    packet[IPV6_HEADER + 16..IPV6_HEADER + 18].copy_from_slice(&seed.to_be_bytes());
    write
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP/IPv6 packet with `payload`, checksum left as the kernel leaves it for offload (the
    /// pseudo-header sum with length 0 for GSO), and its virtio header.
    pub(super) fn super_packet(payload: &[u8], gso_size: u16, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 60];
        p[0] = 0x60;
        p[6] = 6; // next header TCP
        p[7] = 64;
        p[8..24].copy_from_slice(&[0x02; 16]);
        p[24..40].copy_from_slice(&[0x03; 16]);
        p[40..42].copy_from_slice(&1234u16.to_be_bytes());
        p[42..44].copy_from_slice(&80u16.to_be_bytes());
        p[44..48].copy_from_slice(&0xffff_fff0u32.to_be_bytes()); // seq wraps during the train
        p[52] = 5 << 4;
        p[53] = flags;
        p.extend_from_slice(payload);
        let len = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&len.to_be_bytes());
        let mut hdr = vec![NEEDS_CSUM, GSO_TCPV6];
        hdr.extend_from_slice(&60u16.to_le_bytes());
        hdr.extend_from_slice(&gso_size.to_le_bytes());
        hdr.extend_from_slice(&40u16.to_le_bytes());
        hdr.extend_from_slice(&16u16.to_le_bytes());
        [hdr, p].concat()
    }

    pub(super) fn tcp_checksum_ok(p: &[u8]) -> bool {
        let length = (p.len() - 40) as u64;
        fold(sum(&p[40..], sum(&p[8..40], length + 6))) == 0xffff
    }

    #[test]
    fn a_super_packet_becomes_mss_sized_segments_with_valid_checksums() {
        let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let mut out = Vec::new();
        split_read(
            &super_packet(&payload, 1200, TCP_FLAG_PSH | TCP_FLAG_FIN),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1260, 1260, 660]
        );
        let mut joined = Vec::new();
        for (i, p) in out.iter().enumerate() {
            assert!(tcp_checksum_ok(p), "segment {i} checksum");
            assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])), p.len() - 40);
            let seq = u32::from_be_bytes([p[44], p[45], p[46], p[47]]);
            assert_eq!(seq, 0xffff_fff0u32.wrapping_add(1200 * i as u32));
            let last = i == out.len() - 1;
            assert_eq!(p[53] & (TCP_FLAG_FIN | TCP_FLAG_PSH) != 0, last);
            joined.extend_from_slice(&p[60..]);
        }
        assert_eq!(joined, payload);
    }

    #[test]
    fn a_plain_packet_gets_its_checksum_completed() {
        // A UDP/IPv6 packet whose checksum field holds the pseudo-header sum, as the kernel leaves it.
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&8u16.to_be_bytes());
        p[6] = 17;
        p[8..40].copy_from_slice(&[9; 32]);
        p[44..46].copy_from_slice(&8u16.to_be_bytes());
        let pseudo = fold(sum(&p[8..40], 8 + 17));
        p[46..48].copy_from_slice(&pseudo.to_be_bytes());
        let mut read = vec![NEEDS_CSUM, GSO_NONE, 0, 0, 0, 0];
        read.extend_from_slice(&40u16.to_le_bytes());
        read.extend_from_slice(&6u16.to_le_bytes());
        read.extend_from_slice(&p);
        let mut out = Vec::new();
        split_read(&read, &mut out).unwrap();
        let q = &out[0];
        assert_eq!(fold(sum(&q[40..], sum(&q[8..40], 8 + 17))), 0xffff);
    }

    #[test]
    fn segments_coalesce_into_one_gso_write_that_splits_back() {
        let payload: Vec<u8> = (0..6000u32).map(|i| (i * 13) as u8).collect();
        let mut segments = Vec::new();
        split_read(&super_packet(&payload, 1200, TCP_FLAG_PSH), &mut segments).unwrap();
        assert_eq!(segments.len(), 5);
        // An unrelated packet in between splits the train in two.
        let mut mixed = segments.clone();
        mixed.insert(2, vec![0x60; 48]);
        let writes = coalesce(&mixed);
        assert_eq!(writes.len(), 3);
        let writes = coalesce(&segments);
        assert_eq!(writes.len(), 1);
        let w = &writes[0];
        assert_eq!((w[0], w[1]), (NEEDS_CSUM, GSO_TCPV6));
        assert_eq!(u16::from_le_bytes([w[4], w[5]]), 1200);
        // Our own splitter turns the write back into the same segments.
        let mut again = Vec::new();
        split_read(w, &mut again).unwrap();
        assert_eq!(again, segments);
        // Out of order: no merge across the gap.
        let mut reordered = segments.clone();
        reordered.swap(1, 2);
        assert_eq!(coalesce(&reordered).len(), 4);
    }

    proptest::proptest! {
        #[test]
        fn coalescing_never_loses_or_reorders_bytes(
            sizes in proptest::collection::vec(0usize..3, 0..20)
        ) {
            let payload: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
            let mut segments = Vec::new();
            split_read(&super_packet(&payload, 1000, 0), &mut segments).unwrap();
            let picked: Vec<Vec<u8>> = sizes.iter().map(|s| segments[*s * 3].clone()).collect();
            let mut back = Vec::new();
            for w in coalesce(&picked) {
                split_read(&w, &mut back).unwrap();
            }
            proptest::prop_assert_eq!(back, picked);
        }

        #[test]
        fn any_read_is_split_or_refused_without_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)
        ) {
            let mut out = Vec::new();
            let _ = split_read(&bytes, &mut out);
        }
    }
}
