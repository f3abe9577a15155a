//! `meshrouter trace` in the daemon (`POST /v1/trace`): finds the destination (a peer, a path a
//! lookup found, or a lookup now, timed), sends the core's probe and gathers the hops' signed answers
//! into the way the probe took, each hop with its round trip, and where and why it stopped.
//!
//! The router ticks running traces every [`TICK`] ([`Input::TraceTick`]) while any runs: to ask
//! again while a lookup runs, and to end a trace whose lookup or probe timed out.

use std::net::Ipv6Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::input::Input;
use super::request::ApiResponse;
use crate::core::address::node_address;
use crate::core::identity::PublicKey;
use crate::core::node::{Node, TraceStart};
use crate::core::time::Instant;
use crate::core::wire::trace::TraceOutcome;

/// How long the destination may take to be found.
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the probe's answers are waited for.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Traces running at once, at most.
pub(crate) const MAX_RUNNING: usize = 8;
/// How often running traces are looked at.
const TICK: Duration = Duration::from_millis(50);

/// One hop's answer.
struct Hop {
    key: PublicKey,
    outcome: TraceOutcome,
    rtt: Duration,
}

struct Running {
    address: Ipv6Addr,
    started: Instant,
    /// The probe: its id, destination, coordinates and when it left.
    probe: Option<(u64, PublicKey, Vec<u64>, Instant)>,
    hops: Vec<Hop>,
    reply: oneshot::Sender<ApiResponse>,
}

/// The traces running.
pub(crate) struct Traces {
    running: Vec<Running>,
    inputs: mpsc::Sender<Input>,
    /// A ticker task runs (it ends when this is false).
    ticking: Arc<AtomicBool>,
}

impl Traces {
    pub(crate) fn new(inputs: mpsc::Sender<Input>) -> Self {
        Self {
            running: Vec::new(),
            inputs,
            ticking: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts tracing the way to `address`; `reply` gets the outcome.
    pub(crate) fn start(
        &mut self,
        node: &mut Node,
        now: Instant,
        address: Ipv6Addr,
        reply: oneshot::Sender<ApiResponse>,
    ) {
        if self.running.len() >= MAX_RUNNING {
            let message = format!("{MAX_RUNNING} traces are running: try again in a few seconds");
            let _ = reply.send(ApiResponse::error(503, message));
            return;
        }
        self.running.push(Running {
            address,
            started: now,
            probe: None,
            hops: Vec::new(),
            reply,
        });
        self.tick(node, now);
        if !self.running.is_empty() && !self.ticking.swap(true, Ordering::Relaxed) {
            let (inputs, ticking) = (self.inputs.clone(), self.ticking.clone());
            tokio::spawn(async move {
                while ticking.load(Ordering::Relaxed) {
                    tokio::time::sleep(TICK).await;
                    if inputs.send(Input::TraceTick).await.is_err() {
                        return;
                    }
                }
            });
        }
    }

    /// Probes traces whose destination is found now, ends those that timed out.
    pub(crate) fn tick(&mut self, node: &mut Node, now: Instant) {
        for mut trace in std::mem::take(&mut self.running) {
            if trace.probe.is_none() {
                match node.trace(now, trace.address) {
                    TraceStart::Probing {
                        id,
                        destination,
                        coords,
                    } => trace.probe = Some((id, destination, coords, now)),
                    TraceStart::LookingUp
                        if now.saturating_since(trace.started) < LOOKUP_TIMEOUT => {}
                    TraceStart::LookingUp => {
                        finish(trace, node, "lookup timed out");
                        continue;
                    }
                    TraceStart::NotOverlay => {
                        let message = format!("{} is not an overlay address", trace.address);
                        let _ = trace.reply.send(ApiResponse::error(400, message));
                        continue;
                    }
                    TraceStart::Busy => {
                        let message = "too many probes in flight: try again in a few seconds";
                        let _ = trace.reply.send(ApiResponse::error(503, message));
                        continue;
                    }
                }
            }
            if let Some((_, _, _, sent)) = trace.probe
                && now.saturating_since(sent) >= PROBE_TIMEOUT
            {
                finish(trace, node, "");
                continue;
            }
            self.running.push(trace);
        }
        self.stop_ticking_if_idle();
    }

    /// A hop answered probe `id`.
    pub(crate) fn on_hop(
        &mut self,
        node: &Node,
        id: u64,
        key: PublicKey,
        outcome: TraceOutcome,
        rtt: Duration,
    ) {
        let Some(at) =
            (self.running.iter()).position(|t| t.probe.as_ref().is_some_and(|p| p.0 == id))
        else {
            return;
        };
        let me = node.public_key();
        let trace = &mut self.running[at];
        if !trace.hops.iter().any(|h| h.key == key) {
            trace.hops.push(Hop { key, outcome, rtt });
        }
        let ended = way(trace, &me)
            .last()
            .is_some_and(|h| !matches!(h.outcome, TraceOutcome::Forwarded(_)));
        if ended {
            let trace = self.running.remove(at);
            finish(trace, node, "");
        }
        self.stop_ticking_if_idle();
    }

    /// Lets the ticker stop once no trace runs.
    fn stop_ticking_if_idle(&self) {
        if self.running.is_empty() {
            self.ticking.store(false, Ordering::Relaxed);
        }
    }
}

/// The hops in the order the probe passed them: from this node, following each hop's next.
fn way<'a>(trace: &'a Running, me: &PublicKey) -> Vec<&'a Hop> {
    let mut out: Vec<&Hop> = Vec::new();
    let mut at = *me;
    while let Some(hop) = trace.hops.iter().find(|h| h.key == at) {
        if out.iter().any(|h| h.key == hop.key) {
            break;
        }
        out.push(hop);
        match hop.outcome {
            TraceOutcome::Forwarded(next) => at = next,
            _ => break,
        }
    }
    out
}

