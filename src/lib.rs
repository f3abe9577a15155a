//! meshrouter: a mesh overlay router in the style of Yggdrasil 0.5.
//!
//! Every node owns an Ed25519 key; its IPv6 address (`200::/7`) and routed /64 (`300::/8`) derive from that
//! key exactly as Yggdrasil 0.5 derives them, so keys and addresses carry over between the two.
//!
//! The crate is layered so that the protocol can be tested deterministically:
//!
//! - [`core`]: the sans-IO protocol core. It never touches sockets, tokio, the clock or global randomness;
//!   every entry point takes the current time and randomness comes from a seed. `tests/layering.rs` enforces
//!   this.
//! - [`services`]: built-in services that ride the overlay (CRDT sync, identity), sans-IO as well.
//! - [`config`]: the TOML configuration file and the node key it names (reads files, so it lives outside the
//!   core).
//!
//! - [`driver`]: the daemon, a thin tokio driver that owns a core `Node` and connects it to a TUN device,
//!   UDP sockets, raw Ethernet interfaces, LAN discovery and the local API.
//! - [`sys`]: the only `unsafe` code, a few Linux system calls no crate wraps (TUN address and routes,
//!   `AF_PACKET` sockets).
//!
//! Only the driver reads the OS clock; only the binary (`src/main.rs`, `src/cli/`) reads the OS random
//! source (it seeds the driver) or the terminal, and it is the only place where `anyhow` is used.

pub mod config;
pub mod core;
pub mod driver;
pub mod services;
pub mod sim;
pub mod sys;
