//! The daemon's local API without root: daemons run with `tun_name = "none"` (pure routers) on
//! loopback UDP, so these tests need no privileges. They check that two daemons peer, that the
//! control commands agree with the API, and that malformed or oversized requests get a 4xx and never
//! take the daemon down.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meshrouter");

/// A daemon that is killed when the test ends.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes the configuration of daemon `name` (a fresh key, no TUN device, its API socket in `dir`,
/// then `extra`); returns the configuration's and the socket's paths.
fn write_config(dir: &Path, name: &str, extra: &str) -> (PathBuf, PathBuf) {
    let key = Command::new(BIN).arg("genconf").output().unwrap().stdout;
    let key_line = String::from_utf8(key)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("private_key = "))
        .unwrap()
        .to_owned();
    let socket = dir.join(format!("{name}.sock"));
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "{key_line}\ntun_name = \"none\"\napi_socket = \"{}\"\n{extra}\n",
            socket.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    (config, socket)
}

fn start(dir: &Path, name: &str, extra: &str) -> Daemon {
    let database = format!(
        "crdt.database = \"{}\"\n{extra}",
        dir.join(format!("{name}.crdt.redb")).display()
    );
    let (config, socket) = write_config(dir, name, &database);
    let child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Daemon { child, socket };
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&daemon.socket).is_err() {
        assert!(Instant::now() < deadline, "daemon {name} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon
}

/// Daemons a and b, b peering with a over loopback UDP.
fn linked_pair(dir: &Path) -> (Daemon, Daemon) {
    let port = free_udp_port();
    let a = start(dir, "a", &format!("listen = [\"udp://127.0.0.1:{port}\"]"));
    let b = start(dir, "b", &format!("peers = [\"udp://127.0.0.1:{port}\"]"));
    (a, b)
}

fn ctl(daemon: &Daemon, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--socket")
        .arg(&daemon.socket)
        .output()
        .unwrap()
}

fn ctl_json(daemon: &Daemon, command: &str) -> serde_json::Value {
    let out = ctl(daemon, &[command, "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Sends raw bytes, returns the status code of the reply.
fn raw(daemon: &Daemon, request: &[u8]) -> u16 {
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(request);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_daemons_peer_and_the_commands_show_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let a = start(
        dir.path(),
        "a",
        &format!("listen = [\"udp://127.0.0.1:{port}\"]"),
    );
    let a_self = ctl_json(&a, "self");
    let key_a = a_self["public_key"].as_str().unwrap().to_owned();
    let b = start(
        dir.path(),
        "b",
        &format!("peers = [\"udp://127.0.0.1:{port}?key={key_a}\"]"),
    );
    let key_b = ctl_json(&b, "self")["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    for field in ["public_key", "address", "subnet", "did"] {
        assert!(a_self[field].is_string(), "self lacks {field}");
    }
    wait_for("the link", || {
        ctl_json(&a, "peers")["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["up"] == true && p["key"] == key_b.as_str())
    });
    let peers = ctl_json(&b, "peers");
    let peers = peers["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0]["key"], key_a.as_str());
    assert_eq!(peers[0]["inbound"], false);
    // Both end up with the same root.
    wait_for("one root", || {
        ctl_json(&a, "self")["root"] == ctl_json(&b, "self")["root"]
    });
    // The table form names the columns an operator expects.
    let table = String::from_utf8(ctl(&b, &["peers"]).stdout).unwrap();
    for column in [
        "URI",
        "State",
        "Dir",
        "IP Address",
        "Key",
        "Uptime",
        "RTT",
        "RX",
        "TX",
    ] {
        assert!(table.contains(column), "no {column} column:\n{table}");
    }
    assert!(table.contains("Up") && table.contains("Out"), "{table}");
    for command in ["tree", "paths", "sessions", "counters"] {
        assert!(ctl(&a, &[command]).status.success(), "{command}");
    }
    // removepeer drops the link; addpeer brings it back.
    let uri = format!("udp://127.0.0.1:{port}?key={key_a}");
    let out = ctl(&b, &["removepeer", &uri]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        ctl_json(&b, "peers")["peers"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let out = ctl(&b, &["addpeer", &uri]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        ctl(&b, &["addpeer", &uri]).status.code(),
        Some(1),
        "duplicate"
    );
    let bad = ctl(&b, &["addpeer", "quic://x:1"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported scheme"));
    wait_for("the link again", || {
        ctl_json(&b, "peers")["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["up"] == true)
    });
}

/// Passwords are stretched at start-up (a's listener, b's peer) and by `addpeer` (c's two peers, on
/// a blocking thread): the same password links, another one gets silence.
#[test]
fn passwords_from_the_configuration_and_from_addpeer_link() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let a = start(
        dir.path(),
        "a",
        &format!("listen = [\"udp://127.0.0.1:{port}?password=island\"]"),
    );
    let key_a = ctl_json(&a, "self")["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let peer = |password: &str| format!("udp://127.0.0.1:{port}?key={key_a}&password={password}");
    let b = start(
        dir.path(),
        "b",
        &format!("peers = [\"{}\"]", peer("island")),
    );
    let c = start(dir.path(), "c", "");
    for password in ["reef", "island"] {
        let out = ctl(&c, &["addpeer", &peer(password)]);
        assert!(out.status.success(), "{out:?}");
    }
    let links = |d: &Daemon| {
        let peers = ctl_json(d, "peers")["peers"].as_array().unwrap().clone();
        let up = peers.iter().filter(|p| p["up"] == true).count();
        (peers.len(), up)
    };
    wait_for("b's link", || links(&b) == (1, 1));
    wait_for("c's link with the right password", || links(&c) == (2, 1));
    wait_for("a's links", || links(&a).1 == 2);
    // The wrong password never links.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(links(&c), (2, 1));
    assert_eq!(links(&a), (2, 2));
}

#[test]
fn malformed_and_oversized_requests_get_4xx_and_the_daemon_survives() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), "d", "");
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"garbage\r\n\r\n".to_vec(), 400),
        (b"GET /v1/self HTTP/1.1\r\n".to_vec(), 400), // head never ends
        (b"GET /v1/nothing HTTP/1.1\r\n\r\n".to_vec(), 404),
        (b"PUT /v1/self HTTP/1.1\r\n\r\n".to_vec(), 405),
        (
            format!("GET /v1/self HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000)).into_bytes(),
            431,
        ),
        (
            b"POST /v1/peers HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n".to_vec(),
            413,
        ),
        (
            b"POST /v1/peers HTTP/1.1\r\nContent-Length: 5\r\n\r\n{nope".to_vec(),
            400,
        ),
        (
            b"POST /v1/peers HTTP/1.1\r\nContent-Length: 12\r\n\r\n{\"uri\": 42}".to_vec(),
            400,
        ),
        (
            b"POST /v1/peers HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            411,
        ),
        (
            b"DELETE /v1/peers HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"uri\": \"udp://x:1\"}"
                .to_vec(),
            404,
        ),
        ((0..=255u8).cycle().take(9000).collect(), 400),
    ];
    for (request, expected) in cases {
        let status = raw(&d, &request);
        assert_eq!(
            status,
            expected,
            "request {:?}",
            String::from_utf8_lossy(&request[..request.len().min(60)])
        );
    }
    assert_eq!(raw(&d, b"GET /v1/self HTTP/1.1\r\n\r\n"), 200);
    // A client that connects and says nothing does not block others.
    let _idle = UnixStream::connect(&d.socket).unwrap();
    assert_eq!(raw(&d, b"GET /v1 HTTP/1.1\r\n\r\n"), 200);
}

/// Sends `request` and returns the status of the reply and how long it took (status 0: no reply
/// within `wait`).
fn timed(daemon: &Daemon, request: &[u8], wait: Duration) -> (u16, Duration) {
    let start = Instant::now();
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let _ = stream.write_all(request);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let status = String::from_utf8_lossy(&reply)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, start.elapsed())
}

#[test]
fn a_body_over_its_routes_limit_is_refused_from_the_head_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), "d", "");
    // A megabyte announced for a peer URI: 413 before any of it is sent.
    let (status, took) = timed(
        &d,
        b"POST /v1/peers HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(status, 413, "after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // GET /v1 lists every route with its limit.
    let mut stream = UnixStream::connect(&d.socket).unwrap();
    stream.write_all(b"GET /v1 HTTP/1.1\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let body: serde_json::Value =
        serde_json::from_str(reply.split_once("\r\n\r\n").unwrap().1).unwrap();
    let limit = |method: &str, path: &str| {
        body["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["method"] == method && e["path"] == path)
            .and_then(|e| e["max_body"].as_u64())
            .unwrap()
    };
    assert_eq!(limit("POST", "/v1/peers"), 1024);
    assert_eq!(limit("GET", "/v1/self"), 0);
    assert!(limit("POST", "/v1/crdt/import") > 16 << 20);
}

#[test]
fn clients_that_never_send_or_never_read_do_not_starve_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), "d", "");
    // 32 connections that say nothing...
    let idle: Vec<UnixStream> = (0..32)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, took) = timed(
        &d,
        b"GET /v1/self HTTP/1.1\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(status, 200, "after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // ... and 32 five-minute long-polls whose answers nobody reads.
    let watches: Vec<UnixStream> = (0..32)
        .map(|_| {
            let mut s = UnixStream::connect(&d.socket).unwrap();
            s.write_all(b"GET /v1/crdt/watch?since=1000000&timeout=300 HTTP/1.1\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, took) = timed(
        &d,
        b"GET /v1/self HTTP/1.1\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(status, 200, "after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    drop((idle, watches));
}

#[test]
fn control_commands_explain_a_missing_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let out = Command::new(BIN)
        .args(["peers", "--socket", socket.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let message = String::from_utf8(out.stderr).unwrap();
    assert!(message.contains("is meshrouter running?"), "{message}");
    // A stale socket file with nobody behind it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let out = Command::new(BIN)
        .args(["self", "--socket", socket.to_str().unwrap()])
        .output()
        .unwrap();
    let message = String::from_utf8(out.stderr).unwrap();
    assert!(message.contains("not running"), "{message}");
}

#[test]
fn crdt_writes_sync_between_two_daemons_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = linked_pair(dir.path());
    let ok = |d: &Daemon, args: &[&str]| {
        let out = ctl(d, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        out
    };
    ok(
        &a,
        &[
            "crdt", "incr", "island", "ledger", "--key", "fish", "--by", "5",
        ],
    );
    ok(
        &b,
        &[
            "crdt", "incr", "island", "ledger", "--key", "fish", "--by", "-2",
        ],
    );
    ok(
        &a,
        &["crdt", "put", "island", "notes", "calm sea", "--kind", "mv"],
    );
    let value = |d: &Daemon, doc: &str| {
        let out = ctl(d, &["crdt", "get", "island", doc, "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map(|v| v["value"].clone())
            .unwrap_or_default()
    };
    wait_for("the ledger to converge", || {
        value(&a, "ledger") == serde_json::json!({"fish": 3})
            && value(&b, "ledger") == serde_json::json!({"fish": 3})
    });
    wait_for("the notes to reach b", || {
        value(&b, "notes") == serde_json::json!(["calm sea"])
    });
    // Text: both edit one document at once; both end with the same text, and `get` prints it.
    ok(
        &a,
        &[
            "crdt",
            "edit",
            "island",
            "log",
            "--insert",
            "0",
            "boats out",
        ],
    );
    wait_for("the log to reach b", || {
        value(&b, "log") == serde_json::json!("boats out")
    });
    ok(
        &a,
        &["crdt", "edit", "island", "log", "--insert", "9", ", 3 back"],
    );
    ok(
        &b,
        &["crdt", "edit", "island", "log", "--insert", "0", "06:00 "],
    );
    ok(&b, &["crdt", "edit", "island", "log", "--delete", "6", "1"]);
    wait_for("the log to converge", || {
        value(&a, "log") == serde_json::json!("06:00 oats out, 3 back")
            && value(&b, "log") == value(&a, "log")
    });
    let printed = ok(&a, &["crdt", "get", "island", "log"]);
    assert!(
        String::from_utf8_lossy(&printed.stdout).contains("\n06:00 oats out, 3 back\n"),
        "{printed:?}"
    );
    let past = ctl(
        &a,
        &["crdt", "edit", "island", "log", "--delete", "20", "5"],
    );
    assert!(
        String::from_utf8_lossy(&past.stderr).contains("past the end of the text"),
        "{past:?}"
    );
    // Watch answers at once for a client that has seen nothing yet.
    let watched = ok(&b, &["crdt", "watch", "--once", "--timeout", "1"]);
    let line: serde_json::Value = serde_json::from_slice(&watched.stdout).unwrap();
    assert!(line["version"].as_u64().unwrap() >= 2, "{line}");
    // A document's schema is fixed: adding a set member to a counter map is a usage error.
    let wrong = ctl(&a, &["crdt", "add", "island", "ledger", "x"]);
    assert_eq!(wrong.status.code(), Some(2), "{wrong:?}");
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"MRDROP\x01 not really").unwrap();
    let refused = ctl(&a, &["crdt", "import", garbage.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("drop"),
        "{refused:?}"
    );
}

#[test]
fn a_member_enrolled_on_one_node_signs_in_on_another_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let a = start(
        dir.path(),
        "a",
        &format!("listen = [\"udp://127.0.0.1:{port}\"]"),
    );
    let run = |d: &Daemon, args: &[&str]| {
        let out = ctl(d, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let json = |d: &Daemon, args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&run(d, &[args, &["--json"]].concat())).unwrap()
    };
    let a_self = json(&a, &["id", "show"]);
    let a_did = a_self["did"].as_str().unwrap().to_owned();
    assert!(a_did.starts_with("did:key:z6Mk"), "{a_self}");
    let b = start(
        dir.path(),
        "b",
        &format!("peers = [\"udp://127.0.0.1:{port}\"]\nidentity.admins = [\"{a_did}\"]"),
    );
    // whois: a knows its own address; b learns a's once they peer.
    let a_addr = a_self["address"].as_str().unwrap();
    assert_eq!(json(&a, &["id", "whois", a_addr])["known_as"], "self");
    wait_for("b to know a", || {
        ctl(&b, &["id", "whois", a_addr, "--json"]).status.success()
    });
    assert_eq!(json(&b, &["id", "whois", a_addr])["did"], a_did.as_str());
    // Proof of possession over the overlay.
    let proof = json(&b, &["id", "prove", &a_did]);
    assert_eq!(proof["proven"], true, "{proof}");

    let user_key = dir.path().join("user.key");
    let user_did = run(&a, &["id", "keygen", "-o", user_key.to_str().unwrap()]);
    let mode = std::fs::metadata(&user_key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let key_arg = user_key.to_str().unwrap();
    // Not a member yet: refused, unless any DID is accepted.
    let refused = ctl(&b, &["id", "login", "--key", key_arg]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not an enrolled member"),
        "{refused:?}"
    );
    run(&b, &["id", "login", "--key", key_arg, "--any"]);
    run(&a, &["id", "enroll", &user_did, "--role", "medic"]);
    wait_for("the enrollment to reach b", || {
        ctl(&b, &["id", "login", "--key", key_arg]).status.success()
    });
    let session = json(&b, &["id", "login", "--key", key_arg]);
    assert_eq!(session["claims"]["roles"], serde_json::json!(["medic"]));
    let token = session["token"].as_str().unwrap();
    // The session is b's (aud = b's DID): a refuses it unless told to verify on b's behalf.
    let elsewhere = ctl(&a, &["id", "jwt", "verify", token]);
    assert!(
        String::from_utf8_lossy(&elsewhere.stderr).contains("made for audience"),
        "{elsewhere:?}"
    );
    let b_did = json(&b, &["id", "show"])["did"]
        .as_str()
        .unwrap()
        .to_owned();
    let verified = json(&a, &["id", "jwt", "verify", token, "--audience", &b_did]);
    assert_eq!(verified["claims"]["sub"], user_did.as_str());
    assert_eq!(verified["revocation_checked"], true);

    // Batch verification: one line per token, in order; a forged one is refused on its own.
    let forged = format!("{}x", &token[..token.len() - 1]);
    let batch = ctl(&b, &["id", "jwt", "verify", token, &forged, token]);
    assert!(!batch.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&batch.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{batch:?}");
    assert_eq!(lines[0]["valid"], true);
    assert_eq!(lines[2]["valid"], true);
    let refusal = lines[1]["error"].as_str().unwrap();
    assert!(refusal.contains("signature"), "{refusal}");

    // A credential and a delegation issued on a verify on b.
    let unsigned = dir.path().join("vc.json");
    std::fs::write(
        &unsigned,
        format!(
            r#"{{"id": "urn:uuid:medic-1", "credentialSubject": {{"id": "{user_did}", "licence": "first aid"}}}}"#
        ),
    )
    .unwrap();
    let signed = dir.path().join("vc.signed.json");
    std::fs::write(
        &signed,
        run(&a, &["id", "vc", "issue", unsigned.to_str().unwrap()]),
    )
    .unwrap();
    let vc = json(&b, &["id", "vc", "verify", signed.to_str().unwrap()]);
    assert_eq!(vc["issuer"], a_did.as_str());
    let grant = run(
        &a,
        &[
            "id",
            "delegate",
            "--to",
            &user_did,
            "--with",
            "crdt://village/*",
            "--can",
            "crdt/write",
        ],
    );
    let authorized = json(
        &b,
        &[
            "id",
            "authorize",
            &grant,
            "--with",
            "crdt://village/ledger",
            "--can",
            "crdt/write",
        ],
    );
    assert_eq!(authorized["chain"], serde_json::json!([a_did]));
    let wider = ctl(
        &b,
        &[
            "id",
            "authorize",
            &grant,
            "--with",
            "crdt://town/ledger",
            "--can",
            "crdt/write",
        ],
    );
    assert!(!wider.status.success(), "{wider:?}");

    // The registry is written only by the identity service.
    let sneaky = ctl(
        &b,
        &[
            "crdt", "put", "identity", "members", "x", "--key", &user_did,
        ],
    );
    assert!(!sneaky.status.success(), "{sneaky:?}");

    // Revocations on a reach b: the member, and the credential.
    run(&a, &["id", "revoke", &user_did, "--reason", "lost phone"]);
    run(&a, &["id", "revoke", "urn:uuid:medic-1"]);
    // The same revocation again (same signer, target and second: the same token) is a no-op.
    run(&a, &["id", "revoke", "urn:uuid:medic-1"]);
    wait_for("the revocation to reach b", || {
        let out = ctl(&b, &["id", "login", "--key", key_arg]);
        String::from_utf8_lossy(&out.stderr).contains("lost phone")
    });
    let vc_refused = ctl(&b, &["id", "vc", "verify", signed.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&vc_refused.stderr).contains("revoked"),
        "{vc_refused:?}"
    );
    let jwt_refused = ctl(&b, &["id", "jwt", "verify", token]);
    assert!(!jwt_refused.status.success(), "{jwt_refused:?}");
    let members = json(&b, &["id", "members"]);
    assert_eq!(members["members"][0]["revoked"], true, "{members}");
}

#[test]
fn the_daemon_tells_systemd_when_it_is_ready_and_when_it_stops() {
    // systemd's side of Type=notify: a datagram socket named by NOTIFY_SOCKET.
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (config, socket) = write_config(dir.path(), "notified", "crdt.database = \"none\"");
    let child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut daemon = Daemon { child, socket };
    let mut message = [0u8; 256];
    let n = notify.recv(&mut message).unwrap();
    assert_eq!(message[..n].trim_ascii(), b"READY=1");
    // Ready means ready: the API answers at once.
    assert!(UnixStream::connect(&daemon.socket).is_ok());
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let n = notify.recv(&mut message).unwrap();
    assert_eq!(message[..n].trim_ascii(), b"STOPPING=1");
    assert!(daemon.child.wait().unwrap().success());
}

/// The did:key of a running daemon.
fn did_of(d: &Daemon) -> String {
    let out = ctl(d, &["id", "show", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["did"].as_str().unwrap().to_owned()
}

/// Runs a control command that must succeed; its standard output.
fn ok(d: &Daemon, args: &[&str]) -> String {
    let out = ctl(d, args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn an_owned_namespace_is_shared_read_only_then_for_writing_then_taken_back() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = linked_pair(dir.path());
    let (a_did, b_did) = (did_of(&a), did_of(&b));
    let ns = format!("~{}/plan", a_did.trim_start_matches("did:key:"));
    let run = |d: &Daemon, args: &[&str]| ctl(d, args);
    ok(&a, &["crdt", "incr", &ns, "boats", "--by", "3"]);
    // b may not even write to a's namespace, and is never sent it.
    let refused = run(&b, &["crdt", "incr", &ns, "boats"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refused"),
        "{refused:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let held = run(&b, &["crdt", "get", &ns, "boats"]);
    assert!(
        !held.status.success(),
        "b holds a's private namespace: {held:?}"
    );
    // Read-only: b gets it and reads it; its writes are refused.
    ok(&a, &["crdt", "grant", &ns, &b_did, "read"]);
    wait_for("the namespace to reach b", || {
        run(&b, &["crdt", "get", &ns, "boats", "--json"])
            .status
            .success()
    });
    let refused = run(&b, &["crdt", "incr", &ns, "boats"]);
    assert!(!refused.status.success(), "{refused:?}");
    // Writing: b's write reaches a.
    ok(&a, &["crdt", "grant", &ns, &b_did, "write"]);
    wait_for("b to learn it may write", || {
        run(&b, &["crdt", "incr", &ns, "boats"]).status.success()
    });
    let value = |d: &Daemon| -> serde_json::Value {
        let out = run(d, &["crdt", "get", &ns, "boats", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()["value"]
            .clone()
    };
    wait_for("b's write to reach a", || value(&a) == serde_json::json!(4));
    // Taken back: b keeps read; its next write is refused at home.
    ok(&a, &["crdt", "revoke", &ns, &b_did, "--to", "read"]);
    wait_for("the revocation to reach b", || {
        !run(&b, &["crdt", "incr", &ns, "boats"]).status.success()
    });
    let access: serde_json::Value =
        serde_json::from_str(&ok(&a, &["crdt", "access", &ns, "--json"])).unwrap();
    assert_eq!(access["class"], "owned");
    assert_eq!(access["owner"], a_did.as_str());
    assert_eq!(
        access["members"],
        serde_json::json!([{ "subject": b_did, "level": "read" }])
    );
    assert_eq!(access["changes"].as_array().unwrap().len(), 3);
    assert_eq!(value(&a), serde_json::json!(4));
    // The access document is written only by grants and revocations.
    let direct = run(&a, &["crdt", "add", &ns, "_access", "x"]);
    assert!(!direct.status.success(), "{direct:?}");
}

#[test]
fn a_delegation_token_lets_a_node_write_before_any_grant_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = linked_pair(dir.path());
    let (a_did, b_did) = (did_of(&a), did_of(&b));
    let ns = format!("~{}/plan", a_did.trim_start_matches("did:key:"));
    ok(&a, &["crdt", "incr", &ns, "boats", "--by", "3"]);
    let resource = format!("crdt://{ns}");
    let token = ok(
        &a,
        &[
            "id",
            "delegate",
            "--to",
            &b_did,
            "--with",
            &resource,
            "--can",
            "crdt/write",
        ],
    );
    let token = token.trim();
    // Someone else's token, or more than it gives: refused.
    let wider = ctl(&b, &["crdt", "redeem", &ns, token, "--level", "manage"]);
    assert!(!wider.status.success(), "{wider:?}");
    assert!(
        String::from_utf8_lossy(&wider.stderr).contains("at most write"),
        "{wider:?}"
    );
    let redeemed: serde_json::Value =
        serde_json::from_str(&ok(&b, &["crdt", "redeem", &ns, token, "--json"])).unwrap();
    assert_eq!(redeemed["you"], "write", "{redeemed}");
    assert_eq!(redeemed["changes"][0]["op"], "redeem");
    assert_eq!(redeemed["changes"][0]["delegated_by"], a_did.as_str());
    ok(&b, &["crdt", "incr", &ns, "boats"]);
    let value = |d: &Daemon| -> serde_json::Value {
        let out = ctl(d, &["crdt", "get", &ns, "boats", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()["value"]
            .clone()
    };
    wait_for("b's write to reach a", || value(&a) == serde_json::json!(4));
    wait_for("a's earlier write to reach b", || {
        value(&b) == serde_json::json!(4)
    });
    // a sees the redemption as counting, by its own token.
    let access: serde_json::Value =
        serde_json::from_str(&ok(&a, &["crdt", "access", &ns, "--json"])).unwrap();
    assert_eq!(
        access["members"],
        serde_json::json!([{ "subject": b_did, "level": "write" }])
    );
}
