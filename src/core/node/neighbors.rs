//! Neighbour lists exchanged with peers: which keys each peer is linked to.
//!
//! Tree distance over-estimates the real distance, so greedy routing alone often takes a detour for a
//! destination two hops away. Knowing each peer's peers lets the last two hops always be direct. Lists are
//! versioned, acknowledged and retransmitted like bloom filters.

use std::collections::HashMap;
use std::time::Duration;

use crate::core::identity::PublicKey;
use crate::core::time::Instant;
use crate::core::wire::ack::VersionAck;
use crate::core::wire::inner::Message;
use crate::core::wire::neighbors::{MAX_NEIGHBORS, Neighbors};

/// A version jump larger than this (one second of the sender's start clock, or a million list changes)
/// means the sender restarted.
const RESTART_JUMP: u64 = 1_000_000;

struct Sent {
    version: u64,
    at: Instant,
    acked: bool,
}

/// Our list, what we sent of it, and each peer's list.
pub(super) struct NeighborLists {
    version: u64,
    own: Vec<PublicKey>,
    received: HashMap<PublicKey, (u64, Vec<PublicKey>)>,
    sent: HashMap<PublicKey, Sent>,
}

impl NeighborLists {
    /// Starts empty; versions start at `version_base` so a restarted node's lists are newer.
    pub(super) fn new(version_base: u64) -> Self {
        Self {
            version: version_base,
            own: Vec::new(),
            received: HashMap::new(),
            sent: HashMap::new(),
        }
    }

    /// Stores a peer's list (if newer) and returns the acknowledgement to send, and whether the peer
    /// restarted since its previous list.
    ///
    /// Versions start at the sender's wall clock in microseconds and grow by one per change, so a
    /// version more than [`RESTART_JUMP`] ahead of the last one comes from a new incarnation of the
    /// peer: one that restarted at the same address, which its link cannot tell from a rekey.
    pub(super) fn handle(&mut self, from: PublicKey, list: Neighbors) -> (VersionAck, bool) {
        let ack = VersionAck {
            version: list.version,
        };
        let previous = self.received.get(&from).map(|(v, _)| *v);
        let restarted = previous.is_some_and(|v| list.version > v.saturating_add(RESTART_JUMP));
        if previous.is_none_or(|v| v < list.version) {
            self.received.insert(from, (list.version, list.keys));
        }
        (ack, restarted)
    }

    /// Forgets what was sent to `peer`, so that the next update sends it our list again.
    pub(super) fn forget_sent(&mut self, peer: &PublicKey) {
        self.sent.remove(peer);
    }

    /// Records an acknowledgement.
    pub(super) fn handle_ack(&mut self, from: &PublicKey, ack: VersionAck) {
        if let Some(s) = self.sent.get_mut(from)
            && s.version == ack.version
        {
            s.acked = true;
        }
    }

    /// Returns a current peer that says it is linked to `dest`.
    pub(super) fn via<'a>(
        &self,
        dest: &PublicKey,
        peers: impl IntoIterator<Item = &'a PublicKey>,
    ) -> Option<PublicKey> {
        peers.into_iter().copied().find(|p| {
            self.received
                .get(p)
                .is_some_and(|(_, keys)| keys.contains(dest))
        })
    }

    /// Brings our list up to date with `peers` (sorted) and returns what to (re)send.
    pub(super) fn update(
        &mut self,
        now: Instant,
        peers: &[PublicKey],
        rto: impl Fn(&PublicKey) -> Duration,
    ) -> Vec<(PublicKey, Message<'static>)> {
        self.received.retain(|k, _| peers.contains(k));
        self.sent.retain(|k, _| peers.contains(k));
        let listed = &peers[..peers.len().min(MAX_NEIGHBORS)];
        if self.own != listed {
            self.own = listed.to_vec();
            self.version += 1;
        }
        let mut out = Vec::new();
        for peer in peers {
            let due = match self.sent.get(peer) {
                Some(s) if s.version == self.version => {
                    !s.acked && now.saturating_since(s.at) >= rto(peer)
                }
                _ => true,
            };
            if due {
                self.sent.insert(
                    *peer,
                    Sent {
                        version: self.version,
                        at: now,
                        acked: false,
                    },
                );
                let list = Neighbors {
                    version: self.version,
                    keys: self.own.clone(),
                };
                out.push((*peer, Message::Neighbors(list)));
            }
        }
        out
    }

    /// Returns when a retransmission is next due.
    pub(super) fn next_retransmit(&self, rto: impl Fn(&PublicKey) -> Duration) -> Option<Instant> {
        self.sent
            .iter()
            .filter(|(_, s)| !s.acked)
            .map(|(k, s)| s.at + rto(k))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey::from_bytes([n; 32])
    }

    #[test]
    fn lists_are_sent_on_change_and_answer_two_hop_questions() {
        let rto = |_: &PublicKey| Duration::from_millis(100);
        let mut n = NeighborLists::new(5);
        let out = n.update(Instant::ZERO, &[key(1), key(2)], rto);
        assert_eq!(out.len(), 2);
        assert!(n.update(Instant::ZERO, &[key(1), key(2)], rto).is_empty());
        let (ack, restarted) = n.handle(
            key(1),
            Neighbors {
                version: 1,
                keys: vec![key(9)],
            },
        );
        n.handle_ack(&key(1), VersionAck { version: 6 });
        assert_eq!((ack.version, restarted), (1, false));
        // The next change is no restart; a list from a later start of the peer is.
        let list = |version| Neighbors {
            version,
            keys: vec![key(9)],
        };
        assert!(!n.handle(key(1), list(2)).1);
        assert!(n.handle(key(1), list(2 + 5_000_000)).1);
        assert_eq!(n.via(&key(9), &[key(1), key(2)]), Some(key(1)));
        assert_eq!(n.via(&key(9), &[key(2)]), None);
        // Peer 2 never acknowledged: resent after the RTO.
        let out = n.update(
            Instant::ZERO + Duration::from_millis(100),
            &[key(1), key(2)],
            rto,
        );
        assert_eq!(
            out.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            vec![key(2)]
        );
    }
}
