//! Admission of handshake initiations: what a node checks before it spends a signature verification,
//! a Diffie-Hellman or a byte of memory on someone who has not proven anything yet.
//!
//! The order is WireGuard's. An initiation's MAC (keyed by the link or group password, or by a public
//! key without one) is checked first, on the datagram's bytes as they arrived: one HMAC, no allocation.
//! Then a global token bucket caps how many initiations a second may be verified at all. When it is
//! empty the node is under load and answers an initiation with a *cookie reply* instead: a 22-byte
//! datagram carrying `HMAC(secret, source)`, which only a sender that really receives at `source`
//! learns. Its next initiation carries the cookie in `mac2` and is verified from a budget of its own,
//! so a flood from forged or throwaway addresses can use up the first budget but never starve a real
//! neighbour. Nothing is stored per source: the secret is one value, rotated every two minutes.

use std::time::Duration;

use crate::core::link::handshake::{self, Psk};
use crate::core::rate::TokenBucket;
use crate::core::rng::Rng;
use crate::core::time::Instant;
use crate::core::wire::datagram::{INIT_LEN, KIND_INIT, MAC_LEN, encode_cookie};

/// The cookie secret is replaced this often; cookies made with the previous one are still accepted.
pub const COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(120);
/// Link initiations verified per second before cookies are required (each costs a signature check, a
/// Diffie-Hellman and a signature: about 0.15 ms on a PC, 1.5 ms on a Raspberry Pi 3, so at most 15 %
/// of a Pi's core), with bursts of [`LINK_VERIFY_BURST`] (a node starting next to 100 neighbours).
pub const LINK_VERIFY_RATE: f64 = 100.0;
/// See [`LINK_VERIFY_RATE`].
pub const LINK_VERIFY_BURST: f64 = 100.0;
/// Initiations that carry a valid cookie verified per second under load, with the same burst.
pub const COOKIE_VERIFY_RATE: f64 = 100.0;

/// Rotating secrets that bind a cookie to a source address.
pub struct Cookies {
    secret: [u8; 32],
    previous: [u8; 32],
    rotated: Option<Instant>,
}

impl Default for Cookies {
    fn default() -> Self {
        Self::new()
    }
}

impl Cookies {
    /// No secret yet: the first [`rotate`](Self::rotate) draws one.
    pub fn new() -> Self {
        Self {
            secret: [0; 32],
            previous: [0; 32],
            rotated: None,
        }
    }

    /// Draws a new secret if the current one is older than [`COOKIE_SECRET_LIFETIME`].
    pub fn rotate(&mut self, now: Instant, rng: &mut Rng) {
        if self
            .rotated
            .is_none_or(|t| now.saturating_since(t) >= COOKIE_SECRET_LIFETIME)
        {
            self.previous = std::mem::replace(&mut self.secret, rng.bytes32());
            if self.rotated.is_none() {
                self.previous = self.secret;
            }
            self.rotated = Some(now);
        }
    }

    /// The cookie for `source` under the current secret.
    pub fn cookie(&self, source: &[u8]) -> [u8; MAC_LEN] {
        handshake::mac16(&self.secret, source)
    }

    /// Returns true if the initiation `init` (its encoded bytes) carries in `mac2` the cookie of
    /// `source` under the current or the previous secret.
    pub fn carried_by(&self, init: &[u8], source: &[u8]) -> bool {
        [&self.secret, &self.previous]
            .iter()
            .any(|secret| handshake::check_mac2_bytes(init, &handshake::mac16(*secret, source)))
    }
}

/// What to do with an initiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Verify its signature (a budget has been charged). `cookie`: it carried the cookie of its
    /// source, so its sender really receives there.
    Verify {
        /// It was admitted for its cookie, under load.
        cookie: bool,
    },
    /// Send this cookie reply to its source and forget it.
    Reply(Vec<u8>),
    /// Drop it silently.
    Drop(Refusal),
}

/// Why an initiation was not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not an initiation at all (length, version or kind).
    #[error("not an initiation")]
    NotInit,
    /// Its MAC is wrong: another password, or junk.
    #[error("bad MAC")]
    BadMac,
    /// It carried a cookie, but the cookie budget is spent too.
    #[error("over the handshake budget")]
    OverBudget,
}

/// The node-wide gate every link initiation passes before its signature is verified.
pub struct HandshakeGate {
    cookies: Cookies,
    budget: TokenBucket,
    cookie_budget: TokenBucket,
    /// Initiations verified, cookie replies sent, and initiations refused (for counters and tests).
    pub verified: u64,
    /// See [`verified`](Self::verified).
    pub cookies_sent: u64,
    /// See [`verified`](Self::verified).
    pub refused: u64,
}

impl HandshakeGate {
    /// A gate for link initiations, with full budgets.
    pub fn new(now: Instant) -> Self {
        Self::with_rates(now, LINK_VERIFY_RATE, LINK_VERIFY_BURST, COOKIE_VERIFY_RATE)
    }

    /// A gate that verifies `rate` initiations a second (bursts of `burst`) before it asks for
    /// cookies, and `cookie_rate` a second (same burst) of those that carry one.
    pub fn with_rates(now: Instant, rate: f64, burst: f64, cookie_rate: f64) -> Self {
        Self {
            cookies: Cookies::new(),
            budget: TokenBucket::new(rate, burst, now),
            cookie_budget: TokenBucket::new(cookie_rate, burst, now),
            verified: 0,
            cookies_sent: 0,
            refused: 0,
        }
    }

    /// Decides about the initiation `bytes` from `source` (the bytes that name the sender's address;
    /// a cookie is bound to them). `psk` is the key its MAC must verify under. A `retransmit` (an
    /// initiation the link already answered and answers again from its cache) costs no budget.
    pub fn admit(
        &mut self,
        now: Instant,
        source: &[u8],
        bytes: &[u8],
        psk: &Psk,
        retransmit: bool,
        rng: &mut Rng,
    ) -> Verdict {
        let verdict = self.decide(now, source, bytes, psk, retransmit, rng);
        match &verdict {
            Verdict::Verify { .. } => self.verified += 1,
            Verdict::Reply(_) => self.cookies_sent += 1,
            Verdict::Drop(_) => self.refused += 1,
        }
        verdict
    }

    fn decide(
        &mut self,
        now: Instant,
        source: &[u8],
        bytes: &[u8],
        psk: &Psk,
        retransmit: bool,
        rng: &mut Rng,
    ) -> Verdict {
        if !is_init(bytes) {
            return Verdict::Drop(Refusal::NotInit);
        }
        if !handshake::check_init_mac_bytes(bytes, psk) {
            return Verdict::Drop(Refusal::BadMac);
        }
        if retransmit || self.budget.take(now) {
            return Verdict::Verify { cookie: false };
        }
        self.cookies.rotate(now, rng);
        if self.cookies.carried_by(bytes, source) {
            return if self.cookie_budget.take(now) {
                Verdict::Verify { cookie: true }
            } else {
                Verdict::Drop(Refusal::OverBudget)
            };
        }
        // Always answered: the reply (22 bytes) is far smaller than the initiation, so it amplifies
        // nothing, and rate-limiting it would let a flood starve real neighbours of cookies.
        let sender_index = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
        Verdict::Reply(encode_cookie(sender_index, &self.cookies.cookie(source)))
    }
}

/// Returns true if `bytes` has the shape of a link initiation (length, version, kind).
pub fn is_init(bytes: &[u8]) -> bool {
    bytes.len() == INIT_LEN && bytes[0] == crate::core::wire::VERSION && bytes[1] == KIND_INIT
}

#[cfg(test)]
mod tests;
