use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use cell_dns::{Zone, ZoneHandle, ZoneSnapshot};
use clap::Parser;

/// The cell's DNS server: answers for the cell's zone from the snapshot celld renders.
#[derive(Debug, Parser)]
#[command(version = cell_model::VERSION)]
struct Args {
    /// The zone snapshot celld writes (JSON); a new one is picked up within a second.
    #[arg(long, env = "CELL_DNS_ZONE", default_value = "/run/cell/dns/zone.json")]
    zone: PathBuf,
    /// Address and port to answer on, over UDP and TCP (repeat for each address).
    #[arg(long = "listen", required = true)]
    listen: Vec<SocketAddr>,
}

/// How often the zone file is looked at.
const RELOAD_EVERY: Duration = Duration::from_millis(250);

fn load(path: &Path) -> anyhow::Result<Zone> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let snapshot: ZoneSnapshot = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a zone snapshot", path.display()))?;
    Zone::new(snapshot).with_context(|| format!("the zone in {}", path.display()))
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Swaps in each new zone celld writes; a broken one is logged and the old one kept.
async fn follow(path: PathBuf, zone: ZoneHandle) {
    let mut seen = stamp(&path);
    let mut ticker = tokio::time::interval(RELOAD_EVERY);
    loop {
        ticker.tick().await;
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match load(&path) {
            Ok(next) => {
                tracing::info!(serial = next.snapshot().serial, "zone replaced");
                zone.replace(next);
            }
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "keeping the zone in force")
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cell_systemd::init_logging("cell-dns")?;
    let zone = ZoneHandle::new(load(&args.zone)?);
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    for address in &args.listen {
        udp.push(
            tokio::net::UdpSocket::bind(address)
                .await
                .with_context(|| format!("listening on {address} (UDP)"))?,
        );
        tcp.push(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("listening on {address} (TCP)"))?,
        );
    }
    let mut server = cell_dns::serve(zone.clone(), Default::default(), udp, tcp);
    tokio::spawn(follow(args.zone.clone(), zone.clone()));
    tracing::info!(listen = ?args.listen, serial = zone.current().snapshot().serial, "cell-dns answering");
    cell_systemd::notify_ready()?;
    cell_systemd::shutdown_signal().await;
    server
        .shutdown_gracefully()
        .await
        .context("stopping the DNS server")?;
    tracing::info!("cell-dns stopped");
    Ok(())
}
