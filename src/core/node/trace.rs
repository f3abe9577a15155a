//! `meshrouter trace`: probes that every node on their way answers (see [`crate::core::wire::trace`]).
//!
//! The source sends a probe towards the destination as it would send data (greedy by tree
//! coordinates, with the same watermark loop guard); each node that handles it answers the source
//! with a signed reply saying whether it forwarded the probe (and to whom), delivered it, or had no
//! route, then acts on it as on data. The source checks each reply's signature against the hop it
//! names, for the probe it sent, and hands it out as [`Event::TraceHop`] with the round trip.
//!
//! Answers cost a signature each: a node answers at most [`ANSWERS_PER_SECOND`] probes (a burst of
//! as many), from all sources together; the source keeps at most [`MAX_TRACES`] probes in flight.

use std::net::Ipv6Addr;
use std::time::Duration;

use super::forward::NextHop;
use super::{DropReason, Event, Node};
use crate::core::address::PartialKey;
use crate::core::identity::PublicKey;
use crate::core::time::Instant;
use crate::core::tree::Coords;
use crate::core::wire::trace::{TraceOutcome, TraceReply};
use crate::core::wire::traffic::{KIND_TRACE, KIND_TRACE_REPLY, Traffic};

/// Probes a node answers per second, at most, and in a burst.
pub const ANSWERS_PER_SECOND: f64 = 20.0;
/// Probes this node has in flight at most (older than [`TRACE_TTL`] are forgotten first).
pub const MAX_TRACES: usize = 16;
/// How long replies to a probe are taken.
pub const TRACE_TTL: Duration = Duration::from_secs(10);

/// What [`Node::trace`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceStart {
    /// The destination is known: a probe with this id went out.
    Probing {
        /// The probe's id, in the [`Event::TraceHop`]s it brings.
        id: u64,
        /// The node that owns the address.
        destination: PublicKey,
        /// Its coordinates.
        coords: Coords,
    },
    /// The destination is being looked up: ask again.
    LookingUp,
    /// The address is not an overlay address.
    NotOverlay,
    /// [`MAX_TRACES`] probes are in flight.
    Busy,
}

/// A source's record of a probe it sent.
pub(super) struct SentProbe {
    sent: Instant,
    destination: PublicKey,
}

impl Node {
    /// Traces the way to the node that owns `address`: sends a probe if that node is a peer or was
    /// found by a lookup lately, else starts (or lets run) a lookup for it.
    pub fn trace(&mut self, now: Instant, address: Ipv6Addr) -> TraceStart {
        self.now = now;
        let (Some(partial), Some(canonical)) = (
            PartialKey::from_address(&address),
            PartialKey::canonical_for_address(&address),
        ) else {
            return TraceStart::NotOverlay;
        };
        let target = *canonical.as_padded_key();
        let peer = (self.links.peers.keys())
            .find(|k| partial.matches(k))
            .and_then(|k| Some((*k, self.tree.peer_ancestry(k)?.coords.clone())));
        let Some((destination, coords)) = peer.or_else(|| self.paths.known(now, &partial, &target))
        else {
            let nonce = self.rng.u64();
            if self.paths.want(now, target, nonce) {
                self.start_lookup(now, nonce, target);
                self.drain_tree();
            }
            return TraceStart::LookingUp;
        };
        self.traces
            .retain(|_, p| now.saturating_since(p.sent) < TRACE_TTL);
        if self.traces.len() >= MAX_TRACES {
            return TraceStart::Busy;
        }
        let id = self.rng.u64();
        self.traces.insert(
            id,
            SentProbe {
                sent: now,
                destination,
            },
        );
        self.send_routed(
            now,
            destination,
            coords.clone(),
            KIND_TRACE,
            &id.to_be_bytes(),
        );
        self.drain_tree();
        TraceStart::Probing {
            id,
            destination,
            coords,
        }
    }

    /// A probe reached this node, which `hop` says what to do with: answers its source (this node
    /// itself, if it is the source, without a signature).
    pub(super) fn answer_trace(&mut self, now: Instant, traffic: &Traffic<'_>, hop: NextHop) {
        let Ok(id) = <[u8; 8]>::try_from(traffic.payload).map(u64::from_be_bytes) else {
            self.count_drop(DropReason::MalformedFrame);
            return;
        };
        let outcome = match hop {
            NextHop::Deliver => TraceOutcome::Delivered,
            NextHop::Peer { peer, .. } => TraceOutcome::Forwarded(peer),
            NextHop::Stuck => TraceOutcome::NoRoute,
        };
        if traffic.src_key == self.me {
            if self.traces.contains_key(&id) {
                let hop = self.me;
                (self.events).push_back(Event::TraceHop {
                    id,
                    hop,
                    outcome,
                    rtt: Duration::ZERO,
                });
            }
            return;
        }
        if !self.trace_budget.take(now) {
            self.count_drop(DropReason::TraceLimited);
            return;
        }
        let signed =
            TraceReply::signed_bytes(&traffic.src_key, &traffic.dest_key, id, &self.me, &outcome);
        let reply = TraceReply {
            id,
            hop: self.me,
            outcome,
            signature: self.key.sign(&signed),
        };
        let mut payload = Vec::with_capacity(137);
        reply.encode(&mut payload);
        let (source, path) = (traffic.src_key, traffic.src_path.clone());
        self.send_routed(now, source, path, KIND_TRACE_REPLY, &payload);
    }

    /// A reply to one of our probes: checked, then handed out as an event.
    pub(super) fn handle_trace_reply(&mut self, now: Instant, traffic: &Traffic<'_>) {
        let Ok(reply) = TraceReply::parse(traffic.payload) else {
            self.count_drop(DropReason::MalformedFrame);
            return;
        };
        let Some(probe) = self.traces.get(&reply.id) else {
            self.count_drop(DropReason::BadTraceReply);
            return;
        };
        let signed = TraceReply::signed_bytes(
            &self.me,
            &probe.destination,
            reply.id,
            &reply.hop,
            &reply.outcome,
        );
        if traffic.src_key != reply.hop || !reply.hop.verify(&signed, &reply.signature) {
            self.count_drop(DropReason::BadTraceReply);
            return;
        }
        let rtt = now.saturating_since(probe.sent);
        (self.events).push_back(Event::TraceHop {
            id: reply.id,
            hop: reply.hop,
            outcome: reply.outcome,
            rtt,
        });
    }
}
