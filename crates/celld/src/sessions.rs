//! Sessions of the web UI and API, held by celld: cell-web only carries a session's token
//! from the browser's cookie to celld, which resolves it to a user on every request.
//!
//! A token is 256 random bits, handed out once; the store keeps only its SHA-256, with the
//! user, the CSRF secret, times, the address and browser it came from, and the user's
//! credential epoch at login — a digest of their password hash and second factor. Changing
//! either (through any path: UI, API, cellctl, the recovery console even with celld
//! stopped) changes the epoch, which ends every session carrying the old one. Disabling or
//! deleting the user ends them too, since a session only resolves to an enabled user.
//! The store is persisted in `/var/lib/cell/sessions.json` (0600), so sessions survive a
//! restart of cell-web and of celld.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cell_model::api::{CurrentSession, SessionInfo};
use cell_model::{Role, Settings, User, Username};
use jiff::Timestamp;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const SESSIONS_FILE: &str = "sessions.json";
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// Logging in again and again must not grow the store without bound.
const MAX_PER_USER: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    token_hash: String,
    user: Username,
    csrf: String,
    epoch: String,
    created: Timestamp,
    last_seen: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    sessions: Vec<Record>,
    /// The last TOTP time step accepted per user: a code is good once.
    #[serde(default)]
    totp_steps: BTreeMap<Username, u64>,
}

/// A session that resolved: who it is and the secret its forms carry.
#[derive(Debug, Clone)]
pub struct Active {
    pub id: String,
    pub user: Username,
    pub role: Role,
    pub csrf: String,
}

impl Active {
    pub fn view(&self) -> CurrentSession {
        CurrentSession {
            id: self.id.clone(),
            name: self.user.clone(),
            role: self.role,
            csrf_token: self.csrf.clone(),
        }
    }
}

/// Where a login came from, as cell-web saw it.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub source: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug)]
pub struct Sessions {
    path: PathBuf,
    /// A session unused this long has ended.
    idle: Duration,
    by_token_hash: HashMap<String, Record>,
    totp_steps: BTreeMap<Username, u64>,
    /// Something changed since the last save (only `last_seen` values, when false
    /// after `take_snapshot`).
    dirty: bool,
}

