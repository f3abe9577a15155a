//! Receive buffers that go from a reader to the router and back.
//!
//! A reader reads into a pooled buffer and hands the buffer itself to the router, which decrypts the
//! datagrams in place: no copy of what was read into a fresh allocation, and no fresh 64 KiB
//! allocation per read. Dropping a [`Buffer`] returns it to its pool.

use std::ops::{Deref, DerefMut, Range};
use std::sync::{Arc, Mutex};

/// Free buffers kept per pool; more are freed. Enough for the readers' own buffers and a full input
/// queue's worth in flight, which a busy router drains within a batch or two.
const KEEP: usize = 64;

/// Buffers of one size for one reader.
pub(crate) struct BufferPool {
    size: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    pub(crate) fn new(size: usize) -> Arc<Self> {
        Arc::new(Self {
            size,
            free: Mutex::new(Vec::new()),
        })
    }

    /// A buffer of the pool's size (its contents are whatever was read into it last).
    pub(crate) fn take(self: &Arc<Self>) -> Buffer {
        let recycled = self.free.lock().ok().and_then(|mut free| free.pop());
        Buffer {
            data: recycled.unwrap_or_else(|| vec![0; self.size]),
            range: 0..self.size,
            pool: self.clone(),
        }
    }
}

/// A buffer from a pool, of which `range` holds what was read.
pub(crate) struct Buffer {
    data: Vec<u8>,
    range: Range<usize>,
    pool: Arc<BufferPool>,
}

impl Buffer {
    /// The whole buffer, to read into.
    pub(crate) fn whole(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Narrows the buffer to `range` of the whole (what a read filled, past a header).
    pub(crate) fn set_range(&mut self, range: Range<usize>) {
        let end = range.end.min(self.data.len());
        self.range = range.start.min(end)..end;
    }
}

impl Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.data[self.range.clone()]
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.range.clone()]
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.free.lock()
            && free.len() < KEEP
        {
            free.push(std::mem::take(&mut self.data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_and_ranges_stay_inside() {
        let pool = BufferPool::new(100);
        let mut b = pool.take();
        b.whole()[..3].copy_from_slice(b"abc");
        b.set_range(1..3);
        assert_eq!(&*b, b"bc");
        b.set_range(50..500);
        assert_eq!(b.len(), 50);
        b.set_range(200..300);
        assert!(b.is_empty());
        let address = b.data.as_ptr();
        drop(b);
        let again = pool.take();
        assert_eq!(again.data.as_ptr(), address, "recycled");
        assert_eq!(again.len(), 100);
    }
}
