//! What the local API hands the router and what it answers: plain data, so that the API, the router
//! and the services can all name them without importing each other.

/// A request for the router.
pub(crate) struct ApiRequest {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body: Vec<u8>,
    /// For a request from the app listener (`driver::apps`), the Ed25519 key of the user its session
    /// token names: handlers then also check what that user may do. `None` on the local socket,
    /// whose callers act for the node.
    #[cfg_attr(not(feature = "services"), allow(dead_code))]
    pub(crate) app_user: Option<[u8; 32]>,
}

/// The router's answer.
pub(crate) struct ApiResponse {
    pub(crate) status: u16,
    pub(crate) body: serde_json::Value,
}

impl ApiResponse {
    /// A 200 answer.
    pub(crate) fn ok(body: serde_json::Value) -> Self {
        Self { status: 200, body }
    }

    /// A plain-text answer (the metrics exposition): a JSON string body is written as
    /// `text/plain`, not as JSON.
    pub(crate) fn text(text: String) -> Self {
        Self {
            status: 200,
            body: serde_json::Value::String(text),
        }
    }

    /// An error answer: `{"error": message}`.
    pub(crate) fn error(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            body: serde_json::json!({ "error": message.into() }),
        }
    }
}
