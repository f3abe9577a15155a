//! Just enough HTTP/1.1 for a local JSON API: one request per connection, bounded in size and time.
//! Parsing is httparse's; this module only frames the body and writes responses.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 64 << 20;
/// A client must send its whole request within this time.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed request.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body: Vec<u8>,
}

/// Why a request was refused before reaching a handler.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) message: &'static str,
}

fn refuse(status: u16, message: &'static str) -> Refusal {
    Refusal { status, message }
}

/// Reads one request.
pub(crate) async fn read_request(stream: &mut UnixStream) -> Result<Request, Refusal> {
    tokio::time::timeout(READ_TIMEOUT, read_inner(stream))
        .await
        .unwrap_or(Err(refuse(408, "request timeout")))
}

async fn read_inner(stream: &mut UnixStream) -> Result<Request, Refusal> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| refuse(400, "read error"))?;
        if n == 0 {
            return Err(refuse(400, "incomplete request"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_HEAD {
                    return Err(refuse(431, "request head too large"));
                }
            }
            Ok(httparse::Status::Complete(head_len)) => {
                let length = content_length(request.headers)?;
                if length > MAX_BODY {
                    return Err(refuse(413, "request body too large"));
                }
                let method = request.method.unwrap_or("").to_owned();
                let path = request.path.unwrap_or("").to_owned();
                let mut body = buf[head_len..].to_vec();
                while body.len() < length {
                    let n = stream
                        .read(&mut chunk)
                        .await
                        .map_err(|_| refuse(400, "read error"))?;
                    if n == 0 {
                        return Err(refuse(400, "incomplete body"));
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
                body.truncate(length);
                return Ok(Request { method, path, body });
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(refuse(431, "too many headers"));
            }
            Err(_) => return Err(refuse(400, "malformed request")),
        }
    }
}

fn content_length(headers: &[httparse::Header<'_>]) -> Result<usize, Refusal> {
    let mut length = 0;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(refuse(
                411,
                "chunked bodies are not supported; send Content-Length",
            ));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| refuse(400, "bad Content-Length"))?;
        }
    }
    Ok(length)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Writes a JSON response and closes the connection.
pub(crate) async fn write_response(
    stream: &mut UnixStream,
    status: u16,
    body: &serde_json::Value,
) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(body).unwrap_or_default();
    text.push(b'\n');
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        text.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&text).await?;
    stream.shutdown().await
}
