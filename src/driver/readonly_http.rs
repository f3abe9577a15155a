//! The read-only HTTP listeners, off unless configured:
//!
//! - `metrics_listen`: `GET /metrics` for a Prometheus server;
//! - `status_listen`: the status page for an operator with a phone (`GET /`, one self-contained
//!   page, `status.html`) and the few JSON routes it reads, the same as `meshrouter self`, `peers`,
//!   `tree`, `sessions`, `crdt list` and `names` show.
//!
//! Nothing else of the local API is reachable here, nothing can be changed, and no secret leaves:
//! link URIs lose their query (where a password may be). Connections are capped ([`MAX_OPEN`]) and
//! each has [`TIMEOUT`] to ask and be answered, so a client that hangs (or a stranger who opens
//! sockets) holds little.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::api::http;
use super::input::Input;
use super::request::ApiRequest;

/// Connections served at once per listener, at most; more wait to be accepted.
pub(crate) const MAX_OPEN: usize = 8;
/// Time a connection has to send its request and take the answer.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// The status page: one file, no external assets.
pub(crate) const STATUS_PAGE: &str = include_str!("status.html");

/// Which listener this is, and so which routes it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    Metrics,
    Status,
}

/// The local API's routes the status page reads.
const STATUS_ROUTES: [&str; 6] = [
    "/v1/self",
    "/v1/peers",
    "/v1/tree",
    "/v1/sessions",
    "/v1/crdt",
    "/v1/names",
];

/// Binds `address` (during privileged setup, so a port below 1024 works).
pub(crate) fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves `site` on `listener` until the router stops.
pub(crate) async fn serve(
    site: Site,
    listener: std::net::TcpListener,
    inputs: mpsc::Sender<Input>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        tracing::error!(?site, "listener unusable; it is off");
        return;
    };
    let open = Arc::new(Semaphore::new(MAX_OPEN));
    loop {
        let Ok(permit) = open.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!(?site, "accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let inputs = inputs.clone();
        tokio::spawn(async move {
            let _open = permit;
            let _ = tokio::time::timeout(TIMEOUT, request(site, stream, &inputs)).await;
        });
    }
}

/// What a path is on `site`.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Page,
    Api(&'static str),
    NotHere,
}

fn route(site: Site, path: &str) -> Route {
    let path = path.split('?').next().unwrap_or("");
    match site {
        Site::Metrics if path == "/metrics" => Route::Api("/metrics"),
        Site::Status if path == "/" || path == "/index.html" => Route::Page,
        Site::Status => STATUS_ROUTES
            .iter()
            .find(|r| **r == path)
            .map_or(Route::NotHere, |r| Route::Api(r)),
        Site::Metrics => Route::NotHere,
    }
}

/// One request, one answer.
async fn request(site: Site, mut stream: TcpStream, inputs: &mpsc::Sender<Input>) {
    let head = match http::read_head(&mut stream).await {
        Ok(head) => head,
        Err(refusal) => {
            let body = serde_json::json!({ "error": refusal.message });
            let _ = http::write_response(&mut stream, refusal.status, &body).await;
            return;
        }
    };
    let route = route(site, &head.path);
    if route != Route::NotHere && head.method != "GET" {
        let body = serde_json::json!({ "error": "read-only: only GET" });
        let _ = http::write_response(&mut stream, 405, &body).await;
        return;
    }
    match route {
        Route::NotHere => {
            let body = serde_json::json!({ "error": "not served here" });
            let _ = http::write_response(&mut stream, 404, &body).await;
        }
        Route::Page => {
            let _ = write_page(&mut stream).await;
        }
        Route::Api(path) => {
            let (reply, answer) = oneshot::channel();
            let request = ApiRequest {
                method: "GET".into(),
                path: path.into(),
                body: Vec::new(),
                app_user: None,
            };
            if inputs.send(Input::Api(request, reply)).await.is_err() {
                return;
            }
            let Ok(mut response) = answer.await else {
                return;
            };
            strip_queries(&mut response.body);
            let _ = http::write_response(&mut stream, response.status, &response.body).await;
        }
    }
}

/// Writes the status page (its content security policy is in the page: inline code, requests to
/// this listener only).
async fn write_page(stream: &mut TcpStream) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        STATUS_PAGE.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(STATUS_PAGE.as_bytes()).await?;
    stream.shutdown().await
}

/// Cuts the query (where a password may be) off every `uri` in `value`.
fn strip_queries(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "uri"
                    && let Value::String(text) = v
                    && let Some(at) = text.find('?')
                {
                    text.truncate(at);
                } else {
                    strip_queries(v);
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(strip_queries),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_site_answers_its_routes_only() {
        assert_eq!(route(Site::Metrics, "/metrics"), Route::Api("/metrics"));
        assert_eq!(route(Site::Metrics, "/v1/self"), Route::NotHere);
        assert_eq!(route(Site::Metrics, "/"), Route::NotHere);
        assert_eq!(route(Site::Status, "/"), Route::Page);
        assert_eq!(
            route(Site::Status, "/v1/peers?x=1"),
            Route::Api("/v1/peers")
        );
        for refused in [
            "/metrics",
            "/v1/peers/x",
            "/v1/crdt/write",
            "/v1/reload",
            "/v1/id/self",
        ] {
            assert_eq!(route(Site::Status, refused), Route::NotHere, "{refused}");
        }
    }

    #[test]
    fn link_uris_lose_their_query() {
        let mut v = serde_json::json!({
            "peers": [{"uri": "udp://h:1?password=secret&key=00", "rx": 1}],
            "configured": [{"uri": "tls://g:443"}],
        });
        strip_queries(&mut v);
        assert_eq!(v["peers"][0]["uri"], "udp://h:1");
        assert_eq!(v["configured"][0]["uri"], "tls://g:443");
        assert!(!v.to_string().contains("secret"));
    }

    #[test]
    fn the_page_is_small_and_self_contained() {
        assert!(STATUS_PAGE.len() < 32 * 1024, "{} bytes", STATUS_PAGE.len());
        for external in ["http://", "https://", "src=\"//"] {
            assert!(!STATUS_PAGE.contains(external), "{external}");
        }
    }
}
