//! What the front door needs from celld to proxy the service machines: the route table,
//! and how much room a user's files home has left. For the front door's own user alone.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cell_model::api::{FilesUsage, ProxyTable};
use cell_model::Username;
use serde::Deserialize;

use super::{blocking, AppError};
use crate::daemon::Daemon;
use crate::peer::Peer;
use crate::sync::lock;

fn front_door_only(daemon: &Daemon, peer: &Peer) -> Result<(), AppError> {
    if peer.uid == Some(0) || peer.uid == Some(daemon.config.front_door_uid) {
        return Ok(());
    }
    tracing::warn!(uid = ?peer.uid, pid = ?peer.pid, "refused a front-door request from another process");
    Err(AppError::Forbidden("for the front door only".into()))
}

#[derive(Debug, Deserialize)]
pub struct Known {
    known: Option<u64>,
}

/// The names proxied to the service machines; 204 when the front door already has
/// generation `known`.
pub async fn proxy_get(
    State(daemon): State<Arc<Daemon>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Query(known): Query<Known>,
) -> Result<Response, AppError> {
    front_door_only(&daemon, &peer)?;
    let (generation, settings) = {
        let store = lock(&daemon.store);
        let current = store.current();
        (current.generation, current.settings.clone())
    };
    if known.known == Some(generation) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Json(ProxyTable {
        generation,
        routes: crate::dav::proxy_routes(&settings),
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    /// A decoded URL path in the home: what it holds is answered too.
    path: Option<String>,
}

/// How much a user's files home holds, and may hold.
pub async fn files_usage_get(
    State(daemon): State<Arc<Daemon>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(name): Path<String>,
    Query(query): Query<UsageQuery>,
) -> Result<Json<FilesUsage>, AppError> {
    front_door_only(&daemon, &peer)?;
    let name = Username::parse(&name).map_err(|message| AppError::field("name", message))?;
    let quota_mib = lock(&daemon.store)
        .current()
        .settings
        .user(&name)
        .map(|user| user.files_quota_mib())
        .ok_or_else(|| AppError::NotFound(format!("there is no user '{name}'")))?;
    let state_dir = daemon.config.state_dir.clone();
    let (used_bytes, path_bytes) = blocking(move || {
        let failed = |e: std::io::Error| AppError::Internal(format!("reading {name}'s files: {e}"));
        let used = crate::dav::files_usage(&state_dir, &name).map_err(failed)?;
        let at = match query.path {
            Some(path) => Some(
                crate::dav::path_usage(&state_dir, &name, &path)
                    .ok_or_else(|| AppError::field("path", "a path in the home, without . or .."))?
                    .map_err(failed)?,
            ),
            None => None,
        };
        Ok((used, at))
    })
    .await?;
    Ok(Json(FilesUsage {
        used_bytes,
        quota_bytes: u64::from(quota_mib) * 1024 * 1024,
        path_bytes,
    }))
}
