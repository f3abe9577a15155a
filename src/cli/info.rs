//! `meshrouter info`: what a node key makes of a node, without starting anything.

use std::path::Path;

use meshrouter::config::Config;
use meshrouter::core::address::{node_address, node_subnet};
use meshrouter::services::identity::did_key::did_key;
use serde::Serialize;

/// The facts `info` prints; the daemon's `self` endpoint uses the same field names.
#[derive(Serialize)]
struct NodeInfo {
    public_key: String,
    address: String,
    subnet: String,
    did: String,
}

pub(super) fn run(config_path: &Path, json: bool) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    for warning in &config.warnings {
        eprintln!("meshrouter: warning: {warning}");
    }
    let key = config.node_key.public_key();
    let info = NodeInfo {
        public_key: key.to_hex(),
        address: node_address(&key).to_string(),
        subnet: node_subnet(&key).to_string(),
        did: did_key(&key),
    };
    if json {
        println!("{}", serde_json::to_string(&info)?);
    } else {
        println!("Public key    {}", info.public_key);
        println!("IPv6 address  {}", info.address);
        println!("IPv6 subnet   {}", info.subnet);
        println!("DID           {}", info.did);
    }
    Ok(())
}
