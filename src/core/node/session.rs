//! The node's side of end-to-end sessions: sealing local packets and service messages for their
//! destination, opening what arrives, and checking that a decrypted packet really is from the sender.

use super::{Delivery, DeliveryKind, DropReason, Node};
use crate::core::address::{node_address, node_subnet};
use crate::core::identity::PublicKey;
use crate::core::session::SessionDrop;
use crate::core::time::Instant;
use crate::core::wire::inner::{Message, Messages};
use crate::core::wire::traffic::{KIND_SESSION, Traffic};

/// Returns true if `packet` is an IPv6 packet from `src`'s address or /64 to `dst`'s address or /64:
/// a session proves who sent the bytes, this proves the bytes do not claim to be from someone else.
pub(super) fn addresses_match(src: &PublicKey, dst: &PublicKey, packet: &[u8]) -> bool {
    if packet.len() < 40 || packet[0] >> 4 != 6 {
        return false;
    }
    let address = |range: std::ops::Range<usize>| -> std::net::Ipv6Addr {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&packet[range]);
        octets.into()
    };
    let belongs = |key: &PublicKey, addr: std::net::Ipv6Addr| {
        node_address(key) == addr || node_subnet(key).contains(&addr)
    };
    belongs(src, address(8..24)) && belongs(dst, address(24..40))
}

impl Node {
    /// Seals `frame` (encoded messages) in the session with `dest` and routes it to `coords`.
    pub(super) fn send_in_session(
        &mut self,
        now: Instant,
        dest: PublicKey,
        coords: Vec<u64>,
        frame: Vec<u8>,
    ) {
        for payload in self
            .sessions
            .send(now, dest, frame, &self.key, &mut self.rng)
        {
            self.send_routed(now, dest, coords.clone(), KIND_SESSION, &payload);
        }
    }

    /// Handles a session message delivered to us.
    pub(super) fn handle_session(&mut self, now: Instant, traffic: &Traffic<'_>) {
        let src = traffic.src_key;
        let received = self.sessions.receive(
            now,
            src,
            &traffic.src_path,
            traffic.payload,
            &self.key,
            &mut self.rng,
        );
        for reply in received.replies {
            self.send_routed(now, src, traffic.src_path.clone(), KIND_SESSION, &reply);
        }
        let plaintext = match received.plaintext {
            Ok(Some(plaintext)) => plaintext,
            Ok(None) => return,
            Err(e) => {
                self.count_drop(DropReason::Session(e));
                if e == SessionDrop::NoSession {
                    for init in self.sessions.resync(now, src, &self.key, &mut self.rng) {
                        self.send_routed(now, src, traffic.src_path.clone(), KIND_SESSION, &init);
                    }
                }
                return;
            }
        };
        self.paths.refresh(now, &src);
        for message in Messages::new(&plaintext) {
            match message {
                Ok(Message::Packet(packet)) if addresses_match(&src, &self.me, packet) => {
                    self.stats.delivered += 1;
                    let payload = packet.to_vec();
                    self.deliveries.push_back(Delivery {
                        source: src,
                        kind: DeliveryKind::Packet,
                        payload,
                    });
                }
                Ok(Message::Packet(_)) => self.count_drop(DropReason::InnerAddress),
                Ok(Message::Service(s)) => {
                    let payload = s.payload.to_vec();
                    self.deliveries.push_back(Delivery {
                        source: src,
                        kind: DeliveryKind::Service(s.port),
                        payload,
                    });
                }
                // The initiator's key confirmation.
                Ok(Message::Keepalive(_)) => {}
                Ok(_) | Err(_) => self.count_drop(DropReason::MalformedFrame),
            }
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
    use crate::core::identity::NodeKey;

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
        assert!(addresses_match(&a, &b, &packet));
        // A host in a's /64 may send too.
        let mut host = node_subnet(&a).network().octets();
        host[15] = 7;
        packet[8..24].copy_from_slice(&host);
        assert!(addresses_match(&a, &b, &packet));
        // Claiming to be b, or sending to a third node, is refused.
        packet[8..24].copy_from_slice(&node_address(&b).octets());
        assert!(!addresses_match(&a, &b, &packet));
        packet[8..24].copy_from_slice(&node_address(&a).octets());
        packet[24..40].copy_from_slice(&node_address(&a).octets());
        assert!(!addresses_match(&a, &b, &packet));
        assert!(!addresses_match(&a, &b, &packet[..39]));
    }
}
