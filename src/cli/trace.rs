//! `meshrouter trace ADDR|KEY|NAME`: the way to a node hop by hop, like mtr for the overlay
//! (`POST /v1/trace`).

use std::path::Path;

use serde_json::{Value, json};

use super::client::call;
use super::table::{cell, print, short_key};

/// Traces the way to `target` and prints it.
pub(crate) fn run(socket: &Path, target: &str, json_output: bool) -> anyhow::Result<()> {
    let address = resolve(socket, target)?;
    let reply = call(
        socket,
        "POST",
        "/v1/trace",
        Some(&json!({ "target": address })),
    )?;
    if json_output {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        if reply["result"] != "reached" {
            std::process::exit(1);
        }
        return Ok(());
    }
    match (reply["destination"].as_str(), reply["found_ms"].as_f64()) {
        (Some(key), Some(ms)) => println!(
            "trace to {target} ({}): node {}, coordinates {}, found in {ms:.0} ms",
            cell(&reply["target"]),
            short_key(&Value::String(key.to_owned())),
            cell(&reply["coords"]),
        ),
        _ => println!("trace to {target} ({})", cell(&reply["target"])),
    }
    let rows: Vec<Vec<String>> = (reply["hops"].as_array().into_iter().flatten())
        .map(|h| {
            vec![
                cell(&h["hop"]),
                short_key(&h["key"]),
                cell(&h["address"]),
                h["rtt_ms"]
                    .as_f64()
                    .map_or("-".into(), |ms| format!("{ms:.2} ms")),
                match h["next"].as_str() {
                    Some(next) => {
                        format!("{} to {}", cell(&h["outcome"]), &next[..8.min(next.len())])
                    }
                    None => cell(&h["outcome"]),
                },
            ]
        })
        .collect();
    if !rows.is_empty() {
        print(&["Hop", "Key", "Address", "RTT", "Did"], &rows);
    }
    println!("{}", cell(&reply["result"]));
    match reply["session"].as_str() {
        Some("up") => println!("session with it: up"),
        Some("opening") => println!(
            "session with it: opening (if it never comes up, the node refuses it: a different group_password)"
        ),
        Some(_) => println!("session with it: none yet (traffic opens one)"),
        None => {}
    }
    if reply["result"] != "reached" {
        std::process::exit(1);
    }
    Ok(())
}

/// An overlay address as given, else a key (or the key a mesh name stands for).
fn resolve(socket: &Path, target: &str) -> anyhow::Result<String> {
    if target.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(target.to_owned());
    }
    super::client::node_key(socket, target)
}
