use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use celld::network::{KernelNetwork, Network, RecordedNetwork};
use celld::system::{DBusSystem, Machine, RecordedSystem};
use celld::{Config, Daemon};
use clap::Parser;

/// The cell's privileged core daemon.
#[derive(Debug, Parser)]
#[command(version = cell_model::VERSION)]
struct Args {
    /// Unix socket of the local JSON API.
    #[arg(long, env = "CELLD_SOCKET", default_value = "/run/cell/celld.sock")]
    socket: PathBuf,
    /// Persistent state: settings, history, audit log.
    #[arg(long, env = "CELLD_STATE_DIR", default_value = "/var/lib/cell")]
    state_dir: PathBuf,
    /// Runtime files (the console banner); defaults to the socket's directory.
    #[arg(long, env = "CELLD_RUN_DIR")]
    run_dir: Option<PathBuf>,
    /// The zone snapshot for cell-dns; defaults to dns/zone.json in the runtime directory.
    #[arg(long, env = "CELLD_DNS_ZONE")]
    dns_zone: Option<PathBuf>,
    /// chrony's configuration, rendered for cell-ntp.service; defaults to
    /// chrony/chrony.conf in the runtime directory.
    #[arg(long, env = "CELLD_NTP_CONFIG")]
    ntp_config: Option<PathBuf>,
    /// Where a static LAN address is written for systemd-networkd; defaults to
    /// network/10-cell-lan.network in the runtime directory.
    #[arg(long, env = "CELLD_LAN_NETWORK_FILE")]
    lan_network_file: Option<PathBuf>,
    /// dnsmasq's configuration for the DHCP server; defaults to dhcp/dnsmasq.conf in the
    /// runtime directory.
    #[arg(long, env = "CELLD_DHCP_CONFIG")]
    dhcp_config: Option<PathBuf>,
    /// dnsmasq's lease file.
    #[arg(long, env = "CELLD_DHCP_LEASES")]
    dhcp_leases: Option<PathBuf>,
    /// The uplink's resolvers as systemd-resolved lists them (resolv.conf format).
    #[arg(long, env = "CELLD_UPLINK_RESOLVERS", default_value = celld::daemon::UPLINK_RESOLVERS)]
    uplink_resolvers: PathBuf,
    /// The system user of cell-web, whose connections the API accepts besides root's.
    #[arg(long, default_value = "cell-web")]
    web_user: String,
    /// The WireGuard interface celld creates and owns.
    #[arg(long, env = "CELLD_WG_INTERFACE", default_value = celld::daemon::DEFAULT_WG_INTERFACE)]
    wg_interface: String,
    /// Only record hostname and time-zone changes instead of making them (development
    /// runs off the device, tests).
    #[arg(long)]
    no_system: bool,
    /// Only record WireGuard, address and firewall changes instead of making them.
    #[arg(long)]
    no_network: bool,
    /// Seconds an administrator has to confirm a risky change (VPN subnet or port) before
    /// it is undone.
    #[arg(long, env = "CELLD_CONFIRM_WINDOW", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(10..=3600))]
    confirm_window: u64,
    /// Trust only this CA (PEM) for the ACME directory's HTTPS: a local test CA such as
    /// pebble's. Without it, the system's roots.
    #[arg(long, env = "CELLD_ACME_DIRECTORY_CA")]
    acme_directory_ca: Option<PathBuf>,
    /// Serve the mail machine's login policy on this socket; its directory is bound into
    /// the machine and given to its `dovecot`. Without it, mail logins are refused.
    #[arg(long, env = "CELLD_MAIL_LOGIN_SOCKET")]
    mail_login_socket: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cell_systemd::init_logging("celld")?;
    let mut allowed_uids = vec![0];
    match nix::unistd::User::from_name(&args.web_user) {
        Ok(Some(user)) => allowed_uids.push(user.uid.as_raw()),
        Ok(None) => {
            tracing::warn!(user = %args.web_user, "no such user; only root may use the API")
        }
        Err(error) => {
            tracing::warn!(user = %args.web_user, %error, "cannot look the web user up; only root may use the API")
        }
    }
    let run_dir = match args.run_dir {
        Some(dir) => dir,
        None => args
            .socket
            .parent()
            .map(PathBuf::from)
            .context("the socket path has no directory")?,
    };
    let system: Arc<dyn Machine> = if args.no_system {
        Arc::new(RecordedSystem::default())
    } else {
        Arc::new(DBusSystem::default())
    };
    let network: Arc<dyn Network> = if args.no_network {
        Arc::new(RecordedNetwork::default())
    } else {
        Arc::new(KernelNetwork::default())
    };
    let mut config = Config::new(args.state_dir.clone(), run_dir, allowed_uids);
    config.wg_interface = args.wg_interface;
    if let Some(dns_zone) = args.dns_zone {
        config.dns_zone = dns_zone;
    }
    config.uplink_resolvers = args.uplink_resolvers;
    if let Some(ntp_config) = args.ntp_config {
        config.ntp_config = ntp_config;
    }
    if let Some(file) = args.lan_network_file {
        config.lan_network_file = file;
    }
    if let Some(file) = args.dhcp_config {
        config.dhcp_config = file;
    }
    if let Some(file) = args.dhcp_leases {
        config.dhcp_leases = file;
    }
    config.confirm_window = std::time::Duration::from_secs(args.confirm_window);
    config.acme_directory_root = args.acme_directory_ca;
    config.mail_login_dir = args
        .mail_login_socket
        .as_ref()
        .and_then(|socket| socket.parent())
        .map(PathBuf::from);
    // Without the system no machine runs: its state stays celld's own.
    config.machine_owners = !args.no_system;
    let daemon = Daemon::start(config, system, network)
        .with_context(|| format!("opening the state in {}", args.state_dir.display()))?;
    if let Some(path) = &args.mail_login_socket {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))?;
        }
        let listener = celld::socket::bind_for_directory(path)?;
        let mail_daemon = daemon.clone();
        tokio::spawn(async move {
            if let Err(error) = celld::serve_mail_logins(listener, mail_daemon).await {
                tracing::error!(%error, "the mail login policy stopped; mail logins are refused");
            }
        });
    }
    let listener = celld::socket::bind(&args.socket)?;
    tracing::info!(socket = %args.socket.display(), version = cell_model::VERSION, "celld listening");
    cell_systemd::notify_ready()?;
    celld::serve(listener, daemon, cell_systemd::shutdown_signal())
        .await
        .context("serving the local API")?;
    tracing::info!("celld stopped");
    Ok(())
}
