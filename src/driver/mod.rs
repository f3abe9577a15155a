//! The daemon: a thin tokio driver around the sans-IO core.
//!
//! Setup runs in three steps. First, while still privileged and single-threaded, it creates the TUN
//! device, binds the API socket and the listeners. Then it drops privileges (`privileges`). Last, it
//! starts the runtime: reader tasks hand datagrams, TUN packets and API calls to the router task
//! (`router`), which alone owns the core [`Node`] and carries out what it
//! produces. SIGTERM and SIGINT stop it; dropping the TUN device removes its address and routes.

mod api;
#[cfg(feature = "services")]
mod apps;
#[cfg(feature = "services")]
mod blob_exchange;
#[cfg(feature = "services")]
mod blob_store;
#[cfg(feature = "services")]
mod blob_writer;
mod buffers;
mod clock;
mod connections;
mod counters;
mod cpu;
#[cfg(feature = "services")]
mod crdt;
#[cfg(feature = "services")]
mod crdt_seal;
#[cfg(feature = "services")]
pub mod crdt_store;
#[cfg(feature = "services")]
mod crdt_writer;
mod discovery;
#[cfg(feature = "services")]
mod dns;
mod error;
mod firewall;
#[cfg(feature = "services")]
mod identity;
mod input;
mod interfaces;
mod lan;
mod links;
mod metrics;
#[cfg(feature = "services")]
mod names;
#[cfg(feature = "services")]
mod nodeinfo;
pub mod parallel;
mod passwords;
mod peers;
mod privileges;
mod readers;
mod readonly_http;
mod reload;
mod request;
mod router;
mod service_thread;
mod services;
mod trace;
pub mod transport;
mod tun_device;

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{info, warn};

pub use self::error::DriverError;
use self::router::Router;
use self::transport::{Bound, Role, Transport, udp};
use crate::config::{Config, LinkUri};
use crate::core::address::{node_address, node_subnet};
use crate::core::node::{Node, NodeConfig};

/// Inputs waiting for the router; readers wait when it is full, which is the daemon's backpressure.
const INPUT_QUEUE: usize = 4096;

/// What privileged setup produced.
struct Prepared {
    tun: Option<tun_device::PreparedTun>,
    api: Option<api::ApiSocket>,
    listeners: Vec<(LinkUri, Bound)>,
    multicast: Option<std::net::UdpSocket>,
    discovery_links: Option<std::net::UdpSocket>,
    services: services::PreparedServices,
    #[cfg(feature = "services")]
    dns: Option<dns::PreparedDns>,
    #[cfg(feature = "services")]
    apps: Option<apps::PreparedApps>,
    metrics: Option<std::net::TcpListener>,
    status: Vec<std::net::TcpListener>,
}

