//! NodeInfo: this node's description, and asking another node for its own. Documented in
//! `docs/API.md` ("NodeInfo"); the wire is PROTOCOL.md §6e.

use std::net::Ipv6Addr;

use serde::Deserialize;
use tokio::sync::oneshot;

use super::crdt::parse;
use super::handlers::{error, ok};
use super::{ApiRequest, ApiResponse};
use crate::core::identity::PublicKey;
use crate::driver::service_thread::ServiceContext;
use crate::services::identity::did_key::parse_did_key;
use crate::services::names::Resolution;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AskBody {
    /// A hex key, a did:key, a mesh name, or an address a name points at.
    node: String,
}

/// `GET /v1/nodeinfo`: what this node publishes, with its counters.
pub(super) fn own(r: &mut ServiceContext, _: &ApiRequest) -> ApiResponse {
    ok(r.services.nodeinfo.published())
}

/// `POST /v1/nodeinfo`: held until the node answers or the request times out.
pub(super) fn ask(
    r: &mut ServiceContext,
    request: &ApiRequest,
    reply: oneshot::Sender<ApiResponse>,
) {
    let node = parse::<AskBody>(&request.body).and_then(|b| key_of(r, &b.node));
    match node {
        Ok(key) => r.services.nodeinfo.ask(r.clock.now(), key, reply),
        Err(e) => {
            let _ = reply.send(e);
        }
    }
}

/// The key `text` names: a hex key, a did:key, a mesh name, or an address that a mesh name points
/// at (the services know no other addresses: `meshrouter nodeinfo` asks the router for those).
fn key_of(r: &ServiceContext, text: &str) -> Result<PublicKey, ApiResponse> {
    if let Ok(key) = PublicKey::from_hex(text).or_else(|_| parse_did_key(text).map_err(|_| ())) {
        return Ok(key);
    }
    let table = r.services.names.table();
    let name = match text.parse::<Ipv6Addr>() {
        Ok(addr) => table.reverse(&addr).unwrap_or_default(),
        Err(_) => text.to_owned(),
    };
    match table.resolve(&name) {
        Resolution::Address(_, Some(key)) => Ok(key),
        Resolution::NotMesh => Err(error(
            400,
            format!("{text}: give a hex key, a did:key, a mesh name or a mesh address"),
        )),
        _ => Err(error(
            404,
            format!("{text}: no known node (no mesh name points at it)"),
        )),
    }
}
