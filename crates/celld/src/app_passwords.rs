//! App passwords and service logins. An app password is made by the cell for one device
//! (`abcd-efgh-jkmn-pqrs`): its first group is its id, the other three its secret (60
//! bits), kept only as an argon2id hash, so a login checks one hash. Service logins (IMAP,
//! SMTP, CalDAV, WebDAV, through the front door or a service's own login) are checked
//! here; an accepted one is remembered for a few minutes by a digest of the name and
//! password and the settings generation it was checked under, so a DAV client's many
//! requests cost one hash, and any change to the accounts (a user disabled, a password
//! revoked) makes the next request check again. When each app password was last used is
//! kept apart from the settings, in the state directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cell_model::users::User;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use cell_model::users::LOGIN_SERVICES as SERVICES;
/// How long an accepted service login is taken on trust for the same settings.
const TRUSTED_FOR: Duration = Duration::from_secs(300);
const MAX_TRUSTED: usize = 4096;
/// Last-use times reach the disk at most this often.
const SAVE_EVERY: Duration = Duration::from_secs(60);
pub const USE_FILE: &str = "app-password-use.json";

/// A new app password: its id and the whole password to show once.
pub fn generate() -> (String, String) {
    let password = crate::passwords::random_code(4).to_lowercase();
    let id = password[..4].to_owned();
    (id, password)
}

/// An offered password split into an app password's id and secret, if it has that shape
/// (16 letters and digits, dashes and case as the person typed them).
pub fn split(offered: &str) -> Option<(String, String)> {
    let normal = crate::passwords::normalise_code(offered);
    if normal.len() != 16
        || offered
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .count()
            != 16
    {
        return None;
    }
    Some((normal[..4].to_owned(), normal[4..].to_owned()))
}

/// What a service login may be checked against: the app password with the offered id, or
/// the account password when the settings allow it for this account.
pub enum Candidate {
    App { id: String, name: String },
    Account,
}

/// The hash to check `offered` against for `user`, and what it is; none: refuse.
pub fn candidate(
    user: &User,
    offered: &str,
    account_password_allowed: bool,
) -> Option<(Candidate, cell_model::users::Secret, String)> {
    if let Some((id, secret)) = split(offered) {
        if let Some(app) = user.app_passwords.iter().find(|a| a.id == id) {
            return Some((
                Candidate::App {
                    id,
                    name: app.name.clone(),
                },
                app.hash.clone(),
                secret,
            ));
        }
    }
    // A second factor cannot be asked by IMAP or WebDAV: such accounts use app passwords.
    if account_password_allowed && user.totp_secret.is_none() {
        return Some((
            Candidate::Account,
            user.password_hash.clone(),
            offered.to_owned(),
        ));
    }
    None
}

/// Accepted service logins, by keyed digest, for the generation they were checked under.
#[derive(Debug)]
pub struct Trusted {
    /// Made at start: a digest in memory says nothing about a password without it.
    key: [u8; 32],
    entries: HashMap<[u8; 32], (u64, Instant, Option<String>)>,
}

impl Default for Trusted {
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        Self {
            key,
            entries: HashMap::new(),
        }
    }
}

fn digest(key: &[u8; 32], username: &str, password: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(key);
    hasher.update(username.as_bytes());
    hasher.update([0]);
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

impl Trusted {
    /// The app password's name (or none for the account password) when this login was
    /// accepted under `generation` a short while ago.
    pub fn get(
        &self,
        username: &str,
        password: &str,
        generation: u64,
        now: Instant,
    ) -> Option<Option<String>> {
        let (at_generation, at, app) = self.entries.get(&digest(&self.key, username, password))?;
        (*at_generation == generation && now.duration_since(*at) < TRUSTED_FOR).then(|| app.clone())
    }

    pub fn insert(
        &mut self,
        username: &str,
        password: &str,
        generation: u64,
        app: Option<String>,
        now: Instant,
    ) {
        if self.entries.len() >= MAX_TRUSTED {
            self.entries
                .retain(|_, (g, at, _)| *g == generation && now.duration_since(*at) < TRUSTED_FOR);
        }
        if self.entries.len() < MAX_TRUSTED {
            self.entries.insert(
                digest(&self.key, username, password),
                (generation, now, app),
            );
        }
    }
}

/// When, from where and for which service an app password was last used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastUse {
    pub at: jiff::Timestamp,
    pub source: Option<String>,
    pub service: String,
}

