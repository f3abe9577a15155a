//! Proof of possession over the overlay: a node asks another (any number of hops away, by key) to
//! sign a fresh nonce bound to both keys, and checks the signature. The session the request travels
//! in is already authenticated end to end, so the answer is trustworthy as it arrives; the
//! signature makes it *transferable*: the requester can show a third party that the key answered.
//!
//! Wire (service port [`PROOF_PORT`]): a request is `0x01 ‖ nonce[16]`; an answer is
//! `0x02 ‖ nonce[16] ‖ signature[64]` over `"meshrouter proof of possession v1" ‖ requester key ‖
//! prover key ‖ nonce`. Answers are rate-limited (each costs a signature); unanswered requests end
//! after [`PROOF_TIMEOUT`]. Sans-IO: callers pass `now` and the nonces come from a seed.

use std::collections::VecDeque;
use std::time::Duration;

use crate::core::identity::{NodeKey, PUBLIC_KEY_LEN, PublicKey, SIGNATURE_LEN};
use crate::core::rate::{KeyedBuckets, TokenBucket};
use crate::core::rng::Rng;
use crate::core::time::Instant;
use crate::services::outstanding::{NONCE_LEN, Outstanding, Request};

/// The overlay service port proofs travel on.
pub const PROOF_PORT: u16 = 2;
/// How long a request waits for its answer.
pub const PROOF_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests outstanding at most.
const MAX_PENDING: usize = 1024;
/// Answers per second to one requester (bursts of as many), so one requester cannot use up the
/// node's whole answer budget.
pub const ANSWERS_PER_REQUESTER: f64 = 5.0;
/// Requesters whose budget is remembered at once.
const MAX_REQUESTERS: usize = 4096;
const REQUEST: u8 = 1;
const ANSWER: u8 = 2;
const CONTEXT: &[u8] = b"meshrouter proof of possession v1";

/// A finished proof request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofOutcome {
    /// The caller's handle from [`ProofService::request`].
    pub id: u64,
    /// The node asked.
    pub prover: PublicKey,
    /// The answer's signature, if a valid one came in time.
    pub signature: Option<[u8; SIGNATURE_LEN]>,
    /// The nonce signed.
    pub nonce: [u8; NONCE_LEN],
    /// When it was asked.
    pub asked: Instant,
}

/// Both sides of the proof protocol for one node.
pub struct ProofService {
    key: NodeKey,
    rng: Rng,
    pending: Outstanding,
    answers: TokenBucket,
    per_requester: KeyedBuckets<PublicKey>,
    transmit: VecDeque<(PublicKey, Vec<u8>)>,
    done: VecDeque<ProofOutcome>,
}

/// The bytes a prover signs.
pub fn signed_bytes(requester: &PublicKey, prover: &PublicKey, nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(CONTEXT.len() + 2 * PUBLIC_KEY_LEN + NONCE_LEN);
    bytes.extend_from_slice(CONTEXT);
    bytes.extend_from_slice(requester.as_bytes());
    bytes.extend_from_slice(prover.as_bytes());
    bytes.extend_from_slice(nonce);
    bytes
}

impl ProofService {
    /// The service of the node with `key`, nonces drawn from `seed`; answers at most 200 requests a
    /// second (bursts of 50), and at most [`ANSWERS_PER_REQUESTER`] a second to one requester.
    pub fn new(key: NodeKey, seed: [u8; 32], now: Instant) -> Self {
        Self {
            key,
            rng: Rng::from_seed(seed),
            pending: Outstanding::new(MAX_PENDING, PROOF_TIMEOUT),
            answers: TokenBucket::new(200.0, 50.0, now),
            per_requester: KeyedBuckets::new(
                ANSWERS_PER_REQUESTER,
                ANSWERS_PER_REQUESTER,
                MAX_REQUESTERS,
            ),
            transmit: VecDeque::new(),
            done: VecDeque::new(),
        }
    }

    /// Mixes fresh entropy into the nonces' random stream (see [`Rng::reseed`]).
    pub fn reseed(&mut self, extra: &[u8; 32]) {
        self.rng.reseed(extra);
    }

    /// Asks `prover` to prove possession of its key; the outcome comes from [`Self::poll_outcome`].
    pub fn request(&mut self, now: Instant, prover: PublicKey) -> u64 {
        self.expire(now);
        let (id, nonce, evicted) = self.pending.open(now, &mut self.rng, prover);
        if let Some((old_nonce, oldest)) = evicted {
            self.finish(oldest, old_nonce, None);
        }
        let mut message = vec![REQUEST];
        message.extend_from_slice(&nonce);
        self.transmit.push_back((prover, message));
        id
    }

    /// A message on [`PROOF_PORT`] from `from` (authenticated by the session it came in).
    pub fn handle_message(&mut self, now: Instant, from: PublicKey, message: &[u8]) {
        match message.split_first() {
            Some((&REQUEST, nonce)) if nonce.len() == NONCE_LEN => {
                if !self.per_requester.take(now, from) || !self.answers.take(now) {
                    return;
                }
                let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("length checked");
                let me = self.key.public_key();
                let signature = self.key.sign(&signed_bytes(&from, &me, &nonce));
                let mut answer = Vec::with_capacity(1 + NONCE_LEN + SIGNATURE_LEN);
                answer.push(ANSWER);
                answer.extend_from_slice(&nonce);
                answer.extend_from_slice(&signature);
                self.transmit.push_back((from, answer));
            }
            Some((&ANSWER, rest)) if rest.len() == NONCE_LEN + SIGNATURE_LEN => {
                let (nonce, signature) = rest.split_at(NONCE_LEN);
                let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("length checked");
                let signature: [u8; SIGNATURE_LEN] = signature.try_into().expect("length checked");
                let me = self.key.public_key();
                if self.pending.awaits(&nonce, &from)
                    && from.verify(&signed_bytes(&me, &from, &nonce), &signature)
                    && let Some(request) = self.pending.take(&nonce, &from)
                {
                    self.finish(request, nonce, Some(signature));
                }
            }
            _ => {}
        }
    }

