//! What celld asks of the kernel for the VPN: the WireGuard device and its peers, the
//! addresses on it, and the `inet cell` nftables table. Behind a trait so that tests and
//! development runs record the plans instead of changing the machine they run on.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use cell_firewall::{Firewall, Live};
use cell_wg::{DesiredDevice, LiveDevice};
use tokio::sync::OnceCell;

use crate::daemon::lock;

pub type NetFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Everything the VPN needs from the kernel, computed before anything is touched.
#[derive(Debug, Clone)]
pub struct VpnPlan {
    pub device: DesiredDevice,
    pub addresses: BTreeSet<(IpAddr, u8)>,
    pub firewall: cell_firewall::Plan,
}

/// The outcome of one subsystem's apply: what changed, or why it failed.
pub type SubsystemResult = (&'static str, Result<String, String>);

pub const WIREGUARD: &str = "wireguard";
pub const ADDRESSES: &str = "addresses";
pub const FIREWALL: &str = "firewall";

pub trait Network: Send + Sync + std::fmt::Debug {
    /// Applies `plan`, each subsystem on its own: a failure in one does not stop the
    /// others. With `verify`, the live firewall is compared with the plan instead of
    /// trusting the last write.
    fn apply<'a>(&'a self, plan: &'a VpnPlan, verify: bool) -> NetFuture<'a, Vec<SubsystemResult>>;
    fn device<'a>(&'a self, interface: &'a str) -> NetFuture<'a, Option<LiveDevice>>;
    /// The live table as text, and parsed.
    fn firewall(&self) -> NetFuture<'_, (String, Live)>;
    /// Addresses on every link but `except`: (link, address, prefix).
    fn local_networks<'a>(&'a self, except: &'a str) -> NetFuture<'a, Vec<(String, IpAddr, u8)>>;
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("a worker failed: {e}"))?
}

/// The real kernel: wireguard-control, rtnetlink and nftables.
#[derive(Debug, Default)]
pub struct KernelNetwork {
    firewall: Arc<Mutex<Firewall>>,
    net: OnceCell<cell_net::Net>,
}

impl KernelNetwork {
    async fn net(&self) -> Result<&cell_net::Net, String> {
        self.net
            .get_or_try_init(|| async { cell_net::Net::connect() })
            .await
            .map_err(|e| e.to_string())
    }

    async fn apply_device(&self, plan: &VpnPlan) -> Result<String, String> {
        let device = plan.device.clone();
        let report =
            blocking(move || cell_wg::reconcile(&device).map_err(|e| e.to_string())).await?;
        Ok(if report.changed() {
            format!(
                "{} backend; created {}, {} peers added, {} updated, {} removed",
                report.backend.as_str(),
                report.created,
                report.diff.add.len(),
                report.diff.update.len(),
                report.diff.remove.len()
            )
        } else {
            format!("{} backend; unchanged", report.backend.as_str())
        })
    }

    async fn apply_addresses(&self, plan: &VpnPlan) -> Result<String, String> {
        let net = self.net().await?;
        let name = &plan.device.name;
        let link = net
            .link(name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("there is no link {name}"))?;
        let changes = net
            .sync_link(name, &link, &plan.addresses)
            .await
            .map_err(|e| e.to_string())?;
        Ok(if changes.is_empty() {
            "unchanged".to_owned()
        } else {
            format!(
                "{} added, {} removed{}",
                changes.added.len(),
                changes.removed.len(),
                if changes.brought_up { ", link up" } else { "" }
            )
        })
    }

    async fn apply_firewall(&self, plan: &VpnPlan, verify: bool) -> Result<String, String> {
        let firewall = self.firewall.clone();
        let plan = plan.firewall.clone();
        let applied = blocking(move || {
            let mut firewall = lock(&firewall);
            let result = if verify {
                firewall.verify(plan)
            } else {
                firewall.apply(plan)
            };
            result.map_err(|e| e.to_string())
        })
        .await?;
        Ok(format!("{applied:?}").to_lowercase())
    }
}

impl Network for KernelNetwork {
    fn apply<'a>(&'a self, plan: &'a VpnPlan, verify: bool) -> NetFuture<'a, Vec<SubsystemResult>> {
        Box::pin(async move {
            let device = self.apply_device(plan).await;
            let addresses = if device.is_ok() {
                self.apply_addresses(plan).await
            } else {
                Err("the WireGuard device is not there".to_owned())
            };
            let firewall = self.apply_firewall(plan, verify).await;
            Ok(vec![
                (WIREGUARD, device),
                (ADDRESSES, addresses),
                (FIREWALL, firewall),
            ])
        })
    }

    fn device<'a>(&'a self, interface: &'a str) -> NetFuture<'a, Option<LiveDevice>> {
        let interface = interface.to_owned();
        Box::pin(blocking(move || {
            cell_wg::status(&interface).map_err(|e| e.to_string())
        }))
    }

    fn firewall(&self) -> NetFuture<'_, (String, Live)> {
        Box::pin(blocking(|| {
            let text = cell_firewall::ruleset_text().map_err(|e| e.to_string())?;
            let live = cell_firewall::read_live().map_err(|e| e.to_string())?;
            Ok((text, live))
        }))
    }

    fn local_networks<'a>(&'a self, except: &'a str) -> NetFuture<'a, Vec<(String, IpAddr, u8)>> {
        Box::pin(async move {
            let all = self
                .net()
                .await?
                .all_addresses()
                .await
                .map_err(|e| e.to_string())?;
            Ok(all
                .into_iter()
                .filter(|(link, address, _)| {
                    link != except && link != "lo" && !address.is_loopback()
                })
                .collect())
        })
    }
}

/// Records plans instead of applying them; reports a fixed LAN.
#[derive(Debug)]
pub struct RecordedNetwork {
    plans: Mutex<Vec<VpnPlan>>,
    pub lan: Mutex<Vec<(String, IpAddr, u8)>>,
}

impl Default for RecordedNetwork {
    fn default() -> Self {
        Self {
            plans: Mutex::new(Vec::new()),
            lan: Mutex::new(vec![(
                "eth0".to_owned(),
                IpAddr::from([192, 168, 1, 10]),
                24,
            )]),
        }
    }
}

impl RecordedNetwork {
    pub fn plans(&self) -> Vec<VpnPlan> {
        lock(&self.plans).clone()
    }
}

impl Network for RecordedNetwork {
    fn apply<'a>(
        &'a self,
        plan: &'a VpnPlan,
        _verify: bool,
    ) -> NetFuture<'a, Vec<SubsystemResult>> {
        lock(&self.plans).push(plan.clone());
        Box::pin(async {
            Ok(vec![
                (WIREGUARD, Ok("recorded".to_owned())),
                (ADDRESSES, Ok("recorded".to_owned())),
                (FIREWALL, Ok("recorded".to_owned())),
            ])
        })
    }

    fn device<'a>(&'a self, _interface: &'a str) -> NetFuture<'a, Option<LiveDevice>> {
        Box::pin(async { Ok(None) })
    }

    fn firewall(&self) -> NetFuture<'_, (String, Live)> {
        let live = lock(&self.plans).last().map(|plan| Live {
            exists: true,
            rules: plan.firewall.rules().len(),
            sets: plan.firewall.sets.clone(),
        });
        Box::pin(async move { Ok((String::new(), live.unwrap_or_default())) })
    }

    fn local_networks<'a>(&'a self, _except: &'a str) -> NetFuture<'a, Vec<(String, IpAddr, u8)>> {
        let lan = lock(&self.lan).clone();
        Box::pin(async move { Ok(lan) })
    }
}
