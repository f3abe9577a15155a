//! `meshrouter self|peers|listeners|tree|paths|sessions|counters|addpeer|removepeer`: thin clients of
//! the daemon's local API.

use std::path::Path;

use serde_json::{Value, json};

use super::client::call;
use super::table::{bytes, cell, duration, print, short_key};

/// What to ask the daemon.
pub(crate) enum Query {
    SelfInfo,
    Peers,
    Listeners,
    Tree,
    Paths,
    Sessions,
    Counters,
    Firewall,
    Reload,
    AddPeer(String),
    RemovePeer(String),
}

pub(crate) fn run(socket: &Path, query: Query, json_output: bool) -> anyhow::Result<()> {
    let (method, path, body) = match &query {
        Query::SelfInfo => ("GET", "/v1/self", None),
        Query::Peers => ("GET", "/v1/peers", None),
        Query::Listeners => ("GET", "/v1/listeners", None),
        Query::Tree => ("GET", "/v1/tree", None),
        Query::Paths => ("GET", "/v1/paths", None),
        Query::Sessions => ("GET", "/v1/sessions", None),
        Query::Counters => ("GET", "/v1/counters", None),
        Query::Firewall => ("GET", "/v1/firewall", None),
        Query::Reload => ("POST", "/v1/reload", None),
        Query::AddPeer(uri) => ("POST", "/v1/peers", Some(json!({ "uri": uri }))),
        Query::RemovePeer(uri) => ("DELETE", "/v1/peers", Some(json!({ "uri": uri }))),
    };
    let reply = call(socket, method, path, body.as_ref())?;
    if json_output {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    match query {
        Query::SelfInfo => show_self(&reply),
        Query::Peers => show_peers(&reply),
        Query::Listeners => show_listeners(&reply),
        Query::Tree => show_keyed(&reply["entries"], "Parent", |e| short_key(&e["parent"])),
        Query::Paths => show_keyed(&reply["paths"], "Path", |e| cell(&e["path"])),
        Query::Sessions => show_sessions(&reply),
        Query::Counters => println!("{}", serde_json::to_string_pretty(&reply)?),
        Query::Firewall => show_firewall(&reply),
        Query::Reload => show_reload(&reply),
        Query::AddPeer(_) => println!("added {}", cell(&reply["added"])),
        Query::RemovePeer(_) => println!("removed {}", cell(&reply["removed"])),
    }
    Ok(())
}

/// What a reload applied, what needs a restart, and what failed.
fn show_reload(v: &Value) {
    println!("reloaded {}", cell(&v["reloaded"]));
    let list = |key: &str| -> Vec<String> {
        (v[key].as_array().into_iter().flatten())
            .map(|x| x.as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let applied = list("applied");
    if applied.is_empty() {
        println!("  nothing changed that applies while running");
    }
    for line in applied {
        println!("  applied: {line}");
    }
    for field in list("restart_needed") {
        println!("  changed, applies at the next start: {field}");
    }
    for error in list("errors") {
        println!("  failed: {error}");
    }
}

fn show_self(v: &Value) {
    let rows = [
        ("Public key", cell(&v["public_key"])),
        ("IPv6 address", cell(&v["address"])),
        ("IPv6 subnet", cell(&v["subnet"])),
        ("DID", cell(&v["did"])),
        ("Version", cell(&v["version"])),
        (
            "TUN",
            v["tun"].as_object().map_or("none".into(), |t| {
                format!("{} (MTU {})", cell(&t["name"]), cell(&t["mtu"]))
            }),
        ),
        ("Tree root", cell(&v["root"])),
        ("Coordinates", cell(&v["coords"])),
        ("Peers", cell(&v["peers"])),
        ("Uptime", duration(v["uptime"].as_f64().unwrap_or(0.0))),
    ];
    for (name, value) in rows {
        println!("{name:<14}{value}");
    }
}

fn show_peers(v: &Value) {
    let empty = Vec::new();
    let last_error = |p: &Value| match (p["last_error"].as_str(), p["last_error_age"].as_f64()) {
        (Some(e), Some(age)) => format!("{} ago: {e}", duration(age)),
        (Some(e), None) => e.to_owned(),
        _ => "-".into(),
    };
    let mut rows: Vec<Vec<String>> = v["peers"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|p| {
            vec![
                cell(&p["uri"]),
                cell(&p["transport"]),
                if p["up"].as_bool() == Some(true) {
                    "Up"
                } else {
                    "Down"
                }
                .into(),
                if p["inbound"].as_bool() == Some(true) {
                    "In"
                } else {
                    "Out"
                }
                .into(),
                cell(&p["address"]),
                short_key(&p["key"]),
                p["uptime"].as_f64().map_or("-".into(), duration),
                p["rtt_ms"]
                    .as_f64()
                    .map_or("-".into(), |r| format!("{r:.2}ms")),
                cell(&p["cost"]),
                bytes(p["rx_bytes"].as_u64().unwrap_or(0)),
                bytes(p["tx_bytes"].as_u64().unwrap_or(0)),
                format!("{}/s", bytes(p["rx_rate"].as_u64().unwrap_or(0))),
                format!("{}/s", bytes(p["tx_rate"].as_u64().unwrap_or(0))),
                cell(&p["priority"]),
                last_error(p),
            ]
        })
        .collect();
    // Configured peers not reached yet (name not resolved, connection refused): no link to show,
    // but why.
    for p in v["configured"].as_array().unwrap_or(&empty) {
        if p["connected"].as_bool() == Some(true) {
            continue;
        }
        let mut row = vec![cell(&p["uri"]), cell(&p["transport"]), "Dialling".into()];
        row.extend(std::iter::repeat_n("-".to_owned(), 11));
        row.push(last_error(p));
        rows.push(row);
    }
    print(
        &[
            "URI",
            "Via",
            "State",
            "Dir",
            "IP Address",
            "Key",
            "Uptime",
            "RTT",
            "Cost",
            "RX",
            "TX",
            "Down",
            "Up",
            "Pr",
            "Last Error",
        ],
        &rows,
    );
}

fn show_listeners(v: &Value) {
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = v["listeners"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|l| {
            vec![
                cell(&l["uri"]),
                cell(&l["transport"]),
                cell(&l["links_up"]),
                cell(&l["waiting"]),
            ]
        })
        .collect();
    print(&["URI", "Via", "Links up", "Waiting"], &rows);
}

fn show_keyed(entries: &Value, extra: &str, column: impl Fn(&Value) -> String) {
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = entries
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|e| vec![cell(&e["key"]), cell(&e["address"]), column(e)])
        .collect();
    print(&["Public Key", "IP Address", extra], &rows);
}

fn show_firewall(v: &Value) {
    if v["active"].as_bool() != Some(true) {
        println!("firewall off: everything passes (configure [firewall] to filter)");
        return;
    }
    let list = |x: &Value| {
        let items: Vec<String> = x.as_array().into_iter().flatten().map(cell).collect();
        if items.is_empty() {
            "any".into()
        } else {
            items.join(",")
        }
    };
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = (v["rules"].as_array().unwrap_or(&empty).iter())
        .enumerate()
        .map(|(i, r)| {
            vec![
                (i + 1).to_string(),
                cell(&r["direction"]),
                cell(&r["action"]),
                cell(&r["proto"]),
                r["port"].as_str().unwrap_or("any").into(),
                list(&r["from"]),
                list(&r["to"]),
                r["role"].as_str().unwrap_or("-").into(),
                cell(&r["packets"]),
                bytes(r["bytes"].as_u64().unwrap_or(0)),
                cell(&r["comment"]),
            ]
        })
        .collect();
    print(
        &[
            "#", "Dir", "Action", "Proto", "Port", "From", "To", "Role", "Packets", "Bytes",
            "Comment",
        ],
        &rows,
    );
    for side in ["inbound", "outbound"] {
        let p = &v[side];
        println!(
            "{side} default: {} ({} packets, {})",
            cell(&p["policy"]),
            cell(&p["packets"]),
            bytes(p["bytes"].as_u64().unwrap_or(0))
        );
    }
    let c = &v["counters"];
    println!(
        "established {}, allowed {}, denied {}, rejected {}, malformed {}, revoked {}{}",
        cell(&c["established"]),
        cell(&c["allowed"]),
        cell(&c["denied"]),
        cell(&c["rejected"]),
        cell(&c["malformed"]),
        cell(&c["revoked"]),
        if v["log_only"].as_bool() == Some(true) {
            format!(
                "; LOG ONLY: {} would have been dropped",
                cell(&c["would_drop"])
            )
        } else {
            String::new()
        }
    );
    let t = &v["connections"];
    println!(
        "connections tracked {} of {} (evicted {}, expired {})",
        cell(&t["tracked"]),
        cell(&t["max"]),
        cell(&t["evicted"]),
        cell(&t["expired"])
    );
}

fn show_sessions(v: &Value) {
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = v["sessions"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|s| {
            vec![
                cell(&s["key"]),
                cell(&s["address"]),
                if s["up"].as_bool() == Some(true) {
                    "Up"
                } else {
                    "Pending"
                }
                .into(),
                cell(&s["cipher"]),
                bytes(s["rx_bytes"].as_u64().unwrap_or(0)),
                bytes(s["tx_bytes"].as_u64().unwrap_or(0)),
                duration(s["idle"].as_f64().unwrap_or(0.0)),
            ]
        })
        .collect();
    print(
        &[
            "Public Key",
            "IP Address",
            "State",
            "Cipher",
            "RX",
            "TX",
            "Idle",
        ],
        &rows,
    );
}
