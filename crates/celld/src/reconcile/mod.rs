//! The reconciler: one task that brings the machine in line with the committed settings.
//!
//! The store publishes every committed generation on a watch channel. Each subsystem is an
//! [`Applier`]: `plan` renders everything it will need from the settings, without I/O;
//! `apply` observes the live state and makes the smallest change. A pass plans every
//! applier first (any plan error: nothing is touched), then applies them in order. An
//! applier that requires another one (WireGuard peers require the firewall) runs only once
//! that one has applied the same generation in the same pass; otherwise its fail-closed
//! plan, if it has one, is put in place instead. Passes run at start, after every commit,
//! on a timer (comparing live state rather than trusting the last write) and, while an
//! applier fails, again with a growing delay until it works.

pub mod dav;
pub mod dns;
pub mod files;
pub mod identity;
pub mod lan;
pub mod mail;
pub mod ntp;
pub mod pki;
pub mod vpn;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cell_model::api::ApplierState;
use cell_model::{FieldError, Settings};
use tokio::sync::{watch, Notify};

use crate::network::NetworkError;
use crate::sync::lock;
use crate::system::SystemError;

/// One committed generation of the settings, as the store publishes it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub generation: u64,
    pub settings: Arc<Settings>,
}

/// Why an applier could not bring its subsystem to the plan.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    System(#[from] SystemError),
    #[error("certificates: {0}")]
    Pki(#[from] crate::pki::PkiStoreError),
    #[error("{0}")]
    Dkim(String),
    #[error("writing {path}: {message}")]
    File {
        path: std::path::PathBuf,
        message: String,
    },
}

pub type ApplyFuture<'a> = Pin<Box<dyn Future<Output = Result<String, ApplyError>> + Send + 'a>>;

/// What kind of pass this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub generation: u64,
    /// Compare live state with the plan instead of trusting what was last written (at
    /// start, on the timer and on retries: someone may have changed things behind us).
    pub verify: bool,
}

/// One subsystem the reconciler keeps in line with the settings.
pub trait Applier: Send + Sync + 'static {
    type Plan: Send + Sync + 'static;
    fn name(&self) -> &'static str;
    /// Appliers that must have applied the same generation, in the same pass, first.
    fn requires(&self) -> &'static [&'static str] {
        &[]
    }
    /// Everything the apply will need, from the settings alone: no I/O.
    fn plan(&self, settings: &Settings) -> Result<Self::Plan, FieldError>;
    /// The safe state to put in place when a requirement is not met (WireGuard without
    /// peers while the firewall is missing); `None` leaves the subsystem alone.
    fn fail_closed(&self, _plan: &Self::Plan) -> Option<Self::Plan> {
        None
    }
    /// Observes the live state, makes the smallest change to reach `plan`, and says what
    /// it changed ("unchanged" when nothing).
    fn apply<'a>(&'a self, plan: &'a Self::Plan, pass: Pass) -> ApplyFuture<'a>;
}

/// A plan bound to its applier, with the plan's type erased.
#[doc(hidden)]
pub trait Prepared: Send + Sync {
    fn apply(&self, pass: Pass) -> ApplyFuture<'_>;
    fn fail_closed(&self) -> Option<Box<dyn Prepared + '_>>;
}

struct Planned<'a, A: Applier> {
    applier: &'a A,
    plan: A::Plan,
}

impl<A: Applier> Prepared for Planned<'_, A> {
    fn apply(&self, pass: Pass) -> ApplyFuture<'_> {
        self.applier.apply(&self.plan, pass)
    }

    fn fail_closed(&self) -> Option<Box<dyn Prepared + '_>> {
        let plan = self.applier.fail_closed(&self.plan)?;
        Some(Box::new(Planned {
            applier: self.applier,
            plan,
        }))
    }
}

/// An applier of any plan type.
pub trait DynApplier: Send + Sync {
    fn name(&self) -> &'static str;
    fn requires(&self) -> &'static [&'static str];
    #[doc(hidden)]
    fn prepare<'a>(&'a self, settings: &Settings) -> Result<Box<dyn Prepared + 'a>, FieldError>;
}

