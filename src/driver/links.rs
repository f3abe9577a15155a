//! What the driver knows about each link beyond the core: where its datagrams go, where it came from,
//! and the operator-facing history (uptime, rates, last error).

use super::transport::{EndpointId, Remote};
use crate::core::identity::PublicKey;
use crate::core::time::Instant;

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
