//! `meshrouter names` and `meshrouter resolve`: mesh names through the daemon's local API
//! (`/v1/names*`).

use std::path::Path;

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::call;
use super::table::{cell, print, short_key};

/// Names subcommands (none: list every name).
#[derive(Subcommand)]
pub(crate) enum NamesCommand {
    /// List every claimed name: which claim holds it, the others (reachable as
    /// NAME.<key prefix>.mesh), and their addresses.
    List,
    /// Claim NAME.mesh for this node. A name another node holds stays theirs; this claim is then
    /// reachable as NAME.<key prefix>.mesh until they release it.
    Claim {
        /// The name (`clinic` or `clinic.mesh`).
        name: String,
        /// Admins only: the node (hex key) the name points at.
        #[arg(long = "for", value_name = "KEY")]
        target: Option<String>,
    },
    /// Give up this node's claim on NAME.
    Release {
        /// The name.
        name: String,
    },
}

pub(crate) fn run(
    socket: &Path,
    command: Option<NamesCommand>,
    json_output: bool,
) -> anyhow::Result<()> {
    let (path, body) = match &command {
        None | Some(NamesCommand::List) => ("/v1/names", None),
        Some(NamesCommand::Claim { name, target }) => (
            "/v1/names/claim",
            Some(json!({ "name": name, "for": target })),
        ),
        Some(NamesCommand::Release { name }) => {
            ("/v1/names/release", Some(json!({ "name": name })))
        }
    };
    let method = if body.is_some() { "POST" } else { "GET" };
    let reply = call(socket, method, path, body.as_ref())?;
    if json_output {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    match command {
        None | Some(NamesCommand::List) => show(&reply),
        Some(NamesCommand::Claim { .. }) if reply["new"] == true => {
            println!(
                "claimed {}.mesh (see `meshrouter names` for who holds it)",
                cell(&reply["name"])
            );
        }
        Some(NamesCommand::Claim { .. }) => {
            println!("this node already claims {}.mesh", cell(&reply["name"]));
        }
        Some(NamesCommand::Release { .. }) => println!("released {}.mesh", cell(&reply["name"])),
    }
    Ok(())
}

fn show(reply: &Value) {
    let mut rows = Vec::new();
    for label in reply["names"].as_array().into_iter().flatten() {
        for claim in label["claims"].as_array().into_iter().flatten() {
            let mut who = short_key(&claim["key"]);
            if claim["ours"] == true {
                who.push_str(" (this node)");
            }
            let status = match (claim["holds"] == true, claim["by_admin"] == true) {
                (true, true) => "holds (admin)",
                (true, false) => "holds",
                (false, _) => "later claim",
            };
            rows.push(vec![
                cell(&claim["name"]),
                cell(&claim["address"]),
                who,
                status.into(),
            ]);
        }
    }
    if rows.is_empty() {
        println!(
            "no mesh names yet (claim one with `meshrouter names claim NAME` or `name = \"...\"` in the config)"
        );
        return;
    }
    print(&["Name", "Address", "Node", "Status"], &rows);
}

/// `meshrouter resolve NAME|ADDRESS`.
pub(crate) fn resolve(socket: &Path, name: &str, json_output: bool) -> anyhow::Result<()> {
    let reply = call(
        socket,
        "POST",
        "/v1/names/resolve",
        Some(&json!({ "name": name })),
    )?;
    if json_output {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else if name.parse::<std::net::Ipv6Addr>().is_ok() {
        println!("{}", cell(&reply["name"]));
    } else {
        println!("{}", cell(&reply["address"]));
    }
    Ok(())
}
