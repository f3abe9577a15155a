//! What arrives on links: frames decrypted where they lie, routed traffic forwarded or taken, and the
//! end-to-end session frames inside it decrypted in place too.
//!
//! A received super-packet is copied once in user space, when its link fragments are joined: the
//! session decrypts it inside the joined frame, and the delivery shares that buffer (a [`Bytes`]
//! slice of it). A frame that came in one datagram lies in the driver's receive buffer, so what is
//! delivered from it is copied out (a single packet: small).

use std::ops::Range;

use bytes::Bytes;

use super::forward::NextHop;
use super::session::addresses_match;
use super::{Delivery, DeliveryKind, DropReason, LinkId, Node};
use crate::core::address::node_address;
use crate::core::identity::PublicKey;
use crate::core::link::Frame;
use crate::core::session::SessionDrop;
use crate::core::time::Instant;
use crate::core::wire::inner::{Message, Messages, kind, next_message};
use crate::core::wire::traffic::{KIND_DATA, KIND_PATH_BROKEN, KIND_SESSION, KIND_TRACE, Traffic};

/// A delivery whose payload is still a range of the frame being handled.
pub(super) struct Pending {
    source: PublicKey,
    kind: DeliveryKind,
    range: Range<usize>,
}

/// Where `inner`, a slice of `outer`, lies in it (`None` if it is not inside).
fn range_in(outer: &[u8], inner: &[u8]) -> Option<Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start.checked_add(inner.len())?;
    (end <= outer.len()).then_some(start..end)
}

impl Node {
    /// Processes a datagram received on a link. The datagram is decrypted where it lies, so the
    /// caller's buffer holds plaintext afterwards.
    pub fn handle_link_datagram(&mut self, now: Instant, id: LinkId, datagram: &mut [u8]) {
        self.now = now;
        if crate::core::admission::is_init(datagram) && !self.admit_on_link(now, id, datagram) {
            return;
        }
        let Some(link) = self.links.links.get_mut(&id) else {
            return;
        };
        let result = link.handle_datagram(now, datagram, &self.key, &mut self.rng);
        let peer = link.peer();
        let link_changed = self.drain_link(now, id);
        let control = match result {
            Err(reason) => {
                self.count_drop(DropReason::Link(reason));
                false
            }
            Ok(None) => true,
            Ok(Some(frame)) => match peer {
                Some(peer) => self.handle_frame(now, id, peer, frame),
                None => false,
            },
        };
        // Frames of routed traffic alone (nearly all of them) leave the tree, filters and neighbour
        // lists as they were, and their timers are run by `handle_timeout`.
        if control || link_changed {
            self.drain_tree();
        }
    }

    /// Handles a decrypted frame from `peer`; returns true if it held anything but routed traffic.
    fn handle_frame(
        &mut self,
        now: Instant,
        id: LinkId,
        peer: PublicKey,
        frame: Frame<'_>,
    ) -> bool {
        let mut pending = Vec::new();
        match frame {
            Frame::InPlace(bytes) => {
                let control = self.handle_messages(now, id, peer, bytes, &mut pending);
                self.deliver_copies(bytes, pending);
                control
            }
            Frame::Joined(mut bytes) => {
                let control = self.handle_messages(now, id, peer, &mut bytes, &mut pending);
                let shared = Bytes::from(bytes);
                for p in pending {
                    self.deliveries.push_back(Delivery {
                        source: p.source,
                        kind: p.kind,
                        payload: shared.slice(p.range),
                    });
                }
                control
            }
        }
    }

    /// Queues deliveries whose payloads are ranges of `buffer`, copying them out.
    pub(super) fn deliver_copies(&mut self, buffer: &[u8], pending: Vec<Pending>) {
        for p in pending {
            if let Some(payload) = buffer.get(p.range) {
                self.deliveries.push_back(Delivery {
                    source: p.source,
                    kind: p.kind,
                    payload: Bytes::copy_from_slice(payload),
                });
            }
        }
    }

