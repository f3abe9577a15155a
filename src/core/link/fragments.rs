//! Splitting frames larger than a link's MTU, and joining the pieces again.

use std::time::Duration;

use crate::core::time::Instant;
use crate::core::wire::fragment::Fragment;
use crate::core::wire::inner::Message;

/// Incomplete frames are dropped after this long: a lost piece makes the whole frame lost, as with IP
/// fragmentation, and the transport above retransmits.
const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(1);
/// Frames being joined at once per link.
const MAX_IN_PROGRESS: usize = 8;

/// Splits `frame` into fragment frames whose encoded size is at most `budget` bytes each; `None` if it
/// would need more than 255 pieces.
pub(super) fn split(frame: &[u8], budget: usize, id: u32) -> Option<Vec<Vec<u8>>> {
    // Message header: kind (1) + length varint (up to 3 for these sizes) + fragment header (6).
    let chunk = budget.checked_sub(1 + 3 + 6).filter(|c| *c > 0)?;
    let count = frame.len().div_ceil(chunk);
    let count = u8::try_from(count).ok()?;
    Some(
        frame
            .chunks(chunk)
            .enumerate()
            .map(|(index, data)| {
                let mut out = Vec::with_capacity(budget);
                Message::Fragment(Fragment {
                    id,
                    index: index as u8,
                    count,
                    data,
                })
                .encode(&mut out);
                out
            })
            .collect(),
    )
}

struct InProgress {
    id: u32,
    started: Instant,
    pieces: Vec<Option<Vec<u8>>>,
    /// Pieces present, so completion is known without a scan.
    received: usize,
    /// Bytes present.
    bytes: usize,
}

/// Frames being joined on one link.
#[derive(Default)]
pub(super) struct Reassembly {
    in_progress: Vec<InProgress>,
}

impl Reassembly {
    /// Adds a piece; returns the whole frame once every piece arrived.
    pub(super) fn add(&mut self, now: Instant, fragment: &Fragment<'_>) -> Option<Vec<u8>> {
        self.in_progress
            .retain(|p| now.saturating_since(p.started) < REASSEMBLY_TIMEOUT);
        let position = match self.in_progress.iter().position(|p| p.id == fragment.id) {
            Some(i) if self.in_progress[i].pieces.len() == usize::from(fragment.count) => i,
            Some(i) => {
                // Same id, different count: a new frame reused the id; start over.
                self.in_progress.remove(i);
                return self.add(now, fragment);
            }
            None => {
                if self.in_progress.len() >= MAX_IN_PROGRESS {
                    self.in_progress.remove(0);
                }
                let pieces = vec![None; usize::from(fragment.count)];
                self.in_progress.push(InProgress {
                    id: fragment.id,
                    started: now,
                    pieces,
                    received: 0,
                    bytes: 0,
                });
                self.in_progress.len() - 1
            }
        };
        let entry = &mut self.in_progress[position];
        let slot = &mut entry.pieces[usize::from(fragment.index)];
        if slot.is_none() {
            entry.received += 1;
            entry.bytes += fragment.data.len();
        }
        *slot = Some(fragment.data.to_vec());
        if entry.received < entry.pieces.len() {
            return None;
        }
        let entry = self.in_progress.remove(position);
        let mut frame = Vec::with_capacity(entry.bytes);
        for piece in entry.pieces.into_iter().flatten() {
            frame.extend_from_slice(&piece);
        }
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::wire::inner::Messages;

    #[test]
    fn split_and_join_in_any_order() {
        let frame: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let pieces = split(&frame, 1200, 42).unwrap();
        assert_eq!(pieces.len(), 5);
        assert!(pieces.iter().all(|p| p.len() <= 1200));
        let mut r = Reassembly::default();
        let t = Instant::ZERO;
        let mut joined = None;
        for i in [3, 0, 4, 1, 2] {
            let Some(Ok(Message::Fragment(f))) = Messages::new(&pieces[i]).next() else {
                panic!()
            };
            assert!(joined.is_none());
            joined = r.add(t, &f);
        }
        assert_eq!(joined, Some(frame));
        assert!(split(&[0; 400_000], 1200, 1).is_none(), "too many pieces");
    }

    #[test]
    fn incomplete_frames_expire() {
        let pieces = split(&[7u8; 3000], 1200, 1).unwrap();
        let mut r = Reassembly::default();
        let Some(Ok(Message::Fragment(f0))) = Messages::new(&pieces[0]).next() else {
            panic!()
        };
        assert!(r.add(Instant::ZERO, &f0).is_none());
        let later = Instant::ZERO + Duration::from_secs(2);
        for p in &pieces[1..] {
            let Some(Ok(Message::Fragment(f))) = Messages::new(p).next() else {
                panic!()
            };
            assert!(r.add(later, &f).is_none());
        }
    }
}