impl<A: Applier> DynApplier for A {
    fn name(&self) -> &'static str {
        Applier::name(self)
    }

    fn requires(&self) -> &'static [&'static str] {
        Applier::requires(self)
    }

    fn prepare<'a>(&'a self, settings: &Settings) -> Result<Box<dyn Prepared + 'a>, FieldError> {
        let plan = self.plan(settings)?;
        Ok(Box::new(Planned {
            applier: self,
            plan,
        }))
    }
}

/// The appliers' states, for the status API, the dashboard and cellctl; and the
/// generation of the last finished pass, which callers can wait for.
#[derive(Debug)]
pub struct Board {
    states: Mutex<Vec<ApplierState>>,
    passes: watch::Sender<Option<u64>>,
    wake: Notify,
}

impl Board {
    fn new(names: impl IntoIterator<Item = &'static str>) -> Self {
        let since = jiff::Timestamp::now();
        let states = names
            .into_iter()
            .map(|name| ApplierState {
                applier: name.to_owned(),
                generation: 0,
                ok: false,
                error: Some("not applied yet".to_owned()),
                last_change: None,
                since,
            })
            .collect();
        Self {
            states: Mutex::new(states),
            passes: watch::Sender::new(None),
            wake: Notify::new(),
        }
    }

    /// Every applier's state, in the order they apply.
    pub fn states(&self) -> Vec<ApplierState> {
        lock(&self.states).clone()
    }

    /// The generation of the last finished pass, if one has finished.
    pub fn last_pass(&self) -> Option<u64> {
        *self.passes.borrow()
    }

    /// Waits until a pass for `generation` or a later one has finished.
    pub async fn wait_for_pass(&self, generation: u64) {
        let mut passes = self.passes.subscribe();
        // The sender lives as long as the board, which the caller holds.
        let _ = passes
            .wait_for(|pass| pass.is_some_and(|g| g >= generation))
            .await;
    }

    /// Asks for a pass now, verifying live state (e.g. after a repair by hand).
    pub fn request_pass(&self) {
        self.wake.notify_one();
    }

    fn record(&self, name: &str, generation: u64, result: Result<String, String>) {
        let mut states = lock(&self.states);
        let Some(state) = states.iter_mut().find(|s| s.applier == name) else {
            return;
        };
        match result {
            Ok(what) => {
                if !state.ok {
                    state.since = jiff::Timestamp::now();
                    tracing::info!(applier = name, generation, what = %what, "applier ok");
                } else if what != UNCHANGED {
                    tracing::info!(applier = name, generation, what = %what, "applied");
                }
                if what != UNCHANGED || state.last_change.is_none() {
                    state.last_change = Some(what);
                }
                state.ok = true;
                state.error = None;
                state.generation = generation;
            }
            Err(error) => {
                if state.ok || state.error.as_deref() != Some(error.as_str()) {
                    tracing::error!(applier = name, generation, %error, "applier failed");
                }
                if state.ok {
                    state.since = jiff::Timestamp::now();
                }
                state.ok = false;
                state.error = Some(error);
            }
        }
    }

    fn is_ok_at(&self, name: &str, generation: u64) -> bool {
        lock(&self.states)
            .iter()
            .any(|s| s.applier == name && s.ok && s.generation == generation)
    }

    fn error_of(&self, name: &str) -> Option<String> {
        lock(&self.states)
            .iter()
            .find(|s| s.applier == name)
            .and_then(|s| s.error.clone())
    }
}

/// What an apply reports when the live state already matched the plan.
pub const UNCHANGED: &str = "unchanged";

/// How often passes run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between passes while everything is ok: live state is compared with the settings,
    /// to undo changes made behind celld's back.
    pub verify_every: Duration,
    /// The first retry after a failed pass; each further failure doubles it.
    pub retry_first: Duration,
    pub retry_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            verify_every: Duration::from_secs(60),
            retry_first: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        }
    }
}

