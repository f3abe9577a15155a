//! The app listener: HTTP on addresses the operator chose (`[apps] listen`, off by default; the
//! node's LAN address is the usual one), so that a phone's browser can use the mesh's documents with
//! no app installed. Documented in `docs/API.md` ("App API").
//!
//! - `/api/login/challenge`, `/api/login`: sign-in with a user key, the same challenge as
//!   `meshrouter id login`; the answer is a session token (a JWT this node signs, for this node).
//! - `/api/crdt/read`, `/api/crdt/write`, `/api/crdt/events` (server-sent events): the CRDT
//!   endpoints of the local API, for the user the token names: every request is checked against the
//!   namespace's access rules for that user (and the node's own, since the node signs the change).
//! - anything else: the files of `[apps] root`, so a village can host its app on the node.
//!
//! Requests are served by tasks on the router's runtime and passed to the router as API requests,
//! like the local API's; each connection carries one request (`Connection: close`). What a client can
//! cost is bounded by [`MAX_OPEN`] connections, [`MAX_REQUESTS`] requests at once, [`MAX_STREAMS`]
//! event streams, [`MAX_BODY`] per body and the read and write timeouts.

mod auth;
mod blobs;
mod events;
mod files;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tracing::{debug, info, warn};

use super::DriverError;
use super::api::http::{self, Head, Refusal};
use super::input::Input;
use super::request::{ApiRequest, ApiResponse};
use crate::config::AppSettings;
use crate::core::identity::PublicKey;

/// Connections open at once; more wait in the kernel's backlog.
pub(crate) const MAX_OPEN: usize = 256;
/// Requests served at once (event streams excepted).
pub(crate) const MAX_REQUESTS: usize = 32;
/// Event streams open at once; more are answered 503.
pub(crate) const MAX_STREAMS: usize = 64;
/// Largest request body: a text insert of 64 KiB, JSON-escaped.
pub(crate) const MAX_BODY: u64 = 512 * 1024;
/// Time to send the request head, then its body.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to write an answer (or one event): a client that does not read is cut off then.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sockets bound while privileged, with the settings to serve them.
pub(crate) struct PreparedApps {
    listeners: Vec<std::net::TcpListener>,
    settings: AppSettings,
}

impl PreparedApps {
    /// Binds the listener's addresses, if any are configured. Addresses the node does not have yet
    /// (its LAN address, which comes with the interface) are bound anyway (`IP_FREEBIND`).
    pub(crate) fn bind(settings: &AppSettings) -> Result<Option<Self>, DriverError> {
        if settings.listen.is_empty() {
            return Ok(None);
        }
        let mut listeners = Vec::new();
        for address in &settings.listen {
            let fail = |source| DriverError::Bind {
                what: "app listener",
                address: address.to_string(),
                source,
            };
            listeners.push(bind(*address).map_err(fail)?);
        }
        Ok(Some(Self {
            listeners,
            settings: settings.clone(),
        }))
    }

    /// Serves on the current runtime until the daemon stops.
    pub(crate) fn start(self, inputs: mpsc::Sender<Input>, node: PublicKey) {
        let shared = Arc::new(Shared {
            inputs: inputs.clone(),
            gate: Mutex::new(auth::Gate::new(node)),
            settings: self.settings,
            requests: Arc::new(Semaphore::new(MAX_REQUESTS)),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            feed: events::Feed::start(inputs),
        });
        let open = Arc::new(Semaphore::new(MAX_OPEN));
        for listener in self.listeners {
            let listener = match listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(listener))
            {
                Ok(l) => l,
                Err(e) => {
                    warn!("app listener: {e}");
                    continue;
                }
            };
            info!(listen = %listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), "app listener");
            tokio::spawn(accept(listener, shared.clone(), open.clone()));
        }
    }
}

/// A listening socket at `address`, bound the way the DNS responder binds (IPv6 only, FREEBIND).
fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = super::dns::bind(address, socket2::Type::STREAM)?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// What every connection's task shares.
struct Shared {
    inputs: mpsc::Sender<Input>,
    gate: Mutex<auth::Gate>,
    settings: AppSettings,
    requests: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    feed: events::Feed,
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, open: Arc<Semaphore>) {
    loop {
        let Ok(permit) = open.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                debug!("app listener accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _open = permit;
            connection(stream, &shared).await;
        });
    }
}

