//! The sans-IO protocol core.
//!
//! Nothing in here performs I/O, reads a clock or draws global randomness: callers pass `now` and seeds in.
//! That is what lets the deterministic simulator run whole meshes inside one test. `tests/layering.rs` fails
//! the build's tests if a file under `src/core/` imports tokio, a socket type, `Instant::now`,
//! `SystemTime::now` or a thread/OS RNG.

pub mod address;
pub mod admission;
pub mod crypto_stand_in;
pub mod firewall;
pub mod identity;
pub mod lan;
pub mod link;
pub mod lookup;
pub mod node;
pub mod offload;
pub mod password;
pub mod rate;
pub mod rng;
pub mod room;
pub mod session;
pub mod shared_verifications;
pub mod time;
pub mod tree;
pub mod verifier;
pub mod wire;
