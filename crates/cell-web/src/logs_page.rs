//! The Units and logs page (administrators): every unit of the cell with its state, since
//! when and its restarts, and its journal — filtered by unit, priority and text, and
//! followed live by a small script that asks the API for the lines after the last one.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use cell_model::api::{LogPage, UnitState};
use celld_client::{ClientError, Method};
use serde::{Deserialize, Serialize};

use crate::pages::{render, Nav, PageUser};
use crate::routes::{page as declare, Routed};
use crate::{AppError, AppState};

pub fn routes() -> Vec<Routed> {
    use crate::routes::Access::{Admin, Public};
    vec![
        declare(Method::GET, "/logs", Admin, get(logs_get)),
        declare(Method::GET, "/static/logs.js", Public, get(script_get)),
    ]
}

/// The filter as the page's form sends it (empty fields: no filter).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Filter {
    unit: String,
    priority: String,
    text: String,
}

impl Filter {
    /// celld's query for this filter (empty fields left out).
    fn query(&self) -> String {
        let pairs: Vec<(&str, &str)> = [
            ("unit", self.unit.as_str()),
            ("priority", self.priority.as_str()),
            ("text", self.text.trim()),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

const PRIORITIES: &[(&str, &str)] = &[
    ("", "all"),
    ("3", "errors"),
    ("4", "warnings and errors"),
    ("6", "info and more important"),
];

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    units: Vec<UnitState>,
    units_error: Option<String>,
    filter: Filter,
    query: String,
    priorities: &'static [(&'static str, &'static str)],
    page: LogPage,
    error: Option<String>,
}

impl LogsPage {
    fn priority_name(&self, priority: &u8) -> &'static str {
        match priority {
            0 => "emergency",
            1 => "alert",
            2 => "critical",
            3 => "error",
            4 => "warning",
            5 => "notice",
            6 => "info",
            _ => "debug",
        }
    }
}

async fn logs_get(
    State(state): State<AppState>,
    user: PageUser,
    Query(filter): Query<Filter>,
) -> Result<Html<String>, AppError> {
    let (units, units_error) = match state
        .celld
        .json::<Vec<UnitState>>(Method::GET, "/v1/units", &user.on_behalf(), None)
        .await
    {
        Ok(units) => (units, None),
        Err(ClientError::Refused { message, .. }) => (Vec::new(), Some(message)),
        Err(other) => return Err(AppError::CelldUnavailable(other)),
    };
    let query = filter.query();
    let path = if query.is_empty() {
        "/v1/logs".to_owned()
    } else {
        format!("/v1/logs?{query}")
    };
    let (page, error) = match state
        .celld
        .json::<LogPage>(Method::GET, &path, &user.on_behalf(), None)
        .await
    {
        Ok(page) => (page, None),
        Err(ClientError::Refused { message, .. }) => (
            LogPage {
                lines: Vec::new(),
                cursor: None,
            },
            Some(message),
        ),
        Err(other) => return Err(AppError::CelldUnavailable(other)),
    };
    render(LogsPage {
        version: cell_systemd::image_version(),
        nav: user.nav("logs"),
        notice: None,
        units,
        units_error,
        filter,
        query,
        priorities: PRIORITIES,
        page,
        error,
    })
}

async fn script_get() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/logs.js"),
    )
}
