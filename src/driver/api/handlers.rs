//! The API's endpoints, answered from the router's state. Field names follow `meshrouter info` and,
//! where they exist, `yggdrasilctl`'s JSON.

use serde_json::{Value, json};

#[cfg(feature = "services")]
use super::blobs;
#[cfg(feature = "services")]
use super::crdt;
#[cfg(feature = "services")]
use super::crdt_access;
#[cfg(feature = "services")]
use super::identity::route as id;
#[cfg(feature = "services")]
use super::names;
#[cfg(feature = "services")]
use super::nodeinfo;
use super::{ApiRequest, ApiResponse};
use crate::config::LinkUri;
use crate::core::address::{node_address, node_subnet};
use crate::core::identity::PublicKey;
use crate::core::time::Instant;
use crate::driver::links::Origin;
use crate::driver::router::Router;
#[cfg(feature = "services")]
use crate::driver::service_thread::ServiceCall;
use crate::driver::transport::{EndpointId, Role};
use crate::services::identity::did_key::did_key;

/// Where an answer goes.
pub(crate) type Reply = tokio::sync::oneshot::Sender<ApiResponse>;

/// What runs a route: on the router's task, or on the services' thread.
#[derive(Clone, Copy)]
pub(super) enum Handler {
    /// Answers at once from the router's state.
    Now(fn(&mut Router, &ApiRequest) -> ApiResponse),
    /// Keeps the reply and answers later (an overlay round trip, a password to stretch).
    Later(fn(&mut Router, &ApiRequest, Reply)),
    /// Runs on the services' thread, so that a slow call (an import, a batch of tokens) never
    /// holds up routing.
    #[cfg(feature = "services")]
    Service(ServiceCall),
}

/// One route of the API. This table is the one place where routes are written down: it drives
/// dispatch (and 404/405), `GET /v1`, and what the HTTP layer decides from a request head before
/// it reads a body (docs/API.md repeats them for readers). Adding a route adds a line here and its
/// handler.
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
    pub(super) handler: Handler,
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
    /// One blob block (at most 1 MiB) as base64 in JSON.
    #[cfg(feature = "services")]
    pub(in super::super) const BLOCK: usize =
        crate::driver::blob_store::MAX_BLOCK.div_ceil(3) * 4 + 1024;
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
    handler: Handler,
) -> Endpoint {
    Endpoint {
        method,
        path,
        description,
        max_body,
        held: false,
        handler,
    }
}

#[cfg(feature = "services")]
const fn held(
    method: &'static str,
    path: &'static str,
    max_body: usize,
    description: &'static str,
    handler: Handler,
) -> Endpoint {
    Endpoint {
        held: true,
        ..route(method, path, max_body, description, handler)
    }
}

/// Every endpoint of the router itself.
const ENDPOINTS: &[Endpoint] = &[
    route(
        "GET",
        "/v1",
        body::NONE,
        "this list of endpoints",
        Handler::Now(list_endpoints),
    ),
    route(
        "GET",
        "/v1/self",
        body::NONE,
        "this node: key, addresses, did, tree position",
        Handler::Now(get_self),
    ),
    route(
        "GET",
        "/v1/peers",
        body::NONE,
        "links and configured peers",
        Handler::Now(get_peers),
    ),
    route(
        "POST",
        "/v1/peers",
        body::URI,
        "add a peer: {\"uri\": \"udp://host:port?key=...\"}",
        Handler::Later(api_add_peer),
    ),
    route(
        "GET",
        "/v1/listeners",
        body::NONE,
        "listeners with their links up and connections waiting for one",
        Handler::Now(get_listeners),
    ),
    route(
        "DELETE",
        "/v1/peers",
        body::URI,
        "remove a peer: {\"uri\": \"...\"}",
        Handler::Now(api_remove_peer),
    ),
    route(
        "GET",
        "/v1/tree",
        body::NONE,
        "the spanning tree as this node knows it",
        Handler::Now(get_tree),
    ),
    route(
        "GET",
        "/v1/paths",
        body::NONE,
        "destinations found by lookups",
        Handler::Now(get_paths),
    ),
    route(
        "GET",
        "/v1/sessions",
        body::NONE,
        "end-to-end sessions",
        Handler::Now(get_sessions),
    ),
    route(
        "GET",
        "/v1/counters",
        body::NONE,
        "forwarding and drop counters",
        Handler::Now(get_counters),
    ),
    route(
        "GET",
        "/v1/firewall",
        body::NONE,
        "firewall rules with their hits, policies, counters and tracked connections",
        Handler::Now(super::firewall::get_firewall),
    ),
    route(
        "POST",
        "/v1/trace",
        body::URI,
        "trace the way to a node hop by hop: {\"target\": address or 64-hex key}",
        Handler::Later(api_trace),
    ),
    route(
        "GET",
        "/metrics",
        body::NONE,
        "Prometheus metrics (text exposition format)",
        Handler::Later(crate::driver::metrics::get_metrics),
    ),
    route(
        "POST",
        "/v1/reload",
        body::URI,
        "read the configuration file again and apply the firewall (as SIGHUP)",
        Handler::Later(super::firewall::api_reload),
    ),
];

