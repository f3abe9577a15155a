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

/// The one exception: the simulator hands a time window's nodes, whose events are independent, to
/// threads, and applies what they did in node order, so threads never change a run
/// (`tests/sim_basic.rs` checks that).
fn allowed(file: &Path, needle: &str) -> bool {
    needle == "std::thread" && file.ends_with("src/sim/parallel.rs")
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
                    if line.contains(needle) && !allowed(&file, needle) {
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
/// (`driver/mod.rs`, `driver/passwords.rs`), `addpeer`'s blocking thread (`driver/peers.rs`) and a
/// reload's (`driver/reload.rs`) may do it. Everything else, above all what a datagram runs
/// through, only looks stretched keys up.
#[test]
fn passwords_are_stretched_only_at_start_up_and_by_addpeer() {
    const STRETCH: [&str; 3] = ["PasswordKey::derive", "argon2", ".stretch("];
    const ALLOWED: [&str; 5] = [
        "src/core/password.rs",
        "src/driver/passwords.rs",
        "src/driver/mod.rs",
        "src/driver/peers.rs",
        "src/driver/reload.rs",
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

/// The top-level module of `src/driver/` a file belongs to (`router`, `api`, `transport`, ...).
fn driver_module(relative: &Path) -> Option<String> {
    let rest = relative.strip_prefix("src/driver").ok()?;
    let first = rest.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// Which driver modules a file imports: `crate::driver::X`, and `super::X` (from a file of the
/// driver's own folder or a subfolder's mod.rs) or `super::super::X` (from a subfolder's other
/// files), grouped imports included.
fn driver_imports(file: &Path, in_subfolder: bool, modules: &[String]) -> Vec<String> {
    let text: String = code_lines(file)
        .into_iter()
        .take_while(|(_, l)| !l.trim().starts_with("mod tests {"))
        .map(|(_, l)| l + "\n")
        .collect();
    let prefixes: &[&str] = if in_subfolder {
        &["crate::driver::", "super::super::"]
    } else {
        &["crate::driver::", "super::"]
    };
    let mut found = Vec::new();
    for prefix in prefixes {
        for (at, _) in text.match_indices(prefix) {
            // `super::super::` also contains `super::`: only the longest prefix counts.
            if !in_subfolder && text[..at].ends_with("super::") {
                continue;
            }
            let rest = &text[at + prefix.len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap_or("").trim())
                    .collect(),
                None => vec![
                    rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or(""),
                ],
            };
            for name in names {
                if modules.iter().any(|m| m == name) && !found.iter().any(|f| f == name) {
                    found.push(name.to_owned());
                }
            }
        }
    }
    found
}

/// The daemon's modules import each other in one direction: the router imports its parts (links,
/// peers, discovery, transports, services), the API imports the router, and nothing imports back,
/// so each part can be read, tested and changed on its own. `driver/mod.rs` wires them together and
/// is left out. Run with `--nocapture` to see the graph.
#[test]
fn driver_modules_import_each_other_without_a_circle() {
    let driver = root().join("src/driver");
    let mut modules: Vec<String> = std::fs::read_dir(&driver)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            (name != "mod.rs").then(|| name.trim_end_matches(".rs").to_owned())
        })
        .collect();
    modules.sort();
    let mut edges: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for file in rust_files(&driver) {
        let relative = file.strip_prefix(root()).unwrap().to_owned();
        if relative == Path::new("src/driver/mod.rs") {
            continue;
        }
        let module = driver_module(&relative).unwrap();
        // In a subfolder's own files `super::` is the subfolder; in its mod.rs, the driver.
        let in_subfolder = relative.components().count() > 3 && !relative.ends_with("mod.rs");
        for import in driver_imports(&file, in_subfolder, &modules) {
            let targets = edges.entry(module.clone()).or_default();
            if import != module && !targets.contains(&import) {
                targets.push(import);
            }
        }
    }
    for (module, targets) in &edges {
        println!("{module} -> {}", targets.join(", "));
    }
    // Depth-first search for a path back to where it started.
    fn circle(
        at: &str,
        edges: &std::collections::BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == at) {
            let mut found = path[start..].to_vec();
            found.push(at.to_owned());
            return Some(found);
        }
        path.push(at.to_owned());
        for next in edges.get(at).into_iter().flatten() {
            if let Some(found) = circle(next, edges, path) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    for module in &modules {
        let found = circle(module, &edges, &mut Vec::new());
        assert!(
            found.is_none(),
            "import circle: {}",
            found.unwrap().join(" -> ")
        );
    }
    assert!(
        edges["api"].contains(&"router".to_owned()),
        "the guard reads imports"
    );
}

/// The router's state is one struct and its methods live in its file: the other modules are handed
/// the parts they need instead of growing `impl Router` blocks.
#[test]
fn router_methods_live_in_the_router_file() {
    for file in rust_files(&root().join("src/driver")) {
        if file.ends_with("router.rs") {
            continue;
        }
        for (line_no, line) in code_lines(&file) {
            assert!(
                !line.trim_start().starts_with("impl Router"),
                "{}:{line_no}: impl Router outside src/driver/router.rs",
                file.display()
            );
        }
    }
}
