//! Logging in and sessions. A login is counted by the throttle before its password hash
//! is checked, and the hash waits for a turn at the hash gate; a success opens a session
//! held here, in celld, whose token goes back to cell-web once.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use cell_model::api::{CurrentSession, LoginAnswer, LoginRequest, SessionInfo};
use cell_model::users::Secret;
use cell_model::{User, Username};

use super::extract::{Actor, LoginOrigin, ValidJson};
use super::{blocking, record, save_sessions, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::passwords;
use crate::sync::lock;
use crate::throttle::{self, Outcome};
use crate::totp;

enum Verdict {
    Accepted(User),
    /// Password right, second factor missing: ask for it.
    NeedsSecondFactor,
    Refused,
}

/// Checks a login and opens a session; throttled per account and per source (IPv4
/// address, IPv6 /64), every failure and lockout recorded in the audit log.
pub async fn login_post(
    State(daemon): State<Arc<Daemon>>,
    LoginOrigin(origin): LoginOrigin,
    ValidJson(request): ValidJson<LoginRequest>,
) -> Result<Json<LoginAnswer>, AppError> {
    let account = throttle::account_key(&request.username);
    let address = throttle::source_key(origin.source.as_deref());
    let source = origin.source.clone();
    let outcome = lock(&daemon.throttle).attempt(&[&account, &address], Instant::now());
    let outcome = outcome.map_err(|wait| AppError::TooManyAttempts {
        retry_after: wait.as_secs().max(1),
    })?;
    let username = request.username.trim().to_lowercase();
    let refund = |daemon: &Daemon| {
        let mut throttle = lock(&daemon.throttle);
        throttle.refund(&account);
        throttle.refund(&address);
    };
    let verdict = match judge(&daemon, request).await {
        Ok(verdict) => verdict,
        Err(error) => {
            // The hash never ran: no guess was made.
            refund(&daemon);
            return Err(error);
        }
    };
    match verdict {
        Verdict::Accepted(user) => {
            {
                let mut throttle = lock(&daemon.throttle);
                throttle.clear(&account);
                throttle.refund(&address);
            }
            let (token, active) =
                lock(&daemon.sessions).create(&user, origin, jiff::Timestamp::now());
            save_sessions(&daemon).await?;
            record(
                &daemon,
                Record::new(user.name.as_str(), "auth.login")
                    .source(source)
                    .change("session", active.id.clone()),
            )
            .await?;
            Ok(Json(LoginAnswer {
                token,
                session: active.view(),
            }))
        }
        Verdict::NeedsSecondFactor => {
            refund(&daemon);
            Err(AppError::SecondFactorRequired)
        }
        Verdict::Refused => {
            record(
                &daemon,
                Record::new("-", "auth.failure")
                    .source(source.clone())
                    .target(&username),
            )
            .await?;
            if outcome == Outcome::LockedOut {
                record(
                    &daemon,
                    Record::new("-", "auth.lockout")
                        .source(source)
                        .target(&username),
                )
                .await?;
            }
            Err(AppError::Unauthorized)
        }
    }
}

async fn judge(daemon: &Arc<Daemon>, request: LoginRequest) -> Result<Verdict, AppError> {
    let user = Username::parse(&request.username.trim().to_lowercase())
        .ok()
        .and_then(|name| lock(&daemon.store).current().settings.user(&name).cloned());
    let password = request.password;
    let stored = user.clone();
    let matches = daemon
        .hash_gate
        .run(1, move || match &stored {
            Some(user) => passwords::verify(&password, &user.password_hash),
            None => {
                passwords::verify_nothing(&password);
                false
            }
        })
        .await?;
    let Some(user) = user.filter(|u| matches && !u.disabled) else {
        return Ok(Verdict::Refused);
    };
    let Some(seed) = user.totp_secret.clone() else {
        return Ok(Verdict::Accepted(user));
    };
    let Some(code) = request.second_factor.filter(|c| !c.trim().is_empty()) else {
        return Ok(Verdict::NeedsSecondFactor);
    };
    if let Some(step) = totp::matching_step(seed.expose(), user.name.as_str(), &code) {
        // A code is good once: a second login with it (a replay) is refused.
        if lock(&daemon.sessions).accept_totp_step(&user.name, step) {
            return Ok(Verdict::Accepted(user));
        }
        return Ok(Verdict::Refused);
    }
    if spend_recovery_code(daemon, &user, code).await? {
        return Ok(Verdict::Accepted(user));
    }
    Ok(Verdict::Refused)
}

/// Accepts and removes a matching recovery code (stored as salted hashes: each is checked).
async fn spend_recovery_code(
    daemon: &Arc<Daemon>,
    user: &User,
    code: String,
) -> Result<bool, AppError> {
    let codes: Vec<Secret> = user.recovery_codes.clone();
    if codes.is_empty() || passwords::normalise_code(&code).len() < 8 {
        return Ok(false);
    }
    let count = codes.len() as u64;
    let matched = daemon
        .hash_gate
        .run(count, move || {
            codes
                .iter()
                .position(|stored| passwords::code_matches(&code, stored))
                .map(|index| codes[index].clone())
        })
        .await?;
    let Some(spent) = matched else {
        return Ok(false);
    };
    let worker = daemon.clone();
    let name = user.name.clone();
    blocking(move || {
        let record = Record::new(name.as_str(), "auth.recovery_code_used").target(name.as_str());
        worker.commit(record, |settings| {
            let user = settings
                .user_mut(&name)
                .ok_or_else(|| AppError::NotFound(format!("there is no user '{name}'")))?;
            let before = user.recovery_codes.len();
            user.recovery_codes.retain(|c| *c != spent);
            if user.recovery_codes.len() == before {
                return Err(AppError::Conflict("that code was just used".into()));
            }
            Ok(())
        })?;
        Ok(())
    })
    .await
    .map(|()| true)
    .or_else(|error| match error {
        AppError::Conflict(_) => Ok(false),
        other => Err(other),
    })
}

fn session_of(actor: &Actor) -> Result<&crate::sessions::Active, AppError> {
    actor.session.as_ref().ok_or(AppError::NotLoggedIn)
}

/// The session the request came with: who, and its CSRF token.
pub async fn session_get(actor: Actor) -> Result<Json<CurrentSession>, AppError> {
    Ok(Json(session_of(&actor)?.view()))
}

/// Logs out: ends the session the request came with.
pub async fn session_delete(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
) -> Result<StatusCode, AppError> {
    let id = session_of(&actor)?.id.clone();
    lock(&daemon.sessions).end(&id);
    save_sessions(&daemon).await?;
    record(
        &daemon,
        Record::new(&actor.name, "auth.logout")
            .source(actor.source.clone())
            .change("session", id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Live sessions: an admin (or root) sees everyone's, a user their own.
pub async fn sessions_get(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
) -> Json<Vec<SessionInfo>> {
    let settings = lock(&daemon.store).current().settings.clone();
    let only = (!actor.is_admin())
        .then(|| actor.user.as_ref().map(|(name, _)| name.clone()))
        .flatten();
    let current = actor.session.as_ref().map(|s| s.id.as_str());
    Json(lock(&daemon.sessions).list(&settings, only.as_ref(), current, jiff::Timestamp::now()))
}

/// Ends a session: one's own, or anyone's for an admin.
pub async fn sessions_delete(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let settings = lock(&daemon.store).current().settings.clone();
    let owner = lock(&daemon.sessions)
        .owner(&id, &settings, jiff::Timestamp::now())
        .ok_or_else(|| AppError::NotFound("there is no such session".into()))?;
    if !actor.is_admin() && !actor.is(&owner) {
        // Someone else's session is none of a peer's business, not even that it exists.
        return Err(AppError::NotFound("there is no such session".into()));
    }
    lock(&daemon.sessions).end(&id);
    save_sessions(&daemon).await?;
    record(
        &daemon,
        Record::new(&actor.name, "session.revoke")
            .source(actor.source.clone())
            .target(owner.as_str())
            .change("session", id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
