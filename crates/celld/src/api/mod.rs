//! celld's local JSON API, served on its Unix socket.

mod admission;
mod app_passwords;
mod audit;
mod auth;
mod changes;
mod dns;
mod error;
mod extract;
mod lan;
mod mail;
mod mail_login;
mod ntp;
mod pki;
mod proxy;
mod recovery;
mod settings;
mod setup;
mod units;
mod update;
mod users;
mod vpn;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::{middleware, Router};

pub use error::AppError;
pub use extract::{parse_json, SESSION_HEADER, SOURCE_HEADER, USER_AGENT_HEADER};

use crate::daemon::Daemon;

/// Request bodies are small JSON documents.
const BODY_LIMIT: usize = 64 * 1024;

pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/v1/status", get(settings::status_get))
        .route(
            "/v1/settings",
            get(settings::settings_get).put(settings::settings_put),
        )
        .route("/v1/setup", get(setup::setup_get).post(setup::setup_post))
        .route("/v1/setup-code", get(setup::setup_code_get))
        .route("/v1/auth/login", post(auth::login_post))
        .route(
            "/v1/session",
            get(auth::session_get).delete(auth::session_delete),
        )
        .route("/v1/sessions", get(auth::sessions_get))
        .route("/v1/sessions/{id}", delete(auth::sessions_delete))
        .route("/v1/users", get(users::users_get).post(users::users_post))
        .route(
            "/v1/users/{name}",
            get(users::user_get)
                .patch(users::user_patch)
                .delete(users::user_delete),
        )
        .route("/v1/users/{name}/export", get(users::user_export_get))
        .route("/v1/users/{name}/password", put(users::password_put))
        .route(
            "/v1/users/{name}/totp",
            post(users::totp_post).delete(users::totp_delete),
        )
        .route(
            "/v1/users/{name}/app-passwords",
            get(app_passwords::app_passwords_get).post(app_passwords::app_passwords_post),
        )
        .route(
            "/v1/users/{name}/app-passwords/{id}",
            delete(app_passwords::app_password_delete),
        )
        .route("/v1/auth/service", post(app_passwords::service_login_post))
        .route(
            "/v1/service-logins",
            get(app_passwords::service_logins_get).put(app_passwords::service_logins_put),
        )
        .route(
            "/v1/users/{name}/totp/confirm",
            post(users::totp_confirm_post),
        )
        .route(
            "/v1/users/{name}/client-settings",
            get(users::client_settings_get),
        )
        .route(
            "/v1/mail/relay",
            get(mail::relay_get)
                .put(mail::relay_put)
                .delete(mail::relay_delete),
        )
        .route("/v1/vpn", get(vpn::vpn_get).put(vpn::vpn_put))
        .route("/v1/vpn/peers", get(vpn::peers_get).post(vpn::peers_post))
        .route(
            "/v1/vpn/peers/{name}",
            get(vpn::peer_get)
                .patch(vpn::peer_patch)
                .delete(vpn::peer_delete),
        )
        .route("/v1/vpn/peers/{name}/config", get(vpn::peer_config_get))
        .route(
            "/v1/vpn/peers/{name}/mobileconfig",
            get(vpn::peer_mobileconfig_get),
        )
        .route(
            "/v1/vpn/peers/{name}/profile-link",
            post(vpn::peer_profile_link_post),
        )
        .route("/v1/vpn/profile/{ticket}", get(vpn::profile_by_link_get))
        .route("/v1/vpn/peers/{name}/qr.png", get(vpn::peer_qr_png_get))
        .route("/v1/vpn/peers/{name}/qr.svg", get(vpn::peer_qr_svg_get))
        .route("/v1/firewall", get(vpn::firewall_get))
        .route("/v1/dns", get(dns::dns_get).put(dns::dns_put))
        .route("/v1/ntp", get(ntp::ntp_get).put(ntp::ntp_put))
        .route("/v1/lan", get(lan::lan_get).put(lan::lan_put))
        .route("/v1/pki", get(pki::pki_get))
        .route("/v1/acme", get(pki::acme_get).put(pki::acme_put))
        .route("/v1/acme/renew", post(pki::acme_renew_post))
        .route("/v1/pki/root", get(pki::root_get))
        .route("/v1/pki/root.mobileconfig", get(pki::root_mobileconfig_get))
        .route("/v1/tls", get(pki::tls_get))
        .route("/v1/proxy", get(proxy::proxy_get))
        .route("/v1/files/{name}/usage", get(proxy::files_usage_get))
        .route("/v1/recovery", get(recovery::recovery_get))
        .route(
            "/v1/recovery/shell-password",
            put(recovery::shell_password_put).delete(recovery::shell_password_delete),
        )
        .route(
            "/v1/recovery/shell-password/check",
            post(recovery::shell_password_check_post),
        )
        .route(
            "/v1/update",
            get(update::update_get).put(update::update_put),
        )
        .route("/v1/update/check", post(update::update_check_post))
        .route("/v1/update/install", post(update::update_install_post))
        .route(
            "/v1/update/reboot",
            post(update::update_reboot_post).delete(update::update_reboot_delete),
        )
        .route("/v1/changes/confirm", post(changes::confirm_post))
        .route("/v1/units", get(units::units_get))
        .route("/v1/logs", get(units::logs_get))
        .route("/v1/audit", get(audit::audit_get))
        .route("/v1/audit/verify", get(audit::audit_verify_get))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            daemon.clone(),
            admission::require_allowed_peer,
        ))
        .with_state(daemon)
}

/// The mail machine's login policy, on its own socket: nothing else is served there.
pub fn mail_login_router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/v1/mail/login-policy", post(mail_login::login_policy_post))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(daemon)
}

async fn not_found() -> AppError {
    AppError::NotFound("no such route".into())
}

/// Appends an audit entry off the async runtime (it waits for fsync).
async fn record(daemon: &Arc<Daemon>, record: crate::audit::Record) -> Result<(), AppError> {
    let daemon = daemon.clone();
    blocking(move || {
        crate::sync::lock(&daemon.audit).append(record)?;
        Ok(())
    })
    .await
}

/// Writes the sessions file off the async runtime.
async fn save_sessions(daemon: &Arc<Daemon>) -> Result<(), AppError> {
    let daemon = daemon.clone();
    blocking(move || Ok(daemon.save_sessions()?)).await
}

/// Runs blocking work (fsync, argon2) off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AppError::Internal(format!("a worker failed: {e}")))?
}
