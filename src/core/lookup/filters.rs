//! Bloom filter exchange along tree edges: which subtree may hold which key.
//!
//! Each node tells each tree peer (parent and children) which partial keys are reachable through it: its
//! own, plus everything its other tree peers told it. A lookup then travels only into subtrees whose
//! filter matches. Filters are versioned, acknowledged and retransmitted, like announcements.

use std::collections::BTreeMap;
use std::time::Duration;

use super::bloom::Filter;
use crate::core::identity::PublicKey;
use crate::core::time::{Instant, earliest};
use crate::core::wire::ack::VersionAck;
use crate::core::wire::inner::Message;
use crate::core::wire::lookup::Bloom;

struct Sent {
    filter: Filter,
    version: u64,
    at: Instant,
    acked: bool,
}

/// Filter state for all tree peers.
pub struct Filters {
    own: Filter,
    received: BTreeMap<PublicKey, (u64, Filter)>,
    sent: BTreeMap<PublicKey, Sent>,
    next_version: u64,
}

impl Filters {
    /// Starts with only our own canonical partial key; versions start at `version_base` so that a
    /// restarted node's filters are newer than its old ones.
    pub fn new(own_target: &[u8; 32], version_base: u64) -> Self {
        let mut own = Filter::default();
        own.insert(own_target);
        Self {
            own,
            received: BTreeMap::new(),
            sent: BTreeMap::new(),
            next_version: version_base,
        }
    }

    /// Stores a peer's filter (if newer) and returns the acknowledgement to send. It is kept even if we
    /// do not (yet) see the peer as a tree peer: our view of the tree may lag the sender's, and an
    /// acknowledged filter is not sent again.
    pub fn handle_bloom(&mut self, from: PublicKey, bloom: &Bloom) -> VersionAck {
        if self
            .received
            .get(&from)
            .is_none_or(|(v, _)| *v < bloom.version)
        {
            self.received
                .insert(from, (bloom.version, Filter(bloom.words)));
        }
        VersionAck {
            version: bloom.version,
        }
    }

    /// Records an acknowledgement.
    pub fn handle_ack(&mut self, from: &PublicKey, ack: VersionAck) {
        if let Some(s) = self.sent.get_mut(from)
            && s.version == ack.version
        {
            s.acked = true;
        }
    }

    /// Forgets what was sent to `peer`, so that the next update sends it a filter again.
    pub fn forget_sent(&mut self, peer: &PublicKey) {
        self.sent.remove(peer);
    }

    /// Returns true if `peer`'s subtree may hold `target`.
    pub fn matches(&self, peer: &PublicKey, target: &[u8; 32]) -> bool {
        self.received
            .get(peer)
            .is_some_and(|(_, f)| f.contains(target))
    }

    /// Brings the exchange up to date with the current peers and tree peers; returns the messages to
    /// send. `rto` gives each peer's retransmission timeout.
    pub fn update(
        &mut self,
        now: Instant,
        peers: &[PublicKey],
        tree_peers: &[PublicKey],
        rto: impl Fn(&PublicKey) -> Duration,
    ) -> Vec<(PublicKey, Message<'static>)> {
        self.received.retain(|k, _| peers.contains(k));
        self.sent.retain(|k, _| tree_peers.contains(k));
        let mut out = Vec::new();
        for peer in tree_peers {
            let mut filter = self.own;
            for (other, (_, f)) in &self.received {
                if other != peer && tree_peers.contains(other) {
                    filter.union(f);
                }
            }
            let resend = match self.sent.get(peer) {
                Some(s) if s.filter == filter => !s.acked && s.at + rto(peer) <= now,
                _ => {
                    self.next_version += 1;
                    true
                }
            };
            if resend {
                let version = match self.sent.get(peer) {
                    Some(s) if s.filter == filter => s.version,
                    _ => self.next_version,
                };
                self.sent.insert(
                    *peer,
                    Sent {
                        filter,
                        version,
                        at: now,
                        acked: false,
                    },
                );
                out.push((
                    *peer,
                    Message::Bloom(Box::new(Bloom {
                        version,
                        words: filter.0,
                    })),
                ));
            }
        }
        out
    }

    /// Returns when a retransmission is next due.
    pub fn next_retransmit(&self, rto: impl Fn(&PublicKey) -> Duration) -> Option<Instant> {
        self.sent
            .iter()
            .filter(|(_, s)| !s.acked)
            .map(|(k, s)| s.at + rto(k))
            .fold(None, |a, t| earliest(a, Some(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey::from_bytes([n; 32])
    }

    #[test]
    fn filters_flow_to_other_tree_peers_and_are_retransmitted_until_acked() {
        let rto = |_: &PublicKey| Duration::from_millis(100);
        let mut f = Filters::new(&[1; 32], 10);
        let t0 = Instant::ZERO;
        let peers = [key(2), key(3)];
        let out = f.update(t0, &peers, &[key(2), key(3)], rto);
        assert_eq!(out.len(), 2);
        // Peer 2 tells us about key [9; 32]; peer 3 must hear of it, peer 2 need not.
        let mut theirs = Filter::default();
        theirs.insert(&[9; 32]);
        f.handle_bloom(
            key(2),
            &Bloom {
                version: 1,
                words: theirs.0,
            },
        );
        assert!(f.matches(&key(2), &[9; 32]));
        let out = f.update(t0, &peers, &[key(2), key(3)], rto);
        assert_eq!(out.len(), 1);
        let (to, Message::Bloom(b)) = &out[0] else {
            panic!()
        };
        assert_eq!(*to, key(3));
        assert!(Filter(b.words).contains(&[9; 32]));
        f.handle_ack(&key(3), VersionAck { version: b.version });
        // Peer 2's first filter is unacknowledged: resent after the RTO, with the same version.
        assert!(
            f.update(
                t0 + Duration::from_millis(50),
                &peers,
                &[key(2), key(3)],
                rto
            )
            .is_empty()
        );
        let out = f.update(
            t0 + Duration::from_millis(100),
            &peers,
            &[key(2), key(3)],
            rto,
        );
        assert_eq!(
            out.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            vec![key(2)]
        );
        // A peer that is gone is forgotten.
        f.update(t0, &[key(3)], &[key(3)], rto);
        assert!(!f.matches(&key(2), &[9; 32]));
    }
}
