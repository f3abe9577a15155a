//! The only place with `unsafe`: Linux system calls that no well-kept crate wraps for us.
//!
//! Each call is a small function with a safe signature; each `unsafe` block says why it is sound.
//! Everything else in the crate is `unsafe`-free (`unsafe_code = "deny"` in `Cargo.toml`).

#![allow(unsafe_code)]

pub mod icmp6;
pub mod io;
pub mod memory;
pub mod netdev;
pub mod packet;
pub mod signals;
pub mod socket;
pub mod thread;
