//! What the mail machine's login policy needs from the cell: the nonce Dovecot salts its
//! password digests with, made once and kept in the secret store, and who may ask.

use cell_secrets::{SecretError, SecretStore};

use crate::reconcile::mail::MAIL_UID_BASE;

const NONCE: &str = "mail-login-nonce";

/// The nonce (64 hex digits), made on first use.
pub fn nonce(secrets: &SecretStore) -> Result<String, SecretError> {
    if let Some(bytes) = secrets.get(NONCE)? {
        let text = String::from_utf8_lossy(bytes.expose()).into_owned();
        if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(text);
        }
        tracing::warn!("the mail login nonce was malformed; making a new one");
    }
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    let text = hex::encode(raw);
    secrets.put(NONCE, text.as_bytes())?;
    Ok(text)
}

/// What the mail machine's account file calls the account password whose hash is `hash`
/// (its SHA-256, 12 hex digits): the login policy refuses one that no longer matches.
pub fn account_tag(hash: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(hash.as_bytes())[..6])
}

/// Whether a process with this uid (as the cell sees it) is in the mail machine: its
/// user namespace maps 65536 ids from [`MAIL_UID_BASE`]. The socket's directory lets in
/// only the machine's `dovecot`.
pub fn in_mail_machine(uid: u32) -> bool {
    (MAIL_UID_BASE..MAIL_UID_BASE + 0x1_0000).contains(&uid)
}

/// The account a login names: Dovecot reports it as typed or as its passdb looked it up
/// (`alice`, `Alice@example.org`, `alice/2`).
pub fn account_of(login: &str) -> String {
    let login = login.trim();
    let end = login.find(['@', '/']).unwrap_or(login.len());
    login[..end].to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nonce_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = SecretStore::open(dir.path()).unwrap();
        let first = nonce(&secrets).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(nonce(&secrets).unwrap(), first);
    }

    #[test]
    fn a_login_names_its_account() {
        assert_eq!(account_of(" Alice@Example.org "), "alice");
        assert_eq!(account_of("alice/3"), "alice");
        assert_eq!(account_of("bob"), "bob");
        assert!(in_mail_machine(MAIL_UID_BASE + 104));
        assert!(!in_mail_machine(MAIL_UID_BASE + 0x1_0000));
        assert!(!in_mail_machine(0));
    }
}
