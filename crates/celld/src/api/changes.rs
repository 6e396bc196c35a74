//! The confirmation window of risky changes: keeping one.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cell_model::api::{ChangeConfirm, PendingChange};

use super::extract::{Admin, ValidJson};
use super::{blocking, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::settings_store::ConfirmError;
use crate::sync::lock;

/// Keeps the pending change of the given generation. Accepted only once the reconciler has
/// applied it, so that the confirmation itself proves the new settings let the
/// administrator in.
pub async fn confirm_post(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(confirm): ValidJson<ChangeConfirm>,
) -> Result<Json<PendingChange>, AppError> {
    let pending = lock(&daemon.store).pending().map(|p| p.generation);
    match pending {
        None => return Err(AppError::Conflict(ConfirmError::NothingPending.to_string())),
        Some(pending) if pending != confirm.generation => {
            let error = ConfirmError::NotPending {
                asked: confirm.generation,
                pending,
            };
            return Err(AppError::field("generation", error.to_string()));
        }
        Some(_) => {}
    }
    if daemon
        .board()
        .last_pass()
        .is_none_or(|pass| pass < confirm.generation)
    {
        return Err(AppError::Conflict(format!(
            "generation {} is not applied yet; confirm it once it is",
            confirm.generation
        )));
    }
    let worker = daemon.clone();
    let confirmed = blocking(move || {
        let mut store = lock(&worker.store);
        let view = store.pending_view();
        store.confirm(confirm.generation).map_err(|e| match e {
            ConfirmError::NothingPending => AppError::Conflict(e.to_string()),
            ConfirmError::NotPending { .. } => AppError::field("generation", e.to_string()),
        })?;
        let view = view.ok_or_else(|| AppError::Internal("the pending change vanished".into()))?;
        let mut record = Record::new(&actor.name, "change.confirm")
            .source(actor.source.clone())
            .target(format!("generation {}", view.generation));
        for field in &view.fields {
            record = record.change(field, "kept");
        }
        lock(&worker.audit).append(record)?;
        Ok(view)
    })
    .await?;
    Ok(Json(confirmed))
}
