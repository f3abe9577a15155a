//! Which TCP flows may send super-packets whole: those whose path has not lost anything lately.
//!
//! A super-packet travels as one session message in many link fragments, and losing any fragment loses
//! all of it ([`super::passthrough`]). On a clean path that costs nothing and saves most of the CPU; on
//! a lossy one it multiplies the loss TCP sees by the number of fragments. The host's TCP tells us
//! which case we are in: it retransmits what was lost, and a retransmission is a segment that starts
//! before the end of data the flow already sent. After one, the flow's super-packets are cut into
//! segments for [`HOLD`]; every further retransmission extends that.

use std::collections::HashMap;
use std::time::Duration;

use crate::core::time::Instant;

/// How long a flow is segmented after its last retransmission.
pub const HOLD: Duration = Duration::from_secs(10);
/// Flows tracked at most; beyond it idle ones are forgotten (a forgotten flow starts out clean).
const MAX_FLOWS: usize = 4096;
/// A flow not seen for this long may be forgotten.
const IDLE: Duration = Duration::from_secs(60);
const IPV6_HEADER: usize = 40;

/// Source and destination address and port.
type FlowKey = [u8; 36];

struct Flow {
    /// Sequence number just after the data seen so far.
    next_seq: u32,
    /// Segment this flow's super-packets until then.
    segment_until: Option<Instant>,
    last_seen: Instant,
}

/// Per-flow memory of retransmissions.
#[derive(Default)]
pub struct Flows {
    flows: HashMap<FlowKey, Flow>,
}

/// The flow key, sequence number and payload length of a TCP/IPv6 packet without extension headers.
fn tcp_fields(packet: &[u8]) -> Option<(FlowKey, u32, u32)> {
    if packet.len() < IPV6_HEADER + 20 || packet[0] >> 4 != 6 || packet[6] != 6 {
        return None;
    }
    let tcp = &packet[IPV6_HEADER..];
    let header = usize::from(tcp[12] >> 4) * 4;
    let payload = tcp.len().checked_sub(header).filter(|_| header >= 20)?;
    let mut key = [0u8; 36];
    key[..32].copy_from_slice(&packet[8..40]);
    key[32..].copy_from_slice(&tcp[..4]);
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    Some((key, seq, u32::try_from(payload).ok()?))
}

impl Flows {
    /// Notes a packet or super-packet the host sent. Returns true if it may travel whole: it is TCP and
    /// its flow has not retransmitted within [`HOLD`]. Anything else returns false.
    pub fn observe(&mut self, now: Instant, packet: &[u8]) -> bool {
        let Some((key, seq, len)) = tcp_fields(packet) else {
            return false;
        };
        if len == 0 {
            return false;
        }
        if self.flows.len() >= MAX_FLOWS && !self.flows.contains_key(&key) {
            self.flows
                .retain(|_, f| now.saturating_since(f.last_seen) < IDLE);
            if self.flows.len() >= MAX_FLOWS {
                self.flows.clear();
            }
        }
        let end = seq.wrapping_add(len);
        let flow = self.flows.entry(key).or_insert(Flow {
            next_seq: seq,
            segment_until: None,
            last_seen: now,
        });
        flow.last_seen = now;
        // Serial-number arithmetic (RFC 1982): "before" within half the sequence space.
        if (flow.next_seq.wrapping_sub(seq) as i32) > 0 {
            flow.segment_until = Some(now + HOLD);
        }
        if (end.wrapping_sub(flow.next_seq) as i32) > 0 {
            flow.next_seq = end;
        }
        flow.segment_until.is_none_or(|until| now >= until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(port: u16, seq: u32, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; 60 + len];
        p[0] = 0x60;
        p[6] = 6;
        p[40..42].copy_from_slice(&port.to_be_bytes());
        p[44..48].copy_from_slice(&seq.to_be_bytes());
        p[52] = 5 << 4;
        p
    }

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    #[test]
    fn a_retransmission_segments_its_flow_for_a_while() {
        let mut f = Flows::default();
        assert!(f.observe(at(0), &segment(1, 1000, 5000)));
        assert!(f.observe(at(1), &segment(1, 6000, 5000)));
        // Data from before 11000 again: lost on the way.
        assert!(!f.observe(at(2), &segment(1, 6000, 1000)));
        assert!(!f.observe(at(3), &segment(1, 11_000, 5000)), "held");
        // Another flow is not affected.
        assert!(f.observe(at(3), &segment(2, 0, 5000)));
        // After the hold, whole again.
        assert!(f.observe(at(2) + HOLD, &segment(1, 16_000, 5000)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut f = Flows::default();
        assert!(f.observe(at(0), &segment(1, u32::MAX - 100, 1000)));
        assert!(f.observe(at(1), &segment(1, 899, 1000)));
        assert!(!f.observe(at(2), &segment(1, u32::MAX - 100, 1000)));
    }

    #[test]
    fn pure_acks_and_non_tcp_never_travel_whole() {
        let mut f = Flows::default();
        assert!(!f.observe(at(0), &segment(1, 5, 0)));
        let mut udp = segment(1, 5, 100);
        udp[6] = 17;
        assert!(!f.observe(at(0), &udp));
        assert!(!f.observe(at(0), &[0x60; 10]));
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut f = Flows::default();
        for port in 0..(MAX_FLOWS as u16 + 10) {
            f.observe(at(0), &segment(port, 0, 100));
        }
        assert!(f.flows.len() <= MAX_FLOWS);
    }
}
