use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::Json;
use cell_model::api::{SetupDone, SetupRequest};
use cell_model::{Role, User};
use serde::Serialize;

use super::extract::{Source, ValidJson};
use super::{blocking, settings, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::passwords;
use crate::peer::Peer;
use crate::sync::lock;
use crate::throttle::Outcome;
use crate::zones;

/// Claims the cell: checks the one-time code, stores identity, services and the first
/// admin as one generation and spends the code. Applying it (hostname, time zone, VPN) is
/// the reconciler's work, which the status shows.
pub async fn setup_post(
    State(daemon): State<Arc<Daemon>>,
    Source(source): Source,
    ValidJson(request): ValidJson<SetupRequest>,
) -> Result<Json<SetupDone>, AppError> {
    if lock(&daemon.store).current().settings.setup_complete {
        return Err(AppError::Conflict("this cell is already set up".into()));
    }
    zones::check(&request.timezone).map_err(|e| AppError::field("timezone", e.to_string()))?;
    let throttle_key = format!("setup:{}", source.as_deref().unwrap_or("local"));
    if let Err(wait) = lock(&daemon.throttle).check(&throttle_key, Instant::now()) {
        return Err(AppError::TooManyAttempts {
            retry_after: wait.as_secs().max(1),
        });
    }
    if !lock(&daemon.setup_code).matches(&request.code) {
        let outcome = lock(&daemon.throttle).failure(&throttle_key, Instant::now());
        let mut audit = lock(&daemon.audit);
        audit.append(Record::new("-", "setup.failure").source(source.clone()))?;
        if outcome == Outcome::LockedOut {
            audit.append(Record::new("-", "setup.lockout").source(source.clone()))?;
        }
        return Err(AppError::field(
            "code",
            "this is not the setup code shown on the cell's console",
        ));
    }
    let worker = daemon.clone();
    let stored = blocking(move || {
        let password_hash = passwords::hash(request.admin_password.expose())
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let mut store = lock(&worker.store);
        let before = store.current().settings.clone();
        if before.setup_complete {
            return Err(AppError::Conflict("this cell is already set up".into()));
        }
        let mut next = before.clone();
        next.setup_complete = true;
        next.identity.cell_name = request.cell_name;
        next.identity.domain = request.domain;
        next.identity.timezone = request.timezone;
        next.services = request.services;
        next.vpn.get_or_insert_with(crate::vpn::new_vpn);
        next.users = vec![User {
            name: request.admin_username.clone(),
            role: Role::Admin,
            disabled: false,
            password_hash,
            totp_secret: None,
            recovery_codes: Vec::new(),
        }];
        let before_view = settings::view(0, &before).settings;
        let after_view = settings::view(0, &next).settings;
        let stored = store.commit(next)?.clone();
        lock(&worker.setup_code).retire()?;
        let mut record = Record::new("setup", "setup.complete")
            .source(source.clone())
            .target(request.admin_username.to_string())
            .change("admin", format!("(none) → {}", request.admin_username));
        record
            .changes
            .extend(settings::changes(&before_view, &after_view));
        lock(&worker.audit).append(record)?;
        Ok(stored)
    })
    .await?;
    lock(&daemon.throttle).success(&throttle_key);
    Ok(Json(SetupDone {
        generation: stored.generation,
    }))
}

#[derive(Serialize)]
pub struct SetupState {
    setup_complete: bool,
}

pub async fn setup_get(State(daemon): State<Arc<Daemon>>) -> Json<SetupState> {
    Json(SetupState {
        setup_complete: lock(&daemon.store).current().settings.setup_complete,
    })
}

#[derive(Serialize)]
pub struct SetupCodeView {
    /// None once the cell is set up.
    code: Option<String>,
}

/// The setup code, for root on the machine (`cellctl setup-code`) only.
pub async fn setup_code_get(
    State(daemon): State<Arc<Daemon>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
) -> Result<Json<SetupCodeView>, AppError> {
    if !peer.is_root() {
        return Err(AppError::Forbidden(
            "only root on the cell may read the setup code".into(),
        ));
    }
    Ok(Json(SetupCodeView {
        code: lock(&daemon.setup_code).current().map(str::to_owned),
    }))
}
