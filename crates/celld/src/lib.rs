//! celld: the privileged core of the cell. It will own the settings store and reconcile the
//! system from it; today it answers status queries on its local Unix-socket API.

pub mod api;
pub mod socket;
pub mod status;

use std::future::Future;

/// Serves the local API on `listener` until `shutdown` resolves, then finishes the
/// requests in flight.
pub async fn serve(
    listener: tokio::net::UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, api::router())
        .with_graceful_shutdown(shutdown)
        .await
}
