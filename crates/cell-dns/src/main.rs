use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use cell_dns::listen::Listeners;
use cell_dns::{CellDns, Zone, ZoneHandle, ZoneSnapshot};
use clap::Parser;

/// The cell's DNS server: answers for the cell's zone from the snapshot celld renders, on
/// the addresses that snapshot lists, and forwards other names to its upstreams.
#[derive(Debug, Parser)]
#[command(version = cell_model::VERSION)]
struct Args {
    /// The zone snapshot celld writes (JSON); a new one is picked up within a second.
    #[arg(long, env = "CELL_DNS_ZONE", default_value = "/run/cell-dns/zone.json")]
    zone: PathBuf,
    /// The port answered on at each address the zone lists.
    #[arg(long, default_value_t = 53)]
    port: u16,
    /// An address and port always answered on, besides the zone's (repeat for more).
    #[arg(long = "listen")]
    listen: Vec<SocketAddr>,
}

/// How often the zone file is looked at.
const RELOAD_EVERY: Duration = Duration::from_millis(250);
/// How often an address that could not be bound is tried again.
const REBIND_EVERY: Duration = Duration::from_secs(5);

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

/// Watches the zone file: the next zone whenever celld wrote a new one that loads; a broken
/// one is logged (and the zone in force kept).
struct ZoneFile {
    path: PathBuf,
    seen: Option<(SystemTime, u64)>,
}

impl ZoneFile {
    fn changed(&mut self) -> Option<Zone> {
        let now = stamp(&self.path);
        if now == self.seen || now.is_none() {
            return None;
        }
        self.seen = now;
        match load(&self.path) {
            Ok(zone) => Some(zone),
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "ignoring a zone that does not load"
                );
                None
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // hickory logs every query at info: one journal line per query would cost more than
    // answering it.
    cell_systemd::init_logging_with("cell-dns", "info,hickory_server=warn")?;
    let mut file = ZoneFile {
        path: args.zone.clone(),
        seen: None,
    };
    // Ready at once: until celld has written a zone nothing is answered, and nothing
    // waits for that.
    cell_systemd::notify_ready()?;
    let shutdown = cell_systemd::shutdown_signal();
    tokio::pin!(shutdown);
    let mut ticker = tokio::time::interval(RELOAD_EVERY);
    let first = loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            _ = ticker.tick() => {
                if let Some(zone) = file.changed() {
                    break zone;
                }
                if stamp(&args.zone).is_none() {
                    tracing::debug!(zone = %args.zone.display(), "waiting for celld's zone");
                }
            }
        }
    };
    let zone = ZoneHandle::new(first);
    let handler = CellDns::new(zone.clone(), Default::default());
    let mut listeners = Listeners::new(handler, args.port, args.listen.clone());
    listeners.sync(&zone.current().snapshot().listen).await;
    tracing::info!(
        listen = ?listeners.addresses(),
        serial = zone.current().snapshot().serial,
        "cell-dns answering"
    );
    let mut last_sync = std::time::Instant::now();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {
                let Some(next) = file.changed() else {
                    if listeners.incomplete() && last_sync.elapsed() >= REBIND_EVERY {
                        listeners.sync(&zone.current().snapshot().listen).await;
                        last_sync = std::time::Instant::now();
                    }
                    continue;
                };
                tracing::info!(serial = next.snapshot().serial, "zone replaced");
                let addresses = next.snapshot().listen.clone();
                zone.replace(next);
                listeners.sync(&addresses).await;
                last_sync = std::time::Instant::now();
            }
        }
    }
    listeners.close().await;
    tracing::info!("cell-dns stopped");
    Ok(())
}
