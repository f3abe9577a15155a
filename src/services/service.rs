//! What a built-in service is to the node that hosts it, in the simulator and in the daemon alike:
//! it hears link events, takes the service messages addressed to it, runs timers and hands back
//! messages to send. Both hosts drive services through this one trait, so a service's behaviour in
//! a simulated mesh is its behaviour in the daemon.

use crate::core::identity::PublicKey;
use crate::core::node::{Delivery, Event};
use crate::core::time::Instant;

/// A service hosted beside a node.
pub trait Service {
    /// The node reported an event (links up and down).
    fn handle_event(&mut self, now: Instant, event: &Event);
    /// A payload reached the node: the service takes it, or hands it back for the node's record.
    fn handle_delivery(&mut self, now: Instant, delivery: Delivery) -> Option<Delivery>;
    /// The service's timer fired (it may be early: act only on what is due).
    fn handle_timeout(&mut self, now: Instant);
    /// When the service wants [`Self::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
    /// A service message to send: destination, port, payload.
    fn poll_send(&mut self) -> Option<(PublicKey, u16, Vec<u8>)>;
}
