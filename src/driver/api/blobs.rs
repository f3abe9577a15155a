//! Content-addressed files on this node: add (blocks, then the file), read blocks, list, pin,
//! remove. Documented in `docs/API.md` ("Blobs"). `meshrouter blob` is the client: it cuts the file
//! and computes the CIDs itself, so the daemon never reads a user's file.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Value, json};

use super::crdt::parse;
use super::handlers::{error, ok};
use super::{ApiRequest, ApiResponse};
use crate::driver::service_thread::ServiceContext;
use crate::services::blobs::{Cid, Root, StoreError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockBody {
    cid: String,
    /// Base64.
    data: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchBody {
    cid: String,
    /// Nodes to ask (hex keys), nearest first; default: the neighbours.
    #[serde(default)]
    from: Vec<String>,
    /// Keep it whatever the limit (default false: a fetched file is a cache).
    #[serde(default)]
    pin: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CidBody {
    cid: String,
    /// add: keep it whatever the limit (default true); pin: pin (true) or unpin.
    pin: Option<bool>,
}

fn cid(text: &str) -> Result<Cid, ApiResponse> {
    text.parse().map_err(|e| error(400, format!("{text}: {e}")))
}

fn failure(e: StoreError) -> ApiResponse {
    let status = match e {
        StoreError::Mismatch(_) | StoreError::BadNode(..) => 400,
        StoreError::Missing(_) => 409,
        StoreError::Full { .. } => 507,
        StoreError::Unknown(_) => 404,
        StoreError::Io(_) => 500,
    };
    error(status, e.to_string())
}

fn root_json(cid: &Cid, root: &Root) -> Value {
    json!({
        "cid": cid.to_string(),
        "size": root.size,
        "stored": root.stored,
        "blocks": root.blocks.len(),
        "pinned": root.pinned,
    })
}

/// `GET /v1/blobs`: the files held.
pub(super) fn list(r: &mut ServiceContext, _: &ApiRequest) -> ApiResponse {
    match r.services.blobs.list() {
        Ok((roots, used)) => ok(json!({
            "blobs": roots.iter().map(|(c, root)| root_json(c, root)).collect::<Vec<_>>(),
            "used": used,
            "max_bytes": r.services.blobs.max_bytes(),
            "blocks_dir": r.services.blobs.blocks_dir(),
        })),
        Err(e) => failure(e),
    }
}

/// `POST /v1/blobs/block`: keeps one block of a file being added.
pub(super) fn put_block(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    let result = parse::<BlockBody>(&request.body).and_then(|b| {
        let cid = cid(&b.cid)?;
        let bytes = BASE64
            .decode(b.data.as_bytes())
            .map_err(|e| error(400, format!("data: {e}")))?;
        r.services.blobs.put_block(&cid, &bytes).map_err(failure)?;
        Ok(json!({ "cid": cid.to_string(), "bytes": bytes.len() }))
    });
    result.map_or_else(|e| e, ok)
}

/// `POST /v1/blobs/add`: records a file whose blocks were put.
pub(super) fn add(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    let result = parse::<CidBody>(&request.body).and_then(|b| {
        let root = cid(&b.cid)?;
        let added = (r.services.blobs)
            .add(root, b.pin.unwrap_or(true))
            .map_err(failure)?;
        Ok(root_json(&root, &added))
    });
    result.map_or_else(|e| e, ok)
}

/// `POST /v1/blobs/read`: one block of a file held.
pub(super) fn read(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    let result = parse::<CidBody>(&request.body).and_then(|b| {
        let cid = cid(&b.cid)?;
        match r.services.blobs.block(&cid).map_err(failure)? {
            Some(bytes) => Ok(json!({ "cid": cid.to_string(), "data": BASE64.encode(bytes) })),
            None => Err(error(404, format!("block {cid} is not held here"))),
        }
    });
    result.map_or_else(|e| e, ok)
}

/// `POST /v1/blobs/pin`: pins or unpins a file.
pub(super) fn pin(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    let result = parse::<CidBody>(&request.body).and_then(|b| {
        let root = cid(&b.cid)?;
        let pinned = b.pin.unwrap_or(true);
        r.services.blobs.pin(&root, pinned).map_err(failure)?;
        Ok(json!({ "cid": root.to_string(), "pinned": pinned }))
    });
    result.map_or_else(|e| e, ok)
}

/// `POST /v1/blobs/remove`: forgets a file.
pub(super) fn remove(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    let result = parse::<CidBody>(&request.body).and_then(|b| {
        let root = cid(&b.cid)?;
        r.services.blobs.remove(&root).map_err(failure)?;
        Ok(json!({ "cid": root.to_string(), "removed": true }))
    });
    result.map_or_else(|e| e, ok)
}

/// `POST /v1/blobs/fetch`: starts fetching a file from other nodes (answered at once; progress in
/// `GET /v1/blobs/fetches`).
pub(super) fn fetch(r: &mut ServiceContext, request: &ApiRequest) -> ApiResponse {
    let result = parse::<FetchBody>(&request.body).and_then(|b| {
        let root = cid(&b.cid)?;
        let from = (b.from.iter())
            .map(|k| {
                crate::core::identity::PublicKey::from_hex(k)
                    .map_err(|e| error(400, format!("from: {k}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if r.services.blobs.has_file(&root).map_err(failure)? {
            return Ok(json!({ "cid": root.to_string(), "state": "held" }));
        }
        let now = r.clock.now();
        let announced = r.services.announced_holders(&root);
        let asked = (r.services.exchange)
            .start(now, root, &from, &announced, b.pin, &mut r.services.blobs)
            .map_err(|e| error(409, e))?;
        Ok(json!({ "cid": root.to_string(), "state": "fetching", "holders": asked }))
    });
    result.map_or_else(|e| e, ok)
}

/// `GET /v1/blobs/fetches`: running and recently ended fetches.
pub(super) fn fetches(r: &mut ServiceContext, _: &ApiRequest) -> ApiResponse {
    ok(r.services.exchange.status(r.clock.now()))
}
