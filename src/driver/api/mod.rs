//! The local API: HTTP/1.1 and JSON on a UNIX socket (mode 0660), so `curl --unix-socket` and the
//! `meshrouter` subcommands can ask the daemon. Documented in `docs/API.md`.
//!
//! Connections are served by their own tasks; each request is passed to the router as an
//! [`ApiRequest`] and answered from its state, so the API never sees half-updated data. What a
//! request may cost is decided from its head, before its body is read: its route's body limit
//! (`handlers::ENDPOINTS`; a larger `Content-Length` is answered 413 at once), a slot among
//! [`MAX_REQUESTS`] (or, for the long-polls the router holds, among [`MAX_HELD`]), one of
//! [`MAX_LARGE_BODIES`] for a body over [`LARGE_BODY`], and time limits for reading the request and
//! writing its answer.

#[cfg(feature = "services")]
mod blobs;
#[cfg(feature = "services")]
mod crdt;
#[cfg(feature = "services")]
mod crdt_access;
mod firewall;
mod handlers;
pub(crate) mod http;
#[cfg(feature = "services")]
mod identity;
#[cfg(feature = "services")]
mod names;
#[cfg(feature = "services")]
mod nodeinfo;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::debug;

use super::DriverError;
use super::input::Input;

/// Connections open at once, whatever they are doing (sending their request, waiting for the
/// router, reading the answer); more wait in the kernel's backlog.
const MAX_OPEN: usize = 128;
/// Requests served at once, from the end of their head to the end of their answer. A connection
/// that has not sent its head yet does not take one, so idle clients cannot starve the others.
const MAX_REQUESTS: usize = 32;
/// Requests the router holds (`GET /v1/crdt/watch`, `POST /v1/id/prove`) at once: their own cap,
/// so long-polls never take the slots of other requests. More are answered 503 at once.
pub(super) const MAX_HELD: usize = 16;
/// A body larger than this also needs one of [`MAX_LARGE_BODIES`] slots while it is read and
/// handled, so at most `MAX_REQUESTS × LARGE_BODY + MAX_LARGE_BODIES × (largest limit)` of bodies
/// are in memory at once (about 34 MiB).
const LARGE_BODY: usize = 64 * 1024;
/// Large bodies read and handled at once.
const MAX_LARGE_BODIES: usize = 2;
/// Time to send the request head, counted from the connection; and then the body, once admitted.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a free slot; then the request is answered 503.
const ADMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to write an answer (and `100 Continue`): a client that does not read is cut off then.
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) use self::handlers::dispatch;
pub(crate) use super::request::{ApiRequest, ApiResponse};

/// The bound API socket (before the runtime starts); removes its file when dropped.
pub(crate) struct ApiSocket {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
}

impl Drop for ApiSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Mode of the API socket: root, and the daemon's user and `api_group`, may connect.
const SOCKET_MODE: u32 = 0o660;

