//! The Updates page: running and available versions, the update job's progress, the
//! last result, reboot now or later, and the update server's URL.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Form;
use cell_model::update::{UpdateOutcome, UpdatePhase, UpdateView};
use celld_client::{Bytes, Method};
use serde::Deserialize;
use serde_json::json;

use crate::pages::{render, Errors, Nav, PageUser};
use crate::routes::{page as declare, Routed};
use crate::{AppError, AppState};

pub fn routes() -> Vec<Routed> {
    use crate::routes::Access::Admin;
    vec![
        declare(Method::GET, "/update", Admin, get(update_get)),
        declare(Method::POST, "/update/url", Admin, post(url_post)),
        declare(Method::POST, "/update/check", Admin, post(check_post)),
        declare(Method::POST, "/update/install", Admin, post(install_post)),
        declare(Method::POST, "/update/reboot", Admin, post(reboot_post)),
        declare(
            Method::POST,
            "/update/reboot/cancel",
            Admin,
            post(reboot_cancel_post),
        ),
    ]
}

#[derive(Template)]
#[template(path = "update.html")]
struct UpdatePage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    csrf: String,
    view: UpdateView,
    errors: Errors,
    general_error: Option<String>,
}
crate::field_errors!(UpdatePage);

impl UpdatePage {
    fn phase_name(&self, phase: &UpdatePhase) -> &'static str {
        match phase {
            UpdatePhase::Checking => "Checking for updates",
            UpdatePhase::Downloading => "Downloading and verifying",
            UpdatePhase::Installing => "Installing",
        }
    }

    fn is_bad(&self, outcome: &UpdateOutcome) -> bool {
        matches!(outcome, UpdateOutcome::Failed | UpdateOutcome::RolledBack)
    }
}

async fn page(
    state: &AppState,
    user: &PageUser,
    errors: Errors,
    notice: Option<String>,
) -> Result<Html<String>, AppError> {
    let view: UpdateView = state
        .celld
        .json(Method::GET, "/v1/update", &user.on_behalf(), None)
        .await?;
    render(UpdatePage {
        version: cell_systemd::image_version(),
        nav: user.nav("update"),
        notice,
        csrf: user.csrf(),
        view,
        general_error: errors.general.clone(),
        errors,
    })
}

pub async fn update_get(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Html<String>, AppError> {
    page(&state, &user, Errors::default(), None).await
}

/// Sends one change to celld and shows the page again, with `done` or with the refusal.
async fn act(
    state: &AppState,
    user: &PageUser,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    done: &str,
) -> Result<Response, AppError> {
    let body = body.map(|b| Bytes::from(b.to_string()));
    let result = state
        .celld
        .send(method, path, &user.on_behalf(), body)
        .await;
    match result {
        Ok(()) => Ok(page(state, user, Errors::default(), Some(done.to_owned()))
            .await?
            .into_response()),
        Err(error) => {
            let errors = Errors::from_refusal(error)?;
            Ok((
                StatusCode::BAD_REQUEST,
                page(state, user, errors, None).await?,
            )
                .into_response())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UrlForm {
    url: String,
}

pub async fn url_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<UrlForm>,
) -> Result<Response, AppError> {
    let url = form.url.trim();
    let url = (!url.is_empty()).then_some(url);
    act(
        &state,
        &user,
        Method::PUT,
        "/v1/update",
        Some(json!({ "url": url })),
        "The update server is saved.",
    )
    .await
}

pub async fn check_post(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Response, AppError> {
    act(
        &state,
        &user,
        Method::POST,
        "/v1/update/check",
        Some(json!({})),
        "Checking for updates…",
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InstallForm {
    version: String,
}

pub async fn install_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<InstallForm>,
) -> Result<Response, AppError> {
    act(
        &state,
        &user,
        Method::POST,
        "/v1/update/install",
        Some(json!({ "version": form.version })),
        "Downloading and installing; the cell keeps running meanwhile.",
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RebootForm {
    at: String,
}

pub async fn reboot_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<RebootForm>,
) -> Result<Response, AppError> {
    let at = form.at.trim();
    let (body, done) = if at.is_empty() {
        (json!({}), "The cell is rebooting.")
    } else {
        (json!({ "at": at }), "The reboot is scheduled.")
    };
    act(
        &state,
        &user,
        Method::POST,
        "/v1/update/reboot",
        Some(body),
        done,
    )
    .await
}

pub async fn reboot_cancel_post(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Response, AppError> {
    act(
        &state,
        &user,
        Method::DELETE,
        "/v1/update/reboot",
        None,
        "The scheduled reboot is cancelled.",
    )
    .await
}
