//! Link datagrams over a byte stream (TCP, TLS): each datagram is sent as a 4-byte big-endian length
//! and the datagram, exactly the bytes a UDP link would carry (handshake, AEAD and all), so the link
//! layer is the same and TLS only hides metadata from observers. A frame may be up to [`MAX_FRAME`]
//! bytes, so a stream link carries whole super-packets ([`STREAM_MTU`]).
//!
//! Sending never waits: datagrams go into a queue of at most [`MAX_QUEUED`] bytes, which a writer
//! task empties with one write per batch; a full queue drops, as a full UDP socket buffer would, and
//! the inner flows back off. A connection that fails to read or write is reported to the router as
//! [`Input::Closed`]; a half-open one is found by the link's own liveness timers.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, mpsc};

use super::{EndpointId, Remote};
use crate::config::Scheme;
use crate::driver::buffers::BufferPool;
use crate::driver::input::Input;

/// Largest frame accepted or sent: a 64 KiB super-packet with its routing and link headers.
pub(crate) const MAX_FRAME: usize = 70_000;
/// The link MTU of stream links: no fragmentation below a frame.
pub(crate) const STREAM_MTU: usize = MAX_FRAME;
/// Bytes of frames waiting for the writer at most; beyond, datagrams are dropped. 1 MiB is 1.7 ms at
/// 5 Gbit/s and 0.8 s at 10 Mbit/s: deep enough for bursts, shallow enough to keep pings usable.
pub(crate) const MAX_QUEUED: usize = 1 << 20;
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
#[derive(Default)]
struct Queue {
    bytes: Mutex<Vec<u8>>,
    ready: Notify,
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
            let Ok(mut queue) = self.queue.bytes.lock() else {
                return Err(io::Error::other("send queue poisoned"));
            };
            for d in datagrams {
                let d = d.as_ref();
                if d.is_empty() || d.len() > MAX_FRAME {
                    continue;
                }
                if queue.len() + HEADER + d.len() > MAX_QUEUED {
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
pub(crate) fn start(
    endpoint: EndpointId,
    scheme: Scheme,
    peer: SocketAddr,
    stream: BoxedStream,
    inputs: mpsc::Sender<Input>,
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
async fn write(
    endpoint: EndpointId,
    mut stream: impl AsyncWrite + Unpin,
    queue: Arc<Queue>,
    inputs: mpsc::Sender<Input>,
) {
    let mut batch = Vec::new();
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
            if let Err(e) = stream.write_all(&batch).await {
                break 'connection format!("send: {e}");
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
    let _ = inputs.send(Input::Closed { endpoint, error }).await;
}

/// Reads frames until the connection ends or breaks the framing, handing each to the router.
async fn read(
    endpoint: EndpointId,
    peer: SocketAddr,
    stream: impl AsyncRead + Unpin,
    inputs: mpsc::Sender<Input>,
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
        let input = Input::Datagram {
            endpoint,
            remote: Remote::Stream(peer),
            data,
            stride: len,
        };
        if inputs.send(input).await.is_err() {
            return;
        }
    };
    let _ = inputs.send(Input::Closed { endpoint, error }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (tx, mut rx) = mpsc::channel(64);
        let peer: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let (sender, _reader) = start(1, Scheme::Tcp, peer, Box::new(a), tx.clone());
        let (_other_sender, _other_reader) = start(2, Scheme::Tcp, peer, Box::new(b), tx);
        let datagrams = vec![vec![1u8; 10], vec![2; MAX_FRAME], vec![3; 1]];
        sender.send_all(&datagrams).unwrap();
        for want in &datagrams {
            match rx.recv().await.unwrap() {
                Input::Datagram { endpoint, data, .. } => {
                    assert_eq!(endpoint, 2);
                    assert_eq!(&data[..], &want[..]);
                }
                _ => panic!("not a datagram"),
            }
        }
        // A frame over the limit: the reader gives up on the connection.
        let (mut raw, b) = tokio::io::duplex(1 << 16);
        let (tx, mut rx) = mpsc::channel(64);
        let _ends = start(3, Scheme::Tcp, peer, Box::new(b), tx);
        raw.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        match rx.recv().await.unwrap() {
            Input::Closed { endpoint, error } => {
                assert_eq!(endpoint, 3);
                assert!(error.contains("not a meshrouter link"), "{error}");
            }
            _ => panic!("not closed"),
        }
    }

    /// The send queue holds at most MAX_QUEUED bytes: a writer that cannot write (the peer reads
    /// nothing) makes later datagrams drop with WouldBlock instead of growing memory.
    #[tokio::test]
    async fn the_send_queue_is_bounded() {
        let (a, _b) = tokio::io::duplex(1024);
        let (tx, _rx) = mpsc::channel(64);
        let peer: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let (sender, _reader) = start(1, Scheme::Tls, peer, Box::new(a), tx);
        let datagram = vec![7u8; 60_000];
        let mut accepted = 0;
        let mut dropped = 0;
        for _ in 0..100 {
            match sender.send_all(&[&datagram]) {
                Ok(()) => accepted += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => dropped += 1,
                Err(e) => panic!("{e}"),
            }
            tokio::task::yield_now().await;
        }
        // The writer took one batch (stuck in the duplex), the queue holds MAX_QUEUED more.
        assert!(accepted <= 2 * MAX_QUEUED / 60_004 + 1, "{accepted}");
        assert!(dropped >= 60, "{dropped}");
        assert!(sender.queue.bytes.lock().unwrap().len() <= MAX_QUEUED);
    }
}
