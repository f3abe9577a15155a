//! Reading the node key from its own file, refusing a file that others could read.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::ConfigErrorKind;
use crate::core::identity::NodeKey;

/// A key file is a few hundred bytes at most; refusing more avoids reading a device or a huge file.
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

/// Reads and parses the key file at `path` after checking that only its owner can access it.
pub(super) fn read(path: &Path) -> Result<NodeKey, ConfigErrorKind> {
    let fail = |reason: String| ConfigErrorKind::KeyFile {
        path: path.to_owned(),
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !metadata.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "mode {mode:03o} lets group or other access the key; run `chmod 600 {}`",
            path.display()
        )));
    }
    let text = zeroize::Zeroizing::new(
        super::read_bounded(path, MAX_KEY_FILE_BYTES).map_err(|e| fail(e.to_string()))?,
    );
    NodeKey::from_file_contents(&text).map_err(|e| fail(e.to_string()))
}
