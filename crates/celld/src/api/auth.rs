use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::Json;
use cell_model::api::{LoginRequest, Principal};
use cell_model::users::Secret;
use cell_model::Username;

use super::extract::{Source, ValidJson};
use super::{blocking, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::passwords;
use crate::sync::lock;
use crate::throttle::Outcome;
use crate::totp;

enum Verdict {
    Accepted(Principal),
    /// Password right, second factor missing: ask for it.
    NeedsSecondFactor,
    Refused,
}

/// Checks a login; throttled per account and per source address, every failure and
/// lockout recorded in the audit log.
pub async fn login_post(
    State(daemon): State<Arc<Daemon>>,
    Source(source): Source,
    ValidJson(request): ValidJson<LoginRequest>,
) -> Result<Json<Principal>, AppError> {
    let keys = [
        format!("user:{}", request.username.to_lowercase()),
        format!("addr:{}", source.as_deref().unwrap_or("local")),
    ];
    {
        let throttle = lock(&daemon.throttle);
        let now = Instant::now();
        if let Some(wait) = keys
            .iter()
            .filter_map(|k| throttle.check(k, now).err())
            .max()
        {
            return Err(AppError::TooManyAttempts {
                retry_after: wait.as_secs().max(1),
            });
        }
    }
    let worker = daemon.clone();
    let username = request.username.clone();
    let verdict = blocking(move || Ok(judge(&worker, &request))).await?;
    match verdict {
        Verdict::Accepted(principal) => {
            let mut throttle = lock(&daemon.throttle);
            keys.iter().for_each(|k| throttle.success(k));
            drop(throttle);
            lock(&daemon.audit)
                .append(Record::new(principal.name.as_str(), "auth.login").source(source))?;
            Ok(Json(principal))
        }
        Verdict::NeedsSecondFactor => Err(AppError::SecondFactorRequired),
        Verdict::Refused => {
            let outcomes: Vec<Outcome> = {
                let mut throttle = lock(&daemon.throttle);
                keys.iter()
                    .map(|k| throttle.failure(k, Instant::now()))
                    .collect()
            };
            let mut audit = lock(&daemon.audit);
            audit.append(
                Record::new("-", "auth.failure")
                    .source(source.clone())
                    .target(&username),
            )?;
            if outcomes.contains(&Outcome::LockedOut) {
                audit.append(
                    Record::new("-", "auth.lockout")
                        .source(source)
                        .target(&username),
                )?;
            }
            Err(AppError::Unauthorized)
        }
    }
}

fn judge(daemon: &Daemon, request: &LoginRequest) -> Verdict {
    let user = Username::parse(&request.username.to_lowercase())
        .ok()
        .and_then(|name| lock(&daemon.store).current().settings.user(&name).cloned());
    let Some(user) = user else {
        passwords::verify_nothing(&request.password);
        return Verdict::Refused;
    };
    if !passwords::verify(&request.password, &user.password_hash) || user.disabled {
        return Verdict::Refused;
    }
    let principal = Principal {
        name: user.name.clone(),
        role: user.role,
    };
    let Some(seed) = &user.totp_secret else {
        return Verdict::Accepted(principal);
    };
    let Some(code) = request
        .second_factor
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    else {
        return Verdict::NeedsSecondFactor;
    };
    if totp::check(seed.expose(), user.name.as_str(), code) {
        return Verdict::Accepted(principal);
    }
    if spend_recovery_code(daemon, &user.name, code) {
        return Verdict::Accepted(principal);
    }
    Verdict::Refused
}

/// Accepts and removes a matching recovery code.
fn spend_recovery_code(daemon: &Daemon, name: &Username, code: &str) -> bool {
    let digest: Secret = passwords::code_digest(code);
    let mut store = lock(&daemon.store);
    let mut next = store.current().settings.clone();
    let Some(user) = next.user_mut(name) else {
        return false;
    };
    let Some(index) = user
        .recovery_codes
        .iter()
        .position(|c| passwords::same(c.expose().as_bytes(), digest.expose().as_bytes()))
    else {
        return false;
    };
    user.recovery_codes.remove(index);
    let left = user.recovery_codes.len();
    match store.commit(next) {
        Ok(_) => {
            let record = Record::new(name.as_str(), "auth.recovery_code_used")
                .target(name.as_str())
                .change("recovery_codes_left", left.to_string());
            if let Err(error) = lock(&daemon.audit).append(record) {
                tracing::error!(%error, "recording a spent recovery code");
            }
            true
        }
        Err(error) => {
            tracing::error!(%error, "could not spend a recovery code; refusing it");
            false
        }
    }
}
