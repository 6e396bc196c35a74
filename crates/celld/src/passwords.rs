//! Password and code hashing: argon2id (OWASP parameters: 19 MiB, 2 passes) for passwords,
//! SHA-256 for the high-entropy recovery codes.

use std::sync::OnceLock;

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

pub fn code_digest(code: &str) -> Secret {
    Secret::new(hex::encode(Sha256::digest(normalise_code(code).as_bytes())))
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
    fn codes_ignore_case_dashes_and_spaces() {
        assert_eq!(code_digest("AbCd-EfGh"), code_digest(" abcd efgh "));
        assert_ne!(code_digest("abcd-efgh"), code_digest("abcd-efgi"));
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
