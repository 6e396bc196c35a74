//! Public certificates from an ACME CA (RFC 8555, instant-acme) for a cell with a public
//! name. One task follows the settings: it orders a certificate for the zone's apex and
//! every enabled service's name when ACME is turned on (or the names change), renews it
//! two thirds into its life, and after a failure waits longer each time (five minutes,
//! doubling, at most a day — a public CA limits failed validations) unless an
//! administrator asks again. HTTP-01 tokens reach the front door in the certificates'
//! handover (it answers them on port 80); DNS-01 TXT records go into the zone cell-dns
//! answers from. The certificate and the account key are kept in the encrypted secret
//! store; the front door serves the certificate for its names, the cell's own leaf stays
//! the fallback.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cell_model::acme::Challenge;
use cell_model::api::{AcmeState, AcmeView, HttpChallenge};
use cell_model::dns::{DnsRecord, RecordData};
use cell_model::settings::DomainMode;
use cell_model::Settings;
use cell_pki::Leaf;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use zeroize::Zeroizing;

use crate::pki::{now, served_view, timestamp, Pki};
use crate::reconcile::{Board, Snapshot};
use crate::sync::lock;

/// The ACME account, as JSON in the secret store.
const ACCOUNT_SECRET: &str = "acme-account";
/// The first wait after a failure; each further failure doubles it.
const FIRST_BACKOFF: i64 = 300;
const MAX_BACKOFF: i64 = 86_400;
/// How long the front door or cell-dns may take to publish a challenge.
const PUBLISH_LIMIT: Duration = Duration::from_secs(15);
/// cell-dns looks at its zone file four times a second; this is a few of its looks.
const DNS_PICKUP: Duration = Duration::from_secs(1);
/// How long the CA may take to validate and to issue.
const VALIDATION_LIMIT: Duration = Duration::from_secs(120);
/// The TTL of a DNS-01 record: resolvers should not keep an old token.
const CHALLENGE_TTL: u32 = 30;

/// What went wrong, at which step, in words an administrator can act on.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {detail}")]
pub struct AcmeError {
    step: &'static str,
    detail: String,
}

impl AcmeError {
    fn new(step: &'static str, detail: impl Into<String>) -> Self {
        Self {
            step,
            detail: detail.into(),
        }
    }
}

/// The error and its causes on one line (the causes say e.g. "connection refused").
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

fn at<E: std::error::Error + 'static>(step: &'static str) -> impl FnOnce(E) -> AcmeError {
    move |error| AcmeError::new(step, chain(&error))
}

/// What the settings ask of the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub directory: String,
    pub email: Option<String>,
    pub challenge: Challenge,
    /// The zone the names are in (DNS-01 records are put there).
    pub zone: String,
    pub names: Vec<String>,
}

/// What `settings` ask for, or `None` when ACME is off or the cell has no public name.
pub fn wanted(settings: &Settings) -> Option<Wanted> {
    let acme = &settings.acme;
    if !acme.enabled || matches!(settings.identity.domain, DomainMode::Internal) {
        return None;
    }
    Some(Wanted {
        directory: acme.directory.clone(),
        email: acme.email.clone(),
        challenge: acme.challenge,
        zone: settings.zone(),
        names: crate::reconcile::pki::served_names(settings),
    })
}

/// How the last attempts went; in memory (a restart tries again at once).
#[derive(Debug, Clone, Default)]
struct Attempts {
    ordering: bool,
    /// An administrator asked for a new certificate, due or not.
    asked: bool,
    last: Option<i64>,
    last_error: Option<String>,
    failures: u32,
    next: Option<i64>,
    issued_with: Option<Challenge>,
}

/// What the task does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// ACME is off: serve no ACME certificate, wait for the settings.
    Withdraw,
    /// Ask the CA now.
    Order,
    /// Nothing to do before this time (a renewal or a retry).
    WaitUntil(i64),
}

/// The wait after `failures` failed attempts in a row.
pub fn backoff(failures: u32) -> i64 {
    let doublings = failures.saturating_sub(1).min(20);
    (FIRST_BACKOFF << doublings).min(MAX_BACKOFF)
}

