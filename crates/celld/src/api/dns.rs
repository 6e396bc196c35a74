//! The cell's DNS records: listed, and replaced as a whole (validated: a refusal names the
//! record and field, and stores nothing). The reconciler renders the zone for cell-dns.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cell_model::api::{DnsEdit, DnsView};
use cell_model::dns::ZoneSnapshot;

use super::extract::{Actor, Admin, ValidJson};
use super::{blocking, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::sync::lock;

fn view(daemon: &Daemon) -> DnsView {
    let settings = lock(&daemon.store).current().settings.clone();
    let snapshot = std::fs::read(&daemon.config().dns_zone)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ZoneSnapshot>(&bytes).ok());
    DnsView {
        zone: settings.zone(),
        records: settings.dns.records,
        upstreams: settings.dns.upstreams,
        forward_zones: settings.dns.forward_zones,
        snapshot,
    }
}

/// Everyone logged in may see the zone's records (they are answered to anyone anyway).
pub async fn dns_get(State(daemon): State<Arc<Daemon>>, _actor: Actor) -> Json<DnsView> {
    Json(view(&daemon))
}

pub async fn dns_put(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(edit): ValidJson<DnsEdit>,
) -> Result<Json<DnsView>, AppError> {
    let worker = daemon.clone();
    blocking(move || {
        let record = Record::new(&actor.name, "dns.update").source(actor.source.clone());
        worker.commit(record, |next| {
            let zone = next.zone();
            let dns = &mut next.dns;
            if let Some(records) = edit.records {
                dns.records = records;
            }
            if let Some(upstreams) = edit.upstreams {
                dns.upstreams = upstreams;
            }
            if let Some(forward_zones) = edit.forward_zones {
                dns.forward_zones = forward_zones;
            }
            dns.validate(&zone).map_err(AppError::Invalid)
        })?;
        Ok(())
    })
    .await?;
    Ok(Json(view(&daemon)))
}
