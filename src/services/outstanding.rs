//! Requests a service sent over the overlay and awaits answers to, by nonce: bounded in number
//! (the oldest gives way), each ended after a timeout. Shared by the services that ask one node
//! one question (proof of possession, NodeInfo).

use std::collections::HashMap;
use std::time::Duration;

use crate::core::identity::PublicKey;
use crate::core::rng::Rng;
use crate::core::time::Instant;

/// Length of a request's nonce.
pub const NONCE_LEN: usize = 16;

/// One request awaiting its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The caller's handle.
    pub id: u64,
    /// The node asked: only its answer counts.
    pub peer: PublicKey,
    /// When it was asked.
    pub asked: Instant,
}

/// A request that gave way to a newer one, with its nonce.
pub type Evicted = ([u8; NONCE_LEN], Request);

/// The requests awaiting answers.
pub struct Outstanding {
    pending: HashMap<[u8; NONCE_LEN], Request>,
    max: usize,
    timeout: Duration,
    next_id: u64,
}

impl Outstanding {
    /// At most `max` requests at once, each ended after `timeout`.
    pub fn new(max: usize, timeout: Duration) -> Self {
        Self {
            pending: HashMap::new(),
            max,
            timeout,
            next_id: 1,
        }
    }

    /// A fresh handle for a request that needs no nonce (one answered locally).
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Opens a request to `peer` with a nonce from `rng`; returns its handle and nonce, and the
    /// oldest request if it had to give way (to be finished unanswered).
    pub fn open(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        peer: PublicKey,
    ) -> (u64, [u8; NONCE_LEN], Option<Evicted>) {
        let evicted = if self.pending.len() >= self.max {
            let oldest = (self.pending.iter())
                .min_by_key(|(_, r)| r.asked)
                .map(|(n, _)| *n);
            oldest.and_then(|n| self.pending.remove(&n).map(|r| (n, r)))
        } else {
            None
        };
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&rng.bytes32()[..NONCE_LEN]);
        let id = self.next_id();
        let request = Request {
            id,
            peer,
            asked: now,
        };
        self.pending.insert(nonce, request);
        (id, nonce, evicted)
    }

    /// True if an answer from `from` with `nonce` would be taken.
    pub fn awaits(&self, nonce: &[u8; NONCE_LEN], from: &PublicKey) -> bool {
        self.pending.get(nonce).is_some_and(|r| r.peer == *from)
    }

    /// Takes the request `nonce` if it was sent to `from`.
    pub fn take(&mut self, nonce: &[u8; NONCE_LEN], from: &PublicKey) -> Option<Request> {
        if !self.awaits(nonce, from) {
            return None;
        }
        self.pending.remove(nonce)
    }

    /// Removes and returns the requests that waited their timeout by `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<([u8; NONCE_LEN], Request)> {
        let timeout = self.timeout;
        let late: Vec<[u8; NONCE_LEN]> = (self.pending.iter())
            .filter(|(_, r)| now.saturating_since(r.asked) >= timeout)
            .map(|(n, _)| *n)
            .collect();
        late.into_iter()
            .filter_map(|n| self.pending.remove(&n).map(|r| (n, r)))
            .collect()
    }

    /// When the next request times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|r| r.asked + self.timeout).min()
    }
}