/// Every app password's last use, saved now and then.
#[derive(Debug)]
pub struct Uses {
    path: PathBuf,
    by_id: HashMap<String, LastUse>,
    saved: Option<Instant>,
}

impl Uses {
    /// Reads the file in `state_dir`; a missing or unreadable one starts empty.
    pub fn load(state_dir: &Path) -> Self {
        let path = state_dir.join(USE_FILE);
        let by_id = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self {
            path,
            by_id,
            saved: None,
        }
    }

    /// Keys are `user/id`: ids are unique per account only.
    fn key(username: &str, id: &str) -> String {
        format!("{username}/{id}")
    }

    pub fn get(&self, username: &str, id: &str) -> Option<&LastUse> {
        self.by_id.get(&Self::key(username, id))
    }

    /// Notes a use; says whether it is time to save.
    pub fn note(&mut self, username: &str, id: &str, last: LastUse, now: Instant) -> bool {
        self.by_id.insert(Self::key(username, id), last);
        self.saved
            .is_none_or(|saved| now.duration_since(saved) >= SAVE_EVERY)
    }

    pub fn forget(&mut self, username: &str, id: &str) {
        self.by_id.remove(&Self::key(username, id));
    }

    /// What to write, marking it saved.
    pub fn snapshot(&mut self, now: Instant) -> (PathBuf, Vec<u8>) {
        self.saved = Some(now);
        (
            self.path.clone(),
            serde_json::to_vec(&self.by_id).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cell_model::users::{AppPassword, Secret};

    #[test]
    fn app_passwords_carry_their_id_and_are_typed_loosely() {
        let (id, password) = generate();
        assert_eq!(password.len(), 19);
        assert!(password.starts_with(&id));
        let (again_id, secret) = split(&password.to_uppercase().replace('-', " ")).unwrap();
        assert_eq!(again_id, id);
        assert_eq!(secret.len(), 12);
        assert_eq!(split("correct horse battery"), None, "an account password");
        assert_eq!(split("abcd-efgh-jkmn"), None);
    }

    fn user(totp: bool) -> User {
        User {
            name: cell_model::Username::parse("alice").unwrap(),
            role: cell_model::Role::Peer,
            disabled: false,
            password_hash: Secret::new("account".into()),
            totp_secret: totp.then(|| Secret::new("seed".into())),
            recovery_codes: Vec::new(),
            app_passwords: vec![AppPassword {
                id: "abcd".into(),
                name: "phone".into(),
                hash: Secret::new("app".into()),
                service_hash: None,
                created: jiff::Timestamp::UNIX_EPOCH,
            }],
            mail_aliases: Vec::new(),
            files_quota_mib: None,
        }
    }

    #[test]
    fn the_account_password_only_without_a_second_factor_and_when_allowed() {
        let hash =
            |c: Option<(Candidate, Secret, String)>| c.map(|(_, hash, _)| hash.expose().to_owned());
        assert_eq!(
            hash(candidate(&user(false), "abcd-efgh-jkmn-pqrs", true)).as_deref(),
            Some("app")
        );
        assert_eq!(
            hash(candidate(&user(true), "abcd-efgh-jkmn-pqrs", false)).as_deref(),
            Some("app")
        );
        assert_eq!(
            hash(candidate(&user(false), "correct horse battery", true)).as_deref(),
            Some("account")
        );
        assert_eq!(
            hash(candidate(&user(true), "correct horse battery", true)),
            None,
            "second factor"
        );
        assert_eq!(
            hash(candidate(&user(false), "correct horse battery", false)),
            None,
            "turned off"
        );
        // An unknown id falls back to the account password's check (it will fail).
        assert_eq!(
            hash(candidate(&user(false), "zzzz-efgh-jkmn-pqrs", true)).as_deref(),
            Some("account")
        );
    }

    #[test]
    fn trust_ends_with_the_generation_and_the_time() {
        let mut trusted = Trusted::default();
        let now = Instant::now();
        trusted.insert("alice", "pw", 7, Some("phone".into()), now);
        assert_eq!(
            trusted.get("alice", "pw", 7, now),
            Some(Some("phone".into()))
        );
        assert_eq!(trusted.get("alice", "other", 7, now), None);
        assert_eq!(
            trusted.get("alice", "pw", 8, now),
            None,
            "the accounts may have changed"
        );
        assert_eq!(trusted.get("alice", "pw", 7, now + TRUSTED_FOR), None);
    }
}
