//! The LAN port's addressing and the cell's DHCP server, with the leases it gave. A change
//! of the addressing waits for its confirmation (see /v1/changes) and is undone when none
//! comes: a wrong address would cut the administrator off.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cell_model::api::LanView;
use cell_model::lan::Lan;

use super::extract::{Admin, ValidJson};
use super::{blocking, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::sync::lock;

async fn view(daemon: &Daemon) -> Result<LanView, AppError> {
    let (lan, pending_change) = {
        let store = lock(&daemon.store);
        (store.current().settings.lan.clone(), store.pending_view())
    };
    let addresses = daemon
        .network
        .local_networks(&daemon.config.wg_interface)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let leases_file = daemon.config.dhcp_leases.clone();
    let leases = tokio::task::spawn_blocking(move || crate::lan::leases(&leases_file))
        .await
        .unwrap_or_default();
    Ok(LanView {
        lan,
        addresses,
        leases,
        pending_change,
    })
}

/// Administrators only: leases name the family's devices.
pub async fn lan_get(
    State(daemon): State<Arc<Daemon>>,
    Admin(_actor): Admin,
) -> Result<Json<LanView>, AppError> {
    Ok(Json(view(&daemon).await?))
}

/// 202 when the change waits for its confirmation (`POST /v1/changes/confirm` before the
/// deadline in `pending_change`), 200 otherwise.
pub async fn lan_put(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(lan): ValidJson<Lan>,
) -> Result<(StatusCode, Json<LanView>), AppError> {
    lan.validate().map_err(AppError::Invalid)?;
    let worker = daemon.clone();
    let generation = blocking(move || {
        let record = Record::new(&actor.name, "lan.update").source(actor.source.clone());
        let stored = worker.commit(record, |next| {
            next.lan = lan;
            Ok::<(), AppError>(())
        })?;
        Ok(stored.generation)
    })
    .await?;
    let view = view(&daemon).await?;
    let status = match &view.pending_change {
        Some(pending) if pending.generation == generation => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(view)))
}