/// The certificate served, as the task weighs it.
#[derive(Debug, Clone, Copy)]
pub struct ServedCertificate<'a> {
    pub names: &'a [String],
    pub renew_at: i64,
    pub not_after: i64,
}

/// What to do at `now` given what is wanted, the certificate served and, after failures,
/// when the next attempt may be made.
pub fn decide(
    wanted: Option<&Wanted>,
    served: Option<ServedCertificate<'_>>,
    retry_at: Option<i64>,
    now: i64,
) -> Next {
    let Some(wanted) = wanted else {
        return Next::Withdraw;
    };
    if let Some(served) = served {
        if now >= served.not_after {
            // Expired: devices with the cell's root are better served by its own leaf.
            return Next::Withdraw;
        }
        if same_names(served.names, &wanted.names) && now < served.renew_at {
            return Next::WaitUntil(served.renew_at);
        }
    }
    match retry_at {
        // Waiting out a backoff, but waking when the certificate served expires.
        Some(at) if at > now => Next::WaitUntil(served.map_or(at, |s| at.min(s.not_after))),
        _ => Next::Order,
    }
}

fn same_names(a: &[String], b: &[String]) -> bool {
    let mut a: Vec<String> = a.iter().map(|n| n.to_ascii_lowercase()).collect();
    let mut b: Vec<String> = b.iter().map(|n| n.to_ascii_lowercase()).collect();
    a.sort();
    b.sort();
    a == b
}

/// The account as kept: the directory it belongs to and instant-acme's credentials.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// A challenge to publish for one name.
struct Proof {
    name: String,
    token: String,
    key_authorization: String,
    dns_value: String,
}

pub struct Acme {
    pki: Arc<Pki>,
    /// Trust only this CA for the directory's HTTPS (a local test CA such as pebble's);
    /// none: the system's roots.
    directory_root: Option<PathBuf>,
    attempts: Mutex<Attempts>,
    ask_again: Notify,
    dns_records: watch::Sender<Vec<DnsRecord>>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme").finish_non_exhaustive()
    }
}

/// The view when nothing has been asked (tests, and the state before the task runs).
pub fn off_view() -> AcmeView {
    AcmeView {
        settings: Default::default(),
        state: AcmeState::Off,
        names: Vec::new(),
        certificate: None,
        issued_with: None,
        next_renewal: None,
        last_attempt: None,
        last_error: None,
        failures: 0,
        next_attempt: None,
    }
}

impl Acme {
    pub fn new(pki: Arc<Pki>, directory_root: Option<PathBuf>) -> Self {
        Self {
            pki,
            directory_root,
            attempts: Mutex::new(Attempts::default()),
            ask_again: Notify::new(),
            dns_records: watch::Sender::new(Vec::new()),
        }
    }

    /// The DNS-01 records the zone must carry now (relative to the zone).
    pub fn dns_records(&self) -> watch::Receiver<Vec<DnsRecord>> {
        self.dns_records.subscribe()
    }

    /// An administrator asks for a certificate now, due or not: the backoff is forgotten.
    pub fn ask_now(&self) {
        let mut attempts = lock(&self.attempts);
        attempts.asked = true;
        attempts.failures = 0;
        attempts.next = None;
        drop(attempts);
        self.ask_again.notify_one();
    }

    pub fn view(&self, settings: &Settings) -> AcmeView {
        let attempts = lock(&self.attempts).clone();
        let wanted = wanted(settings);
        let public = self.pki.public();
        let state = if !settings.acme.enabled {
            AcmeState::Off
        } else if wanted.is_none() {
            AcmeState::NoPublicName
        } else if attempts.ordering {
            AcmeState::Ordering
        } else if attempts.failures > 0 {
            AcmeState::Failing
        } else if public.is_some() {
            AcmeState::Valid
        } else {
            AcmeState::Ordering
        };
        AcmeView {
            settings: settings.acme.clone(),
            state,
            names: wanted.map(|w| w.names).unwrap_or_default(),
            certificate: public.as_ref().map(|leaf| served_view(leaf, "acme")),
            issued_with: public.as_ref().and(attempts.issued_with),
            next_renewal: public.as_ref().map(|leaf| timestamp(leaf.renew_at())),
            last_attempt: attempts.last.map(timestamp),
            last_error: attempts.last_error,
            failures: attempts.failures,
            next_attempt: attempts.next.map(timestamp),
        }
    }

