use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cell_model::api::{EditableSettings, SettingsView};
use cell_model::{Settings, Status};

use super::extract::{Admin, ValidJson};
use super::{blocking, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::sync::lock;
use crate::{status, zones};

pub async fn status_get(State(daemon): State<Arc<Daemon>>) -> Result<Json<Status>, AppError> {
    let (generation, settings) = {
        let store = lock(&daemon.store);
        let current = store.current();
        (current.generation, current.settings.clone())
    };
    let mut status =
        status::current(generation, &settings).map_err(|e| AppError::Internal(e.to_string()))?;
    status.units = daemon.unit_health().await;
    status.appliers = daemon.board().states();
    status.pending_change = lock(&daemon.store).pending_view();
    status.auth = cell_model::api::AuthCounters {
        password_checks: daemon.hash_gate.checks(),
        throttled: lock(&daemon.throttle).refused(),
        busy: daemon.hash_gate.busy(),
    };
    Ok(Json(status))
}

pub fn view(generation: u64, settings: &Settings) -> SettingsView {
    SettingsView {
        generation,
        settings: EditableSettings {
            identity: settings.identity.clone(),
            services: settings.services.clone(),
        },
    }
}

pub async fn settings_get(State(daemon): State<Arc<Daemon>>) -> Json<SettingsView> {
    let store = lock(&daemon.store);
    let current = store.current();
    Json(view(current.generation, &current.settings))
}

/// Replaces the editable settings; stores a new generation only if something changed and
/// records each changed field in the audit log. The reconciler applies it.
pub async fn settings_put(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(edited): ValidJson<EditableSettings>,
) -> Result<Json<SettingsView>, AppError> {
    zones::check(&edited.identity.timezone)
        .map_err(|e| AppError::field("identity.timezone", e.to_string()))?;
    let worker = daemon.clone();
    let after = blocking(move || {
        let record = Record::new(&actor.name, "settings.update").source(actor.source.clone());
        worker.commit(record, |next| {
            next.identity = edited.identity;
            next.services = edited.services;
            Ok::<(), AppError>(())
        })
    })
    .await?;
    Ok(Json(view(after.generation, &after.settings)))
}
