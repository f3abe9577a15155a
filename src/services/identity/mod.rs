//! Decentralized identity: DIDs for node and user keys, verified offline.

pub mod challenge;
pub mod did_document;
pub mod did_key;
pub mod jcs;
pub mod jwt;
pub mod proof;
pub mod registry;
pub mod ucan;
pub mod vc;
