//! A village's app: files under `apps.root` served at `/`.
//!
//! A request path maps to a file only if, once percent-decoded and with every symbolic link
//! resolved, it is still inside the root: `..`, encoded slashes and links out of the folder get 404
//! like a missing file. Only regular files up to [`MAX_FILE`] are served.

use std::path::{Component, Path, PathBuf};

/// Largest file served (an app's bundle, an image; not a film).
pub(crate) const MAX_FILE: u64 = 16 * 1024 * 1024;

/// The file under `root` for the request path `target` (query dropped): `/` and folders give their
/// `index.html`.
pub(crate) fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let relative = Path::new(decoded.trim_start_matches('/'));
    if decoded.contains('\0')
        || relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let root = root.canonicalize().ok()?;
    let mut file = root.join(relative).canonicalize().ok()?;
    if file.is_dir() {
        file = file.join("index.html").canonicalize().ok()?;
    }
    let meta = std::fs::metadata(&file).ok()?;
    (file.starts_with(&root) && meta.is_file() && meta.len() <= MAX_FILE).then_some(file)
}

/// The media type for a file name.
pub(crate) fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "webmanifest" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("index.html"), "home").unwrap();
        std::fs::write(root.join("docs/index.html"), "docs").unwrap();
        std::fs::write(root.join("a b.txt"), "spaced").unwrap();
        std::fs::write(dir.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
        let canon = root.canonicalize().unwrap();
        assert_eq!(resolve(&root, "/"), Some(canon.join("index.html")));
        assert_eq!(resolve(&root, "/?x=1"), Some(canon.join("index.html")));
        assert_eq!(
            resolve(&root, "/docs/"),
            Some(canon.join("docs/index.html"))
        );
        assert_eq!(resolve(&root, "/a%20b.txt"), Some(canon.join("a b.txt")));
        for bad in [
            "/../secret",
            "/docs/../../secret",
            "/%2e%2e/secret",
            "/..%2fsecret",
            "/link",
            "/missing",
            "//etc/passwd",
            "/%00",
            "/%ff",
        ] {
            assert_eq!(resolve(&root, bad), None, "{bad}");
        }
        assert_eq!(
            content_type(Path::new("x.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x")), "application/octet-stream");
    }
}
