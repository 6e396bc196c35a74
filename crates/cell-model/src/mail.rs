//! Mail settings beyond the accounts: the outbound relay (a smarthost) that a cell on a
//! residential connection sends through, since such connections mostly cannot send on
//! port 25. Its password is kept in celld's secret store, never in the settings.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::names::DomainName;
use crate::FieldError;

const MAX_USERNAME: usize = 256;
const MAX_PASSWORD: usize = 256;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// Outgoing mail goes through this server instead of straight to each recipient's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<MailRelay>,
}

impl MailSettings {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        match &self.relay {
            Some(relay) => relay.validate().map_err(|e| e.at("relay")),
            None => Ok(()),
        }
    }
}

/// A smarthost: the cell logs in to it and hands it every message for other domains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailRelay {
    /// Its host name (or address).
    pub host: String,
    /// 587 or 25 (STARTTLS), or 465 (TLS from the start).
    pub port: u16,
    pub username: String,
    /// Whether its certificate must be valid for `host` (a public CA's); off only for a
    /// relay on one's own network with a certificate of its own. TLS is used either way.
    #[serde(default = "yes")]
    pub verify_certificate: bool,
    /// When its password was last set: a new password is a change to apply.
    pub password_set: jiff::Timestamp,
}

fn yes() -> bool {
    true
}

/// The port on which TLS starts at once instead of after STARTTLS.
pub const IMPLICIT_TLS_PORT: u16 = 465;

impl MailRelay {
    pub fn validate(&self) -> Result<(), FieldError> {
        relay_host_problem(&self.host).map_or(Ok(()), |p| Err(FieldError::new("host", p)))?;
        if self.port == 0 {
            return Err(FieldError::new(
                "port",
                "a port from 1 to 65535: usually 587 (or 465)",
            ));
        }
        relay_username_problem(&self.username)
            .map_or(Ok(()), |p| Err(FieldError::new("username", p)))?;
        if self.verify_certificate && self.host.parse::<IpAddr>().is_ok() {
            return Err(FieldError::new(
                "verify_certificate",
                "a certificate names a host, not an address: give the relay's name, or turn the check off",
            ));
        }
        Ok(())
    }
}

fn relay_host_problem(host: &str) -> Option<String> {
    if let Ok(address) = host.parse::<IpAddr>() {
        return (address.is_unspecified() || address.is_multicast() || address.is_loopback())
            .then(|| format!("{host} cannot be a relay's address"));
    }
    DomainName::parse(host)
        .err()
        .map(|problem| format!("'{host}' is neither an address nor a host name: {problem}"))
}

fn relay_username_problem(username: &str) -> Option<String> {
    if username.is_empty() || username.chars().count() > MAX_USERNAME {
        return Some(format!(
            "the login the relay gave you, 1 to {MAX_USERNAME} characters"
        ));
    }
    if username
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == ':')
    {
        return Some("no spaces, colons or control characters".into());
    }
    None
}

/// Why a relay password cannot be used, if it cannot: Postfix reads it from a line of its
/// own, after the username and a colon.
pub fn relay_password_problem(password: &str) -> Option<String> {
    if password.is_empty() || password.chars().count() > MAX_PASSWORD {
        return Some(format!("1 to {MAX_PASSWORD} characters"));
    }
    if password.chars().any(char::is_control) {
        return Some("no control characters".into());
    }
    if password.trim() != password {
        return Some("no spaces at its start or end".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(host: &str, port: u16, username: &str) -> MailRelay {
        MailRelay {
            host: host.into(),
            port,
            username: username.into(),
            verify_certificate: true,
            password_set: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_relay_is_checked_field_by_field() {
        assert!(relay("smtp.example.net", 587, "me@example.net")
            .validate()
            .is_ok());
        assert!(MailRelay {
            verify_certificate: false,
            ..relay("192.0.2.25", 465, "me")
        }
        .validate()
        .is_ok());
        assert_eq!(
            relay("192.0.2.25", 465, "me").validate().unwrap_err().field,
            "verify_certificate",
            "an address cannot be checked against a certificate"
        );
        for (bad, field) in [
            (relay("smtp", 587, "me"), "host"),
            (relay("127.0.0.1", 587, "me"), "host"),
            (relay("smtp.example.net", 0, "me"), "port"),
            (relay("smtp.example.net", 587, ""), "username"),
            (relay("smtp.example.net", 587, "me:you"), "username"),
            (relay("smtp.example.net", 587, "me you"), "username"),
        ] {
            assert_eq!(bad.validate().unwrap_err().field, field, "{bad:?}");
        }
        let settings = MailSettings {
            relay: Some(relay("smtp", 587, "me")),
        };
        assert_eq!(settings.validate().unwrap_err().field, "relay.host");
    }

    #[test]
    fn relay_passwords_fit_on_postfixs_line() {
        assert_eq!(relay_password_problem("s3cret: with colon"), None);
        for bad in ["", " lead", "trail ", "new\nline", &"x".repeat(257)] {
            assert!(relay_password_problem(bad).is_some(), "{bad:?}");
        }
    }
}
