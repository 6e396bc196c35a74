//! Dovecot's login policy (`auth_policy_server_url`), served on a socket of its own that
//! only the mail machine's `dovecot` can reach. Every IMAP and SMTP login is put to it
//! three times: before the password is checked (the cell's one login throttle: the
//! account counted at once like the web's, the address checked, and counted once a login
//! from it failed), after it matched (is the account still enabled and that app
//! password not revoked, whatever the machine's account file says yet), and with the
//! outcome (failures audited, the throttle cleared, the app password's last use noted).
//! The password itself never comes here: Dovecot sends a digest salted with a nonce only
//! the cell and the machine know, compared with the logins accepted a moment ago.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::Json;
use cell_model::{Settings, Username};
use serde::{Deserialize, Serialize};

use super::app_passwords::note_use;
use super::{record, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::mail_login::{account_of, in_mail_machine};
use crate::peer::Peer;
use crate::sync::lock;
use crate::throttle::{self, Outcome, Throttle};

/// The service app passwords' last use names.
const SERVICE: &str = "mail";
/// What `cell_login` starts with for the account password (`account.<tag>`); otherwise
/// it is an app password's id.
const ACCOUNT: &str = cell_render::mail::ACCOUNT_LOGIN;

#[derive(Debug, Deserialize)]
pub struct PolicyQuery {
    command: String,
}

/// The attributes dovecot.conf asks for, and the outcome fields of a report.
#[derive(Debug, Deserialize)]
pub struct PolicyRequest {
    #[serde(default)]
    login: String,
    /// SHA-256 of nonce, login, NUL and password, hex.
    #[serde(default)]
    pwhash: String,
    #[serde(default)]
    remote: String,
    #[serde(default)]
    protocol: String,
    /// Why a reported login failed: credentials, account, disabled, policy, internal.
    #[serde(default)]
    fail_type: String,
    /// Which password matched (cell_render::mail::LOGIN_FIELD): empty before the check.
    #[serde(default)]
    cell_login: String,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    policy_reject: bool,
}

/// `status`: 0 lets the login go on, a positive number after that many seconds, -1
/// refuses it with `msg`.
#[derive(Debug, Serialize)]
pub struct PolicyAnswer {
    status: i32,
    msg: String,
}

impl PolicyAnswer {
    fn go_on() -> Json<Self> {
        Json(Self {
            status: 0,
            msg: String::new(),
        })
    }

    /// Goes on after `seconds` (0: at once).
    fn wait(seconds: u64) -> Json<Self> {
        Json(Self {
            status: i32::try_from(seconds).unwrap_or(i32::MAX),
            msg: String::new(),
        })
    }

    fn refuse(msg: &str) -> Json<Self> {
        Json(Self {
            status: -1,
            msg: msg.to_owned(),
        })
    }
}

pub async fn login_policy_post(
    State(daemon): State<Arc<Daemon>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Query(query): Query<PolicyQuery>,
    body: Bytes,
) -> Result<Json<PolicyAnswer>, AppError> {
    if !peer.is_root() && !peer.uid.is_some_and(in_mail_machine) {
        return Err(AppError::Forbidden(
            "the mail login policy answers the mail machine only".into(),
        ));
    }
    let request: PolicyRequest = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("not a login policy request: {e}")))?;
    let login = Login {
        account: account_of(&request.login),
        source: Some(request.remote.clone()).filter(|r| !r.is_empty()),
    };
    match (query.command.as_str(), request.cell_login.is_empty()) {
        ("allow", true) => before(&daemon, &login, &request).await,
        ("allow", false) => Ok(after(&daemon, &login, &request)),
        ("report", _) => report(&daemon, &login, &request).await,
        (other, _) => Err(AppError::field(
            "command",
            format!("'{other}' is neither allow nor report"),
        )),
    }
}

struct Login {
    account: String,
    source: Option<String>,
}

impl Login {
    fn keys(&self) -> (String, String) {
        (
            throttle::account_key(&self.account),
            throttle::source_key(self.source.as_deref()),
        )
    }
}

fn current(daemon: &Daemon) -> (u64, Settings) {
    let store = lock(&daemon.store);
    let current = store.current();
    (current.generation, current.settings.clone())
}

/// Whether this login's password matched a moment ago, under the same settings.
fn trusted(
    daemon: &Daemon,
    login: &Login,
    request: &PolicyRequest,
    generation: u64,
    now: Instant,
) -> bool {
    !request.pwhash.is_empty()
        && lock(&daemon.mail_trust)
            .get(&login.account, &request.pwhash, generation, now)
            .is_some()
}

