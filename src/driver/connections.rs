//! Connections of stream links (TCP, TLS) that listeners accepted, and what the operator is told
//! about links that do not come up. A connection carries one link: it is an endpoint of its own,
//! closed with its link.

use std::net::SocketAddr;
use std::time::Duration;

use tracing::debug;

use super::router::Router;
use super::transport::stream::{self, BoxedStream};
use super::transport::tcp::source_key;
use super::transport::{EndpointId, Role, Transport};
use crate::config::LinkUri;
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
/// A configured peer's link that is not up this long after its socket or connection was ready gets
/// an explanation in `last_error`.
const EXPLAIN_AFTER: Duration = Duration::from_secs(5);

impl Router {
    /// A stream listener accepted a connection: it becomes an endpoint whose first initiation may
    /// create a link (the listener's password and the allowed keys apply).
    pub(crate) fn on_accepted(&mut self, uri: LinkUri, stream: BoxedStream, addr: SocketAddr) {
        let source = source_key(addr.ip());
        // Pending connections, oldest first (endpoint ids grow with time).
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
            self.counters.connections_evicted += 1;
            debug!(%addr, "too many accepted connections without a link: the oldest closed");
            self.remove_endpoint(id);
        }
        let inputs = self.inputs.clone();
        let scheme = uri.scheme;
        self.add_endpoint(Role::Accepted { uri, from: addr }, |id| {
            let (sender, reader) = stream::start(id, scheme, addr, stream, inputs);
            (Transport::Stream(sender), reader)
        });
    }

    /// Accepted connections with no link up, and where from, oldest first.
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

    fn link_up_on(&self, endpoint: EndpointId) -> bool {
        self.links
            .values()
            .any(|l| l.endpoint == endpoint && l.up_since.is_some())
    }

    /// Once a second: closes accepted connections that brought no link up in time, and explains
    /// configured peers whose link stays down.
    pub(crate) fn connections_tick(&mut self, now: Instant) {
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
            self.counters.connections_closed += 1;
            self.remove_endpoint(id);
        }
        self.explain_down_peers(now);
    }

    /// Tells the operator why a configured peer's link is not up: the last handshake datagram the
    /// link refused (a wrong key shows here), or that the peer never answered (a password or allowed
    /// key it does not accept: it drops our handshakes without a word).
    fn explain_down_peers(&mut self, now: Instant) {
        for peer in self.peers.values_mut() {
            let Some(endpoint) = peer.endpoint else {
                continue;
            };
            let Some(opened) = self.endpoints.get(&endpoint).map(|e| e.opened) else {
                continue;
            };
            if now.saturating_since(opened) < EXPLAIN_AFTER {
                continue;
            }
            let Some((id, info)) = self.links.iter_mut().find(|(_, l)| l.endpoint == endpoint)
            else {
                continue;
            };
            if info.up_since.is_some() {
                continue;
            }
            let link = self.node.link(*id);
            let explanation = match link.and_then(|l| l.last_drop()) {
                Some((_, drop)) => format!("handshake refused: {drop}"),
                None if link.is_some_and(|l| l.stats().key_sets > 0) => continue,
                None => "no answer to the link handshake: the peer drops it (a password or an \
                         allowed key that it does not accept?)"
                    .to_owned(),
            };
            if peer
                .last_error
                .as_ref()
                .is_none_or(|(_, e)| *e != explanation)
            {
                tracing::warn!(peer = %peer.uri.display(), "{explanation}");
            }
            info.last_error = Some((now, explanation.clone()));
            peer.last_error = Some((now, explanation));
        }
    }
}