    fn finish(
        &mut self,
        request: Request,
        nonce: [u8; NONCE_LEN],
        signature: Option<[u8; SIGNATURE_LEN]>,
    ) {
        self.done.push_back(ProofOutcome {
            id: request.id,
            prover: request.peer,
            signature,
            nonce,
            asked: request.asked,
        });
    }

    fn expire(&mut self, now: Instant) {
        for (nonce, request) in self.pending.expire(now) {
            self.finish(request, nonce, None);
        }
    }

    /// Ends requests that waited [`PROOF_TIMEOUT`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// When [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.next_deadline()
    }

    /// The next message to send: (destination, payload on [`PROOF_PORT`]).
    pub fn poll_transmit(&mut self) -> Option<(PublicKey, Vec<u8>)> {
        self.transmit.pop_front()
    }

    /// The next finished request.
    pub fn poll_outcome(&mut self) -> Option<ProofOutcome> {
        self.done.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (ProofService, ProofService, Instant) {
        let now = Instant::from_micros(1_000_000);
        (
            ProofService::new(NodeKey::from_seed(&[1; 32]), [9; 32], now),
            ProofService::new(NodeKey::from_seed(&[2; 32]), [8; 32], now),
            now,
        )
    }

    fn deliver(from: &mut ProofService, to: &mut ProofService, now: Instant) -> usize {
        let sender = from.key.public_key();
        let mut n = 0;
        while let Some((_, bytes)) = from.poll_transmit() {
            to.handle_message(now, sender, &bytes);
            n += 1;
        }
        n
    }

    #[test]
    fn a_node_proves_its_key() {
        let (mut a, mut b, now) = pair();
        let b_key = b.key.public_key();
        let id = a.request(now, b_key);
        assert_eq!(deliver(&mut a, &mut b, now), 1);
        assert_eq!(deliver(&mut b, &mut a, now), 1);
        let outcome = a.poll_outcome().unwrap();
        assert_eq!((outcome.id, outcome.prover), (id, b_key));
        let signature = outcome.signature.unwrap();
        // Transferable: anyone can check it with the two keys and the nonce.
        assert!(b_key.verify(
            &signed_bytes(&a.key.public_key(), &b_key, &outcome.nonce),
            &signature
        ));
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn answers_from_another_key_or_forged_ones_are_ignored() {
        let (mut a, mut b, now) = pair();
        let b_key = b.key.public_key();
        a.request(now, b_key);
        let (_, request) = a.poll_transmit().unwrap();
        b.handle_message(now, a.key.public_key(), &request);
        let (_, answer) = b.poll_transmit().unwrap();
        // The right answer relayed by someone else is not a proof from them.
        let mallory = NodeKey::from_seed(&[3; 32]).public_key();
        a.handle_message(now, mallory, &answer);
        let mut forged = answer.clone();
        forged[20] ^= 1;
        a.handle_message(now, b_key, &forged);
        a.handle_message(now, b_key, &answer[..40]);
        assert!(a.poll_outcome().is_none());
        a.handle_message(now, b_key, &answer);
        assert!(a.poll_outcome().unwrap().signature.is_some());
        // A second copy of the answer finds nothing pending.
        a.handle_message(now, b_key, &answer);
        assert!(a.poll_outcome().is_none());
    }

    #[test]
    fn unanswered_requests_time_out() {
        let (mut a, b, now) = pair();
        let id = a.request(now, b.key.public_key());
        assert_eq!(a.poll_timeout(), Some(now + PROOF_TIMEOUT));
        a.handle_timeout(now + PROOF_TIMEOUT);
        let outcome = a.poll_outcome().unwrap();
        assert_eq!((outcome.id, outcome.signature), (id, None));
    }

    #[test]
    fn answering_is_rate_limited() {
        let (a, mut b, now) = pair();
        let mut request = vec![REQUEST];
        request.extend_from_slice(&[0; NONCE_LEN]);
        // One requester gets its own share only.
        for _ in 0..500 {
            b.handle_message(now, a.key.public_key(), &request);
        }
        let answered = std::iter::from_fn(|| b.poll_transmit()).count();
        assert_eq!(answered, ANSWERS_PER_REQUESTER as usize);
        // Many requesters: the node's 50 at once, whoever asks.
        for n in 0..500u32 {
            let mut seed = [7; 32];
            seed[..4].copy_from_slice(&n.to_le_bytes());
            b.handle_message(now, NodeKey::from_seed(&seed).public_key(), &request);
        }
        let answered = std::iter::from_fn(|| b.poll_transmit()).count();
        assert_eq!(answered, 50 - ANSWERS_PER_REQUESTER as usize);
    }

    #[test]
    fn one_requester_flooding_does_not_starve_another() {
        let (a, mut b, now) = pair();
        let mut request = vec![REQUEST];
        request.extend_from_slice(&[0; NONCE_LEN]);
        let honest = NodeKey::from_seed(&[5; 32]).public_key();
        let mut honest_answers = 0;
        // The flooder asks 1 000 times a second for 10 s; the honest node once a second.
        for ms in 0..10_000u64 {
            let t = now + std::time::Duration::from_millis(ms);
            b.handle_message(t, a.key.public_key(), &request);
            if ms % 1000 == 0 {
                b.handle_message(t, honest, &request);
            }
            while let Some((to, _)) = b.poll_transmit() {
                honest_answers += usize::from(to == honest);
            }
        }
        assert_eq!(honest_answers, 10);
    }
}
