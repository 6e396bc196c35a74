//! The time server: chrony's configuration rendered from the settings and the cell's LAN
//! networks, written for cell-ntp.service, which is restarted when the file changed (or
//! is not running, e.g. at boot, when /run holds no configuration yet).

use std::path::PathBuf;
use std::sync::Arc;

use cell_model::{FieldError, Settings};

use super::files::write_if_changed;
use super::{Applier, ApplyFuture, Pass, UNCHANGED};
use crate::network::LiveNetwork;
use crate::ntp::NTP_UNIT;
use crate::system::Machine;

pub struct NtpApplier {
    live: Arc<dyn LiveNetwork>,
    system: Arc<dyn Machine>,
    /// The VPN interface, whose addresses are not the LAN's.
    interface: String,
    path: PathBuf,
}

impl NtpApplier {
    pub fn new(
        live: Arc<dyn LiveNetwork>,
        system: Arc<dyn Machine>,
        interface: &str,
        path: PathBuf,
    ) -> Self {
        Self {
            live,
            system,
            interface: interface.to_owned(),
            path,
        }
    }
}

pub struct NtpPlan(Settings);

impl Applier for NtpApplier {
    type Plan = NtpPlan;

    fn name(&self) -> &'static str {
        "ntp"
    }

    fn plan(&self, settings: &Settings) -> Result<NtpPlan, FieldError> {
        settings.ntp.validate().map_err(|e| e.at("ntp"))?;
        Ok(NtpPlan(settings.clone()))
    }

    fn apply<'a>(&'a self, plan: &'a NtpPlan, _pass: Pass) -> ApplyFuture<'a> {
        Box::pin(async move {
            let addresses = self.live.local_networks(&self.interface).await?;
            let lan = crate::vpn::lan_networks(&addresses);
            let conf = crate::ntp::render(&plan.0, &lan);
            let written = write_if_changed(self.path.clone(), conf.into_bytes(), 0o644).await?;
            let state = self
                .system
                .unit_health(&[NTP_UNIT])
                .await?
                .first()
                .map(|health| health.state.clone())
                .unwrap_or_default();
            if written || !matches!(state.as_str(), "active" | "activating" | "reloading") {
                self.system.restart_unit(NTP_UNIT).await?;
                return Ok(if written {
                    format!(
                        "chrony configured and restarted ({} sources)",
                        plan.0.ntp.sources().len()
                    )
                } else {
                    format!("chrony was {state}: started")
                });
            }
            Ok(UNCHANGED.to_owned())
        })
    }
}
