//! Connections that stream listeners (TCP, TLS) accepted. A connection carries one link: it is an
//! endpoint of its own, closed with its link, and closed if no link comes up on it in time.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::debug;

use super::counters::DriverCounters;
use super::input::Input;
use super::links::Links;
use super::transport::stream::{self, BoxedStream};
use super::transport::tcp::source_key;
use super::transport::{EndpointId, Role, Transport};
use crate::config::LinkUri;
use crate::core::node::Node;
use crate::core::time::Instant;

/// Accepted connections whose link is not up, at most; beyond, the oldest is closed for the new one.
/// Each holds a descriptor and buffers, so idle connections must not pile up; and evicting the oldest
/// rather than refusing the newest means that idle connections cannot lock real peers out: a real
/// peer's link is up within a round trip or two, long before this many others arrive.
pub(crate) const MAX_PENDING_ACCEPTED: usize = 64;
/// Accepted connections without a link from one source (an IPv4 address or an IPv6 /64), at most;
/// beyond, that source's oldest is closed, so that one source only ever displaces its own.
pub(crate) const MAX_PENDING_PER_SOURCE: usize = 8;
/// An accepted connection whose link is not up after this is closed (as the core closes an inbound
/// link that does not confirm).
pub(crate) const ACCEPTED_SETUP_TIMEOUT: Duration = Duration::from_secs(15);

/// What accepting a connection needs besides the links.
pub(crate) struct Acceptance<'a> {
    pub(crate) node: &'a mut Node,
    pub(crate) now: Instant,
    pub(crate) inputs: &'a mpsc::Sender<Input>,
    pub(crate) counters: &'a mut DriverCounters,
}

impl Links {
    /// A stream listener accepted a connection: it becomes an endpoint whose first initiation may
    /// create a link (the listener's password and the allowed keys apply).
    pub(crate) fn accept(
        &mut self,
        with: Acceptance<'_>,
        uri: LinkUri,
        stream: BoxedStream,
        addr: SocketAddr,
    ) {
        let source = source_key(addr.ip());
        let pending = self.pending_accepted();
        let of_source: Vec<EndpointId> = pending
            .iter()
            .filter(|(_, from)| source_key(from.ip()) == source)
            .map(|(id, _)| *id)
            .collect();
        let evict = if of_source.len() >= MAX_PENDING_PER_SOURCE {
            of_source.first().copied()
        } else if pending.len() >= MAX_PENDING_ACCEPTED {
            pending.first().map(|(id, _)| *id)
        } else {
            None
        };
        if let Some(id) = evict {
            with.counters.connections_evicted += 1;
            debug!(%addr, "too many accepted connections without a link: the oldest closed");
            self.remove_endpoint(with.node, with.now, id);
        }
        let inputs = with.inputs.clone();
        let scheme = uri.scheme;
        self.add_endpoint(with.now, Role::Accepted { uri, from: addr }, |id| {
            let (sender, reader) = stream::start(id, scheme, addr, stream, inputs);
            (Transport::Stream(sender), reader)
        });
    }

    /// Accepted connections with no link up, and where from, oldest first (ids grow with time).
    fn pending_accepted(&self) -> Vec<(EndpointId, SocketAddr)> {
        let mut pending: Vec<(EndpointId, SocketAddr)> = self
            .endpoints
            .iter()
            .filter_map(|(id, e)| match &e.role {
                Role::Accepted { from, .. } if !self.link_up_on(*id) => Some((*id, *from)),
                _ => None,
            })
            .collect();
        pending.sort_unstable_by_key(|(id, _)| *id);
        pending
    }

    /// Closes accepted connections that brought no link up in time.
    pub(crate) fn close_stale_accepted(
        &mut self,
        node: &mut Node,
        now: Instant,
        counters: &mut DriverCounters,
    ) {
        let stale: Vec<EndpointId> = self
            .endpoints
            .iter()
            .filter(|(id, e)| {
                matches!(e.role, Role::Accepted { .. })
                    && now.saturating_since(e.opened) >= ACCEPTED_SETUP_TIMEOUT
                    && !self.link_up_on(**id)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            counters.connections_closed += 1;
            self.remove_endpoint(node, now, id);
        }
    }
}
