//! The DNS zone: rendered from the settings in force, the cell's LAN addresses and the
//! uplink's resolvers, and written for cell-dns, which swaps it in whole. Written only
//! when it differs from what is there.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cell_model::dns::DnsRecord;
use cell_model::{FieldError, Settings};
use tokio::sync::watch;

use super::files::write_if_changed;
use super::{Applier, ApplyError, ApplyFuture, Pass, UNCHANGED};
use crate::dkim::Dkim;
use crate::network::LiveNetwork;

pub struct DnsZoneApplier {
    live: Arc<dyn LiveNetwork>,
    /// The VPN interface, whose addresses are not the LAN's.
    interface: String,
    path: PathBuf,
    /// systemd-resolved's resolv.conf: the uplink's resolvers.
    uplink_resolvers: PathBuf,
    /// The DHCP server's leases, whose host names get names in the zone.
    leases: PathBuf,
    /// ACME DNS-01 records while an order runs.
    challenges: watch::Receiver<Vec<DnsRecord>>,
    /// The DKIM key the mail records publish.
    dkim: Arc<Dkim>,
}

impl DnsZoneApplier {
    pub fn new(
        live: Arc<dyn LiveNetwork>,
        interface: &str,
        path: PathBuf,
        uplink_resolvers: PathBuf,
        leases: PathBuf,
        challenges: watch::Receiver<Vec<DnsRecord>>,
        dkim: Arc<Dkim>,
    ) -> Self {
        Self {
            live,
            interface: interface.to_owned(),
            path,
            uplink_resolvers,
            leases,
            challenges,
            dkim,
        }
    }
}

/// The settings the zone is rendered from (the LAN addresses and the uplink's resolvers
/// are read when applying).
pub struct DnsPlan(Settings);

impl Applier for DnsZoneApplier {
    type Plan = DnsPlan;

    fn name(&self) -> &'static str {
        "dns"
    }

    fn plan(&self, settings: &Settings) -> Result<DnsPlan, FieldError> {
        settings
            .dns
            .validate(&settings.zone())
            .map_err(|e| e.at("dns"))?;
        Ok(DnsPlan(settings.clone()))
    }

    fn apply<'a>(&'a self, plan: &'a DnsPlan, pass: Pass) -> ApplyFuture<'a> {
        Box::pin(async move {
            let lan: Vec<IpAddr> = self
                .live
                .local_networks(&self.interface)
                .await?
                .into_iter()
                .map(|(_, address, _)| address)
                .filter(|address| !address.is_loopback())
                .collect();
            let path = self.path.clone();
            let resolvers = self.uplink_resolvers.clone();
            // No file (no DHCP lease yet, resolved not running): no uplink resolvers, and
            // names outside the zone are refused until they come.
            let leases_file = self.leases.clone();
            let (uplink, leases) = tokio::task::spawn_blocking(move || {
                let uplink = std::fs::read_to_string(resolvers)
                    .map(|text| crate::dns::parse_resolv_conf(&text))
                    .unwrap_or_default();
                (uplink, crate::lan::leases(&leases_file))
            })
            .await
            .unwrap_or_default();
            let serial = u32::try_from(pass.generation).unwrap_or(u32::MAX);
            let mut generated = self.challenges.borrow().clone();
            if plan.0.services.mail {
                let dkim = self.dkim.clone();
                let key = tokio::task::spawn_blocking(move || dkim.ensure())
                    .await
                    .map_err(|e| ApplyError::Dkim(e.to_string()))?
                    .map_err(|e| ApplyError::Dkim(e.to_string()))?;
                generated.extend(crate::dkim::mail_records(&plan.0, &key));
            }
            let zone = crate::dns::render(&plan.0, serial, &lan, &uplink, &leases, &generated);
            let bytes = serde_json::to_vec_pretty(&zone).unwrap_or_default();
            // cell-dns reads it through the directory's group (setgid on the device).
            let written = write_if_changed(path, bytes, 0o640).await?;
            Ok(if written {
                format!("zone {} serial {serial} written", zone.origin)
            } else {
                UNCHANGED.to_owned()
            })
        })
    }
}
