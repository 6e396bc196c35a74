//! The settings store as celld holds it: every commit is published to the reconciler on a
//! watch channel, and a commit that changes a risky field (one that can cut an
//! administrator off: the VPN subnet or port; later the LAN addressing and HTTPS ports)
//! opens a confirmation window. Unless the change is confirmed before the window's deadline,
//! [`SettingsStore::due_revert`] gives the risky fields back as they were in the last
//! confirmed generation. The pending change is kept on disk, so a restart (or a power cut,
//! the usual way out when the network is gone) does not make it permanent.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cell_model::api::PendingChange;
use cell_model::net::PrivateNet4;
use cell_model::Settings;
use cell_store::{Store, StoreError, Stored};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::reconcile::Snapshot;

/// The pending change, in the state directory.
pub const PENDING_FILE: &str = "pending-change.json";
/// How long an administrator has to confirm a risky change, unless configured otherwise.
pub const DEFAULT_CONFIRM_WINDOW: Duration = Duration::from_secs(120);

/// The fields whose change needs confirmation, as they are in one generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskyFields {
    vpn_subnet4: Option<PrivateNet4>,
    vpn_listen_port: Option<u16>,
    /// The LAN settings: their addressing is risky; the DHCP server goes back with it (a
    /// server on a static address cannot stay when the address does not).
    #[serde(default)]
    lan: cell_model::lan::Lan,
}

impl RiskyFields {
    pub fn of(settings: &Settings) -> Self {
        Self {
            vpn_subnet4: settings.vpn.as_ref().map(|v| v.subnet4),
            vpn_listen_port: settings.vpn.as_ref().map(|v| v.listen_port),
            lan: settings.lan.clone(),
        }
    }

    /// Dotted names of the fields that differ.
    pub fn differing(&self, other: &Self) -> Vec<String> {
        let mut fields = Vec::new();
        if self.vpn_subnet4 != other.vpn_subnet4 {
            fields.push("vpn.subnet4".to_owned());
        }
        if self.vpn_listen_port != other.vpn_listen_port {
            fields.push("vpn.listen_port".to_owned());
        }
        if self.lan.addressing != other.lan.addressing {
            fields.push("lan.addressing".to_owned());
        }
        fields
    }

    /// `settings` with these values put back.
    fn restore(&self, mut settings: Settings) -> Settings {
        if settings.lan.addressing != self.lan.addressing {
            settings.lan = self.lan.clone();
        }
        if let Some(vpn) = settings.vpn.as_mut() {
            if let Some(subnet4) = self.vpn_subnet4 {
                vpn.subnet4 = subnet4;
            }
            if let Some(port) = self.vpn_listen_port {
                vpn.listen_port = port;
            }
        }
        settings
    }
}

/// A risky change waiting for its confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The latest generation that changed a risky field.
    pub generation: u64,
    /// The last confirmed generation, and its risky fields.
    pub revert_to: u64,
    pub baseline: RiskyFields,
    pub deadline: jiff::Timestamp,
}

impl Pending {
    pub fn view(&self, current: &Settings, now: jiff::Timestamp) -> PendingChange {
        let left = self.deadline.duration_since(now).as_secs().max(0);
        PendingChange {
            generation: self.generation,
            revert_to: self.revert_to,
            fields: self.baseline.differing(&RiskyFields::of(current)),
            deadline: self.deadline,
            seconds_left: u64::try_from(left).unwrap_or(0),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("no change is waiting for confirmation")]
    NothingPending,
    #[error("generation {asked} is not the change waiting for confirmation (that is {pending})")]
    NotPending { asked: u64, pending: u64 },
}

#[derive(Debug)]
pub struct SettingsStore {
    store: Store,
    published: watch::Sender<Snapshot>,
    pending: Option<Pending>,
    pending_path: PathBuf,
    window: Duration,
}

impl crate::audited::SettingsCommit for SettingsStore {
    fn current(&self) -> &Stored {
        SettingsStore::current(self)
    }
    fn commit(&mut self, settings: Settings) -> Result<&Stored, StoreError> {
        SettingsStore::commit(self, settings)
    }
}

fn snapshot(stored: &Stored) -> Snapshot {
    Snapshot {
        generation: stored.generation,
        settings: Arc::new(stored.settings.clone()),
    }
}

impl SettingsStore {
    pub fn open(dir: &Path, window: Duration) -> Result<Self, StoreError> {
        let store = Store::open(dir)?;
        let pending_path = dir.join(PENDING_FILE);
        let pending = load_pending(&pending_path);
        Ok(Self {
            published: watch::Sender::new(snapshot(store.current())),
            store,
            pending,
            pending_path,
            window,
        })
    }

