use std::collections::BTreeMap;
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
        let mut store = lock(&worker.store);
        let before = store.current().settings.clone();
        let mut next = before.clone();
        next.identity = edited.identity;
        next.services = edited.services;
        let changes = changes(&view(0, &before).settings, &view(0, &next).settings);
        if changes.is_empty() {
            return Ok(store.current().clone());
        }
        let stored = store.commit(next)?.clone();
        let mut record = Record::new(&actor.name, "settings.update").source(actor.source.clone());
        record.changes = changes;
        lock(&worker.audit).append(record)?;
        Ok(stored)
    })
    .await?;
    Ok(Json(view(after.generation, &after.settings)))
}

/// Field-by-field differences, `path → "old → new"`, of two values of the same type.
pub fn changes<T: serde::Serialize>(before: &T, after: &T) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let before = serde_json::to_value(before).unwrap_or_default();
    let after = serde_json::to_value(after).unwrap_or_default();
    diff("", &before, &after, &mut out);
    out
}

fn diff(
    path: &str,
    before: &serde_json::Value,
    after: &serde_json::Value,
    out: &mut BTreeMap<String, String>,
) {
    use serde_json::Value;
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let null = Value::Null;
                diff(
                    &join(key),
                    a.get(key).unwrap_or(&null),
                    b.get(key).unwrap_or(&null),
                    out,
                );
            }
        }
        (a, b) if a != b => {
            out.insert(path.to_owned(), format!("{} → {}", show(a), show(b)));
        }
        _ => {}
    }
}

fn show(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "(none)".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_listed_per_leaf_field() {
        let before = serde_json::json!({"identity": {"timezone": "UTC", "domain": {"mode": "internal"}}, "services": {"mail": false}});
        let after = serde_json::json!({"identity": {"timezone": "Europe/Berlin", "domain": {"mode": "own", "domain": "a.org"}}, "services": {"mail": false}});
        let changes = changes(&before, &after);
        assert_eq!(changes["identity.timezone"], "UTC → Europe/Berlin");
        assert_eq!(changes["identity.domain.mode"], "internal → own");
        assert_eq!(changes["identity.domain.domain"], "(none) → a.org");
        assert_eq!(changes.len(), 3);
    }
}
