//! What the driver knows about each link beyond the core: the endpoints its datagrams go through,
//! where it came from, and the operator-facing history (uptime, rates, last error).

use std::collections::{BTreeMap, HashMap};

use super::transport::{Endpoint, EndpointId, Remote, Role, Transport};
use crate::core::identity::PublicKey;
use crate::core::link::LinkParams;
use crate::core::node::{LinkId, Node};
use crate::core::time::Instant;

/// The daemon's endpoints (sockets and connections) and its records of the core's links.
#[derive(Default)]
pub(crate) struct Links {
    pub(crate) endpoints: HashMap<EndpointId, Endpoint>,
    next_endpoint: EndpointId,
    pub(crate) records: BTreeMap<LinkId, LinkInfo>,
}

impl Links {
    /// Registers an endpoint: `start` gets its id and starts its transport and reader.
    pub(crate) fn add_endpoint(
        &mut self,
        now: Instant,
        role: Role,
        start: impl FnOnce(EndpointId) -> (Transport, tokio::task::JoinHandle<()>),
    ) -> EndpointId {
        let id = self.next_endpoint;
        self.next_endpoint += 1;
        let (transport, reader) = start(id);
        let endpoint = Endpoint {
            transport,
            role,
            reader,
            opened: now,
        };
        self.endpoints.insert(id, endpoint);
        id
    }

    /// Removes an endpoint and every link on it.
    pub(crate) fn remove_endpoint(&mut self, node: &mut Node, now: Instant, id: EndpointId) {
        let doomed: Vec<LinkId> = self
            .records
            .iter()
            .filter(|(_, l)| l.endpoint == id)
            .map(|(id, _)| *id)
            .collect();
        for link in doomed {
            self.close_link(node, now, link);
        }
        self.endpoints.remove(&id);
    }

    /// Opens a link in the core and records it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_link(
        &mut self,
        node: &mut Node,
        now: Instant,
        endpoint: EndpointId,
        remote: Remote,
        params: LinkParams,
        origin: Origin,
        uri: String,
    ) -> LinkId {
        let id = node.open_link_to(now, endpoint, remote, params);
        self.record_link(id, endpoint, remote, origin, uri);
        id
    }

    /// Keeps the driver's record of a link the core made.
    pub(crate) fn record_link(
        &mut self,
        id: LinkId,
        endpoint: EndpointId,
        remote: Remote,
        origin: Origin,
        uri: String,
    ) {
        let info = LinkInfo {
            endpoint,
            remote,
            uri,
            origin,
            up_since: None,
            peer: None,
            last_error: None,
            last_beacon: None,
            rates: Rates::default(),
        };
        self.records.insert(id, info);
    }

    /// Closes a link in the core and forgets it.
    pub(crate) fn close_link(&mut self, node: &mut Node, now: Instant, id: LinkId) {
        node.close_link(now, id);
        self.records.remove(&id);
    }

    /// Whether a link on `endpoint` is up.
    pub(crate) fn link_up_on(&self, endpoint: EndpointId) -> bool {
        self.records
            .values()
            .any(|l| l.endpoint == endpoint && l.up_since.is_some())
    }

    /// The connection carrying link `id`, if it is a stream link.
    pub(crate) fn connection_of(&self, id: LinkId) -> Option<EndpointId> {
        let endpoint = self.records.get(&id)?.endpoint;
        let e = self.endpoints.get(&endpoint)?;
        matches!(e.transport, Transport::Stream(_)).then_some(endpoint)
    }
}

/// How a link came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A configured or added peer.
    Peer,
    /// Someone connected to a listener or to our discovery socket.
    Inbound,
    /// We dialled a node whose beacon we heard.
    Discovered,
}

/// The driver's record of a link.
pub(crate) struct LinkInfo {
    pub(crate) endpoint: EndpointId,
    pub(crate) remote: Remote,
    /// What the operator sees as the link's URI (never holds a password).
    pub(crate) uri: String,
    pub(crate) origin: Origin,
    pub(crate) up_since: Option<Instant>,
    pub(crate) peer: Option<PublicKey>,
    pub(crate) last_error: Option<(Instant, String)>,
    /// Last time a beacon for this link was heard (discovered links).
    pub(crate) last_beacon: Option<Instant>,
    pub(crate) rates: Rates,
}

/// Bytes per second in each direction, sampled once a second.
#[derive(Default, Clone, Copy)]
pub(crate) struct Rates {
    last_rx: u64,
    last_tx: u64,
    last_at: Option<Instant>,
    pub(crate) rx: u64,
    pub(crate) tx: u64,
}

impl Rates {
    pub(crate) fn sample(&mut self, now: Instant, rx: u64, tx: u64) {
        if let Some(at) = self.last_at {
            let micros = now.as_micros().saturating_sub(at.as_micros()).max(1);
            self.rx = rx.saturating_sub(self.last_rx) * 1_000_000 / micros;
            self.tx = tx.saturating_sub(self.last_tx) * 1_000_000 / micros;
        }
        (self.last_rx, self.last_tx, self.last_at) = (rx, tx, Some(now));
    }
}
