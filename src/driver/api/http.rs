//! Just enough HTTP/1.1 for a local JSON API: one request per connection, bounded in size and time.
//! Parsing is httparse's; this module reads the head, then (once the caller has checked the body's
//! length against the route's limit and admitted the request) the body, and writes responses.
//! Timeouts are the caller's ([`super`]).

use std::borrow::Cow;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// First allocation for a body larger than what came with the head; it then doubles as bytes
/// arrive, never past the declared length (itself within the route's limit).
const FIRST_BODY_ALLOCATION: usize = 16 * 1024;

/// A request head: the request line and what the headers say about the body.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: String,
    /// The request target, query included.
    pub(crate) path: String,
    /// The body's length (`Content-Length`, 0 without one; `u64::MAX` saturates).
    pub(crate) content_length: u64,
    /// The client waits for `100 Continue` before it sends the body (curl does for large ones).
    pub(crate) expect_continue: bool,
    /// The `Authorization` header (the app listener's bearer tokens).
    #[cfg_attr(not(feature = "services"), allow(dead_code))]
    pub(crate) authorization: Option<String>,
    /// The `Origin` header (the app listener's CORS).
    #[cfg_attr(not(feature = "services"), allow(dead_code))]
    pub(crate) origin: Option<String>,
    /// What was read past the head: the start of the body, at most `content_length` bytes.
    rest: Vec<u8>,
}

/// Why a request was refused before reaching a handler.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) message: Cow<'static, str>,
}

pub(crate) fn refuse(status: u16, message: impl Into<Cow<'static, str>>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// Reads a request head (at most [`MAX_HEAD`] bytes, and never more than one small read past it).
pub(crate) async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Head, Refusal> {
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
                if head_len > MAX_HEAD {
                    return Err(refuse(431, "request head too large"));
                }
                let (content_length, expect_continue) = framing(request.headers)?;
                let header = |name: &str| {
                    (request.headers.iter())
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .map(str::to_owned)
                };
                let authorization = header("authorization");
                let origin = header("origin");
                let method = request.method.unwrap_or("").to_owned();
                let path = request.path.unwrap_or("").to_owned();
                let mut rest = buf.split_off(head_len);
                rest.truncate(usize::try_from(content_length).unwrap_or(usize::MAX));
                return Ok(Head {
                    method,
                    path,
                    content_length,
                    expect_continue,
                    authorization,
                    origin,
                    rest,
                });
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(refuse(431, "too many headers"));
            }
            Err(_) => return Err(refuse(400, "malformed request")),
        }
    }
}

/// The body's length and whether the client expects `100 Continue`.
fn framing(headers: &[httparse::Header<'_>]) -> Result<(u64, bool), Refusal> {
    let mut length: Option<u64> = None;
    let mut expect_continue = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(refuse(
                411,
                "chunked or otherwise encoded bodies are not supported; send Content-Length",
            ));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| refuse(400, "bad Content-Length"))?;
            // More digits than a u64 holds is still a length, and too large for any route.
            let value = value.parse().unwrap_or(u64::MAX);
            if length.is_some_and(|l| l != value) {
                return Err(refuse(400, "conflicting Content-Length headers"));
            }
            length = Some(value);
        }
        if h.name.eq_ignore_ascii_case("expect") && h.value.eq_ignore_ascii_case(b"100-continue") {
            expect_continue = true;
        }
    }
    Ok((length.unwrap_or(0), expect_continue))
}

