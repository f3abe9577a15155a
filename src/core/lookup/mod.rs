//! Finding a destination's key and coordinates from its address: exact sets of key tags along the
//! tree steer lookups into the subtree that holds the key, and the node itself answers with signed
//! coordinates.

pub mod paths;
pub mod subtrees;
pub mod tags;
