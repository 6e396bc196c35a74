//! Who is on the other end of the local socket: the kernel tells us (SO_PEERCRED). The
//! API lets in only root and cell-web's user.

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::UnixListener;

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
