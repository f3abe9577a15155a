//! The API's endpoints, answered from the router's state. Field names follow `meshrouter info` and,
//! where they exist, `yggdrasilctl`'s JSON.

use serde_json::{Value, json};

use super::{ApiRequest, ApiResponse};
use crate::config::LinkUri;
use crate::core::address::{node_address, node_subnet};
use crate::core::identity::PublicKey;
use crate::core::time::Instant;
use crate::driver::links::Origin;
use crate::driver::peers::AddPeerError;
use crate::driver::router::Router;
use crate::services::identity::did_key::did_key;

/// Every endpoint, for `GET /v1` and 404 answers.
const ENDPOINTS: &[(&str, &str, &str)] = &[
    (
        "GET",
        "/v1/self",
        "this node: key, addresses, did, tree position",
    ),
    ("GET", "/v1/peers", "links and configured peers"),
    (
        "POST",
        "/v1/peers",
        "add a peer: {\"uri\": \"udp://host:port?key=...\"}",
    ),
    ("DELETE", "/v1/peers", "remove a peer: {\"uri\": \"...\"}"),
    ("GET", "/v1/tree", "the spanning tree as this node knows it"),
    ("GET", "/v1/paths", "destinations found by lookups"),
    ("GET", "/v1/sessions", "end-to-end sessions"),
    ("GET", "/v1/counters", "forwarding and drop counters"),
];

/// The services' endpoints.
#[cfg(feature = "services")]
const SERVICE_ENDPOINTS: &[(&str, &str, &str)] = &[
    ("GET", "/v1/crdt", "CRDT documents and sync counters"),
    (
        "GET",
        "/v1/crdt/have",
        "per CRDT document, the version vector held",
    ),
    (
        "POST",
        "/v1/crdt/read",
        "a CRDT document: {\"namespace\", \"document\"}",
    ),
    (
        "POST",
        "/v1/crdt/write",
        "write: {\"namespace\", \"document\", \"kind\" (new documents), \"op\", \"key\", \"value\", \"by\"}",
    ),
    (
        "GET",
        "/v1/crdt/watch",
        "long-poll: ?since=VERSION&timeout=SECONDS",
    ),
    (
        "POST",
        "/v1/crdt/export",
        "sneakernet drop (base64) of what {\"since\": have} lacks",
    ),
    (
        "POST",
        "/v1/crdt/import",
        "import a drop: {\"drop\": base64}",
    ),
    (
        "GET",
        "/v1/id/self",
        "this node's DID, key, address and DID document",
    ),
    (
        "GET",
        "/v1/id/whois",
        "?addr=: the DID of a known node's overlay address",
    ),
    (
        "GET",
        "/v1/id/document",
        "?did=: the DID document of a did:key",
    ),
    (
        "GET",
        "/v1/id/members",
        "the member registry and revocations",
    ),
    (
        "POST",
        "/v1/id/challenge",
        "a sign-in challenge: {\"did\", \"statement\"?}",
    ),
    (
        "POST",
        "/v1/id/verify",
        "a signed challenge: {\"message\", \"signature\", \"member\"?, \"ttl\"?}",
    ),
    (
        "POST",
        "/v1/id/jwt/issue",
        "a JWT signed by this node: {\"claims\", \"ttl\"?}",
    ),
    (
        "POST",
        "/v1/id/jwt/verify",
        "check a JWT: {\"token\", \"issuer\"?}",
    ),
    (
        "POST",
        "/v1/id/vc/issue",
        "a VC signed by this node: {\"credential\"}",
    ),
    ("POST", "/v1/id/vc/verify", "check a VC: {\"credential\"}"),
    (
        "POST",
        "/v1/id/delegate",
        "a delegation: {\"audience\", \"capabilities\", \"ttl\"?, \"proofs\"?}",
    ),
    (
        "POST",
        "/v1/id/ucan/verify",
        "check a delegation: {\"token\", \"audience\"?, \"with\"?, \"can\"?}",
    ),
    (
        "POST",
        "/v1/id/enroll",
        "enroll a member: {\"did\", \"roles\"} or {\"token\"}",
    ),
    (
        "POST",
        "/v1/id/revoke",
        "revoke: {\"target\", \"reason\"?} or {\"token\"}",
    ),
    (
        "POST",
        "/v1/id/prove",
        "ask a node to prove its key over the overlay: {\"node\"}",
    ),
];

