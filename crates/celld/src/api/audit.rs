use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use cell_model::api::{AuditEntry, AuditVerification};

use super::extract::Admin;
use super::{blocking, AppError};
use crate::audit::Filter;
use crate::daemon::Daemon;
use crate::sync::lock;

pub async fn audit_get(
    State(daemon): State<Arc<Daemon>>,
    Admin(_): Admin,
    Query(filter): Query<Filter>,
) -> Result<Json<Vec<AuditEntry>>, AppError> {
    blocking(move || Ok(Json(lock(&daemon.audit).list(&filter)?))).await
}

pub async fn audit_verify_get(
    State(daemon): State<Arc<Daemon>>,
    Admin(_): Admin,
) -> Result<Json<AuditVerification>, AppError> {
    blocking(move || {
        let generation = lock(&daemon.store).current().generation;
        let log = lock(&daemon.audit);
        Ok(Json(crate::audited::verify(
            &log,
            daemon.state_dir(),
            generation,
        )?))
    })
    .await
}
