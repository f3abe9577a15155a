//! `meshrouter nodeinfo [NODE]`: this node's published description, or another node's asked over
//! the overlay (`/v1/nodeinfo`).

use std::net::Ipv6Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::client::{call, call_waiting};
use super::table::{cell, print};

/// How long to wait for the router to find a node by address (lookup and session).
const FIND_WAIT: Duration = Duration::from_secs(3);

pub(crate) fn run(socket: &Path, node: Option<&str>, json_output: bool) -> anyhow::Result<()> {
    let reply = match node {
        None => call(socket, "GET", "/v1/nodeinfo", None)?,
        Some(node) => {
            let node = match node.parse::<Ipv6Addr>() {
                Ok(addr) => key_of_address(socket, addr).unwrap_or_else(|| node.to_owned()),
                Err(_) => node.to_owned(),
            };
            call_waiting(
                socket,
                "POST",
                "/v1/nodeinfo",
                Some(&json!({ "node": node })),
                Duration::from_secs(10),
            )?
        }
    };
    if json_output {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    let mut rows = vec![
        vec!["key".to_owned(), cell(&reply["key"])],
        vec!["address".to_owned(), cell(&reply["address"])],
    ];
    if let Some(info) = reply["info"].as_object() {
        for (k, v) in info {
            rows.push(vec![k.clone(), cell(v)]);
        }
    }
    if let Some(rtt) = reply["rtt_ms"].as_f64() {
        rows.push(vec!["answered in".into(), format!("{rtt:.1} ms")]);
    }
    print(&["Field", "Value"], &rows);
    Ok(())
}

/// The key of the node that owns `addr`, as the router knows it (a peer, a session, a path). A node
/// it does not know yet is looked up by sending it one datagram (to the discard port, 9): the
/// router finds its key and opens a session, as for any first packet.
fn key_of_address(socket: &Path, addr: Ipv6Addr) -> Option<String> {
    let path = format!("/v1/id/whois?addr={addr}");
    let known = |socket: &Path| -> Option<String> {
        let reply: Value = call(socket, "GET", &path, None).ok()?;
        reply["public_key"].as_str().map(str::to_owned)
    };
    if let Some(key) = known(socket) {
        return Some(key);
    }
    let probe = std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).ok()?;
    let started = Instant::now();
    while started.elapsed() < FIND_WAIT {
        let _ = probe.send_to(b"meshrouter nodeinfo lookup", (addr, 9));
        std::thread::sleep(Duration::from_millis(100));
        if let Some(key) = known(socket) {
            return Some(key);
        }
    }
    None
}
