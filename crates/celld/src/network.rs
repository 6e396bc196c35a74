//! What celld asks of the kernel for the VPN: the WireGuard device and its peers, the
//! addresses on it, and the `inet cell` nftables table. Behind a trait so that tests and
//! development runs record the requests instead of changing the machine they run on.
//! Each operation observes the live state and makes the smallest change; the reconciler's
//! appliers decide what to ask and in which order.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use cell_firewall::{Firewall, Live};
use cell_wg::{DesiredDevice, LiveDevice};
use tokio::sync::OnceCell;

use crate::sync::lock;

pub type NetFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, NetworkError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    WireGuard(#[from] cell_wg::WgError),
    #[error(transparent)]
    Links(#[from] cell_net::NetError),
    #[error(transparent)]
    Firewall(#[from] cell_firewall::FirewallError),
    #[error("there is no link {interface}")]
    NoLink { interface: String },
    #[error("a worker thread failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
    /// A failure a test asked for.
    #[error("{0} (simulated)")]
    Simulated(&'static str),
}

/// What API requests may read of the kernel's state.
pub trait LiveNetwork: Send + Sync + std::fmt::Debug {
    fn device<'a>(&'a self, interface: &'a str) -> NetFuture<'a, Option<LiveDevice>>;
    /// The live table as text, and parsed.
    fn firewall(&self) -> NetFuture<'_, (String, Live)>;
    /// Addresses on every link but `except`: (link, address, prefix).
    fn local_networks<'a>(&'a self, except: &'a str) -> NetFuture<'a, Vec<(String, IpAddr, u8)>>;
}

/// The changes only the reconciler's appliers make.
pub trait Network: LiveNetwork {
    /// Brings the WireGuard device to `device` (created if absent; peers diffed by key).
    fn apply_device<'a>(&'a self, device: &'a DesiredDevice) -> NetFuture<'a, cell_wg::Report>;
    /// Makes `addresses` the exact address list of `interface`, and brings it up.
    fn apply_addresses<'a>(
        &'a self,
        interface: &'a str,
        addresses: &'a BTreeSet<(IpAddr, u8)>,
    ) -> NetFuture<'a, cell_net::Changes>;
    /// Brings table `inet cell` to `plan`. With `verify`, the live table is compared with
    /// the plan instead of trusting the last write.
    fn apply_firewall<'a>(
        &'a self,
        plan: &'a cell_firewall::Plan,
        verify: bool,
    ) -> NetFuture<'a, cell_firewall::Applied>;
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, NetworkError> + Send + 'static,
) -> Result<T, NetworkError> {
    tokio::task::spawn_blocking(work).await?
}

/// The real kernel: wireguard-control, rtnetlink and nftables.
#[derive(Debug, Default)]
pub struct KernelNetwork {
    firewall: Arc<Mutex<Firewall>>,
    net: OnceCell<cell_net::Net>,
}

impl KernelNetwork {
    async fn net(&self) -> Result<&cell_net::Net, NetworkError> {
        Ok(self
            .net
            .get_or_try_init(|| async { cell_net::Net::connect() })
            .await?)
    }
}

impl Network for KernelNetwork {
    fn apply_device<'a>(&'a self, device: &'a DesiredDevice) -> NetFuture<'a, cell_wg::Report> {
        let device = device.clone();
        Box::pin(blocking(move || Ok(cell_wg::reconcile(&device)?)))
    }

    fn apply_addresses<'a>(
        &'a self,
        interface: &'a str,
        addresses: &'a BTreeSet<(IpAddr, u8)>,
    ) -> NetFuture<'a, cell_net::Changes> {
        Box::pin(async move {
            let net = self.net().await?;
            let link = net
                .link(interface)
                .await?
                .ok_or_else(|| NetworkError::NoLink {
                    interface: interface.to_owned(),
                })?;
            Ok(net.sync_link(interface, &link, addresses).await?)
        })
    }

    fn apply_firewall<'a>(
        &'a self,
        plan: &'a cell_firewall::Plan,
        verify: bool,
    ) -> NetFuture<'a, cell_firewall::Applied> {
        let firewall = self.firewall.clone();
        let plan = plan.clone();
        Box::pin(blocking(move || {
            let mut firewall = lock(&firewall);
            Ok(if verify {
                firewall.verify(plan)?
            } else {
                firewall.apply(plan)?
            })
        }))
    }
}

