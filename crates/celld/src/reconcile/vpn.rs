//! The VPN's appliers, in the order they run: the firewall (table `inet cell`), then the
//! WireGuard device and its peers, which come up only once the firewall of the same
//! generation is in place, then the addresses on the device.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use cell_model::{FieldError, Settings};
use cell_wg::DesiredDevice;

use super::{Applier, ApplyFuture, Pass, UNCHANGED};
use crate::network::Network;
use crate::vpn::{self, ServerKey};

pub const FIREWALL: &str = "firewall";
pub const WIREGUARD: &str = "wireguard";
pub const ADDRESSES: &str = "addresses";

/// What an applier reports when the cell has no VPN section (before setup).
const NO_VPN: &str = "no VPN configured";

pub struct FirewallApplier {
    network: Arc<dyn Network>,
    interface: String,
    /// The only user that may reach the service machines' web ports.
    front_door_uid: u32,
}

impl FirewallApplier {
    pub fn new(network: Arc<dyn Network>, interface: &str, front_door_uid: u32) -> Self {
        Self {
            network,
            interface: interface.to_owned(),
            front_door_uid,
        }
    }
}

impl Applier for FirewallApplier {
    type Plan = cell_firewall::Plan;

    fn name(&self) -> &'static str {
        FIREWALL
    }

    fn plan(&self, settings: &Settings) -> Result<Self::Plan, FieldError> {
        Ok(vpn::firewall_plan(
            settings,
            &self.interface,
            self.front_door_uid,
        ))
    }

    fn apply<'a>(&'a self, plan: &'a Self::Plan, pass: Pass) -> ApplyFuture<'a> {
        Box::pin(async move {
            let applied = self.network.apply_firewall(plan, pass.verify).await?;
            Ok(match applied {
                cell_firewall::Applied::Nothing => UNCHANGED.to_owned(),
                cell_firewall::Applied::Elements => "set elements updated".to_owned(),
                cell_firewall::Applied::Table => "table inet cell written".to_owned(),
            })
        })
    }
}

pub struct WireGuardApplier {
    network: Arc<dyn Network>,
    interface: String,
    key: ServerKey,
}

impl WireGuardApplier {
    pub fn new(network: Arc<dyn Network>, interface: &str, key: ServerKey) -> Self {
        Self {
            network,
            interface: interface.to_owned(),
            key,
        }
    }
}

impl Applier for WireGuardApplier {
    type Plan = Option<DesiredDevice>;

    fn name(&self) -> &'static str {
        WIREGUARD
    }

    fn requires(&self) -> &'static [&'static str] {
        &[FIREWALL]
    }

    fn plan(&self, settings: &Settings) -> Result<Self::Plan, FieldError> {
        Ok(vpn::device_plan(settings, &self.interface, &self.key))
    }

    /// Without the firewall nothing filters what peers send: the device stays, without any.
    fn fail_closed(&self, plan: &Self::Plan) -> Option<Self::Plan> {
        let mut closed = plan.clone()?;
        closed.peers.clear();
        Some(Some(closed))
    }

    fn apply<'a>(&'a self, plan: &'a Self::Plan, _pass: Pass) -> ApplyFuture<'a> {
        Box::pin(async move {
            let Some(device) = plan else {
                return Ok(NO_VPN.to_owned());
            };
            let report = self.network.apply_device(device).await?;
            Ok(if report.changed() {
                format!(
                    "{} backend; {}{} peers added, {} updated, {} removed",
                    report.backend.as_str(),
                    if report.created { "created, " } else { "" },
                    report.diff.add.len(),
                    report.diff.update.len(),
                    report.diff.remove.len()
                )
            } else {
                UNCHANGED.to_owned()
            })
        })
    }
}

pub struct AddressesApplier {
    network: Arc<dyn Network>,
    interface: String,
}

impl AddressesApplier {
    pub fn new(network: Arc<dyn Network>, interface: &str) -> Self {
        Self {
            network,
            interface: interface.to_owned(),
        }
    }
}

impl Applier for AddressesApplier {
    type Plan = Option<BTreeSet<(IpAddr, u8)>>;

    fn name(&self) -> &'static str {
        ADDRESSES
    }

    fn requires(&self) -> &'static [&'static str] {
        &[WIREGUARD]
    }

    fn plan(&self, settings: &Settings) -> Result<Self::Plan, FieldError> {
        Ok(vpn::address_plan(settings))
    }

    fn apply<'a>(&'a self, plan: &'a Self::Plan, _pass: Pass) -> ApplyFuture<'a> {
        Box::pin(async move {
            let Some(addresses) = plan else {
                return Ok(NO_VPN.to_owned());
            };
            let changes = self
                .network
                .apply_addresses(&self.interface, addresses)
                .await?;
            Ok(if changes.is_empty() {
                UNCHANGED.to_owned()
            } else {
                format!(
                    "{} added, {} removed{}",
                    changes.added.len(),
                    changes.removed.len(),
                    if changes.brought_up { ", link up" } else { "" }
                )
            })
        })
    }
}