/// Before the password is checked: a login that matched a moment ago goes on uncounted;
/// any other is an attempt, counted now, held back while the account or address waits
/// and refused while either is locked out.
async fn before(
    daemon: &Arc<Daemon>,
    login: &Login,
    request: &PolicyRequest,
) -> Result<Json<PolicyAnswer>, AppError> {
    let now = Instant::now();
    let generation = lock(&daemon.store).current().generation;
    if trusted(daemon, login, request, generation, now) {
        return Ok(PolicyAnswer::go_on());
    }
    let (account, address) = login.keys();
    let decision = admit(&mut lock(&daemon.throttle), &account, &address, now);
    let Some((wait, outcome)) = decision else {
        return Ok(PolicyAnswer::refuse(
            "too many failed logins; try again later",
        ));
    };
    if outcome == Outcome::LockedOut {
        let lockout = Record::new("-", "auth.lockout")
            .source(login.source.clone())
            .target(&login.account)
            .change("service", SERVICE);
        record(daemon, lockout).await?;
    }
    Ok(PolicyAnswer::wait(wait))
}

/// The longest a login is held back before its password is checked. Postfix gives up on
/// Dovecot's answer after 10 s (and tells its client "454 connection lost to
/// authentication server"); a failure is answered 2 to 3.5 s late, and the password check
/// and the policy's round trips need the rest. A login that must wait longer is refused,
/// uncounted, and the client tries again later.
const LONGEST_HOLD: Duration = Duration::from_secs(3);

/// The account is counted now (a burst against it gets no more guesses than the
/// schedule allows); the address only once a login from it failed (see report). A login
/// that must wait a little is held back that long (Dovecot's tarpit) and counted, so that
/// a client's few connections opened at once get in one after another rather than being
/// refused; one that must wait longer than [`LONGEST_HOLD`], or while the account or
/// address is locked out, is refused. `Some` holds the seconds to hold the login back.
fn admit(
    throttle: &mut Throttle,
    account: &str,
    address: &str,
    now: Instant,
) -> Option<(u64, Outcome)> {
    let wait = [address, account]
        .iter()
        .filter_map(|key| throttle.check(key, now).err())
        .max();
    match wait {
        // Neither waits, so the attempt is admitted; were it not, it is refused.
        None => throttle
            .attempt(&[account], now)
            .ok()
            .map(|outcome| (0, outcome)),
        Some(wait)
            if wait > LONGEST_HOLD
                || throttle.locked(account, now)
                || throttle.locked(address, now) =>
        {
            throttle.note_refused();
            None
        }
        Some(wait) => {
            let seconds = u64::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(u64::MAX);
            Some((seconds, throttle.count(account, now)))
        }
    }
}

/// After the password matched: the settings, not the machine's copy of them, decide.
fn after(daemon: &Daemon, login: &Login, request: &PolicyRequest) -> Json<PolicyAnswer> {
    let (_, settings) = current(daemon);
    match still_valid(&settings, &login.account, &request.cell_login) {
        Ok(()) => PolicyAnswer::go_on(),
        Err(why) => PolicyAnswer::refuse(why),
    }
}

fn still_valid(settings: &Settings, account: &str, matched: &str) -> Result<(), &'static str> {
    let user = Username::parse(account)
        .ok()
        .and_then(|name| settings.user(&name))
        .ok_or("no such account")?;
    if user.disabled {
        return Err("this account is disabled");
    }
    if let Some(tag) = matched
        .strip_prefix(ACCOUNT)
        .and_then(|rest| rest.strip_prefix('.'))
    {
        if !settings.service_logins.account_password || user.totp_secret.is_some() {
            return Err("use an app password");
        }
        if tag != crate::mail_login::account_tag(user.password_hash.expose()) {
            return Err("this password was changed");
        }
    } else if !user.app_passwords.iter().any(|app| app.id == matched) {
        return Err("this app password was revoked");
    }
    Ok(())
}

