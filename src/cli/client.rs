//! A minimal HTTP/1.1 client over the daemon's UNIX socket, for the control subcommands.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

/// Largest response read (the whole tree of a big mesh fits easily).
const MAX_RESPONSE: u64 = 64 << 20;

/// An answer from the daemon.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: serde_json::Value,
}

/// The daemon answered with an error status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) message: String,
}

/// Sends one request and returns the reply; explains plainly when the daemon cannot be reached.
pub(crate) fn call(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    call_waiting(socket, method, path, body, Duration::from_secs(10))
}

/// [`call`] for requests the daemon may hold up to `wait` (long polls).
pub(crate) fn call_waiting(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    wait: Duration,
) -> anyhow::Result<serde_json::Value> {
    let reply = request(socket, method, path, body, wait)?;
    if reply.status >= 400 {
        let message = reply.body["error"]
            .as_str()
            .map_or_else(|| reply.body.to_string(), str::to_owned);
        return Err(ApiError {
            status: reply.status,
            message,
        }
        .into());
    }
    Ok(reply.body)
}

fn connect(socket: &Path) -> anyhow::Result<UnixStream> {
    UnixStream::connect(socket).map_err(|e| {
        let shown = socket.display();
        let advice = match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "no daemon socket at {shown}: is meshrouter running? (start it with `meshrouter run`, \
                 or point --socket at its api_socket)"
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "permission denied on {shown}: run as root or as a member of the socket's group \
                 (api_group in the config)"
            ),
            std::io::ErrorKind::ConnectionRefused => format!(
                "nobody is listening on {shown}: the daemon is not running (the socket is stale)"
            ),
            _ => format!("cannot connect to {shown}: {e}"),
        };
        anyhow::anyhow!(advice)
    })
}

fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    wait: Duration,
) -> anyhow::Result<Reply> {
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(wait))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: meshrouter\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let sent = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()));
    // The daemon may refuse a request from its head (413 for a body over the route's limit) and
    // close before reading the body: its answer is then still there to read, and says why.
    let mut raw = Vec::new();
    let read = (&mut stream).take(MAX_RESPONSE).read_to_end(&mut raw);
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => {
            sent.context("sending the request")?;
            read.context("reading the reply")?;
            bail!("the daemon sent a malformed reply")
        }
    };
    let status = response.code.unwrap_or(0);
    let body = serde_json::from_slice(&raw[head_len..])
        .with_context(|| format!("the daemon's reply (status {status}) is not JSON"))?;
    Ok(Reply { status, body })
}

/// A node's 64-hex key as given, or the key the mesh name `node` stands for (asked of the daemon).
pub(crate) fn node_key(socket: &Path, node: &str) -> anyhow::Result<String> {
    if node.len() == 64 && node.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(node.to_owned());
    }
    let body = serde_json::json!({ "name": node });
    let resolved = call(socket, "POST", "/v1/names/resolve", Some(&body))?;
    match resolved["key"].as_str() {
        Some(key) => Ok(key.to_owned()),
        None => anyhow::bail!("{node}: not a key nor a mesh name this node knows"),
    }
}
