//! The cell's time: where its clock comes from, whether it serves time, and chrony's own
//! account of its synchronisation. The reconciler renders chrony's configuration.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cell_model::api::NtpView;
use cell_model::ntp::Ntp;

use super::extract::{Actor, Admin, ValidJson};
use super::{blocking, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::sync::lock;

async fn view(daemon: &Daemon) -> NtpView {
    let ntp = lock(&daemon.store).current().settings.ntp.clone();
    let (sync, error) = match crate::ntp::tracking().await {
        Ok(sync) => (Some(sync), None),
        Err(error) => (None, Some(error)),
    };
    NtpView {
        sources: ntp.sources(),
        ntp,
        sync,
        error,
    }
}

/// Everyone logged in may see the time sources and the synchronisation state.
pub async fn ntp_get(State(daemon): State<Arc<Daemon>>, _actor: Actor) -> Json<NtpView> {
    Json(view(&daemon).await)
}

pub async fn ntp_put(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(ntp): ValidJson<Ntp>,
) -> Result<Json<NtpView>, AppError> {
    ntp.validate().map_err(AppError::Invalid)?;
    let worker = daemon.clone();
    blocking(move || {
        let record = Record::new(&actor.name, "ntp.update").source(actor.source.clone());
        worker.commit(record, |next| {
            next.ntp = ntp;
            Ok::<(), AppError>(())
        })?;
        Ok(())
    })
    .await?;
    Ok(Json(view(&daemon).await))
}