/// Every endpoint this build answers.
fn endpoints() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    #[cfg(feature = "services")]
    let services = SERVICE_ENDPOINTS.iter();
    #[cfg(not(feature = "services"))]
    let services = std::iter::empty();
    ENDPOINTS.iter().chain(services)
}

/// A 200 answer.
pub(super) fn ok(body: Value) -> ApiResponse {
    ApiResponse { status: 200, body }
}

/// An error answer: `{"error": message}`.
pub(super) fn error(status: u16, message: impl Into<String>) -> ApiResponse {
    ApiResponse {
        status,
        body: json!({ "error": message.into() }),
    }
}

fn seconds(now: Instant, since: Instant) -> f64 {
    now.as_micros().saturating_sub(since.as_micros()) as f64 / 1e6
}

fn key_json(key: &PublicKey) -> Value {
    json!({ "key": key.to_hex(), "address": node_address(key).to_string() })
}

impl Router {
    /// Takes one API request: the long-polls and overlay round trips are held by their service,
    /// the rest answered at once.
    pub(crate) fn api_input(
        &mut self,
        request: ApiRequest,
        reply: tokio::sync::oneshot::Sender<ApiResponse>,
    ) {
        #[cfg(feature = "services")]
        if request.path.starts_with("/v1/crdt/watch") && request.method == "GET" {
            return self.api_crdt_watch(&request, reply);
        } else if request.path.starts_with("/v1/id/prove") && request.method == "POST" {
            return self.api_id_prove(&request, reply);
        }
        let response = self.api(request);
        let _ = reply.send(response);
    }

    /// Answers one API request.
    pub(crate) fn api(&mut self, request: ApiRequest) -> ApiResponse {
        let path = request.path.split('?').next().unwrap_or("");
        let path = path.strip_suffix('/').unwrap_or(path);
        match (request.method.as_str(), path) {
            ("GET", "" | "/v1") => ok(json!({ "endpoints": endpoints().map(|(m, p, d)| {
                json!({ "method": m, "path": p, "description": d })
            }).collect::<Vec<_>>() })),
            ("GET", "/v1/self") => ok(self.api_self()),
            ("GET", "/v1/peers") => ok(self.api_peers()),
            ("POST", "/v1/peers") => self.api_add_peer(&request.body),
            ("DELETE", "/v1/peers") => self.api_remove_peer(&request.body),
            ("GET", "/v1/tree") => ok(self.api_tree()),
            ("GET", "/v1/paths") => ok(self.api_paths()),
            ("GET", "/v1/sessions") => ok(self.api_sessions()),
            ("GET", "/v1/counters") => ok(self.api_counters()),
            #[cfg(feature = "services")]
            (_, p) if p == "/v1/crdt" || p.starts_with("/v1/crdt/") => self.api_crdt(&request, p),
            #[cfg(feature = "services")]
            (_, p) if p.starts_with("/v1/id/") => self.api_id(&request, p),
            (_, p) if endpoints().any(|(_, e, _)| *e == p) => {
                error(405, format!("{} is not allowed on {p}", request.method))
            }
            (_, p) => error(404, format!("no endpoint {p}; GET /v1 lists them")),
        }
    }

    fn api_self(&self) -> Value {
        let key = self.node.public_key();
        let now = self.clock.now();
        json!({
            "public_key": key.to_hex(),
            "address": node_address(&key).to_string(),
            "subnet": node_subnet(&key).to_string(),
            "did": did_key(&key),
            "version": env!("CARGO_PKG_VERSION"),
            "tun": self.tun.as_ref().map(|t| json!({ "name": t.name, "mtu": t.mtu })),
            "root": self.node.tree().root().map(|r| r.to_hex()),
            "coords": self.node.tree().coords(),
            "peers": self.node.peers().count(),
            "uptime": seconds(now, self.started),
        })
    }

