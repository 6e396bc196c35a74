//! The LAN port: a static address through systemd-networkd (a runtime `.network` file that
//! wins over the image's DHCP one; none for DHCP), and the DHCP server (dnsmasq as
//! cell-dhcp.service, restarted when its configuration changed, stopped when it is off).

use std::path::PathBuf;
use std::sync::Arc;

use cell_model::{FieldError, Settings};

use super::files::write_if_changed;
use super::{Applier, ApplyError, ApplyFuture, Pass, UNCHANGED};
use crate::lan::DHCP_UNIT;
use crate::system::Machine;

pub struct LanApplier {
    system: Arc<dyn Machine>,
    network_file: PathBuf,
    dhcp_config: PathBuf,
    dhcp_leases: PathBuf,
}

impl LanApplier {
    pub fn new(
        system: Arc<dyn Machine>,
        network_file: PathBuf,
        dhcp_config: PathBuf,
        dhcp_leases: PathBuf,
    ) -> Self {
        Self {
            system,
            network_file,
            dhcp_config,
            dhcp_leases,
        }
    }
}

/// The files as they must be (None: absent).
pub struct LanPlan {
    network: Option<String>,
    dhcp: Option<String>,
}

/// Removes `path`; whether it was there.
async fn remove(path: PathBuf) -> Result<bool, ApplyError> {
    let target = path.clone();
    tokio::task::spawn_blocking(move || match std::fs::remove_file(&target) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error.to_string()),
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|removed| removed)
    .map_err(|message| ApplyError::File { path, message })
}

impl Applier for LanApplier {
    type Plan = LanPlan;

    fn name(&self) -> &'static str {
        "lan"
    }

    fn plan(&self, settings: &Settings) -> Result<LanPlan, FieldError> {
        settings.lan.validate().map_err(|e| e.at("lan"))?;
        Ok(LanPlan {
            network: crate::lan::network_file(settings),
            dhcp: crate::lan::dnsmasq_conf(settings, &self.dhcp_leases),
        })
    }

    fn apply<'a>(&'a self, plan: &'a LanPlan, _pass: Pass) -> ApplyFuture<'a> {
        Box::pin(async move {
            let mut done = Vec::new();
            let network_changed = match &plan.network {
                Some(file) => {
                    write_if_changed(self.network_file.clone(), file.clone().into_bytes(), 0o644)
                        .await?
                }
                None => remove(self.network_file.clone()).await?,
            };
            if network_changed {
                self.system.reload_network().await?;
                done.push(match plan.network {
                    Some(_) => "static LAN address written, networkd reloaded",
                    None => "LAN back on DHCP, networkd reloaded",
                });
            }
            match &plan.dhcp {
                Some(conf) => {
                    let written = write_if_changed(
                        self.dhcp_config.clone(),
                        conf.clone().into_bytes(),
                        0o644,
                    )
                    .await?;
                    let running = self
                        .system
                        .unit_health(&[DHCP_UNIT])
                        .await?
                        .first()
                        .is_some_and(|h| {
                            matches!(h.state.as_str(), "active" | "activating" | "reloading")
                        });
                    if written || !running {
                        self.system.restart_unit(DHCP_UNIT).await?;
                        done.push("DHCP server (re)started");
                    }
                }
                None => {
                    if remove(self.dhcp_config.clone()).await? {
                        self.system.stop_unit(DHCP_UNIT).await?;
                        done.push("DHCP server stopped");
                    }
                }
            }
            Ok(if done.is_empty() {
                UNCHANGED.to_owned()
            } else {
                done.join("; ")
            })
        })
    }
}
