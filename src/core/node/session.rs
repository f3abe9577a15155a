//! The node's side of end-to-end sessions: sealing local packets and service messages for their
//! destination, and checking that a decrypted packet really is from the sender (opening what arrives
//! is in `receive`).

use super::Node;
use std::net::Ipv6Addr;

use std::time::Duration;

use crate::core::address::SUBNET_PREFIX;
use crate::core::identity::PublicKey;
use crate::core::time::{Instant, earliest};
use crate::core::tree::Coords;
use crate::core::wire::inner::Message;
use crate::core::wire::payload::Moved;
use crate::core::wire::traffic::KIND_SESSION;

/// After our coordinates change, the peers that sent us something in a session this recently are
/// told where we are now ([`Moved`]): they may be sending to us, and a lookup of a node that just
/// moved can fail for many seconds while its key climbs to the ancestors it moved under.
pub(super) const MOVED_NOTICE_WITHIN: Duration = Duration::from_secs(60);
/// Peers told per change at most (the most recently heard first).
pub(super) const MOVED_NOTICE_MAX: usize = 64;
/// Rounds of notices at most this often: a node that has lost its parent may move twice in a
/// second, and the last place is the one to tell.
pub(super) const MOVED_NOTICE_INTERVAL: Duration = Duration::from_secs(1);
/// A round is told once more this long after it went, if we have not moved since: right after a
/// move the tree around us is still re-forming, and a notice routed through it may get stuck.
pub(super) const MOVED_NOTICE_REPEAT: Duration = Duration::from_secs(2);

/// Returns true if `packet` is an IPv6 packet from the node with address `src` (or a host in its
/// /64) to the node with address `dst` (or its /64): a session proves who sent the bytes, this proves
/// the bytes do not claim to be from someone else. Takes node addresses, not keys, because deriving
/// an address walks the key bit by bit: callers derive once per frame, not twice per packet.
pub(super) fn addresses_match(src: &Ipv6Addr, dst: &Ipv6Addr, packet: &[u8]) -> bool {
    if packet.len() < 40 || packet[0] >> 4 != 6 {
        return false;
    }
    // A node's /64 is its address's bytes 1..8 under the 0x03 prefix (see `core::address`).
    let belongs = |node: &Ipv6Addr, claimed: &[u8]| {
        let node = node.octets();
        claimed == node || (claimed[0] == SUBNET_PREFIX && claimed[1..8] == node[1..8])
    };
    belongs(src, &packet[8..24]) && belongs(dst, &packet[24..40])
}

/// When to tell our session peers that we moved: the coordinates last told, when the next round is
/// due (our coordinates differ from those told), when the last one went, and when it is repeated.
#[derive(Default)]
pub(super) struct MoveNotices {
    told: Coords,
    due: Option<Instant>,
    last: Option<Instant>,
    repeat: Option<Instant>,
}

impl MoveNotices {
    /// The coordinates to tell now, if a round is due: they differ from those told, we have a root,
    /// and the last round was at least [`MOVED_NOTICE_INTERVAL`] ago.
    pub(super) fn poll(&mut self, now: Instant, coords: &Coords, attached: bool) -> Option<Coords> {
        if !attached {
            // Without a root nothing is told; a move once we have one is a new round.
            self.due = None;
            self.repeat = None;
            return None;
        }
        if *coords == self.told {
            self.due = None;
            if self.repeat.is_some_and(|at| now >= at) {
                self.repeat = None;
                return Some(coords.clone());
            }
            return None;
        }
        let last = self.last;
        let due = *self
            .due
            .get_or_insert_with(|| last.map_or(now, |l| (l + MOVED_NOTICE_INTERVAL).max(now)));
        if due > now {
            return None;
        }
        self.told = coords.clone();
        self.due = None;
        self.last = Some(now);
        self.repeat = Some(now + MOVED_NOTICE_REPEAT);
        Some(coords.clone())
    }

    /// When a round is next due, if one waits.
    pub(super) fn next_due(&self) -> Option<Instant> {
        earliest(self.due, self.repeat)
    }
}

impl Node {
    /// Seals `frame` (encoded messages, as consecutive parts) in the session with `dest` and routes it
    /// to `coords`.
    pub(super) fn send_in_session(
        &mut self,
        now: Instant,
        dest: PublicKey,
        coords: Vec<u64>,
        frame: &[&[u8]],
    ) {
        for payload in self
            .sessions
            .send(now, dest, frame, &self.key, &mut self.rng)
        {
            self.send_routed(now, dest, coords.clone(), KIND_SESSION, &payload);
            self.sessions.recycle(&dest, payload);
        }
    }