/// An answer: status, media type, extra headers and body.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, body: &Value) -> Self {
        let mut text = serde_json::to_vec(body).unwrap_or_default();
        text.push(b'\n');
        Self {
            status,
            content_type: "application/json",
            body: text,
        }
    }

    fn error(status: u16, message: impl std::fmt::Display) -> Self {
        Self::json(status, &json!({ "error": message.to_string() }))
    }
}

impl From<ApiResponse> for Reply {
    fn from(r: ApiResponse) -> Self {
        Self::json(r.status, &r.body)
    }
}

impl From<Refusal> for Reply {
    fn from(r: Refusal) -> Self {
        Self::error(r.status, r.message)
    }
}

/// The CORS headers for a request from `origin`, given the configured origins.
fn cors(settings: &AppSettings, origin: Option<&str>) -> String {
    let Some(origin) = origin else {
        return String::new();
    };
    let allowed = settings
        .cors_origins
        .iter()
        .any(|o| o == "*" || o == origin);
    if !allowed || origin.contains(['\r', '\n']) {
        return String::new();
    }
    let value = if settings.cors_origins.iter().any(|o| o == "*") {
        "*"
    } else {
        origin
    };
    format!(
        "Access-Control-Allow-Origin: {value}\r\nVary: Origin\r\nAccess-Control-Allow-Headers: Authorization, Content-Type\r\nAccess-Control-Allow-Methods: GET, POST, OPTIONS\r\nAccess-Control-Max-Age: 600\r\n"
    )
}

async fn write_reply<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: &Reply,
    cors: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n{cors}Connection: close\r\n\r\n",
        reply.status,
        http::reason(reply.status),
        reply.content_type,
        reply.body.len(),
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(&reply.body).await?;
    }
    stream.shutdown().await
}

/// Serves one connection: one request, one answer (or one event stream).
async fn connection(mut stream: TcpStream, shared: &Shared) {
    let head = match tokio::time::timeout(READ_TIMEOUT, http::read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(refusal)) => {
            let _ = write_reply(&mut stream, &refusal.into(), "", false).await;
            return;
        }
        Err(_) => return,
    };
    let cors = cors(&shared.settings, head.origin.as_deref());
    let path = head.path.split('?').next().unwrap_or("").to_owned();
    if head.method == "GET" && path == "/api/crdt/events" {
        return events::serve(stream, head, shared, &cors).await;
    }
    if head.method == "GET"
        && let Some(cid) = path.strip_prefix("/api/blobs/")
    {
        let token = auth::bearer(head.authorization.as_deref());
        match user(shared, token).await {
            Ok(u) => blobs::serve(&mut stream, shared, cid, u.key, &cors).await,
            Err(reply) => {
                let _ = write_reply(&mut stream, &reply, &cors, false).await;
            }
        }
        return;
    }
    let head_only = head.method == "HEAD";
    let reply = match shared.requests.clone().try_acquire_owned() {
        Err(_) => Reply::error(
            503,
            format!("busy: {MAX_REQUESTS} requests are being served"),
        ),
        Ok(_permit) => request(&mut stream, head, &path, shared).await,
    };
    let _ = tokio::time::timeout(
        WRITE_TIMEOUT,
        write_reply(&mut stream, &reply, &cors, head_only),
    )
    .await;
}

/// Reads the body (within [`MAX_BODY`]) and answers the request.
async fn request(stream: &mut TcpStream, head: Head, path: &str, shared: &Shared) -> Reply {
    let method = head.method.clone();
    let target = head.path.clone();
    let token = auth::bearer(head.authorization.as_deref()).map(str::to_owned);
    if method == "OPTIONS" {
        return Reply {
            status: 204,
            content_type: "text/plain",
            body: Vec::new(),
        };
    }
    if head.content_length > MAX_BODY {
        return Reply::error(413, format!("a request body may take {MAX_BODY} bytes"));
    }
    if head.expect_continue && head.content_length > 0 {
        let _ = http::write_continue(stream).await;
    }
    let body = match tokio::time::timeout(READ_TIMEOUT, http::read_body(stream, head)).await {
        Ok(Ok(body)) => body,
        Ok(Err(refusal)) => return refusal.into(),
        Err(_) => return Reply::error(408, "request timeout"),
    };
    match (method.as_str(), path) {
        ("POST", "/api/login/challenge") => forward(shared, "/v1/id/challenge", body, None).await,
        ("POST", "/api/login") => login(shared, &body).await,
        ("GET", "/api/whoami") => match user(shared, token.as_deref()).await {
            Ok(u) => Reply::json(200, &json!({ "did": u.did, "expires": u.expires })),
            Err(e) => e,
        },
        ("POST", "/api/crdt/read" | "/api/crdt/write") => {
            match user(shared, token.as_deref()).await {
                Ok(u) => {
                    let route = format!("/v1/crdt/{}", &path["/api/crdt/".len()..]);
                    forward(shared, &route, body, Some(u.key)).await
                }
                Err(e) => e,
            }
        }
        (_, p) if p.starts_with("/api/") => Reply::error(
            404,
            format!(
                "no endpoint {method} {p}: the app API has POST /api/login/challenge, POST /api/login, \
                 GET /api/whoami, POST /api/crdt/read, POST /api/crdt/write, GET /api/crdt/events, \
                 GET /api/blobs/CID"
            ),
        ),
        ("GET" | "HEAD", _) => static_file(&shared.settings, &target).await,
        _ => Reply::error(405, format!("{method} is not served here")),
    }
}

