//! What the tree keeps per peer: the port we gave it, its parent signature for us, and which
//! announcements it has acknowledged.

// foldhash (randomly seeded) rather than SipHash: the map is read after every event to find the next
// retransmission, and only a minimum is taken from it, so its order never shows.
use foldhash::HashMap;
use std::time::Duration;

use super::coords::Coords;
use crate::core::identity::PublicKey;
use crate::core::rate::TokenBucket;
use crate::core::room::release_peak;
use crate::core::time::{Instant, earliest};
use crate::core::wire::tree::{SigReq, SigRes};

/// New announcements (two signature checks each) verified per peer per second, with bursts of
/// [`ANNOUNCE_VERIFY_BURST`]: a peer's ancestry is its depth in announcements (tens), and a root change
/// makes each of them new once, so honest peers stay far below it; a peer that invents announcements
/// for throwaway keys costs at most this, and what it makes us store is dropped after 30 s unused.
pub(super) const ANNOUNCE_VERIFY_RATE: f64 = 50.0;
/// See [`ANNOUNCE_VERIFY_RATE`].
pub(super) const ANNOUNCE_VERIFY_BURST: f64 = 200.0;
/// Parent signatures made per peer per second, with bursts of [`SIG_REQ_BURST`]: a peer asks once per
/// announcement it publishes (at most one per 20 ms coalescing window, in practice a few a minute).
pub(super) const SIG_REQ_RATE: f64 = 4.0;
/// See [`SIG_REQ_RATE`].
pub(super) const SIG_REQ_BURST: f64 = 8.0;

/// An announcement sent to a peer and not yet superseded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sent {
    pub(super) seq: u64,
    /// The parent named by that version (a change of parent calls for the chain above it again).
    pub(super) parent: PublicKey,
    pub(super) at: Instant,
    pub(super) acked: bool,
}

/// Announcements sent to one peer, by node, with a count of those not yet acknowledged: the next
/// retransmission is asked for after every event, and with everything acknowledged (a settled tree)
/// the answer is known without looking at each of the tens of entries.
#[derive(Debug, Default)]
pub(super) struct SentLog {
    by_node: HashMap<PublicKey, Sent>,
    unacked: usize,
}

impl SentLog {
    pub(super) fn get(&self, key: &PublicKey) -> Option<&Sent> {
        self.by_node.get(key)
    }

    pub(super) fn insert(&mut self, key: PublicKey, sent: Sent) {
        let was_unacked = self.by_node.insert(key, sent).is_some_and(|s| !s.acked);
        self.unacked = self.unacked + usize::from(!sent.acked) - usize::from(was_unacked);
    }

    pub(super) fn remove(&mut self, key: &PublicKey) {
        if self.by_node.remove(key).is_some_and(|s| !s.acked) {
            self.unacked -= 1;
        }
    }

    pub(super) fn clear(&mut self) {
        self.by_node.clear();
        self.unacked = 0;
    }

    /// Keeps the entries `keep` approves of.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&PublicKey, &Sent) -> bool) {
        let unacked = &mut self.unacked;
        self.by_node.retain(|k, s| {
            let kept = keep(k, s);
            if !kept && !s.acked {
                *unacked -= 1;
            }
            kept
        });
    }

    /// Gives back the room the log kept from a peak (see [`room`](crate::core::room)).
    pub(super) fn release_peak(&mut self) {
        release_peak(&mut self.by_node);
    }

    /// Marks the announcement of `key` at `seq` acknowledged (an older or newer one stays as it is).
    fn ack(&mut self, key: &PublicKey, seq: u64) {
        if let Some(s) = self.by_node.get_mut(key)
            && s.seq == seq
            && !s.acked
        {
            s.acked = true;
            self.unacked -= 1;
        }
    }

    /// When the oldest unacknowledged announcement was sent.
    fn oldest_unacked(&self) -> Option<Instant> {
        if self.unacked == 0 {
            return None;
        }
        self.by_node
            .values()
            .filter(|s| !s.acked)
            .map(|s| s.at)
            .min()
    }
}

