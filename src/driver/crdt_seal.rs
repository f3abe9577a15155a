//! A tag this node puts on each change it stored after verifying it, so that opening the store does
//! not check every signature again: HMAC-SHA256 under a key derived from the node key, over the
//! stored bytes, cut to 16 bytes. A change whose tag is missing or wrong (a file from before the
//! tags, another node's file, an edited byte) is verified again as before.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::core::identity::NodeKey;

/// Bytes of a tag.
pub(crate) const TAG_LEN: usize = 16;

/// The node's key for tags.
pub(crate) struct Seal {
    key: Zeroizing<[u8; 32]>,
}

impl Seal {
    /// The seal of the node with `key`.
    pub(crate) fn of(key: &NodeKey) -> Self {
        Self {
            key: key.derive_secret(b"meshrouter crdt store seal v1"),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key[..])
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    /// The tag of a verified change's stored bytes.
    pub(crate) fn tag(&self, bytes: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac();
        mac.update(bytes);
        let full = mac.finalize().into_bytes();
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Whether `tag` is this node's tag of `bytes` (compared in constant time).
    pub(crate) fn checks(&self, bytes: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(bytes);
        mac.verify_truncated_left(tag).is_ok()
    }
}
