//! `metrics_listen`: `GET /metrics` over TCP for a Prometheus server, off unless configured. It
//! answers that one route, read-only, nothing else of the local API; connections are capped
//! ([`MAX_OPEN`]) and each has [`TIMEOUT`] to ask and be answered, so a scraper that hangs (or a
//! stranger who opens sockets) holds little.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::driver::api::http;
use crate::driver::input::Input;
use crate::driver::request::ApiRequest;

/// Connections served at once, at most; more wait to be accepted.
pub(crate) const MAX_OPEN: usize = 8;
/// Time a connection has to send its request and take the answer.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `address` (during privileged setup, so a port below 1024 works).
pub(crate) fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves scrapes until the router stops.
pub(crate) async fn serve(listener: std::net::TcpListener, inputs: mpsc::Sender<Input>) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        tracing::error!("metrics listener unusable; metrics_listen is off");
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
                tracing::debug!("metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let inputs = inputs.clone();
        tokio::spawn(async move {
            let _open = permit;
            let _ = tokio::time::timeout(TIMEOUT, scrape(stream, &inputs)).await;
        });
    }
}

/// One request, one answer: the metrics for `GET /metrics`, 404 or 405 for anything else.
async fn scrape(mut stream: TcpStream, inputs: &mpsc::Sender<Input>) {
    let head = match http::read_head(&mut stream).await {
        Ok(head) => head,
        Err(refusal) => {
            let body = serde_json::json!({ "error": refusal.message });
            let _ = http::write_response(&mut stream, refusal.status, &body).await;
            return;
        }
    };
    let path = head.path.split('?').next().unwrap_or("");
    let (status, body) = if path != "/metrics" {
        (
            404,
            serde_json::json!({ "error": "only /metrics is served here" }),
        )
    } else if head.method != "GET" {
        (405, serde_json::json!({ "error": "only GET" }))
    } else {
        let (reply, answer) = oneshot::channel();
        let request = ApiRequest {
            method: "GET".into(),
            path: "/metrics".into(),
            body: Vec::new(),
            app_user: None,
        };
        if inputs.send(Input::Api(request, reply)).await.is_err() {
            return;
        }
        match answer.await {
            Ok(response) => (response.status, response.body),
            Err(_) => return,
        }
    };
    let _ = http::write_response(&mut stream, status, &body).await;
    let _ = stream.shutdown().await;
}
