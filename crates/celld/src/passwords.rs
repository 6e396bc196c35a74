//! Password and code hashing: argon2id (OWASP parameters: 19 MiB, 2 passes) for passwords;
//! argon2id with a smaller cost for the one-time recovery codes (each salted, so a stolen
//! store cannot be matched against one table). [`HashGate`] bounds how many run at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use std::cell::RefCell;

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::Argon2;
use cell_model::users::Secret;
use rand::Rng;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
#[error("hashing a password: {0}")]
pub struct HashError(String);

thread_local! {
    /// argon2's working memory (19 MiB for a password), lent to the thread that hashes
    /// by [`HashGate`]: allocating and freeing it per hash fragments the allocator's heap
    /// until a burst of logins holds hundreds of MB.
    static ARGON2_MEMORY: RefCell<Vec<argon2::Block>> = const { RefCell::new(Vec::new()) };
}

/// The working memory's reserved size, in 1 KiB blocks: above glibc's largest dynamic
/// mmap threshold (32 MiB), so the allocator always maps it on its own and unmaps it
/// when it is dropped, instead of keeping it in a heap. Only the blocks a hash uses
/// (19 MiB for a password) are ever touched, so only those are resident.
const RESERVED_BLOCKS: usize = 33 * 1024;

fn argon2_into(
    context: &Argon2<'_>,
    secret: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    ARGON2_MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        let needed = context.params().block_count();
        if memory.len() < needed {
            if memory.capacity() < needed {
                *memory = Vec::with_capacity(needed.max(RESERVED_BLOCKS));
            }
            memory.resize(needed, argon2::Block::default());
        }
        context.hash_password_into_with_memory(secret, salt, out, &mut memory[..needed])
    })
}

/// An argon2id PHC string of `secret` under `context`, with a fresh salt.
fn hash_with(context: &Argon2<'_>, secret: &[u8]) -> Result<Secret, HashError> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError(e.to_string()))?;
    let mut out = [0u8; 32];
    argon2_into(context, secret, &salt_bytes, &mut out).map_err(|e| HashError(e.to_string()))?;
    let output = argon2::password_hash::Output::new(&out).map_err(|e| HashError(e.to_string()))?;
    let params = context.params();
    Ok(Secret::new(format!(
        "$argon2id$v=19$m={},t={},p={}${}${output}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str()
    )))
}

/// Whether `secret` matches the PHC string `stored`; anything malformed matches nothing.
fn matches_phc(secret: &[u8], stored: &str) -> Result<bool, String> {
    let parsed = PasswordHash::new(stored).map_err(|e| e.to_string())?;
    let algorithm = argon2::Algorithm::try_from(parsed.algorithm).map_err(|e| e.to_string())?;
    let version = match parsed.version {
        Some(version) => argon2::Version::try_from(version).map_err(|e| e.to_string())?,
        None => argon2::Version::default(),
    };
    let params = argon2::Params::try_from(&parsed).map_err(|e| e.to_string())?;
    let salt = parsed.salt.ok_or("no salt")?;
    let mut salt_buffer = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_buffer)
        .map_err(|e| e.to_string())?;
    let expected = parsed.hash.ok_or("no hash")?;
    let mut out = vec![0u8; expected.len()];
    argon2_into(
        &Argon2::new(algorithm, version, params),
        secret,
        salt,
        &mut out,
    )
    .map_err(|e| e.to_string())?;
    Ok(same(&out, expected.as_bytes()))
}

pub fn hash(password: &str) -> Result<Secret, HashError> {
    hash_with(&Argon2::default(), password.as_bytes())
}

