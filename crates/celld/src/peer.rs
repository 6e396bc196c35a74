//! Who is on the other end of the local socket: the kernel tells us (SO_PEERCRED), and
//! only root and cell-web's user are let in.

use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use tokio::net::UnixListener;

use crate::api::AppError;
use crate::daemon::Daemon;

/// Credentials of the process that opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: Option<u32>,
    pub pid: Option<i32>,
}

impl Peer {
    pub fn is_root(&self) -> bool {
        self.uid == Some(0)
    }
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(cred) => Self {
                uid: Some(cred.uid()),
                pid: cred.pid(),
            },
            Err(error) => {
                tracing::warn!(%error, "cannot read the peer credentials of a connection");
                Self {
                    uid: None,
                    pid: None,
                }
            }
        }
    }
}

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
