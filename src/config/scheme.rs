//! Link URI schemes: which transport a peer or listener URI names. Adding a transport adds a variant
//! here and a module under `driver/transport/`.

use std::fmt;

/// The transport of a link URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Datagrams over UDP (`udp://`): the fastest, and the default for links.
    Udp,
    /// Length-prefixed link datagrams over a TCP connection (`tcp://`), for networks that block UDP.
    Tcp,
    /// The same over TLS 1.3 (`tls://`), for networks that let only HTTPS-looking traffic out.
    Tls,
}

impl Scheme {
    /// Every scheme, in the order the docs list them.
    pub const ALL: [Self; 3] = [Self::Udp, Self::Tcp, Self::Tls];

    /// The scheme's name as written before `://`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }

    /// Splits `text` into its scheme and what follows `://`.
    pub fn split(text: &str) -> Option<(Self, &str)> {
        let (name, rest) = text.split_once("://")?;
        let scheme = Self::ALL.into_iter().find(|s| s.name() == name)?;
        Some((scheme, rest))
    }

    /// Whether links of this scheme run over a connection (one link per connection, no datagram
    /// size limit but the frame limit) rather than over a datagram socket.
    pub fn is_stream(self) -> bool {
        matches!(self, Self::Tcp | Self::Tls)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