impl Timing {
    fn retry_after(&self, failed_passes: u32) -> Duration {
        let factor = 1u32 << failed_passes.saturating_sub(1).min(16);
        self.retry_first.saturating_mul(factor).min(self.retry_max)
    }
}

/// The one reconcile task.
pub struct Reconciler {
    appliers: Vec<Box<dyn DynApplier>>,
    board: Arc<Board>,
    settings: watch::Receiver<Snapshot>,
    timing: Timing,
}

impl Reconciler {
    /// A reconciler for `appliers`, in the order they apply; its board starts with every
    /// applier "not applied yet".
    pub fn new(
        appliers: Vec<Box<dyn DynApplier>>,
        settings: watch::Receiver<Snapshot>,
        timing: Timing,
    ) -> Self {
        let board = Arc::new(Board::new(appliers.iter().map(|a| a.name())));
        Self {
            appliers,
            board,
            settings,
            timing,
        }
    }

    pub fn board(&self) -> Arc<Board> {
        self.board.clone()
    }

    /// Runs passes until the store is gone.
    pub async fn run(mut self) {
        let mut failed_passes = 0u32;
        let mut verify = true;
        loop {
            let snapshot = self.settings.borrow_and_update().clone();
            let ok = self.pass(&snapshot, verify).await;
            failed_passes = if ok { 0 } else { failed_passes + 1 };
            let wait = if ok {
                self.timing.verify_every
            } else {
                self.timing.retry_after(failed_passes)
            };
            tokio::select! {
                changed = self.settings.changed() => {
                    if changed.is_err() {
                        tracing::debug!("the settings store is gone; the reconciler stops");
                        return;
                    }
                    verify = false;
                }
                () = tokio::time::sleep(wait) => verify = true,
                () = self.board.wake.notified() => verify = true,
            }
        }
    }

    /// One pass over every applier for `snapshot`; whether all of them are ok.
    pub async fn pass(&self, snapshot: &Snapshot, verify: bool) -> bool {
        let pass = Pass {
            generation: snapshot.generation,
            verify,
        };
        let ok = self.pass_inner(snapshot, pass).await;
        self.board.passes.send_replace(Some(snapshot.generation));
        ok
    }

    async fn pass_inner(&self, snapshot: &Snapshot, pass: Pass) -> bool {
        let mut prepared = Vec::with_capacity(self.appliers.len());
        let mut unplanned = Vec::new();
        for applier in &self.appliers {
            match applier.prepare(&snapshot.settings) {
                Ok(plan) => prepared.push(plan),
                Err(error) => {
                    let message = format!("cannot plan generation {}: {error}", pass.generation);
                    self.board
                        .record(applier.name(), pass.generation, Err(message));
                    unplanned.push(applier.name());
                }
            }
        }
        if let Some(failed) = unplanned.first() {
            for applier in &self.appliers {
                if !unplanned.contains(&applier.name()) {
                    self.board.record(
                        applier.name(),
                        pass.generation,
                        Err(format!(
                            "nothing applied: {failed} could not plan generation {}",
                            pass.generation
                        )),
                    );
                }
            }
            return false;
        }
        let mut all_ok = true;
        for (applier, plan) in self.appliers.iter().zip(&prepared) {
            let missing = applier
                .requires()
                .iter()
                .find(|required| !self.board.is_ok_at(required, pass.generation));
            let result = match missing {
                None => plan.apply(pass).await.map_err(|e| e.to_string()),
                Some(required) => {
                    let why = self
                        .board
                        .error_of(required)
                        .unwrap_or_else(|| "not applied".to_owned());
                    let held = format!(
                        "held back until {required} applies generation {}: {why}",
                        pass.generation
                    );
                    match plan.fail_closed() {
                        Some(closed) => match closed.apply(pass).await {
                            Ok(what) => Err(format!("{held} (closed: {what})")),
                            Err(error) => Err(format!("{held}; closing failed too: {error}")),
                        },
                        None => Err(held),
                    }
                }
            };
            all_ok &= result.is_ok();
            self.board.record(applier.name(), pass.generation, result);
        }
        all_ok
    }
}

#[cfg(test)]
mod tests;
