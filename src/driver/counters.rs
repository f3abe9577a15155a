//! Counters of what the daemon (not the core) dropped or refused, shown by `meshrouter counters`.

/// Counters of things the driver dropped or refused.
#[derive(Default, Debug, Clone, serde::Serialize)]
pub(crate) struct DriverCounters {
    pub(crate) send_errors: u64,
    pub(crate) tun_write_errors: u64,
    pub(crate) unsolicited_datagrams: u64,
    pub(crate) inbound_refused: u64,
    /// Cookie replies sent to initiations that arrived while the handshake budget was spent.
    pub(crate) cookie_replies: u64,
    pub(crate) beacons_refused: u64,
    pub(crate) beacons_rate_limited: u64,
    pub(crate) service_messages_unhandled: u64,
    /// Service messages dropped because the services' thread was behind
    /// (`service_thread::MAX_QUEUED_MESSAGES`, `MAX_QUEUED_BYTES`).
    pub(crate) service_messages_dropped: u64,
    /// Host TCP super-packets sent whole.
    pub(crate) super_packets_whole: u64,
    /// Host TCP super-packets cut into segments (their flow retransmitted lately).
    pub(crate) super_packets_segmented: u64,
    /// Accepted connections without a link closed for a newer one (`MAX_PENDING_ACCEPTED`,
    /// `MAX_PENDING_PER_SOURCE`).
    pub(crate) connections_evicted: u64,
    /// Accepted connections that closed or brought no link up in time.
    pub(crate) connections_closed: u64,
}