/// Binds the API socket at `path`, mode 0660, owned by `group` if given. Refuses to take over a socket
/// another daemon is serving, or a path that is anything but a socket (a symbolic link, a file);
/// replaces a stale socket.
///
/// Nothing here follows a symbolic link at `path` or changes a file through the path after the
/// socket exists (someone who can write to the folder could swap the path for a link to any file
/// in between): the socket file is born with its mode, and its group is set through a descriptor of
/// the file itself once that is checked to be a socket of this process's user.
pub(crate) fn bind(path: &Path, group: Option<&str>) -> Result<ApiSocket, DriverError> {
    let fail = |reason: String| DriverError::Api {
        path: path.to_owned(),
        reason,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| fail(format!("creating its folder: {e}")))?;
    }
    let gid = match group {
        Some(group) => Some(
            nix::unistd::Group::from_name(group)
                .map_err(|e| fail(format!("group {group}: {e}")))?
                .ok_or_else(|| fail(format!("no group named {group}")))?
                .gid,
        ),
        None => None,
    };
    match std::fs::symlink_metadata(path) {
        Ok(found) if found.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(fail(
                    "another meshrouter is already serving it (stop it, or set api_socket)".into(),
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| fail(format!("removing the stale socket: {e}")))?;
        }
        Ok(_) => {
            return Err(fail(
                "it exists and is not a socket (a symbolic link, a file or a folder); refusing to \
                 replace it: remove it, or set api_socket to another path"
                    .into(),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(format!("checking it: {e}"))),
    }
    let listener = bind_with_mode(path, SOCKET_MODE).map_err(|e| fail(e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| fail(e.to_string()))?;
    let socket = ApiSocket {
        listener,
        path: path.to_owned(),
    };
    if let Some(gid) = gid {
        set_group(path, gid).map_err(|e| fail(format!("chgrp: {e}")))?;
    }
    Ok(socket)
}

/// A listening UNIX socket bound at `path` whose file is created with `mode`, whatever the umask.
///
/// The file gets the socket's own mode (set with `fchmod` before `bind`) less the umask, so the
/// umask is lifted for exactly those bits around the `bind` call. The umask is the process's: this
/// runs while the daemon starts, before it has other threads.
fn bind_with_mode(path: &Path, mode: u32) -> std::io::Result<std::os::unix::net::UnixListener> {
    use nix::sys::stat::{Mode, fchmod, umask};
    let mode = Mode::from_bits_truncate(mode);
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    fchmod(&socket, mode)?;
    let address = socket2::SockAddr::unix(path)?;
    // The umask is the process's: two threads binding at once (tests do) must take turns, or one
    // would read the other's temporary umask as the one to restore.
    static UMASK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = UMASK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Reading the umask means setting it: first to something stricter than any useful one.
    let previous = umask(Mode::from_bits_truncate(0o077));
    umask(previous & !mode);
    let bound = socket.bind(&address);
    umask(previous);
    bound?;
    socket.listen(128)?;
    Ok(std::os::fd::OwnedFd::from(socket).into())
}

/// Gives the socket file at `path` to group `gid`, through a descriptor of the file itself
/// (`O_PATH | O_NOFOLLOW`), and only if it is a socket owned by this process's user: a symbolic
/// link or another file swapped in at `path` is left alone.
fn set_group(path: &Path, gid: nix::unistd::Gid) -> Result<(), String> {
    use nix::fcntl::{AtFlags, OFlag, open};
    use nix::sys::stat::{Mode, SFlag, fstat};
    let file = open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| e.to_string())?;
    let stat = fstat(&file).map_err(|e| e.to_string())?;
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFSOCK || stat.st_uid != nix::unistd::geteuid().as_raw() {
        return Err("the socket was replaced by something else meanwhile".into());
    }
    nix::unistd::fchownat(&file, "", None, Some(gid), AtFlags::AT_EMPTY_PATH)
        .map_err(|e| e.to_string())
}

/// Accepts connections until the router stops.
pub(crate) async fn serve(socket: ApiSocket, inputs: mpsc::Sender<Input>) {
    let Ok(listener) = socket.listener.try_clone().and_then(UnixListener::from_std) else {
        tracing::error!("API socket unusable; the API is off");
        return;
    };
    let slots = Arc::new(Slots::new());
    let open = Arc::new(Semaphore::new(MAX_OPEN));
    loop {
        let Ok(permit) = open.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                debug!("API accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let inputs = inputs.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            let _open = permit;
            connection(stream, &inputs, &slots).await;
        });
    }
}

/// The caps a request passes once its head is read.
struct Slots {
    requests: Arc<Semaphore>,
    held: Arc<Semaphore>,
    large: Arc<Semaphore>,
}

impl Slots {
    fn new() -> Self {
        Self {
            requests: Arc::new(Semaphore::new(MAX_REQUESTS)),
            held: Arc::new(Semaphore::new(MAX_HELD)),
            large: Arc::new(Semaphore::new(MAX_LARGE_BODIES)),
        }
    }
}

/// What an admitted request holds until its answer is written.
#[derive(Default)]
struct Permits {
    _slot: Option<OwnedSemaphorePermit>,
    _large: Option<OwnedSemaphorePermit>,
}

/// Serves one connection: one request, one answer.
async fn connection(mut stream: UnixStream, inputs: &mpsc::Sender<Input>, slots: &Slots) {
    let (status, body, permits) = match admit(&mut stream, slots).await {
        Err(refusal) => (
            refusal.status,
            serde_json::json!({ "error": refusal.message }),
            Permits::default(),
        ),
        Ok((request, permits)) => {
            let (status, body) = ask(inputs, request).await;
            (status, body, permits)
        }
    };
    // A client that does not read its answer keeps its slot only this long.
    let _ = tokio::time::timeout(
        WRITE_TIMEOUT,
        http::write_response(&mut stream, status, &body),
    )
    .await;
    drop(permits);
}

