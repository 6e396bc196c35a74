//! The cell's identity on the machine: hostname (which hostnamed also announces on mDNS as
//! `<cellname>.local`, through resolved) and time zone, through systemd's services.

use std::sync::Arc;

use cell_model::{FieldError, Settings};

use super::{Applier, ApplyFuture, Pass, UNCHANGED};
use crate::system::HostIdentity;

pub struct Identity {
    system: Arc<dyn HostIdentity>,
}

impl Identity {
    pub fn new(system: Arc<dyn HostIdentity>) -> Self {
        Self { system }
    }
}

/// Hostname and time zone; none before setup (the image's own stand until then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPlan {
    target: Option<(String, String)>,
}

impl Applier for Identity {
    type Plan = IdentityPlan;

    fn name(&self) -> &'static str {
        "identity"
    }

    fn plan(&self, settings: &Settings) -> Result<IdentityPlan, FieldError> {
        Ok(IdentityPlan {
            target: settings.setup_complete.then(|| {
                (
                    settings.identity.cell_name.to_string(),
                    settings.identity.timezone.to_string(),
                )
            }),
        })
    }

    fn apply<'a>(&'a self, plan: &'a IdentityPlan, _pass: Pass) -> ApplyFuture<'a> {
        Box::pin(async move {
            let Some((hostname, timezone)) = &plan.target else {
                return Ok(UNCHANGED.to_owned());
            };
            let mut done = Vec::new();
            if self.system.hostname().await? != *hostname {
                self.system.set_hostname(hostname).await?;
                done.push(format!("hostname {hostname}"));
            }
            if self.system.timezone().await? != *timezone {
                self.system.set_timezone(timezone).await?;
                done.push(format!("time zone {timezone}"));
            }
            Ok(if done.is_empty() {
                UNCHANGED.to_owned()
            } else {
                done.join(", ")
            })
        })
    }
}
