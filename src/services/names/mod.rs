//! Mesh names: `clinic.mesh` instead of `201:31e1:434f:…`, with no server and no internet.
//!
//! A node claims a name by writing a signed claim into the CRDT namespace [`NAMESPACE`]: document
//! = the label, a map from the claimant's key (hex) to its claim (last writer wins; only the
//! claimant writes its own entry, see [`admit`]). Every replica reads the same claims and applies
//! the same rule ([`table`]) to decide which claim `label.mesh` resolves to:
//!
//! 1. a claim by an admin of the mesh (`identity.admins`) wins: admins may give a name to any
//!    node, which is how a dispute is settled;
//! 2. otherwise a claim made after another (it lists that claim as seen, as this software does
//!    for every claim it holds on the label) loses to it: the first claim holds until its owner
//!    releases it, and a squatter running honest software cannot take a name in use;
//! 3. between claims where neither saw the other (made in two parts of a split mesh), the older
//!    (`since`, signed), then the lower key.
//!
//! Every claim, winning or not, is also reachable as `label.<key prefix>.mesh`, and every mesh
//! address as `<address with - for :>.addr.mesh`. PROTOCOL.md §6d has the reasons and the limits.

pub mod admit;
pub mod claim;
#[cfg(feature = "services")]
pub mod dns;
pub mod table;

pub use self::admit::admit;
pub use self::claim::{Claim, ClaimError, MAX_CLAIM_BYTES, MAX_SEEN, is_label};
pub use self::table::{NameTable, Resolution, TOP_LEVEL};

/// The CRDT namespace that holds the claims.
pub const NAMESPACE: &str = "names";

#[cfg(test)]
mod tests;
