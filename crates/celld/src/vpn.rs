//! The VPN from the settings: what the kernel should hold (device, addresses, firewall;
//! pure functions the reconciler's appliers plan with), the views the API shows and the
//! client configurations it hands out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use cell_model::api::{ApplierState, PeerLive, PeerView, VpnView};
use cell_model::net::{UlaPrefix, WgPublicKey};
use cell_model::settings::DomainMode;
use cell_model::vpn::{EndpointHost, Peer, Service, Vpn};
use cell_model::Settings;
use cell_secrets::SecretStore;
use cell_wg::{DesiredDevice, DesiredPeer, LiveDevice};

/// The server's private key in the secret store.
pub const SERVER_KEY: &str = "wg-server";

/// The secret-store name of a peer's private key (kept when the cell generated it).
pub fn peer_key_name(public_key: &WgPublicKey) -> String {
    format!("peer-{}", hex::encode(public_key.as_bytes()))
}

/// A fresh VPN section with a random RFC 4193 prefix.
pub fn new_vpn() -> Vpn {
    let global_id: [u8; 5] = rand::Rng::random(&mut rand::rng());
    Vpn::new(UlaPrefix::from_random(global_id, 1))
}

/// The server's key pair in memory; Debug never shows the private half.
#[derive(Clone)]
pub struct ServerKey {
    private: [u8; 32],
    public: [u8; 32],
}

impl ServerKey {
    pub fn new(private: [u8; 32]) -> Self {
        Self {
            public: cell_wg::public_key(&private),
            private,
        }
    }

