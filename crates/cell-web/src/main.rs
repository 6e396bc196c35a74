use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cell_web::proxy::ProxyRoute;
use cell_web::AppState;
use celld_client::CelldClient;
use clap::Parser;

/// The cell's web front door.
#[derive(Debug, Parser)]
#[command(version = cell_model::VERSION)]
struct Args {
    /// Address and port for plain HTTP: the whole UI without --tls-listen; with it, only
    /// the root certificate's download, ACME challenges and a redirect to HTTPS.
    #[arg(long, env = "CELL_WEB_LISTEN", default_value = "[::]:80")]
    listen: SocketAddr,
    /// Address and port for HTTPS, with the certificates celld hands over.
    #[arg(long, env = "CELL_WEB_TLS_LISTEN")]
    tls_listen: Option<SocketAddr>,
    /// celld's local API socket.
    #[arg(long, env = "CELLD_SOCKET", default_value = "/run/cell/celld.sock")]
    celld_socket: PathBuf,
    /// Mark session cookies Secure (always so with --tls-listen).
    #[arg(long)]
    secure_cookies: bool,
    /// Proxy a host name to a backend, `NAME=ADDRESS:PORT` (repeatable), with `@SERVICE`
    /// requiring that service's login (an app password; the backend gets X-Remote-User):
    /// for trials and the benchmark; the service machines' routes come from the settings.
    #[arg(long = "proxy", value_parser = parse_proxy_route)]
    proxy_routes: Vec<ProxyRoute>,
}

fn parse_proxy_route(value: &str) -> Result<ProxyRoute, String> {
    let (host, target) = value
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=ADDRESS:PORT[@SERVICE], got {value:?}"))?;
    let (backend, login) = match target.split_once('@') {
        Some((_, service)) if !cell_model::users::LOGIN_SERVICES.contains(&service) => {
            return Err(format!(
                "{service:?} is not a service with logins ({})",
                cell_model::users::LOGIN_SERVICES.join(", ")
            ))
        }
        Some((backend, service)) => (backend, Some(service.to_owned())),
        None => (target, None),
    };
    let backend: SocketAddr = backend
        .parse()
        .map_err(|e| format!("the backend {backend:?} is not ADDRESS:PORT: {e}"))?;
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(format!("{host:?} is not a host name"));
    }
    Ok(ProxyRoute {
        host: host.to_ascii_lowercase(),
        backend,
        body_limit: None,
        vpn_networks: Vec::new(),
        vpn_allowed: Default::default(),
        login,
        quota: false,
    })
}

// One worker per core: TLS handshakes and proxied bodies are CPU work.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cell_systemd::init_logging("cell-web")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let celld = CelldClient::new(args.celld_socket);
    let state = AppState::new(
        celld.clone(),
        args.secure_cookies || args.tls_listen.is_some(),
    );
    if !args.proxy_routes.is_empty() {
        tracing::info!(
            routes = args.proxy_routes.len(),
            "proxying the names given on the command line"
        );
        state.proxy.install(args.proxy_routes.clone());
    }
    tokio::spawn(cell_web::proxy::follow_celld(
        celld.clone(),
        state.proxy.clone(),
        args.proxy_routes,
    ));
    let Some(tls_listen) = args.tls_listen else {
        tracing::info!(listen = %args.listen, version = cell_model::VERSION, "cell-web listening (HTTP only)");
        cell_systemd::notify_ready()?;
        let app = cell_web::router(state).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(cell_systemd::shutdown_signal())
            .await
            .context("serving HTTP")?;
        tracing::info!("cell-web stopped");
        return Ok(());
    };
    let tls_listener = tokio::net::TcpListener::bind(tls_listen)
        .await
        .with_context(|| format!("listening on {tls_listen}"))?;
    let certificates = state.certificates.clone();
    let config = certificates.server_config()?;
    // Handshakes fail (and are logged) until celld's certificates arrive, moments after
    // start: celld makes them before it answers.
    tokio::spawn(cell_web::tls::follow_celld(celld, certificates, None));
    let plain = cell_web::front_door::plain_http_router(state.clone(), tls_listen.port())
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, plain)
            .with_graceful_shutdown(cell_systemd::shutdown_signal())
            .await
        {
            tracing::error!(%error, "serving plain HTTP");
        }
    });
    tracing::info!(listen = %args.listen, %tls_listen, version = cell_model::VERSION, "cell-web listening");
    cell_systemd::notify_ready()?;
    cell_web::front_door::serve_tls(
        tls_listener,
        config,
        cell_web::router(state),
        cell_systemd::shutdown_signal(),
    )
    .await;
    tracing::info!("cell-web stopped");
    Ok(())
}