    /// Handles each message of `frame`, routed traffic with its body still mutable.
    fn handle_messages(
        &mut self,
        now: Instant,
        id: LinkId,
        peer: PublicKey,
        frame: &mut [u8],
        pending: &mut Vec<Pending>,
    ) -> bool {
        let mut control = false;
        let mut offset = 0;
        while offset < frame.len() {
            let start = offset;
            let Ok((kind_byte, body)) = next_message(frame, &mut offset) else {
                self.count_drop(DropReason::MalformedFrame);
                break;
            };
            if kind_byte == kind::TRAFFIC {
                let base = body.start;
                self.handle_traffic(now, peer, &mut frame[body], base, pending);
                continue;
            }
            if matches!(
                kind_byte,
                kind::PACKET | kind::TCP_SUPER_PACKET | kind::SERVICE
            ) {
                // From the neighbour itself, outside any session (see `Node::direct_to_peers`):
                // the link authenticated and decrypted it; checked as a session's packets are.
                if self.direct_to_peers {
                    self.session_messages(peer, &frame[start..body.end], start, pending);
                } else {
                    self.count_drop(DropReason::NotInSession);
                }
                continue;
            }
            control = true;
            match Message::parse(kind_byte, &frame[body]) {
                Ok(Some(message)) => self.handle_control(now, id, peer, message),
                Ok(None) => {}
                Err(_) => {
                    self.count_drop(DropReason::MalformedFrame);
                    break;
                }
            }
        }
        control
    }

    /// Routes a received traffic message, whose body lies at `base` in the frame.
    fn handle_traffic(
        &mut self,
        now: Instant,
        peer: PublicKey,
        body: &mut [u8],
        base: usize,
        pending: &mut Vec<Pending>,
    ) {
        let Ok(traffic) = Traffic::parse(body) else {
            self.count_drop(DropReason::MalformedFrame);
            return;
        };
        if traffic.kind == KIND_PATH_BROKEN && !self.report_allowed(now, peer, traffic.src_key) {
            self.count_drop(DropReason::ReportLimited);
            return;
        }
        let hop = self.next_hop(&traffic);
        if hop != NextHop::Deliver || !matches!(traffic.kind, KIND_DATA | KIND_SESSION) {
            if traffic.kind == KIND_TRACE {
                self.answer_trace(now, &traffic, hop);
            }
            self.act(now, traffic, hop);
            return;
        }
        let start = body.len() - traffic.payload.len();
        let Traffic {
            src_key,
            src_path,
            kind,
            ..
        } = traffic;
        let payload = &mut body[start..];
        self.take_traffic(now, src_key, src_path, kind, payload, base + start, pending);
    }