    pub fn public(&self) -> [u8; 32] {
        self.public
    }
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerKey(public {})", cell_wg::key_base64(&self.public))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerKeyError {
    #[error(transparent)]
    Secrets(#[from] cell_secrets::SecretError),
    #[error("secret {SERVER_KEY} is not a 32-byte key")]
    Malformed,
}

/// The server's key pair, generated and stored on first use.
pub fn server_key(secrets: &SecretStore) -> Result<ServerKey, ServerKeyError> {
    if let Some(bytes) = secrets.get(SERVER_KEY)? {
        let private: [u8; 32] = bytes
            .expose()
            .try_into()
            .map_err(|_| ServerKeyError::Malformed)?;
        return Ok(ServerKey::new(private));
    }
    let (private, _) = cell_wg::generate_keypair();
    secrets.put(SERVER_KEY, &private)?;
    tracing::info!("generated the WireGuard server key");
    Ok(ServerKey::new(private))
}

/// Whether a peer's traffic is let in: the peer and its owner are enabled.
fn active(settings: &Settings, peer: &Peer) -> bool {
    peer.enabled && settings.user(&peer.owner).is_some_and(|u| !u.disabled)
}

/// The VPN as the kernel should see it: peers of disabled or deleted users count as
/// disabled.
fn effective(settings: &Settings, vpn: &Vpn) -> Vpn {
    let mut vpn = vpn.clone();
    for peer in &mut vpn.peers {
        peer.enabled = active(settings, peer);
    }
    vpn
}

/// The `inet cell` table for the settings' VPN on `interface`. Before setup there is no
/// VPN yet, but the table stands from first boot all the same (for a VPN with no devices):
/// forwarding is on, and the table's default-drop forward chain is what guards it. The
/// DAV machine's ports on the loopback are the front door's (`front_door_uid`) alone.
pub fn firewall_plan(
    settings: &Settings,
    interface: &str,
    front_door_uid: u32,
) -> cell_firewall::Plan {
    let vpn = match settings.vpn.as_ref() {
        Some(vpn) => effective(settings, vpn),
        None => Vpn::new(UlaPrefix::from_random([0; 5], 1)),
    };
    let plan = cell_firewall::Plan::new(&vpn, interface).with_front_door_only(
        front_door_uid,
        &[
            cell_render::dav::CALENDAR_PORT,
            cell_render::dav::FILES_PORT,
        ],
    );
    if settings.services.mail {
        plan.with_redirects(Service::Mail, &cell_render::mail::PORTS)
    } else {
        plan
    }
}

/// The WireGuard device: the server key, the port, and a peer for every active device.
pub fn device_plan(settings: &Settings, interface: &str, key: &ServerKey) -> Option<DesiredDevice> {
    let vpn = effective(settings, settings.vpn.as_ref()?);
    let peers = vpn
        .peers
        .iter()
        .filter(|p| p.enabled)
        .map(|peer| {
            let mut allowed_ips = BTreeSet::new();
            if let Some(address) = vpn.peer_address4(peer) {
                allowed_ips.insert((IpAddr::V4(address), 32));
            }
            allowed_ips.insert((IpAddr::V6(vpn.peer_address6(peer)), 128));
            DesiredPeer {
                public_key: *peer.public_key.as_bytes(),
                allowed_ips,
                keepalive: peer.keepalive,
            }
        })
        .collect();
    Some(DesiredDevice {
        name: interface.to_owned(),
        private_key: key.private,
        listen_port: vpn.listen_port,
        peers,
    })
}

/// The device's addresses: the gateway in both families and every service's address.
pub fn address_plan(settings: &Settings) -> Option<BTreeSet<(IpAddr, u8)>> {
    let vpn = settings.vpn.as_ref()?;
    let mut addresses: BTreeSet<(IpAddr, u8)> = BTreeSet::new();
    addresses.insert((IpAddr::V4(vpn.gateway4()), vpn.subnet4.prefix()));
    addresses.insert((IpAddr::V6(vpn.gateway6()), 64));
    for service in Service::ALL {
        if let Some(address) = vpn.service4(service) {
            addresses.insert((IpAddr::V4(address), 32));
        }
        addresses.insert((IpAddr::V6(vpn.service6(service)), 128));
    }
    Some(addresses)
}

fn live_view(peer: &Peer, device: Option<&LiveDevice>) -> Option<PeerLive> {
    let live = device?
        .peers
        .iter()
        .find(|p| &p.public_key == peer.public_key.as_bytes())?;
    Some(PeerLive {
        last_handshake: live.last_handshake,
        rx_bytes: live.rx_bytes,
        tx_bytes: live.tx_bytes,
        endpoint: live.endpoint.map(|e| e.to_string()),
    })
}

pub fn peer_view(vpn: &Vpn, peer: &Peer, device: Option<&LiveDevice>) -> PeerView {
    PeerView {
        name: peer.name.clone(),
        owner: peer.owner.clone(),
        public_key: peer.public_key,
        address4: vpn
            .peer_address4(peer)
            .map(|a| a.to_string())
            .unwrap_or_default(),
        address6: vpn.peer_address6(peer).to_string(),
        access: peer.access,
        internet_exit: peer.internet_exit,
        lan_access: peer.lan_access,
        keepalive: peer.keepalive,
        enabled: peer.enabled,
        key_on_cell: peer.key_on_cell,
        live: live_view(peer, device),
    }
}

/// A handshake within this many seconds counts as connected (WireGuard rekeys every 2 min).
const CONNECTED_WITHIN: u64 = 180;

pub fn vpn_view(
    vpn: &Vpn,
    interface: &str,
    server_public: Option<WgPublicKey>,
    device: Option<&LiveDevice>,
    reconcile: Vec<ApplierState>,
    pending_change: Option<cell_model::api::PendingChange>,
    now: u64,
) -> VpnView {
    let services: BTreeMap<String, String> = Service::ALL
        .iter()
        .filter_map(|s| Some((s.as_str().to_owned(), vpn.service4(*s)?.to_string())))
        .collect();
    let connected = device
        .map(|d| {
            d.peers
                .iter()
                .filter(|p| {
                    p.last_handshake
                        .is_some_and(|t| now.saturating_sub(t) < CONNECTED_WITHIN)
                })
                .count()
        })
        .unwrap_or(0);
    VpnView {
        interface: interface.to_owned(),
        backend: device
            .map(|d| d.backend.as_str().to_owned())
            .unwrap_or_else(|| "not running".to_owned()),
        public_key: server_public,
        listen_port: vpn.listen_port,
        endpoint: vpn.endpoint.as_ref().map(ToString::to_string),
        subnet4: vpn.subnet4.to_string(),
        prefix6: vpn.prefix6.to_string(),
        gateway4: vpn.gateway4().to_string(),
        gateway6: vpn.gateway6().to_string(),
        services,
        peers: vpn.peers.len(),
        peers_connected: connected,
        reconcile,
        pending_change,
    }
}

/// What clients dial: the configured endpoint, else the cell's own public name.
pub fn endpoint(settings: &Settings, vpn: &Vpn) -> Option<String> {
    let host = match (&vpn.endpoint, &settings.identity.domain) {
        (Some(host), _) => host.to_string(),
        (None, DomainMode::Own { domain }) => EndpointHost::Name(domain.clone()).to_string(),
        (None, DomainMode::Dynamic { hostname, .. }) => hostname.to_string(),
        (None, DomainMode::Internal) => return None,
    };
    Some(format!("{host}:{}", vpn.listen_port))
}

/// The client's wg-quick configuration. `lan` are the cell's LAN networks, routed through
/// the tunnel for peers with LAN access; names resolve through the cell's DNS server at its
/// VPN address, with `zone` as the search domain.
pub fn client_config(
    zone: &str,
    vpn: &Vpn,
    peer: &Peer,
    endpoint: String,
    server_public: [u8; 32],
    private_key: Option<[u8; 32]>,
    lan: &[(IpAddr, u8)],
) -> cell_wg::ClientConfig {
    let mut addresses = Vec::new();
    if let Some(address) = vpn.peer_address4(peer) {
        addresses.push((IpAddr::V4(address), 32));
    }
    addresses.push((IpAddr::V6(vpn.peer_address6(peer)), 128));
    let mut allowed_ips = vec![
        (IpAddr::V4(vpn.subnet4.network()), vpn.subnet4.prefix()),
        (IpAddr::V6(vpn.prefix6.host(0)), 64),
    ];
    if peer.lan_access {
        allowed_ips.extend(lan.iter().copied());
    }
    if peer.internet_exit {
        allowed_ips = vec![
            (IpAddr::from([0, 0, 0, 0]), 0),
            (IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0),
        ];
    }
    cell_wg::ClientConfig {
        private_key,
        addresses,
        dns: vec![IpAddr::V4(vpn.gateway4()), IpAddr::V6(vpn.gateway6())],
        search: vec![zone.to_owned()],
        server_public_key: server_public,
        endpoint,
        allowed_ips,
        keepalive: peer.keepalive,
    }
}

/// The networks of `addresses` (host bits cleared), IPv4 private ones only: what a peer
/// with LAN access is routed to.
pub fn lan_networks(addresses: &[(String, IpAddr, u8)]) -> Vec<(IpAddr, u8)> {
    let mut networks = BTreeSet::new();
    for (_, address, prefix) in addresses {
        if let IpAddr::V4(v4) = address {
            if v4.is_private() && *prefix >= 8 && *prefix <= 30 {
                let mask = u32::MAX << (32 - u32::from(*prefix));
                networks.insert((IpAddr::V4((u32::from(*v4) & mask).into()), *prefix));
            }
        }
    }
    networks.into_iter().collect()
}
