//! cell-web: the unprivileged front door of the cell. It parses HTTP, renders the web UI
//! and serves the public REST API; everything it knows or changes it asks celld for, over
//! celld's local socket — sessions included: it carries the browser's session token to
//! celld, which says whose it is.

mod account_data_page;
pub mod api;
mod certificates_page;
mod changes_page;
mod client_addr;
mod dns_page;
mod error;
pub mod files_page;
pub mod front_door;
mod logs_page;
mod mail_page;
mod network_page;
mod pages;
pub mod proxy;
mod recovery_page;
pub mod routes;
mod security_headers;
pub mod session;
pub mod tls;
mod update_page;
mod upload_budget;
mod vpn_pages;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::{middleware, Router};
use celld_client::CelldClient;

pub use error::AppError;

#[derive(Debug, Clone)]
pub struct AppState {
    pub celld: CelldClient,
    pub setup_done: Arc<AtomicBool>,
    /// Mark cookies `Secure`: on once the cell is reached over HTTPS.
    pub secure_cookies: bool,
    /// The services' names and backends, ahead of the app.
    pub proxy: proxy::Proxy,
    /// The certificates celld handed over (empty when serving plain HTTP only).
    pub certificates: tls::CertificateStore,
}

impl AppState {
    pub fn new(celld: CelldClient, secure_cookies: bool) -> Self {
        Self {
            celld: celld.clone(),
            setup_done: Arc::new(AtomicBool::new(false)),
            secure_cookies,
            proxy: proxy::Proxy::with_celld(celld),
            certificates: tls::CertificateStore::default(),
        }
    }
}

/// The app behind the proxy: requests for a service's name never reach the UI's routes
/// (nor get its security headers, which would break the service's own pages).
pub fn router(state: AppState) -> Router {
    routes::router(state.clone())
        .layer(middleware::map_response(security_headers::add))
        .layer(middleware::from_fn_with_state(
            state.proxy.clone(),
            proxy::dispatch,
        ))
        .layer(middleware::from_fn_with_state(
            state.certificates.clone(),
            security_headers::hsts,
        ))
        .with_state(state)
}
