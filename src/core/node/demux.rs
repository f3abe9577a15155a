//! Which link a datagram belongs to, and whether a datagram from a sender without a link may make one.
//!
//! As in quinn-proto's `Endpoint::handle`, the driver hands every datagram to [`Node::handle_datagram`]
//! with the endpoint (socket) it came in on and the address it came from. A datagram from an address
//! bound to a link goes to that link. Any other is either not a handshake initiation (the driver may
//! look at it: a discovery beacon) or passes the [`HandshakeGate`](crate::core::admission) first: MAC,
//! then budget or cookie, then signature. Only an initiation that passed all of them gets a [`Link`],
//! and inbound links that never come up are bounded in number and in time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::{DropReason, Event, LinkId, Node};
use crate::core::admission::{Verdict, is_init};
use crate::core::link::handshake::{LINK, Psk};
use crate::core::link::{Link, LinkParams};
use crate::core::time::Instant;

/// Handle of an endpoint: a socket (or raw interface) that links share. The driver numbers them.
pub type EndpointId = u32;

/// The other end of a link on an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Remote {
    /// A UDP address.
    Udp(SocketAddr),
    /// A MAC address on a raw Ethernet interface.
    Ethernet([u8; 6]),
    /// The far end of a connection (TCP, TLS): the endpoint is the connection, so this only names it.
    Stream(SocketAddr),
}

impl Remote {
    /// The bytes a cookie binds to: the endpoint and the address, so a cookie earned on one socket or
    /// at one address is worth nothing at another.
    fn source_bytes(&self, endpoint: EndpointId, out: &mut [u8; 32]) -> usize {
        out[..4].copy_from_slice(&endpoint.to_be_bytes());
        let mut put = |at: usize, bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at + bytes.len()
        };
        match self {
            Self::Udp(SocketAddr::V4(a)) | Self::Stream(SocketAddr::V4(a)) => {
                let at = put(4, &a.ip().octets());
                put(at, &a.port().to_be_bytes())
            }
            Self::Udp(SocketAddr::V6(a)) | Self::Stream(SocketAddr::V6(a)) => {
                let at = put(4, &a.ip().octets());
                let at = put(at, &a.port().to_be_bytes());
                put(at, &(a.scope_id() as u16).to_be_bytes())
            }
            Self::Ethernet(mac) => put(4, mac),
        }
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Udp(a) => write!(f, "udp://{a}"),
            Self::Stream(a) => write!(f, "stream://{a}"),
            Self::Ethernet(m) => write!(
                f,
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
        }
    }
}

/// What [`Node::handle_datagram`] did with a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// It went to this link.
    Link(LinkId),
    /// A verified initiation made this new inbound link (its response is queued).
    NewLink(LinkId),
    /// An initiation under load: send this cookie reply back to where it came from. Nothing was kept.
    Reply(Vec<u8>),
    /// Not for a link and not an initiation: the caller may look at it (a beacon), or drop it.
    Unclaimed,
    /// An initiation that was refused (counted in the node's drops).
    Refused,
}

/// Inbound links not yet up kept at most; a new one evicts the oldest. An attacker who completes the
/// signed half of handshakes from many addresses can churn these, but a real neighbour's handshake
/// completes within one round trip, long before 256 newer ones push it out.
pub const MAX_UNCONFIRMED_INBOUND: usize = 256;
/// An inbound link that has not come up within this time is closed.
pub const INBOUND_SETUP_TIMEOUT: Duration = Duration::from_secs(15);

/// The node's table of addresses and of inbound links still unconfirmed.
#[derive(Default)]
pub(super) struct Demux {
    /// One entry per bound link: bounded by the links we made and the unconfirmed inbound bound, so
    /// a fast (randomly seeded) hasher is safe.
    by_remote: foldhash::HashMap<(EndpointId, Remote), LinkId>,
    remote_of: BTreeMap<LinkId, (EndpointId, Remote)>,
    /// Inbound links that are not up yet, with when they were made.
    unconfirmed: BTreeMap<LinkId, Instant>,
}

impl Demux {
    pub(super) fn bind(&mut self, id: LinkId, endpoint: EndpointId, remote: Remote) {
        self.by_remote.insert((endpoint, remote), id);
        self.remote_of.insert(id, (endpoint, remote));
    }

    pub(super) fn forget(&mut self, id: LinkId) {
        if let Some(key) = self.remote_of.remove(&id) {
            self.by_remote.remove(&key);
        }
        self.unconfirmed.remove(&id);
    }

    /// A link came up: it no longer counts as unconfirmed.
    pub(super) fn confirmed(&mut self, id: LinkId) {
        self.unconfirmed.remove(&id);
    }

    /// When the oldest unconfirmed inbound link times out.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.unconfirmed
            .values()
            .min()
            .map(|t| *t + INBOUND_SETUP_TIMEOUT)
    }

    /// The bytes naming where link `id` sends (its link id if it is not bound).
    fn source_of(&self, id: LinkId, out: &mut [u8; 32]) -> usize {
        match self.remote_of.get(&id) {
            Some((endpoint, remote)) => remote.source_bytes(*endpoint, out),
            None => {
                out[..4].copy_from_slice(&u32::MAX.to_be_bytes());
                out[4..8].copy_from_slice(&id.0.to_be_bytes());
                8
            }
        }
    }
}

