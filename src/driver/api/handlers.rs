//! The API's endpoints, answered from the router's state. Field names follow `meshrouter info` and,
//! where they exist, `yggdrasilctl`'s JSON.

use serde_json::{Value, json};

use super::{ApiRequest, ApiResponse};
use crate::config::LinkUri;
use crate::core::address::{node_address, node_subnet};
use crate::core::identity::PublicKey;
use crate::core::password::PasswordKey;
use crate::core::time::Instant;
use crate::driver::input::Input;
use crate::driver::links::Origin;
use crate::driver::peers::AddPeerError;
use crate::driver::router::Router;
use crate::services::identity::did_key::did_key;

/// One route of the API: what `GET /v1` lists, and what the HTTP layer needs to know from the
/// request head before it reads a body. This table is the one place where routes and their body
/// limits are written down (docs/API.md repeats them for readers).
pub(super) struct Endpoint {
    pub(super) method: &'static str,
    pub(super) path: &'static str,
    pub(super) description: &'static str,
    /// Largest request body taken, bytes. A larger `Content-Length` is answered 413 before a byte
    /// of the body is read.
    pub(super) max_body: usize,
    /// Held by the router until something happens (a long-poll, an overlay round trip): such
    /// requests have their own, smaller cap ([`super::MAX_HELD`]) instead of a general slot.
    pub(super) held: bool,
}

/// Body limits, by what a route takes.
pub(super) mod body {
    /// `GET` routes: no body.
    pub(in super::super) const NONE: usize = 0;
    /// Routes this build does not have: enough for the router to answer 404 or 405.
    pub(in super::super) const UNKNOWN: usize = 1024;
    /// A peer URI (`{"uri": ...}`): a host name, a few keys, a password, options.
    pub(in super::super) const URI: usize = 1024;
    /// Names and DIDs: a CRDT document's name, a node to prove, a sign-in challenge (its message
    /// is at most 4 KiB) and its signature.
    #[cfg(feature = "services")]
    pub(in super::super) const SMALL: usize = 8 * 1024;
    /// One token or credential (each at most 64 KiB), or a CRDT write (a value of at most 64 KiB),
    /// with room for JSON escapes.
    #[cfg(feature = "services")]
    pub(in super::super) const TOKEN: usize = 160 * 1024;
    /// Lists: a batch of up to 4 096 tokens, a delegation with its proofs, a `have` list to export
    /// against.
    #[cfg(feature = "services")]
    pub(in super::super) const LIST: usize = 4 << 20;
    /// A sneakernet drop: at most [`MAX_DROP_LEN`](crate::services::crdt::drop::MAX_DROP_LEN)
    /// bytes, as base64, in `{"drop": ...}`.
    #[cfg(feature = "services")]
    pub(in super::super) const DROP: usize =
        crate::services::crdt::drop::MAX_DROP_LEN.div_ceil(3) * 4 + 1024;
}

const fn route(
    method: &'static str,
    path: &'static str,
    max_body: usize,
    description: &'static str,
) -> Endpoint {
    Endpoint {
        method,
        path,
        description,
        max_body,
        held: false,
    }
}

#[cfg(feature = "services")]
const fn held(
    method: &'static str,
    path: &'static str,
    max_body: usize,
    description: &'static str,
) -> Endpoint {
    Endpoint {
        held: true,
        ..route(method, path, max_body, description)
    }
}

/// Every endpoint of the router itself.
const ENDPOINTS: &[Endpoint] = &[
    route("GET", "/v1", body::NONE, "this list of endpoints"),
    route(
        "GET",
        "/v1/self",
        body::NONE,
        "this node: key, addresses, did, tree position",
    ),
    route("GET", "/v1/peers", body::NONE, "links and configured peers"),
    route(
        "POST",
        "/v1/peers",
        body::URI,
        "add a peer: {\"uri\": \"udp://host:port?key=...\"}",
    ),
    route(
        "DELETE",
        "/v1/peers",
        body::URI,
        "remove a peer: {\"uri\": \"...\"}",
    ),
    route(
        "GET",
        "/v1/tree",
        body::NONE,
        "the spanning tree as this node knows it",
    ),
    route(
        "GET",
        "/v1/paths",
        body::NONE,
        "destinations found by lookups",
    ),
    route("GET", "/v1/sessions", body::NONE, "end-to-end sessions"),
    route(
        "GET",
        "/v1/counters",
        body::NONE,
        "forwarding and drop counters",
    ),
];