/// The outcome: a success clears the account's failures, is trusted for a while and
/// notes the app password's use; a failure (a wrong password, or a right one refused
/// after the check, whose attempt is given back) is audited. A login refused before its
/// check was not counted.
async fn report(
    daemon: &Arc<Daemon>,
    login: &Login,
    request: &PolicyRequest,
) -> Result<Json<PolicyAnswer>, AppError> {
    let now = Instant::now();
    let (generation, settings) = current(daemon);
    if request.success {
        let trusted = trusted(daemon, login, request, generation, now);
        if !trusted {
            // Only a login that was counted clears the account's failures: one taken on
            // trust must not wipe what guessers elsewhere have earned.
            let (account, _) = login.keys();
            lock(&daemon.throttle).clear(&account);
        }
        let app = Username::parse(&login.account)
            .ok()
            .and_then(|name| settings.user(&name))
            .and_then(|user| {
                user.app_passwords
                    .iter()
                    .find(|app| app.id == request.cell_login)
            })
            .map(|app| (app.id.clone(), app.name.clone()));
        if !trusted && !request.pwhash.is_empty() {
            lock(&daemon.mail_trust).insert(
                &login.account,
                &request.pwhash,
                generation,
                app.as_ref().map(|(_, name)| name.clone()),
                now,
            );
        }
        if let Some((id, _)) = app {
            note_use(
                daemon,
                &login.account,
                &id,
                login.source.clone(),
                SERVICE,
                now,
            )
            .await;
        }
    } else if !(request.policy_reject && request.cell_login.is_empty()) {
        let (account, address) = login.keys();
        let address_locked_out = {
            let mut throttle = lock(&daemon.throttle);
            if request.policy_reject {
                // The password matched and the settings refused it: not a guess.
                throttle.refund(&account);
                false
            } else {
                throttle.count(&address, now) == Outcome::LockedOut
            }
        };
        if address_locked_out {
            let lockout = Record::new("-", "auth.lockout")
                .source(login.source.clone())
                .target(&address)
                .change("service", SERVICE);
            record(daemon, lockout).await?;
        }
        let mut failure = Record::new("-", "auth.service_failure")
            .source(login.source.clone())
            .target(&login.account)
            .change("service", SERVICE)
            .change("protocol", request.protocol.clone());
        if !request.fail_type.is_empty() {
            failure = failure.change("reason", request.fail_type.clone());
        }
        record(daemon, failure).await?;
    }
    Ok(PolicyAnswer::go_on())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAROL: &str = "user:carol";
    const FROM: &str = "addr:192.0.2.7";

    /// Fails one admitted login: counted against the address once it failed.
    fn fail(throttle: &mut Throttle, now: Instant) -> Option<u64> {
        let (held, _) = admit(throttle, CAROL, FROM, now)?;
        throttle.count(FROM, now);
        Some(held)
    }

    #[test]
    fn a_short_wait_holds_the_login_back_and_a_long_one_refuses_it_uncounted() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..throttle::FREE_ATTEMPTS {
            assert_eq!(fail(&mut throttle, start), Some(0));
        }
        // Each further login at once waits twice as long: 1 s, 2 s, then more than a
        // client waits for its answer.
        assert_eq!(fail(&mut throttle, start), Some(1));
        assert_eq!(fail(&mut throttle, start), Some(2));
        assert_eq!(admit(&mut throttle, CAROL, FROM, start), None);
        assert_eq!(admit(&mut throttle, CAROL, FROM, start), None);
        assert_eq!(throttle.refused(), 2);
        // The refusals were not counted: 4 s after the last counted login it is heard.
        let later = start + Duration::from_secs(4);
        assert!(admit(&mut throttle, CAROL, FROM, later).is_some());
    }

    #[test]
    fn a_held_back_wait_is_rounded_up_never_shortening_the_schedule() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..=throttle::FREE_ATTEMPTS {
            fail(&mut throttle, start);
        }
        // 2 s after the fourth, half a second later: 1.5 s to wait, held for 2 s.
        let now = start + Duration::from_millis(500);
        assert_eq!(fail(&mut throttle, now), Some(2));
    }

    #[test]
    fn the_longer_of_the_account_and_address_waits_holds_the_login() {
        let mut throttle = Throttle::default();
        let now = Instant::now();
        // The account waits 2 s (counted at every attempt), its address 1 s (counted
        // only for the three failures reported).
        for _ in 0..throttle::FREE_ATTEMPTS + 1 {
            throttle.count(CAROL, now);
        }
        for _ in 0..throttle::FREE_ATTEMPTS {
            throttle.count(FROM, now);
        }
        assert_eq!(
            admit(&mut throttle, CAROL, FROM, now),
            Some((2, Outcome::Counted))
        );
    }

    #[test]
    fn logins_heard_as_the_schedule_allows_lock_the_account_out_and_then_refuse() {
        let mut throttle = Throttle::default();
        let mut now = Instant::now();
        let mut locked = None;
        for n in 1..=throttle::LOCKOUT_AFTER + 1 {
            match admit(&mut throttle, CAROL, "addr:192.0.2.8", now) {
                Some((_, Outcome::LockedOut)) => locked = Some(n),
                Some(_) => {}
                None => break,
            }
            now += Duration::from_secs(61);
        }
        assert_eq!(locked, Some(throttle::LOCKOUT_AFTER));
        // Locked out: refused however short the wait, until the lockout is over.
        let unlocked = now - Duration::from_secs(61) + throttle::LOCKOUT;
        let almost = unlocked - Duration::from_secs(2);
        assert_eq!(admit(&mut throttle, CAROL, FROM, almost), None);
        assert!(admit(&mut throttle, CAROL, FROM, unlocked).is_some());
    }

    #[test]
    fn the_field_is_the_one_the_machine_sends() {
        assert_eq!(cell_render::mail::LOGIN_FIELD, "cell_login");
    }
}