/// Answers a trace with the way found, where it ended, and the state of this node's session with
/// the destination (the way may be fine while the session is refused: a different group password).
fn finish(trace: Running, node: &Node, reason: &str) {
    let me = node.public_key();
    let hops = way(&trace, &me);
    let result = if !reason.is_empty() {
        reason.to_owned()
    } else {
        match hops.last().map(|h| (h.key, h.outcome)) {
            Some((_, TraceOutcome::Delivered)) => "reached".to_owned(),
            Some((key, TraceOutcome::NoRoute)) => {
                format!("stopped at {}: no route onward", key.to_hex())
            }
            Some((key, TraceOutcome::Forwarded(next))) => format!(
                "stopped after {}: the next hop {} did not answer",
                key.to_hex(),
                next.to_hex()
            ),
            None => "no answer".to_owned(),
        }
    };
    let listed: Vec<Value> = (hops.iter().enumerate())
        .map(|(n, h)| {
            let (outcome, next) = match h.outcome {
                TraceOutcome::Forwarded(next) => ("forwarded", Some(next.to_hex())),
                TraceOutcome::Delivered => ("delivered", None),
                TraceOutcome::NoRoute => ("no route", None),
            };
            json!({
                "hop": n, "key": h.key.to_hex(), "address": node_address(&h.key).to_string(),
                "rtt_ms": (n > 0).then_some(h.rtt.as_secs_f64() * 1e3),
                "outcome": outcome, "next": next,
            })
        })
        .collect();
    let (destination, coords, lookup_ms) = match &trace.probe {
        Some((_, key, coords, sent)) => (
            Some(key.to_hex()),
            Some(coords.clone()),
            Some(sent.saturating_since(trace.started).as_secs_f64() * 1e3),
        ),
        None => (None, None, None),
    };
    let session = (trace.probe.as_ref()).map(|(_, key, _, _)| {
        match node.sessions().iter().find(|s| s.peer == key) {
            Some(s) if s.up => "up",
            Some(_) => "opening",
            None => "none",
        }
    });
    let body = json!({
        "target": trace.address.to_string(),
        "session": session,
        "destination": destination,
        "coords": coords,
        "found_ms": lookup_ms,
        "hops": listed,
        "result": result,
    });
    let _ = trace.reply.send(ApiResponse::ok(body));
}
