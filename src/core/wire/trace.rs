//! Trace probes (`meshrouter trace`): a probe travels like data towards a destination, and every
//! node it passes answers the source with a signed [`TraceReply`] naming itself, what it did with
//! the probe and the next hop, so the source sees the path hop by hop, with round trips, and where
//! it stops.
//!
//! ```text
//! probe  id(8)                                                   (payload of a KIND_TRACE packet)
//! reply  id(8) hop(32) outcome(1) next(32) signature(64)         (payload of KIND_TRACE_REPLY)
//! ```
//! `outcome`: 0 forwarded to `next`, 1 delivered (`hop` is the destination; `next` all zeros),
//! 2 no route (no peer closer to the destination; `next` all zeros). The signature by `hop` covers
//! [`TraceReply::signed_bytes`]: the source, the destination and the probe's id, so a reply cannot be
//! forged for another hop nor replayed into another trace.

use super::{Reader, WireError};
use crate::core::identity::PublicKey;

/// What a hop did with a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceOutcome {
    /// Sent on to `next`.
    Forwarded(PublicKey),
    /// It is the destination.
    Delivered,
    /// No peer is closer to the destination: the probe stops here.
    NoRoute,
}

/// A hop's signed answer to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceReply {
    /// The probe's id.
    pub id: u64,
    /// The answering node.
    pub hop: PublicKey,
    /// What it did.
    pub outcome: TraceOutcome,
    /// Signature by `hop` over [`TraceReply::signed_bytes`].
    pub signature: [u8; 64],
}

/// Length of a probe's payload.
pub const PROBE_LEN: usize = 8;

impl TraceReply {
    /// Decodes the payload.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let id = r.u64()?;
        let hop = r.key()?;
        let kind = r.u8()?;
        let next = r.key()?;
        let none = next.as_bytes() == &[0; 32];
        let outcome = match kind {
            0 => TraceOutcome::Forwarded(next),
            1 if none => TraceOutcome::Delivered,
            2 if none => TraceOutcome::NoRoute,
            _ => return Err(WireError::Invalid("trace outcome")),
        };
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            id,
            hop,
            outcome,
            signature,
        })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(self.hop.as_bytes());
        let (kind, next) = outcome_bytes(&self.outcome);
        out.push(kind);
        out.extend_from_slice(&next);
        out.extend_from_slice(&self.signature);
    }

    /// What `hop` signs.
    pub fn signed_bytes(
        source: &PublicKey,
        destination: &PublicKey,
        id: u64,
        hop: &PublicKey,
        outcome: &TraceOutcome,
    ) -> Vec<u8> {
        let mut out = b"meshrouter trace reply v1\0".to_vec();
        out.extend_from_slice(source.as_bytes());
        out.extend_from_slice(destination.as_bytes());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(hop.as_bytes());
        let (kind, next) = outcome_bytes(outcome);
        out.push(kind);
        out.extend_from_slice(&next);
        out
    }
}

fn outcome_bytes(outcome: &TraceOutcome) -> (u8, [u8; 32]) {
    match outcome {
        TraceOutcome::Forwarded(next) => (0, *next.as_bytes()),
        TraceOutcome::Delivered => (1, [0; 32]),
        TraceOutcome::NoRoute => (2, [0; 32]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::NodeKey;

    #[test]
    fn replies_round_trip_and_bad_bytes_are_refused() {
        let key = |n: u8| NodeKey::from_seed(&[n; 32]).public_key();
        for outcome in [
            TraceOutcome::Forwarded(key(3)),
            TraceOutcome::Delivered,
            TraceOutcome::NoRoute,
        ] {
            let reply = TraceReply {
                id: 7,
                hop: key(1),
                outcome,
                signature: [9; 64],
            };
            let mut out = Vec::new();
            reply.encode(&mut out);
            assert_eq!(out.len(), 8 + 32 + 1 + 32 + 64);
            assert_eq!(TraceReply::parse(&out), Ok(reply));
            for cut in 0..out.len() {
                assert!(TraceReply::parse(&out[..cut]).is_err());
            }
            let mut longer = out.clone();
            longer.push(0);
            assert!(TraceReply::parse(&longer).is_err());
            out[40] = 3;
            assert!(TraceReply::parse(&out).is_err());
        }
    }
}
