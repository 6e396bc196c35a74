//! The cell's DNS records: listed, and replaced as a whole (validated: a refusal names the
//! record and field, and stores nothing). The reconciler renders the zone for cell-dns.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cell_model::api::{DnsEdit, DnsView};
use cell_model::dns::{Dns, ZoneSnapshot};

use super::extract::{Actor, Admin, ValidJson};
use super::{blocking, AppError};
use crate::audit::Record;
use crate::daemon::{Daemon, DNS_ZONE_FILE};
use crate::sync::lock;

fn view(daemon: &Daemon) -> DnsView {
    let settings = lock(&daemon.store).current().settings.clone();
    let snapshot = std::fs::read(daemon.config().run_dir.join(DNS_ZONE_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ZoneSnapshot>(&bytes).ok());
    DnsView {
        zone: settings.zone(),
        records: settings.dns.records,
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
    let dns = Dns {
        records: edit.records,
    };
    dns.validate().map_err(AppError::Invalid)?;
    let worker = daemon.clone();
    blocking(move || {
        let record = Record::new(&actor.name, "dns.update").source(actor.source.clone());
        worker.commit(record, |next| {
            next.dns = dns;
            Ok::<(), AppError>(())
        })?;
        Ok(())
    })
    .await?;
    Ok(Json(view(&daemon)))
}