    /// Follows the settings until they are no more: orders, renews and withdraws.
    pub async fn run(
        self: Arc<Self>,
        mut settings: watch::Receiver<Snapshot>,
        board: Arc<Board>,
        zone_file: PathBuf,
    ) {
        let mut asked: Option<Wanted> = None;
        loop {
            let current = settings.borrow_and_update().settings.clone();
            let want = wanted(&current);
            if want != asked {
                // New settings or names: the last failures were about something else.
                let mut attempts = lock(&self.attempts);
                attempts.failures = 0;
                attempts.next = None;
                attempts.last_error = None;
                // Another CA: its certificate is wanted now, not at the next renewal.
                if let (Some(before), Some(now)) = (&asked, &want) {
                    attempts.asked |= before.directory != now.directory;
                }
                asked = want.clone();
            }
            let public = self.pki.public();
            let names: Vec<String> = public
                .iter()
                .flat_map(|leaf| leaf.request().names().map(str::to_owned))
                .collect();
            let served = public.as_ref().map(|leaf| ServedCertificate {
                names: &names,
                renew_at: leaf.renew_at(),
                not_after: leaf.not_after(),
            });
            let (retry_at, asked_now) = {
                let mut attempts = lock(&self.attempts);
                (attempts.next, std::mem::take(&mut attempts.asked))
            };
            let next = match decide(want.as_ref(), served, retry_at, now()) {
                Next::WaitUntil(_) if asked_now => Next::Order,
                next => next,
            };
            let wait_until = match (next, want) {
                (Next::Withdraw, want) => {
                    if public.is_some() && self.withdraw() && want.is_some() {
                        // It had expired: decide again without it.
                        continue;
                    }
                    None
                }
                (Next::WaitUntil(at), _) => Some(at),
                (Next::Order, Some(want)) => {
                    self.attempt(&want, &board, &zone_file).await;
                    continue;
                }
                (Next::Order, None) => None,
            };
            let sleep = async {
                match wait_until {
                    Some(at) => {
                        let seconds = u64::try_from(at.saturating_sub(now())).unwrap_or(0);
                        tokio::time::sleep(Duration::from_secs(seconds)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = sleep => {}
                () = self.ask_again.notified() => {}
                changed = settings.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Stops serving the ACME certificate (off, or expired); false when that failed.
    fn withdraw(&self) -> bool {
        match self.pki.set_public(None) {
            Ok(()) => {
                tracing::info!("the ACME certificate is withdrawn: the cell's own certificate serves every name");
                true
            }
            Err(error) => {
                tracing::error!(%error, "cannot drop the ACME certificate");
                false
            }
        }
    }

    /// One order, its outcome recorded.
    async fn attempt(&self, want: &Wanted, board: &Board, zone_file: &Path) {
        lock(&self.attempts).ordering = true;
        tracing::info!(names = ?want.names, challenge = want.challenge.as_str(), directory = %want.directory, "asking the ACME CA for a certificate");
        let result = self.order(want, board, zone_file).await;
        let mut attempts = lock(&self.attempts);
        attempts.ordering = false;
        attempts.last = Some(now());
        // A certificate due at once (a clock far off, a CA's very short lifetime) would be
        // asked for again at once: that counts as a failure, with its backoff.
        let result = result.and_then(|leaf| {
            if leaf.renew_at() <= now() {
                return Err(AcmeError::new(
                    "checking the certificate",
                    format!(
                        "it is due for renewal already (valid {} s); is the cell's clock right?",
                        leaf.not_after() - leaf.not_before()
                    ),
                ));
            }
            Ok(leaf)
        });
        match result {
            Ok(leaf) => {
                tracing::info!(names = ?want.names, not_after = leaf.not_after(), "the ACME CA issued a certificate");
                attempts.failures = 0;
                attempts.next = None;
                attempts.last_error = None;
                attempts.issued_with = Some(want.challenge);
            }
            Err(error) => {
                attempts.failures += 1;
                let wait = backoff(attempts.failures);
                attempts.next = Some(now() + wait);
                tracing::warn!(%error, failures = attempts.failures, retry_in_s = wait, "no certificate from the ACME CA");
                attempts.last_error = Some(error.to_string());
            }
        }
    }

    async fn order(
        &self,
        want: &Wanted,
        board: &Board,
        zone_file: &Path,
    ) -> Result<Leaf, AcmeError> {
        let account = self.account(want).await?;
        let identifiers: Vec<Identifier> =
            want.names.iter().cloned().map(Identifier::Dns).collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(at("placing the order"))?;
        let kind = match want.challenge {
            Challenge::Http01 => ChallengeType::Http01,
            Challenge::Dns01 => ChallengeType::Dns01,
        };
        let mut proofs = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization =
                authorization.map_err(at("reading the order's authorizations"))?;
            let name = authorization.identifier().to_string();
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeError::new(
                        "reading the order's authorizations",
                        format!("{name} is {other:?}"),
                    ))
                }
            }
            let challenge = authorization.challenge(kind.clone()).ok_or_else(|| {
                AcmeError::new(
                    "choosing a challenge",
                    format!(
                        "the CA offers no {} challenge for {name}",
                        want.challenge.as_str()
                    ),
                )
            })?;
            let key_authorization = challenge.key_authorization();
            proofs.push(Proof {
                name,
                token: challenge.token.clone(),
                key_authorization: key_authorization.as_str().to_owned(),
                dns_value: key_authorization.dns_value(),
            });
        }
        let proved = self
            .prove(&mut order, &proofs, kind, want, board, zone_file)
            .await;
        // Whatever came of it, the tokens are no longer answered.
        self.publish(&[], want, board, zone_file).await.ok();
        proved?;
        let key_pem = Zeroizing::new(order.finalize().await.map_err(at("finalizing the order"))?);
        let chain_pem = order
            .poll_certificate(&RetryPolicy::new().timeout(VALIDATION_LIMIT))
            .await
            .map_err(at("fetching the certificate"))?;
        let leaf = Leaf::load(&chain_pem, &key_pem).map_err(at("reading the certificate"))?;
        let carried: Vec<String> = leaf.request().names().map(str::to_owned).collect();
        if !want
            .names
            .iter()
            .all(|name| carried.iter().any(|c| c.eq_ignore_ascii_case(name)))
        {
            return Err(AcmeError::new(
                "reading the certificate",
                format!("it names {carried:?}, not all of {:?}", want.names),
            ));
        }
        self.pki
            .set_public(Some(leaf.clone()))
            .map_err(at("storing the certificate"))?;
        Ok(leaf)
    }

    /// Publishes the proofs, tells the CA they are ready and waits for its verdict.
    async fn prove(
        &self,
        order: &mut instant_acme::Order,
        proofs: &[Proof],
        kind: ChallengeType,
        want: &Wanted,
        board: &Board,
        zone_file: &Path,
    ) -> Result<(), AcmeError> {
        self.publish(proofs, want, board, zone_file).await?;
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization =
                authorization.map_err(at("reading the order's authorizations"))?;
            if authorization.status != AuthorizationStatus::Pending {
                continue;
            }
            if let Some(mut challenge) = authorization.challenge(kind.clone()) {
                challenge
                    .set_ready()
                    .await
                    .map_err(at("telling the CA the challenge is ready"))?;
            }
        }
        let status = order
            .poll_ready(&RetryPolicy::new().timeout(VALIDATION_LIMIT))
            .await
            .map_err(at("waiting for the CA's validation"))?;
        if status == OrderStatus::Ready {
            return Ok(());
        }
        // Say why, per name, in the CA's words.
        let mut reasons = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(authorization)) = authorizations.next().await {
            for challenge in &authorization.challenges {
                if let Some(problem) = &challenge.error {
                    reasons.push(format!(
                        "{}: {}",
                        authorization.identifier(),
                        problem.detail.as_deref().unwrap_or("refused")
                    ));
                }
            }
        }
        if reasons.is_empty() {
            reasons.push(format!("the order is {status:?}"));
        }
        Err(AcmeError::new("the CA's validation", reasons.join("; ")))
    }