/// The user a token names, or the 401 to answer.
async fn user(shared: &Shared, token: Option<&str>) -> Result<auth::User, Reply> {
    let now = super::clock::wall_micros() / 1_000_000;
    shared
        .gate
        .lock()
        .await
        .check(token, now)
        .map_err(|e| Reply::error(401, e))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    message: String,
    signature: String,
    ttl: Option<u64>,
}

/// `POST /api/login`: a signed challenge → a session token for this node. Any DID may sign in;
/// what it may then do is the namespaces' access rules' business.
async fn login(shared: &Shared, body: &[u8]) -> Reply {
    let b: LoginBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return Reply::error(400, format!("bad request body: {e}")),
    };
    let verify = json!({
        "message": b.message, "signature": b.signature, "member": false,
        "ttl": b.ttl.unwrap_or(12 * 3600),
    });
    let body = serde_json::to_vec(&verify).unwrap_or_default();
    forward(shared, "/v1/id/verify", body, None).await
}

/// Passes a request to the router as a local API request made for `user`.
async fn forward(shared: &Shared, path: &str, body: Vec<u8>, user: Option<[u8; 32]>) -> Reply {
    ask(
        &shared.inputs,
        ApiRequest {
            method: "POST".into(),
            path: path.into(),
            body,
            app_user: user,
        },
    )
    .await
    .into()
}

/// Passes a request to the router and waits for its answer.
async fn ask(inputs: &mpsc::Sender<Input>, request: ApiRequest) -> ApiResponse {
    let (reply, answer) = oneshot::channel();
    if inputs.send(Input::Api(request, reply)).await.is_err() {
        return ApiResponse::error(503, "stopping");
    }
    answer
        .await
        .unwrap_or_else(|_| ApiResponse::error(503, "stopping"))
}

async fn static_file(settings: &AppSettings, target: &str) -> Reply {
    let Some(root) = &settings.root else {
        return Reply::error(
            404,
            "no apps here ([apps] root is not set); the API is under /api/",
        );
    };
    let root = root.clone();
    let target = target.to_owned();
    let found = tokio::task::spawn_blocking(move || {
        let file = files::resolve(&root, &target)?;
        let bytes = std::fs::read(&file).ok()?;
        Some((files::content_type(&file), bytes))
    })
    .await
    .ok()
    .flatten();
    match found {
        Some((content_type, body)) => Reply {
            status: 200,
            content_type,
            body,
        },
        None => Reply::error(404, "not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(origins: &[&str]) -> AppSettings {
        AppSettings {
            cors_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            ..AppSettings::default()
        }
    }

    #[test]
    fn cors_headers_only_for_configured_origins() {
        let none = settings(&[]);
        assert_eq!(cors(&none, Some("https://evil.example")), "");
        let one = settings(&["https://notes.example"]);
        assert!(
            cors(&one, Some("https://notes.example"))
                .starts_with("Access-Control-Allow-Origin: https://notes.example\r\n")
        );
        assert_eq!(cors(&one, Some("https://evil.example")), "");
        assert_eq!(cors(&one, None), "");
        // A header value cannot smuggle another header in.
        let any = settings(&["*"]);
        assert_eq!(cors(&any, Some("https://x\r\nSet-Cookie: a=b")), "");
        assert!(cors(&any, Some("https://x")).starts_with("Access-Control-Allow-Origin: *\r\n"));
    }
}
