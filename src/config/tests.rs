use std::os::unix::fs::PermissionsExt;

use super::*;

const SEED: &str = "3470790270a4706335da0209a4a043babff4200ac0532a630fde1007dea627cd";
const PUBLIC: &str = "ffbbc89ea3b287796ada7a79689641e27b782b79b461c1063ba8d4a594115013";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("/etc/meshrouter/test.toml"))
}

fn error_line(text: &str) -> String {
    parse(text)
        .err()
        .expect("config should be refused")
        .to_string()
}

#[test]
fn inline_key_is_used() {
    let config = parse(&format!("private_key = \"{SEED}\"\n")).unwrap();
    assert_eq!(config.node_key.public_key().to_hex(), PUBLIC);
}

#[test]
fn example_parses_and_asks_for_a_key() {
    let message = error_line(EXAMPLE);
    assert!(message.contains("no node key"), "{message}");
    let filled = EXAMPLE.replace(EXAMPLE_KEY_LINE, &format!("private_key = \"{SEED}\""));
    assert_ne!(
        filled, EXAMPLE,
        "the example must contain the key line genconf replaces"
    );
    parse(&filled).unwrap();
    assert_eq!(
        EXAMPLE.matches(EXAMPLE_KEY_FILE_LINE).count(),
        1,
        "the example must contain the key-file line genconf replaces"
    );
    assert_eq!(
        EXAMPLE.matches(EXAMPLE_USER_LINE).count(),
        1,
        "the example must contain the user line genconf --user replaces"
    );
}

#[test]
fn unknown_key_names_key_and_line() {
    let message = error_line(&format!("private_key = \"{SEED}\"\n\nlistne = []\n"));
    assert!(
        message.starts_with("/etc/meshrouter/test.toml:3:1: unknown field `listne`"),
        "{message}"
    );
    assert!(!message.contains('\n'));
}

#[test]
fn malformed_key_names_key_and_line() {
    let message = error_line("# comment\nprivate_key = \"abc\"\n");
    assert_eq!(
        message,
        "/etc/meshrouter/test.toml:2:15: private_key: expected 64 hex characters (a 32-byte seed) or 128 \
         (Yggdrasil's seed followed by public key), got 3 characters"
    );
}

#[test]
fn syntax_error_is_one_line_with_position() {
    let message = error_line("private_key = \"abc\n");
    assert!(
        message.starts_with("/etc/meshrouter/test.toml:1:"),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
    let message = error_line("private_key = 5\n");
    assert!(
        message.starts_with("/etc/meshrouter/test.toml:1:15: invalid type"),
        "{message}"
    );
}

#[test]
fn both_keys_are_refused() {
    let message = error_line(&format!(
        "private_key = \"{SEED}\"\nprivate_key_file = \"k\"\n"
    ));
    assert!(
        message.contains(":2:20: private_key_file: set either"),
        "{message}"
    );
}

#[test]
fn key_file_is_read_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("node.key");
    std::fs::write(&key_path, format!("{SEED}{PUBLIC}\n")).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, "private_key_file = \"node.key\"\n").unwrap();
    let config = Config::load(&config_path).unwrap();
    assert_eq!(config.node_key.public_key().to_hex(), PUBLIC);
    assert!(config.warnings.is_empty());
}

#[test]
fn readable_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("node.key");
    std::fs::write(&key_path, SEED).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, "private_key_file = \"node.key\"\n").unwrap();
    let message = Config::load(&config_path).err().unwrap().to_string();
    assert!(
        message.contains("mode 640 lets group or other access the key"),
        "{message}"
    );
}

#[test]
fn world_readable_inline_key_warns() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, format!("private_key = \"{SEED}\"\n")).unwrap();
    std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = Config::load(&config_path).unwrap();
    assert_eq!(config.warnings.len(), 1);
}

#[test]
fn group_readable_inline_key_warns() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, format!("private_key = \"{SEED}\"\n")).unwrap();
    std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let config = Config::load(&config_path).unwrap();
    assert_eq!(config.warnings.len(), 1);
    assert!(
        config.warnings[0].contains("the members of its group"),
        "{:?}",
        config.warnings
    );
    // Not so for a key in its own file, or a config only its owner reads.
    std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Config::load(&config_path).unwrap().warnings.is_empty());
}

