//! cell-web: the unprivileged front door of the cell. It renders the web UI and answers
//! health checks; everything it knows about the machine it asks celld for.

mod error;
mod pages;
mod security_headers;

use axum::{middleware, routing::get, Router};
use celld_client::CelldClient;

pub use error::AppError;

#[derive(Debug, Clone)]
pub struct AppState {
    pub celld: CelldClient,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(pages::health_get))
        .route("/", get(pages::root_get))
        .route("/setup", get(pages::setup_get))
        .route("/static/cell.css", get(pages::stylesheet_get))
        .fallback(pages::not_found)
        .layer(middleware::map_response(security_headers::add))
        .with_state(state)
}