impl LiveNetwork for KernelNetwork {
    fn device<'a>(&'a self, interface: &'a str) -> NetFuture<'a, Option<LiveDevice>> {
        let interface = interface.to_owned();
        Box::pin(blocking(move || Ok(cell_wg::status(&interface)?)))
    }

    fn firewall(&self) -> NetFuture<'_, (String, Live)> {
        Box::pin(blocking(|| {
            let text = cell_firewall::ruleset_text()?;
            let live = cell_firewall::read_live()?;
            Ok((text, live))
        }))
    }

    fn local_networks<'a>(&'a self, except: &'a str) -> NetFuture<'a, Vec<(String, IpAddr, u8)>> {
        Box::pin(async move {
            let all = self.net().await?.all_addresses().await?;
            Ok(all
                .into_iter()
                .filter(|(link, address, _)| {
                    link != except && link != "lo" && !address.is_loopback()
                })
                .collect())
        })
    }
}

/// Keeps what it is asked for instead of changing the machine, and reports a fixed LAN.
/// Tests read back the live state it holds, and can make the firewall refuse writes.
#[derive(Debug)]
pub struct RecordedNetwork {
    state: Mutex<RecordedState>,
    pub lan: Mutex<Vec<(String, IpAddr, u8)>>,
    /// While true, changes wait (a slow kernel, for tests of who waits for whom).
    held: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct RecordedState {
    device: Option<DesiredDevice>,
    addresses: BTreeSet<(IpAddr, u8)>,
    firewall: Option<cell_firewall::Plan>,
    firewall_refuses: bool,
    /// Every request, in order: `device`, `addresses`, `firewall`.
    requests: Vec<&'static str>,
}

impl Default for RecordedNetwork {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            held: tokio::sync::watch::Sender::new(false),
            lan: Mutex::new(vec![(
                "eth0".to_owned(),
                IpAddr::from([192, 168, 1, 10]),
                24,
            )]),
        }
    }
}

impl RecordedNetwork {
    /// The WireGuard device as last configured.
    pub fn live_device(&self) -> Option<DesiredDevice> {
        lock(&self.state).device.clone()
    }

    /// The firewall table as last written.
    pub fn live_firewall(&self) -> Option<cell_firewall::Plan> {
        lock(&self.state).firewall.clone()
    }

    pub fn live_addresses(&self) -> BTreeSet<(IpAddr, u8)> {
        lock(&self.state).addresses.clone()
    }

    /// How many requests of each kind were made.
    pub fn requests(&self, kind: &str) -> usize {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| **r == kind)
            .count()
    }

    /// Holds every change back until released: the reconciler's pass waits, and nothing
    /// else should.
    pub fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }

    /// Makes firewall writes fail (as a locked table or a missing nft would) or work again.
    pub fn refuse_firewall(&self, refuse: bool) {
        lock(&self.state).firewall_refuses = refuse;
    }
}

impl RecordedNetwork {
    /// Waits while changes are held back (see [`RecordedNetwork::hold`]).
    async fn released(&self) {
        let mut held = self.held.subscribe();
        // The sender lives in self.
        let _ = held.wait_for(|held| !*held).await;
    }

    fn record_device(&self, device: &DesiredDevice) -> cell_wg::Report {
        let mut state = lock(&self.state);
        state.requests.push("device");
        let live = state
            .device
            .as_ref()
            .map(|d| d.peers.clone())
            .unwrap_or_default();
        let report = cell_wg::Report {
            backend: cell_wg::WgBackend::Userspace,
            created: state.device.is_none(),
            device_changed: state
                .device
                .as_ref()
                .map(|d| (d.private_key, d.listen_port))
                != Some((device.private_key, device.listen_port)),
            diff: peer_diff(&live, &device.peers),
        };
        state.device = Some(device.clone());
        report
    }

