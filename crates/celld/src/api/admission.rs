//! Only root and cell-web's user may use the local API, as the kernel reports them.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppError;
use crate::daemon::Daemon;
use crate::peer::Peer;

pub async fn require_allowed_peer(
    State(daemon): State<Arc<Daemon>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Response {
    match peer.uid {
        Some(uid) if daemon.config.allowed_uids.contains(&uid) => next.run(request).await,
        _ => {
            tracing::warn!(uid = ?peer.uid, pid = ?peer.pid, "refused a local API connection");
            AppError::Forbidden("this user may not use celld's API".into()).into_response()
        }
    }
}
