//! celld: the privileged core of the cell. It owns the settings store, the accounts and
//! the audit log, and answers cell-web and cellctl on its local Unix-socket API.

pub mod acme;
pub mod api;
pub mod app_passwords;
pub mod apple_profile;
pub mod audit;
pub mod audited;
pub mod daemon;
pub mod dav;
pub mod dkim;
pub mod dns;
pub mod journal;
pub mod lan;
pub mod mail_login;
pub mod mail_relay;
pub mod network;
pub mod no_follow;
pub mod ntp;
pub mod passwords;
pub mod peer;
pub mod pki;
pub mod profile_links;
pub mod reconcile;
pub mod sessions;
pub mod settings_store;
pub mod setup_code;
pub mod socket;
pub mod status;
mod sync;
pub mod system;
pub mod throttle;
pub mod totp;
pub mod user_data;
pub mod vpn;
pub mod zones;

use std::future::Future;
use std::sync::Arc;

pub use daemon::{Config, Daemon};

/// Serves the local API on `listener` until `shutdown` resolves, then finishes the
/// requests in flight.
pub async fn serve(
    listener: tokio::net::UnixListener,
    daemon: Arc<Daemon>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        api::router(daemon).into_make_service_with_connect_info::<peer::Peer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves the mail machine's login policy on `listener` (its own socket) for as long as
/// celld runs.
pub async fn serve_mail_logins(
    listener: tokio::net::UnixListener,
    daemon: Arc<Daemon>,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        api::mail_login_router(daemon).into_make_service_with_connect_info::<peer::Peer>(),
    )
    .await
}
