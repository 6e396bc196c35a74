//! The server device: created on first use (kernel WireGuard, or wireguard-go over its
//! UAPI socket where the kernel has none), then kept at the desired key, port and peers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::UNIX_EPOCH;

use wireguard_control::{
    AllowedIp, Backend, Device, DeviceUpdate, InterfaceName, Key, PeerConfig, PeerConfigBuilder,
};

#[derive(Debug, thiserror::Error)]
pub enum WgError {
    #[error("'{0}' is not a valid interface name")]
    BadName(String),
    #[error("{action} {interface}: {source}")]
    Device {
        action: &'static str,
        interface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("neither kernel WireGuard nor wireguard-go is available for {interface}: kernel: {kernel}; userspace: {userspace}")]
    NoBackend {
        interface: String,
        kernel: std::io::Error,
        userspace: std::io::Error,
    },
}

/// Which implementation runs the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WgBackend {
    Kernel,
    /// wireguard-go, driven over /run/wireguard/<name>.sock.
    Userspace,
}

impl WgBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Userspace => "userspace",
        }
    }

    fn library(self) -> Backend {
        match self {
            Self::Kernel => Backend::Kernel,
            Self::Userspace => Backend::Userspace,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPeer {
    pub public_key: [u8; 32],
    pub allowed_ips: BTreeSet<(IpAddr, u8)>,
    /// Seconds; 0 for none.
    pub keepalive: u16,
}

#[derive(Clone)]
pub struct DesiredDevice {
    pub name: String,
    pub private_key: [u8; 32],
    pub listen_port: u16,
    pub peers: Vec<DesiredPeer>,
}

impl std::fmt::Debug for DesiredDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesiredDevice")
            .field("name", &self.name)
            .field("private_key", &"<redacted>")
            .field("listen_port", &self.listen_port)
            .field("peers", &self.peers.len())
            .finish()
    }
}

/// The minimal change from the live peers to the desired ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerDiff {
    pub add: Vec<DesiredPeer>,
    pub update: Vec<DesiredPeer>,
    pub remove: Vec<[u8; 32]>,
}

impl PeerDiff {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }
}

fn live_allowed(peer: &PeerConfig) -> BTreeSet<(IpAddr, u8)> {
    peer.allowed_ips
        .iter()
        .map(|a| (a.address, a.cidr))
        .collect()
}

/// Compares live peers with desired ones by public key.
pub fn diff(live: &[PeerConfig], desired: &[DesiredPeer]) -> PeerDiff {
    let live: BTreeMap<[u8; 32], &PeerConfig> = live.iter().map(|p| (p.public_key.0, p)).collect();
    let wanted: BTreeSet<[u8; 32]> = desired.iter().map(|p| p.public_key).collect();
    let mut result = PeerDiff::default();
    for peer in desired {
        match live.get(&peer.public_key) {
            None => result.add.push(peer.clone()),
            Some(current) => {
                let keepalive = current.persistent_keepalive_interval.unwrap_or(0);
                if live_allowed(current) != peer.allowed_ips || keepalive != peer.keepalive {
                    result.update.push(peer.clone());
                }
            }
        }
    }
    result.remove = live
        .keys()
        .filter(|k| !wanted.contains(*k))
        .copied()
        .collect();
    result
}

fn builder(peer: &DesiredPeer) -> PeerConfigBuilder {
    let allowed: Vec<AllowedIp> = peer
        .allowed_ips
        .iter()
        .map(|(address, cidr)| AllowedIp {
            address: *address,
            cidr: *cidr,
        })
        .collect();
    let builder = PeerConfigBuilder::new(&Key(peer.public_key))
        .replace_allowed_ips()
        .add_allowed_ips(&allowed);
    if peer.keepalive == 0 {
        builder.unset_persistent_keepalive()
    } else {
        builder.set_persistent_keepalive_interval(peer.keepalive)
    }
}

/// What a reconcile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub backend: WgBackend,
    pub created: bool,
    pub device_changed: bool,
    pub diff: PeerDiff,
}

impl Report {
    pub fn changed(&self) -> bool {
        self.created || self.device_changed || !self.diff.is_empty()
    }
}

fn interface(name: &str) -> Result<InterfaceName, WgError> {
    name.parse().map_err(|_| WgError::BadName(name.to_owned()))
}

/// The live device and the backend it runs on, if it exists.
fn find(name: &InterfaceName) -> Option<(WgBackend, Device)> {
    for backend in [WgBackend::Kernel, WgBackend::Userspace] {
        if let Ok(device) = Device::get(name, backend.library()) {
            return Some((backend, device));
        }
    }
    None
}

/// Brings the device `desired.name` to the desired state, creating it if needed.
pub fn reconcile(desired: &DesiredDevice) -> Result<Report, WgError> {
    let name = interface(&desired.name)?;
    let Some((backend, live)) = find(&name) else {
        return create(&name, desired);
    };
    let mut update = DeviceUpdate::new();
    let mut device_changed = false;
    if live.private_key.map(|k| k.0) != Some(desired.private_key) {
        update = update.set_private_key(Key(desired.private_key));
        device_changed = true;
    }
    if live.listen_port != Some(desired.listen_port) {
        update = update.set_listen_port(desired.listen_port);
        device_changed = true;
    }
    let live_peers: Vec<PeerConfig> = live.peers.into_iter().map(|p| p.config).collect();
    let diff = diff(&live_peers, &desired.peers);
    for key in &diff.remove {
        update = update.remove_peer_by_key(&Key(*key));
    }
    for peer in diff.add.iter().chain(&diff.update) {
        update = update.add_peer(builder(peer));
    }
    if device_changed || !diff.is_empty() {
        update
            .apply(&name, backend.library())
            .map_err(|source| WgError::Device {
                action: "configuring",
                interface: desired.name.clone(),
                source,
            })?;
    }
    Ok(Report {
        backend,
        created: false,
        device_changed,
        diff,
    })
}