    pub fn current(&self) -> &Stored {
        self.store.current()
    }

    /// Committed generations, as the reconciler follows them.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.published.subscribe()
    }

    pub fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }

    /// The pending change as the API shows it.
    pub fn pending_view(&self) -> Option<PendingChange> {
        self.pending
            .as_ref()
            .map(|p| p.view(&self.current().settings, jiff::Timestamp::now()))
    }

    /// Stores `settings` as the next generation and publishes it. When it changes a risky
    /// field, the change waits for confirmation (the window restarts); when it brings
    /// every risky field back to the last confirmed values, nothing waits any more.
    pub fn commit(&mut self, settings: Settings) -> Result<&Stored, StoreError> {
        let before_generation = self.store.current().generation;
        let before = RiskyFields::of(&self.store.current().settings);
        let after = RiskyFields::of(&settings);
        self.store.commit(settings)?;
        let generation = self.store.current().generation;
        if generation != before_generation {
            let next_pending = match self.pending.take() {
                Some(pending) if pending.baseline == after => None,
                Some(pending) if before != after => Some(Pending {
                    generation,
                    deadline: self.deadline(),
                    ..pending
                }),
                Some(pending) => Some(pending),
                // A cell being set up, or given its VPN section, has no one to cut off.
                None if before != after && before.vpn_subnet4.is_some() => Some(Pending {
                    generation,
                    revert_to: before_generation,
                    baseline: before,
                    deadline: self.deadline(),
                }),
                None => None,
            };
            self.pending = next_pending;
            self.save_pending()?;
            self.published.send_replace(snapshot(self.store.current()));
        }
        Ok(self.store.current())
    }

    fn deadline(&self) -> jiff::Timestamp {
        let window =
            jiff::SignedDuration::try_from(self.window).unwrap_or(jiff::SignedDuration::MAX);
        jiff::Timestamp::now()
            .checked_add(window)
            .unwrap_or(jiff::Timestamp::MAX)
    }

    /// Keeps the pending change of `generation`.
    pub fn confirm(&mut self, generation: u64) -> Result<Pending, ConfirmError> {
        let pending = self.pending.clone().ok_or(ConfirmError::NothingPending)?;
        if pending.generation != generation {
            return Err(ConfirmError::NotPending {
                asked: generation,
                pending: pending.generation,
            });
        }
        self.pending = None;
        if let Err(error) = self.save_pending() {
            // Not confirmed after all: the revert still comes.
            self.pending = Some(pending);
            tracing::error!(%error, "cannot record the confirmation");
            return Err(ConfirmError::NothingPending);
        }
        Ok(pending)
    }

    /// When the pending change's deadline has passed: the settings with its risky fields
    /// back as they were confirmed, the change, and the fields that go back. Committing
    /// them (audited) and then [`Self::finish_revert`] is the caller's.
    pub fn due_revert(
        &mut self,
        now: jiff::Timestamp,
    ) -> Result<Option<(Settings, Pending, Vec<String>)>, StoreError> {
        let Some(pending) = self.pending.clone() else {
            return Ok(None);
        };
        if now < pending.deadline {
            return Ok(None);
        }
        let current = self.store.current().settings.clone();
        let fields = pending.baseline.differing(&RiskyFields::of(&current));
        let restored = pending.baseline.restore(current);
        if let Some(vpn) = &restored.vpn {
            if let Err(error) = vpn.validate() {
                // A device added since no longer fits the old subnet: keep the change
                // rather than store settings that do not hold together.
                tracing::error!(%error, "cannot revert the unconfirmed change; keeping it");
                self.pending = None;
                self.save_pending()?;
                return Ok(None);
            }
        }
        Ok(Some((restored, pending, fields)))
    }

    /// The revert is stored: nothing waits any more.
    pub fn finish_revert(&mut self) -> Result<(), StoreError> {
        self.pending = None;
        self.save_pending()
    }

    fn save_pending(&self) -> Result<(), StoreError> {
        match &self.pending {
            Some(pending) => {
                let bytes = serde_json::to_vec(pending).unwrap_or_default();
                cell_store::atomic::write(&self.pending_path, &bytes, 0o600)
            }
            None => match std::fs::remove_file(&self.pending_path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::Io {
                    action: "removing",
                    path: self.pending_path.clone(),
                    source: e,
                }),
            },
        }
    }
}

/// The pending change left by the last run. A damaged record cannot say what to go back
/// to: it is logged and dropped.
fn load_pending(path: &Path) -> Option<Pending> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "cannot read the pending change");
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(pending) => Some(pending),
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "the pending change is damaged; ignoring it");
            None
        }
    }
}
