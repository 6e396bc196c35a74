//! The cell's secrets at rest: each one an age-encrypted file in one directory, readable
//! only by root, encrypted to the cell's own X25519 identity.
//!
//! The identity lives beside the secrets today (`identity`, mode 0600), so encryption
//! protects copies of the secret files (backups, a pulled disk's `secrets/` directory),
//! not a full disk image; on hardware with a TPM the identity is meant to move into a
//! systemd credential sealed to it, without changing this interface.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

const IDENTITY_FILE: &str = "identity";
const SECRET_SUFFIX: &str = ".age";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Write(#[from] cell_store::StoreError),
    #[error("{path} is not an age identity")]
    BadIdentity { path: PathBuf },
    #[error(
        "'{name}' is not a valid secret name (letters, digits, '-', '_', not starting with '.')"
    )]
    BadName { name: String },
    #[error("encrypting secret '{name}': {message}")]
    Encrypt { name: String, message: String },
    #[error("decrypting secret '{name}': {message}")]
    Decrypt { name: String, message: String },
}

fn io_error<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(io::Error) -> SecretError + 'p {
    move |source| SecretError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Secret bytes: wiped from memory when dropped, never printed.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

pub struct SecretStore {
    dir: PathBuf,
    identity: age::x25519::Identity,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> Result<(), SecretError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(SecretError::BadName { name: name.into() })
    }
}

impl SecretStore {
    /// Opens the store in `dir`, creating the directory (0700) and the identity on first use.
    pub fn open(dir: &Path) -> Result<Self, SecretError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error("creating", dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_error("restricting", dir))?;
        let path = dir.join(IDENTITY_FILE);
        let identity = match fs::read_to_string(&path) {
            Ok(text) => age::x25519::Identity::from_str(text.trim())
                .map_err(|_| SecretError::BadIdentity { path: path.clone() })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let identity = age::x25519::Identity::generate();
                let text = Zeroizing::new(format!("{}\n", identity.to_string().expose_secret()));
                cell_store::atomic::write(&path, text.as_bytes(), 0o600)?;
                identity
            }
            Err(e) => return Err(io_error("reading", &path)(e)),
        };
        Ok(Self {
            dir: dir.to_owned(),
            identity,
        })
    }

    fn path(&self, name: &str) -> Result<PathBuf, SecretError> {
        check_name(name)?;
        Ok(self.dir.join(format!("{name}{SECRET_SUFFIX}")))
    }

    /// Stores `value` under `name`, replacing any earlier value atomically.
    pub fn put(&self, name: &str, value: &[u8]) -> Result<(), SecretError> {
        let path = self.path(name)?;
        let ciphertext =
            age::encrypt(&self.identity.to_public(), value).map_err(|e| SecretError::Encrypt {
                name: name.into(),
                message: e.to_string(),
            })?;
        cell_store::atomic::write(&path, &ciphertext, 0o600)?;
        Ok(())
    }

    /// The value stored under `name`, or `None` when there is none.
    pub fn get(&self, name: &str) -> Result<Option<SecretBytes>, SecretError> {
        let path = self.path(name)?;
        let ciphertext = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("reading", &path)(e)),
        };
        let plaintext =
            age::decrypt(&self.identity, &ciphertext).map_err(|e| SecretError::Decrypt {
                name: name.into(),
                message: e.to_string(),
            })?;
        Ok(Some(SecretBytes(Zeroizing::new(plaintext))))
    }

    /// Forgets `name`; forgetting an absent secret is not an error.
    pub fn remove(&self, name: &str) -> Result<(), SecretError> {
        let path = self.path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(cell_store::atomic::sync_dir(&self.dir)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("removing", &path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_are_not_stored_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::open(dir.path()).unwrap();
        store.put("wg-server", b"very secret key material").unwrap();
        let on_disk = fs::read(dir.path().join("wg-server.age")).unwrap();
        assert!(!on_disk
            .windows(b"very secret".len())
            .any(|w| w == b"very secret"));
        let mode = fs::metadata(dir.path().join("wg-server.age"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            store.get("wg-server").unwrap().unwrap().expose(),
            b"very secret key material"
        );
        assert_eq!(
            format!("{:?}", store.get("wg-server").unwrap().unwrap()),
            "SecretBytes(<redacted>)"
        );
    }

    #[test]
    fn a_reopened_store_reads_what_it_wrote_and_another_cannot() {
        let dir = tempfile::tempdir().unwrap();
        SecretStore::open(dir.path())
            .unwrap()
            .put("a", b"1")
            .unwrap();
        let reopened = SecretStore::open(dir.path()).unwrap();
        assert_eq!(reopened.get("a").unwrap().unwrap().expose(), b"1");

        let other = tempfile::tempdir().unwrap();
        fs::copy(dir.path().join("a.age"), other.path().join("a.age")).unwrap();
        let stranger = SecretStore::open(other.path()).unwrap();
        assert!(matches!(
            stranger.get("a"),
            Err(SecretError::Decrypt { .. })
        ));
    }

    #[test]
    fn absent_and_removed_secrets_read_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::open(dir.path()).unwrap();
        assert!(store.get("missing").unwrap().is_none());
        store.put("gone", b"x").unwrap();
        store.remove("gone").unwrap();
        store.remove("gone").unwrap();
        assert!(store.get("gone").unwrap().is_none());
    }

    #[test]
    fn names_cannot_escape_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::open(dir.path()).unwrap();
        for bad in ["../x", ".hidden", "", "a/b", "identity.age\0"] {
            assert!(
                matches!(store.put(bad, b"x"), Err(SecretError::BadName { .. })),
                "{bad:?}"
            );
        }
    }
}
