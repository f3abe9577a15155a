//! NodeInfo: the small, signed description a node chooses to publish (its name, location, contact,
//! software and version, services offered), asked for over the overlay by key, any number of hops
//! away (as Yggdrasil's `getNodeInfo`, but signed, so a copy can be checked by anyone).
//!
//! Wire (service port [`NODEINFO_PORT`]): a request is `0x01 ‖ nonce[16]`; an answer is
//! `0x02 ‖ nonce[16] ‖ issued_ms[8] ‖ len[2] ‖ info[len] ‖ signature[64]`, the signature by the
//! answering node over `"meshrouter nodeinfo v1\0" ‖ its key ‖ issued_ms ‖ info`. `info` is a JSON
//! object of at most [`MAX_NODEINFO`] bytes. The description is signed once when it is published,
//! so answering costs no signature; answers are rate-limited all the same (each is up to 4 KiB sent
//! for 17 received): 50 a second in all (bursts of 20) and [`ANSWERS_PER_REQUESTER`] to one
//! requester. Requests end after [`NODEINFO_TIMEOUT`]. Sans-IO: `now` is passed in, nonces come
//! from a seed.

use std::collections::VecDeque;
use std::time::Duration;

use crate::core::identity::{NodeKey, PublicKey, SIGNATURE_LEN};
use crate::core::rate::{KeyedBuckets, TokenBucket};
use crate::core::rng::Rng;
use crate::core::time::Instant;
use crate::services::outstanding::{NONCE_LEN, Outstanding, Request};

/// The overlay service port NodeInfo travels on.
pub const NODEINFO_PORT: u16 = 3;
/// Largest description, bytes of JSON: the same limit publishing and reading.
pub const MAX_NODEINFO: usize = 4096;
/// How long a request waits for its answer.
pub const NODEINFO_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers per second to one requester (bursts of as many).
pub const ANSWERS_PER_REQUESTER: f64 = 2.0;
/// Answers per second in all, and the burst.
pub const ANSWERS_PER_SECOND: (f64, f64) = (50.0, 20.0);
/// Requests outstanding at most.
const MAX_PENDING: usize = 256;
/// Requesters whose budget is remembered at once.
const MAX_REQUESTERS: usize = 4096;
const REQUEST: u8 = 1;
const ANSWER: u8 = 2;
const CONTEXT: &[u8] = b"meshrouter nodeinfo v1\0";

/// Why a description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeInfoError {
    /// Over [`MAX_NODEINFO`].
    #[error("a NodeInfo may take {MAX_NODEINFO} bytes, this one takes {0}")]
    TooLarge(usize),
    /// Not a JSON object.
    #[error("a NodeInfo is a JSON object: {0}")]
    Malformed(String),
    /// The answer's signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

/// A node's description with its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node that signed it.
    pub node: PublicKey,
    /// When it was published (the node's clock, milliseconds since 1970).
    pub issued_ms: u64,
    /// The JSON object, as signed.
    pub info: String,
    /// Ed25519 by `node` over [`signed_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
}

/// The bytes a node signs for its description.
pub fn signed_bytes(node: &PublicKey, issued_ms: u64, info: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(CONTEXT.len() + 32 + 8 + info.len());
    bytes.extend_from_slice(CONTEXT);
    bytes.extend_from_slice(node.as_bytes());
    bytes.extend_from_slice(&issued_ms.to_be_bytes());
    bytes.extend_from_slice(info.as_bytes());
    bytes
}

/// Checks that `info` is a JSON object within [`MAX_NODEINFO`].
pub fn check(info: &str) -> Result<(), NodeInfoError> {
    if info.len() > MAX_NODEINFO {
        return Err(NodeInfoError::TooLarge(info.len()));
    }
    match serde_json::from_str::<serde_json::Value>(info) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(NodeInfoError::Malformed("not an object".into())),
        Err(e) => Err(NodeInfoError::Malformed(e.to_string())),
    }
}

impl NodeInfo {
    /// Signs `info` (checked first) as `key`'s description.
    pub fn sign(key: &NodeKey, issued_ms: u64, info: String) -> Result<Self, NodeInfoError> {
        check(&info)?;
        let node = key.public_key();
        let signature = key.sign(&signed_bytes(&node, issued_ms, &info));
        Ok(Self {
            node,
            issued_ms,
            info,
            signature,
        })
    }

    /// Checks size, shape and signature.
    pub fn verify(&self) -> Result<(), NodeInfoError> {
        check(&self.info)?;
        let signed = signed_bytes(&self.node, self.issued_ms, &self.info);
        if !self.node.verify(&signed, &self.signature) {
            return Err(NodeInfoError::BadSignature);
        }
        Ok(())
    }
}

/// A finished request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfoOutcome {
    /// The caller's handle from [`NodeInfoService::request`].
    pub id: u64,
    /// The node asked.
    pub node: PublicKey,
    /// Its description, or why there is none (`None`: no answer in time).
    pub result: Option<Result<NodeInfo, NodeInfoError>>,
    /// When it was asked.
    pub asked: Instant,
}

/// What the service counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeInfoCounters {
    /// Requests answered.
    pub answered: u64,
    /// Requests not answered: over the rate limits.
    pub limited: u64,
    /// Answers refused: oversized, malformed or badly signed.
    pub refused: u64,
}

/// Both sides of NodeInfo for one node.
pub struct NodeInfoService {
    key: NodeKey,
    published: NodeInfo,
    rng: Rng,
    pending: Outstanding,
    answers: TokenBucket,
    per_requester: KeyedBuckets<PublicKey>,
    transmit: VecDeque<(PublicKey, Vec<u8>)>,
    done: VecDeque<NodeInfoOutcome>,
    counters: NodeInfoCounters,
}

