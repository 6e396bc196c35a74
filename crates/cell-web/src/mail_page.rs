//! The Mail page: the outbound relay (smarthost) the cell sends through, for connections
//! that cannot send on port 25. Its password is typed here and never shown again.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Form;
use cell_model::api::MailRelayView;
use celld_client::{Bytes, Method};
use serde::Deserialize;
use serde_json::json;

use crate::pages::{render, Errors, Nav, PageUser};
use crate::routes::{page as declare, Routed};
use crate::{AppError, AppState};

pub fn routes() -> Vec<Routed> {
    use crate::routes::Access::Admin;
    vec![
        declare(Method::GET, "/mail", Admin, get(mail_get)),
        declare(Method::POST, "/mail/relay", Admin, post(relay_post)),
        declare(
            Method::POST,
            "/mail/relay/remove",
            Admin,
            post(relay_remove_post),
        ),
    ]
}

#[derive(Template)]
#[template(path = "mail.html")]
struct MailPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    csrf: String,
    view: MailRelayView,
    form: RelayForm,
    errors: Errors,
    general_error: Option<String>,
}
crate::field_errors!(MailPage);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RelayForm {
    host: String,
    port: String,
    username: String,
    password: String,
    /// A checkbox: present when ticked.
    verify_certificate: Option<String>,
}

impl RelayForm {
    fn of(view: &MailRelayView) -> Self {
        match &view.relay {
            Some(relay) => Self {
                host: relay.host.clone(),
                port: relay.port.to_string(),
                username: relay.username.clone(),
                password: String::new(),
                verify_certificate: relay.verify_certificate.then(|| "on".into()),
            },
            None => Self {
                port: "587".into(),
                verify_certificate: Some("on".into()),
                ..Self::default()
            },
        }
    }
}

async fn page(
    state: &AppState,
    user: &PageUser,
    form: Option<RelayForm>,
    errors: Errors,
    notice: Option<String>,
) -> Result<Html<String>, AppError> {
    let view: MailRelayView = state
        .celld
        .json(Method::GET, "/v1/mail/relay", &user.on_behalf(), None)
        .await?;
    render(MailPage {
        version: cell_systemd::image_version(),
        nav: user.nav("settings"),
        notice,
        csrf: user.csrf(),
        form: form.unwrap_or_else(|| RelayForm::of(&view)),
        view,
        general_error: errors.general.clone(),
        errors,
    })
}

async fn mail_get(State(state): State<AppState>, user: PageUser) -> Result<Html<String>, AppError> {
    page(&state, &user, None, Errors::default(), None).await
}

async fn relay_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<RelayForm>,
) -> Result<Response, AppError> {
    let Ok(port) = form.port.trim().parse::<u16>() else {
        let errors = Errors::field("port", "a port from 1 to 65535: usually 587 (or 465)");
        return refused(&state, &user, form, errors).await;
    };
    let mut body = json!({
        "host": form.host,
        "port": port,
        "username": form.username,
        "verify_certificate": form.verify_certificate.is_some(),
    });
    // Left empty, the password set before stays.
    if !form.password.is_empty() {
        body["password"] = json!(form.password);
    }
    let result = state
        .celld
        .send(
            Method::PUT,
            "/v1/mail/relay",
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await;
    match result {
        Ok(()) => Ok(page(
            &state,
            &user,
            None,
            Errors::default(),
            Some("Outgoing mail now goes through the relay.".into()),
        )
        .await?
        .into_response()),
        Err(error) => {
            let errors = Errors::from_refusal(error)?;
            refused(&state, &user, form, errors).await
        }
    }
}

/// The page again with the form as sent (but never the password) and why it was refused.
async fn refused(
    state: &AppState,
    user: &PageUser,
    form: RelayForm,
    errors: Errors,
) -> Result<Response, AppError> {
    let form = RelayForm {
        password: String::new(),
        ..form
    };
    Ok((
        StatusCode::BAD_REQUEST,
        page(state, user, Some(form), errors, None).await?,
    )
        .into_response())
}

async fn relay_remove_post(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Response, AppError> {
    state
        .celld
        .send(Method::DELETE, "/v1/mail/relay", &user.on_behalf(), None)
        .await?;
    Ok(page(
        &state,
        &user,
        None,
        Errors::default(),
        Some("Outgoing mail goes straight to each recipient's server again.".into()),
    )
    .await?
    .into_response())
}
