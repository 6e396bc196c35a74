//! App passwords (one per device, shown once, revocable, last use shown) for their owner
//! and administrators, and the check of a service login, which only the front door and
//! root may ask for: throttled per account and per source like the web login, failures
//! audited, and refused at once for a disabled account or a revoked password.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;
use cell_model::api::{
    AppPasswordView, CreatedAppPassword, NewAppPassword, ServiceLogin, ServiceLoginRequest,
};
use cell_model::settings::ServiceLogins;
use cell_model::users::{app_password_name, AppPassword, MAX_APP_PASSWORDS};
use cell_model::Username;

use super::extract::{Actor, Admin, ValidJson};
use super::{blocking, record, AppError};
use crate::app_passwords::{self, Candidate, LastUse};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::passwords;
use crate::peer::Peer;
use crate::sync::lock;
use crate::throttle::{self, Outcome};

fn owner_or_admin(actor: &Actor, name: &str) -> Result<Username, AppError> {
    let name = Username::parse(name).map_err(|e| AppError::NotFound(e.to_string()))?;
    if !actor.is_admin() && !actor.is(&name) {
        return Err(AppError::Forbidden(
            "only the account's owner or an administrator manages its app passwords".into(),
        ));
    }
    Ok(name)
}

pub async fn app_passwords_get(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Json<Vec<AppPasswordView>>, AppError> {
    let name = owner_or_admin(&actor, &name)?;
    let user = lock(&daemon.store)
        .current()
        .settings
        .user(&name)
        .cloned()
        .ok_or_else(|| AppError::NotFound(format!("there is no user '{name}'")))?;
    let uses = lock(&daemon.app_password_uses);
    Ok(Json(
        user.app_passwords
            .iter()
            .map(|app| {
                let last = uses.get(name.as_str(), &app.id);
                AppPasswordView {
                    id: app.id.clone(),
                    name: app.name.clone(),
                    created: app.created,
                    last_used: last.map(|l| l.at),
                    last_source: last.and_then(|l| l.source.clone()),
                    last_service: last.map(|l| l.service.clone()),
                }
            })
            .collect(),
    ))
}

/// Makes an app password for a device; the password is in this answer only. Only the
/// account's owner (or root at the console) makes one: an administrator who could would
/// read someone's mail unnoticed. Administrators list and revoke them.
pub async fn app_passwords_post(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
    ValidJson(request): ValidJson<NewAppPassword>,
) -> Result<(StatusCode, Json<CreatedAppPassword>), AppError> {
    let name = owner_or_admin(&actor, &name)?;
    let root = actor.user.is_none() && actor.name == "root";
    if !actor.is(&name) && !root {
        return Err(AppError::Forbidden(
            "app passwords are made by the account's owner".into(),
        ));
    }
    let label = app_password_name(&request.name).map_err(|e| AppError::field("name", e))?;
    let created = issue(
        &daemon,
        &actor.name,
        actor.source.clone(),
        &name,
        label,
        false,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Makes an app password named `label` for account `name` on behalf of `actor`. With
/// `replace`, one of the same name is replaced (a device's profile downloaded again).
pub(super) async fn issue(
    daemon: &Arc<Daemon>,
    actor: &str,
    source: Option<String>,
    name: &Username,
    label: String,
    replace: bool,
) -> Result<CreatedAppPassword, AppError> {
    let (id, password) = app_passwords::generate();
    let secret = app_passwords::split(&password)
        .map(|(_, secret)| secret)
        .ok_or_else(|| AppError::Internal("a generated app password has no secret".into()))?;
    let whole = password.clone();
    let (hash, service_hash) = daemon
        .hash_gate
        .run(0, move || {
            Ok::<_, passwords::HashError>((passwords::hash(&secret)?, passwords::hash(&whole)?))
        })
        .await?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let app = AppPassword {
        id: id.clone(),
        name: label.clone(),
        hash,
        service_hash: Some(service_hash),
        created: jiff::Timestamp::now(),
    };
    let record = Record::new(actor, "user.app_password_create")
        .source(source)
        .target(name.as_str())
        .change("app_password", format!("{label} ({id})"));
    let worker = daemon.clone();
    let target = name.clone();
    let replaced = blocking(move || {
        let mut replaced = None;
        worker.commit(record, |settings| {
            let user = settings
                .user_mut(&target)
                .ok_or_else(|| AppError::NotFound(format!("there is no user '{target}'")))?;
            if user.app_passwords.iter().any(|a| a.id == app.id) {
                return Err(AppError::Conflict(
                    "the cell drew an id already in use; try again".into(),
                ));
            }
            let same_name = user.app_passwords.iter().position(|a| a.name == app.name);
            match same_name.filter(|_| replace) {
                Some(index) => {
                    replaced = Some(std::mem::replace(&mut user.app_passwords[index], app).id);
                }
                None if user.app_passwords.len() >= MAX_APP_PASSWORDS => {
                    return Err(AppError::Conflict(format!(
                        "at most {MAX_APP_PASSWORDS} app passwords; revoke one first"
                    )));
                }
                None => user.app_passwords.push(app),
            }
            Ok(())
        })?;
        Ok(replaced)
    })
    .await?;
    if let Some(old) = replaced {
        forget_use(daemon, name, &old).await?;
    }
    Ok(CreatedAppPassword {
        id,
        name: label,
        password,
    })
}

/// Drops the last use of a revoked or replaced app password.
async fn forget_use(daemon: &Daemon, name: &Username, id: &str) -> Result<(), AppError> {
    let (path, bytes) = {
        let mut uses = lock(&daemon.app_password_uses);
        uses.forget(name.as_str(), id);
        uses.snapshot(Instant::now())
    };
    blocking(move || Ok(cell_store::atomic::write(&path, &bytes, 0o600)?)).await
}

/// Revokes an app password: the next service login with it is refused.
pub async fn app_password_delete(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let name = owner_or_admin(&actor, &name)?;
    let record = Record::new(&actor.name, "user.app_password_revoke")
        .source(actor.source.clone())
        .target(name.as_str())
        .change("app_password", id.clone());
    let worker = daemon.clone();
    let target = name.clone();
    let revoked = id.clone();
    blocking(move || {
        worker.commit(record, |settings| {
            let user = settings
                .user_mut(&target)
                .ok_or_else(|| AppError::NotFound(format!("there is no user '{target}'")))?;
            let before = user.app_passwords.len();
            user.app_passwords.retain(|a| a.id != revoked);
            if user.app_passwords.len() == before {
                return Err(AppError::NotFound(format!(
                    "'{target}' has no app password '{revoked}'"
                )));
            }
            Ok(())
        })?;
        Ok(())
    })
    .await?;
    forget_use(&daemon, &name, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn service_logins_get(
    State(daemon): State<Arc<Daemon>>,
    _actor: Actor,
) -> Json<ServiceLogins> {
    Json(
        lock(&daemon.store)
            .current()
            .settings
            .service_logins
            .clone(),
    )
}

/// Whether the account password works for service logins (accounts without a second
/// factor); app passwords always do.
pub async fn service_logins_put(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(logins): ValidJson<ServiceLogins>,
) -> Result<Json<ServiceLogins>, AppError> {
    let worker = daemon.clone();
    let saved = logins.clone();
    blocking(move || {
        let record = Record::new(&actor.name, "service_logins.update").source(actor.source.clone());
        worker.commit(record, |next| {
            next.service_logins = saved;
            Ok::<(), AppError>(())
        })?;
        Ok(())
    })
    .await?;
    Ok(Json(logins))
}

/// Checks a service login. Only the front door (and root) may ask: it is a password
/// oracle, kept behind the throttle and out of the browser's reach.
pub async fn service_login_post(
    State(daemon): State<Arc<Daemon>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ValidJson(request): ValidJson<ServiceLoginRequest>,
) -> Result<Json<ServiceLogin>, AppError> {
    if peer.uid != Some(0) && peer.uid != Some(daemon.config.front_door_uid) {
        return Err(AppError::Forbidden(
            "service logins are checked for the front door and the services only".into(),
        ));
    }
    if !app_passwords::SERVICES.contains(&request.service.as_str()) {
        return Err(AppError::field(
            "service",
            format!("one of {}", app_passwords::SERVICES.join(", ")),
        ));
    }
    let username = request.username.trim().to_lowercase();
    let account = throttle::account_key(&username);
    let address = throttle::source_key(request.source.as_deref());
    let now = Instant::now();
    let (generation, settings) = {
        let store = lock(&daemon.store);
        let current = store.current();
        (current.generation, current.settings.clone())
    };
    if let Some(app) =
        lock(&daemon.service_trust).get(&username, &request.password, generation, now)
    {
        return Ok(Json(ServiceLogin {
            username,
            app_password: app,
        }));
    }
    let outcome = lock(&daemon.throttle)
        .attempt(&[&account, &address], now)
        .map_err(|wait| AppError::TooManyAttempts {
            retry_after: wait.as_secs().max(1),
        })?;
    let user = Username::parse(&username)
        .ok()
        .and_then(|name| settings.user(&name).cloned())
        .filter(|user| !user.disabled);
    let candidate = user.as_ref().and_then(|user| {
        app_passwords::candidate(
            user,
            &request.password,
            settings.service_logins.account_password,
        )
    });
    let (accepted, secret_hash, offered) = match candidate {
        Some((candidate, hash, offered)) => (Some(candidate), Some(hash), offered),
        None => (None, None, request.password.clone()),
    };
    let matches = daemon
        .hash_gate
        .run(1, move || match &secret_hash {
            Some(hash) => passwords::verify(&offered, hash),
            None => {
                passwords::verify_nothing(&offered);
                false
            }
        })
        .await
        .inspect_err(|_| {
            let mut throttle = lock(&daemon.throttle);
            throttle.refund(&account);
            throttle.refund(&address);
        })?;
    match accepted.filter(|_| matches) {
        Some(candidate) => {
            {
                let mut throttle = lock(&daemon.throttle);
                throttle.clear(&account);
                throttle.refund(&address);
            }
            let app = match candidate {
                Candidate::App { id, name } => {
                    note_use(
                        &daemon,
                        &username,
                        &id,
                        request.source.clone(),
                        &request.service,
                        now,
                    )
                    .await;
                    Some(name)
                }
                Candidate::Account => None,
            };
            lock(&daemon.service_trust).insert(
                &username,
                &request.password,
                generation,
                app.clone(),
                now,
            );
            Ok(Json(ServiceLogin {
                username,
                app_password: app,
            }))
        }
        None => {
            let failure = Record::new("-", "auth.service_failure")
                .source(request.source.clone())
                .target(&username)
                .change("service", request.service.clone());
            record(&daemon, failure).await?;
            if outcome == Outcome::LockedOut {
                let lockout = Record::new("-", "auth.lockout")
                    .source(request.source.clone())
                    .target(&username);
                record(&daemon, lockout).await?;
            }
            Err(AppError::Unauthorized)
        }
    }
}

/// Records when the app password was used; saved at most once a minute.
pub(super) async fn note_use(
    daemon: &Arc<Daemon>,
    username: &str,
    id: &str,
    source: Option<String>,
    service: &str,
    now: Instant,
) {
    let last = LastUse {
        at: jiff::Timestamp::now(),
        source,
        service: service.to_owned(),
    };
    let save = {
        let mut uses = lock(&daemon.app_password_uses);
        uses.note(username, id, last, now)
            .then(|| uses.snapshot(now))
    };
    if let Some((path, bytes)) = save {
        let written =
            tokio::task::spawn_blocking(move || cell_store::atomic::write(&path, &bytes, 0o600))
                .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::warn!("cannot save the app passwords' last use");
        }
    }
}
