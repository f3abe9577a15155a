//! Built-in services hosted beside simulated routers, so whole-mesh tests can run the services'
//! sans-IO state machines over the simulated network.

use std::any::Any;

use crate::services::service::Service;

/// A service attached to one simulated node ([`super::Sim::attach`]): any [`Service`], which the
/// simulator can hand back as its own type ([`super::Sim::service`]).
pub trait SimService: Service + Any + Send {
    /// For [`super::Sim::service`].
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Service + Any + Send> SimService for T {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
