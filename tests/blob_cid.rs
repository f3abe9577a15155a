//! The CIDs this node gives files are the ones an independent implementation computes from the
//! specs (`tests/data/unixfs_cid.py`, standard-library Python): one chunk, several, a partial
//! last chunk, and DAGs of several levels (with a small profile, so that they stay small).

#![cfg(feature = "services")]
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::process::Command;

use meshrouter::services::blobs::import::{Profile, import};

fn python_cid(data: &[u8], profile: Profile) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, data).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/unixfs_cid.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&file)
        .arg(profile.chunk.to_string())
        .arg(profile.max_links.to_string())
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn cids_match_an_independent_implementation() {
    let v1 = Profile::UNIXFS_V1_2025;
    let small = Profile {
        chunk: 7,
        max_links: 5,
    };
    let cases = [
        (0, v1),
        (1, v1),
        (1 << 20, v1),
        ((1 << 20) + 1, v1),
        (3 * (1 << 20) + 12_345, v1),
        (38, small),
        (7 * 5 * 5, small),
        (7 * 5 * 5 * 5 + 3, small),
        (9_999, small),
    ];
    for (len, profile) in cases {
        let data = bytes(len, len as u64 + 1);
        let (root, _) = import(&data, profile);
        let Some(expected) = python_cid(&data, profile) else {
            eprintln!("python3 is not installed: the independent check is skipped");
            return;
        };
        assert_eq!(root.to_string(), expected, "{len} bytes, {profile:?}");
    }
}
