//! The command-line definition; `main` runs it, and `cellctl completions` / `cellctl man`
//! generate shell completions and the man page from it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Manage the Personal Internet Cell from its console (as root).
#[derive(Debug, Parser)]
#[command(name = "cellctl", version = cell_model::VERSION)]
pub struct Cli {
    /// celld's local API socket.
    #[arg(
        long,
        global = true,
        env = "CELLD_SOCKET",
        default_value = "/run/cell/celld.sock"
    )]
    pub socket: PathBuf,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Version, hostname, uptime, setup state and settings generation.
    Status,
    /// Show or change the settings.
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Manage accounts.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Read and verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The cell's DNS: records in its zone, upstream resolvers, forwarding zones.
    #[command(subcommand)]
    Dns(DnsCommand),
    /// The LAN port (DHCP or static) and the cell's DHCP server.
    #[command(subcommand)]
    Lan(LanCommand),
    /// The cell's time: sources, serving, chrony's synchronisation.
    #[command(subcommand)]
    Ntp(NtpCommand),
    /// Outgoing mail: the relay (smarthost) the cell sends through.
    #[command(subcommand)]
    MailRelay(MailRelayCommand),
    /// Every unit of the cell: state, since when, restarts.
    Units,
    /// The journal of the cell's units, oldest first.
    Logs {
        /// Only this unit (`celld` or `celld.service`).
        #[arg(long, short)]
        unit: Option<String>,
        /// Only this priority and more important: 3 errors, 4 warnings, 6 info.
        #[arg(long, short, value_parser = clap::value_parser!(u8).range(0..=7))]
        priority: Option<u8>,
        /// Only lines containing this text (any case).
        #[arg(long, short = 'g')]
        grep: Option<String>,
        /// The newest this many lines.
        #[arg(long, short = 'n', default_value_t = 100,
              value_parser = clap::value_parser!(u16).range(1..=1000))]
        lines: u16,
        /// Keep printing new lines as they come.
        #[arg(long, short)]
        follow: bool,
    },
    /// Where accounts are logged in to the web UI and API; end a session.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Over-the-air updates: check, install into the inactive slot, reboot.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Print the one-time setup code (until the cell is set up).
    SetupCode,
    /// Check that the cell's services answer: celld's API and cell-web's /health. Exits
    /// 0 when healthy; what boot assessment waits for before a version counts as good.
    Health {
        /// Keep trying for this many seconds while the services start.
        #[arg(long, default_value_t = 0)]
        wait: u64,
        /// Where cell-web listens.
        #[arg(long, default_value = "127.0.0.1:80")]
        web: std::net::SocketAddr,
    },
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Running, available, pending and failed versions, the job's progress, the last result.
    Status,
    /// Set the URL updates are published at (`--clear` removes it).
    Url {
        #[arg(required_unless_present = "clear")]
        url: Option<String>,
        #[arg(long, conflicts_with = "url")]
        clear: bool,
    },
    /// Ask the update server for newer versions.
    Check {
        /// Wait for the answer.
        #[arg(long)]
        wait: bool,
    },
    /// Download, verify and install a version (default: the newest available).
    Install {
        version: Option<String>,
        /// Wait until it is installed, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Reboot into the installed version, now or at a time (RFC 3339).
    Reboot {
        #[arg(long)]
        at: Option<String>,
        /// Cancel a scheduled reboot instead.
        #[arg(long, conflicts_with = "at")]
        cancel: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Print the settings.
    Get,
    /// Change one setting. Keys: cell_name, timezone, domain (internal, own:DOMAIN or
    /// dynamic:PROVIDER:HOSTNAME), services.calendar, services.files, services.mail,
    /// services.webdav (true or false).
    Set { key: String, value: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Peer,
}

#[derive(Debug, Args)]
pub struct PasswordSource {
    /// Read the password from standard input (first line) instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List accounts.
    List,
    /// Create an account; asks for its password.
    Add {
        name: String,
        #[arg(long, value_enum, default_value = "peer")]
        role: RoleArg,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Disable an account (it can no longer log in).
    Disable { name: String },
    /// Enable a disabled account.
    Enable { name: String },
    /// Change an account's role.
    SetRole {
        name: String,
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Delete an account with its VPN devices, then its mailbox, calendars, address books
    /// and files (export them first). Of a name that is no longer an account, remove what
    /// it left.
    Delete { name: String },
    /// Write an account's mail (maildir), calendars (.ics), address books (.vcf) and files
    /// into one tar archive.
    Export {
        name: String,
        /// The archive to write (it must not exist yet).
        #[arg(long, short)]
        output: std::path::PathBuf,
    },
    /// Set a new password for an account; asks for it.
    ResetPassword {
        name: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Remove an account's second factor (lost phone).
    RemoveTotp { name: String },
    /// An account's app passwords: device, made, last use.
    AppPasswords { name: String },
    /// Make an app password for one of the account's devices; prints it, this once.
    AddAppPassword {
        name: String,
        /// The device it is for.
        device: String,
    },
    /// Revoke an app password (by the id `app-passwords` lists).
    RevokeAppPassword { name: String, id: String },
}

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// The zone, its records, the upstreams and forwarding zones in force.
    List,
    /// Add a record. VALUE by type: A/AAAA an address; CNAME a name; TXT the text; MX
    /// "PREFERENCE EXCHANGE"; SRV "PRIORITY WEIGHT PORT TARGET".
    Add {
        /// Relative to the zone (`www`), or `@` for the zone itself.
        name: String,
        #[arg(value_parser = ["A", "AAAA", "CNAME", "TXT", "MX", "SRV"], ignore_case = true)]
        kind: String,
        #[arg(required = true, num_args = 1..)]
        value: Vec<String>,
        /// Seconds answers may be cached.
        #[arg(long, default_value_t = cell_model::dns::DEFAULT_TTL)]
        ttl: u32,
    },
    /// Remove the records of a name (only those of one type with --type).
    Remove {
        name: String,
        #[arg(long = "type")]
        kind: Option<String>,
    },
    /// Ask these resolvers for names outside the zone; with none, the ones the uplink's
    /// DHCP server gives.
    Upstreams {
        servers: Vec<std::net::IpAddr>,
        /// Over DNS-over-TLS, checking their certificate against this name.
        #[arg(long)]
        tls: Option<String>,
    },
    /// Ask these servers for names under ZONE (a linked cell's zone).
    Forward {
        zone: String,
        #[arg(required = true)]
        servers: Vec<std::net::IpAddr>,
    },
    /// Stop forwarding ZONE.
    Unforward { zone: String },
}

#[derive(Debug, Subcommand)]
pub enum LanCommand {
    /// Addressing, DHCP server, reservations, leases.
    Show,
    /// Take the LAN address from the LAN's DHCP server (undone unless confirmed).
    Dhcp,
    /// A static address (undone unless confirmed: `cellctl status` shows how).
    Static {
        /// With its prefix, e.g. 192.168.1.2/24.
        address: String,
        gateway: std::net::Ipv4Addr,
        /// Resolvers for the cell itself.
        dns: Vec<std::net::IpAddr>,
    },
    /// Turn the DHCP server on (with its pool) or off.
    DhcpServer {
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[arg(long)]
        pool_start: Option<std::net::Ipv4Addr>,
        #[arg(long)]
        pool_size: Option<u32>,
        #[arg(long)]
        lease_seconds: Option<u32>,
    },
    /// Always give ADDRESS, and the name NAME, to the device with MAC.
    Reserve {
        mac: String,
        address: std::net::Ipv4Addr,
        name: String,
    },
    /// Remove the reservation called NAME.
    Unreserve { name: String },
}

#[derive(Debug, Subcommand)]
pub enum NtpCommand {
    /// Sources, whether time is served, and chrony's state (stratum, offset).
    Status,
    /// Take time from these sources: HOST, or HOST:pool, HOST:nts, HOST:pool:nts. None:
    /// the default pool.
    Servers { servers: Vec<String> },
    /// Serve time to the LAN and the VPN, or not.
    Serve {
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MailRelayCommand {
    /// The relay in use, if any (never its password).
    Show,
    /// Send outgoing mail through HOST, logged in as USERNAME; asks for the password
    /// (needed the first time and for a new login; `--keep-password` keeps the one set).
    Set {
        host: String,
        username: String,
        /// 587 (STARTTLS) or 465 (TLS).
        #[arg(long, default_value_t = 587)]
        port: u16,
        /// Do not check the relay's certificate (a relay on one's own network only).
        #[arg(long)]
        no_verify: bool,
        /// Keep the password set before.
        #[arg(long, conflicts_with = "password_stdin")]
        keep_password: bool,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Stop using the relay and forget its password.
    Remove,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Every live session: user, device, address, last seen.
    List,
    /// End a session (by the id `list` shows): that browser is logged out at once.
    End { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List entries, newest first.
    List {
        /// Only entries by this actor.
        #[arg(long)]
        actor: Option<String>,
        /// Only actions starting with this (settings, user, auth…).
        #[arg(long)]
        action: Option<String>,
        /// Only entries mentioning this.
        #[arg(long)]
        search: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Check the hash chain; exits with status 1 if an entry was changed or removed.
    Verify,
}
