use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use cell_model::api::{
    NewUser, PasswordChange, RecoveryCodes, TotpConfirm, TotpEnrolment, UserPatch, UserView,
};
use cell_model::users::Secret;
use cell_model::{Role, Settings, User, Username};

use super::extract::{Actor, Admin, ValidJson};
use super::{blocking, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::sync::lock;
use crate::{passwords, totp};

fn view(user: &User) -> UserView {
    UserView {
        name: user.name.clone(),
        role: user.role,
        disabled: user.disabled,
        totp_enabled: user.totp_secret.is_some(),
    }
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
/// commits it and records `record` in the audit log.
fn commit_users(
    daemon: &Daemon,
    change: impl FnOnce(&mut Settings) -> Result<(), AppError>,
    record: Record,
) -> Result<Settings, AppError> {
    let mut store = lock(&daemon.store);
    let mut next = store.current().settings.clone();
    change(&mut next)?;
    if next.setup_complete && !has_enabled_admin(&next) {
        return Err(AppError::Conflict(
            "this would leave the cell without an enabled administrator".into(),
        ));
    }
    let stored = store.commit(next)?.settings.clone();
    lock(&daemon.audit).append(record)?;
    Ok(stored)
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
    let user = blocking(move || {
        let password_hash = passwords::hash(new.password.expose())
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let user = User {
            name: new.name.clone(),
            role: new.role,
            disabled: false,
            password_hash,
            totp_secret: None,
            recovery_codes: Vec::new(),
        };
        let record = Record::new(&actor.name, "user.create")
            .source(actor.source.clone())
            .target(new.name.as_str())
            .change("role", new.role.as_str());
        let created = user.clone();
        commit_users(
            &daemon,
            move |settings| {
                if settings.user(&user.name).is_some() {
                    return Err(AppError::Invalid(cell_model::FieldError::new(
                        "name",
                        format!("there is already a user '{}'", user.name),
                    )));
                }
                settings.users.push(user);
                Ok(())
            },
            record,
        )?;
        Ok(created)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view(&user))))
}

pub async fn user_patch(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    Path(name): Path<String>,
    ValidJson(patch): ValidJson<UserPatch>,
) -> Result<Json<UserView>, AppError> {
    let name = parse_name(&name)?;
    let mut record = Record::new(&actor.name, "user.update")
        .source(actor.source.clone())
        .target(name.as_str());
    if let Some(disabled) = patch.disabled {
        record = record.change("disabled", disabled.to_string());
    }
    if let Some(role) = patch.role {
        record = record.change("role", role.as_str());
    }
    let target = name.clone();
    let settings = blocking(move || {
        commit_users(
            &daemon,
            |settings| {
                let user = settings
                    .user_mut(&target)
                    .ok_or_else(|| no_such_user(&target))?;
                if let Some(disabled) = patch.disabled {
                    user.disabled = disabled;
                }
                if let Some(role) = patch.role {
                    user.role = role;
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

pub async fn user_delete(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, AppError> {
    let name = parse_name(&name)?;
    let record = Record::new(&actor.name, "user.delete")
        .source(actor.source.clone())
        .target(name.as_str());
    let worker = daemon.clone();
    blocking(move || {
        let mut devices = Vec::new();
        commit_users(
            &worker,
            |settings| {
                let before = settings.users.len();
                settings.users.retain(|u| u.name != name);
                if settings.users.len() == before {
                    return Err(no_such_user(&name));
                }
                // The account's VPN devices go with it.
                if let Some(vpn) = settings.vpn.as_mut() {
                    devices = vpn
                        .peers
                        .iter()
                        .filter(|p| p.owner == name)
                        .cloned()
                        .collect();
                    vpn.peers.retain(|p| p.owner != name);
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
    Ok(StatusCode::NO_CONTENT)
}

/// An admin resets anyone's password; a user changes their own with the current one.
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
    let record = Record::new(&actor.name, action)
        .source(actor.source.clone())
        .target(name.as_str());
    blocking(move || {
        if own {
            let current = lock(&daemon.store).current().settings.user(&name).cloned();
            let user = current.ok_or_else(|| no_such_user(&name))?;
            let offered = change
                .current_password
                .as_ref()
                .map(|p| p.expose())
                .unwrap_or("");
            if !passwords::verify(offered, &user.password_hash) {
                return Err(AppError::field(
                    "current_password",
                    "this is not your current password",
                ));
            }
        }
        let hash = passwords::hash(change.password.expose())
            .map_err(|e| AppError::Internal(e.to_string()))?;
        commit_users(
            &daemon,
            |settings| {
                let user = settings
                    .user_mut(&name)
                    .ok_or_else(|| no_such_user(&name))?;
                user.password_hash = hash;
                Ok(())
            },
            record,
        )
    })
    .await?;
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
    if !totp::check(&seed, name.as_str(), &confirm.code) {
        return Err(AppError::field(
            "code",
            "this code does not match; check the phone's clock",
        ));
    }
    let codes: Vec<String> = (0..totp::RECOVERY_CODES)
        .map(|_| passwords::random_code(2).to_lowercase())
        .collect();
    let digests: Vec<Secret> = codes.iter().map(|c| passwords::code_digest(c)).collect();
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
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// Removes a second factor: its owner, or an admin for someone who lost their phone.
pub async fn totp_delete(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<StatusCode, AppError> {
    let name = parse_name(&name)?;
    if !actor.is(&name) && !actor.is_admin() {
        return Err(AppError::Forbidden(
            "only the owner or an administrator may do this".into(),
        ));
    }
    let record = Record::new(&actor.name, "user.totp_disable")
        .source(actor.source.clone())
        .target(name.as_str());
    blocking(move || {
        commit_users(
            &daemon,
            |settings| {
                let user = settings
                    .user_mut(&name)
                    .ok_or_else(|| no_such_user(&name))?;
                user.totp_secret = None;
                user.recovery_codes.clear();
                Ok(())
            },
            record,
        )
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
