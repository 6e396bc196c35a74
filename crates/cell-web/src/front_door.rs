//! The front door's listeners: HTTPS (rustls through tokio-rustls, HTTP/1.1 and HTTP/2 by
//! ALPN through hyper-util's auto builder) serving the app, and plain HTTP answering only
//! the root certificate's download, ACME challenges and `/health` (the boot assessment's
//! probe, which trusts no certificate), and redirecting everything else to HTTPS.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{middleware, Router};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::Service;

use crate::AppState;

/// A client must finish its TLS handshake within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// And send a request's headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` over TLS on `listener` until `shutdown` resolves, then lets the open
/// connections finish (up to [`DRAIN_TIMEOUT`]).
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(config);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%remote, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                app.clone().call(request)
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("closed the connections still open after {DRAIN_TIMEOUT:?}");
    }
}

/// The plain-HTTP side: the root certificate (a device fetches it before it can trust
/// HTTPS; the person checks its fingerprint), ACME HTTP-01 challenges, `/health` (public
/// on HTTPS too; `cellctl health` asks it here), and a permanent redirect to HTTPS on
/// `https_port` for everything else. Every route here is public.
pub fn plain_http_router(state: AppState, https_port: u16) -> Router {
    Router::new()
        .route("/health", get(crate::pages::health_get))
        .route("/ca.pem", get(crate::certificates_page::root_pem_get))
        .route("/ca.der", get(crate::certificates_page::root_der_get))
        .route(
            "/ca.mobileconfig",
            get(crate::certificates_page::root_mobileconfig_get),
        )
        .route(
            "/.well-known/acme-challenge/{token}",
            get(acme_challenge_get),
        )
        .fallback(move |request: Request| async move { to_https(&request, https_port) })
        .layer(middleware::map_response(crate::security_headers::add))
        .with_state(state)
}

/// An ACME HTTP-01 challenge's answer while celld's order waits for it (RFC 8555 8.3).
async fn acme_challenge_get(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    match state.certificates.challenge(&token) {
        Some(key_authorization) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such ACME challenge is pending").into_response(),
    }
}

/// The same host and path over HTTPS; 400 when the request names no usable host.
fn to_https(request: &Request, https_port: u16) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host());
    let Some(host) = host.and_then(host_without_port) else {
        return (StatusCode::BAD_REQUEST, "the request names no host").into_response();
    };
    let authority = if https_port == 443 {
        host.to_owned()
    } else {
        format!("{host}:{https_port}")
    };
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    match Uri::builder()
        .scheme("https")
        .authority(authority)
        .path_and_query(path)
        .build()
    {
        Ok(uri) => Redirect::permanent(&uri.to_string()).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "the request's host is not valid").into_response(),
    }
}

/// `host` of `host[:port]` or `[v6]:port`, if it is made of the characters a host name or
/// address may have.
pub(crate) fn host_without_port(value: &str) -> Option<&str> {
    let host = if value.starts_with('[') {
        let end = value.find(']')?;
        &value[..=end]
    } else {
        value.rsplit_once(':').map_or(value, |(host, _)| host)
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    valid.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port_and_junk_is_refused() {
        assert_eq!(
            host_without_port("cell.home.cell:80"),
            Some("cell.home.cell")
        );
        assert_eq!(host_without_port("192.168.1.2"), Some("192.168.1.2"));
        assert_eq!(host_without_port("[fd00::1]:8080"), Some("[fd00::1]"));
        assert_eq!(host_without_port("evil.com/x"), None);
        assert_eq!(host_without_port("a b"), None);
        assert_eq!(host_without_port(""), None);
    }
}
