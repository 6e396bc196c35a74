#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use super::*;

/// An applier whose plan is the cell name, which fails its first `failures` applies and
/// records every plan it was asked to apply.
struct Fake {
    name: &'static str,
    requires: &'static [&'static str],
    failures: AtomicU32,
    plan_fails: bool,
    applied: Mutex<Vec<String>>,
}

impl Fake {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            requires: &[],
            failures: AtomicU32::new(0),
            plan_fails: false,
            applied: Mutex::new(Vec::new()),
        }
    }

    fn applied(&self) -> Vec<String> {
        self.applied.lock().unwrap().clone()
    }
}

impl Applier for Arc<Fake> {
    type Plan = String;

    fn name(&self) -> &'static str {
        self.name
    }

    fn requires(&self) -> &'static [&'static str] {
        self.requires
    }

    fn plan(&self, settings: &Settings) -> Result<String, FieldError> {
        if self.plan_fails {
            return Err(FieldError::new("identity.cell_name", "cannot be planned"));
        }
        Ok(settings.identity.cell_name.to_string())
    }

    fn fail_closed(&self, _plan: &String) -> Option<String> {
        Some("closed".to_owned())
    }

    fn apply<'a>(&'a self, plan: &'a String, _pass: Pass) -> ApplyFuture<'a> {
        Box::pin(async move {
            self.applied.lock().unwrap().push(plan.clone());
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Err(ApplyError::System(SystemError::Answer {
                    call: self.name.to_owned(),
                    message: "not yet".to_owned(),
                }));
            }
            Ok(format!("applied {plan}"))
        })
    }
}

fn snapshot(generation: u64) -> Snapshot {
    Snapshot {
        generation,
        settings: Arc::new(Settings::default()),
    }
}

fn quick() -> Timing {
    Timing {
        verify_every: Duration::from_secs(3600),
        retry_first: Duration::from_millis(10),
        retry_max: Duration::from_millis(40),
    }
}

fn reconciler(appliers: &[Arc<Fake>], settings: watch::Receiver<Snapshot>) -> Reconciler {
    let boxed: Vec<Box<dyn DynApplier>> = appliers
        .iter()
        .map(|a| Box::new(a.clone()) as Box<dyn DynApplier>)
        .collect();
    Reconciler::new(boxed, settings, quick())
}

fn state(board: &Board, name: &str) -> ApplierState {
    board
        .states()
        .into_iter()
        .find(|s| s.applier == name)
        .unwrap()
}

#[tokio::test]
async fn a_failing_applier_is_retried_until_it_works() {
    let flaky = Arc::new(Fake::new("flaky"));
    flaky.failures.store(2, Ordering::SeqCst);
    let (_store, settings) = watch::channel(snapshot(4));
    let reconciler = reconciler(std::slice::from_ref(&flaky), settings);
    let board = reconciler.board();
    tokio::spawn(reconciler.run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !state(&board, "flaky").ok {
        assert!(tokio::time::Instant::now() < deadline, "never became ok");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        flaky.applied().len(),
        3,
        "two failures, then the retry that works"
    );
    let ok = state(&board, "flaky");
    assert_eq!(ok.generation, 4);
    assert_eq!(ok.error, None);
    assert_eq!(ok.last_change.as_deref(), Some("applied cell"));
}

#[tokio::test]
async fn an_error_is_shown_with_the_last_good_generation() {
    let flaky = Arc::new(Fake::new("flaky"));
    let (_store, settings) = watch::channel(snapshot(1));
    let reconciler = reconciler(std::slice::from_ref(&flaky), settings);
    assert!(reconciler.pass(&snapshot(1), false).await);
    let since_ok = state(&reconciler.board, "flaky").since;
    flaky.failures.store(1, Ordering::SeqCst);
    assert!(!reconciler.pass(&snapshot(2), false).await);
    let failed = state(&reconciler.board, "flaky");
    assert!(!failed.ok);
    assert_eq!(failed.generation, 1, "generation 2 was never applied");
    assert!(failed.error.unwrap().contains("not yet"));
    assert!(failed.since >= since_ok);
    assert_eq!(reconciler.board.last_pass(), Some(2));
}

#[tokio::test]
async fn a_plan_error_touches_nothing() {
    let first = Arc::new(Fake::new("first"));
    let mut broken = Fake::new("broken");
    broken.plan_fails = true;
    let broken = Arc::new(broken);
    let (_store, settings) = watch::channel(snapshot(7));
    let reconciler = reconciler(&[first.clone(), broken.clone()], settings);
    assert!(!reconciler.pass(&snapshot(7), false).await);
    assert!(
        first.applied().is_empty(),
        "an applier before it was applied"
    );
    assert!(broken.applied().is_empty());
    let broken_state = state(&reconciler.board, "broken");
    assert!(broken_state
        .error
        .unwrap()
        .contains("identity.cell_name: cannot be planned"));
    let first_state = state(&reconciler.board, "first");
    assert!(!first_state.ok);
    assert!(first_state.error.unwrap().contains("broken could not plan"));
}

#[tokio::test]
async fn a_dependent_applier_fails_closed_until_its_requirement_works() {
    let firewall = Arc::new(Fake::new("firewall"));
    firewall.failures.store(1, Ordering::SeqCst);
    let mut peers = Fake::new("peers");
    peers.requires = &["firewall"];
    let peers = Arc::new(peers);
    let (_store, settings) = watch::channel(snapshot(3));
    let reconciler = reconciler(&[firewall.clone(), peers.clone()], settings);
    assert!(!reconciler.pass(&snapshot(3), false).await);
    assert_eq!(peers.applied(), ["closed"], "only the closed plan went in");
    let held = state(&reconciler.board, "peers");
    assert!(!held.ok);
    let error = held.error.unwrap();
    assert!(
        error.contains("held back until firewall applies generation 3"),
        "{error}"
    );
    assert!(
        error.contains("not yet"),
        "the firewall's own error is named: {error}"
    );
    assert!(reconciler.pass(&snapshot(3), true).await);
    assert_eq!(peers.applied(), ["closed", "cell"]);
    assert!(state(&reconciler.board, "peers").ok);
}

#[tokio::test]
async fn every_commit_starts_a_pass() {
    let applier = Arc::new(Fake::new("a"));
    let (store, settings) = watch::channel(snapshot(1));
    let reconciler = reconciler(std::slice::from_ref(&applier), settings);
    let board = reconciler.board();
    tokio::spawn(reconciler.run());
    board.wait_for_pass(1).await;
    store.send_replace(snapshot(2));
    tokio::time::timeout(Duration::from_secs(5), board.wait_for_pass(2))
        .await
        .unwrap();
    assert_eq!(state(&board, "a").generation, 2);
    assert_eq!(applier.applied().len(), 2);
}

#[test]
fn retries_back_off_up_to_a_limit() {
    let timing = Timing::default();
    assert_eq!(timing.retry_after(1), Duration::from_secs(1));
    assert_eq!(timing.retry_after(2), Duration::from_secs(2));
    assert_eq!(timing.retry_after(4), Duration::from_secs(8));
    assert_eq!(timing.retry_after(40), Duration::from_secs(60));
}
