//! cell-web: the unprivileged front door of the cell. It parses HTTP, holds sessions,
//! renders the web UI and serves the public REST API; everything it knows or changes it
//! asks celld for, over celld's local socket.

pub mod api;
mod changes_page;
mod client_addr;
mod error;
mod pages;
mod recovery_page;
mod security_headers;
pub mod session;
mod update_page;
mod vpn_pages;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::{middleware, routing::get, Router};
use celld_client::CelldClient;

pub use error::AppError;
use session::Sessions;

#[derive(Debug, Clone)]
pub struct AppState {
    pub celld: CelldClient,
    pub sessions: Arc<Sessions>,
    pub setup_done: Arc<AtomicBool>,
    /// Mark cookies `Secure`: on once the cell is reached over HTTPS.
    pub secure_cookies: bool,
}

impl AppState {
    pub fn new(celld: CelldClient, secure_cookies: bool) -> Self {
        Self {
            celld,
            sessions: Arc::new(Sessions::default()),
            setup_done: Arc::new(AtomicBool::new(false)),
            secure_cookies,
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(pages::health_get))
        .route("/static/cell.css", get(pages::stylesheet_get))
        .route("/static/countdown.js", get(pages::countdown_get))
        .merge(pages::router(state.clone()))
        .merge(api::router(state.clone()))
        .fallback(pages::not_found)
        .layer(middleware::map_response(security_headers::add))
        .with_state(state)
}