/// The services' endpoints.
#[cfg(feature = "services")]
const SERVICE_ENDPOINTS: &[Endpoint] = &[
    route(
        "GET",
        "/v1/blobs",
        body::NONE,
        "content-addressed files held here, the bytes they take and the limit",
        Handler::Service(ServiceCall::Now(blobs::list)),
    ),
    route(
        "POST",
        "/v1/blobs/block",
        body::BLOCK,
        "keep one block of a file being added: {\"cid\", \"data\" (base64)}",
        Handler::Service(ServiceCall::Now(blobs::put_block)),
    ),
    route(
        "POST",
        "/v1/blobs/add",
        body::SMALL,
        "record a file whose blocks were put: {\"cid\", \"pin\"?}",
        Handler::Service(ServiceCall::Now(blobs::add)),
    ),
    route(
        "POST",
        "/v1/blobs/read",
        body::SMALL,
        "one block of a file held: {\"cid\"}",
        Handler::Service(ServiceCall::Now(blobs::read)),
    ),
    route(
        "POST",
        "/v1/blobs/fetch",
        body::SMALL,
        "fetch a file from other nodes: {\"cid\", \"from\"? [hex keys], \"pin\"?}",
        Handler::Service(ServiceCall::Now(blobs::fetch)),
    ),
    route(
        "GET",
        "/v1/blobs/fetches",
        body::NONE,
        "running and recently ended fetches, with bytes per holder",
        Handler::Service(ServiceCall::Now(blobs::fetches)),
    ),
    route(
        "POST",
        "/v1/blobs/pin",
        body::SMALL,
        "pin or unpin a file: {\"cid\", \"pin\"}",
        Handler::Service(ServiceCall::Now(blobs::pin)),
    ),
    route(
        "POST",
        "/v1/blobs/remove",
        body::SMALL,
        "forget a file and the blocks no other file holds: {\"cid\"}",
        Handler::Service(ServiceCall::Now(blobs::remove)),
    ),
    route(
        "GET",
        "/v1/nodeinfo",
        body::NONE,
        "the NodeInfo this node publishes, signed, with its counters",
        Handler::Service(ServiceCall::Now(nodeinfo::own)),
    ),
    held(
        "POST",
        "/v1/nodeinfo",
        body::SMALL,
        "ask a node for its NodeInfo over the overlay: {\"node\": key, did:key, mesh name or address}",
        Handler::Service(ServiceCall::Later(nodeinfo::ask)),
    ),
    route(
        "GET",
        "/v1/names",
        body::NONE,
        "mesh names: every label with its claims, the holder first",
        Handler::Service(ServiceCall::Now(names::names)),
    ),
    route(
        "POST",
        "/v1/names/resolve",
        body::SMALL,
        "a mesh name to its address, or an address to its name: {\"name\"}",
        Handler::Service(ServiceCall::Now(names::resolve)),
    ),
    route(
        "POST",
        "/v1/names/claim",
        body::SMALL,
        "claim a mesh name for this node: {\"name\", \"for\" (admins: another node's key)}",
        Handler::Service(ServiceCall::Now(names::claim)),
    ),
    route(
        "POST",
        "/v1/names/release",
        body::SMALL,
        "release this node's claim on a mesh name: {\"name\"}",
        Handler::Service(ServiceCall::Now(names::release)),
    ),
    route(
        "GET",
        "/v1/crdt",
        body::NONE,
        "CRDT documents and sync counters",
        Handler::Service(ServiceCall::Now(crdt::crdt_documents)),
    ),
    route(
        "GET",
        "/v1/crdt/have",
        body::NONE,
        "per CRDT document, the version vector held",
        Handler::Service(ServiceCall::Now(crdt::crdt_have)),
    ),
    route(
        "POST",
        "/v1/crdt/read",
        body::SMALL,
        "a CRDT document: {\"namespace\", \"document\"}",
        Handler::Service(ServiceCall::Now(crdt::crdt_read)),
    ),
    route(
        "POST",
        "/v1/crdt/write",
        body::TOKEN,
        "write: {\"namespace\", \"document\", \"kind\" (new documents), \"op\", \"key\", \"value\", \"by\"}",
        Handler::Service(ServiceCall::Now(crdt::crdt_write)),
    ),
    held(
        "GET",
        "/v1/crdt/watch",
        body::NONE,
        "long-poll: ?since=VERSION&timeout=SECONDS",
        Handler::Service(ServiceCall::Later(crdt::api_crdt_watch)),
    ),
    route(
        "POST",
        "/v1/crdt/access",
        body::SMALL,
        "who may do what in a namespace: {\"namespace\"}",
        Handler::Service(ServiceCall::Now(crdt_access::crdt_access)),
    ),
    route(
        "POST",
        "/v1/crdt/access/grant",
        body::SMALL,
        "grant: {\"namespace\", \"subject\" (did:key, key or *), \"level\"}",
        Handler::Service(ServiceCall::Now(crdt_access::crdt_grant)),
    ),
    route(
        "POST",
        "/v1/crdt/access/revoke",
        body::SMALL,
        "revoke: {\"namespace\", \"subject\", \"level\" (kept, default none)}",
        Handler::Service(ServiceCall::Now(crdt_access::crdt_revoke)),
    ),
    route(
        "POST",
        "/v1/crdt/access/redeem",
        body::TOKEN,
        "take what a manager's delegation token gives: {\"namespace\", \"token\", \"level\"?}",
        Handler::Service(ServiceCall::Now(crdt_access::crdt_redeem)),
    ),
    route(
        "POST",
        "/v1/crdt/export",
        body::LIST,
        "sneakernet drop (base64) of what {\"since\": have} lacks",
        Handler::Service(ServiceCall::Now(crdt::crdt_export)),
    ),
    route(
        "POST",
        "/v1/crdt/import",
        body::DROP,
        "import a drop: {\"drop\": base64}",
        Handler::Service(ServiceCall::Now(crdt::crdt_import)),
    ),
    route(
        "GET",
        "/v1/id/self",
        body::NONE,
        "this node's DID, key, address and DID document",
        Handler::Service(ServiceCall::Now(id::id_self)),
    ),
    route(
        "GET",
        "/v1/id/whois",
        body::NONE,
        "?addr=: the DID of a known node's overlay address",
        Handler::Now(id::whois),
    ),
    route(
        "GET",
        "/v1/id/document",
        body::NONE,
        "?did=: the DID document of a did:key",
        Handler::Now(id::document),
    ),
    route(
        "GET",
        "/v1/id/members",
        body::NONE,
        "the member registry and revocations",
        Handler::Service(ServiceCall::Now(id::members)),
    ),
    route(
        "POST",
        "/v1/id/challenge",
        body::SMALL,
        "a sign-in challenge: {\"did\", \"statement\"?}",
        Handler::Service(ServiceCall::Now(id::challenge)),
    ),
    route(
        "POST",
        "/v1/id/verify",
        body::SMALL,
        "a signed challenge: {\"message\", \"signature\", \"member\"?, \"ttl\"?}",
        Handler::Service(ServiceCall::Now(id::verify)),
    ),
    route(
        "POST",
        "/v1/id/jwt/issue",
        body::TOKEN,
        "a JWT signed by this node: {\"claims\", \"ttl\"?}",
        Handler::Service(ServiceCall::Now(id::jwt_issue)),
    ),
    route(
        "POST",
        "/v1/id/jwt/verify",
        body::LIST,
        "check a JWT: {\"token\", \"issuer\"?}",
        Handler::Service(ServiceCall::Now(id::jwt_verify)),
    ),
    route(
        "POST",
        "/v1/id/vc/issue",
        body::TOKEN,
        "a VC signed by this node: {\"credential\"}",
        Handler::Service(ServiceCall::Now(id::vc_issue)),
    ),
    route(
        "POST",
        "/v1/id/vc/verify",
        body::TOKEN,
        "check a VC: {\"credential\"}",
        Handler::Service(ServiceCall::Now(id::vc_verify)),
    ),
    route(
        "POST",
        "/v1/id/delegate",
        body::LIST,
        "a delegation: {\"audience\", \"capabilities\", \"ttl\"?, \"proofs\"?}",
        Handler::Service(ServiceCall::Now(id::delegate)),
    ),
    route(
        "POST",
        "/v1/id/ucan/verify",
        body::TOKEN,
        "check a delegation: {\"token\", \"audience\"?, \"with\"?, \"can\"?}",
        Handler::Service(ServiceCall::Now(id::ucan_verify)),
    ),
    route(
        "POST",
        "/v1/id/enroll",
        body::TOKEN,
        "enroll a member: {\"did\", \"roles\"} or {\"token\"}",
        Handler::Service(ServiceCall::Now(id::enroll)),
    ),
    route(
        "POST",
        "/v1/id/revoke",
        body::TOKEN,
        "revoke: {\"target\", \"reason\"?} or {\"token\"}",
        Handler::Service(ServiceCall::Now(id::revoke)),
    ),
    held(
        "POST",
        "/v1/id/prove",
        body::SMALL,
        "ask a node to prove its key over the overlay: {\"node\"}",
        Handler::Service(ServiceCall::Later(super::identity::api_id_prove)),
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
    ApiResponse::ok(body)
}

/// An error answer: `{"error": message}`.
pub(super) fn error(status: u16, message: impl Into<String>) -> ApiResponse {
    ApiResponse::error(status, message)
}

fn seconds(now: Instant, since: Instant) -> f64 {
    now.as_micros().saturating_sub(since.as_micros()) as f64 / 1e6
}

fn key_json(key: &PublicKey) -> Value {
    json!({ "key": key.to_hex(), "address": node_address(key).to_string() })
}

/// Takes one API request on the router's task: runs its route's handler (which answers at once or
/// keeps the reply), or answers 405 for a known path with another method and 404 for the rest.
pub(crate) fn dispatch(r: &mut Router, request: ApiRequest, reply: Reply) {
    let path = route_path(&request.path);
    let route = endpoints().find(|e| e.method == request.method && e.path == path);
    let answer = match route.map(|e| e.handler) {
        Some(Handler::Now(handler)) => handler(r, &request),
        Some(Handler::Later(handler)) => return handler(r, &request, reply),
        #[cfg(feature = "services")]
        Some(Handler::Service(call)) => return r.services.call(call, request, reply),
        None if endpoints().any(|e| e.path == path) => {
            error(405, format!("{} is not allowed on {path}", request.method))
        }
        None => error(404, format!("no endpoint {path}; GET /v1 lists them")),
    };
    let _ = reply.send(answer);
}

fn list_endpoints(_: &mut Router, _: &ApiRequest) -> ApiResponse {
    let list: Vec<Value> = endpoints()
        .map(|e| {
            json!({
                "method": e.method,
                "path": e.path,
                "description": e.description,
                "max_body": e.max_body,
            })
        })
        .collect();
    ok(json!({ "endpoints": list }))
}

fn get_self(r: &mut Router, _: &ApiRequest) -> ApiResponse {
    ok(api_self(r))
}

fn get_peers(r: &mut Router, _: &ApiRequest) -> ApiResponse {
    ok(api_peers(r))
}

/// `GET /v1/listeners`: each configured listener, with its links up and (stream listeners) the
/// accepted connections still waiting for a link.
fn get_listeners(r: &mut Router, _: &ApiRequest) -> ApiResponse {
    let listeners: Vec<Value> = (r.config.listen.iter())
        .map(|uri| {
            let ours = |role: &Role| match role {
                Role::Listener(u) | Role::Accepted { uri: u, .. } => u.text == uri.text,
                _ => false,
            };
            let endpoints: Vec<_> = (r.links.endpoints.iter())
                .filter(|(_, e)| ours(&e.role))
                .map(|(id, _)| *id)
                .collect();
            let up = |id: &EndpointId| {
                (r.links.records.values())
                    .filter(|l| l.endpoint == *id && l.up_since.is_some())
                    .count()
            };
            let links: usize = endpoints.iter().map(up).sum();
            let waiting = match uri.scheme.is_stream() {
                true => endpoints.iter().filter(|id| up(id) == 0).count(),
                false => 0,
            };
            json!({
                "uri": uri.display(),
                "transport": uri.scheme.name(),
                "links_up": links,
                "waiting": waiting,
            })
        })
        .collect();
    ok(json!({ "listeners": listeners }))
}

fn get_tree(r: &mut Router, _: &ApiRequest) -> ApiResponse {
    ok(api_tree(r))
}

fn get_paths(r: &mut Router, _: &ApiRequest) -> ApiResponse {
    ok(api_paths(r))
}

fn get_sessions(r: &mut Router, _: &ApiRequest) -> ApiResponse {
    ok(api_sessions(r))
}

fn get_counters(r: &mut Router, _: &ApiRequest) -> ApiResponse {
    ok(api_counters(r))
}

fn api_self(r: &Router) -> Value {
    let key = r.node.public_key();
    let now = r.clock.now();
    json!({
        "public_key": key.to_hex(),
        "address": node_address(&key).to_string(),
        "subnet": node_subnet(&key).to_string(),
        "did": did_key(&key),
        "version": env!("CARGO_PKG_VERSION"),
        "tun": r.tun.as_ref().map(|t| json!({ "name": t.name, "mtu": t.mtu })),
        "root": r.node.tree().root().map(|r| r.to_hex()),
        "coords": r.node.tree().coords(),
        "peers": r.node.peers().count(),
        "uptime": seconds(now, r.started),
        "config": r.config.config_path.as_ref().map(|p| p.display().to_string()),
    })
}

fn api_peers(r: &Router) -> Value {
    let now = r.clock.now();
    let links: Vec<Value> = r
        .links
        .records
        .iter()
        .map(|(id, info)| {
            let link = r.node.link(*id);
            let stats = link.map(|l| l.stats()).unwrap_or_default();
            let rtt = link.and_then(|l| l.srtt()).map(|d| d.as_secs_f64() * 1e3);
            let transport = r.links.endpoints.get(&info.endpoint);
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
    let configured: Vec<Value> = r
        .peers
        .configured
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
fn api_add_peer(r: &mut Router, request: &ApiRequest, reply: Reply) {
    let uri = match uri_from_body(&request.body) {
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
    r.request_add_peer(uri, reply);
}

/// `POST /v1/trace`: answered once the probe's hops answered, or the lookup or probe timed out.
fn api_trace(r: &mut Router, request: &ApiRequest, reply: Reply) {
    let target = serde_json::from_slice::<Value>(&request.body)
        .ok()
        .and_then(|v| v["target"].as_str().map(str::to_owned));
    let Some(target) = target else {
        let _ = reply.send(error(
            400,
            "body must be JSON like {\"target\": \"200:...\"}",
        ));
        return;
    };
    let address = match target.parse::<std::net::Ipv6Addr>() {
        Ok(address) => address,
        Err(_) => match PublicKey::from_hex(&target) {
            Ok(key) => node_address(&key),
            Err(_) => {
                let message = format!("{target}: neither an overlay address nor a 64-hex key");
                let _ = reply.send(error(400, message));
                return;
            }
        },
    };
    let now = r.clock.now();
    r.traces.start(&mut r.node, now, address, reply);
}

fn api_remove_peer(r: &mut Router, request: &ApiRequest) -> ApiResponse {
    let uri = match uri_from_body(&request.body) {
        Ok(u) => u,
        Err(e) => return e,
    };
    if r.remove_peer(&uri) {
        ok(json!({ "removed": uri.split('?').next().unwrap_or("") }))
    } else {
        error(404, "no such peer (see GET /v1/peers, \"configured\")")
    }
}

fn api_tree(r: &Router) -> Value {
    let tree = r.node.tree();
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

fn api_paths(r: &Router) -> Value {
    let now = r.clock.now();
    let paths: Vec<Value> = r
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

fn api_sessions(r: &Router) -> Value {
    let now = r.clock.now();
    let sessions: Vec<Value> = r
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

fn api_counters(r: &Router) -> Value {
    let stats = r.node.stats();
    json!({
        "forwarded": stats.forwarded,
        "delivered": stats.delivered,
        "lookups_sent": stats.lookups_sent,
        "paths_broken": stats.paths_broken,
        "queue_drops": stats.queue_drops,
        "drops": stats.drops,
        "driver": r.counters,
    })
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
