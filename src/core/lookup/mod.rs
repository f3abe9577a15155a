//! Finding a destination's key and coordinates from its address, as Yggdrasil 0.5 does: bloom filters
//! along the tree steer lookups into the subtrees that may hold the key, and the node itself answers with
//! signed coordinates.

pub mod bloom;
pub mod filters;
pub mod paths;
