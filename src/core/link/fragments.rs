//! Splitting frames larger than a link's MTU, and joining the pieces again.
//!
//! Both directions are built to copy a frame's bytes once: a frame to send is given as parts (a
//! routing header and the payload it carries, say) that are cut into pieces by reference and sealed
//! straight from there; pieces that arrive in order are appended to the joined frame as they are
//! decrypted, and only a piece that arrives ahead of a gap is copied aside until the gap fills.

use std::time::Duration;

use crate::core::time::Instant;
use crate::core::wire::inner::{Message, Messages};

/// Incomplete frames are dropped after this long: a lost piece makes the whole frame lost, as with IP
/// fragmentation, and the transport above retransmits.
const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(1);
/// Frames being joined at once per link.
const MAX_IN_PROGRESS: usize = 8;
/// Bytes reserved for a joined frame up front at most: a 64 KiB super-packet and its headers.
const MAX_RESERVE: usize = 68 * 1024;
/// Largest frame joined: the largest a sender makes is a 64 KiB super-packet with its routing and
/// session headers; a frame whose pieces add up to more is dropped as soon as they do.
pub(super) const MAX_JOINED: usize = 72 * 1024;
/// Bytes held for frames being joined on one link, joined and early pieces together: a few
/// super-packets in flight. Beyond it the oldest frame is dropped, so an authenticated peer that sends
/// out-of-order pieces pins at most this much (255 pieces of 64 KiB each would be 16 MiB per frame).
pub(super) const MAX_HELD: usize = 4 * MAX_JOINED;
/// Bytes before a piece's data: kind (1), length varint (up to 3 for these sizes), fragment header (6).
pub(super) const PIECE_OVERHEAD: usize = 1 + 3 + 6;

/// How a frame of `len` bytes is cut for a link that carries `budget` plaintext bytes per datagram:
/// `(pieces, bytes per piece)`, or `None` if it would take more than 255 pieces.
pub(super) fn plan(len: usize, budget: usize) -> Option<(u8, usize)> {
    let chunk = budget.checked_sub(PIECE_OVERHEAD).filter(|c| *c > 0)?;
    let count = u8::try_from(len.div_ceil(chunk)).ok()?;
    Some((count, chunk))
}

/// The message header of one piece, built on the stack (a frame of 64 KiB has about 50 pieces).
pub(super) struct PieceHeader {
    bytes: [u8; 16],
    len: usize,
}