/// Reads a request within its limits: the head, then, if the route takes a body that large and a
/// slot is free, the body.
async fn admit(
    stream: &mut UnixStream,
    slots: &Slots,
) -> Result<(ApiRequest, Permits), http::Refusal> {
    let head = tokio::time::timeout(READ_TIMEOUT, http::read_head(stream))
        .await
        .unwrap_or_else(|_| Err(http::refuse(408, "request timeout")))?;
    let (max_body, held) = handlers::limits(&head.method, &head.path);
    if head.content_length > max_body as u64 {
        return Err(http::refuse(
            413,
            format!(
                "request body too large: {} {} takes at most {max_body} bytes",
                head.method,
                handlers::route_path(&head.path)
            ),
        ));
    }
    let busy = |what: &str| http::refuse(503, format!("busy: {what}; try again shortly"));
    let slot = if held {
        slots.held.clone().try_acquire_owned().map_err(|_| {
            busy(&format!(
                "{MAX_HELD} long-polls and proofs are already waiting"
            ))
        })?
    } else {
        acquire(&slots.requests)
            .await
            .ok_or_else(|| busy(&format!("{MAX_REQUESTS} requests are being served")))?
    };
    let large = if head.content_length > LARGE_BODY as u64 {
        Some(acquire(&slots.large).await.ok_or_else(|| {
            busy(&format!(
                "{MAX_LARGE_BODIES} bodies over {LARGE_BODY} bytes are being handled"
            ))
        })?)
    } else {
        None
    };
    if head.expect_continue && head.content_length > 0 {
        tokio::time::timeout(WRITE_TIMEOUT, http::write_continue(stream))
            .await
            .map_err(|_| http::refuse(408, "request timeout"))?
            .map_err(|_| http::refuse(400, "write error"))?;
    }
    let method = head.method.clone();
    let path = head.path.clone();
    let body = tokio::time::timeout(READ_TIMEOUT, http::read_body(stream, head))
        .await
        .unwrap_or_else(|_| Err(http::refuse(408, "request timeout")))?;
    let request = ApiRequest {
        method,
        path,
        body,
        app_user: None,
    };
    let permits = Permits {
        _slot: Some(slot),
        _large: large,
    };
    Ok((request, permits))
}

