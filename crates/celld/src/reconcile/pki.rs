//! The front door's certificate: one leaf from the cell's root for the cell's name, every
//! enabled service's name, and the addresses the cell is reached at on its LAN and VPN
//! (clients that reach it by address send no name). Replaced when any of those change
//! and, on the timer's passes, when two thirds of its life have passed.

use std::net::IpAddr;
use std::sync::Arc;

use cell_model::vpn::Service;
use cell_model::{FieldError, Settings};
use cell_pki::{Constraints, LeafRequest};

use super::{Applier, ApplyFuture, Pass, UNCHANGED};
use crate::network::LiveNetwork;
use crate::pki::{Pki, PkiStoreError};

pub struct PkiApplier {
    pki: Arc<Pki>,
    live: Arc<dyn LiveNetwork>,
    /// The VPN interface, whose addresses are not the LAN's.
    interface: String,
}

impl PkiApplier {
    pub fn new(pki: Arc<Pki>, live: Arc<dyn LiveNetwork>, interface: &str) -> Self {
        Self {
            pki,
            live,
            interface: interface.to_owned(),
        }
    }
}

/// The zone, the names, and the VPN addresses (the LAN's are observed when applying).
pub struct PkiPlan {
    zone: String,
    names: Vec<String>,
    vpn_addresses: Vec<IpAddr>,
}

/// The names the front door answers for under `settings`: the zone's apex (the UI) and
/// each enabled service.
pub fn served_names(settings: &Settings) -> Vec<String> {
    let zone = settings.zone();
    let mut names = vec![zone.clone()];
    names.extend(
        Service::ALL
            .into_iter()
            .filter(|s| crate::dns::enabled(settings, *s))
            .map(|s| format!("{}.{zone}", s.as_str())),
    );
    names
}

impl Applier for PkiApplier {
    type Plan = PkiPlan;

    fn name(&self) -> &'static str {
        "pki"
    }

    fn plan(&self, settings: &Settings) -> Result<PkiPlan, FieldError> {
        let mut vpn_addresses = Vec::new();
        if let Some(vpn) = &settings.vpn {
            vpn_addresses.push(IpAddr::V4(vpn.gateway4()));
            vpn_addresses.push(IpAddr::V6(vpn.gateway6()));
            for service in Service::ALL
                .into_iter()
                .filter(|s| crate::dns::enabled(settings, *s))
            {
                vpn_addresses.extend(vpn.service4(service).map(IpAddr::V4));
                vpn_addresses.push(IpAddr::V6(vpn.service6(service)));
            }
        }
        Ok(PkiPlan {
            zone: settings.zone(),
            names: served_names(settings),
            vpn_addresses,
        })
    }

    fn apply<'a>(&'a self, plan: &'a PkiPlan, _pass: Pass) -> ApplyFuture<'a> {
        Box::pin(async move {
            let lan = self.live.local_networks(&self.interface).await?;
            // Public addresses are left out: the root may not sign them (and a public
            // name gets an ACME certificate instead).
            let addresses = lan
                .into_iter()
                .map(|(_, address, _)| address)
                .chain(plan.vpn_addresses.iter().copied())
                .filter(Constraints::permits_address);
            let request = LeafRequest::new(plan.names.clone(), addresses);
            let pki = self.pki.clone();
            let zone = plan.zone.clone();
            let changed =
                tokio::task::spawn_blocking(move || pki.ensure(&zone, &request, crate::pki::now()))
                    .await
                    .map_err(|e| PkiStoreError::Interrupted(e.to_string()))??;
            Ok(changed.unwrap_or_else(|| UNCHANGED.to_owned()))
        })
    }
}
