//! The local API: HTTP/1.1 and JSON on a UNIX socket (mode 0660), so `curl --unix-socket` and the
//! `meshrouter` subcommands can ask the daemon. Documented in `docs/API.md`.
//!
//! Connections are served by their own tasks; each request is passed to the router as an
//! [`ApiRequest`] and answered from its state, so the API never sees half-updated data.

#[cfg(feature = "services")]
mod crdt;
mod handlers;
mod http;
#[cfg(feature = "services")]
mod identity;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::debug;

use super::DriverError;
use super::router::Input;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;

/// A request for the router.
pub(crate) struct ApiRequest {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body: Vec<u8>,
}

/// The router's answer.
pub(crate) struct ApiResponse {
    pub(crate) status: u16,
    pub(crate) body: serde_json::Value,
}

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

/// Binds the API socket at `path`, mode 0660, owned by `group` if given. Refuses to take over a socket
/// another daemon is serving; replaces a stale one.
pub(crate) fn bind(path: &Path, group: Option<&str>) -> Result<ApiSocket, DriverError> {
    let fail = |reason: String| DriverError::Api {
        path: path.to_owned(),
        reason,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| fail(format!("creating its folder: {e}")))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(fail(
            "another meshrouter is already serving it (stop it, or set api_socket)".into(),
        ));
    }
    if path.exists() {
        std::fs::remove_file(path).map_err(|e| fail(format!("removing the stale socket: {e}")))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(|e| fail(e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| fail(e.to_string()))?;
    let socket = ApiSocket {
        listener,
        path: path.to_owned(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| fail(format!("chmod: {e}")))?;
    if let Some(group) = group {
        let gid = nix::unistd::Group::from_name(group)
            .map_err(|e| fail(format!("group {group}: {e}")))?
            .ok_or_else(|| fail(format!("no group named {group}")))?
            .gid;
        nix::unistd::chown(path, None, Some(gid)).map_err(|e| fail(format!("chown: {e}")))?;
    }
    Ok(socket)
}

/// Accepts connections until the router stops.
pub(crate) async fn serve(socket: ApiSocket, inputs: mpsc::Sender<Input>) {
    let Ok(listener) = socket.listener.try_clone().and_then(UnixListener::from_std) else {
        tracing::error!("API socket unusable; the API is off");
        return;
    };
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (mut stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                debug!("API accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let inputs = inputs.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (status, body) = match http::read_request(&mut stream).await {
                Err(refusal) => (
                    refusal.status,
                    serde_json::json!({ "error": refusal.message }),
                ),
                Ok(request) => {
                    let (reply, answer) = oneshot::channel();
                    let call = ApiRequest {
                        method: request.method,
                        path: request.path,
                        body: request.body,
                    };
                    match inputs.send(Input::Api(call, reply)).await {
                        Err(_) => (503, serde_json::json!({ "error": "stopping" })),
                        Ok(()) => match answer.await {
                            Ok(r) => (r.status, r.body),
                            Err(_) => (503, serde_json::json!({ "error": "stopping" })),
                        },
                    }
                }
            };
            let _ = http::write_response(&mut stream, status, &body).await;
        });
    }
}
