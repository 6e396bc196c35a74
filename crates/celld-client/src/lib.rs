//! Client of celld's local JSON API, used by cell-web and cellctl.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cell_model::{ApiError, Status};
use http_body_util::{BodyExt, Full};
pub use hyper::body::Bytes;
use hyper::{header, Request};
pub use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

/// celld answers from memory; anything slower than this means it is stuck.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Calls that hash a password (argon2id, 19 MiB) and fsync the store: a second on a
/// Raspberry Pi, several under software emulation or while the machine is busy. A person
/// must never be told such a change failed when it was only slow.
const HASHING_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a call may take: longer for the few that hash a password.
fn timeout_for(method: &Method, path: &str) -> Duration {
    let path = path.split('?').next().unwrap_or(path);
    let hashes = match *method {
        Method::POST => {
            matches!(path, "/v1/setup" | "/v1/auth/login" | "/v1/users")
                || path.starts_with("/v1/recovery/shell-password")
                || path.ends_with("/totp/confirm")
        }
        Method::PUT => path.ends_with("/password") || path == "/v1/recovery/shell-password",
        // The owner's password is checked first.
        Method::DELETE => path.ends_with("/totp"),
        // A device's profile brings its owner a new app password.
        Method::GET => path.ends_with("/mobileconfig") || path.starts_with("/v1/vpn/profile/"),
        _ => false,
    };
    // Deleting an account waits for the services to let go of it, then removes its data.
    let removes_data = *method == Method::DELETE
        && path
            .strip_prefix("/v1/users/")
            .is_some_and(|name| !name.contains('/'));
    if removes_data {
        DATA_REMOVAL_TIMEOUT
    } else if hashes {
        HASHING_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    }
}

/// celld waits up to a minute for the services, then removes a whole mailbox and home.
const DATA_REMOVAL_TIMEOUT: Duration = Duration::from_secs(180);

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
        field: Option<String>,
    },
    #[error("building the request for {path}: {message}")]
    Request { path: String, message: String },
    #[error("celld answered {path} with an unreadable body: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Header carrying the browser's session token (see celld's API).
pub const SESSION_HEADER: &str = "x-cell-session";
/// Header carrying the client's address.
pub const SOURCE_HEADER: &str = "x-cell-source";
/// Header carrying the client's User-Agent, at login.
pub const USER_AGENT_HEADER: &str = "x-cell-user-agent";

/// celld's whole answer to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub content_disposition: Option<String>,
    /// How long a refused caller should wait (a throttled or busy login).
    pub retry_after: Option<String>,
    pub body: Bytes,
}

/// An answer whose body is still arriving (see [`CelldClient::stream`]).
#[derive(Debug)]
pub struct Streamed {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub content_disposition: Option<String>,
    pub body: hyper::body::Incoming,
}

/// On whose behalf, and from where, cell-web asks celld: the session token from the
/// browser's cookie (celld resolves who that is), the client's address and browser.
#[derive(Clone, Default)]
pub struct OnBehalf {
    pub session: Option<String>,
    pub source: Option<String>,
    pub user_agent: Option<String>,
}