    /// Tells our session peers our new coordinates once they changed (while attached to a root),
    /// at most once per [`MOVED_NOTICE_INTERVAL`].
    pub(super) fn tell_moved(&mut self, now: Instant) {
        let attached = self.tree.root().is_some();
        let Some(coords) = self.move_notices.poll(now, self.tree.coords(), attached) else {
            return;
        };
        let since = now - MOVED_NOTICE_WITHIN;
        let mut frame = Vec::new();
        Message::Moved(Moved { coords }).encode(&mut frame);
        for (peer, path) in self.sessions.heard_since(since, MOVED_NOTICE_MAX) {
            self.stats.moved_notices_sent += 1;
            self.send_in_session(now, peer, path, &[&frame]);
        }
    }

    /// Runs session timers; handshake retries and rekeys go to the destination's known coordinates.
    pub(super) fn session_timeouts(&mut self, now: Instant) {
        for (dest, payload) in self.sessions.handle_timeout(now, &self.key, &mut self.rng) {
            if let Some(coords) = self.paths.get(&dest).map(|p| p.coords.clone()) {
                self.send_routed(now, dest, coords, KIND_SESSION, &payload);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::address::{node_address, node_subnet};
    use crate::core::identity::NodeKey;

    #[test]
    fn moves_are_told_once_a_round_at_most_once_a_second_and_only_with_a_root() {
        let at = |ms: u64| Instant::from_micros(ms * 1000);
        let mut n = MoveNotices::default();
        assert_eq!(
            n.poll(at(0), &vec![1], false),
            None,
            "no root, nothing told"
        );
        assert_eq!(n.poll(at(0), &vec![1], true), Some(vec![1]));
        assert_eq!(n.poll(at(10), &vec![1], true), None, "told already");
        // Two more moves within the second: only the last place is told, a second after the last round.
        assert_eq!(n.poll(at(200), &vec![1, 2], true), None);
        assert_eq!(n.next_due(), Some(at(1000)));
        assert_eq!(n.poll(at(500), &vec![1, 3], true), None);
        assert_eq!(n.poll(at(1000), &vec![1, 3], true), Some(vec![1, 3]));
        // A move undone before its round is not told; the round told goes once more 2 s later.
        assert_eq!(n.poll(at(1200), &vec![2], true), None);
        assert_eq!(n.poll(at(1300), &vec![1, 3], true), None);
        assert_eq!(n.next_due(), Some(at(1000) + MOVED_NOTICE_REPEAT));
        assert_eq!(n.poll(at(2999), &vec![1, 3], true), None);
        assert_eq!(n.poll(at(3000), &vec![1, 3], true), Some(vec![1, 3]));
        assert_eq!(n.poll(at(3010), &vec![1, 3], true), None, "repeated once");
        assert_eq!(n.next_due(), None);
        // After a quiet second a move is told at once; a move before the repeat replaces it.
        assert_eq!(n.poll(at(5000), &vec![4], true), Some(vec![4]));
        assert_eq!(n.poll(at(6500), &vec![5], true), Some(vec![5]));
        assert_eq!(n.next_due(), Some(at(8500)));
        // Losing the root drops the repeat (nothing is told without one).
        assert_eq!(n.poll(at(8500), &vec![5], false), None);
        assert_eq!(n.next_due(), None);
    }

    #[test]
    fn only_the_senders_addresses_pass() {
        let (a, b) = (
            NodeKey::from_seed(&[1; 32]).public_key(),
            NodeKey::from_seed(&[2; 32]).public_key(),
        );
        let mut packet = vec![0u8; 40];
        packet[0] = 0x60;
        packet[8..24].copy_from_slice(&node_address(&a).octets());
        packet[24..40].copy_from_slice(&node_address(&b).octets());
        let (a_addr, b_addr) = (node_address(&a), node_address(&b));
        assert!(addresses_match(&a_addr, &b_addr, &packet));
        // A host in a's /64 may send too.
        let mut host = node_subnet(&a).network().octets();
        host[15] = 7;
        packet[8..24].copy_from_slice(&host);
        assert!(addresses_match(&a_addr, &b_addr, &packet));
        // Claiming to be b, or sending to a third node, is refused.
        packet[8..24].copy_from_slice(&node_address(&b).octets());
        assert!(!addresses_match(&a_addr, &b_addr, &packet));
        packet[8..24].copy_from_slice(&node_address(&a).octets());
        packet[24..40].copy_from_slice(&node_address(&a).octets());
        assert!(!addresses_match(&a_addr, &b_addr, &packet));
        assert!(!addresses_match(&a_addr, &b_addr, &packet[..39]));
    }
}
