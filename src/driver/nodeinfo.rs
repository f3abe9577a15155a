//! NodeInfo in the daemon: publishes the configured description (signed once at start) and asks
//! other nodes for theirs on behalf of the API. Runs on the services' thread.

use std::collections::HashMap;

use serde_json::json;
use tokio::sync::oneshot;

use super::request::ApiResponse;
use crate::core::identity::{NodeKey, PublicKey};
use crate::core::time::Instant;
use crate::services::identity::did_key::did_key;
use crate::services::nodeinfo::{
    NODEINFO_PORT, NODEINFO_TIMEOUT, NodeInfo, NodeInfoOutcome, NodeInfoService,
};

/// The NodeInfo service and the API calls waiting for answers.
pub(crate) struct DaemonNodeInfo {
    service: NodeInfoService,
    waiting: HashMap<u64, oneshot::Sender<ApiResponse>>,
}

impl DaemonNodeInfo {
    /// Publishes `info` (checked when the configuration was read) for `key`.
    pub(crate) fn new(key: &NodeKey, info: &str, seed: [u8; 32], now: Instant) -> Self {
        let issued_ms = super::clock::wall_micros() / 1000;
        let published = NodeInfo::sign(key, issued_ms, info.to_owned()).unwrap_or_else(|e| {
            tracing::warn!("nodeinfo: {e}; publishing only the version");
            let bare = json!({"software": "meshrouter", "version": env!("CARGO_PKG_VERSION")});
            NodeInfo::sign(key, issued_ms, bare.to_string()).expect("a small object")
        });
        Self {
            service: NodeInfoService::new(key.duplicate(), published, seed, now),
            waiting: HashMap::new(),
        }
    }

    /// This node's description, as others receive it.
    pub(crate) fn published(&self) -> serde_json::Value {
        let counters = self.service.counters();
        let mut body = info_json(self.service.published());
        body["counters"] = json!({
            "answered": counters.answered,
            "limited": counters.limited,
            "refused": counters.refused,
        });
        body
    }

    /// Asks `node` for its description; `reply` gets it.
    pub(crate) fn ask(
        &mut self,
        now: Instant,
        node: PublicKey,
        reply: oneshot::Sender<ApiResponse>,
    ) {
        let id = self.service.request(now, node);
        self.waiting.insert(id, reply);
        self.answer(now);
    }

    /// A message on the NodeInfo port.
    pub(crate) fn on_message(&mut self, now: Instant, from: PublicKey, payload: &[u8]) {
        self.service.handle_message(now, from, payload);
        self.answer(now);
    }

    /// Fresh entropy for the nonces.
    pub(crate) fn reseed(&mut self, extra: &[u8; 32]) {
        self.service.reseed(extra);
    }

    /// Timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.service.handle_timeout(now);
        self.answer(now);
    }

    /// When [`Self::handle_timeout`] has work.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.service.poll_timeout()
    }

    /// A message to send: to `peer`'s NodeInfo port.
    pub(crate) fn poll_send(&mut self) -> Option<(PublicKey, u16, Vec<u8>)> {
        let (peer, bytes) = self.service.poll_transmit()?;
        Some((peer, NODEINFO_PORT, bytes))
    }

    fn answer(&mut self, now: Instant) {
        while let Some(outcome) = self.service.poll_outcome() {
            if let Some(reply) = self.waiting.remove(&outcome.id) {
                let _ = reply.send(response(now, &outcome));
            }
        }
    }
}

fn info_json(info: &NodeInfo) -> serde_json::Value {
    json!({
        "key": info.node.to_hex(),
        "did": did_key(&info.node),
        "address": crate::core::address::node_address(&info.node).to_string(),
        "issued_ms": info.issued_ms,
        "info": serde_json::from_str::<serde_json::Value>(&info.info).unwrap_or_default(),
        "signed": info.info,
        "signature": hex::encode(info.signature),
    })
}

fn response(now: Instant, outcome: &NodeInfoOutcome) -> ApiResponse {
    let did = did_key(&outcome.node);
    match &outcome.result {
        Some(Ok(info)) => {
            let mut body = info_json(info);
            body["rtt_ms"] = json!(now.saturating_since(outcome.asked).as_secs_f64() * 1e3);
            ApiResponse::ok(body)
        }
        Some(Err(e)) => ApiResponse::error(
            502,
            format!("{did} answered with a NodeInfo we refuse: {e}"),
        ),
        None => ApiResponse::error(
            504,
            format!(
                "{did} did not answer within {} s (unreachable, not running meshrouter, or over its answer rate)",
                NODEINFO_TIMEOUT.as_secs()
            ),
        ),
    }
}
