//! Handlers of the web UI pages and the health endpoint.

use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use serde::Serialize;

use crate::{AppError, AppState};

#[derive(Debug, Serialize)]
struct Health<'a> {
    status: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// 200 when this process and celld both answer, 503 otherwise.
pub async fn health_get(State(state): State<AppState>) -> Response {
    match state.celld.status().await {
        Ok(_) => Json(Health {
            status: "ok",
            version: cell_model::VERSION,
            error: None,
        })
        .into_response(),
        Err(error) => {
            tracing::warn!(%error, "health check: celld unavailable");
            let body = Health {
                status: "unavailable",
                version: cell_model::VERSION,
                error: Some("celld is not answering".to_owned()),
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// Until the setup wizard has run, everything leads to it.
pub async fn root_get() -> Redirect {
    Redirect::to("/setup")
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupView<'a> {
    version: &'a str,
    hostname: &'a str,
    uptime: String,
}

pub async fn setup_get(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    let status = state.celld.status().await?;
    let view = SetupView {
        version: &status.version,
        hostname: &status.hostname,
        uptime: human_duration(status.uptime_seconds),
    };
    Ok(Html(view.render()?))
}

pub async fn stylesheet_get() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/cell.css"),
    )
}

pub async fn not_found() -> AppError {
    AppError::NotFound
}

/// "3 days, 4 hours", "5 minutes", "12 seconds": the two largest units that are non-zero.
fn human_duration(seconds: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let mut rest = seconds;
    let mut parts = Vec::new();
    for (size, name) in UNITS {
        let count = rest / size;
        rest %= size;
        if count > 0 && parts.len() < 2 {
            let plural = if count == 1 { "" } else { "s" };
            parts.push(format!("{count} {name}{plural}"));
        } else if !parts.is_empty() {
            break;
        }
    }
    if parts.is_empty() {
        "0 seconds".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(0), "0 seconds");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(61), "1 minute, 1 second");
        assert_eq!(human_duration(3_600), "1 hour");
        assert_eq!(
            human_duration(3 * 86_400 + 4 * 3_600 + 5),
            "3 days, 4 hours"
        );
    }
}
