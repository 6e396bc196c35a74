//! Accounts: one identity per person across every service of the cell.

use std::fmt;

use serde::{Deserialize, Serialize};

const MAX_USERNAME: usize = 32;
/// Long enough to resist guessing at the login throttle's pace; no composition rules.
pub const MIN_PASSWORD: usize = 10;
const MAX_PASSWORD: usize = 1024;

/// A login name: 1–32 characters, lower-case letters, digits, `.`, `_`, `-`, starting
/// with a letter. It doubles as the mailbox and the calendar/files owner name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > MAX_USERNAME {
            return Err(format!("must be 1 to {MAX_USERNAME} characters long"));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(format!("'{s}' must start with a lower-case letter"));
        }
        if let Some(bad) = s.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        }) {
            return Err(format!(
                "'{s}' contains '{bad}'; only lower-case letters, digits, '.', '_' and '-' are allowed"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Names a new account may not take: system accounts of the machine and its services,
/// the actors the audit log uses for itself, and the mail roles every domain keeps.
pub const RESERVED_USERNAMES: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "nobody",
    "system",
    "cell",
    "celld",
    "cell-web",
    "cell-recovery",
    "recovery-console",
    "setup",
    "dovecot",
    "postfix",
    "radicale",
    "www-data",
    "postmaster",
    "hostmaster",
    "webmaster",
    "abuse",
    "mailer-daemon",
    "noreply",
    "no-reply",
    "security",
];

/// The name of an account being created: a [`Username`] that is not reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NewUsername(Username);

impl NewUsername {
    pub fn parse(s: &str) -> Result<Self, String> {
        let name = Username::parse(s)?;
        if RESERVED_USERNAMES.contains(&s) {
            return Err(format!(
                "'{s}' is reserved for the system; choose another name"
            ));
        }
        Ok(Self(name))
    }

    pub fn username(&self) -> &Username {
        &self.0
    }

    pub fn into_username(self) -> Username {
        self.0
    }
}

impl TryFrom<String> for NewUsername {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<NewUsername> for String {
    fn from(value: NewUsername) -> String {
        value.0 .0
    }
}

impl fmt::Display for NewUsername {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Username {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> String {
        value.0
    }
}

/// A password as typed by a person: never logged, never stored (only its hash is).
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

impl Password {
    pub fn parse(s: &str) -> Result<Self, String> {
        let chars = s.chars().count();
        if chars < MIN_PASSWORD {
            return Err(format!("must be at least {MIN_PASSWORD} characters long"));
        }
        if s.len() > MAX_PASSWORD {
            return Err(format!("must be at most {MAX_PASSWORD} bytes long"));
        }
        Ok(Self(s.to_owned()))
    }

    /// A password offered at login: any length is checked against the hash, so a short
    /// one fails like a wrong one instead of telling what the rules are.
    pub fn offered(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Password {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages the cell.
    Admin,
    /// Uses the cell's services; sees only their own devices and data.
    Peer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Peer => "peer",
        }
    }
}

/// A secret the store keeps but no API ever returns: a PHC password hash, a TOTP seed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An account as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: Username,
    pub role: Role,
    #[serde(default)]
    pub disabled: bool,
    /// argon2id, PHC string format.
    pub password_hash: Secret,
    /// Base32 TOTP seed once the second factor is confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_secret: Option<Secret>,
    /// Salted slow hashes (argon2id PHC strings) of the unused one-time recovery codes;
    /// cells from before keep unsalted SHA-256 digests until the codes are renewed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery_codes: Vec<Secret>,
    /// Passwords for the services (mail, calendar, files), one per device, each revocable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_passwords: Vec<AppPassword>,
    /// More local parts of the cell's mail domain delivered to this user (`info` for
    /// info@domain); in a username's form, unique among users and aliases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mail_aliases: Vec<Username>,
    /// How much the user's files home may hold (MiB); none: [`DEFAULT_FILES_QUOTA_MIB`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_quota_mib: Option<u32>,
}

/// A files home's quota when the user has none of their own: 10 GiB.
pub const DEFAULT_FILES_QUOTA_MIB: u32 = 10 * 1024;
/// The largest quota an administrator may give: 16 TiB.
pub const MAX_FILES_QUOTA_MIB: u32 = 16 * 1024 * 1024;

impl User {
    /// The quota of the user's files home, in MiB.
    pub fn files_quota_mib(&self) -> u32 {
        self.files_quota_mib.unwrap_or(DEFAULT_FILES_QUOTA_MIB)
    }
}

/// A password the cell generated for one device's service logins: shown once, kept only
/// as a hash. Its first group is its id (not secret), so a login checks one hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppPassword {
    pub id: String,
    /// What the person called it: the device it is for.
    pub name: String,
    /// argon2id, PHC string format, of the secret groups.
    pub hash: Secret,
    /// argon2id, PHC string format, of the whole password as a mail client sends it: what
    /// the mail machine's Dovecot checks (it cannot split off the id). Passwords made
    /// before the mail machine existed have none and work for the web services only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_hash: Option<Secret>,
    pub created: jiff::Timestamp,
}

/// The services a service login (an app password) may be for.
pub const LOGIN_SERVICES: &[&str] = &["mail", "calendar", "files", "webdav"];

const MAX_APP_PASSWORD_NAME: usize = 40;
/// At most this many per account.
pub const MAX_APP_PASSWORDS: usize = 50;

/// An app password's name: 1–40 characters, no control characters.
pub fn app_password_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_APP_PASSWORD_NAME {
        return Err(format!(
            "a name of 1 to {MAX_APP_PASSWORD_NAME} characters, e.g. the device's: \"Anna's phone\""
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("no control characters".into());
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_case_words() {
        for good in ["alice", "bob.smith", "c3po", "x_y-z"] {
            assert!(Username::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "Alice", "1alice", "al ice", "al@ice", &"a".repeat(33)] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_accounts_may_not_take_reserved_names() {
        assert!(NewUsername::parse("alice").is_ok());
        let refused = NewUsername::parse("root").unwrap_err();
        assert!(refused.contains("reserved"), "{refused}");
        assert!(NewUsername::parse("postmaster").is_err());
        assert!(serde_json::from_str::<NewUsername>("\"root\"").is_err());
        // Existing accounts still parse: the rule is for new names only.
        assert!(Username::parse("root").is_ok());
    }

    #[test]
    fn app_passwords_are_named_for_their_device() {
        assert_eq!(
            app_password_name("  Anna's phone "),
            Ok("Anna's phone".to_owned())
        );
        assert!(app_password_name("").is_err());
        assert!(app_password_name("a\tb").is_err());
        assert!(app_password_name(&"x".repeat(41)).is_err());
    }

    #[test]
    fn passwords_need_ten_characters_and_never_show() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("ünïcödé-ok").is_ok());
        let password = Password::parse("correct horse battery").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
        let secret = Secret::new("$argon2id$v=19$...".into());
        assert!(!format!("{secret:?}").contains("argon2"));
    }
}