/// Whether `password` matches `hash`. A malformed hash matches nothing.
pub fn verify(password: &str, hash: &Secret) -> bool {
    match matches_phc(password.as_bytes(), hash.expose()) {
        Ok(matches) => matches,
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
    hash_with(&code_hasher(), normalise_code(code).as_bytes())
}

/// Whether `code` matches a stored recovery code: an argon2id hash, or the unsalted
/// SHA-256 digest that cells made before.
pub fn code_matches(code: &str, stored: &Secret) -> bool {
    let normal = normalise_code(code);
    if !stored.expose().starts_with('$') {
        let digest = hex::encode(Sha256::digest(normal.as_bytes()));
        return same(digest.as_bytes(), stored.expose().as_bytes());
    }
    matches_phc(normal.as_bytes(), stored.expose()).unwrap_or(false)
}

/// Hashing costs memory (19 MiB per password hash) and a core: at most
/// [`HashGate::PERMITS`] run at once, on as many threads of their own, off the async
/// runtime. Others wait up to [`HashGate::WAIT`] for a turn and are then refused, so a
/// burst of logins can neither exhaust a small cell's memory nor stall its API. Own
/// threads rather than the runtime's blocking pool: the allocator keeps a freed hash's
/// memory for the thread that used it, so few threads bound what stays resident.
pub struct HashGate {
    permits: tokio::sync::Semaphore,
    wait: Duration,
    checks: AtomicU64,
    busy: AtomicU64,
    jobs: std::sync::mpsc::Sender<Job>,
    /// Working memory between hashes while a burst lasts; emptied (given back to the
    /// system) when the last request leaves the gate.
    memory: std::sync::Arc<std::sync::Mutex<Vec<Vec<argon2::Block>>>>,
    /// Requests waiting for a turn or hashing.
    inside: std::sync::atomic::AtomicUsize,
}

type Job = Box<dyn FnOnce() + Send>;

fn lock_memory(
    memory: &std::sync::Mutex<Vec<Vec<argon2::Block>>>,
) -> std::sync::MutexGuard<'_, Vec<Vec<argon2::Block>>> {
    memory
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl std::fmt::Debug for HashGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashGate")
            .field("checks", &self.checks)
            .field("busy", &self.busy)
            .finish_non_exhaustive()
    }
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
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for n in 0..Self::PERMITS {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("cell-hash-{n}"))
                .spawn(move || loop {
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => job(),
                        // The gate is gone.
                        Err(_) => return,
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a hashing thread");
            }
        }
        Self {
            permits: tokio::sync::Semaphore::new(Self::PERMITS),
            wait,
            checks: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            jobs,
            memory: Default::default(),
            inside: Default::default(),
        }
    }

    /// Runs `work` (which hashes or verifies) on a blocking thread once a turn is free.
    /// `verifications` says how many hashes it checks, for the counters.
    pub async fn run<T: Send + 'static>(
        &self,
        verifications: u64,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        self.inside.fetch_add(1, Ordering::SeqCst);
        let result = self.take_turn(verifications, work).await;
        if self.inside.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The burst is over: give the working memory back.
            lock_memory(&self.memory).clear();
        }
        result
    }

    async fn take_turn<T: Send + 'static>(
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
        let (reply, answer) = tokio::sync::oneshot::channel();
        let memory = self.memory.clone();
        let job: Job = Box::new(move || {
            let mut lent = lock_memory(&memory).pop().unwrap_or_default();
            ARGON2_MEMORY.with(|m| std::mem::swap(&mut *m.borrow_mut(), &mut lent));
            let result = work();
            ARGON2_MEMORY.with(|m| std::mem::swap(&mut *m.borrow_mut(), &mut lent));
            lock_memory(&memory).push(lent);
            let _ = reply.send(result);
        });
        if self.jobs.send(job).is_err() {
            tracing::error!("the hashing threads are gone");
            return Err(Busy);
        }
        let result = answer.await;
        drop(permit);
        result.map_err(|_| {
            tracing::error!("a hashing job ended without an answer");
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
        assert!(hash.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        // What the argon2 crate itself (and Dovecot, Radicale) would say of it.
        use argon2::password_hash::PasswordVerifier;
        let parsed = PasswordHash::new(hash.expose()).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        // And a hash the crate made verifies here.
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"another password", &salt)
            .unwrap()
            .to_string();
        assert!(verify("another password", &Secret::new(theirs.clone())));
        assert!(!verify("another passwore", &Secret::new(theirs)));
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
