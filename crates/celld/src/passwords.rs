//! Password and code hashing: argon2id (OWASP parameters: 19 MiB, 2 passes) for passwords;
//! argon2id with a smaller cost for the one-time recovery codes (each salted, so a stolen
//! store cannot be matched against one table). [`HashGate`] bounds how many run at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use cell_model::users::Secret;
use rand::Rng;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
#[error("hashing a password: {0}")]
pub struct HashError(String);

pub fn hash(password: &str) -> Result<Secret, HashError> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError(e.to_string()))?;
    let phc = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| HashError(e.to_string()))?;
    Ok(Secret::new(phc.to_string()))
}

/// Whether `password` matches `hash`. A malformed hash matches nothing.
pub fn verify(password: &str, hash: &Secret) -> bool {
    match PasswordHash::new(hash.expose()) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(error) => {
            tracing::error!(%error, "a stored password hash is malformed");
            false
        }
    }
}

/// Spends the time of a real verification, so that an unknown username answers as slowly
/// as a wrong password.
pub fn verify_nothing(password: &str) {
    static DUMMY: OnceLock<Option<Secret>> = OnceLock::new();
    if let Some(dummy) = DUMMY.get_or_init(|| hash("no user has this password").ok()) {
        let _ = verify(password, dummy);
    }
}

/// Recovery codes carry ~60 bits of their own, and up to ten are checked per login: a
/// cheaper argon2id than passwords' (4 MiB, 3 passes), still salted and slow.
fn code_hasher() -> Argon2<'static> {
    match argon2::Params::new(4096, 3, 1, None) {
        Ok(params) => Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params),
        Err(_) => Argon2::default(),
    }
}

/// A salted argon2id hash of a recovery code (as typed: case, dashes and spaces ignored).
pub fn code_hash(code: &str) -> Result<Secret, HashError> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError(e.to_string()))?;
    let phc = code_hasher()
        .hash_password(normalise_code(code).as_bytes(), &salt)
        .map_err(|e| HashError(e.to_string()))?;
    Ok(Secret::new(phc.to_string()))
}

/// Whether `code` matches a stored recovery code: an argon2id hash, or the unsalted
/// SHA-256 digest that cells made before.
pub fn code_matches(code: &str, stored: &Secret) -> bool {
    let normal = normalise_code(code);
    if !stored.expose().starts_with('$') {
        let digest = hex::encode(Sha256::digest(normal.as_bytes()));
        return same(digest.as_bytes(), stored.expose().as_bytes());
    }
    match PasswordHash::new(stored.expose()) {
        Ok(parsed) => Argon2::default()
            .verify_password(normal.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Hashing costs memory (19 MiB per password hash) and a core: at most
/// [`HashGate::PERMITS`] run at once, off the async runtime. Others wait up to
/// [`HashGate::WAIT`] for a turn and are then refused, so a burst of logins can neither
/// exhaust a small cell's memory nor stall its API.
#[derive(Debug)]
pub struct HashGate {
    permits: tokio::sync::Semaphore,
    wait: Duration,
    checks: AtomicU64,
    busy: AtomicU64,
}

/// No turn came within the gate's wait.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the cell is busy checking other passwords")]
pub struct Busy;

impl Default for HashGate {
    fn default() -> Self {
        Self::new(Self::WAIT)
    }
}

impl HashGate {
    pub const PERMITS: usize = 2;
    pub const WAIT: Duration = Duration::from_secs(3);

    pub fn new(wait: Duration) -> Self {
        Self {
            permits: tokio::sync::Semaphore::new(Self::PERMITS),
            wait,
            checks: AtomicU64::new(0),
            busy: AtomicU64::new(0),
        }
    }

    /// Runs `work` (which hashes or verifies) on a blocking thread once a turn is free.
    /// `verifications` says how many hashes it checks, for the counters.
    pub async fn run<T: Send + 'static>(
        &self,
        verifications: u64,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = match tokio::time::timeout(self.wait, self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => {
                self.busy.fetch_add(1, Ordering::Relaxed);
                return Err(Busy);
            }
        };
        self.checks.fetch_add(verifications, Ordering::Relaxed);
        let result = tokio::task::spawn_blocking(work).await;
        drop(permit);
        result.map_err(|error| {
            tracing::error!(%error, "a hashing worker failed");
            Busy
        })
    }

    /// Hashes verified since start.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Requests refused for want of a turn since start.
    pub fn busy(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }
}

/// Codes are shown grouped (`abcd-efgh`); people type them with or without the dash, in
/// either case, with stray spaces.
pub fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Constant-time comparison of two byte strings of possibly different length.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A random code of `groups` groups of four characters from an alphabet without look-alikes
/// (no 0/O, 1/I/L), e.g. `7KQM-X3FD`.
pub fn random_code(groups: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let groups: Vec<String> = (0..groups)
        .map(|_| {
            (0..4)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect()
        })
        .collect();
    groups.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash("correct horse battery").unwrap();
        assert!(hash.expose().starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &hash));
        assert!(!verify("correct horse batterz", &hash));
        assert!(!verify("anything", &Secret::new("not a hash".into())));
    }

    #[test]
    fn codes_are_salted_and_ignore_case_dashes_and_spaces() {
        let one = code_hash("AbCd-EfGh-JkMn").unwrap();
        let two = code_hash("AbCd-EfGh-JkMn").unwrap();
        assert_ne!(one, two, "salted");
        assert!(one.expose().starts_with("$argon2id$"));
        assert!(code_matches(" abcd efgh jkmn ", &one));
        assert!(!code_matches("abcd-efgh-jkmp", &one));
        let legacy = Secret::new(hex::encode(Sha256::digest(b"abcdefgh")));
        assert!(
            code_matches("ABCD-EFGH", &legacy),
            "older cells' digests still work"
        );
    }

    #[tokio::test]
    async fn the_gate_runs_two_at_a_time_and_refuses_after_its_wait() {
        let gate = std::sync::Arc::new(HashGate::new(Duration::from_millis(100)));
        let mut runs = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let gate = gate.clone();
            runs.spawn(async move {
                gate.run(1, || std::thread::sleep(Duration::from_millis(400)))
                    .await
            });
        }
        let results = runs.join_all().await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
        assert_eq!(gate.busy(), 2);
        assert_eq!(gate.checks(), 2);
    }

    #[test]
    fn random_codes_have_the_announced_shape() {
        let code = random_code(2);
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert!(code
            .chars()
            .all(|c| c == '-' || "ABCDEFGHJKMNPQRSTUVWXYZ23456789".contains(c)));
        assert_ne!(random_code(2), random_code(2));
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