impl NodeInfoService {
    /// The service of the node with `key`, publishing `published` (signed by that key).
    pub fn new(key: NodeKey, published: NodeInfo, seed: [u8; 32], now: Instant) -> Self {
        let (rate, burst) = ANSWERS_PER_SECOND;
        Self {
            key,
            published,
            rng: Rng::from_seed(seed),
            pending: Outstanding::new(MAX_PENDING, NODEINFO_TIMEOUT),
            answers: TokenBucket::new(rate, burst, now),
            per_requester: KeyedBuckets::new(
                ANSWERS_PER_REQUESTER,
                ANSWERS_PER_REQUESTER,
                MAX_REQUESTERS,
            ),
            transmit: VecDeque::new(),
            done: VecDeque::new(),
            counters: NodeInfoCounters::default(),
        }
    }

    /// What this node publishes.
    pub fn published(&self) -> &NodeInfo {
        &self.published
    }

    /// What was counted.
    pub fn counters(&self) -> NodeInfoCounters {
        self.counters
    }

    /// Mixes fresh entropy into the nonces' random stream.
    pub fn reseed(&mut self, extra: &[u8; 32]) {
        self.rng.reseed(extra);
    }

    /// Asks `node` for its description; the outcome comes from [`Self::poll_outcome`].
    pub fn request(&mut self, now: Instant, node: PublicKey) -> u64 {
        self.expire(now);
        if node == self.key.public_key() {
            let id = self.pending.next_id();
            self.done.push_back(NodeInfoOutcome {
                id,
                node,
                result: Some(Ok(self.published.clone())),
                asked: now,
            });
            return id;
        }
        let (id, nonce, evicted) = self.pending.open(now, &mut self.rng, node);
        if let Some((_, oldest)) = evicted {
            self.finish(oldest, None);
        }
        let mut message = vec![REQUEST];
        message.extend_from_slice(&nonce);
        self.transmit.push_back((node, message));
        id
    }

    /// A message on [`NODEINFO_PORT`] from `from` (authenticated by the session it came in).
    pub fn handle_message(&mut self, now: Instant, from: PublicKey, message: &[u8]) {
        match message.split_first() {
            Some((&REQUEST, nonce)) if nonce.len() == NONCE_LEN => {
                if !self.per_requester.take(now, from) || !self.answers.take(now) {
                    self.counters.limited += 1;
                    return;
                }
                self.counters.answered += 1;
                let p = &self.published;
                let mut answer = Vec::with_capacity(1 + NONCE_LEN + 10 + p.info.len() + 64);
                answer.push(ANSWER);
                answer.extend_from_slice(nonce);
                answer.extend_from_slice(&p.issued_ms.to_be_bytes());
                answer.extend_from_slice(&(p.info.len() as u16).to_be_bytes());
                answer.extend_from_slice(p.info.as_bytes());
                answer.extend_from_slice(&p.signature);
                self.transmit.push_back((from, answer));
            }
            Some((&ANSWER, rest)) => {
                let Some((nonce, body)) = rest.split_first_chunk::<NONCE_LEN>() else {
                    return;
                };
                let nonce = *nonce;
                let Some(request) = self.pending.take(&nonce, &from) else {
                    return;
                };
                let result = decode_answer(from, body);
                if result.is_err() {
                    self.counters.refused += 1;
                }
                self.finish(request, Some(result));
            }
            _ => {}
        }
    }

    fn finish(&mut self, request: Request, result: Option<Result<NodeInfo, NodeInfoError>>) {
        self.done.push_back(NodeInfoOutcome {
            id: request.id,
            node: request.peer,
            result,
            asked: request.asked,
        });
    }

    fn expire(&mut self, now: Instant) {
        for (_, request) in self.pending.expire(now) {
            self.finish(request, None);
        }
    }

    /// Ends requests that waited [`NODEINFO_TIMEOUT`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// When [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.next_deadline()
    }

    /// The next message to send: (destination, payload on [`NODEINFO_PORT`]).
    pub fn poll_transmit(&mut self) -> Option<(PublicKey, Vec<u8>)> {
        self.transmit.pop_front()
    }

    /// The next finished request.
    pub fn poll_outcome(&mut self) -> Option<NodeInfoOutcome> {
        self.done.pop_front()
    }
}

/// Reads `issued_ms ‖ len ‖ info ‖ signature` from `node` (total: any bytes give a description or
/// an error).
fn decode_answer(node: PublicKey, bytes: &[u8]) -> Result<NodeInfo, NodeInfoError> {
    let malformed = || NodeInfoError::Malformed("truncated answer".into());
    let (issued, rest) = bytes.split_first_chunk::<8>().ok_or_else(malformed)?;
    let (len, rest) = rest.split_first_chunk::<2>().ok_or_else(malformed)?;
    let len = usize::from(u16::from_be_bytes(*len));
    if len > MAX_NODEINFO {
        return Err(NodeInfoError::TooLarge(len));
    }
    if rest.len() != len + SIGNATURE_LEN {
        return Err(malformed());
    }
    let (info, signature) = rest.split_at(len);
    let info = std::str::from_utf8(info)
        .map_err(|_| NodeInfoError::Malformed("not UTF-8".into()))?
        .to_owned();
    let info = NodeInfo {
        node,
        issued_ms: u64::from_be_bytes(*issued),
        info,
        signature: signature.try_into().map_err(|_| malformed())?,
    };
    info.verify()?;
    Ok(info)
}

#[cfg(test)]
mod tests;
