//! The recovery console's settings: the password that guards its root shell. Admins set
//! or remove it; only root (the console itself) may check a typed password against it,
//! and the hash never leaves celld.

use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::Json;
use cell_model::api::{RecoveryView, ShellPassword, ShellPasswordCheck};

use super::extract::{Admin, ValidJson};
use super::{blocking, record, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::passwords;
use crate::peer::Peer;
use crate::sync::lock;

pub async fn recovery_get(
    State(daemon): State<Arc<Daemon>>,
    Admin(_): Admin,
) -> Json<RecoveryView> {
    let store = lock(&daemon.store);
    Json(RecoveryView {
        shell_password_set: store
            .current()
            .settings
            .recovery
            .shell_password_hash
            .is_some(),
    })
}

fn commit_hash(
    daemon: &Daemon,
    hash: Option<cell_model::users::Secret>,
    record: Record,
) -> Result<(), AppError> {
    daemon.commit(record, |next| {
        next.recovery.shell_password_hash = hash;
        Ok::<(), AppError>(())
    })?;
    Ok(())
}

pub async fn shell_password_put(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(body): ValidJson<ShellPassword>,
) -> Result<StatusCode, AppError> {
    let record =
        Record::new(&actor.name, "recovery.shell_password_set").source(actor.source.clone());
    let password = body.password.expose().to_owned();
    let hash = daemon
        .hash_gate
        .run(0, move || passwords::hash(&password))
        .await?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    blocking(move || commit_hash(&daemon, Some(hash), record)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn shell_password_delete(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
) -> Result<StatusCode, AppError> {
    let record =
        Record::new(&actor.name, "recovery.shell_password_remove").source(actor.source.clone());
    blocking(move || commit_hash(&daemon, None, record)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// For the recovery console (root on the machine) only: whether `password` opens the shell.
pub async fn shell_password_check_post(
    State(daemon): State<Arc<Daemon>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ValidJson(body): ValidJson<ShellPassword>,
) -> Result<Json<ShellPasswordCheck>, AppError> {
    if !peer.is_root() {
        return Err(AppError::Forbidden(
            "only the recovery console may check this".into(),
        ));
    }
    let hash = lock(&daemon.store)
        .current()
        .settings
        .recovery
        .shell_password_hash
        .clone();
    let Some(hash) = hash else {
        return Err(AppError::Conflict("no shell password is set".into()));
    };
    let password = body.password.expose().to_owned();
    let matches = daemon
        .hash_gate
        .run(1, move || passwords::verify(&password, &hash))
        .await?;
    let action = if matches {
        "recovery.shell_open"
    } else {
        "recovery.shell_refused"
    };
    record(&daemon, Record::new("recovery-console", action)).await?;
    Ok(Json(ShellPasswordCheck { matches }))
}
