//! Work the services leave to the driver because it needs threads: verifying batches of signed CRDT
//! changes on every core (the services are sans-IO and single-threaded).

use crate::services::crdt::change::{Change, ChangeError, decode_verified_all};

/// [`decode_verified_all`] spread over the machine's cores (at most 8); results keep the input's
/// order. Small batches stay on the calling thread.
pub fn decode_changes<B: AsRef<[u8]> + Sync>(encoded: &[B]) -> Vec<Result<Change, ChangeError>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 || encoded.len() < 64 {
        return decode_verified_all(encoded);
    }
    let chunk = encoded.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = encoded
            .chunks(chunk)
            .map(|part| scope.spawn(move || decode_verified_all(part)))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::NodeKey;
    use crate::services::crdt::context::Actor;
    use crate::services::crdt::document::{Document, Edit, Op};
    use crate::services::crdt::field::{Kind, ValueKind};

    #[test]
    fn parallel_verification_matches_one_by_one() {
        let key = NodeKey::from_seed(&[1; 32]);
        let kind = Kind::Value(ValueKind::Counter);
        let mut doc = Document::new(kind);
        let actor = Actor(*key.public_key().as_bytes());
        let mut encoded: Vec<Vec<u8>> = (1..=100)
            .map(|seq| {
                let delta = doc
                    .edit(actor, &Op::Value(Edit::Increment(1)), seq)
                    .unwrap();
                Change::sign(&key, "ns", "n", kind, seq, seq, delta).encode()
            })
            .collect();
        encoded[42][70] ^= 1;
        let parallel = decode_changes(&encoded);
        let single: Vec<_> = encoded.iter().map(|b| Change::decode_verified(b)).collect();
        assert_eq!(parallel, single);
        assert!(parallel[42].is_err() && parallel.iter().filter(|r| r.is_ok()).count() == 99);
    }
}
