//! celld's state: the store, the audit log, the setup code, the login throttle, and the
//! operating-system hooks, shared by every request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cell_model::api::UnitHealth;

use cell_store::Store;

use cell_secrets::SecretStore;

use crate::audit::{AuditError, AuditLog};
use crate::network::Network;
use crate::setup_code::{SetupCode, SetupCodeError};
use crate::system::System;
use crate::throttle::Throttle;
use crate::vpn::VpnRuntime;

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
    #[error("preparing the VPN: {0}")]
    Vpn(String),
}

/// Where celld keeps things and who may talk to it.
#[derive(Debug, Clone)]
pub struct Config {
    /// Persistent state: settings, history, audit log, setup code (`/var/lib/cell`).
    pub state_dir: PathBuf,
    /// Runtime files: the console banner (`/run/cell`).
    pub run_dir: PathBuf,
    /// Users whose connections the local API accepts (root and cell-web on the device).
    pub allowed_uids: Vec<u32>,
    /// The WireGuard interface celld owns.
    pub wg_interface: String,
}

/// The WireGuard interface's name on the device.
pub const DEFAULT_WG_INTERFACE: &str = "cellwg0";

#[derive(Debug)]
pub struct Daemon {
    pub(crate) config: Config,
    pub(crate) store: Mutex<Store>,
    pub(crate) audit: Mutex<AuditLog>,
    pub(crate) setup_code: Mutex<SetupCode>,
    pub(crate) throttle: Mutex<Throttle>,
    /// TOTP seeds handed out for enrolment, not yet confirmed with a code.
    pub(crate) pending_totp: Mutex<std::collections::HashMap<String, String>>,
    pub(crate) system: Arc<dyn System>,
    pub(crate) network: Arc<dyn Network>,
    pub(crate) secrets: SecretStore,
    /// The WireGuard server key, decrypted once at start rather than on every request.
    pub(crate) wg_key: crate::vpn::ServerKey,
    /// Held for a whole reconcile pass, so passes never interleave.
    pub(crate) vpn_runtime: tokio::sync::Mutex<VpnRuntime>,
    /// Unit states, asked of systemd at most every UNIT_HEALTH_TTL: status is polled by
    /// every page view and health check, systemd need not be.
    unit_health: tokio::sync::Mutex<Option<(Instant, Vec<UnitHealth>)>>,
    /// Held while an update job is handed over, so that two requests cannot both pass
    /// the "no job is running" check.
    pub(crate) update_handover: tokio::sync::Mutex<()>,
}

const UNIT_HEALTH_TTL: Duration = Duration::from_secs(2);

impl Daemon {
    pub fn open(
        config: Config,
        system: Arc<dyn System>,
        network: Arc<dyn Network>,
    ) -> Result<Self, OpenError> {
        let mut store = Store::open(&config.state_dir)?;
        let secrets = SecretStore::open(&config.state_dir.join(SECRETS_DIR))?;
        // Cells set up before the VPN existed get their VPN section now; new ones get it
        // from the setup wizard.
        if store.current().settings.setup_complete && store.current().settings.vpn.is_none() {
            let mut settings = store.current().settings.clone();
            settings.vpn = Some(crate::vpn::new_vpn());
            store.commit(settings)?;
            tracing::info!("created the VPN settings");
        }
        let wg_key =
            crate::vpn::ServerKey::new(crate::vpn::server_key(&secrets).map_err(OpenError::Vpn)?);
        let audit = AuditLog::open(&config.state_dir.join(AUDIT_FILE))?;
        let setup_code = SetupCode::prepare(
            &config.state_dir,
            &config.run_dir,
            store.current().settings.setup_complete,
        )?;
        Ok(Self {
            config,
            store: Mutex::new(store),
            audit: Mutex::new(audit),
            setup_code: Mutex::new(setup_code),
            throttle: Mutex::new(Throttle::default()),
            pending_totp: Mutex::new(Default::default()),
            system,
            network,
            secrets,
            wg_key,
            vpn_runtime: tokio::sync::Mutex::new(VpnRuntime::default()),
            unit_health: tokio::sync::Mutex::new(None),
            update_handover: tokio::sync::Mutex::new(()),
        })
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

    pub fn audit_path(&self) -> PathBuf {
        self.config.state_dir.join(AUDIT_FILE)
    }

    pub fn state_dir(&self) -> &Path {
        &self.config.state_dir
    }
}

/// Locks a mutex, carrying on with the data if a panicking thread poisoned it: every
/// critical section here leaves the data consistent or returns before touching it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A daemon on a temporary state directory that records system changes and accepts the
/// calling user: for tests of the crates that talk to celld.
pub mod testing {
    use std::sync::Arc;

    use super::{Config, Daemon};
    use crate::network::RecordedNetwork;
    use crate::system::RecordedSystem;

    pub fn daemon(dir: &std::path::Path) -> Arc<Daemon> {
        let config = Config {
            state_dir: dir.join("state"),
            run_dir: dir.to_owned(),
            allowed_uids: vec![nix::unistd::getuid().as_raw()],
            wg_interface: "cellwg-test".into(),
        };
        let system = Arc::new(RecordedSystem::default());
        match Daemon::open(config, system, Arc::new(RecordedNetwork::default())) {
            Ok(daemon) => Arc::new(daemon),
            Err(error) => panic!("opening a test daemon in {}: {error}", dir.display()),
        }
    }
}
