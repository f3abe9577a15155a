//! Built-in services that ride the overlay. Like the core they are sans-IO: state machines fed with
//! messages and `now`, so the simulator can host them beside the routers.

#[cfg(feature = "services")]
pub mod blobs;
pub mod crdt;
pub mod identity;
pub mod names;
pub mod nodeinfo;
pub mod outstanding;
pub mod service;
