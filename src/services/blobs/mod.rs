//! Content-addressed files ("blobs"): a file is cut into chunks and named by the CID of its
//! UnixFS DAG, exactly as IPFS tools name it under the `unixfs-v1-2025` profile (IPIP-499: CIDv1,
//! SHA-256, raw leaves, 1 MiB chunks, balanced DAG of at most 1 024 links per node), so `ipfs` or
//! Helia give the same bytes the same CID and a holder can be asked for any chunk by its own CID and
//! checked before it is kept. Sans-IO: bytes in, blocks out.

pub mod announce;
pub mod car;
pub mod cid;
pub mod dag;
pub mod exchange;
pub mod import;
pub mod store;

pub use self::cid::{Cid, CidError, Codec};
pub use self::dag::{FileNode, Link};
pub use self::import::{Block, Importer, Profile};
pub use self::store::{BlobIndex, Blocks, Root, StoreError};
