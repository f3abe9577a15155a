//! Links: authenticated, encrypted datagram associations with one neighbour.

pub mod handshake;
pub mod keys;
pub mod replay;