    /// Takes traffic for us: a probe is delivered whole, a session frame decrypted in place and its
    /// packets delivered. `base` is where `payload` lies in the frame that `pending` ranges refer to.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn take_traffic(
        &mut self,
        now: Instant,
        src: PublicKey,
        src_path: Vec<u64>,
        kind: u8,
        payload: &mut [u8],
        base: usize,
        pending: &mut Vec<Pending>,
    ) {
        if kind == KIND_DATA {
            self.stats.delivered += 1;
            self.paths.refresh(now, &src);
            pending.push(Pending {
                source: src,
                kind: DeliveryKind::Probe,
                range: base..base + payload.len(),
            });
            return;
        }
        let payload_at = payload.as_ptr() as usize;
        let received =
            self.sessions
                .receive(now, src, &src_path, payload, &self.key, &mut self.rng);
        for reply in received.replies {
            self.send_routed(now, src, src_path.clone(), KIND_SESSION, &reply);
        }
        let plaintext = match received.plaintext {
            Ok(Some(plaintext)) => plaintext,
            Ok(None) => return,
            Err(e) => {
                self.count_drop(DropReason::Session(e));
                if e == SessionDrop::NoSession {
                    for init in self.sessions.resync(now, src, &self.key, &mut self.rng) {
                        self.send_routed(now, src, src_path.clone(), KIND_SESSION, &init);
                    }
                }
                return;
            }
        };
        self.paths.refresh(now, &src);
        match plaintext {
            Frame::InPlace(text) => {
                // The plaintext lies inside the payload, which lies at `base` in the frame.
                let text_base = base + (text.as_ptr() as usize - payload_at);
                self.session_messages(src, text, text_base, pending);
            }
            Frame::Joined(text) => {
                // A peer that fragmented inside its session (ours never do): copied out.
                let mut own = Vec::new();
                self.session_messages(src, &text, 0, &mut own);
                self.deliver_copies(&text, own);
            }
        }
    }

    /// Queues what a session frame from `src` (or a link frame from the neighbour `src`) carries for
    /// delivery; `base` is where `text` lies in the frame that `pending` ranges refer to.
    fn session_messages(
        &mut self,
        src: PublicKey,
        text: &[u8],
        base: usize,
        pending: &mut Vec<Pending>,
    ) {
        let src_address = node_address(&src);
        let mut queue = |kind: DeliveryKind, bytes: &[u8]| {
            if let Some(range) = range_in(text, bytes) {
                pending.push(Pending {
                    source: src,
                    kind,
                    range: base + range.start..base + range.end,
                });
            }
        };
        let mut moved = None;
        for message in Messages::new(text) {
            match message {
                Ok(Message::Packet(packet))
                    if addresses_match(&src_address, &self.own_address, packet) =>
                {
                    self.stats.delivered += 1;
                    queue(DeliveryKind::Packet, packet);
                }
                Ok(Message::TcpSuperPacket(sp))
                    if addresses_match(&src_address, &self.own_address, sp.packet) =>
                {
                    self.stats.delivered += 1;
                    let kind = DeliveryKind::TcpSuperPacket {
                        mss: sp.mss,
                        ecn: sp.ecn,
                    };
                    queue(kind, sp.packet);
                }
                Ok(Message::Packet(_) | Message::TcpSuperPacket(_)) => {
                    self.count_drop(DropReason::InnerAddress)
                }
                Ok(Message::Service(s)) => queue(DeliveryKind::Service(s.port), s.payload),
                Ok(Message::Moved(m)) => moved = Some(m.coords),
                // The initiator's key confirmation.
                Ok(Message::Keepalive(_)) => {}
                Ok(_) | Err(_) => self.count_drop(DropReason::MalformedFrame),
            }
        }
        if let Some(coords) = moved
            && self.paths.moved(self.now, &src, coords)
        {
            self.stats.moved_notices_taken += 1;
        }
    }

    /// Handles one message of a frame from `peer` that is not routed traffic.
    fn handle_control(&mut self, now: Instant, id: LinkId, peer: PublicKey, message: Message<'_>) {
        match message {
            Message::Keepalive(k) => {
                if let Some(link) = self.links.links.get_mut(&id) {
                    link.handle_keepalive(now, &k);
                    let (srtt, rto) = (link.srtt(), link.rto());
                    self.tree
                        .set_peer_cost(&peer, srtt.map(|d| d.as_millis() as u64), rto);
                }
                self.drain_link(now, id);
            }
            Message::SigReq(req) => self.tree.handle_sig_req(peer, req),
            Message::SigRes(res) => self.tree.handle_sig_res(peer, res),
            Message::Announce(a) => {
                if self
                    .tree
                    .handle_announce(now, &self.key, &mut self.rng, peer, a)
                    .is_err()
                {
                    self.count_drop(DropReason::BadAnnounce);
                }
            }
            Message::AnnounceAck(ack) => self.tree.handle_ack(&peer, &ack),
            Message::Traffic(t) => self.route(now, t),
            Message::SubtreeDelta(d) => self.handle_subtree_delta(now, peer, &d),
            Message::SubtreeAck(ack) => {
                if self.subtrees.handle_ack(now, &peer, ack) {
                    self.subtrees_dirty = true;
                }
            }
            Message::Lookup(l) => self.handle_lookup(now, peer, l),
            Message::Neighbors(list) => {
                let handled = self.neighbors.handle(now, &self.me, peer, list);
                if handled.restarted {
                    // Same address, same link, new incarnation: it has lost what we sent it.
                    self.resync_peer(&peer);
                }
                if handled.new_proof {
                    self.neighbors_dirty = true;
                }
                if let Some(ack) = handled.ack {
                    let mut frame = Vec::new();
                    Message::NeighborsAck(ack).encode(&mut frame);
                    self.send_frame(now, &peer, &frame, None);
                }
            }
            Message::NeighborsAck(ack) => self.neighbors.handle_ack(&peer, ack),
            // Packets and service messages travel only inside end-to-end sessions.
            Message::Packet(_)
            | Message::Service(_)
            | Message::TcpSuperPacket(_)
            | Message::Moved(_) => self.count_drop(DropReason::NotInSession),
            // Fragments are joined by the link; one that reaches us is out of place.
            Message::Fragment(_) => self.count_drop(DropReason::MalformedFrame),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_slices() {
        let outer = [0u8; 10];
        assert_eq!(range_in(&outer, &outer[3..7]), Some(3..7));
        assert_eq!(range_in(&outer, &outer[10..]), Some(10..10));
        let other = [0u8; 4];
        assert_eq!(range_in(&outer[2..], &outer[..4]), None);
        assert_eq!(range_in(&outer, &other), None);
    }
}