    /// Makes the front door (HTTP-01) or cell-dns (DNS-01) answer `proofs` (none: stop),
    /// returning once they do.
    async fn publish(
        &self,
        proofs: &[Proof],
        want: &Wanted,
        board: &Board,
        zone_file: &Path,
    ) -> Result<(), AcmeError> {
        match want.challenge {
            Challenge::Http01 => {
                let serial = self.pki.set_http_challenges(
                    proofs
                        .iter()
                        .map(|proof| HttpChallenge {
                            token: proof.token.clone(),
                            key_authorization: proof.key_authorization.clone(),
                        })
                        .collect(),
                );
                if proofs.is_empty() || self.pki.front_door_took(serial, PUBLISH_LIMIT).await {
                    return Ok(());
                }
                Err(AcmeError::new(
                    "publishing the challenge",
                    format!(
                        "the front door (cell-web) did not take the tokens within {} s",
                        PUBLISH_LIMIT.as_secs()
                    ),
                ))
            }
            Challenge::Dns01 => {
                let records = proofs
                    .iter()
                    .map(|proof| DnsRecord {
                        name: challenge_label(&proof.name, &want.zone),
                        ttl: CHALLENGE_TTL,
                        data: RecordData::Txt {
                            text: proof.dns_value.clone(),
                        },
                    })
                    .collect();
                self.dns_records.send_replace(records);
                board.request_pass();
                if proofs.is_empty() {
                    return Ok(());
                }
                let values: Vec<String> = proofs.iter().map(|p| p.dns_value.clone()).collect();
                let file = zone_file.to_owned();
                let written = async {
                    loop {
                        let text = tokio::fs::read_to_string(&file).await.unwrap_or_default();
                        if values.iter().all(|value| text.contains(value.as_str())) {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                if tokio::time::timeout(PUBLISH_LIMIT, written).await.is_err() {
                    return Err(AcmeError::new(
                        "publishing the challenge",
                        format!(
                            "the zone did not carry the TXT records within {} s",
                            PUBLISH_LIMIT.as_secs()
                        ),
                    ));
                }
                tokio::time::sleep(DNS_PICKUP).await;
                Ok(())
            }
        }
    }

    /// instant-acme's HTTP client: the system's roots, or only the configured test CA.
    fn builder(&self) -> Result<instant_acme::AccountBuilder, AcmeError> {
        match &self.directory_root {
            Some(root) => Account::builder_with_root(root),
            None => Account::builder(),
        }
        .map_err(at("preparing the HTTPS client"))
    }

    /// The stored account for the directory, or a new one (agreeing to its terms: turning
    /// ACME on is that agreement).
    async fn account(&self, want: &Wanted) -> Result<Account, AcmeError> {
        let stored = self
            .pki
            .secrets()
            .get(ACCOUNT_SECRET)
            .map_err(at("reading the account"))?
            .and_then(|bytes| serde_json::from_slice::<StoredAccount>(bytes.expose()).ok())
            .filter(|stored| stored.directory == want.directory);
        if let Some(stored) = stored {
            return self
                .builder()?
                .from_credentials(stored.credentials)
                .await
                .map_err(at("reaching the CA's directory"));
        }
        let contact = want.email.as_ref().map(|email| format!("mailto:{email}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = self
            .builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                want.directory.clone(),
                None,
            )
            .await
            .map_err(at("creating an account with the CA"))?;
        let stored = StoredAccount {
            directory: want.directory.clone(),
            credentials,
        };
        let bytes = Zeroizing::new(serde_json::to_vec(&stored).map_err(at("storing the account"))?);
        self.pki
            .secrets()
            .put(ACCOUNT_SECRET, &bytes)
            .map_err(at("storing the account"))?;
        tracing::info!(directory = %want.directory, "made an ACME account");
        Ok(account)
    }
}

/// `_acme-challenge.<name>` relative to `zone`.
fn challenge_label(name: &str, zone: &str) -> String {
    match name
        .strip_suffix(zone)
        .map(|rest| rest.trim_end_matches('.'))
    {
        Some("") | None => "_acme-challenge".to_owned(),
        Some(label) => format!("_acme-challenge.{label}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cell_model::names::DomainName;

    fn own_settings() -> Settings {
        let mut settings = Settings::default();
        settings.identity.domain = DomainMode::Own {
            domain: DomainName::parse("example.org").unwrap(),
        };
        settings.services.files = true;
        settings.acme.enabled = true;
        settings
    }

    #[test]
    fn wanted_only_when_on_with_a_public_name() {
        let mut settings = own_settings();
        let want = wanted(&settings).unwrap();
        assert_eq!(want.names, ["example.org", "files.example.org"]);
        assert_eq!(want.challenge, Challenge::Http01);
        settings.acme.enabled = false;
        assert_eq!(wanted(&settings), None);
        let mut internal = own_settings();
        internal.identity.domain = DomainMode::Internal;
        assert_eq!(wanted(&internal), None);
    }

    #[test]
    fn renews_at_two_thirds_and_backs_off_after_failures() {
        let want = wanted(&own_settings()).unwrap();
        let names = want.names.clone();
        let fewer = vec!["example.org".to_owned()];
        fn served(
            names: &[String],
            renew_at: i64,
            not_after: i64,
        ) -> Option<ServedCertificate<'_>> {
            Some(ServedCertificate {
                names,
                renew_at,
                not_after,
            })
        }
        // Nothing served: order now.
        assert_eq!(decide(Some(&want), None, None, 1000), Next::Order);
        // Served and not due: wait for the renewal time.
        assert_eq!(
            decide(Some(&want), served(&names, 5000, 7000), None, 1000),
            Next::WaitUntil(5000)
        );
        // Due: order, unless a failure's backoff is still running.
        assert_eq!(
            decide(Some(&want), served(&names, 900, 7000), None, 1000),
            Next::Order
        );
        assert_eq!(
            decide(Some(&want), served(&names, 900, 7000), Some(1300), 1000),
            Next::WaitUntil(1300)
        );
        // A backoff past the expiry wakes at the expiry, and an expired one is withdrawn.
        assert_eq!(
            decide(Some(&want), served(&names, 900, 1200), Some(5000), 1000),
            Next::WaitUntil(1200)
        );
        assert_eq!(
            decide(Some(&want), served(&names, 900, 1000), Some(5000), 1000),
            Next::Withdraw
        );
        // Other names (a service turned on): order at once.
        assert_eq!(
            decide(Some(&want), served(&fewer, 5000, 7000), None, 1000),
            Next::Order
        );
        // Off: the ACME certificate is withdrawn.
        assert_eq!(
            decide(None, served(&names, 5000, 7000), None, 1000),
            Next::Withdraw
        );
        assert_eq!(backoff(1), 300);
        assert_eq!(backoff(2), 600);
        assert_eq!(backoff(5), 4800);
        assert_eq!(backoff(40), 86_400);
    }

    #[test]
    fn challenge_records_are_relative_to_the_zone() {
        assert_eq!(
            challenge_label("example.org", "example.org"),
            "_acme-challenge"
        );
        assert_eq!(
            challenge_label("files.example.org", "example.org"),
            "_acme-challenge.files"
        );
    }

    #[test]
    fn the_view_says_why_nothing_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Arc::new(Pki::open(dir.path(), "example.org").unwrap());
        let acme = Acme::new(pki, None);
        assert_eq!(acme.view(&Settings::default()).state, AcmeState::Off);
        let mut settings = own_settings();
        assert_eq!(acme.view(&settings).state, AcmeState::Ordering);
        settings.identity.domain = DomainMode::Internal;
        assert_eq!(acme.view(&settings).state, AcmeState::NoPublicName);
        {
            let mut attempts = lock(&acme.attempts);
            attempts.failures = 2;
            attempts.last_error = Some("the CA's validation: no".into());
            attempts.next = Some(now() + 600);
        }
        let view = acme.view(&own_settings());
        assert_eq!(view.state, AcmeState::Failing);
        assert_eq!(view.failures, 2);
        acme.ask_now();
        assert_eq!(acme.view(&own_settings()).failures, 0);
    }
}
