//! Reading the node key from its own file, refusing a file that others could read.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::ConfigErrorKind;
use crate::core::identity::NodeKey;

/// A key file is a few hundred bytes at most; refusing more avoids reading a device or a huge file.
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

/// Reads and parses the key file at `path` after checking that only its owner can access it (the
/// file opened is the file checked).
pub(super) fn read(path: &Path) -> Result<NodeKey, ConfigErrorKind> {
    use std::io::Read;
    let fail = |reason: String| ConfigErrorKind::KeyFile {
        path: path.to_owned(),
        reason,
    };
    // Non-blocking, so that a FIFO or device at the path is refused below instead of hanging here.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| fail(e.to_string()))?;
    let metadata = file.metadata().map_err(|e| fail(e.to_string()))?;
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
    let mut text = zeroize::Zeroizing::new(String::new());
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(fail(format!("larger than {MAX_KEY_FILE_BYTES} bytes")));
    }
    NodeKey::from_file_contents(&text).map_err(|e| fail(e.to_string()))
}
