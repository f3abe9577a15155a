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

/// The overlay service port blocks of files travel on (`blobs::exchange`); here, outside the
/// feature gate, so that a routing-only build knows the port it does not serve.
pub const BLOB_PORT: u16 = 4;
