//! The CRDT sync service: local-first documents that every node can write while cut off, and that
//! converge, deterministically and without losing a write, whenever replicas meet again, over the
//! mesh or by a file carried on a USB stick.
//!
//! Everything here is pure: documents are values, edits return deltas, and joining a delta is
//! commutative, associative and idempotent, so changes may arrive in any order, twice, or by any
//! path. The types follow the δ-CRDT "causal" design (Almeida, Shoker, Baquero): entries tagged with
//! dots, a causal context per replica ([`context`]), one join rule ([`store`]).

pub mod access;
pub mod change;
pub mod codec;
pub mod context;
pub mod document;
pub mod drop;
pub mod field;
pub mod hlc;
pub mod host;
mod keyed;
pub mod log;
pub mod own_entry;
pub mod replica;
pub mod store;
pub mod sync;
pub mod text;

#[cfg(test)]
mod tests;
