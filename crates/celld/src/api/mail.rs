//! The outbound mail relay (smarthost): set by an administrator, its password kept in the
//! secret store and never answered; the reconciler renders it into the mail machine.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cell_model::api::{MailRelayEdit, MailRelayView};
use cell_model::mail::{relay_password_problem, MailRelay};
use cell_model::settings::DomainMode;

use super::extract::{Admin, ValidJson};
use super::{blocking, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::sync::lock;

fn view(daemon: &Daemon) -> MailRelayView {
    let settings = lock(&daemon.store).current().settings.clone();
    MailRelayView {
        relay: settings.mail.relay.clone(),
        in_use: !matches!(settings.identity.domain, DomainMode::Internal),
    }
}

pub async fn relay_get(State(daemon): State<Arc<Daemon>>, _admin: Admin) -> Json<MailRelayView> {
    Json(view(&daemon))
}

/// Sets the relay. A password is needed the first time and whenever the host or the
/// username changes (the old one was for another login); it is stored before the
/// settings, stamped with when it was set, which the settings then say: the change
/// reaches the mail machine, and no pass offers it to the relay set before.
pub async fn relay_put(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(edit): ValidJson<MailRelayEdit>,
) -> Result<Json<MailRelayView>, AppError> {
    let before = lock(&daemon.store).current().settings.mail.relay.clone();
    let host = edit.host.trim().to_ascii_lowercase();
    let same_login = before
        .as_ref()
        .is_some_and(|b| b.host == host && b.username == edit.username);
    let password_set = match (&edit.password, &before) {
        (Some(_), _) => jiff::Timestamp::now(),
        (None, Some(before)) if same_login => before.password_set,
        (None, _) => {
            return Err(AppError::field(
                "password",
                "the password the relay gave for this login",
            ))
        }
    };
    let relay = MailRelay {
        host,
        port: edit.port,
        username: edit.username,
        verify_certificate: edit.verify_certificate,
        password_set,
    };
    relay.validate().map_err(AppError::Invalid)?;
    if let Some(password) = &edit.password {
        if let Some(problem) = relay_password_problem(password) {
            return Err(AppError::field("password", problem));
        }
    }
    let worker = daemon.clone();
    blocking(move || {
        if let Some(password) = &edit.password {
            crate::mail_relay::set_password(&worker.secrets, relay.password_set, password)
                .map_err(|e| AppError::Internal(format!("storing the relay's password: {e}")))?;
        }
        let mut record = Record::new(&actor.name, "mail.relay")
            .source(actor.source.clone())
            .target(relay.host.as_str());
        if edit.password.is_some() {
            record = record.change("password", "set");
        }
        worker.commit(record, |next| {
            next.mail.relay = Some(relay);
            Ok::<(), AppError>(())
        })?;
        Ok(())
    })
    .await?;
    Ok(Json(view(&daemon)))
}

/// Outgoing mail goes straight to each recipient's server again; the password is forgotten.
pub async fn relay_delete(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
) -> Result<StatusCode, AppError> {
    let worker = daemon.clone();
    blocking(move || {
        if lock(&worker.store).current().settings.mail.relay.is_none() {
            return Err(AppError::NotFound("no relay is set".into()));
        }
        let record = Record::new(&actor.name, "mail.relay_remove").source(actor.source.clone());
        worker.commit(record, |next| {
            next.mail.relay = None;
            Ok::<(), AppError>(())
        })?;
        crate::mail_relay::forget_password(&worker.secrets)
            .map_err(|e| AppError::Internal(format!("forgetting the relay's password: {e}")))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