impl Node {
    /// Handles a datagram that arrived on `endpoint` from `remote`. `inbound` gives the settings of a
    /// link that an initiation from there may create (`None`: none may, e.g. on a configured peer's
    /// own socket); it is called only for an initiation from an address without a link.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        endpoint: EndpointId,
        remote: Remote,
        datagram: &mut [u8],
        inbound: impl FnOnce() -> Option<LinkParams>,
    ) -> Arrival {
        self.now = now;
        if let Some(&id) = self.demux.by_remote.get(&(endpoint, remote)) {
            self.handle_link_datagram(now, id, datagram);
            return Arrival::Link(id);
        }
        if !is_init(datagram) {
            return Arrival::Unclaimed;
        }
        let Some(params) = inbound() else {
            self.count_drop(DropReason::InboundRefused);
            return Arrival::Refused;
        };
        let psk = Psk::for_domain(LINK, params.password.as_ref());
        let mut source = [0u8; 32];
        let len = remote.source_bytes(endpoint, &mut source);
        match self
            .gate
            .admit(now, &source[..len], datagram, &psk, false, &mut self.rng)
        {
            Verdict::Drop(refusal) => {
                self.count_drop(DropReason::Admission(refusal));
                return Arrival::Refused;
            }
            Verdict::Reply(reply) => return Arrival::Reply(reply),
            Verdict::Verify { .. } => {}
        }
        let mut link = Link::new(params, now, self.clock_base);
        if let Err(reason) = link.handle_datagram(now, datagram, &self.key, &mut self.rng) {
            self.count_drop(DropReason::Link(reason));
            return Arrival::Refused;
        }
        if self.demux.unconfirmed.len() >= MAX_UNCONFIRMED_INBOUND
            && let Some((&oldest, _)) = self.demux.unconfirmed.iter().min_by_key(|(_, t)| **t)
        {
            self.close_link(now, oldest);
            self.events.push_back(Event::LinkClosed(oldest));
        }
        let id = self.links.insert(link);
        self.demux.bind(id, endpoint, remote);
        self.demux.unconfirmed.insert(id, now);
        self.drain_link(now, id);
        Arrival::NewLink(id)
    }

    /// Adds a link that sends to `remote` on `endpoint` (a configured or discovered peer): datagrams
    /// from there go to it. A link already bound there is closed ([`Event::LinkClosed`]).
    pub fn open_link_to(
        &mut self,
        now: Instant,
        endpoint: EndpointId,
        remote: Remote,
        params: LinkParams,
    ) -> LinkId {
        if let Some(old) = self.link_at(endpoint, remote) {
            self.close_link(now, old);
            self.events.push_back(Event::LinkClosed(old));
        }
        let id = self.open_link(now, params);
        self.demux.bind(id, endpoint, remote);
        id
    }

    /// The link bound to `remote` on `endpoint`.
    pub fn link_at(&self, endpoint: EndpointId, remote: Remote) -> Option<LinkId> {
        self.demux.by_remote.get(&(endpoint, remote)).copied()
    }

    /// How many inbound links wait for their first frame.
    pub fn unconfirmed_inbound(&self) -> usize {
        self.demux.unconfirmed.len()
    }

    /// The gate's counters: initiations verified, cookie replies sent, initiations refused.
    pub fn handshake_counters(&self) -> (u64, u64, u64) {
        (
            self.gate.verified,
            self.gate.cookies_sent,
            self.gate.refused,
        )
    }

    /// Runs an initiation for an existing link through the gate. Returns false if it must not reach
    /// the link (refused, or answered with a cookie reply queued on the link).
    pub(super) fn admit_on_link(&mut self, now: Instant, id: LinkId, datagram: &[u8]) -> bool {
        let Some(link) = self.links.links.get_mut(&id) else {
            return false;
        };
        let retransmit = link.is_retransmit(datagram);
        let mut source = [0u8; 32];
        let len = self.demux.source_of(id, &mut source);
        let verdict = self.gate.admit(
            now,
            &source[..len],
            datagram,
            link.psk(),
            retransmit,
            &mut self.rng,
        );
        match verdict {
            Verdict::Verify { .. } => true,
            Verdict::Reply(reply) => {
                link.queue_raw(reply);
                self.drain_link(now, id);
                false
            }
            Verdict::Drop(refusal) => {
                self.count_drop(DropReason::Admission(refusal));
                false
            }
        }
    }

    /// Closes inbound links that did not come up in time.
    pub(super) fn expire_unconfirmed(&mut self, now: Instant) {
        let stale: Vec<LinkId> = self
            .demux
            .unconfirmed
            .iter()
            .filter(|(_, t)| now.saturating_since(**t) >= INBOUND_SETUP_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.close_link(now, id);
            self.events.push_back(Event::LinkClosed(id));
        }
    }
}
