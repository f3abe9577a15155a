//! An emulated link between two simulated nodes: latency, jitter, loss, duplication, reordering, MTU.

use std::time::Duration;

use crate::core::rng::Rng;

/// How an emulated link behaves. Each datagram is treated independently.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireParams {
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay, uniform in `[0, jitter)`.
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back by up to four latencies, so later ones overtake it.
    pub reorder: f64,
    /// Probability that a copy of a datagram with one byte flipped is delivered too (a forgery attempt).
    pub corrupt: f64,
    /// Datagrams larger than this are dropped.
    pub mtu: usize,
}

impl Default for WireParams {
    /// A clean 1 ms link with a 1500-byte MTU.
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            mtu: 1500,
        }
    }
}

impl WireParams {
    /// Returns the delays after which copies of one datagram arrive: none if lost, two if duplicated.
    pub fn delays(&self, len: usize, rng: &mut Rng) -> Vec<Duration> {
        if len > self.mtu || rng.chance(self.loss) {
            return Vec::new();
        }
        let copies = if rng.chance(self.duplicate) { 2 } else { 1 };
        (0..copies)
            .map(|_| {
                let mut delay = self.latency + rng.jitter(self.jitter);
                if rng.chance(self.reorder) {
                    delay += rng.jitter(self.latency * 4 + Duration::from_micros(1));
                }
                delay
            })
            .collect()
    }
}

/// One emulated link and its counters.
#[derive(Debug, Clone)]
pub(super) struct Wire {
    /// The two endpoints: node index and the link handle on that node (None while the node is down).
    pub(super) ends: [(usize, Option<crate::core::node::LinkId>); 2],
    pub(super) params: WireParams,
    pub(super) up: bool,
    /// Bytes sent from each end.
    pub(super) bytes: [u64; 2],
}
