//! The cell's DKIM key and the mail records of its zone. The key is made on the device
//! the first time mail is on (RSA 2048: what every receiver verifies), kept encrypted in
//! the secret store, signed with by the mail machine's OpenDKIM, and published by
//! cell-dns with the MX, SPF and DMARC records while mail is on.

use std::sync::{Arc, Mutex};

use cell_model::dns::{DnsRecord, RecordData};
use cell_model::Settings;
use cell_secrets::SecretStore;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::RsaPrivateKey;
use zeroize::Zeroizing;

use crate::sync::lock;

/// The selector: the key is published at `cell._domainkey.<zone>`.
pub const SELECTOR: &str = "cell";
const SECRET: &str = "dkim-key";
const BITS: usize = 2048;
/// Mail records change rarely; an hour is what receivers may keep them.
const MAIL_TTL: u32 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("the DKIM key in the secret store: {0}")]
    Secrets(#[from] cell_secrets::SecretError),
    #[error("the DKIM key: {0}")]
    Key(String),
}

/// The private key (PKCS#1 PEM, for OpenDKIM) and the public key as DKIM's `p=` wants
/// it (base64 of the SubjectPublicKeyInfo).
pub struct DkimKey {
    pub private_pem: Zeroizing<String>,
    pub public_base64: String,
}

/// Holds the key once made or loaded; both the zone and the mail machine ask for it.
pub struct Dkim {
    secrets: SecretStore,
    key: Mutex<Option<Arc<DkimKey>>>,
}

impl Dkim {
    pub fn new(secrets: SecretStore) -> Self {
        Self {
            secrets,
            key: Mutex::new(None),
        }
    }

    /// The key, made and stored on first use. Blocking (a new key takes a moment).
    pub fn ensure(&self) -> Result<Arc<DkimKey>, DkimError> {
        let mut held = lock(&self.key);
        if let Some(key) = held.as_ref() {
            return Ok(key.clone());
        }
        let private = match self.secrets.get(SECRET)? {
            Some(pem) => {
                let pem =
                    std::str::from_utf8(pem.expose()).map_err(|e| DkimError::Key(e.to_string()))?;
                RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| DkimError::Key(e.to_string()))?
            }
            None => {
                let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, BITS)
                    .map_err(|e| DkimError::Key(e.to_string()))?;
                let pem = key
                    .to_pkcs1_pem(LineEnding::LF)
                    .map_err(|e| DkimError::Key(e.to_string()))?;
                self.secrets.put(SECRET, pem.as_bytes())?;
                tracing::info!(selector = SELECTOR, bits = BITS, "made the cell's DKIM key");
                key
            }
        };
        let key = Arc::new(pair(&private)?);
        *held = Some(key.clone());
        Ok(key)
    }
}

fn pair(private: &RsaPrivateKey) -> Result<DkimKey, DkimError> {
    let private_pem = private
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| DkimError::Key(e.to_string()))?;
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| DkimError::Key(e.to_string()))?;
    let public_base64 = public_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    Ok(DkimKey {
        private_pem: Zeroizing::new(private_pem.to_string()),
        public_base64,
    })
}

/// The zone's mail records while mail is on: MX to the mail machine's name, SPF (only
/// the MX sends), DMARC (quarantine what fails), and the DKIM key. A record of the same
/// name and type that an administrator added wins.
pub fn mail_records(settings: &Settings, key: &DkimKey) -> Vec<DnsRecord> {
    if !settings.services.mail {
        return Vec::new();
    }
    let zone = settings.zone();
    let txt = |text: String| RecordData::Txt { text };
    let ours = [
        (
            "@",
            RecordData::Mx {
                preference: 10,
                exchange: format!("mail.{zone}."),
            },
        ),
        ("@", txt("v=spf1 mx -all".to_owned())),
        (
            "_dmarc",
            txt("v=DMARC1; p=quarantine; adkim=s; aspf=s".to_owned()),
        ),
        (
            "cell._domainkey",
            txt(format!("v=DKIM1; k=rsa; p={}", key.public_base64)),
        ),
    ];
    ours.into_iter()
        .filter(|(name, data)| {
            !settings.dns.records.iter().any(|own| {
                own.name == *name
                    && own.data.kind() == data.kind()
                    && (data.kind() != "TXT" || same_kind(&own.data, data))
            })
        })
        .map(|(name, data)| DnsRecord {
            name: name.to_owned(),
            ttl: MAIL_TTL,
            data,
        })
        .collect()
}

/// Two TXT records at one name clash only when they are the same kind (both SPF, say).
fn same_kind(a: &RecordData, b: &RecordData) -> bool {
    let kind = |data: &RecordData| match data {
        RecordData::Txt { text } => text.split([' ', ';']).next().unwrap_or("").to_owned(),
        _ => String::new(),
    };
    kind(a) == kind(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DkimKey {
        DkimKey {
            private_pem: Zeroizing::new(String::new()),
            public_base64: "MIIBIjAN".to_owned(),
        }
    }

    #[test]
    fn mail_records_follow_the_mail_setting() {
        let mut settings = Settings::default();
        assert!(mail_records(&settings, &key()).is_empty());
        settings.services.mail = true;
        let records = mail_records(&settings, &key());
        let shown: Vec<String> = records
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.data.kind(), r.data.value_text()))
            .collect();
        assert_eq!(
            shown,
            [
                "@ MX 10 mail.cell.cell.",
                "@ TXT v=spf1 mx -all",
                "_dmarc TXT v=DMARC1; p=quarantine; adkim=s; aspf=s",
                "cell._domainkey TXT v=DKIM1; k=rsa; p=MIIBIjAN",
            ]
        );
    }

    #[test]
    fn an_administrators_own_record_wins() {
        let mut settings = Settings::default();
        settings.services.mail = true;
        settings.dns.records = serde_json::from_value(serde_json::json!([
            {"name": "@", "type": "TXT", "text": "v=spf1 include:relay.example -all"},
            {"name": "@", "type": "TXT", "text": "google-site-verification=abc"},
        ]))
        .unwrap();
        let records = mail_records(&settings, &key());
        assert!(!records
            .iter()
            .any(|r| r.data.value_text().starts_with("v=spf1")));
        assert_eq!(records.len(), 3);
    }

    #[test]
    fn the_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = Dkim::new(SecretStore::open(dir.path()).unwrap())
            .ensure()
            .unwrap();
        let again = Dkim::new(SecretStore::open(dir.path()).unwrap())
            .ensure()
            .unwrap();
        assert_eq!(first.public_base64, again.public_base64);
        assert!(first
            .private_pem
            .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        // 2048-bit SPKI, base64: about 392 characters.
        assert!(
            first.public_base64.len() > 380,
            "{}",
            first.public_base64.len()
        );
    }
}