#[test]
fn missing_file_is_a_clear_error() {
    let message = Config::load(Path::new("/nonexistent/meshrouter.toml"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("/nonexistent/meshrouter.toml: cannot read: "),
        "{message}"
    );
}

#[test]
fn every_documented_setting_parses_when_uncommented() {
    let mut text = format!("private_key = \"{SEED}\"\n");
    // Inside a commented multi-line array (firewall.rule = [ ... ]).
    let mut in_array = false;
    for line in EXAMPLE.lines() {
        let Some(setting) = line.strip_prefix("# ") else {
            continue;
        };
        if in_array {
            text.push_str(setting);
            text.push('\n');
            in_array = setting != "]";
            continue;
        }
        let is_setting = setting.starts_with("[[discovery]]")
            || setting.split_once(" = ").is_some_and(|(k, _)| {
                k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    || k.starts_with("crdt.")
                    || k.starts_with("identity.")
                    || k.starts_with("firewall.")
                    || k.starts_with("dns.")
                    || k.starts_with("nodeinfo.")
                    || k.starts_with("blobs.")
            });
        in_array = is_setting && setting.ends_with(" = [");
        if is_setting && !setting.starts_with("private_key") {
            text.push_str(setting);
            text.push('\n');
        }
    }
    // Top-level keys must come before the [[discovery]] table they follow in the file.
    let (top, table): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| {
        !(l.starts_with("[[discovery]]")
            || l.starts_with("interfaces")
            || l.starts_with("transport"))
    });
    let text = format!("{}\n{}\n", top.join("\n"), table.join("\n"));
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let d = &config.daemon;
    assert_eq!(d.tun_mtu, 1280);
    assert_eq!(
        (d.firewall.inbound, d.firewall.rules.len()),
        (crate::core::firewall::rule::Action::Deny, 3)
    );
    assert_eq!(
        (d.peers.len(), d.listen.len(), d.discovery.len()),
        (2, 3, 1)
    );
    assert_eq!(d.peers[1].scheme, crate::config::Scheme::Tls);
    assert_eq!(d.listen[2].scheme, crate::config::Scheme::Tls);
    assert!(d.discovery[0].udp && d.discovery[0].ethernet);
    assert!(
        d.discovery[0].interfaces.is_match("wlan0") && !d.discovery[0].interfaces.is_match("veth0")
    );
    assert_eq!(d.user.as_deref(), Some("meshrouter"));
    assert_eq!(
        d.crdt.database.as_deref(),
        Some(std::path::Path::new("/var/lib/meshrouter/crdt.redb"))
    );
    assert_eq!(d.crdt.peers.len(), 1);
    assert_eq!(
        (d.crdt.quota.changes, d.crdt.quota.bytes),
        (1_000_000, 268_435_456)
    );
    assert_eq!(d.identity.admins.len(), 1);
}