/// The user's credential epoch: changes whenever their password or second factor does.
pub fn epoch(user: &User) -> String {
    let mut digest = Sha256::new();
    digest.update(b"cell credential epoch\0");
    digest.update(user.password_hash.expose().as_bytes());
    digest.update(b"\0");
    if let Some(seed) = &user.totp_secret {
        digest.update(seed.expose().as_bytes());
    }
    hex::encode(&digest.finalize()[..16])
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random_hex<const N: usize>() -> String {
    let bytes: [u8; N] = rand::rng().random();
    hex::encode(bytes)
}

fn after(time: Timestamp, span: Duration, now: Timestamp) -> bool {
    let span = jiff::SignedDuration::try_from(span).unwrap_or(jiff::SignedDuration::MAX);
    time.checked_add(span).is_ok_and(|end| now >= end)
}

impl Sessions {
    /// Loads the store; a missing or unreadable file starts empty (everyone logs in again).
    pub fn load(state_dir: &Path, idle: Duration) -> Self {
        let path = state_dir.join(SESSIONS_FILE);
        let persisted = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Persisted>(&bytes).unwrap_or_else(|error| {
                tracing::warn!(path = %path.display(), %error, "the sessions file is unreadable; everyone logs in again");
                Persisted::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the sessions file; everyone logs in again");
                Persisted::default()
            }
        };
        Self {
            path,
            idle,
            by_token_hash: persisted
                .sessions
                .into_iter()
                .map(|r| (r.token_hash.clone(), r))
                .collect(),
            totp_steps: persisted.totp_steps,
            dirty: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a session for `user`; returns its token (to give out once) and the session.
    pub fn create(&mut self, user: &User, origin: Origin, now: Timestamp) -> (String, Active) {
        let token = random_hex::<32>();
        let record = Record {
            id: random_hex::<8>(),
            token_hash: token_hash(&token),
            user: user.name.clone(),
            csrf: random_hex::<32>(),
            epoch: epoch(user),
            created: now,
            last_seen: now,
            source: origin.source,
            user_agent: origin
                .user_agent
                .map(|ua| ua.chars().filter(|c| !c.is_control()).take(200).collect()),
        };
        let mut own: Vec<(Timestamp, String)> = self
            .by_token_hash
            .values()
            .filter(|r| r.user == user.name)
            .map(|r| (r.last_seen, r.token_hash.clone()))
            .collect();
        if own.len() >= MAX_PER_USER {
            own.sort();
            for (_, hash) in own.iter().take(own.len() + 1 - MAX_PER_USER) {
                self.by_token_hash.remove(hash);
            }
        }
        let active = Active {
            id: record.id.clone(),
            user: user.name.clone(),
            role: user.role,
            csrf: record.csrf.clone(),
        };
        self.by_token_hash.insert(record.token_hash.clone(), record);
        self.dirty = true;
        (token, active)
    }

    /// The live session of `token`, its idle timer restarted; None when it never existed,
    /// expired, or its user is gone, disabled or has changed their credentials.
    pub fn resolve(&mut self, token: &str, settings: &Settings, now: Timestamp) -> Option<Active> {
        let key = token_hash(token);
        let idle = self.idle;
        let record = self.by_token_hash.get_mut(&key)?;
        let Some(user) = live_user(record, settings, now, idle) else {
            self.by_token_hash.remove(&key);
            self.dirty = true;
            return None;
        };
        record.last_seen = now;
        self.dirty = true;
        Some(Active {
            id: record.id.clone(),
            user: user.name.clone(),
            role: user.role,
            csrf: record.csrf.clone(),
        })
    }

    /// Carries session `id` over to `user`'s new credentials (one's own password change
    /// ends one's other sessions, not the one making the change).
    pub fn restamp(&mut self, id: &str, user: &User) {
        if let Some(record) = self.by_token_hash.values_mut().find(|r| r.id == id) {
            record.epoch = epoch(user);
            self.dirty = true;
        }
    }

    /// Ends session `id`; whether it existed.
    pub fn end(&mut self, id: &str) -> bool {
        let before = self.by_token_hash.len();
        self.by_token_hash.retain(|_, r| r.id != id);
        let ended = self.by_token_hash.len() != before;
        self.dirty |= ended;
        ended
    }

    /// The owner of live session `id`.
    pub fn owner(&self, id: &str, settings: &Settings, now: Timestamp) -> Option<Username> {
        self.by_token_hash
            .values()
            .find(|r| r.id == id)
            .filter(|r| live_user(r, settings, now, self.idle).is_some())
            .map(|r| r.user.clone())
    }

    /// Live sessions, of `only` or everyone's, most recently used first.
    pub fn list(
        &self,
        settings: &Settings,
        only: Option<&Username>,
        current: Option<&str>,
        now: Timestamp,
    ) -> Vec<SessionInfo> {
        let mut sessions: Vec<SessionInfo> = self
            .by_token_hash
            .values()
            .filter(|r| only.is_none_or(|u| r.user == *u))
            .filter(|r| live_user(r, settings, now, self.idle).is_some())
            .map(|r| SessionInfo {
                id: r.id.clone(),
                user: r.user.clone(),
                created: r.created,
                last_seen: r.last_seen,
                source: r.source.clone(),
                user_agent: r.user_agent.clone(),
                current: current == Some(r.id.as_str()),
            })
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.last_seen));
        sessions
    }

    /// Accepts TOTP step `step` for `user` once: a later login cannot reuse its code, nor
    /// an older one.
    pub fn accept_totp_step(&mut self, user: &Username, step: u64) -> bool {
        if self.totp_steps.get(user).is_some_and(|last| step <= *last) {
            return false;
        }
        self.totp_steps.insert(user.clone(), step);
        self.dirty = true;
        true
    }

    /// Drops sessions that can no longer resolve.
    pub fn prune(&mut self, settings: &Settings, now: Timestamp) {
        let before = self.by_token_hash.len();
        self.by_token_hash
            .retain(|_, r| live_user(r, settings, now, self.idle).is_some());
        self.totp_steps
            .retain(|user, _| settings.user(user).is_some());
        self.dirty |= self.by_token_hash.len() != before;
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The store's file content; the store counts as saved from here on.
    pub fn take_snapshot(&mut self) -> Vec<u8> {
        self.dirty = false;
        let persisted = Persisted {
            sessions: self.by_token_hash.values().cloned().collect(),
            totp_steps: self.totp_steps.clone(),
        };
        serde_json::to_vec(&persisted).unwrap_or_default()
    }
}

fn live_user<'a>(
    record: &Record,
    settings: &'a Settings,
    now: Timestamp,
    idle: Duration,
) -> Option<&'a User> {
    if after(record.last_seen, idle, now) || after(record.created, ABSOLUTE_TIMEOUT, now) {
        return None;
    }
    settings
        .user(&record.user)
        .filter(|u| !u.disabled && epoch(u) == record.epoch)
}

