//! Over-the-air updates. celld never touches the disk itself: it keeps the update URL in
//! the settings, hands a request to the update job (cell-update.service, root), reads
//! the job's progress and outcome from its state file, and asks logind to reboot.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cell_model::update::{
    validate_version, InstallRequest, RebootRequest, UpdateRequest, UpdateSettingsEdit,
    UpdateState, UpdateUrl, UpdateView, JOB_UNIT, REQUEST_FILE, STATE_FILE, UPDATE_DIR,
};
use cell_model::FieldError;

use super::extract::{Admin, ValidJson};
use super::{blocking, record, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::sync::lock;

/// A reboot can be put off by a week at most.
const REBOOT_HORIZON_HOURS: i64 = 24 * 7;

fn update_dir(daemon: &Daemon) -> PathBuf {
    daemon.config.state_dir.join(UPDATE_DIR)
}

fn read_state(daemon: &Daemon) -> Result<UpdateState, AppError> {
    let path = update_dir(daemon).join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| AppError::Internal(format!("reading {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UpdateState::default()),
        Err(e) => Err(AppError::Internal(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

async fn job_running(daemon: &Daemon) -> bool {
    let units = [JOB_UNIT];
    match daemon.system.unit_health(&units).await {
        Ok(health) => health.iter().any(|u| {
            matches!(
                u.state.as_str(),
                "active" | "activating" | "reloading" | "deactivating"
            )
        }),
        Err(error) => {
            tracing::warn!(%error, "cannot tell whether an update job runs");
            false
        }
    }
}

pub async fn update_get(
    State(daemon): State<Arc<Daemon>>,
    Admin(_): Admin,
) -> Result<Json<UpdateView>, AppError> {
    let state = read_state(&daemon)?;
    let running = job_running(&daemon).await;
    let reboot_at = daemon
        .system
        .scheduled_reboot()
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot read the scheduled reboot");
            None
        });
    let url = lock(&daemon.store)
        .current()
        .settings
        .update
        .url
        .as_ref()
        .map(|u| u.to_string());
    Ok(Json(UpdateView {
        current: cell_systemd::image_version().to_owned(),
        url,
        checked_at: state.checked_at,
        available: state.available,
        failed: state.failed,
        pending: state.pending,
        // A job the state names but systemd does not run has died: its last words are in
        // the journal, and the next job or boot records the outcome.
        job: state.job.filter(|_| running),
        last_result: state.last_result,
        reboot_at,
    }))
}

pub async fn update_put(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(body): ValidJson<UpdateSettingsEdit>,
) -> Result<StatusCode, AppError> {
    let url = body.url.map(UpdateUrl::try_from).transpose()?;
    let record = Record::new(&actor.name, "update.url_set")
        .source(actor.source.clone())
        .target(url.as_ref().map(|u| u.to_string()).unwrap_or_default());
    blocking(move || {
        daemon.commit(record, |next| {
            next.update.url = url;
            Ok::<(), AppError>(())
        })?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A request the job has not picked up yet is this recent: a second one would replace it.
const REQUEST_PICKUP: std::time::Duration = std::time::Duration::from_secs(60);

/// Hands `request` to the update job and starts it.
async fn start_job(daemon: &Arc<Daemon>, request: UpdateRequest) -> Result<(), AppError> {
    let _handover = daemon.update_handover.lock().await;
    let busy =
        || AppError::Conflict("an update job is already running; wait for it to finish".into());
    if job_running(daemon).await {
        return Err(busy());
    }
    let dir = update_dir(daemon);
    let request_path = dir.join(REQUEST_FILE);
    // Started but not yet running (queued behind boot bookkeeping, say): its request is
    // still there. An old one is left over from a job that never ran, and is replaced.
    let waiting = std::fs::metadata(&request_path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age < REQUEST_PICKUP);
    if waiting {
        return Err(busy());
    }
    let bytes = serde_json::to_vec(&request).map_err(|e| AppError::Internal(e.to_string()))?;
    blocking(move || {
        std::fs::create_dir_all(&dir)
            .map_err(|e| AppError::Internal(format!("creating {}: {e}", dir.display())))?;
        cell_store::atomic::write(&dir.join(REQUEST_FILE), &bytes, 0o600)?;
        Ok(())
    })
    .await?;
    daemon
        .system
        .start_unit(JOB_UNIT)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))
}

fn configured_url(daemon: &Daemon) -> Result<UpdateUrl, AppError> {
    lock(&daemon.store)
        .current()
        .settings
        .update
        .url
        .clone()
        .ok_or_else(|| AppError::Conflict("set the update URL first".into()))
}

pub async fn update_check_post(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
) -> Result<StatusCode, AppError> {
    let url = configured_url(&daemon)?;
    start_job(&daemon, UpdateRequest::Check { url }).await?;
    record(
        &daemon,
        Record::new(&actor.name, "update.check").source(actor.source.clone()),
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn update_install_post(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(body): ValidJson<InstallRequest>,
) -> Result<StatusCode, AppError> {
    let url = configured_url(&daemon)?;
    let state = read_state(&daemon)?;
    let version = match body.version {
        Some(version) => {
            validate_version(&version)?;
            version
        }
        None => state.available.first().cloned().ok_or_else(|| {
            AppError::Conflict("no newer version is known; check for updates first".into())
        })?,
    };
    if state.failed.contains(&version) {
        return Err(AppError::Conflict(format!(
            "{version} was rolled back after failing its health check; it is not installed again"
        )));
    }
    if version == cell_systemd::image_version() {
        return Err(FieldError::new("version", "is the version running now").into());
    }
    if let Some(pending) = &state.pending {
        return Err(AppError::Conflict(format!(
            "{pending} is installed and starts at the next reboot; reboot before installing another version"
        )));
    }
    if daemon
        .system
        .scheduled_reboot()
        .await
        .ok()
        .flatten()
        .is_some()
    {
        return Err(AppError::Conflict(
            "a reboot is scheduled and could cut the installation short; cancel it first".into(),
        ));
    }
    if !state.available.contains(&version) {
        return Err(AppError::Conflict(format!(
            "{version} is not among the versions the update server offered; check for updates first"
        )));
    }
    start_job(
        &daemon,
        UpdateRequest::Install {
            url,
            version: version.clone(),
        },
    )
    .await?;
    record(
        &daemon,
        Record::new(&actor.name, "update.install")
            .source(actor.source.clone())
            .target(version),
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn update_reboot_post(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(body): ValidJson<RebootRequest>,
) -> Result<StatusCode, AppError> {
    let now = jiff::Timestamp::now();
    let at = body.at.unwrap_or(now).max(now);
    let horizon = now
        .checked_add(jiff::SignedDuration::from_hours(REBOOT_HORIZON_HOURS))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    if at > horizon {
        return Err(FieldError::new("at", "must be within the next 7 days").into());
    }
    if job_running(&daemon).await {
        return Err(AppError::Conflict(
            "an update job is running; reboot when it has finished".into(),
        ));
    }
    record(
        &daemon,
        Record::new(&actor.name, "update.reboot")
            .source(actor.source.clone())
            .target(at.to_string()),
    )
    .await?;
    daemon
        .system
        .schedule_reboot(at)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn update_reboot_delete(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
) -> Result<StatusCode, AppError> {
    daemon
        .system
        .cancel_reboot()
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    record(
        &daemon,
        Record::new(&actor.name, "update.reboot_cancel").source(actor.source.clone()),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
