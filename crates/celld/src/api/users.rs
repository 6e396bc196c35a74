use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::time::Instant;

use cell_model::api::{
    NewUser, PasswordChange, RecoveryCodes, TotpConfirm, TotpEnrolment, TotpRemoval, UserPatch,
    UserView,
};
use cell_model::users::{Password, Secret};
use cell_model::{Role, Settings, User, Username};

use super::extract::{Actor, Admin, OptionalJson, ValidJson};
use super::{blocking, record, save_sessions, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::sync::lock;
use crate::{passwords, throttle, totp, user_data};

fn view(user: &User) -> UserView {
    UserView {
        name: user.name.clone(),
        role: user.role,
        disabled: user.disabled,
        totp_enabled: user.totp_secret.is_some(),
        mail_aliases: user.mail_aliases.clone(),
        files_quota_mib: user.files_quota_mib(),
    }
}

/// At most this many mail aliases per user.
const MAX_MAIL_ALIASES: usize = 20;

/// Whether `part` is already someone's address in the mail domain: a username, or an
/// alias of a user other than `except`.
fn address_taken(settings: &cell_model::Settings, part: &Username, except: &Username) -> bool {
    settings
        .users
        .iter()
        .any(|u| &u.name == part || (&u.name != except && u.mail_aliases.contains(part)))
}

fn parse_name(name: &str) -> Result<Username, AppError> {
    Username::parse(name).map_err(|message| AppError::field("name", message))
}

fn no_such_user(name: &Username) -> AppError {
    AppError::NotFound(format!("there is no user '{name}'"))
}

/// Whether `settings` still has an enabled admin, so nobody locks the cell's owner out.
fn has_enabled_admin(settings: &Settings) -> bool {
    settings
        .users
        .iter()
        .any(|u| u.role == Role::Admin && !u.disabled)
}

/// Applies `change` to a copy of the settings, refuses it if it leaves no enabled admin,
/// and stores it with `record` as its audit entry. Blocks: call it in `blocking`.
fn commit_users(
    daemon: &Daemon,
    change: impl FnOnce(&mut Settings) -> Result<(), AppError>,
    record: Record,
) -> Result<Settings, AppError> {
    let stored = daemon.commit(record, |next| {
        change(next)?;
        if next.setup_complete && !has_enabled_admin(next) {
            return Err(AppError::Conflict(
                "this would leave the cell without an enabled administrator".into(),
            ));
        }
        Ok(())
    })?;
    Ok(stored.settings)
}

/// Checks `offered` against `name`'s current password before a change of their own
/// credentials: throttled like a login, and audited as `<action>_refused` when wrong.
async fn check_current_password(
    daemon: &Arc<Daemon>,
    actor: &Actor,
    name: &Username,
    offered: Option<&Password>,
    action: &str,
) -> Result<(), AppError> {
    let account = throttle::account_key(name.as_str());
    let address = throttle::source_key(actor.source.as_deref());
    lock(&daemon.throttle)
        .attempt(&[&account, &address], Instant::now())
        .map_err(|wait| AppError::TooManyAttempts {
            retry_after: wait.as_secs().max(1),
        })?;
    let hash = lock(&daemon.store)
        .current()
        .settings
        .user(name)
        .map(|u| u.password_hash.clone())
        .ok_or_else(|| no_such_user(name))?;
    let offered = offered.map(|p| p.expose().to_owned()).unwrap_or_default();
    let matches = match daemon
        .hash_gate
        .run(1, move || passwords::verify(&offered, &hash))
        .await
    {
        Ok(matches) => matches,
        Err(busy) => {
            let mut throttle = lock(&daemon.throttle);
            throttle.refund(&account);
            throttle.refund(&address);
            return Err(busy.into());
        }
    };
    if matches {
        let mut throttle = lock(&daemon.throttle);
        throttle.clear(&account);
        throttle.refund(&address);
        return Ok(());
    }
    record(
        daemon,
        Record::new(&actor.name, format!("{action}_refused"))
            .source(actor.source.clone())
            .target(name.as_str())
            .change("reason", "wrong current password"),
    )
    .await?;
    Err(AppError::field(
        "current_password",
        "this is not your current password",
    ))
}

/// After a change of one's own credentials (which ends every session of the account),
/// the session that made it goes on.
async fn keep_own_session(
    daemon: &Arc<Daemon>,
    actor: &Actor,
    name: &Username,
) -> Result<(), AppError> {
    let Some(session) = &actor.session else {
        return Ok(());
    };
    let user = lock(&daemon.store).current().settings.user(name).cloned();
    if let Some(user) = user {
        lock(&daemon.sessions).restamp(&session.id, &user);
    }
    save_sessions(daemon).await
}

async fn hash_password(daemon: &Daemon, password: &Password) -> Result<Secret, AppError> {
    let password = password.expose().to_owned();
    daemon
        .hash_gate
        .run(0, move || passwords::hash(&password))
        .await?
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// Admins see everyone; a peer sees only themself.
pub async fn users_get(State(daemon): State<Arc<Daemon>>, actor: Actor) -> Json<Vec<UserView>> {
    let store = lock(&daemon.store);
    let users = store
        .current()
        .settings
        .users
        .iter()
        .filter(|u| actor.is_admin() || actor.is(&u.name))
        .map(view)
        .collect();
    Json(users)
}

pub async fn user_get(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Json<UserView>, AppError> {
    let name = parse_name(&name)?;
    if !actor.is_admin() && !actor.is(&name) {
        return Err(AppError::Forbidden(
            "a peer can only see their own account".into(),
        ));
    }
    let store = lock(&daemon.store);
    store
        .current()
        .settings
        .user(&name)
        .map(|u| Json(view(u)))
        .ok_or_else(|| no_such_user(&name))
}

pub async fn users_post(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(new): ValidJson<NewUser>,
) -> Result<(StatusCode, Json<UserView>), AppError> {
    let password_hash = hash_password(&daemon, &new.password).await?;
    let name = new.name.into_username();
    let user = User {
        name: name.clone(),
        role: new.role,
        disabled: false,
        password_hash,
        totp_secret: None,
        recovery_codes: Vec::new(),
        app_passwords: Vec::new(),
        mail_aliases: Vec::new(),
        files_quota_mib: None,
    };
    let record = Record::new(&actor.name, "user.create")
        .source(actor.source.clone())
        .target(name.as_str());
    let created = user.clone();
    let state_dir = daemon.config.state_dir.clone();
    let worker = daemon.clone();
    blocking(move || {
        commit_users(
            &worker,
            move |settings| {
                if settings.user(&user.name).is_some() {
                    return Err(AppError::field(
                        "name",
                        format!("there is already a user '{}'", user.name),
                    ));
                }
                // Data a deleted account left (its removal was cut short) is never
                // inherited: deleting the name again removes it.
                if let Some(what) = user_data::leftover(&state_dir, user.name.as_str()) {
                    return Err(AppError::field(
                        "name",
                        format!(
                            "an earlier user '{}' left {what} on the cell; delete '{}' again to \
                             remove it, or choose another name",
                            user.name, user.name
                        ),
                    ));
                }
                if let Some(owner) = settings
                    .users
                    .iter()
                    .find(|u| u.mail_aliases.contains(&user.name))
                {
                    return Err(AppError::field(
                        "name",
                        format!("'{}' is a mail alias of {}", user.name, owner.name),
                    ));
                }
                settings.users.push(user);
                Ok(())
            },
            record,
        )
    })
    .await?;
    // A new account does not inherit the failed logins of an earlier one of its name.
    lock(&daemon.throttle).clear(&throttle::account_key(created.name.as_str()));
    Ok((StatusCode::CREATED, Json(view(&created))))
}

pub async fn user_patch(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    Path(name): Path<String>,
    ValidJson(patch): ValidJson<UserPatch>,
) -> Result<Json<UserView>, AppError> {
    let name = parse_name(&name)?;
    let record = Record::new(&actor.name, "user.update")
        .source(actor.source.clone())
        .target(name.as_str());
    let target = name.clone();
    let settings = blocking(move || {
        commit_users(
            &daemon,
            |settings| {
                if settings.user(&target).is_none() {
                    return Err(no_such_user(&target));
                }
                let aliases = match patch.mail_aliases {
                    Some(mut aliases) => {
                        aliases.sort();
                        aliases.dedup();
                        if aliases.len() > MAX_MAIL_ALIASES {
                            return Err(AppError::field(
                                "mail_aliases",
                                format!("at most {MAX_MAIL_ALIASES} aliases"),
                            ));
                        }
                        if let Some(taken) =
                            aliases.iter().find(|a| address_taken(settings, a, &target))
                        {
                            return Err(AppError::field(
                                "mail_aliases",
                                format!("'{taken}' is already a user's address"),
                            ));
                        }
                        Some(aliases)
                    }
                    None => None,
                };
                if let Some(quota) = patch.files_quota_mib {
                    if !(1..=cell_model::users::MAX_FILES_QUOTA_MIB).contains(&quota) {
                        return Err(AppError::field(
                            "files_quota_mib",
                            format!("from 1 to {} MiB", cell_model::users::MAX_FILES_QUOTA_MIB),
                        ));
                    }
                }
                let user = settings
                    .user_mut(&target)
                    .ok_or_else(|| no_such_user(&target))?;
                if let Some(disabled) = patch.disabled {
                    user.disabled = disabled;
                }
                if let Some(role) = patch.role {
                    user.role = role;
                }
                if let Some(aliases) = aliases {
                    user.mail_aliases = aliases;
                }
                if let Some(quota) = patch.files_quota_mib {
                    user.files_quota_mib = Some(quota);
                }
                Ok(())
            },
            record,
        )
    })
    .await?;
    settings
        .user(&name)
        .map(|u| Json(view(u)))
        .ok_or_else(|| no_such_user(&name))
}

/// Deletes an account with its VPN devices and, once the services no longer serve it,
/// its mailbox, calendars, address books and files (export them first: `GET
/// /v1/users/{name}/export`). Of a name that is no longer an account, removes what it left.
pub async fn user_delete(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, AppError> {
    let name = parse_name(&name)?;
    let state_dir = daemon.config.state_dir.clone();
    let is_user = lock(&daemon.store).current().settings.user(&name).is_some();
    if !is_user {
        if user_data::leftover(&state_dir, name.as_str()).is_none() {
            return Err(no_such_user(&name));
        }
        let record = Record::new(&actor.name, "user.data_remove")
            .source(actor.source.clone())
            .target(name.as_str());
        let _ = tokio::time::timeout(SERVICES_LET_GO, daemon.settled()).await;
        let now = lock(&daemon.store).current().generation;
        if !services_let_go(&daemon, now) {
            return Err(AppError::Conflict(format!(
                "the mail or files service still runs on older settings; delete '{name}' again \
                 once they apply"
            )));
        }
        remove_data(&daemon, &name).await?;
        super::record(&daemon, record).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    let record = Record::new(&actor.name, "user.delete")
        .source(actor.source.clone())
        .target(name.as_str());
    let worker = daemon.clone();
    let target = name.clone();
    blocking(move || {
        let mut devices = Vec::new();
        commit_users(
            &worker,
            |settings| {
                let before = settings.users.len();
                settings.users.retain(|u| u.name != target);
                if settings.users.len() == before {
                    return Err(no_such_user(&target));
                }
                // The account's VPN devices go with it.
                if let Some(vpn) = settings.vpn.as_mut() {
                    devices = vpn
                        .peers
                        .iter()
                        .filter(|p| p.owner == target)
                        .cloned()
                        .collect();
                    vpn.peers.retain(|p| p.owner != target);
                }
                Ok(())
            },
            record,
        )?;
        for device in devices {
            worker
                .secrets
                .remove(&crate::vpn::peer_key_name(&device.public_key))
                .map_err(|e| AppError::Internal(e.to_string()))?;
        }
        Ok(())
    })
    .await?;
    // The mail server no longer delivers to the account, nor the DAV server serves it,
    // before its data goes: nothing is written back after the removal. A task of its own,
    // so a client that stops waiting does not cut the removal short.
    let subject = name.clone();
    let deleted_in = lock(&daemon.store).current().generation;
    tokio::spawn(async move {
        let _ = tokio::time::timeout(SERVICES_LET_GO, daemon.settled()).await;
        if !services_let_go(&daemon, deleted_in) {
            return Err(AppError::Conflict(format!(
                "'{subject}' is deleted, but the mail or files service has not let go of it \
                 yet, so its data is kept: delete '{subject}' again later to remove it"
            )));
        }
        // Made again meanwhile: the data is the new account's now.
        if lock(&daemon.store)
            .current()
            .settings
            .user(&subject)
            .is_some()
        {
            tracing::warn!(user = %subject, "the name is an account again; its data is kept");
            return Ok(());
        }
        remove_data(&daemon, &subject).await
    })
    .await
    .map_err(|error| {
        AppError::Internal(format!("removing the data of '{name}' stopped: {error}"))
    })??;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the mail and DAV machines run on settings of `generation` or later (so an
/// account deleted by then is served by neither).
fn services_let_go(daemon: &Daemon, generation: u64) -> bool {
    let states = daemon.board().states();
    ["mail", "dav"].iter().all(|applier| {
        states
            .iter()
            .any(|s| s.applier == *applier && s.ok && s.generation >= generation)
    })
}

/// How long a deletion waits for the services to stop serving the account.
const SERVICES_LET_GO: std::time::Duration = std::time::Duration::from_secs(60);

async fn remove_data(daemon: &Daemon, name: &Username) -> Result<(), AppError> {
    let state_dir = daemon.config.state_dir.clone();
    let subject = name.to_string();
    let removed = blocking(move || {
        user_data::remove(&state_dir, &subject).map_err(|error| {
            AppError::Internal(format!(
                "removing the data of '{subject}' stopped: {error}; delete '{subject}' again to finish"
            ))
        })
    })
    .await?;
    tracing::info!(user = %name, places = removed, "a deleted account's data was removed");
    Ok(())
}

/// An account's mail, calendars, address books and files as one tar archive, streamed as
/// it is written: for its owner, or an administrator (before deleting it, or of what a
/// deleted account left). The archive is never stored on the cell.
pub async fn user_export_get(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let name = parse_name(&name)?;
    if !actor.is_admin() && !actor.is(&name) {
        return Err(AppError::Forbidden(
            "only the account's owner or an administrator exports its data".into(),
        ));
    }
    let state_dir = daemon.config.state_dir.clone();
    let is_user = lock(&daemon.store).current().settings.user(&name).is_some();
    if !is_user && user_data::leftover(&state_dir, name.as_str()).is_none() {
        return Err(no_such_user(&name));
    }
    let record = Record::new(&actor.name, "user.export")
        .source(actor.source.clone())
        .target(name.as_str());
    super::record(&daemon, record).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let subject = name.to_string();
    tokio::task::spawn_blocking(move || {
        let mut writer = user_data::ChannelWriter::new(sender.clone());
        match user_data::export(&state_dir, &subject, &mut writer) {
            Ok(()) => tracing::info!(user = %subject, "account exported"),
            Err(error) => {
                tracing::warn!(user = %subject, %error, "account export stopped");
                // The download fails instead of ending like a whole archive.
                let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
            }
        }
    });
    let date = jiff::Zoned::now().date();
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}-{date}.tar\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::new(ChannelBody(receiver)),
    )
        .into_response())
}

/// A response body fed by a channel, piece by piece; an error ends it abruptly.
struct ChannelBody(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|piece| piece.map(|piece| piece.map(http_body::Frame::data)))
    }
}

/// How the account's owner sets the cell's services up in their apps: for its owner or an
/// administrator.
pub async fn client_settings_get(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Json<cell_model::api::ClientSettings>, AppError> {
    let name = parse_name(&name)?;
    if !actor.is_admin() && !actor.is(&name) {
        return Err(AppError::Forbidden(
            "only the account's owner or an administrator sees its settings".into(),
        ));
    }
    let settings = lock(&daemon.store).current().settings.clone();
    if settings.user(&name).is_none() {
        return Err(no_such_user(&name));
    }
    let zone = settings.zone();
    let services = &settings.services;
    Ok(Json(cell_model::api::ClientSettings {
        mail: services.mail.then(|| cell_model::api::MailClientSettings {
            address: format!("{name}@{zone}"),
            server: format!("mail.{zone}"),
            imap_port: 993,
            submission_port: 587,
        }),
        calendar_url: services
            .calendar
            .then(|| format!("https://calendar.{zone}/")),
        files_url: services.files.then(|| format!("https://files.{zone}/")),
        username: name,
    }))
}

/// An admin resets anyone's password (ending their sessions); a user changes their own
/// with the current one (ending their other sessions).
pub async fn password_put(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
    ValidJson(change): ValidJson<PasswordChange>,
) -> Result<StatusCode, AppError> {
    let name = parse_name(&name)?;
    let own = actor.is(&name);
    if !own && !actor.is_admin() {
        return Err(AppError::Forbidden(
            "only an administrator may reset another user's password".into(),
        ));
    }
    let action = if own {
        "user.password_change"
    } else {
        "user.password_reset"
    };
    if own {
        check_current_password(
            &daemon,
            &actor,
            &name,
            change.current_password.as_ref(),
            action,
        )
        .await?;
    } else if lock(&daemon.store).current().settings.user(&name).is_none() {
        return Err(no_such_user(&name));
    }
    let hash = hash_password(&daemon, &change.password).await?;
    let record = Record::new(&actor.name, action)
        .source(actor.source.clone())
        .target(name.as_str());
    let worker = daemon.clone();
    let target = name.clone();
    blocking(move || {
        commit_users(
            &worker,
            |settings| {
                let user = settings
                    .user_mut(&target)
                    .ok_or_else(|| no_such_user(&target))?;
                user.password_hash = hash;
                Ok(())
            },
            record,
        )
    })
    .await?;
    if own {
        keep_own_session(&daemon, &actor, &name).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Starts enrolling a second factor for oneself: a seed to scan, active once confirmed.
pub async fn totp_post(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Json<TotpEnrolment>, AppError> {
    let name = parse_name(&name)?;
    if !actor.is(&name) {
        return Err(AppError::Forbidden(
            "a second factor is enrolled by its owner".into(),
        ));
    }
    let (secret, url) =
        totp::generate(name.as_str()).map_err(|e| AppError::Internal(e.to_string()))?;
    lock(&daemon.pending_totp).insert(name.to_string(), secret.clone());
    Ok(Json(TotpEnrolment { secret, url }))
}

pub async fn totp_confirm_post(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
    ValidJson(confirm): ValidJson<TotpConfirm>,
) -> Result<Json<RecoveryCodes>, AppError> {
    let name = parse_name(&name)?;
    if !actor.is(&name) {
        return Err(AppError::Forbidden(
            "a second factor is enrolled by its owner".into(),
        ));
    }
    let seed = lock(&daemon.pending_totp)
        .get(name.as_str())
        .cloned()
        .ok_or_else(|| AppError::Conflict("start the enrolment first".into()))?;
    let step = totp::matching_step(&seed, name.as_str(), &confirm.code).ok_or_else(|| {
        AppError::field("code", "this code does not match; check the phone's clock")
    })?;
    // The code that confirmed the enrolment cannot log in as well.
    lock(&daemon.sessions).accept_totp_step(&name, step);
    let codes: Vec<String> = (0..totp::RECOVERY_CODES)
        .map(|_| passwords::random_code(3).to_lowercase())
        .collect();
    let to_hash = codes.clone();
    let digests: Vec<Secret> = daemon
        .hash_gate
        .run(0, move || {
            to_hash
                .iter()
                .map(|c| passwords::code_hash(c))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let record = Record::new(&actor.name, "user.totp_enable")
        .source(actor.source.clone())
        .target(name.as_str());
    let worker = daemon.clone();
    let target = name.clone();
    blocking(move || {
        commit_users(
            &worker,
            |settings| {
                let user = settings
                    .user_mut(&target)
                    .ok_or_else(|| no_such_user(&target))?;
                user.totp_secret = Some(Secret::new(seed));
                user.recovery_codes = digests;
                Ok(())
            },
            record,
        )
    })
    .await?;
    lock(&daemon.pending_totp).remove(name.as_str());
    keep_own_session(&daemon, &actor, &name).await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// Removes a second factor: its owner (with their password), or an admin for someone who
/// lost their phone. The account's sessions end (the owner's own goes on).
pub async fn totp_delete(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
    OptionalJson(body): OptionalJson<TotpRemoval>,
) -> Result<StatusCode, AppError> {
    let name = parse_name(&name)?;
    let own = actor.is(&name);
    if !own && !actor.is_admin() {
        return Err(AppError::Forbidden(
            "only the owner or an administrator may do this".into(),
        ));
    }
    if own {
        let offered = body.and_then(|b| b.current_password);
        check_current_password(
            &daemon,
            &actor,
            &name,
            offered.as_ref(),
            "user.totp_disable",
        )
        .await?;
    }
    let record = Record::new(&actor.name, "user.totp_disable")
        .source(actor.source.clone())
        .target(name.as_str());
    let worker = daemon.clone();
    let target = name.clone();
    blocking(move || {
        commit_users(
            &worker,
            |settings| {
                let user = settings
                    .user_mut(&target)
                    .ok_or_else(|| no_such_user(&target))?;
                user.totp_secret = None;
                user.recovery_codes.clear();
                Ok(())
            },
            record,
        )
    })
    .await?;
    if own {
        keep_own_session(&daemon, &actor, &name).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