#[cfg(test)]
mod tests {
    use cell_model::users::Secret;

    use super::*;

    fn settings_with(users: Vec<User>) -> Settings {
        Settings {
            users,
            ..Settings::default()
        }
    }

    fn alice() -> User {
        User {
            name: Username::parse("alice").unwrap(),
            role: Role::Admin,
            disabled: false,
            password_hash: Secret::new("$argon2id$one".into()),
            totp_secret: None,
            recovery_codes: Vec::new(),
            app_passwords: Vec::new(),
            mail_aliases: Vec::new(),
            files_quota_mib: None,
        }
    }

    #[test]
    fn sessions_expire_when_idle_and_absolutely() {
        let dir = tempfile::tempdir().unwrap();
        let mut sessions = Sessions::load(dir.path(), IDLE_TIMEOUT);
        let settings = settings_with(vec![alice()]);
        let t0 = Timestamp::now();
        let (token, _) = sessions.create(&alice(), Origin::default(), t0);
        let half_idle = jiff::SignedDuration::try_from(IDLE_TIMEOUT / 2).unwrap();
        let mut now = t0;
        // Each use restarts the idle timer...
        while now < t0 + jiff::SignedDuration::try_from(ABSOLUTE_TIMEOUT).unwrap() - half_idle {
            now += half_idle;
            assert!(sessions.resolve(&token, &settings, now).is_some());
        }
        // ...but not the absolute one.
        now += half_idle;
        assert!(sessions.resolve(&token, &settings, now).is_none());
        let (idle, _) = sessions.create(&alice(), Origin::default(), t0);
        let later = t0 + jiff::SignedDuration::try_from(IDLE_TIMEOUT).unwrap();
        assert!(sessions.resolve(&idle, &settings, later).is_none());
        assert!(sessions.resolve("00", &settings, t0).is_none());
    }

    #[test]
    fn a_changed_password_or_a_disabled_user_ends_sessions_and_restamping_keeps_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut sessions = Sessions::load(dir.path(), IDLE_TIMEOUT);
        let now = Timestamp::now();
        let (mine, me) = sessions.create(&alice(), Origin::default(), now);
        let (other, _) = sessions.create(&alice(), Origin::default(), now);
        let mut changed = alice();
        changed.password_hash = Secret::new("$argon2id$two".into());
        sessions.restamp(&me.id, &changed);
        let settings = settings_with(vec![changed.clone()]);
        assert!(sessions.resolve(&mine, &settings, now).is_some());
        assert!(sessions.resolve(&other, &settings, now).is_none());
        changed.disabled = true;
        let settings = settings_with(vec![changed]);
        assert!(sessions.resolve(&mine, &settings, now).is_none());
    }

    #[test]
    fn the_store_survives_a_reload_and_keeps_only_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let mut sessions = Sessions::load(dir.path(), IDLE_TIMEOUT);
        let now = Timestamp::now();
        let (token, active) = sessions.create(
            &alice(),
            Origin {
                source: Some("192.0.2.7".into()),
                user_agent: Some("Firefox\n".into()),
            },
            now,
        );
        let bytes = sessions.take_snapshot();
        assert!(!String::from_utf8_lossy(&bytes).contains(&token));
        std::fs::write(dir.path().join(SESSIONS_FILE), &bytes).unwrap();
        let mut reloaded = Sessions::load(dir.path(), IDLE_TIMEOUT);
        let settings = settings_with(vec![alice()]);
        let again = reloaded.resolve(&token, &settings, now).unwrap();
        assert_eq!(again.id, active.id);
        assert_eq!(again.csrf, active.csrf);
        let listed = reloaded.list(&settings, None, Some(&active.id), now);
        assert_eq!(listed.len(), 1);
        assert!(listed[0].current);
        assert_eq!(listed[0].user_agent.as_deref(), Some("Firefox"));
        assert!(reloaded.end(&active.id));
        assert!(reloaded.resolve(&token, &settings, now).is_none());
    }

    #[test]
    fn a_totp_step_is_accepted_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut sessions = Sessions::load(dir.path(), IDLE_TIMEOUT);
        let alice = Username::parse("alice").unwrap();
        assert!(sessions.accept_totp_step(&alice, 100));
        assert!(!sessions.accept_totp_step(&alice, 100));
        assert!(!sessions.accept_totp_step(&alice, 99));
        assert!(sessions.accept_totp_step(&alice, 101));
    }
}
