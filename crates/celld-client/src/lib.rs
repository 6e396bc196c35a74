//! Client of celld's local JSON API, used by cell-web and cellctl.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cell_model::{ApiError, Status};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

/// celld answers from memory; anything slower than this means it is stuck.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to celld at {socket}: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to celld at {socket}: {source}")]
    Http {
        socket: PathBuf,
        #[source]
        source: hyper::Error,
    },
    #[error("celld at {socket} did not answer {path} within {timeout:?}")]
    Timeout {
        socket: PathBuf,
        path: String,
        timeout: Duration,
    },
    #[error("celld refused {path} with {status}: {message}")]
    Refused {
        path: String,
        status: StatusCode,
        message: String,
    },
    #[error("celld answered {path} with an unreadable body: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A handle on celld's socket. Each call opens its own connection: calls are rare and
/// this keeps no state that could go stale when celld restarts.
#[derive(Debug, Clone)]
pub struct CelldClient {
    socket: PathBuf,
}

impl CelldClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get("/v1/status").await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let exchange = self.exchange(path);
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                socket: self.socket.clone(),
                path: path.to_owned(),
                timeout: REQUEST_TIMEOUT,
            })??;
        if !status.is_success() {
            let message = serde_json::from_slice::<ApiError>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(ClientError::Refused {
                path: path.to_owned(),
                status,
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
            path: path.to_owned(),
            source,
        })
    }

    async fn exchange(&self, path: &str) -> Result<(StatusCode, Bytes), ClientError> {
        let http_error = |source| ClientError::Http {
            socket: self.socket.clone(),
            source,
        };
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    socket: self.socket.clone(),
                    source,
                })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_error)?;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "celld connection ended with an error");
            }
        });
        let request = Request::get(path)
            .header(header::HOST, "celld")
            .body(Empty::<Bytes>::new())
            .expect("a GET with a static header is always a valid request");
        let result = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok((status, body))
        }
        .await
        .map_err(http_error);
        drop(sender);
        driver.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start_celld(dir: &Path) -> (CelldClient, tokio::sync::oneshot::Sender<()>) {
        let socket = dir.join("celld.sock");
        let listener = celld::socket::bind(&socket).unwrap();
        let daemon = celld::daemon::testing::daemon(dir);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(celld::serve(listener, daemon, async {
            let _ = stopped.await;
        }));
        (CelldClient::new(socket), stop)
    }

    #[tokio::test]
    async fn reads_status_from_a_real_celld() {
        let dir = tempfile::tempdir().unwrap();
        let (client, _stop) = start_celld(dir.path()).await;
        let status = client.status().await.unwrap();
        assert_eq!(status.version, cell_model::VERSION);
        assert!(!status.setup_complete);
    }

    #[tokio::test]
    async fn names_the_socket_when_celld_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let client = CelldClient::new(dir.path().join("missing.sock"));
        let err = client.status().await.unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
        assert!(err.to_string().contains("missing.sock"), "{err}");
    }

    #[tokio::test]
    async fn reports_celld_errors_with_their_message() {
        let dir = tempfile::tempdir().unwrap();
        let (client, _stop) = start_celld(dir.path()).await;
        let err = client.get::<Status>("/v1/nope").await.unwrap_err();
        match err {
            ClientError::Refused {
                status, message, ..
            } => {
                assert_eq!(status, StatusCode::NOT_FOUND);
                assert_eq!(message, "no such route");
            }
            other => panic!("expected a refusal, got {other}"),
        }
    }
}
