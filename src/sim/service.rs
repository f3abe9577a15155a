//! Built-in services hosted beside simulated routers, so whole-mesh tests can run the services'
//! sans-IO state machines over the simulated network.

use std::any::Any;

use crate::core::identity::PublicKey;
use crate::core::node::{Delivery, Event};
use crate::core::time::Instant;

/// A service attached to one simulated node ([`super::Sim::attach`]).
pub trait SimService: Any {
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
    /// For [`super::Sim::service`].
    fn as_any_mut(&mut self) -> &mut dyn Any;
}