#[test]
fn daemon_settings_are_checked() {
    for (setting, message) in [
        ("tun_mtu = 1279", "tun_mtu: must be 1280 to 65535"),
        ("tun_name = \"a/b\"", "tun_name:"),
        ("peers = [\"quic://h:1\"]", "peers: unsupported scheme"),
        (
            "listen = [\"tcp://h:1?mtu=1400\"]",
            "listen: bad parameter \"mtu\"",
        ),
        (
            "listen = [\"udp://[::]:1?key=zz\"]",
            "listen: bad parameter \"key\"",
        ),
        ("allowed_public_keys = [\"00\"]", "allowed_public_keys:"),
        (
            "group_password = \"\"",
            "group_password: must be 1 to 64 bytes",
        ),
        (
            "[[discovery]]\ninterfaces = \"(\"",
            "discovery.interfaces: bad regex",
        ),
        (
            "[[discovery]]\ninterfaces = \"x\"\ntransport = \"tcp\"",
            "discovery.transport",
        ),
        ("lan = [\"wlan0\", \"wlan0\"]", "lan: wlan0 is listed twice"),
        (
            "lan = [\"meshrouter0\"]",
            "lan: the TUN interface cannot be a LAN",
        ),
        ("lan = [\"eth0:1\"]", "lan: expected interface names"),
        ("max_links = 0", "max_links: must be 1 to 65536"),
        ("max_links = 65537", "max_links: must be 1 to 65536"),
        ("max_links = -1", "max_links: must be 1 to 65536"),
        (
            "metrics_listen = \"localhost\"",
            "metrics_listen: expected an address and port",
        ),
        (
            "status_listen = [\"8090\"]",
            "status_listen: expected addresses and ports",
        ),
        ("name = \"Clinic\"", "name: expected 1 to 63"),
        ("blobs.max_bytes = 1000", "blobs.max_bytes: at least"),
        ("dns.upstream = [\"resolver\"]", "dns.upstream: expected IP"),
        ("dns.listen = [\"::1\", \"x\"]", "dns.listen: expected IP"),
    ] {
        let text = format!("private_key = \"{SEED}\"\n{setting}\n");
        let line = error_line(&text);
        assert!(line.contains(message), "{setting}: {line}");
        assert!(line.contains("test.toml:"), "{line}");
    }
    let d = parse(&format!(
        "private_key = \"{SEED}\"\ntun_name = \"none\"\napi_socket = \"none\"\n"
    ))
    .unwrap()
    .daemon;
    assert!(d.tun_name.is_none() && d.api_socket.is_none());
    let lan = parse(&format!(
        "private_key = \"{SEED}\"\nlan = [\"wlan0\", \"eth1\"]\nlan_default_route = true\n"
    ))
    .unwrap()
    .daemon;
    assert_eq!(lan.lan, ["wlan0", "eth1"]);
    assert!(lan.lan_default_route);
    assert!(lan.dns.runs(&lan.lan) && !lan.dns.runs(&[]));
    let named = parse(&format!(
        "private_key = \"{SEED}\"\nname = \"clinic.mesh\"\ndns.upstream = [\"2001:db8::53\", \"192.0.2.1:5353\"]\n"
    ))
    .unwrap()
    .daemon;
    assert_eq!(named.name.as_deref(), Some("clinic"));
    let info: serde_json::Value = serde_json::from_str(&named.nodeinfo).unwrap();
    assert_eq!(
        (info["name"].as_str(), info["software"].as_str()),
        (Some("clinic.mesh"), Some("meshrouter"))
    );
    let described = parse(&format!(
        "private_key = \"{SEED}\"\n[nodeinfo]\nlocation = \"harbour\"\nservices = [\"web\"]\n"
    ))
    .unwrap()
    .daemon;
    let info: serde_json::Value = serde_json::from_str(&described.nodeinfo).unwrap();
    assert_eq!(
        (info["location"].as_str(), info["services"][0].as_str()),
        (Some("harbour"), Some("web"))
    );
    let private = parse(&format!(
        "private_key = \"{SEED}\"\nnodeinfo_privacy = true\nname = \"x\"\n[nodeinfo]\nlocation = \"harbour\"\n"
    ))
    .unwrap()
    .daemon;
    let info: serde_json::Value = serde_json::from_str(&private.nodeinfo).unwrap();
    assert_eq!(info.as_object().unwrap().len(), 2, "{info}");
    let big = error_line(&format!(
        "private_key = \"{SEED}\"\n[nodeinfo]\nnotes = \"{}\"\n",
        "x".repeat(5000)
    ));
    assert!(
        big.contains("nodeinfo: a NodeInfo may take 4096 bytes"),
        "{big}"
    );
    assert_eq!(
        named.dns.upstream,
        [
            "[2001:db8::53]:53".parse().unwrap(),
            "192.0.2.1:5353".parse().unwrap()
        ]
    );
}

#[test]
fn crdt_settings_are_checked() {
    let key = format!("private_key = \"{SEED}\"\n");
    let off = parse(&format!("{key}[crdt]\ndatabase = \"none\"\n")).unwrap();
    assert!(off.daemon.crdt.database.is_none());
    let some = parse(&format!("{key}crdt.namespaces = [\"stock\"]\n")).unwrap();
    assert!(some.daemon.crdt.namespaces.allows("stock"));
    assert!(!some.daemon.crdt.namespaces.allows("census"));
    let bad_name = error_line(&format!("{key}crdt.namespaces = [\"\"]\n"));
    assert!(
        bad_name.contains("2:") && bad_name.contains("namespace"),
        "{bad_name}"
    );
    let bad_peer = error_line(&format!("{key}crdt.peers.nothex = [\"a\"]\n"));
    assert!(bad_peer.contains("crdt.peers"), "{bad_peer}");
    let quotas = parse(&format!(
        "{key}[crdt]\nmax_namespace_changes = 10\nmax_writer_changes = 4\nmax_writer_bytes = 4096\n"
    ))
    .unwrap();
    let quota = quotas.daemon.crdt.quota;
    assert_eq!(
        (quota.changes, quota.writer_changes, quota.writer_bytes),
        (10, 4, 4096)
    );
}

