//! After the wizard: what the reconciler is applying. And the confirmation window of a
//! risky change: keeping it.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Form;
use cell_model::api::PendingChange;
use cell_model::Status;
use serde::Deserialize;

use crate::pages::{render, Nav, PageUser};
use crate::routes::{page as declare, Routed};
use crate::{AppError, AppState};

pub fn routes() -> Vec<Routed> {
    use crate::routes::Access::{Admin, Public};
    vec![
        declare(Method::GET, "/setup/done", Public, get(setup_done_get)),
        declare(Method::POST, "/changes/confirm", Admin, post(confirm_post)),
    ]
}

#[derive(Template)]
#[template(path = "setup_done.html")]
struct SetupDoneView {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    cell_name: String,
    settled: bool,
    /// Applier and whether it has applied the generation in force; no error texts, since
    /// this page needs no login.
    parts: Vec<(String, bool)>,
}

/// The wizard's last page: the settings are stored; this follows the reconciler until
/// every part of the machine has applied them.
pub async fn setup_done_get(State(state): State<AppState>) -> Result<Response, AppError> {
    let status: Status = state.celld.status().await?;
    if !status.setup_complete {
        return Ok(Redirect::to("/setup").into_response());
    }
    let parts = status
        .appliers
        .iter()
        .map(|a| (a.applier.clone(), a.ok && a.generation == status.generation))
        .collect();
    Ok(render(SetupDoneView {
        version: cell_systemd::image_version(),
        nav: None,
        notice: None,
        settled: status.settled(),
        cell_name: status.cell_name,
        parts,
    })?
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConfirmForm {
    generation: String,
}

/// Keeps a pending risky change, then shows the dashboard saying so.
pub async fn confirm_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, AppError> {
    // Not a number: generation 0, which celld refuses by its field.
    let generation: u64 = form.generation.trim().parse().unwrap_or(0);
    let body = serde_json::json!({ "generation": generation });
    let _kept: PendingChange = state
        .celld
        .json(
            Method::POST,
            "/v1/changes/confirm",
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await?;
    Ok(Redirect::to(&format!("/?kept={generation}")).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct DashboardQuery {
    kept: Option<u64>,
}

/// The dashboard's notice after a change was kept.
pub fn kept_notice(query: &Query<DashboardQuery>) -> Option<String> {
    query
        .kept
        .map(|generation| format!("The change of generation {generation} is kept."))
}
