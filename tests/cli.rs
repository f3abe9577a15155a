//! The `meshrouter` binary as an operator uses it: exit codes, one-line errors, and `info` agreeing with the
//! reference vectors.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::net::Ipv6Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const SEED: &str = "3470790270a4706335da0209a4a043babff4200ac0532a630fde1007dea627cd";

fn meshrouter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshrouter"))
        .args(args)
        .output()
        .unwrap()
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_owned()
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stderr.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn info_json_matches_every_vector() {
    let dir = tempfile::tempdir().unwrap();
    let text = include_str!("data/ygg-address.tsv");
    for row in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = row.split('\t').collect();
        let config = write_config(dir.path(), &format!("private_key = \"{}\"\n", f[0]));
        let out = meshrouter(&["info", "--config", &config, "--json"]);
        assert!(out.status.success(), "{:?}", stderr_lines(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let object = json.as_object().unwrap();
        assert_eq!(object.len(), 4, "{json}");
        assert_eq!(json["public_key"], f[1]);
        let address: Ipv6Addr = json["address"].as_str().unwrap().parse().unwrap();
        assert_eq!(address, f[2].parse::<Ipv6Addr>().unwrap());
        let (subnet, len) = json["subnet"].as_str().unwrap().split_once('/').unwrap();
        let (want_subnet, want_len) = f[3].split_once('/').unwrap();
        assert_eq!(
            subnet.parse::<Ipv6Addr>().unwrap(),
            want_subnet.parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(len, want_len);
        assert!(
            json["did"].as_str().unwrap().starts_with("did:key:z6Mk"),
            "{json}"
        );
    }
}

#[test]
fn genconf_writes_a_new_private_file_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let path_str = path.to_str().unwrap();
    let out = meshrouter(&["genconf", "--discovery", "--firewall", "--output", path_str]);
    assert!(out.status.success(), "{:?}", stderr_lines(&out));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let first = std::fs::read_to_string(&path).unwrap();
    assert!(
        first.contains("[[discovery]]\ninterfaces = \".*\""),
        "{first}"
    );
    assert!(first.contains("\nfirewall.inbound = \"deny\"\n"), "{first}");
    // The key is in its own owner-only file beside the configuration, not in the configuration.
    assert!(
        first.contains("\nprivate_key_file = \"config.key\"\n"),
        "{first}"
    );
    assert!(!first.contains("\nprivate_key = "), "{first}");
    let key_mode = std::fs::metadata(dir.path().join("config.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);
    let info = meshrouter(&["info", "-c", path_str]);
    assert!(info.status.success(), "{:?}", stderr_lines(&info));
    let again = meshrouter(&["genconf", "--output", path_str]);
    assert!(!again.status.success());
    assert!(
        stderr_lines(&again)[0].contains("never overwrites"),
        "{:?}",
        stderr_lines(&again)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
    // With the daemon's group (here our own): readable by that group, not by others.
    let own_group = Command::new("id").arg("-gn").output().unwrap().stdout;
    let own_group = String::from_utf8(own_group).unwrap();
    let grouped = dir.path().join("grouped.toml");
    let out = meshrouter(&[
        "genconf",
        "--output",
        grouped.to_str().unwrap(),
        "--group",
        own_group.trim(),
    ]);
    assert!(out.status.success(), "{:?}", stderr_lines(&out));
    let mode = std::fs::metadata(&grouped).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // The group reads the configuration, never the key.
    let key = dir.path().join("grouped.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let grouped_text = std::fs::read_to_string(&grouped).unwrap();
    assert!(!grouped_text.contains("\nprivate_key = "), "{grouped_text}");
    let info = meshrouter(&["info", "-c", grouped.to_str().unwrap()]);
    assert!(info.status.success(), "{:?}", stderr_lines(&info));
    assert!(stderr_lines(&info).is_empty(), "{:?}", stderr_lines(&info));
    // --user: the daemon's user (here ourselves) owns the key and is the configuration's `user`.
    let own_user = Command::new("id").arg("-un").output().unwrap().stdout;
    let own_user = String::from_utf8(own_user).unwrap();
    let owned = dir.path().join("owned.toml");
    let out = meshrouter(&[
        "genconf",
        "--output",
        owned.to_str().unwrap(),
        "--user",
        own_user.trim(),
    ]);
    assert!(out.status.success(), "{:?}", stderr_lines(&out));
    let owned_text = std::fs::read_to_string(&owned).unwrap();
    assert!(
        owned_text.contains(&format!("\nuser = \"{}\"\n", own_user.trim())),
        "{owned_text}"
    );
    let info = meshrouter(&["info", "-c", owned.to_str().unwrap()]);
    assert!(info.status.success(), "{:?}", stderr_lines(&info));
    // A key file already there is never replaced, and nothing is written.
    let taken = dir.path().join("taken.toml");
    std::fs::write(dir.path().join("taken.key"), "someone's key").unwrap();
    let refused = meshrouter(&["genconf", "--output", taken.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(!taken.exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken.key")).unwrap(),
        "someone's key"
    );
    // --key-file names where the key goes, also for a configuration on standard output.
    let elsewhere = dir.path().join("keys/node.key");
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let printed = meshrouter(&["genconf", "--key-file", elsewhere.to_str().unwrap()]);
    assert!(printed.status.success(), "{:?}", stderr_lines(&printed));
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(
        printed.contains(&format!(
            "\nprivate_key_file = \"{}\"\n",
            elsewhere.display()
        )),
        "{printed}"
    );
    let config = write_config(dir.path(), &printed);
    let info = meshrouter(&["info", "-c", &config]);
    assert!(info.status.success(), "{:?}", stderr_lines(&info));
    let no_group = meshrouter(&[
        "genconf",
        "--output",
        dir.path().join("x.toml").to_str().unwrap(),
        "--group",
        "no-such-group-here",
    ]);
    assert!(!no_group.status.success());
    assert!(!dir.path().join("x.toml").exists());
    assert!(!dir.path().join("x.key").exists());
}

#[test]
fn genconf_output_is_a_working_config_with_a_fresh_key() {
    let dir = tempfile::tempdir().unwrap();
    let first = meshrouter(&["genconf"]);
    let second = meshrouter(&["genconf"]);
    assert!(first.status.success() && second.status.success());
    assert_ne!(
        first.stdout, second.stdout,
        "two genconf runs must give two keys"
    );
    let config = write_config(dir.path(), std::str::from_utf8(&first.stdout).unwrap());
    let out = meshrouter(&["info", "-c", &config]);
    assert!(out.status.success(), "{:?}", stderr_lines(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("IPv6 address  20"), "{table}");
}

#[test]
fn bad_configs_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            format!("private_key = \"{SEED}\"\nlisten_addr = 1\n"),
            ":2:1: unknown field `listen_addr`",
        ),
        (
            "private_key = \"zz\"\n".to_owned(),
            ":1:15: private_key: not hexadecimal",
        ),
        ("private_key = [\n".to_owned(), ":1:"),
        (String::new(), "no node key"),
    ];
    for (text, expected) in cases {
        let config = write_config(dir.path(), &text);
        let out = meshrouter(&["info", "--config", &config]);
        assert_eq!(out.status.code(), Some(2), "{text:?}");
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains(expected), "{text:?} gave {lines:?}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn missing_config_exits_2() {
    let out = meshrouter(&["info", "--config", "/nonexistent/meshrouter.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_lines(&out).len(), 1);
}

#[test]
fn version_and_help() {
    let out = meshrouter(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("meshrouter {}", env!("CARGO_PKG_VERSION"))
    );
    let out = meshrouter(&["--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("genconf") && help.contains("info"), "{help}");
    assert_eq!(meshrouter(&["no-such-command"]).status.code(), Some(2));
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &format!("private_key = \"{SEED}\"\n"));
    // Standard output is a pipe nobody reads any more, as in `meshrouter info | true`.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_meshrouter"))
        .args(["info", "-c", &config])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
