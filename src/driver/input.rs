//! Everything that reaches the router task, from readers, listeners, dialling tasks, the API and
//! blocking helpers.

use tokio::sync::oneshot;

use super::buffers::Buffer;
use super::request::{ApiRequest, ApiResponse};
use super::transport::stream::BoxedStream;
use super::transport::{Arrived, Dialled, EndpointId, Remote};
use crate::config::LinkUri;
use crate::core::password::PasswordKey;

/// Everything that reaches the router.
pub(crate) enum Input {
    /// Datagrams on a link endpoint: `data` holds one or more, each `stride` bytes (the last may be
    /// shorter), as UDP GRO delivers them.
    Datagram {
        endpoint: EndpointId,
        remote: Remote,
        data: Buffer,
        stride: usize,
    },
    /// A packet the host sent into the TUN device.
    Tun(Vec<u8>),
    /// A TCP super-packet the host sent into the TUN device, to travel whole.
    TunSuper {
        /// IPv6 packet of all the segments.
        packet: Buffer,
        /// Segment payload size.
        mss: u16,
        /// ECN super-packet.
        ecn: bool,
    },
    /// A datagram on the UDP discovery (multicast) socket.
    UdpBeacon {
        from: std::net::SocketAddrV6,
        data: Vec<u8>,
    },
    /// A configured peer was reached: its socket is bound or its connection made.
    PeerReady { text: String, dialled: Dialled },
    /// Resolving, binding or connecting for a configured peer failed (it is retried).
    PeerFailed { text: String, error: String },
    /// A stream listener accepted a connection (TLS handshake done for `tls://`).
    Accepted {
        uri: LinkUri,
        stream: BoxedStream,
        addr: std::net::SocketAddr,
    },
    /// A connection endpoint failed or its peer closed it.
    Closed { endpoint: EndpointId, error: String },
    /// A local API call.
    Api(ApiRequest, oneshot::Sender<ApiResponse>),
    /// Read the configuration file again (SIGHUP: no answer; `meshrouter reload`: answered).
    Reload(Option<oneshot::Sender<ApiResponse>>),
    /// A password `addpeer` brought was stretched on a blocking thread (`Err`: that thread failed).
    PasswordStretched {
        password: Vec<u8>,
        key: Result<PasswordKey, String>,
    },
    /// Time to look at the running traces.
    TraceTick,
    /// The passwords new in a reloaded configuration were stretched: apply it.
    ReloadStretched {
        config: Box<crate::config::Daemon>,
        stretched: super::passwords::Stretched,
        reply: Option<oneshot::Sender<ApiResponse>>,
    },
}

impl Input {
    /// Bytes of traffic this input carries, to bound what one batch of the router takes.
    pub(crate) fn traffic_bytes(&self) -> usize {
        match self {
            Self::Datagram { data, .. } => data.len(),
            Self::Tun(packet) => packet.len(),
            Self::TunSuper { packet, .. } => packet.len(),
            _ => 0,
        }
    }
}

impl From<Arrived> for Input {
    fn from(arrived: Arrived) -> Self {
        match arrived {
            Arrived::Datagram {
                endpoint,
                remote,
                data,
                stride,
            } => Self::Datagram {
                endpoint,
                remote,
                data,
                stride,
            },
            Arrived::Accepted { uri, stream, addr } => Self::Accepted { uri, stream, addr },
            Arrived::Closed { endpoint, error } => Self::Closed { endpoint, error },
        }
    }
}