#[test]
fn identity_admins_are_checked() {
    let key = format!("private_key = \"{SEED}\"\n");
    let did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
    let ok = parse(&format!("{key}[identity]\nadmins = [\"{did}#frag\"]\n")).unwrap();
    assert_eq!(ok.daemon.identity.admins, vec![did.to_owned()]);
    let bad = error_line(&format!("{key}identity.admins = [\"did:web:x\"]\n"));
    assert!(
        bad.contains("2:") && bad.contains("identity.admins"),
        "{bad}"
    );
}

#[test]
fn firewall_rules_are_read_and_checked() {
    use crate::core::firewall::rule::{Action, Direction, Peer, Protocol};
    let key = format!("private_key = \"{SEED}\"\n");
    let did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
    let text = format!(
        "{key}[firewall]\ninbound = \"deny\"\nmax_connections = 500\n\
         [[firewall.rule]]\naction = \"allow\"\nproto = \"tcp\"\nport = 8080\nfrom = [\"{did}\", \"200:1::/64\"]\n\
         [[firewall.rule]]\naction = \"reject\"\nproto = \"tcp\"\nport = \"9000-9100\"\nto = [\"300:1:2:3::42\"]\nrole = \"medic\"\n\
         [[firewall.rule]]\naction = \"deny\"\ndirection = \"out\"\nto = [\"{did}\"]\ncomment = \"no\"\n"
    );
    let f = parse(&text).unwrap().daemon.firewall;
    assert_eq!(
        (f.inbound, f.outbound, f.max_connections),
        (Action::Deny, Action::Allow, 500)
    );
    assert_eq!(f.rules.len(), 3);
    assert_eq!(f.rules[0].protocol, Protocol::Tcp);
    assert_eq!(f.rules[0].ports.unwrap().first, 8080);
    assert!(matches!(f.rules[0].peers[0], Peer::Key(_)));
    assert!(matches!(f.rules[0].peers[1], Peer::Prefix(_)));
    assert_eq!(f.rules[1].roles, vec!["medic".to_owned()]);
    assert_eq!(f.rules[1].local.len(), 1);
    assert_eq!(f.rules[2].direction, Direction::Out);
    assert!(matches!(f.rules[2].peers[0], Peer::Key(_)));
    for (bad, says) in [
        ("[firewall]\ninbound = \"drop\"\n", "firewall.inbound"),
        (
            "[[firewall.rule]]\naction = \"allow\"\nport = 22\n",
            "ports need proto",
        ),
        (
            "[[firewall.rule]]\naction = \"allow\"\nproto = \"tcp\"\nport = \"9-1\"\n",
            "firewall.rule.port",
        ),
        (
            "[[firewall.rule]]\naction = \"allow\"\nfrom = [\"nonsense\"]\n",
            "did:key",
        ),
        (
            "[[firewall.rule]]\naction = \"allow\"\nto = [\"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK\"]\n",
            "keys name the other side",
        ),
        (
            "[[firewall.rule]]\naction = \"allow\"\ndirection = \"out\"\nrole = \"medic\"\n",
            "inbound rules only",
        ),
        (
            "[[firewall.rule]]\naction = \"allow\"\nproto = \"sctp\"\n",
            "firewall.rule.proto",
        ),
        ("[firewall]\nmax_connections = 0\n", "max_connections"),
        (
            "[[firewall.rule]]\naction = \"allow\"\nfrom = \"200::1\"\n",
            "expected a sequence",
        ),
    ] {
        let line = error_line(&format!("{key}{bad}"));
        assert!(line.contains(says), "{bad}: {line}");
    }
    assert!(!parse(&key).unwrap().daemon.firewall.active());
    let many: String = (0..=super::firewall::MAX_RULES)
        .map(|_| "[[firewall.rule]]\naction = \"deny\"\n")
        .collect();
    let line = error_line(&format!("{key}{many}"));
    assert!(line.contains("at most 1024 rules"), "{line}");
}
