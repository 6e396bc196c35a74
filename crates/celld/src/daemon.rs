//! celld's state: the settings store, the audit log, the setup code, the login throttle,
//! the reconciler's board and the operating-system seams, shared by every request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use cell_model::api::UnitHealth;
use cell_secrets::SecretStore;

use crate::acme::Acme;
use crate::audit::{AuditError, AuditLog, Record};
use crate::audited::{self, CommitError};
use crate::network::{LiveNetwork, Network};
use crate::passwords::HashGate;
use crate::pki::Pki;
use crate::reconcile::dav::DavApplier;
use crate::reconcile::dns::DnsZoneApplier;
use crate::reconcile::identity::Identity;
use crate::reconcile::lan::LanApplier;
use crate::reconcile::mail::MailApplier;
use crate::reconcile::ntp::NtpApplier;
use crate::reconcile::pki::PkiApplier;
use crate::reconcile::vpn::{AddressesApplier, FirewallApplier, WireGuardApplier};
use crate::reconcile::{Board, DynApplier, Reconciler, Timing};
use crate::sessions::Sessions;
use crate::settings_store::SettingsStore;
use crate::setup_code::{SetupCode, SetupCodeError};
use crate::sync::lock;
use crate::system::{Machine, System};
use crate::throttle::Throttle;
use crate::vpn::ServerKey;

pub use crate::settings_store::DEFAULT_CONFIRM_WINDOW;

