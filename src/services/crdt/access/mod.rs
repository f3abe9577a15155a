//! Who may pull, read, write and manage a namespace, decided the same way on every replica from
//! signed data only, never from who happened to send a message.
//!
//! - A namespace's [`class`] follows from its name and the mesh's trust root (the configured
//!   admins): `~<did:key id>/…` is owned by that key, `public`/`public/…` is writable by anyone,
//!   `identity` is the registry's, any other name is the admins'; on a mesh without admins every
//!   name but an owned one is open to all, as before access control.
//! - Grants and revocations ([`op`]) are changes to the namespace's document [`ACCESS_DOCUMENT`], a
//!   grow-only set synced like any other; each is signed by its author and names the access point
//!   (the access changes it had applied) it was made at.
//! - [`resolve`] decides, from the set of those changes alone, which ones count and what level each
//!   key holds at any access point; a data change counts if its writer could write at its own
//!   access point and no revocation it had not seen cuts it.
//!
//! The model follows p2panda-auth (levels Pull < Read < Write < Manage; a removal beats a concurrent
//! change by the removed member) and Keyhive (self-certifying owners; a revocation names what of
//! the revoked member it had seen, so later work it had not seen is cut).

pub mod class;
pub mod op;
pub mod resolve;

#[cfg(test)]
mod tests;

pub use class::{NamespaceClass, TrustRoot};
pub use op::{AccessOp, Level, Subject};
pub use resolve::{AccessLog, Admission, OpEntry};

/// The document of a namespace that holds its access changes.
pub const ACCESS_DOCUMENT: &str = "_access";
