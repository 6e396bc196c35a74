//! The cell's own certificate authority: a root made on the device (ECDSA P-256), limited
//! by name constraints to the cell's zones and the private address ranges, and the leaf
//! certificates it signs for the cell's names and addresses. Pure computation over PEM
//! text: where the root's key is kept (encrypted, in celld) is the caller's business.

mod authority;
mod constraints;
mod leaf;

use sha2::{Digest, Sha256};

pub use authority::Authority;
pub use constraints::{Constraints, PRIVATE_RANGES};
pub use leaf::{Leaf, LeafRequest, LEAF_LIFETIME_DAYS};

/// What went wrong making or reading a certificate.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("making {what}: {source}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("reading {what}: {reason}")]
    Parse { what: &'static str, reason: String },
    #[error("the root may not sign {name}: it is outside its name constraints")]
    OutsideConstraints { name: String },
    #[error("a certificate needs at least one name or address")]
    Empty,
}

/// The SHA-256 fingerprint of a certificate (DER), as browsers and `openssl x509
/// -fingerprint -sha256` show it: upper-case hex pairs joined by colons.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The DER bytes of each `CERTIFICATE` block in `pem`, in order.
pub fn certificates_der(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| PkiError::Parse {
            what: "PEM",
            reason: e.to_string(),
        })?;
        if block.label == "CERTIFICATE" {
            out.push(block.contents);
        }
    }
    Ok(out)
}

/// Seconds since the Unix epoch as the time crate's date, for rcgen.
fn at(unix: i64) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|e| PkiError::Parse {
        what: "a time",
        reason: e.to_string(),
    })
}

fn random_serial() -> rcgen::SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and without a leading zero byte, as DER integers want.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    rcgen::SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_is_openssl_style() {
        let print = super::fingerprint(b"abc");
        assert_eq!(print.len(), 32 * 3 - 1);
        assert!(print.starts_with("BA:78:16:BF:"), "{print}");
    }
}