    fn api_peers(&self) -> Value {
        let now = self.clock.now();
        let links: Vec<Value> = self
            .links
            .iter()
            .map(|(id, info)| {
                let link = self.node.link(*id);
                let stats = link.map(|l| l.stats()).unwrap_or_default();
                let rtt = link.and_then(|l| l.srtt()).map(|d| d.as_secs_f64() * 1e3);
                json!({
                    "uri": info.uri,
                    "up": info.up_since.is_some(),
                    "inbound": info.origin == Origin::Inbound,
                    "origin": format!("{:?}", info.origin).to_lowercase(),
                    "key": info.peer.map(|k| k.to_hex()),
                    "address": info.peer.map(|k| node_address(&k).to_string()),
                    "uptime": info.up_since.map(|t| seconds(now, t)),
                    "rtt_ms": rtt,
                    "priority": link.map(|l| l.params().priority),
                    "cipher": link.and_then(|l| l.cipher()).map(|c| c.name()),
                    "cost": rtt.map(|r| r.max(1.0).round() as u64),
                    "rx_bytes": stats.rx_bytes,
                    "tx_bytes": stats.tx_bytes,
                    "rx_rate": info.rates.rx,
                    "tx_rate": info.rates.tx,
                    "last_error": info.last_error.as_ref().map(|(_, e)| e.clone()),
                    "last_error_age": info.last_error.as_ref().map(|(t, _)| seconds(now, *t)),
                })
            })
            .collect();
        let configured: Vec<Value> = self
            .peers
            .values()
            .map(|p| {
                json!({
                    "uri": p.uri.display(),
                    "connected": p.endpoint.is_some(),
                    "last_error": p.last_error.as_ref().map(|(_, e)| e.clone()),
                })
            })
            .collect();
        json!({ "peers": links, "configured": configured })
    }

    fn api_add_peer(&mut self, body: &[u8]) -> ApiResponse {
        let uri = match uri_from_body(body) {
            Ok(u) => u,
            Err(e) => return e,
        };
        let uri = match LinkUri::parse(&uri) {
            Ok(u) => u,
            Err(e) => return error(400, e.to_string()),
        };
        let display = uri.display();
        match self.add_peer(uri) {
            Ok(()) => ApiResponse {
                status: 201,
                body: json!({ "added": display }),
            },
            Err(AddPeerError::Exists) => error(409, format!("{display} is already a peer")),
        }
    }

    fn api_remove_peer(&mut self, body: &[u8]) -> ApiResponse {
        let uri = match uri_from_body(body) {
            Ok(u) => u,
            Err(e) => return e,
        };
        if self.remove_peer(&uri) {
            ok(json!({ "removed": uri.split('?').next().unwrap_or("") }))
        } else {
            error(404, "no such peer (see GET /v1/peers, \"configured\")")
        }
    }

    fn api_tree(&self) -> Value {
        let tree = self.node.tree();
        let mut entries: Vec<Value> = tree
            .announcements()
            .map(|a| {
                let mut entry = key_json(&a.key);
                entry["parent"] = json!(a.parent.to_hex());
                entry["sequence"] = json!(a.seq);
                entry
            })
            .collect();
        entries.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
        json!({
            "root": tree.root().map(|r| r.to_hex()),
            "parent": tree.parent().to_hex(),
            "coords": tree.coords(),
            "entries": entries,
        })
    }

    fn api_paths(&self) -> Value {
        let now = self.clock.now();
        let paths: Vec<Value> = self
            .node
            .paths()
            .iter()
            .map(|(key, path)| {
                let mut entry = key_json(key);
                entry["path"] = json!(path.coords);
                entry["broken"] = json!(path.broken);
                entry["age"] = json!(seconds(now, path.refreshed));
                entry
            })
            .collect();
        json!({ "paths": paths })
    }

    fn api_sessions(&self) -> Value {
        let now = self.clock.now();
        let sessions: Vec<Value> = self
            .node
            .sessions()
            .iter()
            .map(|s| {
                let mut entry = key_json(s.peer);
                entry["up"] = json!(s.up);
                entry["cipher"] = json!(s.cipher.map(|c| c.name()));
                entry["rx_bytes"] = json!(s.stats.rx_bytes);
                entry["tx_bytes"] = json!(s.stats.tx_bytes);
                entry["idle"] = json!(seconds(now, s.last_used));
                entry["rekeys"] = json!(s.stats.key_sets.saturating_sub(1));
                entry
            })
            .collect();
        json!({ "sessions": sessions })
    }

    fn api_counters(&self) -> Value {
        let stats = self.node.stats();
        json!({
            "forwarded": stats.forwarded,
            "delivered": stats.delivered,
            "lookups_sent": stats.lookups_sent,
            "paths_broken": stats.paths_broken,
            "queue_drops": stats.queue_drops,
            "drops": stats.drops,
            "driver": self.counters,
        })
    }
}

fn uri_from_body(body: &[u8]) -> Result<String, ApiResponse> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        error(
            400,
            format!("body must be JSON like {{\"uri\": \"...\"}}: {e}"),
        )
    })?;
    value["uri"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| error(400, "missing \"uri\" (a string)"))
}
