//! Link datagrams over a byte stream (TCP, TLS): each datagram is sent as a 4-byte big-endian length
//! and the datagram, exactly the bytes a UDP link would carry (handshake, AEAD and all), so the link
//! layer is the same and TLS only hides metadata from observers. A frame may be up to [`MAX_FRAME`]
//! bytes, so a stream link carries whole super-packets ([`STREAM_MTU`]).
//!
//! Sending never waits: datagrams go into a queue, which a writer task empties with one write per
//! batch; a full queue drops, as a full UDP socket buffer would, and the inner flows back off. The
//! queue holds what the connection drains in [`TARGET_DELAY`] (measured as it writes), between
//! [`MIN_QUEUED`] and [`MAX_QUEUED`]: deep enough that a fast link never drops a burst (a drop makes
//! the host's TCP retransmit, and its super-packets are then cut into segments), shallow enough that
//! a slow uplink does not hold seconds of traffic ahead of a ping. A connection that fails to read or write is reported to the router as
//! [`Input::Closed`]; a half-open one is found by the link's own liveness timers.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, mpsc};

use super::{Arrived, EndpointId, Inputs, Remote};
use crate::config::Scheme;
use crate::driver::buffers::BufferPool;

/// Largest frame accepted or sent: a 64 KiB super-packet with its routing and link headers.
pub const MAX_FRAME: usize = 70_000;
/// The link MTU of stream links: no fragmentation below a frame.
pub(crate) const STREAM_MTU: usize = MAX_FRAME;
/// Bytes of frames waiting for the writer at most, however fast the connection (6.7 ms at 5 Gbit/s).
pub(crate) const MAX_QUEUED: usize = 4 << 20;
/// Bytes of frames the queue may always hold (0.2 s at 10 Mbit/s).
pub(crate) const MIN_QUEUED: usize = 256 << 10;
/// The queue holds what the connection drains in this long.
pub(crate) const TARGET_DELAY: std::time::Duration = std::time::Duration::from_millis(25);
/// Size of the length prefix.
const HEADER: usize = 4;
/// The reader's buffer: many frames per read system call.
const READ_BUFFER: usize = 256 * 1024;
/// Frames up to this size are handed on in small buffers (most control and ack traffic).
const SMALL_FRAME: usize = 2048;

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("empty frame")]
    Empty,
    #[error("frame of {0} bytes (limit {MAX_FRAME})")]
    TooLarge(usize),
}

/// The frame length a header announces, checked before anything is read or allocated for it.
pub(crate) fn frame_len(header: [u8; HEADER]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    match len {
        0 => Err(FrameError::Empty),
        n if n > MAX_FRAME => Err(FrameError::TooLarge(n)),
        n => Ok(n),
    }
}

/// Appends `datagram` as one frame.
fn put_frame(out: &mut Vec<u8>, datagram: &[u8]) {
    out.extend_from_slice(&(datagram.len() as u32).to_be_bytes());
    out.extend_from_slice(datagram);
}

/// A connection, whatever carries it.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}
/// A connection of any stream transport.
pub(crate) type BoxedStream = Box<dyn Stream>;

/// The frames waiting for the writer.
struct Queue {
    bytes: Mutex<Vec<u8>>,
    ready: Notify,
    /// Bytes the queue may hold now (see [`TARGET_DELAY`]).
    limit: AtomicUsize,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            bytes: Mutex::default(),
            ready: Notify::new(),
            limit: AtomicUsize::new(MAX_QUEUED),
        }
    }
}

/// How fast a connection drains, from the writes that had to wait for it.
#[derive(Default)]
struct DrainRate {
    /// Bytes per second, smoothed.
    rate: Option<f64>,
}

impl DrainRate {
    /// A write of `bytes` took `took`. Only writes that waited tell the connection's speed (a write
    /// into a socket buffer with room runs at memory speed).
    fn sample(&mut self, bytes: usize, took: std::time::Duration) -> Option<usize> {
        if took < std::time::Duration::from_millis(1) {
            return None;
        }
        let sample = bytes as f64 / took.as_secs_f64();
        let rate = match self.rate {
            Some(r) => r * 0.875 + sample * 0.125,
            None => sample,
        };
        self.rate = Some(rate);
        Some(((rate * TARGET_DELAY.as_secs_f64()) as usize).clamp(MIN_QUEUED, MAX_QUEUED))
    }
}

/// The sending side of a connection: a bounded queue and the writer task that empties it (stopped
/// when this is dropped).
pub(crate) struct StreamSender {
    queue: Arc<Queue>,
    scheme: Scheme,
    writer: tokio::task::JoinHandle<()>,
}