    fn record_addresses(
        &self,
        interface: &str,
        addresses: &BTreeSet<(IpAddr, u8)>,
    ) -> Result<cell_net::Changes, NetworkError> {
        let mut state = lock(&self.state);
        state.requests.push("addresses");
        if state.device.as_ref().map(|d| d.name.as_str()) != Some(interface) {
            return Err(NetworkError::NoLink {
                interface: interface.to_owned(),
            });
        }
        let changes = cell_net::Changes {
            added: addresses.difference(&state.addresses).copied().collect(),
            removed: state.addresses.difference(addresses).copied().collect(),
            brought_up: false,
        };
        state.addresses = addresses.clone();
        Ok(changes)
    }

    fn record_firewall(
        &self,
        plan: &cell_firewall::Plan,
    ) -> Result<cell_firewall::Applied, NetworkError> {
        let mut state = lock(&self.state);
        state.requests.push("firewall");
        if state.firewall_refuses {
            return Err(NetworkError::Simulated(
                "the firewall table cannot be written",
            ));
        }
        if state.firewall.as_ref() == Some(plan) {
            return Ok(cell_firewall::Applied::Nothing);
        }
        state.firewall = Some(plan.clone());
        Ok(cell_firewall::Applied::Table)
    }
}

impl Network for RecordedNetwork {
    fn apply_device<'a>(&'a self, device: &'a DesiredDevice) -> NetFuture<'a, cell_wg::Report> {
        Box::pin(async move {
            self.released().await;
            Ok(self.record_device(device))
        })
    }

    fn apply_addresses<'a>(
        &'a self,
        interface: &'a str,
        addresses: &'a BTreeSet<(IpAddr, u8)>,
    ) -> NetFuture<'a, cell_net::Changes> {
        Box::pin(async move {
            self.released().await;
            self.record_addresses(interface, addresses)
        })
    }

    fn apply_firewall<'a>(
        &'a self,
        plan: &'a cell_firewall::Plan,
        _verify: bool,
    ) -> NetFuture<'a, cell_firewall::Applied> {
        Box::pin(async move {
            self.released().await;
            self.record_firewall(plan)
        })
    }
}

impl LiveNetwork for RecordedNetwork {
    fn device<'a>(&'a self, _interface: &'a str) -> NetFuture<'a, Option<LiveDevice>> {
        Box::pin(async { Ok(None) })
    }

    fn firewall(&self) -> NetFuture<'_, (String, Live)> {
        let live = lock(&self.state).firewall.as_ref().map(|plan| Live {
            exists: true,
            rules: plan.rules().len(),
            sets: plan.sets.clone(),
        });
        Box::pin(async move { Ok((String::new(), live.unwrap_or_default())) })
    }

    fn local_networks<'a>(&'a self, _except: &'a str) -> NetFuture<'a, Vec<(String, IpAddr, u8)>> {
        let lan = lock(&self.lan).clone();
        Box::pin(async move { Ok(lan) })
    }
}

/// The peers a recorded device would add, update and remove, by public key.
fn peer_diff(live: &[cell_wg::DesiredPeer], desired: &[cell_wg::DesiredPeer]) -> cell_wg::PeerDiff {
    let mut diff = cell_wg::PeerDiff::default();
    for peer in desired {
        match live.iter().find(|p| p.public_key == peer.public_key) {
            None => diff.add.push(peer.clone()),
            Some(current) if current != peer => diff.update.push(peer.clone()),
            Some(_) => {}
        }
    }
    diff.remove = live
        .iter()
        .filter(|p| !desired.iter().any(|d| d.public_key == p.public_key))
        .map(|p| p.public_key)
        .collect();
    diff
}
