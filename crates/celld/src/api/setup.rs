use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::Json;
use cell_model::api::{SetupDone, SetupRequest};
use cell_model::{Role, User};
use serde::Serialize;

use super::extract::{Source, ValidJson};
use super::{blocking, record, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::passwords;
use crate::peer::Peer;
use crate::sync::lock;
use crate::throttle::{self, Outcome};
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
    // Counted before the code is compared: per source, and against a budget for everyone,
    // so that many addresses together get no more guesses than one.
    let per_source = format!("setup:{}", throttle::source_key(source.as_deref()));
    let outcome = lock(&daemon.throttle)
        .attempt(&[&per_source, SETUP_BUDGET], Instant::now())
        .map_err(|wait| AppError::TooManyAttempts {
            retry_after: wait.as_secs().max(1),
        })?;
    if !lock(&daemon.setup_code).matches(&request.code) {
        record(
            &daemon,
            Record::new("-", "setup.failure").source(source.clone()),
        )
        .await?;
        if outcome == Outcome::LockedOut {
            record(
                &daemon,
                Record::new("-", "setup.lockout").source(source.clone()),
            )
            .await?;
        }
        return Err(AppError::field(
            "code",
            "this is not the setup code shown on the cell's console",
        ));
    }
    let password_hash = daemon
        .hash_gate
        .run(0, {
            let password = request.admin_password.expose().to_owned();
            move || passwords::hash(&password)
        })
        .await?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let worker = daemon.clone();
    let stored = blocking(move || {
        let admin = request.admin_username.into_username();
        let record = Record::new("setup", "setup.complete")
            .source(source.clone())
            .target(admin.as_str());
        let stored = worker.commit(record, |next| {
            if next.setup_complete {
                return Err(AppError::Conflict("this cell is already set up".into()));
            }
            next.setup_complete = true;
            next.identity.cell_name = request.cell_name;
            next.identity.domain = request.domain;
            next.identity.timezone = request.timezone;
            next.services = request.services;
            next.vpn.get_or_insert_with(crate::vpn::new_vpn);
            next.users = vec![User {
                name: admin.clone(),
                role: Role::Admin,
                disabled: false,
                password_hash,
                totp_secret: None,
                recovery_codes: Vec::new(),
                app_passwords: Vec::new(),
                mail_aliases: Vec::new(),
                files_quota_mib: None,
            }];
            Ok(())
        })?;
        lock(&worker.setup_code).retire()?;
        Ok(stored)
    })
    .await?;
    {
        let mut throttle = lock(&daemon.throttle);
        throttle.clear(&per_source);
        throttle.clear(SETUP_BUDGET);
    }
    Ok(Json(SetupDone {
        generation: stored.generation,
    }))
}

/// The setup code's budget shared by every source.
const SETUP_BUDGET: &str = "setup:*";

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