impl StreamSender {
    /// Queues datagrams as frames, in order; what does not fit in [`MAX_QUEUED`] is dropped and
    /// reported as `WouldBlock`.
    pub(crate) fn send_all<D: AsRef<[u8]>>(&self, datagrams: &[D]) -> io::Result<()> {
        let mut dropped = false;
        {
            let limit = self.queue.limit.load(Ordering::Relaxed);
            let Ok(mut queue) = self.queue.bytes.lock() else {
                return Err(io::Error::other("send queue poisoned"));
            };
            for d in datagrams {
                let d = d.as_ref();
                if d.is_empty() || d.len() > MAX_FRAME {
                    continue;
                }
                if queue.len() + HEADER + d.len() > limit {
                    dropped = true;
                    continue;
                }
                put_frame(&mut queue, d);
            }
        }
        self.queue.ready.notify_one();
        if dropped {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    }

    /// Which transport the connection is.
    pub(crate) fn scheme(&self) -> Scheme {
        self.scheme
    }
}

impl Drop for StreamSender {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

/// Starts the reader and writer of a connection that is endpoint `endpoint`. The reader's handle
/// is returned for the endpoint to own.
pub(crate) fn start<I: Inputs>(
    endpoint: EndpointId,
    scheme: Scheme,
    peer: SocketAddr,
    stream: BoxedStream,
    inputs: mpsc::Sender<I>,
) -> (StreamSender, tokio::task::JoinHandle<()>) {
    let (read_half, write_half) = tokio::io::split(stream);
    let queue = Arc::new(Queue::default());
    let writer = tokio::spawn(write(endpoint, write_half, queue.clone(), inputs.clone()));
    let reader = tokio::spawn(read(endpoint, peer, read_half, inputs));
    let sender = StreamSender {
        queue,
        scheme,
        writer,
    };
    (sender, reader)
}

/// Writes what is queued, a batch per write, until the connection fails.
async fn write<I: Inputs>(
    endpoint: EndpointId,
    mut stream: impl AsyncWrite + Unpin,
    queue: Arc<Queue>,
    inputs: mpsc::Sender<I>,
) {
    let mut batch = Vec::new();
    let mut drain = DrainRate::default();
    let error = 'connection: loop {
        queue.ready.notified().await;
        loop {
            {
                let Ok(mut queued) = queue.bytes.lock() else {
                    return;
                };
                if queued.is_empty() {
                    break;
                }
                std::mem::swap(&mut *queued, &mut batch);
            }
            let started = std::time::Instant::now();
            if let Err(e) = stream.write_all(&batch).await {
                break 'connection format!("send: {e}");
            }
            if let Some(limit) = drain.sample(batch.len(), started.elapsed()) {
                queue.limit.store(limit, Ordering::Relaxed);
            }
            batch.clear();
            // Keep the big buffer of a burst only while bursts last.
            if batch.capacity() > MAX_QUEUED {
                batch = Vec::new();
            }
        }
        if let Err(e) = stream.flush().await {
            break format!("send: {e}");
        }
    };
    let _ = inputs
        .send(Arrived::Closed { endpoint, error }.into())
        .await;
}

/// Reads frames until the connection ends or breaks the framing, handing each to the router.
async fn read<I: Inputs>(
    endpoint: EndpointId,
    peer: SocketAddr,
    stream: impl AsyncRead + Unpin,
    inputs: mpsc::Sender<I>,
) {
    let mut stream = BufReader::with_capacity(READ_BUFFER, stream);
    let small = BufferPool::new(SMALL_FRAME);
    let large = BufferPool::new(MAX_FRAME);
    let error = loop {
        let mut header = [0; HEADER];
        if let Err(e) = stream.read_exact(&mut header).await {
            break match e.kind() {
                io::ErrorKind::UnexpectedEof => "connection closed by the peer".to_owned(),
                _ => format!("receive: {e}"),
            };
        }
        let len = match frame_len(header) {
            Ok(len) => len,
            Err(e) => break format!("receive: {e}: not a meshrouter link"),
        };
        let mut data = if len <= SMALL_FRAME {
            small.take()
        } else {
            large.take()
        };
        if let Err(e) = stream.read_exact(&mut data.whole()[..len]).await {
            break format!("receive: {e}");
        }
        data.set_range(0..len);
        let input = Arrived::Datagram {
            endpoint,
            remote: Remote::Stream(peer),
            data,
            stride: len,
        };
        if inputs.send(input.into()).await.is_err() {
            return;
        }
    };
    let _ = inputs
        .send(Arrived::Closed { endpoint, error }.into())
        .await;
}

/// Runs the real reader over `bytes` as a peer's connection would deliver them (in pieces of
/// `chunk` bytes) and returns the frames it handed on, and why it closed. For the `stream_frames`
/// fuzz target.
pub fn read_all(bytes: &[u8], chunk: usize) -> (Vec<Vec<u8>>, String) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return (Vec::new(), "no runtime".into());
    };
    runtime.block_on(async {
        let (mut writer, reader) = tokio::io::duplex(64 * 1024);
        let (tx, mut rx) = mpsc::channel::<Arrived>(16);
        let peer = SocketAddr::from(([192, 0, 2, 1], 443));
        let reading = tokio::spawn(read(1, peer, reader, tx));
        let bytes = bytes.to_vec();
        let chunk = chunk.max(1);
        let writing = tokio::spawn(async move {
            for piece in bytes.chunks(chunk) {
                if writer.write_all(piece).await.is_err() {
                    return;
                }
            }
        });
        let mut frames = Vec::new();
        let mut closed = String::new();
        while let Some(arrived) = rx.recv().await {
            match arrived {
                Arrived::Datagram { data, .. } => frames.push(data.to_vec()),
                Arrived::Closed { error, .. } => closed = error,
                Arrived::Accepted { .. } => {}
            }
        }
        let _ = (writing.await, reading.await);
        (frames, closed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests read what the tasks send as it is.
    type Channel = (mpsc::Sender<Arrived>, mpsc::Receiver<Arrived>);

    #[test]
    fn frame_lengths_are_checked_before_reading() {
        assert_eq!(frame_len([0, 0, 0, 0]), Err(FrameError::Empty));
        assert_eq!(frame_len([0, 0, 5, 0x78]), Ok(1400));
        assert_eq!(frame_len((MAX_FRAME as u32).to_be_bytes()), Ok(MAX_FRAME));
        let over = (MAX_FRAME as u32 + 1).to_be_bytes();
        assert_eq!(frame_len(over), Err(FrameError::TooLarge(MAX_FRAME + 1)));
        assert!(frame_len([0xff; 4]).is_err());
    }

    /// Frames written by one side come out whole and in order on the other, a frame at the limit
    /// included; a header over the limit ends the connection without reading (or allocating) it.
    #[tokio::test]
    async fn frames_cross_a_stream_whole_and_bad_framing_closes_it() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (tx, mut rx): Channel = mpsc::channel(64);
        let peer: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let (sender, _reader) = start(1, Scheme::Tcp, peer, Box::new(a), tx.clone());
        let (_other_sender, _other_reader) = start(2, Scheme::Tcp, peer, Box::new(b), tx);
        let datagrams = vec![vec![1u8; 10], vec![2; MAX_FRAME], vec![3; 1]];
        sender.send_all(&datagrams).unwrap();
        for want in &datagrams {
            match rx.recv().await.unwrap() {
                Arrived::Datagram { endpoint, data, .. } => {
                    assert_eq!(endpoint, 2);
                    assert_eq!(&data[..], &want[..]);
                }
                _ => panic!("not a datagram"),
            }
        }
        // A frame over the limit: the reader gives up on the connection.
        let (mut raw, b) = tokio::io::duplex(1 << 16);
        let (tx, mut rx): Channel = mpsc::channel(64);
        let _ends = start(3, Scheme::Tcp, peer, Box::new(b), tx);
        raw.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        match rx.recv().await.unwrap() {
            Arrived::Closed { endpoint, error } => {
                assert_eq!(endpoint, 3);
                assert!(error.contains("not a meshrouter link"), "{error}");
            }
            _ => panic!("not closed"),
        }
    }

    /// The queue follows the connection's speed: TARGET_DELAY of it, within MIN..MAX_QUEUED.
    #[test]
    fn the_queue_limit_follows_the_drain_rate() {
        let mut drain = DrainRate::default();
        let ms = std::time::Duration::from_millis;
        assert_eq!(
            drain.sample(1 << 20, ms(0)),
            None,
            "a write that did not wait"
        );
        // 10 Mbit/s: 31 KiB in 25 ms, so the floor.
        assert_eq!(drain.sample(125_000, ms(100)), Some(MIN_QUEUED));
        let mut fast = DrainRate::default();
        // 1 GB/s: 25 MB in 25 ms, so the ceiling.
        assert_eq!(fast.sample(10_000_000, ms(10)), Some(MAX_QUEUED));
        let mut middle = DrainRate::default();
        // 40 MB/s: 1 MB in 25 ms.
        assert_eq!(middle.sample(4_000_000, ms(100)), Some(1_000_000));
    }

    /// The send queue holds at most MAX_QUEUED bytes: a writer that cannot write (the peer reads
    /// nothing) makes later datagrams drop with WouldBlock instead of growing memory.
    #[tokio::test]
    async fn the_send_queue_is_bounded() {
        let (a, _b) = tokio::io::duplex(1024);
        let (tx, _rx): Channel = mpsc::channel(64);
        let peer: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let (sender, _reader) = start(1, Scheme::Tls, peer, Box::new(a), tx);
        let datagram = vec![7u8; 60_000];
        let mut accepted = 0;
        let mut dropped = 0;
        for _ in 0..300 {
            match sender.send_all(&[&datagram]) {
                Ok(()) => accepted += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => dropped += 1,
                Err(e) => panic!("{e}"),
            }
            tokio::task::yield_now().await;
        }
        // The writer took one batch (stuck in the duplex), the queue holds MAX_QUEUED more.
        assert!(accepted <= 2 * MAX_QUEUED / 60_004 + 1, "{accepted}");
        assert!(dropped >= 300 - 2 * MAX_QUEUED / 60_004 - 1, "{dropped}");
        assert!(sender.queue.bytes.lock().unwrap().len() <= MAX_QUEUED);
    }
}
