//! `GET /api/crdt/events?namespace=N&document=D`: a document as server-sent events, so a page
//! updates as others type.
//!
//! The first event is the document as it is (`event: document`, the JSON of `/api/crdt/read`; `{"missing":
//! true}` while nobody has written it); another follows each time it changes, from this node or from
//! the mesh. One task long-polls the router for changes ([`Feed`]) whatever the number of streams;
//! each stream then reads its own document, through the same access check as a read, so a user whose
//! access is revoked gets `event: error` and the stream ends. A comment line every
//! [`KEEPALIVE`] finds dead connections; the stream ends with `event: expired` when the session
//! token does. `EventSource` cannot send headers, so the token may come as `access_token` in the
//! query (RFC 6750 §2.3).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::{Reply, Shared, WRITE_TIMEOUT, ask, auth, forward, write_reply};
use crate::driver::api::http::Head;
use crate::driver::input::Input;
use crate::driver::request::ApiRequest;

/// A comment this often keeps proxies from closing the stream and finds clients that left.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(15);
/// How long one long-poll of the router waits.
const POLL_SECONDS: u64 = 60;

/// The CRDT service's change counter, as one long-poll of the router sees it.
pub(super) struct Feed {
    version: watch::Receiver<u64>,
}

impl Feed {
    /// Starts the long-poll task.
    pub(super) fn start(inputs: mpsc::Sender<Input>) -> Self {
        let (tx, version) = watch::channel(0u64);
        tokio::spawn(async move {
            let mut since = 0u64;
            loop {
                let answer = ask(
                    &inputs,
                    ApiRequest {
                        method: "GET".into(),
                        path: format!("/v1/crdt/watch?since={since}&timeout={POLL_SECONDS}"),
                        body: Vec::new(),
                        app_user: None,
                    },
                )
                .await;
                if tx.is_closed() && inputs.is_closed() {
                    return;
                }
                match answer.body["version"].as_u64() {
                    Some(v) if answer.status == 200 => {
                        if v != since {
                            since = v;
                            tx.send_replace(v);
                        }
                    }
                    // The CRDT service is off, or the daemon is stopping.
                    _ => tokio::time::sleep(Duration::from_secs(5)).await,
                }
            }
        });
        Self { version }
    }
}

/// Serves one event stream until the client leaves, its token expires or its access goes.
pub(super) async fn serve(mut stream: TcpStream, head: Head, shared: &Shared, cors: &str) {
    let query = head.path.split_once('?').map_or("", |(_, q)| q);
    let (mut namespace, mut document, mut query_token) = (None, None, None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "namespace" => namespace = Some(v.into_owned()),
            "document" => document = Some(v.into_owned()),
            "access_token" => query_token = Some(v.into_owned()),
            _ => {}
        }
    }
    let refuse = |status, message: &str| Reply::error(status, message);
    let (Some(namespace), Some(document)) = (namespace, document) else {
        let reply = refuse(400, "give namespace and document in the query");
        let _ = write_reply(&mut stream, &reply, cors, false).await;
        return;
    };
    let token = auth::bearer(head.authorization.as_deref())
        .map(str::to_owned)
        .or(query_token);
    let user = match super::user(shared, token.as_deref()).await {
        Ok(u) => u,
        Err(reply) => {
            let _ = write_reply(&mut stream, &reply, cors, false).await;
            return;
        }
    };
    let Ok(_permit) = shared.streams.clone().try_acquire_owned() else {
        let reply = refuse(503, "busy: too many event streams are open");
        let _ = write_reply(&mut stream, &reply, cors, false).await;
        return;
    };
    let body = serde_json::to_vec(&json!({ "namespace": namespace, "document": document }))
        .unwrap_or_default();
    let read = || forward(shared, "/v1/crdt/read", body.clone(), Some(user.key));
    let first = read().await;
    if first.status != 200 && first.status != 404 {
        let _ = write_reply(&mut stream, &first, cors, false).await;
        return;
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n{cors}Connection: close\r\n\r\nretry: 2000\n\n"
    );
    if send(&mut stream, head.as_bytes()).await.is_err() {
        return;
    }
    let mut version = shared.feed.version.clone();
    let mut last_heads = Value::Null;
    let mut reply = first;
    let now_secs = super::super::clock::wall_micros() / 1_000_000;
    let lifetime = Duration::from_secs(user.expires.saturating_sub(now_secs));
    let expiry = tokio::time::sleep(lifetime);
    tokio::pin!(expiry);
    loop {
        match reply.status {
            200 => {
                let doc: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
                if doc["heads"] != last_heads {
                    last_heads = doc["heads"].clone();
                    let event = format!("event: document\ndata: {doc}\n\n");
                    if send(&mut stream, event.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
            404 if last_heads.is_null() => {
                last_heads = json!("");
                let event = format!(
                    "event: document\ndata: {}\n\n",
                    json!({ "namespace": namespace, "document": document, "missing": true })
                );
                if send(&mut stream, event.as_bytes()).await.is_err() {
                    return;
                }
            }
            404 => {}
            _ => {
                let error: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
                let event = format!("event: error\ndata: {error}\n\n");
                let _ = send(&mut stream, event.as_bytes()).await;
                return;
            }
        }
        loop {
            tokio::select! {
                changed = version.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                () = tokio::time::sleep(KEEPALIVE) => {
                    if send(&mut stream, b": keepalive\n\n").await.is_err() {
                        return;
                    }
                }
                () = &mut expiry => {
                    let _ = send(&mut stream, b"event: expired\ndata: {}\n\n").await;
                    return;
                }
            }
        }
        reply = read().await;
    }
}

async fn send(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}
