//! The services (CRDT sync, identity) on a thread of their own. Verifying signatures, resolving
//! access and merging thousands of changes takes milliseconds to seconds; on the router's task that
//! time would stall every routed packet. The router hands this thread what arrives for a service
//! port, link events and API calls over a channel, and sends what the services produce from a
//! channel of its own, so routing never waits for a service.
//!
//! Sync input is bounded ([`MAX_QUEUED_MESSAGES`], [`MAX_QUEUED_BYTES`]): when the services fall
//! behind, further service messages are dropped and counted (`service_messages_dropped`), as a
//! congested link would drop them; the sync protocol asks again. Link events and API calls are never
//! dropped (links and API connections are bounded on their own).

use crate::core::identity::PublicKey;

/// Service messages waiting for the thread, at most: beyond this, new ones are dropped.
#[cfg(feature = "services")]
pub(crate) const MAX_QUEUED_MESSAGES: usize = 1024;

/// Bytes of service messages waiting for the thread, at most.
#[cfg(feature = "services")]
pub(crate) const MAX_QUEUED_BYTES: usize = 16 << 20;

/// Service messages the thread may have produced for the router before it waits for the router.
#[cfg(feature = "services")]
const OUTBOUND_QUEUE: usize = 1024;

/// A message a service sends: to `peer`'s `port`.
pub(crate) struct Outbound {
    pub(crate) peer: PublicKey,
    pub(crate) port: u16,
    pub(crate) payload: Vec<u8>,
}

/// What the services' thread hands the router.
#[cfg_attr(not(feature = "services"), allow(dead_code))]
pub(crate) enum FromServices {
    /// A service message to send.
    Send(Outbound),
    /// The member registry changed: node keys enrolled, with their roles (for the firewall).
    Roles(std::collections::HashMap<PublicKey, Vec<String>>),
}

/// Service messages handed over and not yet taken by the thread: shared by the router (which
/// admits) and the thread (which releases).
#[cfg(feature = "services")]
#[derive(Default)]
pub(crate) struct Backlog {
    messages: std::sync::atomic::AtomicUsize,
    bytes: std::sync::atomic::AtomicUsize,
}

#[cfg(feature = "services")]
impl Backlog {
    /// Takes a message of `len` bytes into the backlog; false (and nothing taken) if the backlog is
    /// full.
    pub(crate) fn admit(&self, len: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.messages.load(Relaxed) >= MAX_QUEUED_MESSAGES
            || self.bytes.load(Relaxed).saturating_add(len) > MAX_QUEUED_BYTES
        {
            return false;
        }
        // Only the router admits, so nothing grows the backlog between the check and the add.
        self.messages.fetch_add(1, Relaxed);
        self.bytes.fetch_add(len, Relaxed);
        true
    }

    /// A message of `len` bytes left the backlog.
    pub(crate) fn release(&self, len: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.messages.fetch_sub(1, Relaxed);
        self.bytes.fetch_sub(len, Relaxed);
    }
}

#[cfg(feature = "services")]
pub(crate) use running::{ServiceCall, ServiceContext, ServiceThread};

/// Starts what privileged setup opened, on the services' own thread.
#[cfg(feature = "services")]
pub(crate) fn start(
    prepared: crate::driver::services::PreparedServices,
    config: &crate::config::Config,
    seed: [u8; 32],
    clock: crate::driver::clock::Clock,
) -> ServiceThread {
    ServiceThread::spawn(prepared.start(config, seed, clock.now()), clock)
}

/// Nothing to start: built without the services.
#[cfg(not(feature = "services"))]
pub(crate) fn start(
    _: crate::driver::services::PreparedServices,
    _: &crate::config::Config,
    _: [u8; 32],
    _: crate::driver::clock::Clock,
) -> ServiceThread {
    ServiceThread
}

#[cfg(feature = "services")]
mod running {
    use std::sync::Arc;
    use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::{Backlog, FromServices, OUTBOUND_QUEUE, Outbound};
    use crate::core::identity::PublicKey;
    use crate::core::time::Instant;
    use crate::driver::clock::Clock;
    use crate::driver::request::{ApiRequest, ApiResponse};
    use crate::driver::services::Services;

    /// What an API route that the services answer runs, on the services' thread.
    #[derive(Clone, Copy)]
    pub(crate) enum ServiceCall {
        /// Answers at once.
        Now(fn(&mut ServiceContext, &ApiRequest) -> ApiResponse),
        /// Keeps the reply and answers later (a long-poll, an overlay round trip).
        Later(fn(&mut ServiceContext, &ApiRequest, oneshot::Sender<ApiResponse>)),
    }