/// Runs the daemon until SIGTERM or SIGINT. `seed` seeds the core's randomness.
pub fn run(config: Config, seed: [u8; 32]) -> Result<(), DriverError> {
    crate::sys::memory::keep_freed_memory();
    let daemon = config.daemon.clone();
    let key = config.node_key.public_key();
    let prepared = prepare(&config, seed)?;
    privileges::drop_privileges(&daemon)?;
    // Every password of the configuration, stretched once now (Argon2id, slow on purpose): nothing
    // stretches on the way of a datagram.
    let started = std::time::Instant::now();
    let passwords = passwords::PasswordKeys::for_config(&daemon);
    if passwords.len() > 0 {
        info!(
            passwords = passwords.len(),
            ms = started.elapsed().as_millis() as u64,
            "passwords stretched"
        );
    }
    // One thread: the router task does the work and the readers only move bytes, so more threads
    // would only add hand-offs. On the 2-core test machine one thread carries 670 Mbit/s of TCP where
    // two workers carried 480 (netns-tests/t_two_nodes.sh).
    // The router's thread (this one) asks for a short time slice, so that a packet that wakes it
    // takes the CPU from a busy background thread at once (see `sys::thread::ROUTER_SLICE`).
    if let Err(e) = crate::sys::thread::set_scheduling(0, Some(crate::sys::thread::ROUTER_SLICE)) {
        tracing::debug!("the router's thread keeps the default time slice: {e}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DriverError::Runtime)?;
    info!(
        key = %key.to_hex(),
        address = %node_address(&key),
        subnet = %node_subnet(&key),
        "meshrouter {} starting",
        env!("CARGO_PKG_VERSION")
    );
    runtime.block_on(serve(config, seed, prepared, passwords))
}

fn prepare(config: &Config, seed: [u8; 32]) -> Result<Prepared, DriverError> {
    let daemon = &config.daemon;
    // Opened while privileged (the CRDT database lives under /var/lib).
    let services = services::PreparedServices::open(config, seed);
    let address = node_address(&config.node_key.public_key());
    let tun = match &daemon.tun_name {
        Some(name) => Some(tun_device::PreparedTun::open(
            name,
            daemon.tun_mtu,
            address,
        )?),
        None => None,
    };
    let api = match &daemon.api_socket {
        Some(path) => Some(api::bind(path, daemon.api_group.as_deref())?),
        None => None,
    };
    let mut listeners = Vec::new();
    for uri in &daemon.listen {
        let bound = transport::bind_listener(uri).map_err(|source| DriverError::Bind {
            what: "listener",
            address: uri.display(),
            source,
        })?;
        listeners.push((uri.clone(), bound));
    }
    let (multicast, discovery_links) = if daemon.discovery.is_empty() {
        (None, None)
    } else {
        let multicast = discovery::multicast_socket().map_err(|source| DriverError::Bind {
            what: "discovery",
            address: format!("[::]:{}", discovery::BEACON_PORT),
            source,
        })?;
        let port = daemon
            .discovery
            .iter()
            .map(|r| r.port)
            .find(|p| *p != 0)
            .unwrap_or(0);
        let local = (std::net::Ipv6Addr::UNSPECIFIED, port).into();
        let links = udp::bind_std(local, None)
            // Beacons leave from this socket (their source port is the port they advertise); our
            // own must not come back to us.
            .and_then(|s| s.set_multicast_loop_v6(false).map(|()| s))
            .map_err(|source| DriverError::Bind {
                what: "discovery links",
                address: format!("[::]:{port}"),
                source,
            })?;
        (Some(multicast), Some(links))
    };
    #[cfg(feature = "services")]
    let dns = dns::PreparedDns::bind(daemon, &config.node_key.public_key())?;
    #[cfg(feature = "services")]
    let apps = apps::PreparedApps::bind(&daemon.apps)?;
    let bind_http = |what: &'static str, address: std::net::SocketAddr| {
        readonly_http::bind(address).map_err(|source| DriverError::Bind {
            what,
            address: address.to_string(),
            source,
        })
    };
    let metrics = (daemon.metrics_listen)
        .map(|a| bind_http("metrics listener", a))
        .transpose()?;
    let status = (daemon.status_listen.iter())
        .map(|a| bind_http("status listener", *a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Prepared {
        metrics,
        status,
        tun,
        api,
        listeners,
        multicast,
        discovery_links,
        services,
        #[cfg(feature = "services")]
        dns,
        #[cfg(feature = "services")]
        apps,
    })
}

async fn serve(
    config: Config,
    seed: [u8; 32],
    prepared: Prepared,
    mut passwords: passwords::PasswordKeys,
) -> Result<(), DriverError> {
    let clock = clock::Clock::new();
    let public_key = config.node_key.public_key();
    #[cfg(feature = "services")]
    if let Some(dns) = prepared.dns {
        dns.start(prepared.services.name_feed());
    }
    let services = service_thread::start(prepared.services, &config, seed, clock);
    let group_password = (config.daemon.group_password.as_deref()).map(|p| passwords.stretch(p));
    let tls = transport::tls::TlsConfig::new(&config.node_key).map_err(DriverError::Tls)?;
    let node = Node::new(
        config.node_key,
        NodeConfig {
            seq_base: clock::wall_micros(),
            group_password,
            session_aes_gcm: cpu::has_aes_instructions(),
        },
        seed,
        clock.now(),
    );
    let (inputs, receiver) = mpsc::channel(INPUT_QUEUE);
    let tun = prepared.tun.map(|t| t.activate()).transpose()?;
    if let Some(tun) = &tun {
        tokio::spawn(readers::tun(tun.device.clone(), inputs.clone()));
        info!(interface = %tun.name, mtu = tun.mtu, "TUN device up");
    }
    let bind_error = |what, source| DriverError::Bind {
        what,
        address: String::new(),
        source,
    };
    let multicast = match prepared.multicast {
        Some(s) => Some(Arc::new(
            tokio::net::UdpSocket::from_std(s).map_err(|e| bind_error("discovery", e))?,
        )),
        None => None,
    };
    if let Some(m) = &multicast {
        tokio::spawn(readers::beacons(m.clone(), inputs.clone()));
    }
    let discovery = discovery::Discovery::new(multicast, None, 0, clock.now());
    let lan = lan::LanGateway::start(
        &lan::LanSettings {
            interfaces: config.daemon.lan.clone(),
            default_route: config.daemon.lan_default_route,
            dns: announces_dns(&config.daemon, &public_key),
        },
        &public_key,
        clock,
        seed,
    );
    let mut router = Router::new(
        node,
        clock,
        config.daemon,
        passwords,
        tun,
        inputs.clone(),
        discovery,
        services,
        tls.clone(),
        api::dispatch,
    );
    for (uri, bound) in prepared.listeners {
        router
            .start_listener(uri, bound)
            .map_err(|e| bind_error("listener", e))?;
    }
    if let Some(socket) = prepared.discovery_links {
        let socket = udp_endpoint(socket).map_err(|e| bind_error("discovery links", e))?;
        let port = socket.socket.local_addr().map(|a| a.port()).unwrap_or(0);
        let reader_inputs = inputs.clone();
        let id = router.add_endpoint(Role::Discovery, |id| {
            let reader = tokio::spawn(udp::read(id, socket.clone(), reader_inputs));
            (Transport::Udp(socket), reader)
        });
        router.discovery.endpoint = Some(id);
        router.discovery.port = port;
        info!(port, "discovery on");
    }
    if let Some(socket) = prepared.api {
        tokio::spawn(api::serve(socket, inputs.clone()));
    }
    #[cfg(feature = "services")]
    if let Some(apps) = prepared.apps {
        apps.start(inputs.clone(), public_key);
    }
    if let Some(listener) = prepared.metrics {
        if let Ok(address) = listener.local_addr() {
            info!(%address, "metrics on http://{address}/metrics");
        }
        let site = readonly_http::Site::Metrics;
        tokio::spawn(readonly_http::serve(site, listener, inputs.clone()));
    }
    for listener in prepared.status {
        if let Ok(address) = listener.local_addr() {
            info!(%address, "status page on http://{address}/");
        }
        let site = readonly_http::Site::Status;
        tokio::spawn(readonly_http::serve(site, listener, inputs.clone()));
    }
    let mut hangup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let reload_inputs = inputs.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            info!("SIGHUP: reading the configuration again");
            if reload_inputs
                .send(input::Input::Reload(None))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    drop(inputs);
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt())?;
    // Under systemd (Type=notify): the TUN device, sockets and API are up.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    tokio::spawn(release_startup_code());
    tokio::select! {
        () = router.run(receiver) => warn!("router stopped"),
        _ = terminate.recv() => info!("SIGTERM: stopping"),
        _ = interrupt.recv() => info!("SIGINT: stopping"),
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    lan.stop().await;
    Ok(())
}

/// Whether LAN devices are told to use this node's DNS responder: it runs and listens on the LAN
/// address.
fn announces_dns(daemon: &crate::config::Daemon, key: &crate::core::identity::PublicKey) -> bool {
    #[cfg(feature = "services")]
    {
        let lan_dns = (lan::gateway_address(key), crate::config::DNS_PORT).into();
        daemon.dns.runs(&daemon.lan) && dns::listen_addresses(daemon, key).contains(&lan_dns)
    }
    #[cfg(not(feature = "services"))]
    {
        let _ = (daemon, key);
        false
    }
}

/// Unmaps the code that only starting up ran (see [`crate::sys::memory::release_startup_code`]) and
/// returns the heap it freed: once now, and once more when the first links and sessions are set up.
async fn release_startup_code() {
    for wait in [
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(10),
    ] {
        tokio::time::sleep(wait).await;
        match crate::sys::memory::release_startup_code() {
            Ok(bytes) => tracing::debug!(bytes, "start-up code unmapped"),
            Err(e) => tracing::debug!(error = %e, "start-up code left mapped"),
        }
        crate::sys::memory::release_free_heap();
    }
}

/// Registers a socket bound during setup with the runtime, with its batching state.
fn udp_endpoint(socket: std::net::UdpSocket) -> std::io::Result<Arc<udp::UdpEndpoint>> {
    tokio::net::UdpSocket::from_std(socket)
        .and_then(udp::UdpEndpoint::new)
        .map(Arc::new)
}

fn signal(
    kind: tokio::signal::unix::SignalKind,
) -> Result<tokio::signal::unix::Signal, DriverError> {
    tokio::signal::unix::signal(kind).map_err(DriverError::Runtime)
}
