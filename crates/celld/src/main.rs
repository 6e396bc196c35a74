use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// The cell's privileged core daemon.
#[derive(Debug, Parser)]
#[command(version = cell_model::VERSION)]
struct Args {
    /// Unix socket of the local JSON API.
    #[arg(long, env = "CELLD_SOCKET", default_value = "/run/cell/celld.sock")]
    socket: PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cell_systemd::init_logging("celld")?;
    let listener = celld::socket::bind(&args.socket)?;
    tracing::info!(socket = %args.socket.display(), version = cell_model::VERSION, "celld listening");
    cell_systemd::notify_ready()?;
    celld::serve(listener, cell_systemd::shutdown_signal())
        .await
        .context("serving the local API")?;
    tracing::info!("celld stopped");
    Ok(())
}