impl PieceHeader {
    /// The header of piece `index` of `count` carrying `data_len` bytes of frame `id`.
    pub(super) fn new(id: u32, index: u8, count: u8, data_len: usize) -> Self {
        let mut bytes = [0u8; 16];
        bytes[0] = crate::core::wire::inner::kind::FRAGMENT;
        // The message length (a varint, as `wire::put_varint` writes it): fragment header and data.
        // At most 3 bytes for any piece a link makes; the bound only keeps the array in range.
        let mut value = 6 + data_len as u64;
        let mut len = 1;
        while value >= 0x80 && len < 9 {
            bytes[len] = (value as u8) | 0x80;
            value >>= 7;
            len += 1;
        }
        bytes[len] = value as u8;
        len += 1;
        bytes[len..len + 4].copy_from_slice(&id.to_be_bytes());
        bytes[len + 4] = index;
        bytes[len + 5] = count;
        Self {
            bytes,
            len: len + 6,
        }
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Appends to `out` the slices of `parts` (read as one concatenated frame) that cover `range`.
pub(super) fn slices_of<'a>(
    parts: &[&'a [u8]],
    range: std::ops::Range<usize>,
    out: &mut Vec<&'a [u8]>,
) {
    let mut offset = 0;
    for part in parts {
        let (start, end) = (offset, offset + part.len());
        offset = end;
        let (from, to) = (range.start.max(start), range.end.min(end));
        if from < to {
            out.push(&part[from - start..to - start]);
        }
    }
}

/// A frame being joined: the pieces from the first up to a gap, joined; the ones past it, aside.
struct InProgress {
    id: u32,
    count: u8,
    started: Instant,
    /// Pieces `0..next`, joined.
    joined: Vec<u8>,
    next: u8,
    /// Pieces that arrived before an earlier one, copied out of their datagrams.
    early: Vec<(u8, Vec<u8>)>,
}

impl InProgress {
    /// Bytes this frame holds so far.
    fn held(&self) -> usize {
        self.joined.len() + self.early.iter().map(|(_, d)| d.len()).sum::<usize>()
    }

    fn append_ready(&mut self) {
        while let Some(i) = self.early.iter().position(|(index, _)| *index == self.next) {
            let (_, data) = self.early.swap_remove(i);
            self.joined.extend_from_slice(&data);
            self.next += 1;
        }
    }
}

/// Frames being joined on one link.
#[derive(Default)]
pub(super) struct Reassembly {
    in_progress: Vec<InProgress>,
}

impl Reassembly {
    /// Drops frames whose pieces stopped coming (run from the link's timer, so that memory is not held
    /// until the next piece happens to arrive).
    pub(super) fn expire(&mut self, now: Instant) {
        self.in_progress
            .retain(|p| now.saturating_since(p.started) < REASSEMBLY_TIMEOUT);
    }

    /// When the oldest frame being joined expires.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.in_progress
            .iter()
            .map(|p| p.started + REASSEMBLY_TIMEOUT)
            .min()
    }

    /// Bytes held by all frames being joined.
    pub(super) fn held(&self) -> usize {
        self.in_progress.iter().map(InProgress::held).sum()
    }

    /// Adds a piece: `frame` is a decrypted frame that starts with a fragment message. Returns the
    /// whole frame once every piece arrived.
    pub(super) fn add(&mut self, now: Instant, frame: &[u8]) -> Option<Vec<u8>> {
        let Some(Ok(Message::Fragment(piece))) = Messages::new(frame).next() else {
            return None;
        };
        self.expire(now);
        let position = match self.in_progress.iter().position(|p| p.id == piece.id) {
            Some(i) if self.in_progress[i].count == piece.count => i,
            Some(i) => {
                // Same id, different count: a new frame reused the id; start over.
                self.in_progress.remove(i);
                return self.add(now, frame);
            }
            None => {
                if self.in_progress.len() >= MAX_IN_PROGRESS {
                    self.in_progress.remove(0);
                }
                self.in_progress.push(InProgress {
                    id: piece.id,
                    count: piece.count,
                    started: now,
                    // Room for the whole frame as the first piece suggests it, within reason (a
                    // peer's count and size are not to be trusted with an allocation).
                    joined: Vec::with_capacity(
                        (usize::from(piece.count) * piece.data.len()).min(MAX_RESERVE),
                    ),
                    next: 0,
                    early: Vec::new(),
                });
                self.in_progress.len() - 1
            }
        };
        let entry = &mut self.in_progress[position];
        if piece.index >= entry.count || entry.held() + piece.data.len() > MAX_JOINED {
            // A piece that cannot belong, or a frame larger than any sender makes: drop the frame.
            self.in_progress.remove(position);
            return None;
        }
        if piece.index == entry.next {
            entry.joined.extend_from_slice(piece.data);
            entry.next += 1;
            entry.append_ready();
        } else if piece.index > entry.next && !entry.early.iter().any(|(i, _)| *i == piece.index) {
            entry.early.push((piece.index, piece.data.to_vec()));
        }
        if entry.next < entry.count {
            // Within the link's bound: the oldest frames go first (never the one just added to).
            let id = piece.id;
            while self.held() > MAX_HELD {
                let Some(oldest) = self.in_progress.iter().position(|p| p.id != id) else {
                    break;
                };
                self.in_progress.remove(oldest);
            }
            return None;
        }
        Some(self.in_progress.remove(position).joined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cuts `frame`, given as `parts`, into encoded pieces the way `Link::send_parts` does.
    fn split(parts: &[&[u8]], budget: usize, id: u32) -> Option<Vec<Vec<u8>>> {
        let len = parts.iter().map(|p| p.len()).sum();
        let (count, chunk) = plan(len, budget)?;
        let mut slices = Vec::new();
        Some(
            (0..count)
                .map(|i| {
                    let range = usize::from(i) * chunk..(usize::from(i + 1) * chunk).min(len);
                    let mut piece = PieceHeader::new(id, i, count, range.len())
                        .as_slice()
                        .to_vec();
                    slices.clear();
                    slices_of(parts, range, &mut slices);
                    slices.iter().for_each(|s| piece.extend_from_slice(s));
                    piece
                })
                .collect(),
        )
    }

    #[test]
    fn split_and_join_in_any_order() {
        let frame: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        // The same frame given whole and as three parts cuts into the same pieces.
        let parts: [&[u8]; 3] = [&frame[..7], &frame[7..2400], &frame[2400..]];
        let pieces = split(&[&frame], 1200, 42).unwrap();
        assert_eq!(split(&parts, 1200, 42).unwrap(), pieces);
        assert_eq!(pieces.len(), 5);
        assert!(pieces.iter().all(|p| p.len() <= 1200));
        for order in [[0, 1, 2, 3, 4], [3, 0, 4, 1, 2], [4, 3, 2, 1, 0]] {
            let mut r = Reassembly::default();
            let t = Instant::ZERO;
            let mut joined = None;
            for i in order {
                assert!(joined.is_none());
                joined = r.add(t, &pieces[i]);
                // A duplicate changes nothing.
                assert!(r.add(t, &pieces[i]).is_none() || joined.is_some());
            }
            assert_eq!(joined.as_deref(), Some(&frame[..]), "order {order:?}");
        }
        assert!(
            split(&[&[0; 400_000]], 1200, 1).is_none(),
            "too many pieces"
        );
        // Not a fragment, or a frame too short for the fragment it claims: nothing.
        let mut r = Reassembly::default();
        assert_eq!(r.add(Instant::ZERO, &[0x01, 0]), None);
        assert_eq!(r.add(Instant::ZERO, &pieces[0][..20]), None);
    }

    proptest::proptest! {
        /// Whatever an authenticated peer sends as pieces (any bytes, any order, repeats, ids reused
        /// with other counts), joining never panics, holds a bounded number of frames, and a frame
        /// split honestly among the noise still comes out whole.
        #[test]
        fn joining_is_total(
            noise in proptest::collection::vec(
                (0u32..4, 0u8..6, 0u8..6, proptest::collection::vec(proptest::num::u8::ANY, 0..40)),
                0..60,
            ),
            order in proptest::collection::vec(0usize..1000, 4),
        ) {
            let mut r = Reassembly::default();
            for (id, index, count, data) in &noise {
                let mut piece = PieceHeader::new(*id, *index, *count, data.len()).as_slice().to_vec();
                piece.extend_from_slice(data);
                let _ = r.add(Instant::ZERO, &piece);
                let _ = r.add(Instant::ZERO, data);
                proptest::prop_assert!(r.in_progress.len() <= MAX_IN_PROGRESS);
                proptest::prop_assert!(r.held() <= MAX_HELD);
            }
            let frame: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
            let mut pieces = split(&[&frame], 1000, 99).unwrap();
            let n = pieces.len();
            for (i, o) in order.iter().enumerate() {
                pieces.swap(i % n, o % n);
            }
            let mut joined = None;
            for p in &pieces {
                joined = joined.or(r.add(Instant::ZERO, p));
            }
            proptest::prop_assert_eq!(joined, Some(frame));
        }
    }

    /// An authenticated peer sending pieces out of order, as large as it likes, for many frames at
    /// once: what it makes us hold stays within `MAX_HELD` (before the bound: 8 frames of up to 255
    /// pieces of any size).
    #[test]
    fn out_of_order_pieces_pin_a_bounded_number_of_bytes() {
        let mut r = Reassembly::default();
        let data = vec![0u8; 60_000];
        let mut most = 0;
        for id in 0..100u32 {
            // Every piece but the first of frame `id`, so none completes.
            for index in 1..255u8 {
                let mut piece = PieceHeader::new(id, index, 255, data.len())
                    .as_slice()
                    .to_vec();
                piece.extend_from_slice(&data);
                assert!(r.add(Instant::ZERO, &piece).is_none());
                most = most.max(r.held());
            }
        }
        assert!(most <= MAX_HELD, "{most} bytes held");
        // A real frame still gets through afterwards.
        let frame: Vec<u8> = (0..65_000u32).map(|i| i as u8).collect();
        let mut joined = None;
        for p in split(&[&frame], 1400, 7).unwrap().iter().rev() {
            joined = joined.or(r.add(Instant::ZERO, p));
        }
        assert_eq!(joined, Some(frame));
        // And what is held expires on the timer, without another piece.
        r.expire(Instant::ZERO + REASSEMBLY_TIMEOUT);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn incomplete_frames_expire() {
        let frame = [7u8; 3000];
        let pieces = split(&[&frame], 1200, 1).unwrap();
        let mut r = Reassembly::default();
        assert!(r.add(Instant::ZERO, &pieces[0]).is_none());
        let later = Instant::ZERO + Duration::from_secs(2);
        for p in &pieces[1..] {
            assert!(r.add(later, p).is_none());
        }
    }
}
