//! `addpeer --save` and `removepeer --save`: the configuration file's `peers` list edited in place
//! with `toml_edit`, so comments, order and layout stay as the operator wrote them. The file is
//! written whole to a temporary file beside it (with its permissions: it may hold the key) and
//! renamed into place, so a crash leaves the old file or the new one.

use std::path::Path;

use anyhow::{Context, bail};
use toml_edit::{Array, DocumentMut, Item, Value};

/// The file, parsed for editing.
fn read(path: &Path) -> anyhow::Result<DocumentMut> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.parse::<DocumentMut>()
        .with_context(|| format!("{} is not valid TOML", path.display()))
}

/// The top-level `peers` array, made if missing.
fn peers(doc: &mut DocumentMut) -> anyhow::Result<&mut Array> {
    let item = doc
        .entry("peers")
        .or_insert_with(|| Item::Value(Value::Array(Array::new())));
    match item.as_array_mut() {
        Some(array) => Ok(array),
        None => bail!("`peers` in the configuration is not a list"),
    }
}

/// The URI without its query, as `meshrouter peers` shows it.
fn display(uri: &str) -> &str {
    uri.split('?').next().unwrap_or(uri)
}

/// Adds `uri` to `peers`; false (and the file untouched) if it is there already, as written.
pub(crate) fn save_peer(path: &Path, uri: &str) -> anyhow::Result<bool> {
    let mut doc = read(path)?;
    let list = peers(&mut doc)?;
    if list.iter().any(|v| v.as_str() == Some(uri)) {
        return Ok(false);
    }
    list.push(uri);
    write(path, &doc.to_string())?;
    Ok(true)
}

/// Removes from `peers` the entries equal to `uri` as written or as displayed; false (and the
/// file untouched) if none is.
pub(crate) fn forget_peer(path: &Path, uri: &str) -> anyhow::Result<bool> {
    let mut doc = read(path)?;
    let list = peers(&mut doc)?;
    let before = list.len();
    list.retain(|v| v.as_str().is_none_or(|s| s != uri && display(s) != uri));
    if list.len() == before {
        return Ok(false);
    }
    write(path, &doc.to_string())?;
    Ok(true)
}

/// Writes `text` to `path` through a temporary file with the same permissions.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let permissions = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions();
    let temporary = path.with_extension("toml.saving");
    let mut file = std::fs::File::create(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.set_permissions(permissions)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "# The node key.\nprivate_key = \"00\"\n\n# Uplinks.\npeers = [\n    \"udp://a:1\", # the harbour\n]\nlisten = [\"udp://[::]:9100\"] # all\n\n[crdt]\n# Our data.\ndatabase = \"x\"\n";

    #[test]
    fn a_saved_peer_joins_the_list_and_every_comment_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, CONFIG).unwrap();
        assert!(save_peer(&path, "tls://b:443?key=00").unwrap());
        assert!(!save_peer(&path, "tls://b:443?key=00").unwrap(), "twice");
        let text = std::fs::read_to_string(&path).unwrap();
        for kept in [
            "# The node key.",
            "# Uplinks.",
            "# the harbour",
            "# all",
            "# Our data.",
        ] {
            assert!(text.contains(kept), "{kept} lost: {text}");
        }
        let value: toml::Table = text.parse().unwrap();
        let peers: Vec<&str> = value["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(peers, ["udp://a:1", "tls://b:443?key=00"]);
        assert!(forget_peer(&path, "tls://b:443").unwrap(), "by its display");
        assert!(!forget_peer(&path, "tls://b:443").unwrap());
        let value: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        assert_eq!(value["peers"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_file_without_peers_gets_the_list_and_keeps_its_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "private_key = \"00\"\n[crdt]\ndatabase = \"x\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(save_peer(&path, "udp://c:1").unwrap());
        let value: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        assert_eq!(
            value["peers"].as_array().unwrap()[0].as_str(),
            Some("udp://c:1")
        );
        assert_eq!(
            value["crdt"]["database"].as_str(),
            Some("x"),
            "peers not put in [crdt]"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_files_are_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "peers = \"udp://a:1\"\n").unwrap();
        let error = save_peer(&path, "udp://c:1").unwrap_err().to_string();
        assert!(error.contains("not a list"), "{error}");
        std::fs::write(&path, "peers = [\n").unwrap();
        assert!(save_peer(&path, "udp://c:1").is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "peers = [\n");
        assert!(save_peer(&dir.path().join("missing.toml"), "udp://c:1").is_err());
    }
}
