use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cell_web::AppState;
use celld_client::CelldClient;
use clap::Parser;

/// The cell's web front door.
#[derive(Debug, Parser)]
#[command(version = cell_model::VERSION)]
struct Args {
    /// Address and port to serve the web UI on.
    #[arg(long, env = "CELL_WEB_LISTEN", default_value = "[::]:80")]
    listen: SocketAddr,
    /// celld's local API socket.
    #[arg(long, env = "CELLD_SOCKET", default_value = "/run/cell/celld.sock")]
    celld_socket: PathBuf,
    /// Mark session cookies Secure (when the cell is reached over HTTPS).
    #[arg(long)]
    secure_cookies: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cell_systemd::init_logging("cell-web")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let state = AppState::new(CelldClient::new(args.celld_socket), args.secure_cookies);
    tracing::info!(listen = %args.listen, version = cell_model::VERSION, "cell-web listening");
    cell_systemd::notify_ready()?;
    let app = cell_web::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(cell_systemd::shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("cell-web stopped");
    Ok(())
}
