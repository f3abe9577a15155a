//! Mesh names: the table, resolving, claiming and releasing. Documented in `docs/API.md` ("Mesh
//! names"); the rule is PROTOCOL.md §6d.

use std::net::Ipv6Addr;

use serde::Deserialize;
use serde_json::{Value, json};

use super::crdt::parse;
use super::handlers::{error, ok};
use super::{ApiRequest, ApiResponse};
use crate::core::address::node_address;
use crate::core::identity::PublicKey;
use crate::driver::names::Claimed;
use crate::driver::service_thread::ServiceContext;
use crate::services::names::{NameTable, Resolution};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    /// A label (`clinic`), a name (`clinic.mesh`), or for resolve also an address.
    name: String,
    /// Claim: the node the name points at (an admin's claim only; default this node).
    #[serde(rename = "for")]
    target: Option<String>,
}

fn label(name: &str) -> &str {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.strip_suffix(".mesh").unwrap_or(name)
}

/// `GET /v1/names`: every label with its claims, the holder first.
pub(super) fn names(r: &mut ServiceContext, _: &ApiRequest) -> ApiResponse {
    let table = r.services.names.table();
    let me = r.services.crdt.as_ref().map(|c| c.host.key().public_key());
    let names: Vec<Value> = table
        .labels()
        .map(|(label, entries)| {
            let claims: Vec<Value> = (entries.iter().enumerate())
                .map(|(rank, e)| {
                    json!({
                        "name": NameTable::name_of(label, e, rank),
                        "holds": rank == 0,
                        "owner": e.owner.to_hex(),
                        "key": e.target().to_hex(),
                        "address": node_address(&e.target()).to_string(),
                        "since_ms": e.claim.since,
                        "by_admin": e.by_admin,
                        "ours": Some(e.owner) == me,
                    })
                })
                .collect();
            json!({ "label": label, "claims": claims })
        })
        .collect();
    ok(json!({ "names": names }))
}

/// `POST /v1/names/resolve`: a name to its address, or an address to its name.
pub(super) fn resolve(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    let body = match parse::<NameBody>(&request.body) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let table = r.services.names.table();
    if let Ok(addr) = body.name.parse::<Ipv6Addr>() {
        return match table.reverse(&addr) {
            Some(name) => ok(json!({ "address": addr.to_string(), "name": name })),
            None => error(404, format!("{addr} is not a mesh address (200::/7)")),
        };
    }
    match table.resolve(&body.name) {
        Resolution::Address(addr, key) => ok(json!({
            "name": body.name,
            "address": addr.to_string(),
            "key": key.map(|k| k.to_hex()),
        })),
        Resolution::NoSuchName => error(404, format!("{}: no such mesh name", body.name)),
        Resolution::NotMesh => error(
            400,
            format!("{}: not a mesh name (NAME.mesh) or address", body.name),
        ),
    }
}

/// `POST /v1/names/claim`: claims a name for this node (an admin: for any node).
pub(super) fn claim(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    let body = match parse::<NameBody>(&request.body) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let target = match body.target.as_deref().map(PublicKey::from_hex).transpose() {
        Ok(t) => t,
        Err(e) => return error(400, format!("for: {e}")),
    };
    let names = &mut r.services.names;
    let wall_millis = crate::driver::clock::wall_micros() / 1000;
    let response = with_crdt_names(r.clock.now(), &mut r.services.crdt, |crdt, now| {
        names
            .claim(crdt, now, wall_millis, label(&body.name), target)
            .map_err(|e| error(400, e))
            .map(|c| json!({ "name": label(&body.name), "new": c == Claimed::New }))
    });
    refresh_after(r);
    response
}

/// `POST /v1/names/release`: gives up this node's claim on a name.
pub(super) fn release(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    let body = match parse::<NameBody>(&request.body) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let names = &mut r.services.names;
    let wall_millis = crate::driver::clock::wall_micros() / 1000;
    let response = with_crdt_names(r.clock.now(), &mut r.services.crdt, |crdt, now| match names
        .release(crdt, now, wall_millis, label(&body.name))
    {
        Ok(true) => Ok(json!({ "name": label(&body.name), "released": true })),
        Ok(false) => Err(error(
            404,
            format!("this node has no claim on {}", body.name),
        )),
        Err(e) => Err(error(400, e)),
    });
    refresh_after(r);
    response
}

/// Runs `f` with the CRDT service (claims live there).
fn with_crdt_names(
    now: crate::core::time::Instant,
    crdt: &mut Option<crate::driver::crdt::DaemonCrdt>,
    f: impl FnOnce(
        &mut crate::driver::crdt::DaemonCrdt,
        crate::core::time::Instant,
    ) -> Result<Value, ApiResponse>,
) -> ApiResponse {
    match crdt {
        Some(crdt) => f(crdt, now).map_or_else(|e| e, ok),
        None => error(
            503,
            "the CRDT service is off (crdt.database = \"none\", or its database failed to open): names need it",
        ),
    }
}

/// The table shows a claim or release at once.
fn refresh_after(r: &mut ServiceContext) {
    r.services.refresh_names(r.clock.now());
}