/// A permit of `semaphore`, waiting at most [`ADMIT_TIMEOUT`].
async fn acquire(semaphore: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    tokio::time::timeout(ADMIT_TIMEOUT, semaphore.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Passes a request to the router and waits for its answer.
async fn ask(inputs: &mpsc::Sender<Input>, request: ApiRequest) -> (u16, serde_json::Value) {
    let stopping = || (503, serde_json::json!({ "error": "stopping" }));
    let (reply, answer) = oneshot::channel();
    if inputs.send(Input::Api(request, reply)).await.is_err() {
        return stopping();
    }
    match answer.await {
        Ok(r) => (r.status, r.body),
        Err(_) => stopping(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream as StdStream;
    use std::time::Instant;

    use serde_json::json;

    use super::*;

    /// Serves a socket in `dir` from a runtime of its own, with a stand-in for the router: held
    /// requests are never answered, `GET /v1/big` gets 1 MiB, anything else `{"ok": true}`.
    fn server(dir: &Path) -> PathBuf {
        let path = dir.join("api.sock");
        let socket = bind(&path, None).unwrap();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (inputs, mut receiver) = mpsc::channel(64);
                tokio::spawn(serve(socket, inputs));
                let mut held = Vec::new();
                while let Some(input) = receiver.recv().await {
                    let Input::Api(request, reply) = input else {
                        continue;
                    };
                    if handlers::limits(&request.method, &request.path).1 {
                        held.push(reply);
                        continue;
                    }
                    let body = if request.path == "/v1/big" {
                        json!("x".repeat(1 << 20))
                    } else {
                        json!({ "ok": true, "body": request.body.len() })
                    };
                    let _ = reply.send(ApiResponse { status: 200, body });
                }
            });
        });
        path
    }

    /// Sends `request`, returns the status of the reply and how long it took.
    fn ask(path: &Path, request: &[u8]) -> (u16, Duration) {
        let start = Instant::now();
        let mut stream = StdStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        let status = String::from_utf8_lossy(&reply)
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, start.elapsed())
    }

    fn post(path: &str, body: &[u8]) -> Vec<u8> {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    }

    #[test]
    fn each_route_has_its_limit_and_a_larger_body_is_refused_before_it_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = server(dir.path());
        // The head alone announces a megabyte: refused at once, without waiting for the body.
        let (status, took) = ask(
            &path,
            b"POST /v1/peers HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n",
        );
        assert_eq!(status, 413);
        assert!(took < Duration::from_secs(1), "{took:?}");
        let (limit, _) = handlers::limits("POST", "/v1/peers");
        assert_eq!(limit, handlers::body::URI);
        assert_eq!(ask(&path, &post("/v1/peers", &vec![b' '; limit])).0, 200);
        assert_eq!(
            ask(&path, &post("/v1/peers", &vec![b' '; limit + 1])).0,
            413
        );
        assert_eq!(
            ask(&path, &post("/v1/peers/?x=1", &vec![b' '; limit + 1])).0,
            413
        );
        // GET routes take no body; unknown routes a little, to be told 404 or 405.
        assert_eq!(
            ask(
                &path,
                b"GET /v1/self HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
            )
            .0,
            413
        );
        assert_eq!(ask(&path, &post("/v1/nothing", b"{}")).0, 200);
        // A client that waits for 100 Continue gets it, then its answer.
        let mut stream = StdStream::connect(&path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(
                b"POST /v1/peers HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
            )
            .unwrap();
        let mut first = [0u8; 25];
        stream.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
        stream.write_all(b"{}").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        // Every route has its limit; the drop import is the only one in megabytes beyond lists.
        for e in handlers::endpoints() {
            if e.method == "GET" {
                assert_eq!(e.max_body, handlers::body::NONE, "{}", e.path);
            } else {
                assert!(e.max_body >= handlers::body::URI, "{}", e.path);
            }
        }
    }

    #[test]
    fn clients_that_never_send_or_never_read_do_not_starve_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = server(dir.path());
        // 32 connections that say nothing.
        let idle: Vec<StdStream> = (0..MAX_REQUESTS)
            .map(|_| StdStream::connect(&path).unwrap())
            .collect();
        let (status, took) = ask(&path, b"GET /v1/self HTTP/1.1\r\n\r\n");
        assert_eq!(
            (status, took < Duration::from_secs(1)),
            (200, true),
            "{took:?}"
        );
        // 32 more that ask for a megabyte and never read it: cut off after WRITE_TIMEOUT.
        let mut unread: Vec<StdStream> = (0..MAX_REQUESTS)
            .map(|_| {
                let mut s = StdStream::connect(&path).unwrap();
                s.write_all(b"GET /v1/big HTTP/1.1\r\n\r\n").unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let (status, took) = ask(&path, b"GET /v1/self HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200);
        assert!(took < WRITE_TIMEOUT + Duration::from_secs(2), "{took:?}");
        std::thread::sleep(WRITE_TIMEOUT);
        let mut got = Vec::new();
        unread[0]
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = unread[0].read_to_end(&mut got);
        assert!(got.len() < 1 << 20, "the answer was not cut off");
        drop(idle);
    }

    #[cfg(feature = "services")]
    #[test]
    fn long_polls_have_their_own_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = server(dir.path());
        let mut watches: Vec<StdStream> = (0..2 * MAX_REQUESTS)
            .map(|_| {
                let mut s = StdStream::connect(&path).unwrap();
                s.write_all(b"GET /v1/crdt/watch?since=0&timeout=300 HTTP/1.1\r\n\r\n")
                    .unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let (status, took) = ask(&path, b"GET /v1/self HTTP/1.1\r\n\r\n");
        assert_eq!(
            (status, took < Duration::from_secs(1)),
            (200, true),
            "{took:?}"
        );
        // Those over the cap were told so at once.
        let last = watches.last_mut().unwrap();
        last.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut reply = String::new();
        let _ = last.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        // A path that only starts like the long-poll's is not held.
        assert_eq!(ask(&path, b"GET /v1/crdt/watchers HTTP/1.1\r\n\r\n").0, 200);
    }

    #[test]
    fn bind_refuses_a_path_that_is_not_a_socket_and_never_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("precious");
        std::fs::write(&file, "keep me").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(bind(&file, None).is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        let link = dir.path().join("api.sock");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let refused = bind(&link, None).err().unwrap().to_string();
        assert!(refused.contains("not a socket"), "{refused}");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A stale socket is replaced; the new one is born 0660.
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let socket = bind(&stale, None).unwrap();
        let found = std::fs::symlink_metadata(&stale).unwrap();
        assert_eq!(found.permissions().mode() & 0o777, SOCKET_MODE);
        assert!(StdStream::connect(&stale).is_ok());
        drop(socket);
        assert!(!stale.exists());
    }

    #[test]
    fn a_link_swapped_in_while_binding_never_has_its_target_changed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let path = dir.path().join("api.sock");
        let group = nix::unistd::Group::from_gid(nix::unistd::getegid())
            .unwrap()
            .unwrap()
            .name;
        // Someone who can write to the folder keeps putting a link to the victim at the path.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attacker = {
            let (stop, victim, path) = (stop.clone(), victim.clone(), path.clone());
            let spare = dir.path().join("spare");
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::os::unix::fs::symlink(&victim, &spare);
                    let _ = std::fs::rename(&spare, &path);
                }
            })
        };
        let start = Instant::now();
        let mut bound = 0;
        while start.elapsed() < Duration::from_secs(2) {
            if let Ok(socket) = bind(&path, Some(&group)) {
                bound += 1;
                drop(socket);
            }
            let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "the victim's mode changed after {bound} binds");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        attacker.join().unwrap();
    }
}
