//! The optional second factor: RFC 6238 TOTP (SHA-1, 6 digits, 30 s steps — what every
//! authenticator app speaks) and one-time recovery codes.

use totp_rs::{Algorithm, Secret, TOTP};

const ISSUER: &str = "Personal Internet Cell";
pub const RECOVERY_CODES: usize = 10;

#[derive(Debug, thiserror::Error)]
#[error("TOTP: {0}")]
pub struct TotpError(String);

fn totp(secret_base32: &str, account: &str) -> Result<TOTP, TotpError> {
    let bytes = Secret::Encoded(secret_base32.to_owned())
        .to_bytes()
        .map_err(|e| TotpError(format!("{e:?}")))?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some(ISSUER.to_owned()),
        account.to_owned(),
    )
    .map_err(|e| TotpError(e.to_string()))
}

/// A fresh 160-bit seed, base32, and its `otpauth://` URL.
pub fn generate(account: &str) -> Result<(String, String), TotpError> {
    let seed: [u8; 20] = rand::Rng::random(&mut rand::rng());
    let secret = Secret::Raw(seed.to_vec()).to_encoded().to_string();
    let url = totp(&secret, account)?.get_url();
    Ok((secret, url))
}

const STEP_SECONDS: u64 = 30;

/// The time step `code` belongs to when it is valid now (one step of clock skew either way
/// is forgiven). A caller that remembers the last step it accepted per account refuses
/// the same code, or an older one, a second time.
pub fn matching_step(secret_base32: &str, account: &str, code: &str) -> Option<u64> {
    let code: String = code.chars().filter(char::is_ascii_digit).collect();
    if code.len() != 6 {
        return None;
    }
    let totp = totp(secret_base32, account).ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let step = now / STEP_SECONDS;
    [step.saturating_sub(1), step, step + 1]
        .into_iter()
        .find(|candidate| {
            let expected = totp.generate(candidate * STEP_SECONDS);
            crate::passwords::same(expected.as_bytes(), code.as_bytes())
        })
}

/// The code an authenticator app shows at `unix_seconds`; tests use it to play a phone
/// whose clock runs a step ahead.
pub fn code_at(secret_base32: &str, account: &str, unix_seconds: u64) -> Result<String, TotpError> {
    Ok(totp(secret_base32, account)?.generate(unix_seconds))
}

/// The code an authenticator app shows now; tests use it to play the user's phone.
pub fn current_code(secret_base32: &str, account: &str) -> Result<String, TotpError> {
    totp(secret_base32, account)?
        .generate_current()
        .map_err(|e| TotpError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_seed_checks_its_own_codes() {
        let (secret, url) = generate("alice").unwrap();
        assert!(url.starts_with("otpauth://totp/"), "{url}");
        let code = current_code(&secret, "alice").unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / STEP_SECONDS;
        let step = matching_step(&secret, "alice", &code).unwrap();
        assert!(step.abs_diff(now) <= 1);
        let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
        assert_eq!(matching_step(&secret, "alice", &wrong), None);
        assert_eq!(matching_step(&secret, "alice", ""), None);
    }

    #[test]
    fn rfc_6238_reference_vector() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890" at T = 59 s → 94287082
        // (8 digits); its last six digits are what a 6-digit generator shows.
        let seed = b"12345678901234567890".to_vec();
        let totp = TOTP::new_unchecked(Algorithm::SHA1, 8, 1, 30, seed, None, String::new());
        assert_eq!(totp.generate(59), "94287082");
    }
}