/// Tree state of one peer.
#[derive(Debug)]
pub(super) struct PeerTree {
    /// The port we assigned to this peer (its coordinate element if it becomes our child).
    pub(super) port: u64,
    /// Link cost: smoothed RTT in milliseconds, at least 1.
    pub(super) cost: u64,
    /// Retransmission timeout of the peer's link.
    pub(super) rto: Duration,
    /// When the peer came up; older peers win ties.
    pub(super) since: Instant,
    /// The peer's parent signature for our next announcement, if it answered our current request.
    pub(super) sig_res: Option<SigRes>,
    /// When our current request was last sent to this peer.
    pub(super) req_sent: Option<Instant>,
    /// Announcements sent to the peer, by node.
    pub(super) sent: SentLog,
    /// Announcements received from the peer and not yet acknowledged.
    pub(super) acks: Vec<(PublicKey, u64)>,
    /// Signature checks of new announcements this peer may make us do (two each).
    pub(super) verify_budget: TokenBucket,
    /// The peer's latest request for our parent signature, answered at the next settle.
    pub(super) sig_req: Option<SigReq>,
    /// Our last answer, sent again for free if the same request comes again (a retransmission).
    pub(super) sig_answered: Option<SigRes>,
    /// Parent signatures this peer may ask of us.
    pub(super) sign_budget: TokenBucket,
    /// The root and coordinates of the peer's last ancestry we saw attached to a root: where it
    /// still is for routing while it is detached (see `Tree::peer_coords`).
    pub(super) last_attached: Option<(PublicKey, Coords)>,
}

impl PeerTree {
    pub(super) fn new(port: u64, cost: u64, rto: Duration, now: Instant) -> Self {
        Self {
            port,
            cost,
            rto,
            since: now,
            sig_res: None,
            req_sent: None,
            sent: SentLog::default(),
            acks: Vec::new(),
            verify_budget: TokenBucket::new(ANNOUNCE_VERIFY_RATE, ANNOUNCE_VERIFY_BURST, now),
            sig_req: None,
            sig_answered: None,
            sign_budget: TokenBucket::new(SIG_REQ_RATE, SIG_REQ_BURST, now),
            last_attached: None,
        }
    }

    /// Returns true if the announcement of `key` at `seq` must be (re)sent now.
    pub(super) fn needs(&self, key: &PublicKey, seq: u64, now: Instant) -> bool {
        match self.sent.get(key) {
            None => true,
            Some(s) if s.seq < seq => true,
            Some(s) if s.seq == seq => !s.acked && s.at + self.rto <= now,
            Some(_) => false,
        }
    }

    /// Records an acknowledgement.
    pub(super) fn acked(&mut self, key: &PublicKey, seq: u64) {
        self.sent.ack(key, seq);
    }

    /// Returns when a retransmission to this peer is next due.
    pub(super) fn next_retransmit(&self, request_pending: bool) -> Option<Instant> {
        let unacked = self.sent.oldest_unacked().map(|at| at + self.rto);
        let request = if request_pending && self.sig_res.is_none() {
            self.req_sent.map(|t| t + self.rto)
        } else {
            None
        };
        earliest(unacked, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey::from_bytes([n; 32])
    }

    fn sent(seq: u64, at_ms: u64, acked: bool) -> Sent {
        Sent {
            seq,
            parent: key(0),
            at: Instant::ZERO + Duration::from_millis(at_ms),
            acked,
        }
    }

    #[test]
    fn the_oldest_unacknowledged_announcement_follows_every_change_of_the_log() {
        let mut log = SentLog::default();
        let at = |ms| Some(Instant::ZERO + Duration::from_millis(ms));
        log.insert(key(1), sent(1, 10, false));
        log.insert(key(2), sent(1, 20, false));
        log.insert(key(3), sent(1, 5, true));
        assert_eq!(log.oldest_unacked(), at(10));
        log.ack(&key(1), 2); // another version: stays unacknowledged
        assert_eq!(log.oldest_unacked(), at(10));
        log.ack(&key(1), 1);
        log.ack(&key(1), 1); // twice counts once
        assert_eq!(log.oldest_unacked(), at(20));
        log.insert(key(2), sent(2, 30, true)); // replaced by an acknowledged one
        assert_eq!(log.oldest_unacked(), None);
        log.insert(key(3), sent(2, 40, false));
        log.insert(key(4), sent(1, 50, false));
        log.retain(|k, _| *k != key(3));
        assert_eq!(log.oldest_unacked(), at(50));
        log.remove(&key(4));
        assert_eq!(log.oldest_unacked(), None);
        log.insert(key(5), sent(1, 60, false));
        log.clear();
        assert_eq!(log.oldest_unacked(), None);
        log.insert(key(5), sent(1, 70, false));
        assert_eq!(log.oldest_unacked(), at(70));
    }

    #[test]
    fn a_log_gives_back_its_room_when_a_burst_is_over_and_keeps_its_count() {
        let mut log = SentLog::default();
        for n in 0..=255 {
            log.insert(key(n), sent(1, 10, n % 2 == 0));
        }
        let peak = log.by_node.capacity();
        log.retain(|k, _| k.as_bytes()[0] < 10);
        log.release_peak();
        assert!(
            log.by_node.capacity() < peak / 8,
            "{} of {peak}",
            log.by_node.capacity()
        );
        assert_eq!(log.unacked, 5, "1, 3, 5, 7 and 9");
        assert_eq!(
            log.oldest_unacked(),
            Some(Instant::ZERO + Duration::from_millis(10))
        );
    }
}
