//! Neighbour lists exchanged with peers: which keys each peer is linked to.
//!
//! Tree distance over-estimates the real distance, so greedy routing alone often takes a detour for a
//! destination two hops away. Knowing each peer's peers lets the last two hops always be direct. Lists are
//! versioned, acknowledged and retransmitted like subtree sets.
//!
//! A list attracts traffic, so nothing in it is taken on the sender's word: every entry carries the
//! listed node's signature that it is linked to the sender (`wire::neighbors`), and only entries whose
//! signature verifies are used. A peer can name only nodes that really linked with it. Verification
//! is bounded per peer ([`VERIFY_RATE`]), and entries verified once are not verified again.

use std::collections::HashMap;
use std::time::Duration;

use crate::core::identity::{NodeKey, PublicKey, SIGNATURE_LEN};
use crate::core::rate::TokenBucket;
use crate::core::time::Instant;
use crate::core::wire::ack::VersionAck;
use crate::core::wire::inner::Message;
use crate::core::wire::neighbors::{MAX_NEIGHBORS, Neighbors, attest, check_attestation};

/// A version jump larger than this (one second of the sender's start clock, or a million list changes)
/// means the sender restarted.
const RESTART_JUMP: u64 = 1_000_000;
/// Signatures of a peer's lists we check per second, with bursts of [`VERIFY_BURST`]: two full lists
/// at once, then one a second. A list over budget is not acknowledged, so the peer sends it again.
pub(super) const VERIFY_RATE: f64 = 65.0;
/// See [`VERIFY_RATE`].
pub(super) const VERIFY_BURST: f64 = 130.0;

type Proof = [u8; SIGNATURE_LEN];

struct Sent {
    version: u64,
    at: Instant,
    acked: bool,
}

/// A peer's latest list, as far as it verified.
struct Received {
    version: u64,
    /// Entries whose attestation verified.
    verified: Vec<(PublicKey, Proof)>,
}

/// What [`NeighborLists::handle`] made of a list.
pub(super) struct Handled {
    /// The acknowledgement to send (`None`: over the verification budget, let the peer resend).
    pub(super) ack: Option<VersionAck>,
    /// The peer restarted since its previous list.
    pub(super) restarted: bool,
    /// The peer's proof that it is linked to us is new: our own list may now name it.
    pub(super) new_proof: bool,
}

/// Our list, what we sent of it, and each peer's list.
pub(super) struct NeighborLists {
    version: u64,
    own: Vec<(PublicKey, Proof)>,
    /// Each peer's signature that it is linked to us: the proofs our own list carries.
    proofs: HashMap<PublicKey, Proof>,
    /// Our signature that we are linked to each peer (made once per peer).
    signed_for: HashMap<PublicKey, Proof>,
    received: HashMap<PublicKey, Received>,
    sent: HashMap<PublicKey, Sent>,
    budgets: HashMap<PublicKey, TokenBucket>,
}

impl NeighborLists {
    /// Starts empty; versions start at `version_base` so a restarted node's lists are newer.
    pub(super) fn new(version_base: u64) -> Self {
        Self {
            version: version_base,
            own: Vec::new(),
            proofs: HashMap::new(),
            signed_for: HashMap::new(),
            received: HashMap::new(),
            sent: HashMap::new(),
            budgets: HashMap::new(),
        }
    }

    /// Takes a peer's list (if newer): keeps the entries whose proofs verify and the peer's proof that
    /// it is linked to `me`.
    ///
    /// Versions start at the sender's wall clock in microseconds and grow by one per change, so a
    /// version more than [`RESTART_JUMP`] ahead of the last one comes from a new incarnation of the
    /// peer: one that restarted at the same address, which its link cannot tell from a rekey.
    pub(super) fn handle(
        &mut self,
        now: Instant,
        me: &PublicKey,
        from: PublicKey,
        list: Neighbors,
    ) -> Handled {
        let ack = VersionAck {
            version: list.version,
        };
        let previous = self.received.get(&from);
        let restarted =
            previous.is_some_and(|r| list.version > r.version.saturating_add(RESTART_JUMP));
        if previous.is_some_and(|r| r.version >= list.version) {
            return Handled {
                ack: Some(ack),
                restarted,
                new_proof: false,
            };
        }
        let known =
            |entry: &(PublicKey, Proof)| previous.is_some_and(|r| r.verified.contains(entry));
        let new_proof = self.proofs.get(&from) != Some(&list.attestation);
        let checks = list.entries.iter().filter(|e| !known(e)).count() + usize::from(new_proof);
        let budget = self
            .budgets
            .entry(from)
            .or_insert_with(|| TokenBucket::new(VERIFY_RATE, VERIFY_BURST, now));
        if !budget.take_many(now, checks as u32) {
            return Handled {
                ack: None,
                restarted: false,
                new_proof: false,
            };
        }
        let verified: Vec<(PublicKey, Proof)> = list
            .entries
            .into_iter()
            .filter(|e| known(e) || check_attestation(&e.0, &from, &e.1))
            .collect();
        let new_proof = new_proof && check_attestation(&from, me, &list.attestation);
        if new_proof {
            self.proofs.insert(from, list.attestation);
        }
        self.received.insert(
            from,
            Received {
                version: list.version,
                verified,
            },
        );
        Handled {
            ack: Some(ack),
            restarted,
            new_proof,
        }
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

    /// Returns a current peer that proved it is linked to `dest`.
    pub(super) fn via<'a>(
        &self,
        dest: &PublicKey,
        peers: impl IntoIterator<Item = &'a PublicKey>,
    ) -> Option<PublicKey> {
        peers.into_iter().copied().find(|p| {
            self.received
                .get(p)
                .is_some_and(|r| r.verified.iter().any(|(k, _)| k == dest))
        })
    }

    /// Brings our list up to date with `peers` (sorted): the ones that proved they are linked to us.
    /// Returns what to (re)send.
    pub(super) fn update(
        &mut self,
        now: Instant,
        node: &NodeKey,
        peers: &[PublicKey],
        rto: impl Fn(&PublicKey) -> Duration,
    ) -> Vec<(PublicKey, Message<'static>)> {
        self.received.retain(|k, _| peers.contains(k));
        self.sent.retain(|k, _| peers.contains(k));
        self.proofs.retain(|k, _| peers.contains(k));
        self.signed_for.retain(|k, _| peers.contains(k));
        self.budgets.retain(|k, _| peers.contains(k));
        let listed: Vec<(PublicKey, Proof)> = peers
            .iter()
            .filter_map(|p| Some((*p, *self.proofs.get(p)?)))
            .take(MAX_NEIGHBORS)
            .collect();
        if self.own != listed {
            self.own = listed;
            self.version += 1;
        }
        let mut out = Vec::new();
        for peer in peers {
            let due = match self.sent.get(peer) {
                Some(s) if s.version == self.version => !s.acked && s.at + rto(peer) <= now,
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
                let attestation = *self
                    .signed_for
                    .entry(*peer)
                    .or_insert_with(|| attest(node, peer));
                let list = Neighbors {
                    version: self.version,
                    attestation,
                    entries: self.own.clone(),
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
mod tests;