fn full_update(desired: &DesiredDevice) -> DeviceUpdate {
    let peers: Vec<PeerConfigBuilder> = desired.peers.iter().map(builder).collect();
    DeviceUpdate::new()
        .set_private_key(Key(desired.private_key))
        .set_listen_port(desired.listen_port)
        .replace_peers()
        .add_peers(&peers)
}

fn create(name: &InterfaceName, desired: &DesiredDevice) -> Result<Report, WgError> {
    let report = |backend| Report {
        backend,
        created: true,
        device_changed: true,
        diff: PeerDiff {
            add: desired.peers.clone(),
            ..PeerDiff::default()
        },
    };
    let kernel = match full_update(desired).apply(name, Backend::Kernel) {
        Ok(()) => {
            tracing::info!(interface = %desired.name, backend = "kernel", "created the WireGuard device");
            return Ok(report(WgBackend::Kernel));
        }
        Err(error) => error,
    };
    // The kernel may have made the link before refusing the configuration.
    let _ = Device::get(name, Backend::Kernel).map(Device::delete);
    match full_update(desired).apply(name, Backend::Userspace) {
        Ok(()) => {
            tracing::warn!(interface = %desired.name, kernel_error = %kernel,
                "this kernel has no WireGuard; running the device on wireguard-go (userspace)");
            Ok(report(WgBackend::Userspace))
        }
        Err(userspace) => Err(WgError::NoBackend {
            interface: desired.name.clone(),
            kernel,
            userspace,
        }),
    }
}

/// Removes the device, whichever backend runs it.
pub fn remove_device(name: &str) -> Result<bool, WgError> {
    let interface_name = interface(name)?;
    let Some((backend, device)) = find(&interface_name) else {
        return Ok(false);
    };
    if backend == WgBackend::Userspace {
        // Removing the UAPI socket makes wireguard-go shut the device down.
        let socket = Path::new("/var/run/wireguard").join(format!("{name}.sock"));
        let _ = std::fs::remove_file(socket);
        return Ok(true);
    }
    device.delete().map_err(|source| WgError::Device {
        action: "removing",
        interface: name.to_owned(),
        source,
    })?;
    Ok(true)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePeer {
    pub public_key: [u8; 32],
    pub endpoint: Option<SocketAddr>,
    /// Seconds since the Unix epoch.
    pub last_handshake: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveDevice {
    pub backend: WgBackend,
    pub public_key: Option<[u8; 32]>,
    pub listen_port: Option<u16>,
    pub peers: Vec<LivePeer>,
}

/// The device as it runs now, or `None` when it does not exist.
pub fn status(name: &str) -> Result<Option<LiveDevice>, WgError> {
    let name = interface(name)?;
    Ok(find(&name).map(|(backend, device)| LiveDevice {
        backend,
        public_key: device.public_key.map(|k| k.0),
        listen_port: device.listen_port,
        peers: device
            .peers
            .into_iter()
            .map(|p| LivePeer {
                public_key: p.config.public_key.0,
                endpoint: p.config.endpoint,
                last_handshake: p
                    .stats
                    .last_handshake_time
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
                    .filter(|s| *s > 0),
                rx_bytes: p.stats.rx_bytes,
                tx_bytes: p.stats.tx_bytes,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(key: u8, ips: &[(&str, u8)], keepalive: Option<u16>) -> PeerConfig {
        let mut info = wireguard_control::PeerInfo::from_public_key(Key([key; 32]));
        info.config.allowed_ips = ips
            .iter()
            .map(|(a, c)| AllowedIp {
                address: a.parse().unwrap(),
                cidr: *c,
            })
            .collect();
        info.config.persistent_keepalive_interval = keepalive;
        info.config
    }

    fn desired(key: u8, ips: &[(&str, u8)], keepalive: u16) -> DesiredPeer {
        DesiredPeer {
            public_key: [key; 32],
            allowed_ips: ips.iter().map(|(a, c)| (a.parse().unwrap(), *c)).collect(),
            keepalive,
        }
    }

    #[test]
    fn diff_is_minimal_and_keyed_by_public_key() {
        let live = [
            live(1, &[("10.87.0.16", 32)], None),
            live(2, &[("10.87.0.17", 32)], Some(25)),
            live(3, &[("10.87.0.18", 32)], None),
        ];
        let wanted = [
            desired(1, &[("10.87.0.16", 32)], 0),
            desired(2, &[("10.87.0.17", 32), ("fd00::11", 128)], 25),
            desired(4, &[("10.87.0.19", 32)], 0),
        ];
        let diff = diff(&live, &wanted);
        assert_eq!(diff.add, vec![wanted[2].clone()]);
        assert_eq!(diff.update, vec![wanted[1].clone()]);
        assert_eq!(diff.remove, vec![[3; 32]]);
    }

    #[test]
    fn identical_peers_need_no_change() {
        let live = [live(1, &[("10.87.0.16", 32), ("fd00::10", 128)], Some(0))];
        let wanted = [desired(1, &[("fd00::10", 128), ("10.87.0.16", 32)], 0)];
        assert!(diff(&live, &wanted).is_empty());
    }
}
