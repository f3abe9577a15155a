//! The TUN device: node address with prefix /7, routes for `200::/7` (through the address) and
//! `300::/8`, and the configured MTU.

use std::net::Ipv6Addr;
use std::sync::Arc;

use super::DriverError;

/// An open, configured TUN device. Closing it (drop) removes the interface, its address and routes.
pub(crate) struct TunDevice {
    pub(crate) name: String,
    pub(crate) mtu: u16,
    pub(crate) device: Arc<tun::AsyncDevice>,
}

/// A TUN device created and configured before the async runtime exists (privileged setup).
pub(crate) struct PreparedTun {
    name: String,
    mtu: u16,
    device: tun::Device,
}

impl PreparedTun {
    /// Registers the device with the runtime; must run inside it.
    pub(crate) fn activate(self) -> Result<TunDevice, DriverError> {
        let device = tun::AsyncDevice::new(self.device).map_err(|e| DriverError::Tun {
            name: self.name.clone(),
            reason: e.to_string(),
        })?;
        Ok(TunDevice {
            name: self.name,
            mtu: self.mtu,
            device: Arc::new(device),
        })
    }
}

impl PreparedTun {
    /// Creates the interface `name` and configures it. Fails cleanly if the name is taken by another
    /// process's TUN device or we lack `CAP_NET_ADMIN`.
    pub(crate) fn open(name: &str, mtu: u16, address: Ipv6Addr) -> Result<Self, DriverError> {
        let fail = |reason: String| DriverError::Tun {
            name: name.to_owned(),
            reason,
        };
        let mut config = tun::Configuration::default();
        // The crate applies MTU and "up" only with `ensure_root_privileges` (its name for "configure
        // the interface"); it needs CAP_NET_ADMIN, not uid 0.
        config.tun_name(name).mtu(mtu).up();
        config.platform_config(|p| {
            p.ensure_root_privileges(true);
            p.vnet_hdr(true);
        });
        let device = tun::create(&config).map_err(|e| {
            let text = e.to_string();
            if text.contains("Device or resource busy") || text.contains("os error 16") {
                fail("already in use by another process (another meshrouter running?)".into())
            } else if text.contains("os error 1)") || text.contains("os error 13)") {
                fail(format!(
                    "{text}: needs root or CAP_NET_ADMIN, and read-write access to /dev/net/tun"
                ))
            } else {
                fail(text)
            }
        })?;
        // Without offloads the device still works (reads then carry a virtio header that asks for
        // nothing); only slower.
        match crate::sys::netdev::enable_tun_offloads(&device) {
            Ok(uso) => tracing::debug!(interface = name, uso, "TUN offloads on"),
            Err(e) => tracing::warn!(
                interface = name,
                "TUN offloads unavailable, continuing without: {e}"
            ),
        }
        let index = nix::net::if_::if_nametoindex(name)
            .map_err(|e| fail(format!("interface vanished: {e}")))?;
        disable_dad(name);
        crate::sys::netdev::add_address(index, address, 7)
            .map_err(|e| fail(format!("adding address {address}/7: {e}")))?;
        let subnet_route = Ipv6Addr::new(0x300, 0, 0, 0, 0, 0, 0, 0);
        crate::sys::netdev::add_route(index, subnet_route, 8)
            .map_err(|e| fail(format!("adding route {subnet_route}/8: {e}")))?;
        Ok(Self {
            name: name.to_owned(),
            mtu,
            device,
        })
    }
}

/// The address is ours by construction (derived from our key), so duplicate address detection would
/// only delay its use; TUN devices skip it anyway, this makes sure.
fn disable_dad(name: &str) {
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/accept_dad"), "0");
}