impl std::fmt::Debug for OnBehalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnBehalf")
            .field("session", &self.session.as_ref().map(|_| "<redacted>"))
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Decodes a successful answer; a refusal becomes `ClientError::Refused`.
pub fn decode<T: DeserializeOwned>(
    path: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<T, ClientError> {
    if !status.is_success() {
        let refusal = serde_json::from_slice::<ApiError>(body).ok();
        let message = refusal
            .as_ref()
            .map(|e| e.error.clone())
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        return Err(ClientError::Refused {
            path: path.to_owned(),
            status,
            message,
            field: refusal.and_then(|e| e.field),
        });
    }
    serde_json::from_slice(body).map_err(|source| ClientError::Decode {
        path: path.to_owned(),
        source,
    })
}

/// Percent-encodes a value for a query string or a path segment (RFC 3986 unreserved
/// characters pass as they are).
pub fn encode_component(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Idle keep-alive connections kept for reuse: connecting and the HTTP handshake cost more
/// than most of celld's answers.
const MAX_IDLE: usize = 16;

/// A handle on celld's socket, with a small pool of keep-alive connections. A pooled
/// connection that celld closed (it restarted) is noticed before the request is sent,
/// and the request goes out on a fresh one.
#[derive(Debug, Clone)]
pub struct CelldClient {
    socket: PathBuf,
    idle: Arc<Mutex<Vec<Sender>>>,
}

impl CelldClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get("/v1/status").await
    }

    /// Sends one request as `on_behalf`, and returns celld's answer as it is: status and
    /// JSON body, refusals included.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        on_behalf: &OnBehalf,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let answer = self.call_answer(method, path, on_behalf, body).await?;
        Ok((answer.status, answer.body))
    }

    /// `call`, keeping the headers that describe the body (type, download name), for
    /// answers that are files rather than JSON. cell-web passes these through.
    pub async fn call_answer(
        &self,
        method: Method,
        path: &str,
        on_behalf: &OnBehalf,
        body: Option<Bytes>,
    ) -> Result<Answer, ClientError> {
        let timeout = timeout_for(&method, path);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "celld");
        if let Some(session) = &on_behalf.session {
            request = request.header(SESSION_HEADER, session.as_str());
        }
        if let Some(source) = &on_behalf.source {
            request = request.header(SOURCE_HEADER, source.as_str());
        }
        if let Some(agent) = &on_behalf.user_agent {
            request = request.header(USER_AGENT_HEADER, agent.as_str());
        }
        let body = match body {
            Some(bytes) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).map_err(|e| ClientError::Request {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        tokio::time::timeout(timeout, self.exchange(request))
            .await
            .map_err(|_| ClientError::Timeout {
                socket: self.socket.clone(),
                path: path.to_owned(),
                timeout,
            })?
    }

    /// `call`, then decode a successful answer; a refusal becomes `ClientError::Refused`.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        on_behalf: &OnBehalf,
        body: Option<Bytes>,
    ) -> Result<T, ClientError> {
        let (status, body) = self.call(method, path, on_behalf, body).await?;
        decode(path, status, &body)
    }

    /// `call` for requests whose success has no body (204): a refusal becomes
    /// `ClientError::Refused`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        on_behalf: &OnBehalf,
        body: Option<Bytes>,
    ) -> Result<(), ClientError> {
        let (status, answer) = self.call(method, path, on_behalf, body).await?;
        if status.is_success() {
            return Ok(());
        }
        decode::<serde_json::Value>(path, status, &answer).map(|_| ())
    }

    /// A GET whose answer may be large (an account's export): the body is handed over as
    /// it arrives, on a connection of its own that is not pooled. Only the head must come
    /// within the usual timeout; a refusal becomes `ClientError::Refused`.
    pub async fn stream(&self, path: &str, on_behalf: &OnBehalf) -> Result<Streamed, ClientError> {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, "celld");
        if let Some(session) = &on_behalf.session {
            request = request.header(SESSION_HEADER, session.as_str());
        }
        if let Some(source) = &on_behalf.source {
            request = request.header(SOURCE_HEADER, source.as_str());
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Request {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        let exchange = async {
            let mut sender = self.connect().await?;
            sender
                .send_request(request)
                .await
                .map_err(|source| self.http_error(source))
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                socket: self.socket.clone(),
                path: path.to_owned(),
                timeout: REQUEST_TIMEOUT,
            })??;
        let text_header = |name: header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if !response.status().is_success() {
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), 64 * 1024)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .unwrap_or_default();
            return Err(match decode::<serde_json::Value>(path, status, &body) {
                Err(refused) => refused,
                Ok(_) => ClientError::Request {
                    path: path.to_owned(),
                    message: format!("unexpected answer {status}"),
                },
            });
        }
        Ok(Streamed {
            status: response.status(),
            content_type: text_header(header::CONTENT_TYPE),
            content_disposition: text_header(header::CONTENT_DISPOSITION),
            body: response.into_body(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::GET, path, &OnBehalf::default(), None)
            .await
    }
    async fn connect(&self) -> Result<Sender, ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    socket: self.socket.clone(),
                    source,
                })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| self.http_error(source))?;
        // Runs until celld closes the connection or the last sender is dropped.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "celld connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn http_error(&self, source: hyper::Error) -> ClientError {
        ClientError::Http {
            socket: self.socket.clone(),
            source,
        }
    }

    fn take_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        std::iter::from_fn(|| idle.pop()).find(|sender| !sender.is_closed())
    }

    fn put_idle(&self, sender: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if !sender.is_closed() && idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Answer, ClientError> {
        let (mut sender, request) = match self.take_idle() {
            Some(mut pooled) => match pooled.try_send_request(request).await {
                Ok(response) => return self.finish(pooled, response).await,
                // Not sent: the pooled connection was gone. Send it on a fresh one.
                Err(mut failed) => match failed.take_message() {
                    Some(request) => (self.connect().await?, request),
                    None => return Err(self.http_error(failed.into_error())),
                },
            },
            None => (self.connect().await?, request),
        };
        let response = sender
            .send_request(request)
            .await
            .map_err(|source| self.http_error(source))?;
        self.finish(sender, response).await
    }

    /// Reads the whole answer, then returns the connection to the pool.
    async fn finish(
        &self,
        sender: Sender,
        response: hyper::Response<hyper::body::Incoming>,
    ) -> Result<Answer, ClientError> {
        let status = response.status();
        let text_header = |name: header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = text_header(header::CONTENT_TYPE);
        let content_disposition = text_header(header::CONTENT_DISPOSITION);
        let retry_after = text_header(header::RETRY_AFTER);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|source| self.http_error(source))?
            .to_bytes();
        self.put_idle(sender);
        Ok(Answer {
            status,
            content_type,
            content_disposition,
            retry_after,
            body,
        })
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
    async fn reuses_connections_and_survives_a_celld_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (client, stop) = start_celld(dir.path()).await;
        for _ in 0..5 {
            client.status().await.unwrap();
        }
        assert_eq!(
            client.idle.lock().unwrap().len(),
            1,
            "one connection, reused"
        );
        // celld stops (its connections close) and a new one starts on the same socket.
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_fresh, _stop) = start_celld(dir.path()).await;
        client
            .status()
            .await
            .expect("a request after the restart goes out on a new connection");
    }

    #[test]
    fn only_password_hashing_calls_wait_long() {
        assert_eq!(timeout_for(&Method::POST, "/v1/setup"), HASHING_TIMEOUT);
        assert_eq!(
            timeout_for(&Method::POST, "/v1/auth/login"),
            HASHING_TIMEOUT
        );
        assert_eq!(
            timeout_for(&Method::PUT, "/v1/users/alice/password"),
            HASHING_TIMEOUT
        );
        assert_eq!(timeout_for(&Method::GET, "/v1/status"), REQUEST_TIMEOUT);
        assert_eq!(timeout_for(&Method::PUT, "/v1/vpn"), REQUEST_TIMEOUT);
        assert_eq!(timeout_for(&Method::GET, "/v1/setup"), REQUEST_TIMEOUT);
        assert_eq!(
            timeout_for(&Method::GET, "/v1/vpn/peers/phone/mobileconfig"),
            HASHING_TIMEOUT
        );
        assert_eq!(
            timeout_for(&Method::DELETE, "/v1/users/bob"),
            DATA_REMOVAL_TIMEOUT
        );
        assert_eq!(
            timeout_for(&Method::DELETE, "/v1/users/bob/app-passwords/x"),
            REQUEST_TIMEOUT
        );
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
