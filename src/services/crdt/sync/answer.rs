//! Answering a want: exactly the changes the wanter lacks, in numbered parts that fit a message.

use std::collections::BTreeMap;

use super::SyncStore;
use super::engine::{SyncEngine, doc_ref, prefix};
use super::message::{ActorHave, SyncMessage, doc_len};
use crate::core::identity::PublicKey;
use crate::core::time::Instant;
use crate::services::crdt::replica::DocName;

impl SyncEngine {
    /// Sends `from` the changes its version vector lacks, then pulls from it if it holds changes
    /// we lack.
    pub(super) fn answer_want(
        &mut self,
        now: Instant,
        from: PublicKey,
        doc: &DocName,
        request: u64,
        have: &[ActorHave],
        store: &dyn SyncStore,
    ) {
        let theirs: BTreeMap<[u8; 8], &ActorHave> = have.iter().map(|h| (h.prefix, h)).collect();
        let we_lack = match store.replica().document(&doc.0, &doc.1) {
            Some(log) => {
                let missing: Vec<&[u8]> = log
                    .missing_for(|a| theirs.get(&prefix(a)).map_or(0, |h| h.through))
                    .filter(|(a, seq, _)| !theirs.get(&prefix(a)).is_some_and(|h| h.holds(*seq)))
                    .map(|(_, _, bytes)| bytes)
                    .collect();
                let batches = self.batches(doc, &missing);
                let parts = batches.len() as u64;
                for (part, batch) in batches.into_iter().enumerate() {
                    self.send_changes(from, doc, (request, part as u64, parts), &batch);
                }
                let ours: BTreeMap<[u8; 8], u64> = log
                    .version_vector()
                    .iter()
                    .map(|(a, s)| (prefix(a), *s))
                    .collect();
                theirs
                    .iter()
                    .any(|(p, h)| ours.get(p).is_none_or(|o| *o < h.highest()))
            }
            None => {
                self.send_changes(from, doc, (request, 0, 1), &[]);
                !theirs.is_empty()
            }
        };
        if we_lack {
            self.start_pull(now, doc, from, store);
        }
    }

    /// Splits changes into batches that fit a message (at least one, possibly empty).
    fn batches<'a>(&self, doc: &DocName, changes: &[&'a [u8]]) -> Vec<Vec<&'a [u8]>> {
        let overhead = doc_len(&doc_ref(doc)) + 8;
        let mut batches = vec![Vec::new()];
        let mut size = overhead;
        for change in changes {
            let len = change.len() + 3;
            let current = batches.last().map_or(0, Vec::len);
            if size + len > self.config.batch_bytes && current > 0 {
                batches.push(Vec::new());
                size = overhead;
            }
            size += len;
            if let Some(last) = batches.last_mut() {
                last.push(*change);
            }
        }
        batches
    }

    /// Sends changes as part `.1` of `.2` answering request `.0`.
    pub(super) fn send_changes(
        &mut self,
        peer: PublicKey,
        doc: &DocName,
        (request, part, parts): (u64, u64, u64),
        changes: &[&[u8]],
    ) {
        self.stats.change_bytes_sent += changes.iter().map(|c| c.len() as u64).sum::<u64>();
        self.queue(
            peer,
            &SyncMessage::Changes {
                doc: doc_ref(doc),
                request,
                part,
                parts,
                changes: changes.to_vec(),
            },
        );
    }
}
