//! The outbound relay's password: kept in the encrypted secret store, never in the
//! settings, the audit log or an answer; read when the mail machine's files are rendered.
//! It is stored stamped with the `password_set` of the relay setting it belongs to, before
//! that setting is committed: a pass that still sees the setting before (another host,
//! perhaps) finds the stamp different and holds outgoing mail rather than offer the new
//! password there.

use cell_model::mail::MailRelay;
use cell_secrets::{SecretError, SecretStore};

const SECRET: &str = "mail-relay-password";
/// Marks a stamped secret; one without (stored by an older version) is the bare password.
const STAMPED: &str = "stamped\n";

/// The password stored for `relay`'s setting, if there is one.
pub fn password(secrets: &SecretStore, relay: &MailRelay) -> Result<Option<String>, SecretError> {
    let Some(bytes) = secrets.get(SECRET)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(bytes.expose()).into_owned();
    let Some(stamped) = text.strip_prefix(STAMPED) else {
        return Ok(Some(text));
    };
    Ok(stamped
        .split_once('\n')
        .filter(|(stamp, _)| *stamp == relay.password_set.to_string())
        .map(|(_, password)| password.to_owned()))
}

/// Stores `password` for the relay setting whose `password_set` is `stamp`.
pub fn set_password(
    secrets: &SecretStore,
    stamp: jiff::Timestamp,
    password: &str,
) -> Result<(), SecretError> {
    secrets.put(SECRET, format!("{STAMPED}{stamp}\n{password}").as_bytes())
}

pub fn forget_password(secrets: &SecretStore) -> Result<(), SecretError> {
    secrets.remove(SECRET)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(host: &str, password_set: jiff::Timestamp) -> MailRelay {
        MailRelay {
            host: host.into(),
            port: 587,
            username: "cell".into(),
            verify_certificate: true,
            password_set,
        }
    }

    #[test]
    fn a_password_serves_only_the_setting_it_was_stored_for() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = SecretStore::open(dir.path()).unwrap();
        let old = relay("old.example.net", jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(password(&secrets, &old).unwrap(), None);
        let new = relay("new.example.net", jiff::Timestamp::now());
        set_password(&secrets, new.password_set, "new secret\nwith a line").unwrap();
        assert_eq!(
            password(&secrets, &old).unwrap(),
            None,
            "not offered to the host before"
        );
        assert_eq!(
            password(&secrets, &new).unwrap().as_deref(),
            Some("new secret\nwith a line")
        );
        secrets.put(SECRET, b"bare password").unwrap();
        assert_eq!(
            password(&secrets, &old).unwrap().as_deref(),
            Some("bare password"),
            "stored by an older version"
        );
    }
}
