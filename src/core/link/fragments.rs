//! Splitting frames larger than a link's MTU, and joining the pieces again.

use std::time::Duration;

use crate::core::time::Instant;
use crate::core::wire::fragment::Fragment;
use crate::core::wire::inner::{Message, Messages};

/// Incomplete frames are dropped after this long: a lost piece makes the whole frame lost, as with IP
/// fragmentation, and the transport above retransmits.
const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(1);
/// Frames being joined at once per link.
const MAX_IN_PROGRESS: usize = 8;

/// One fragment message cut from a frame: the message's header (type, length and fragment fields) and
/// the frame bytes it carries, kept apart so that sealing copies the bytes only once.
pub(super) struct Piece<'a> {
    pub(super) header: Vec<u8>,
    pub(super) data: &'a [u8],
}

/// Splits `frame` into fragment messages whose encoded size is at most `budget` bytes each; `None` if
/// it would need more than 255 pieces.
pub(super) fn split(frame: &[u8], budget: usize, id: u32) -> Option<Vec<Piece<'_>>> {
    // Message header: kind (1) + length varint (up to 3 for these sizes) + fragment header (6).
    let chunk = budget.checked_sub(1 + 3 + 6).filter(|c| *c > 0)?;
    let count = frame.len().div_ceil(chunk);
    let count = u8::try_from(count).ok()?;
    Some(
        frame
            .chunks(chunk)
            .enumerate()
            .map(|(index, data)| {
                let mut header = Vec::with_capacity(16);
                let fragment = Fragment {
                    id,
                    index: index as u8,
                    count,
                    data: &[],
                };
                header.push(crate::core::wire::inner::kind::FRAGMENT);
                crate::core::wire::put_varint(&mut header, (6 + data.len()) as u64);
                fragment.encode(&mut header);
                Piece { header, data }
            })
            .collect(),
    )
}

struct InProgress {
    id: u32,
    started: Instant,
    /// Each piece as the decrypted frame it came in and where in it its bytes are (not copied out).
    pieces: Vec<Option<(Vec<u8>, std::ops::Range<usize>)>>,
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
    /// Adds a piece: `frame` is a decrypted frame that starts with a fragment message. Returns the
    /// whole frame once every piece arrived. The piece's bytes stay in `frame` until then: they are
    /// copied once, into the whole.
    pub(super) fn add(&mut self, now: Instant, frame: Vec<u8>) -> Option<Vec<u8>> {
        let (id, index, count, range) = match Messages::new(&frame).next() {
            Some(Ok(Message::Fragment(f))) => {
                // The fragment's bytes end its message, which starts the frame.
                let body = 6 + f.data.len();
                let start = 1 + crate::core::wire::varint_len(body as u64) + 6;
                (f.id, f.index, f.count, start..start + f.data.len())
            }
            _ => return None,
        };
        let fragment = Fragment {
            id,
            index,
            count,
            data: &[],
        };
        self.in_progress
            .retain(|p| now.saturating_since(p.started) < REASSEMBLY_TIMEOUT);
        let position = match self.in_progress.iter().position(|p| p.id == fragment.id) {
            Some(i) if self.in_progress[i].pieces.len() == usize::from(fragment.count) => i,
            Some(i) => {
                // Same id, different count: a new frame reused the id; start over.
                self.in_progress.remove(i);
                return self.add(now, frame);
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
        let slot = entry.pieces.get_mut(usize::from(index))?;
        if slot.is_none() {
            entry.received += 1;
            entry.bytes += range.len();
        }
        *slot = Some((frame, range));
        if entry.received < entry.pieces.len() {
            return None;
        }
        let entry = self.in_progress.remove(position);
        let mut whole = Vec::with_capacity(entry.bytes);
        for (frame, range) in entry.pieces.into_iter().flatten() {
            whole.extend_from_slice(&frame[range]);
        }
        Some(whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::wire::inner::Messages;

    #[test]
    fn split_and_join_in_any_order() {
        let frame: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let pieces: Vec<Vec<u8>> = split(&frame, 1200, 42)
            .unwrap()
            .into_iter()
            .map(|p| [p.header, p.data.to_vec()].concat())
            .collect();
        assert_eq!(pieces.len(), 5);
        assert!(pieces.iter().all(|p| p.len() <= 1200));
        let mut r = Reassembly::default();
        let t = Instant::ZERO;
        let mut joined = None;
        for i in [3, 0, 4, 1, 2] {
            assert!(matches!(
                Messages::new(&pieces[i]).next(),
                Some(Ok(Message::Fragment(_)))
            ));
            assert!(joined.is_none());
            joined = r.add(t, pieces[i].clone());
        }
        assert_eq!(joined, Some(frame));
        assert!(split(&[0; 400_000], 1200, 1).is_none(), "too many pieces");
        // Not a fragment, or a frame too short for the fragment it claims: nothing.
        assert_eq!(r.add(t, vec![0x01, 0]), None);
        assert_eq!(r.add(t, pieces[0][..20].to_vec()), None);
    }

    #[test]
    fn incomplete_frames_expire() {
        let frame = [7u8; 3000];
        let pieces: Vec<Vec<u8>> = split(&frame, 1200, 1)
            .unwrap()
            .into_iter()
            .map(|p| [p.header, p.data.to_vec()].concat())
            .collect();
        let mut r = Reassembly::default();
        assert!(r.add(Instant::ZERO, pieces[0].clone()).is_none());
        let later = Instant::ZERO + Duration::from_secs(2);
        for p in &pieces[1..] {
            assert!(r.add(later, p.clone()).is_none());
        }
    }
}
