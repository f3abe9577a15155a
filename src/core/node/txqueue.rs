//! Datagrams waiting for the driver, bounded in bytes per link, dropping from the largest flow first.
//!
//! When the driver cannot send as fast as the node produces (a slow radio link, a full socket buffer),
//! datagrams wait here. Each link may hold at most [`LINK_LIMIT`] bytes; beyond that the oldest datagram
//! of the flow holding the most bytes on that link is dropped, so one bulk transfer cannot starve a
//! small interactive flow (ironwood drops from the largest source in the largest destination too).

use std::collections::VecDeque;

// Every datagram is counted in and out of both maps, several hash lookups per datagram: a fast hasher
// (randomly seeded; entries are bounded by what is queued, so collisions cannot be made to pile up)
// instead of SipHash, which was 3-5 % of a relay's CPU.
use foldhash::HashMap;

use super::links::LinkId;

/// Bytes queued per link at most (Yggdrasil 0.5.14 caps its per-peer queue at 1 MB too).
pub(super) const LINK_LIMIT: usize = 1 << 20;
/// Flow of control frames (tree, lookups, keepalives): dropped only if nothing else is queued.
pub(super) const CONTROL_FLOW: u64 = 0;

/// The queue.
#[derive(Default)]
pub(super) struct TxQueue {
    entries: VecDeque<(LinkId, u64, Vec<u8>)>,
    link_bytes: HashMap<LinkId, usize>,
    flow_bytes: HashMap<(LinkId, u64), usize>,
    /// Datagrams dropped for lack of room.
    pub(super) dropped: u64,
}

impl TxQueue {
    /// Queues a datagram of `flow` for `link`, making room if needed.
    pub(super) fn push(&mut self, link: LinkId, flow: u64, datagram: Vec<u8>) {
        let len = datagram.len();
        while self.link_bytes.get(&link).copied().unwrap_or(0) + len > LINK_LIMIT {
            if !self.drop_from_largest_flow(link) {
                break;
            }
        }
        *self.link_bytes.entry(link).or_default() += len;
        *self.flow_bytes.entry((link, flow)).or_default() += len;
        self.entries.push_back((link, flow, datagram));
    }

    fn drop_from_largest_flow(&mut self, link: LinkId) -> bool {
        let victim = self
            .flow_bytes
            .iter()
            .filter(|((l, _), _)| *l == link)
            .max_by_key(|((_, flow), bytes)| (*flow != CONTROL_FLOW, **bytes))
            .map(|((_, flow), _)| *flow);
        let Some(flow) = victim else { return false };
        let Some(position) = self
            .entries
            .iter()
            .position(|(l, f, _)| *l == link && *f == flow)
        else {
            return false;
        };
        if let Some((l, f, d)) = self.entries.remove(position) {
            self.account_removal(l, f, d.len());
            self.dropped += 1;
        }
        true
    }

    fn account_removal(&mut self, link: LinkId, flow: u64, len: usize) {
        if let Some(b) = self.link_bytes.get_mut(&link) {
            *b -= len;
            if *b == 0 {
                self.link_bytes.remove(&link);
            }
        }
        if let Some(b) = self.flow_bytes.get_mut(&(link, flow)) {
            *b -= len;
            if *b == 0 {
                self.flow_bytes.remove(&(link, flow));
            }
        }
    }

    /// Takes the oldest datagram.
    pub(super) fn pop(&mut self) -> Option<(LinkId, Vec<u8>)> {
        let (link, flow, datagram) = self.entries.pop_front()?;
        self.account_removal(link, flow, datagram.len());
        Some((link, datagram))
    }

    /// Drops everything queued for a link that is gone.
    pub(super) fn forget_link(&mut self, link: LinkId) {
        self.entries.retain(|(l, _, _)| *l != link);
        self.link_bytes.remove(&link);
        self.flow_bytes.retain(|(l, _), _| *l != link);
    }
}

/// Names the flow of a routed packet by its two ends.
pub(super) fn flow_of(
    src: &crate::core::identity::PublicKey,
    dst: &crate::core::identity::PublicKey,
) -> u64 {
    let (a, b) = (src.as_bytes(), dst.as_bytes());
    let mut id = [0u8; 8];
    for i in 0..8 {
        id[i] = a[i] ^ b[i].rotate_left(3);
    }
    u64::from_le_bytes(id) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_the_largest_flow_pays() {
        let mut q = TxQueue::default();
        let link = LinkId(1);
        for _ in 0..2000 {
            q.push(link, 7, vec![0; 1000]);
        }
        for _ in 0..10 {
            q.push(link, 9, vec![1; 1000]);
        }
        q.push(link, CONTROL_FLOW, vec![2; 100]);
        assert!(q.link_bytes[&link] <= LINK_LIMIT);
        assert_eq!(
            q.flow_bytes[&(link, 9)],
            10_000,
            "the small flow lost nothing"
        );
        assert_eq!(q.flow_bytes[&(link, CONTROL_FLOW)], 100);
        assert!(q.dropped as usize >= 2000 + 10 - LINK_LIMIT / 1000);
        let other = LinkId(2);
        q.push(other, 7, vec![0; 10]);
        assert_eq!(q.link_bytes[&other], 10, "limits are per link");
        while q.pop().is_some() {}
        assert!(q.link_bytes.is_empty() && q.flow_bytes.is_empty());
    }
}