/// The services' endpoints.
#[cfg(feature = "services")]
const SERVICE_ENDPOINTS: &[Endpoint] = &[
    route(
        "GET",
        "/v1/crdt",
        body::NONE,
        "CRDT documents and sync counters",
    ),
    route(
        "GET",
        "/v1/crdt/have",
        body::NONE,
        "per CRDT document, the version vector held",
    ),
    route(
        "POST",
        "/v1/crdt/read",
        body::SMALL,
        "a CRDT document: {\"namespace\", \"document\"}",
    ),
    route(
        "POST",
        "/v1/crdt/write",
        body::TOKEN,
        "write: {\"namespace\", \"document\", \"kind\" (new documents), \"op\", \"key\", \"value\", \"by\"}",
    ),
    held(
        "GET",
        "/v1/crdt/watch",
        body::NONE,
        "long-poll: ?since=VERSION&timeout=SECONDS",
    ),
    route(
        "POST",
        "/v1/crdt/export",
        body::LIST,
        "sneakernet drop (base64) of what {\"since\": have} lacks",
    ),
    route(
        "POST",
        "/v1/crdt/import",
        body::DROP,
        "import a drop: {\"drop\": base64}",
    ),
    route(
        "GET",
        "/v1/id/self",
        body::NONE,
        "this node's DID, key, address and DID document",
    ),
    route(
        "GET",
        "/v1/id/whois",
        body::NONE,
        "?addr=: the DID of a known node's overlay address",
    ),
    route(
        "GET",
        "/v1/id/document",
        body::NONE,
        "?did=: the DID document of a did:key",
    ),
    route(
        "GET",
        "/v1/id/members",
        body::NONE,
        "the member registry and revocations",
    ),
    route(
        "POST",
        "/v1/id/challenge",
        body::SMALL,
        "a sign-in challenge: {\"did\", \"statement\"?}",
    ),
    route(
        "POST",
        "/v1/id/verify",
        body::SMALL,
        "a signed challenge: {\"message\", \"signature\", \"member\"?, \"ttl\"?}",
    ),
    route(
        "POST",
        "/v1/id/jwt/issue",
        body::TOKEN,
        "a JWT signed by this node: {\"claims\", \"ttl\"?}",
    ),
    route(
        "POST",
        "/v1/id/jwt/verify",
        body::LIST,
        "check a JWT: {\"token\", \"issuer\"?}",
    ),
    route(
        "POST",
        "/v1/id/vc/issue",
        body::TOKEN,
        "a VC signed by this node: {\"credential\"}",
    ),
    route(
        "POST",
        "/v1/id/vc/verify",
        body::TOKEN,
        "check a VC: {\"credential\"}",
    ),
    route(
        "POST",
        "/v1/id/delegate",
        body::LIST,
        "a delegation: {\"audience\", \"capabilities\", \"ttl\"?, \"proofs\"?}",
    ),
    route(
        "POST",
        "/v1/id/ucan/verify",
        body::TOKEN,
        "check a delegation: {\"token\", \"audience\"?, \"with\"?, \"can\"?}",
    ),
    route(
        "POST",
        "/v1/id/enroll",
        body::TOKEN,
        "enroll a member: {\"did\", \"roles\"} or {\"token\"}",
    ),
    route(
        "POST",
        "/v1/id/revoke",
        body::TOKEN,
        "revoke: {\"target\", \"reason\"?} or {\"token\"}",
    ),
    held(
        "POST",
        "/v1/id/prove",
        body::SMALL,
        "ask a node to prove its key over the overlay: {\"node\"}",
    ),
];

/// Every endpoint this build answers.
pub(super) fn endpoints() -> impl Iterator<Item = &'static Endpoint> {
    #[cfg(feature = "services")]
    let services = SERVICE_ENDPOINTS.iter();
    #[cfg(not(feature = "services"))]
    let services = std::iter::empty();
    ENDPOINTS.iter().chain(services)
}

/// A request target without its query and trailing slash; `/` and the empty path are `/v1`.
pub(super) fn route_path(target: &str) -> &str {
    let path = target.split('?').next().unwrap_or("");
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() { "/v1" } else { path }
}