/// Reads the body `head` announced. The caller has checked its length against the route's limit;
/// the buffer grows as bytes arrive and never beyond that length, so a client that announces a
/// large body and sends little makes the daemon allocate little.
pub(crate) async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    head: Head,
) -> Result<Vec<u8>, Refusal> {
    let length =
        usize::try_from(head.content_length).map_err(|_| refuse(413, "request body too large"))?;
    let mut body = head.rest;
    let mut chunk = [0u8; 8192];
    while body.len() < length {
        let want = (length - body.len()).min(chunk.len());
        let n = stream
            .read(&mut chunk[..want])
            .await
            .map_err(|_| refuse(400, "read error"))?;
        if n == 0 {
            return Err(refuse(400, "incomplete body"));
        }
        if body.capacity() - body.len() < n {
            let target = (body.capacity() * 2)
                .max(FIRST_BODY_ALLOCATION)
                .max(body.len() + n)
                .min(length);
            body.reserve_exact(target - body.len());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(body)
}

/// Tells a client that waits for it (`Expect: 100-continue`) to send its body.
pub(crate) async fn write_continue<S: AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<()> {
    stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        _ => "Error",
    }
}

/// Writes a JSON response (or, for a string body, plain text: the metrics) and closes the
/// connection.
pub(crate) async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    body: &serde_json::Value,
) -> std::io::Result<()> {
    let (text, content_type) = match body {
        serde_json::Value::String(text) => (
            text.as_bytes().to_vec(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        _ => {
            let mut text = serde_json::to_vec_pretty(body).unwrap_or_default();
            text.push(b'\n');
            (text, "application/json")
        }
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        text.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&text).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

    use super::*;

    async fn head_of(request: &[u8]) -> Result<Head, Refusal> {
        let (mut client, mut server) = tokio::net::UnixStream::pair().unwrap();
        client.write_all(request).await.unwrap();
        client.shutdown().await.unwrap();
        read_head(&mut server).await
    }

    #[tokio::test]
    async fn the_head_tells_the_body_length_without_reading_the_body() {
        let head = head_of(b"POST /v1/peers HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n{\"uri\"")
            .await
            .unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.path, "/v1/peers");
        assert_eq!(head.content_length, 1 << 20);
        assert_eq!(head.rest, b"{\"uri\"");
        assert!(!head.expect_continue);
        let huge = head_of(b"POST /x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(huge.content_length, u64::MAX);
        let expect =
            head_of(b"POST /x HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n")
                .await
                .unwrap();
        assert!(expect.expect_continue);
        // What follows the declared body is not part of it.
        let short = head_of(b"POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}junk")
            .await
            .unwrap();
        assert_eq!(short.rest, b"{}");
    }

    #[tokio::test]
    async fn bad_framing_is_refused() {
        for (request, status) in [
            (
                &b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                411,
            ),
            (
                b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n",
                411,
            ),
            (b"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (b"POST /x HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 400),
            (
                b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (b"GET /x HTTP/1.1\r\n", 400),
        ] {
            let refusal = head_of(request).await.unwrap_err();
            assert_eq!(
                refusal.status,
                status,
                "{}",
                String::from_utf8_lossy(request)
            );
        }
        let long = format!("GET /x HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(head_of(long.as_bytes()).await.unwrap_err().status, 431);
    }

    #[tokio::test]
    async fn a_body_never_takes_more_memory_than_its_length() {
        let (mut client, mut server) = tokio::net::UnixStream::pair().unwrap();
        let length = 300_000;
        let writer = tokio::spawn(async move {
            let request = format!("POST /x HTTP/1.1\r\nContent-Length: {length}\r\n\r\n");
            client.write_all(request.as_bytes()).await.unwrap();
            client.write_all(&vec![b'x'; length]).await.unwrap();
            client
        });
        let head = read_head(&mut server).await.unwrap();
        let body = read_body(&mut server, head).await.unwrap();
        assert_eq!(body.len(), length);
        assert!(body.capacity() <= length, "{}", body.capacity());
        drop(writer.await.unwrap());
        // A client that announces much and sends little: the allocation follows what arrived.
        let (mut client, mut server) = tokio::net::UnixStream::pair().unwrap();
        client
            .write_all(b"POST /x HTTP/1.1\r\nContent-Length: 16000000\r\n\r\nabc")
            .await
            .unwrap();
        let head = read_head(&mut server).await.unwrap();
        let reading = tokio::spawn(async move { read_body(&mut server, head).await });
        client.shutdown().await.unwrap();
        assert_eq!(reading.await.unwrap().unwrap_err().status, 400);
    }
}