    /// What the services' API handlers see: the services and the clock.
    pub(crate) struct ServiceContext {
        pub(crate) services: Services,
        pub(crate) clock: Clock,
    }

    /// What the router hands the thread.
    enum Input {
        /// A message for a service port.
        Message {
            port: u16,
            source: PublicKey,
            payload: bytes::Bytes,
        },
        /// A link to `peer` came up (`up`) or went down.
        Link { peer: PublicKey, up: bool },
        /// Fresh entropy for the services' nonce streams.
        Reseed(zeroize::Zeroizing<[u8; 32]>),
        /// A reload changed the CRDT settings.
        Crdt(Box<crate::config::CrdtSettings>),
        /// An API call.
        Api {
            call: ServiceCall,
            request: ApiRequest,
            reply: oneshot::Sender<ApiResponse>,
        },
    }

    /// The router's end of the services' thread.
    pub(crate) struct ServiceThread {
        inputs: Option<Sender<Input>>,
        backlog: Arc<Backlog>,
        outbound: Option<tokio::sync::mpsc::Receiver<FromServices>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl ServiceThread {
        /// Starts the thread that runs `services`.
        pub(crate) fn spawn(services: Services, clock: Clock) -> Self {
            let (inputs, receiver) = std::sync::mpsc::channel();
            let (sender, outbound) = tokio::sync::mpsc::channel(OUTBOUND_QUEUE);
            let backlog = Arc::new(Backlog::default());
            let context = ServiceContext { services, clock };
            let thread_backlog = backlog.clone();
            let thread = std::thread::Builder::new()
                .name("services".into())
                .spawn(move || run(context, &receiver, &thread_backlog, &sender));
            let thread = match thread {
                Ok(thread) => Some(thread),
                Err(e) => {
                    tracing::error!("cannot start the services' thread ({e}); they are off");
                    None
                }
            };
            Self {
                inputs: thread.is_some().then_some(inputs),
                backlog,
                outbound: Some(outbound),
                thread,
            }
        }

        /// A message for `port` from `source`; false if it was dropped because the services are
        /// behind (or gone).
        pub(crate) fn deliver(&self, port: u16, source: PublicKey, payload: bytes::Bytes) -> bool {
            let Some(inputs) = &self.inputs else {
                return false;
            };
            let len = payload.len();
            if !self.backlog.admit(len) {
                return false;
            }
            let message = Input::Message {
                port,
                source,
                payload,
            };
            if inputs.send(message).is_err() {
                self.backlog.release(len);
                return false;
            }
            true
        }

        /// A link to `peer` came up (`up`) or went down.
        pub(crate) fn link(&self, peer: PublicKey, up: bool) {
            if let Some(inputs) = &self.inputs {
                let _ = inputs.send(Input::Link { peer, up });
            }
        }

        /// Mixes fresh entropy into the services' nonce streams.
        pub(crate) fn reseed(&self, extra: &[u8; 32]) {
            if let Some(inputs) = &self.inputs {
                let _ = inputs.send(Input::Reseed(zeroize::Zeroizing::new(*extra)));
            }
        }

        /// Applies reloaded CRDT settings (the replicated namespaces and per-peer filters).
        pub(crate) fn reconfigure_crdt(&self, settings: crate::config::CrdtSettings) {
            if let Some(inputs) = &self.inputs {
                let _ = inputs.send(Input::Crdt(Box::new(settings)));
            }
        }

        /// Runs an API call on the services' thread; it answers `reply`.
        pub(crate) fn call(
            &self,
            call: ServiceCall,
            request: ApiRequest,
            reply: oneshot::Sender<ApiResponse>,
        ) {
            let input = Input::Api {
                call,
                request,
                reply,
            };
            let refused = match &self.inputs {
                Some(inputs) => inputs.send(input).err().map(|e| e.0),
                None => Some(input),
            };
            if let Some(Input::Api { reply, .. }) = refused {
                let _ = reply.send(ApiResponse::error(503, "the services are not running"));
            }
        }

        /// The next thing the services hand over; pending forever if none will come.
        pub(crate) async fn next_outbound(&mut self) -> FromServices {
            match &mut self.outbound {
                Some(outbound) => match outbound.recv().await {
                    Some(message) => message,
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        }

        /// What the services handed over, if something is waiting.
        pub(crate) fn try_outbound(&mut self) -> Option<FromServices> {
            self.outbound.as_mut()?.try_recv().ok()
        }
    }

    impl Drop for ServiceThread {
        /// Stops the thread and waits for it, so that the CRDT store commits what it holds.
        fn drop(&mut self) {
            self.inputs = None;
            // The thread may be waiting for room to send: it gives up once nobody receives.
            self.outbound = None;
            if let Some(thread) = self.thread.take()
                && thread.join().is_err()
            {
                tracing::error!("the services' thread panicked");
            }
        }
    }

    /// The thread: runs the services until the router goes away.
    fn run(
        mut context: ServiceContext,
        inputs: &Receiver<Input>,
        backlog: &Backlog,
        outbound: &tokio::sync::mpsc::Sender<FromServices>,
    ) {
        if let Err(e) = crate::sys::thread::run_in_background() {
            tracing::debug!("the services' thread keeps its priority: {e}");
        }
        context.services.refresh_names(context.clock.now());
        context.services.refresh_blobs(context.clock.now());
        loop {
            let now = context.clock.now();
            let input = match context.services.poll_timeout() {
                Some(at) if at <= now => Err(RecvTimeoutError::Timeout),
                Some(at) => {
                    let wait = Duration::from_micros(at.saturating_since(now).as_micros() as u64);
                    inputs.recv_timeout(wait)
                }
                None => inputs.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let now = context.clock.now();
            match input {
                Ok(input) => handle(&mut context, now, input, backlog),
                Err(RecvTimeoutError::Timeout) => context.services.handle_timeout(now),
                Err(RecvTimeoutError::Disconnected) => return,
            }
            context.services.refresh_blobs(context.clock.now());
            while let Some((peer, port, payload)) = context.services.poll_send() {
                let message = Outbound {
                    peer,
                    port,
                    payload,
                };
                if outbound.blocking_send(FromServices::Send(message)).is_err() {
                    return;
                }
            }
            context.services.refresh_names(context.clock.now());
            if let Some(roles) = context.services.roles_if_changed()
                && outbound.blocking_send(FromServices::Roles(roles)).is_err()
            {
                return;
            }
        }
    }

    fn handle(context: &mut ServiceContext, now: Instant, input: Input, backlog: &Backlog) {
        match input {
            Input::Message {
                port,
                source,
                payload,
            } => {
                backlog.release(payload.len());
                context.services.deliver(now, port, source, &payload);
            }
            Input::Link { peer, up } => context.services.link(now, peer, up),
            Input::Reseed(extra) => context.services.reseed(&extra),
            Input::Crdt(settings) => {
                if let Some(crdt) = &mut context.services.crdt {
                    let engine = &mut crdt.host.engine;
                    engine.set_filters(settings.namespaces, settings.peers);
                }
            }
            Input::Api {
                call,
                request,
                reply,
            } => match call {
                ServiceCall::Now(handler) => {
                    let _ = reply.send(handler(context, &request));
                }
                ServiceCall::Later(handler) => handler(context, &request, reply),
            },
        }
    }
}

/// The router's end of the services when built without them: nothing runs.
#[cfg(not(feature = "services"))]
pub(crate) struct ServiceThread;

#[cfg(not(feature = "services"))]
impl ServiceThread {
    /// Nothing to deliver to.
    pub(crate) fn deliver(&self, _: u16, _: PublicKey, _: bytes::Bytes) -> bool {
        false
    }

    /// Nothing follows links.
    pub(crate) fn link(&self, _: PublicKey, _: bool) {}

    /// No random streams.
    pub(crate) fn reseed(&self, _: &[u8; 32]) {}

    /// No CRDT service.
    pub(crate) fn reconfigure_crdt(&self, _: crate::config::CrdtSettings) {}

    /// Never sends.
    pub(crate) async fn next_outbound(&mut self) -> FromServices {
        std::future::pending().await
    }

    /// Never sends.
    pub(crate) fn try_outbound(&mut self) -> Option<FromServices> {
        None
    }
}

#[cfg(all(test, feature = "services"))]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_refuses_past_its_message_limit_and_takes_again_once_released() {
        let backlog = Backlog::default();
        for _ in 0..MAX_QUEUED_MESSAGES {
            assert!(backlog.admit(10));
        }
        assert!(
            !backlog.admit(10),
            "message {} is refused",
            MAX_QUEUED_MESSAGES + 1
        );
        backlog.release(10);
        assert!(backlog.admit(10));
    }

    #[test]
    fn the_backlog_refuses_past_its_byte_limit() {
        let backlog = Backlog::default();
        let big = MAX_QUEUED_BYTES / 4;
        for _ in 0..4 {
            assert!(backlog.admit(big));
        }
        assert!(!backlog.admit(1));
        backlog.release(big);
        assert!(backlog.admit(big));
        assert!(!backlog.admit(1));
    }
}
