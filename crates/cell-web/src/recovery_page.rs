//! The recovery console's page: the password that guards its root shell.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Form;
use cell_model::api::RecoveryView;
use celld_client::{Bytes, Method};
use serde::Deserialize;
use serde_json::json;

use crate::pages::{render, Errors, Nav, PageUser};
use crate::routes::{page as declare, Routed};
use crate::{AppError, AppState};

pub fn routes() -> Vec<Routed> {
    use crate::routes::Access::Admin;
    vec![
        declare(Method::GET, "/recovery", Admin, get(recovery_get)),
        declare(
            Method::POST,
            "/recovery/shell-password",
            Admin,
            post(shell_password_post),
        ),
        declare(
            Method::POST,
            "/recovery/shell-password/remove",
            Admin,
            post(shell_password_remove_post),
        ),
    ]
}

#[derive(Template)]
#[template(path = "recovery.html")]
struct RecoveryPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    csrf: String,
    view: RecoveryView,
    errors: Errors,
    general_error: Option<String>,
}
crate::field_errors!(RecoveryPage);

async fn page(
    state: &AppState,
    user: &PageUser,
    errors: Errors,
    notice: Option<String>,
) -> Result<Html<String>, AppError> {
    let view: RecoveryView = state
        .celld
        .json(Method::GET, "/v1/recovery", &user.on_behalf(), None)
        .await?;
    render(RecoveryPage {
        version: cell_systemd::image_version(),
        nav: user.nav("settings"),
        notice,
        csrf: user.csrf(),
        view,
        general_error: errors.general.clone(),
        errors,
    })
}

pub async fn recovery_get(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Html<String>, AppError> {
    page(&state, &user, Errors::default(), None).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    password: String,
    again: String,
}

pub async fn shell_password_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<PasswordForm>,
) -> Result<Response, AppError> {
    if form.password != form.again {
        let errors = Errors::field("again", "the two passwords differ");
        return Ok((
            StatusCode::BAD_REQUEST,
            page(&state, &user, errors, None).await?,
        )
            .into_response());
    }
    let body = Bytes::from(json!({"password": form.password}).to_string());
    let result = state
        .celld
        .send(
            Method::PUT,
            "/v1/recovery/shell-password",
            &user.on_behalf(),
            Some(body),
        )
        .await;
    match result {
        Ok(()) => Ok(page(
            &state,
            &user,
            Errors::default(),
            Some("The shell password is set.".into()),
        )
        .await?
        .into_response()),
        Err(error) => {
            let errors = Errors::from_refusal(error)?;
            Ok((
                StatusCode::BAD_REQUEST,
                page(&state, &user, errors, None).await?,
            )
                .into_response())
        }
    }
}

pub async fn shell_password_remove_post(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Response, AppError> {
    state
        .celld
        .send(
            Method::DELETE,
            "/v1/recovery/shell-password",
            &user.on_behalf(),
            None,
        )
        .await?;
    Ok(page(
        &state,
        &user,
        Errors::default(),
        Some("The shell password is removed.".into()),
    )
    .await?
    .into_response())
}
