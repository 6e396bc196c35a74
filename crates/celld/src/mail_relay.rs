//! The outbound relay's password: kept in the encrypted secret store, never in the
//! settings, the audit log or an answer; read when the mail machine's files are rendered.

use cell_secrets::{SecretError, SecretStore};

const SECRET: &str = "mail-relay-password";

/// The relay's password, if one was set.
pub fn password(secrets: &SecretStore) -> Result<Option<String>, SecretError> {
    Ok(secrets
        .get(SECRET)?
        .map(|bytes| String::from_utf8_lossy(bytes.expose()).into_owned()))
}

pub fn set_password(secrets: &SecretStore, password: &str) -> Result<(), SecretError> {
    secrets.put(SECRET, password.as_bytes())
}

pub fn forget_password(secrets: &SecretStore) -> Result<(), SecretError> {
    secrets.remove(SECRET)
}