/// What the HTTP layer must know about a request from its method and target alone: its body limit
/// and whether the router holds it. Unknown routes get [`body::UNKNOWN`], enough for a 404 or 405.
pub(super) fn limits(method: &str, target: &str) -> (usize, bool) {
    let path = route_path(target);
    endpoints()
        .find(|e| e.method == method && e.path == path)
        .map_or((body::UNKNOWN, false), |e| (e.max_body, e.held))
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
    /// `addpeer` with a new password until it is stretched, the rest answered at once.
    pub(crate) fn api_input(
        &mut self,
        request: ApiRequest,
        reply: tokio::sync::oneshot::Sender<ApiResponse>,
    ) {
        // The same routes as the table's `held` ones, matched the same way, so that a request the
        // router holds always came in under the held requests' cap. `addpeer` is not one of them:
        // it waits for stretching, which takes a bounded time, under a general slot.
        match (request.method.as_str(), route_path(&request.path)) {
            #[cfg(feature = "services")]
            ("GET", "/v1/crdt/watch") => return self.api_crdt_watch(&request, reply),
            #[cfg(feature = "services")]
            ("POST", "/v1/id/prove") => return self.api_id_prove(&request, reply),
            ("POST", "/v1/peers") => return self.api_add_peer(&request.body, reply),
            _ => {}
        }
        let response = self.api(request);
        let _ = reply.send(response);
    }

    /// Answers one API request.
    pub(crate) fn api(&mut self, request: ApiRequest) -> ApiResponse {
        let path = route_path(&request.path);
        match (request.method.as_str(), path) {
            ("GET", "/v1") => ok(json!({ "endpoints": endpoints().map(|e| {
                json!({
                    "method": e.method,
                    "path": e.path,
                    "description": e.description,
                    "max_body": e.max_body,
                })
            }).collect::<Vec<_>>() })),
            ("GET", "/v1/self") => ok(self.api_self()),
            ("GET", "/v1/peers") => ok(self.api_peers()),
            ("DELETE", "/v1/peers") => self.api_remove_peer(&request.body),
            ("GET", "/v1/tree") => ok(self.api_tree()),
            ("GET", "/v1/paths") => ok(self.api_paths()),
            ("GET", "/v1/sessions") => ok(self.api_sessions()),
            ("GET", "/v1/counters") => ok(self.api_counters()),
            #[cfg(feature = "services")]
            (_, p) if p == "/v1/crdt" || p.starts_with("/v1/crdt/") => self.api_crdt(&request, p),
            #[cfg(feature = "services")]
            (_, p) if p.starts_with("/v1/id/") => self.api_id(&request, p),
            (_, p) if endpoints().any(|e| e.path == p) => {
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
                let transport = self.endpoints.get(&info.endpoint);
                json!({
                    "uri": info.uri,
                    "transport": transport.map(|e| e.transport.name()),
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
                    "transport": p.uri.scheme.name(),
                    "connected": p.endpoint.is_some(),
                    "last_error": p.last_error.as_ref().map(|(_, e)| e.clone()),
                    "last_error_age": p.last_error.as_ref().map(|(t, _)| seconds(now, *t)),
                })
            })
            .collect();
        json!({ "peers": links, "configured": configured })
    }

    /// `POST /v1/peers`. A password not in use yet is stretched first (Argon2id: tens of
    /// milliseconds here, up to half a second on a Raspberry Pi 3), on a blocking thread so that the
    /// router keeps routing meanwhile; the answer waits for it.
    fn api_add_peer(&mut self, body: &[u8], reply: tokio::sync::oneshot::Sender<ApiResponse>) {
        let uri = match uri_from_body(body) {
            Ok(u) => u,
            Err(e) => {
                let _ = reply.send(e);
                return;
            }
        };
        let uri = match LinkUri::parse(&uri) {
            Ok(u) => u,
            Err(e) => {
                let _ = reply.send(error(400, e.to_string()));
                return;
            }
        };
        if self.passwords.has(uri.password.as_deref()) {
            let _ = reply.send(self.add_peer_answer(uri));
        } else {
            self.waiting_peers.push_back((uri, reply));
            self.serve_waiting_peers();
        }
    }

    fn add_peer_answer(&mut self, uri: LinkUri) -> ApiResponse {
        let display = uri.display();
        match self.add_peer(uri) {
            Ok(()) => ApiResponse {
                status: 201,
                body: json!({ "added": display }),
            },
            Err(AddPeerError::Exists) => error(409, format!("{display} is already a peer")),
        }
    }

    /// Adds the waiting peers whose password is stretched now, and starts stretching the next
    /// password if none is being stretched: one at a time, since each takes 19 MiB.
    fn serve_waiting_peers(&mut self) {
        for (uri, reply) in std::mem::take(&mut self.waiting_peers) {
            if self.passwords.has(uri.password.as_deref()) {
                let _ = reply.send(self.add_peer_answer(uri));
            } else {
                self.waiting_peers.push_back((uri, reply));
            }
        }
        if self.stretching {
            return;
        }
        let Some(password) = self
            .waiting_peers
            .front()
            .and_then(|(u, _)| u.password.clone())
        else {
            return;
        };
        self.stretching = true;
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let copy = zeroize::Zeroizing::new(password.clone());
            let key = tokio::task::spawn_blocking(move || PasswordKey::derive(&copy))
                .await
                .map_err(|e| e.to_string());
            let _ = inputs
                .send(Input::PasswordStretched { password, key })
                .await;
        });
    }

    /// A password `addpeer` brought is stretched (or stretching it failed).
    pub(crate) fn on_password_stretched(
        &mut self,
        password: Vec<u8>,
        key: Result<PasswordKey, String>,
    ) {
        self.stretching = false;
        match key {
            Ok(key) => self.passwords.insert(password, key),
            Err(e) => {
                for (uri, reply) in std::mem::take(&mut self.waiting_peers) {
                    if uri.password.as_ref() == Some(&password) {
                        let _ = reply.send(error(500, format!("stretching the password: {e}")));
                    } else {
                        self.waiting_peers.push_back((uri, reply));
                    }
                }
            }
        }
        self.serve_waiting_peers();
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
