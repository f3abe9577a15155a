//! Architecture guards. The protocol core and the services must stay sans-IO so that the simulator can run
//! them deterministically, and `unsafe` may appear only in `src/sys/`. These tests read the source tree.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::path::{Path, PathBuf};

/// Folders whose code must not do I/O, read a clock or draw global randomness.
const SANS_IO: [&str; 3] = ["src/core", "src/services", "src/sim"];

/// Text that betrays I/O, wall-clock time or global randomness in sans-IO code.
const FORBIDDEN: [&str; 16] = [
    "tokio",
    "std::net::UdpSocket",
    "std::net::TcpStream",
    "std::net::TcpListener",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
    "UnixStream",
    "socket2",
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "rand::rng()",
    "OsRng",
    "getrandom",
    "std::thread",
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// Returns the lines of a file that are code, not comments.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn sans_io_code_does_no_io_and_reads_no_clock_or_global_rng() {
    let mut violations = Vec::new();
    for dir in SANS_IO {
        let files = rust_files(&root().join(dir));
        assert!(!files.is_empty(), "{dir} has no Rust files");
        for file in files {
            for (line_no, line) in code_lines(&file) {
                for needle in FORBIDDEN {
                    if line.contains(needle) {
                        violations.push(format!(
                            "{}:{line_no}: `{needle}` in: {}",
                            file.display(),
                            line.trim()
                        ));
                    }
                }
                // The core and the services (sans-IO too) may be imported; the driver, the config
                // loader and `sys` may not.
                if line.contains("use crate::")
                    && !line.contains("use crate::core")
                    && !line.contains("use crate::services")
                {
                    violations.push(format!(
                        "{}:{line_no}: sans-IO code imports {}",
                        file.display(),
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "sans-IO rule broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn core_does_not_depend_on_services() {
    for file in rust_files(&root().join("src/core")) {
        for (line_no, line) in code_lines(&file) {
            assert!(
                !line.contains("crate::services"),
                "{}:{line_no}: core imports a service",
                file.display()
            );
        }
    }
}

#[test]
fn unsafe_code_only_in_sys() {
    let sys = root().join("src/sys");
    for file in rust_files(&root().join("src")) {
        if file.starts_with(&sys) {
            continue;
        }
        for (line_no, line) in code_lines(&file) {
            assert!(
                !line.contains("unsafe"),
                "{}:{line_no}: `unsafe` outside src/sys",
                file.display()
            );
        }
    }
}

/// Stretching a password (Argon2id, 19 MiB, tens of milliseconds) is slow on purpose: only start-up
/// (`driver/mod.rs`, `driver/passwords.rs`) and `addpeer`'s blocking thread (`driver/peers.rs`) may
/// do it. Everything else, above all what a datagram runs through, only looks stretched keys up.
#[test]
fn passwords_are_stretched_only_at_start_up_and_by_addpeer() {
    const STRETCH: [&str; 3] = ["PasswordKey::derive", "argon2", ".stretch("];
    const ALLOWED: [&str; 4] = [
        "src/core/password.rs",
        "src/driver/passwords.rs",
        "src/driver/mod.rs",
        "src/driver/peers.rs",
    ];
    let mut violations = Vec::new();
    for file in rust_files(&root().join("src")) {
        let relative = file
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        if ALLOWED.contains(&relative.as_str()) || relative.ends_with("/tests.rs") {
            continue;
        }
        // Code before the file's unit tests (`mod tests { ... }` ends a file), which may stretch.
        for (line_no, line) in code_lines(&file)
            .into_iter()
            .take_while(|(_, l)| !l.trim().starts_with("mod tests {"))
        {
            if let Some(needle) = STRETCH.iter().find(|n| line.contains(*n)) {
                violations.push(format!(
                    "{relative}:{line_no}: `{needle}` in: {}",
                    line.trim()
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "a password is stretched outside start-up and addpeer:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_guard_itself_catches_a_violation() {
    let dir = std::env::temp_dir().join(format!("meshrouter-layering-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.rs");
    std::fs::write(
        &file,
        "// Instant::now in a comment is fine\nlet t = std::time::Instant::now();\n",
    )
    .unwrap();
    let hits: Vec<_> = code_lines(&file)
        .into_iter()
        .filter(|(_, l)| l.contains("Instant::now"))
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].0, 2);
}