/// The audit log, in the state directory.
pub const AUDIT_FILE: &str = "audit.jsonl";
const SECRETS_DIR: &str = "secrets";

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] cell_store::StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    SetupCode(#[from] SetupCodeError),
    #[error(transparent)]
    Secrets(#[from] cell_secrets::SecretError),
    #[error("preparing the VPN's server key: {0}")]
    ServerKey(#[from] crate::vpn::ServerKeyError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("opening the cell's certificates: {0}")]
    Pki(#[from] crate::pki::PkiStoreError),
}

/// Where celld keeps things, who may talk to it, and how it paces its work.
#[derive(Debug, Clone)]
pub struct Config {
    /// Persistent state: settings, history, audit log, setup code (`/var/lib/cell`).
    pub state_dir: PathBuf,
    /// Runtime files: the console banner (`/run/cell`).
    pub run_dir: PathBuf,
    /// The zone snapshot rendered for cell-dns (`/run/cell-dns/zone.json` on the device,
    /// a directory cell-dns can read without reaching celld's socket).
    pub dns_zone: PathBuf,
    /// What the uplink's DHCP server gave as resolvers, per systemd-resolved: the
    /// upstreams when none are set.
    pub uplink_resolvers: PathBuf,
    /// The runtime `.network` file of a static LAN address
    /// (`/run/systemd/network/10-cell-lan.network` on the device).
    pub lan_network_file: PathBuf,
    /// dnsmasq's configuration for the DHCP server (`/run/cell-dhcp/dnsmasq.conf`).
    pub dhcp_config: PathBuf,
    /// dnsmasq's leases.
    pub dhcp_leases: PathBuf,
    /// chrony's configuration, rendered for cell-ntp.service
    /// (`/run/cell-chrony/chrony.conf` on the device).
    pub ntp_config: PathBuf,
    /// The service machines' read-only trees (/usr/lib/machines).
    pub machines_dir: PathBuf,
    /// Give the machines' state to their own users (on the cell; unprivileged tests
    /// cannot, and keep it their own).
    pub machine_owners: bool,
    /// Users whose connections the local API accepts (root and cell-web on the device).
    pub allowed_uids: Vec<u32>,
    /// The front door's user (cell-web's), the only one handed the certificates' keys.
    pub front_door_uid: u32,
    /// The WireGuard interface celld owns.
    pub wg_interface: String,
    /// How long a risky change waits for its confirmation before it is undone.
    pub confirm_window: Duration,
    /// How long an unused session lasts.
    pub session_idle: Duration,
    /// Trust only this CA for the ACME directory's HTTPS (a local test CA such as
    /// pebble's); none: the system's roots.
    pub acme_directory_root: Option<PathBuf>,
    /// Where the mail machine's login policy socket is (bound into the machine): the mail
    /// applier gives it to the machine's `dovecot`. None: no policy socket is served.
    pub mail_login_dir: Option<PathBuf>,
    pub timing: Timing,
}

impl Config {
    /// The defaults of the device for everything but the paths and admitted users.
    pub fn new(state_dir: PathBuf, run_dir: PathBuf, allowed_uids: Vec<u32>) -> Self {
        Self {
            dns_zone: run_dir.join(DNS_ZONE_FILE),
            ntp_config: run_dir.join(NTP_CONFIG_FILE),
            machines_dir: PathBuf::from("/usr/lib/machines"),
            machine_owners: true,
            lan_network_file: run_dir.join("network/10-cell-lan.network"),
            dhcp_config: run_dir.join("dhcp/dnsmasq.conf"),
            dhcp_leases: run_dir.join("dhcp/dnsmasq.leases"),
            uplink_resolvers: PathBuf::from(UPLINK_RESOLVERS),
            state_dir,
            run_dir,
            // cell-web's user when it has one, else root (cell-web run as root in tests).
            front_door_uid: allowed_uids.last().copied().unwrap_or(0),
            allowed_uids,
            wg_interface: DEFAULT_WG_INTERFACE.to_owned(),
            confirm_window: DEFAULT_CONFIRM_WINDOW,
            session_idle: crate::sessions::IDLE_TIMEOUT,
            acme_directory_root: None,
            mail_login_dir: None,
            timing: Timing::default(),
        }
    }
}

/// The zone cell-dns answers from, in the runtime directory (when not set apart).
pub const DNS_ZONE_FILE: &str = "dns/zone.json";
/// chrony's configuration, in the runtime directory (when not set apart).
pub const NTP_CONFIG_FILE: &str = "chrony/chrony.conf";
/// systemd-resolved's list of the uplink's DNS servers (not its own stub).
pub const UPLINK_RESOLVERS: &str = "/run/systemd/resolve/resolv.conf";

/// The WireGuard interface's name on the device.
pub const DEFAULT_WG_INTERFACE: &str = "cellwg0";

#[derive(Debug)]
pub struct Daemon {
    pub(crate) config: Config,
    pub(crate) store: Mutex<SettingsStore>,
    pub(crate) audit: Mutex<AuditLog>,
    pub(crate) setup_code: Mutex<SetupCode>,
    pub(crate) throttle: Mutex<Throttle>,
    /// Bounds the password hashes running at once.
    pub(crate) hash_gate: HashGate,
    pub(crate) sessions: Mutex<Sessions>,
    /// Held while the sessions file is written, so that an older snapshot never lands
    /// after a newer one.
    session_writer: Mutex<()>,
    /// TOTP seeds handed out for enrolment, not yet confirmed with a code.
    pub(crate) pending_totp: Mutex<std::collections::HashMap<String, String>>,
    /// Units, jobs and reboots; the hostname and time zone are the reconciler's alone.
    pub(crate) system: Arc<dyn System>,
    /// Live state to show; changes to it are the reconciler's alone.
    pub(crate) network: Arc<dyn LiveNetwork>,
    pub(crate) secrets: SecretStore,
    /// The cell's root and the front door's certificates.
    pub(crate) pki: Arc<Pki>,
    pub(crate) acme: Arc<Acme>,
    /// Service logins accepted a moment ago, and the app passwords' last use.
    pub(crate) service_trust: Mutex<crate::app_passwords::Trusted>,
    /// Mail logins accepted a moment ago, by Dovecot's salted digest of the password.
    pub(crate) mail_trust: Mutex<crate::app_passwords::Trusted>,
    pub(crate) app_password_uses: Mutex<crate::app_passwords::Uses>,
    /// One-time links to VPN devices' profiles (the QR code on a device's page).
    pub(crate) profile_links: Mutex<crate::profile_links::ProfileLinks>,
    /// The WireGuard server key, decrypted once at start rather than on every request.
    pub(crate) wg_key: ServerKey,
    /// What the reconciler made of the settings, per applier.
    pub(crate) board: Arc<Board>,
    /// Unit states, asked of systemd at most every UNIT_HEALTH_TTL: status is polled by
    /// every page view and health check, systemd need not be.
    unit_health: tokio::sync::Mutex<Option<(Instant, Vec<UnitHealth>)>>,
    /// Held while an update job is handed over, so that two requests cannot both pass
    /// the "no job is running" check.
    pub(crate) update_handover: tokio::sync::Mutex<()>,
}

const UNIT_HEALTH_TTL: Duration = Duration::from_secs(2);
/// How often the confirmation window's deadline is checked.
const CONFIRM_CHECK_EVERY: Duration = Duration::from_secs(1);

impl Daemon {
    /// Opens the state and starts the reconciler and the confirmation-window watch on the
    /// current tokio runtime.
    pub fn start(
        config: Config,
        machine: Arc<dyn Machine>,
        network: Arc<dyn Network>,
    ) -> Result<Arc<Self>, OpenError> {
        let mut store = SettingsStore::open(&config.state_dir, config.confirm_window)?;
        let secrets = SecretStore::open(&config.state_dir.join(SECRETS_DIR))?;
        // Cells set up before the VPN existed get their VPN section now; new ones get it
        // from the setup wizard.
        if store.current().settings.setup_complete && store.current().settings.vpn.is_none() {
            let mut settings = store.current().settings.clone();
            settings.vpn = Some(crate::vpn::new_vpn());
            store.commit(settings)?;
            tracing::info!("created the VPN settings");
        }
        let wg_key = crate::vpn::server_key(&secrets)?;
        let pki = Arc::new(Pki::open(
            &config.state_dir.join(SECRETS_DIR),
            &store.current().settings.zone(),
        )?);
        let mut audit = AuditLog::open(&config.state_dir.join(AUDIT_FILE))?;
        audited::heal(&mut audit, &config.state_dir, store.current().generation)?;
        let sessions = Sessions::load(&config.state_dir, config.session_idle);
        let setup_code = SetupCode::prepare(
            &config.state_dir,
            &config.run_dir,
            store.current().settings.setup_complete,
        )?;
        let app_password_uses = crate::app_passwords::Uses::load(&config.state_dir);
        let acme = Arc::new(Acme::new(pki.clone(), config.acme_directory_root.clone()));
        let dkim = Arc::new(crate::dkim::Dkim::new(SecretStore::open(
            &config.state_dir.join(SECRETS_DIR),
        )?));
        let interface = config.wg_interface.as_str();
        let appliers: Vec<Box<dyn DynApplier>> = vec![
            Box::new(Identity::new(machine.clone())),
            Box::new(FirewallApplier::new(
                network.clone(),
                interface,
                config.front_door_uid,
            )),
            Box::new(WireGuardApplier::new(
                network.clone(),
                interface,
                wg_key.clone(),
            )),
            Box::new(AddressesApplier::new(network.clone(), interface)),
            Box::new(DnsZoneApplier::new(
                network.clone(),
                interface,
                config.dns_zone.clone(),
                config.uplink_resolvers.clone(),
                config.dhcp_leases.clone(),
                acme.dns_records(),
                dkim.clone(),
            )),
            Box::new(PkiApplier::new(pki.clone(), network.clone(), interface)),
            Box::new(LanApplier::new(
                machine.clone(),
                config.lan_network_file.clone(),
                config.dhcp_config.clone(),
                config.dhcp_leases.clone(),
            )),
            Box::new(NtpApplier::new(
                network.clone(),
                machine.clone(),
                interface,
                config.ntp_config.clone(),
            )),
            Box::new(MailApplier::new(
                machine.clone(),
                pki.clone(),
                dkim,
                SecretStore::open(&config.state_dir.join(SECRETS_DIR))?,
                config.state_dir.join("mail"),
                config.machines_dir.join("mail"),
                crate::reconcile::mail::LoginPolicy {
                    nonce: crate::mail_login::nonce(&secrets)?,
                    socket_dir: config.mail_login_dir.clone(),
                },
            )),
            Box::new(DavApplier::new(
                machine.clone(),
                config.state_dir.join(crate::dav::STATE_DIR),
                config.machines_dir.join("dav"),
                config.machine_owners,
            )),
        ];
        let reconciler = Reconciler::new(appliers, store.subscribe(), config.timing);
        let board = reconciler.board();
        tokio::spawn(reconciler.run());
        tokio::spawn(
            acme.clone()
                .run(store.subscribe(), board.clone(), config.dns_zone.clone()),
        );
        let daemon = Arc::new(Self {
            config,
            store: Mutex::new(store),
            audit: Mutex::new(audit),
            setup_code: Mutex::new(setup_code),
            throttle: Mutex::new(Throttle::default()),
            hash_gate: HashGate::default(),
            sessions: Mutex::new(sessions),
            session_writer: Mutex::new(()),
            pending_totp: Mutex::new(Default::default()),
            system: machine,
            network,
            secrets,
            pki,
            acme,
            service_trust: Mutex::default(),
            mail_trust: Mutex::default(),
            app_password_uses: Mutex::new(app_password_uses),
            profile_links: Mutex::default(),
            wg_key,
            board,
            unit_health: tokio::sync::Mutex::new(None),
            update_handover: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(watch_confirmations(Arc::downgrade(&daemon)));
        tokio::spawn(follow_zone_inputs(Arc::downgrade(&daemon)));
        tokio::spawn(save_sessions_now_and_then(Arc::downgrade(&daemon)));
        Ok(daemon)
    }

    /// The state of the monitored units, at most UNIT_HEALTH_TTL old.
    pub async fn unit_health(&self) -> Vec<UnitHealth> {
        let mut cached = self.unit_health.lock().await;
        if let Some((at, health)) = cached.as_ref() {
            if at.elapsed() < UNIT_HEALTH_TTL {
                return health.clone();
            }
        }
        let health = match self
            .system
            .unit_health(crate::status::MONITORED_UNITS)
            .await
        {
            Ok(health) => health,
            Err(error) => {
                tracing::warn!(%error, "cannot read unit states");
                Vec::new()
            }
        };
        *cached = Some((Instant::now(), health.clone()));
        health
    }

    /// The reconciler's board: every applier's state.
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// Waits until the reconciler has made a pass over the generation now in force.
    pub async fn settled(&self) {
        let generation = lock(&self.store).current().generation;
        self.board.wait_for_pass(generation).await;
    }

    /// Applies `change` to a copy of the settings and stores it with `record` as its
    /// audit entry (its changes described field by field), or nothing when it changes
    /// nothing. Blocks on fsync: call it off the async runtime.
    pub(crate) fn commit<E: From<CommitError>>(
        &self,
        record: Record,
        change: impl FnOnce(&mut cell_model::Settings) -> Result<(), E>,
    ) -> Result<cell_store::Stored, E> {
        let mut store = lock(&self.store);
        let mut next = store.current().settings.clone();
        change(&mut next)?;
        let mut audit = lock(&self.audit);
        Ok(audited::commit(
            &mut *store,
            &mut audit,
            &self.config.state_dir,
            next,
            record,
        )?)
    }

    /// Opens a session for an enabled user without their password — what a login does once
    /// the credentials are checked. In-process only (tests drive the API with it); no
    /// route reaches it. Not yet saved: see [`Self::save_sessions`].
    pub fn open_session(
        &self,
        name: &cell_model::Username,
        origin: crate::sessions::Origin,
    ) -> Option<(String, crate::sessions::Active)> {
        let user = lock(&self.store)
            .current()
            .settings
            .user(name)
            .filter(|u| !u.disabled)
            .cloned()?;
        Some(lock(&self.sessions).create(&user, origin, jiff::Timestamp::now()))
    }

    /// Writes the sessions file when something changed. Blocks on fsync.
    pub fn save_sessions(&self) -> Result<(), cell_store::StoreError> {
        let _writer = lock(&self.session_writer);
        let (bytes, path) = {
            let mut sessions = lock(&self.sessions);
            if !sessions.is_dirty() {
                return Ok(());
            }
            (sessions.take_snapshot(), sessions.path().to_owned())
        };
        cell_store::atomic::write(&path, &bytes, 0o600)
    }

    /// Undoes a risky change whose confirmation window has closed, and audits it. Blocks
    /// on fsync.
    pub fn revert_expired(&self, now: jiff::Timestamp) -> Result<bool, OpenError> {
        let mut store = lock(&self.store);
        let Some((restored, pending, fields)) = store.due_revert(now)? else {
            return Ok(false);
        };
        let mut record = Record::new("cell", "change.revert")
            .target(format!("generation {}", pending.generation))
            .change(
                "reason",
                "not confirmed before its deadline; the previous values are back",
            );
        for field in &fields {
            record = record.change(
                field,
                format!("back as in generation {}", pending.revert_to),
            );
        }
        let mut audit = lock(&self.audit);
        let stored = audited::commit(
            &mut *store,
            &mut audit,
            &self.config.state_dir,
            restored,
            record,
        )?;
        store.finish_revert()?;
        tracing::warn!(
            generation = pending.generation,
            restored = stored.generation,
            "a risky change was not confirmed in time; reverted"
        );
        Ok(true)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn audit_path(&self) -> PathBuf {
        self.config.state_dir.join(AUDIT_FILE)
    }

    pub fn state_dir(&self) -> &Path {
        &self.config.state_dir
    }
}

/// Reverts risky changes whose window closed, while the daemon lives.
async fn watch_confirmations(daemon: Weak<Daemon>) {
    let mut ticker = tokio::time::interval(CONFIRM_CHECK_EVERY);
    loop {
        ticker.tick().await;
        let Some(daemon) = daemon.upgrade() else {
            return;
        };
        let due = lock(&daemon.store)
            .pending()
            .is_some_and(|p| p.deadline <= jiff::Timestamp::now());
        if !due {
            continue;
        }
        let reverted =
            tokio::task::spawn_blocking(move || daemon.revert_expired(jiff::Timestamp::now()))
                .await;
        match reverted {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "cannot revert an unconfirmed change"),
            Err(error) => tracing::error!(%error, "the revert worker failed"),
        }
    }
}

/// How often the files the zone is made from besides the settings are looked at.
const ZONE_INPUTS_EVERY: Duration = Duration::from_secs(2);

fn stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The DHCP server's leases, the uplink's resolvers and the cell's own addresses change
/// without a new generation: when any does, a pass renders the zone and the certificate
/// again (a new device's name answers, a new address is on the certificate, within
/// seconds rather than at the next minute's pass).
async fn follow_zone_inputs(daemon: Weak<Daemon>) {
    let mut seen = None;
    let mut ticker = tokio::time::interval(ZONE_INPUTS_EVERY);
    loop {
        ticker.tick().await;
        let Some(daemon) = daemon.upgrade() else {
            return;
        };
        let files = [
            daemon.config.dhcp_leases.clone(),
            daemon.config.uplink_resolvers.clone(),
        ];
        let stamps = tokio::task::spawn_blocking(move || files.map(|f| stamp(&f)))
            .await
            .ok();
        // The cell's own addresses too: the zone and the front door's certificate name
        // them (a DHCP lease arriving or changing after start).
        let addresses = daemon
            .network
            .local_networks(&daemon.config.wg_interface)
            .await
            .ok();
        let now = Some((stamps, addresses));
        if seen.is_some() && now != seen {
            tracing::debug!("the leases, the uplink's resolvers or the cell's addresses changed");
            daemon.board.request_pass();
        }
        seen = now;
    }
}

/// How often the sessions' last-seen times reach the disk (creations and revocations are
/// written at once).
const SESSIONS_SAVE_EVERY: Duration = Duration::from_secs(60);

/// Saves the sessions' last-seen times and drops dead sessions, while the daemon lives.
async fn save_sessions_now_and_then(daemon: Weak<Daemon>) {
    let mut ticker = tokio::time::interval(SESSIONS_SAVE_EVERY);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(daemon) = daemon.upgrade() else {
            return;
        };
        let settings = lock(&daemon.store).current().settings.clone();
        lock(&daemon.sessions).prune(&settings, jiff::Timestamp::now());
        let saved = tokio::task::spawn_blocking(move || daemon.save_sessions()).await;
        if let Ok(Err(error)) = saved {
            tracing::warn!(%error, "cannot save the sessions");
        }
    }
}

/// A daemon on a temporary state directory that records system changes and accepts the
/// calling user: for tests of the crates that talk to celld.
pub mod testing {
    use std::sync::Arc;

    use super::{Config, Daemon};
    use crate::network::RecordedNetwork;
    use crate::system::RecordedSystem;

    pub fn daemon(dir: &std::path::Path) -> Arc<Daemon> {
        daemon_with(dir, |_| {})
    }

    /// A test daemon whose configuration `adjust` changes first.
    pub fn daemon_with(dir: &std::path::Path, adjust: impl FnOnce(&mut Config)) -> Arc<Daemon> {
        let mut config = Config::new(
            dir.join("state"),
            dir.to_owned(),
            vec![nix::unistd::getuid().as_raw()],
        );
        config.wg_interface = "cellwg-test".into();
        config.machine_owners = false;
        // Never this host's resolvers: a test's uplink has none unless it writes some.
        config.uplink_resolvers = dir.join("resolv.conf");
        adjust(&mut config);
        let system = Arc::new(RecordedSystem::default());
        match Daemon::start(config, system, Arc::new(RecordedNetwork::default())) {
            Ok(daemon) => daemon,
            Err(error) => panic!("opening a test daemon in {}: {error}", dir.display()),
        }
    }
}
