//! The cell's certificate authority as celld keeps it: the root made on first start and
//! kept encrypted in the secret store (its key never leaves celld), and the leaf the
//! front door serves, replaced by the reconciler when the names or addresses change or
//! two thirds of its life have passed. cell-web gets the leaf (and its key) through
//! `GET /v1/tls` and keeps it in memory only.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use cell_model::api::{
    AcmeView, HttpChallenge, PkiView, RootCertificate, ServedCertificate, TlsCertificate,
    TlsHandover,
};
use cell_pki::{Authority, Constraints, Leaf, LeafRequest};
use cell_secrets::SecretStore;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::sync::lock;

/// Secret names: each holds a certificate (chain) and its key, as JSON.
const ROOT_SECRET: &str = "pki-root";
const LEAF_SECRET: &str = "pki-leaf";
/// The certificate from the ACME CA, with its key.
const PUBLIC_SECRET: &str = "acme-certificate";

#[derive(Debug, thiserror::Error)]
pub enum PkiStoreError {
    #[error(transparent)]
    Secrets(#[from] cell_secrets::SecretError),
    #[error(transparent)]
    Pki(#[from] cell_pki::PkiError),
    #[error("interrupted: {0}")]
    Interrupted(String),
    #[error("the stored {name} is unreadable: {source}")]
    Stored {
        name: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// How a certificate and its key are stored (encrypted) in the secret store.
#[derive(Serialize, Deserialize)]
struct StoredPair {
    cert_pem: String,
    key_pem: String,
}

/// What the front door serves now, numbered for the handover.
#[derive(Debug, Clone)]
pub struct Served {
    pub serial: u64,
    pub leaf: Option<Leaf>,
    /// From the ACME CA, for the cell's public names.
    pub public: Option<Leaf>,
    /// What the front door answers on port 80 while an ACME order runs.
    pub http_challenges: Vec<HttpChallenge>,
}

pub struct Pki {
    secrets: SecretStore,
    root: Mutex<std::sync::Arc<Authority>>,
    served: watch::Sender<Served>,
    /// The newest serial the front door said it holds (the `known` it asks with).
    front_door_has: watch::Sender<u64>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("root", &self.root_fingerprint())
            .finish_non_exhaustive()
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn timestamp(unix: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl Pki {
    /// Opens the store in `secrets_dir`, loading the root and leaf, or making a root for
    /// `zone` when there is none yet (the first start).
    pub fn open(secrets_dir: &Path, zone: &str) -> Result<Self, PkiStoreError> {
        let secrets = SecretStore::open(secrets_dir)?;
        let root = match read_pair(&secrets, ROOT_SECRET)? {
            Some(pair) => Authority::load(&pair.cert_pem, &pair.key_pem)?,
            None => {
                let root = Authority::create(Constraints::for_zone(zone), now())?;
                write_pair(&secrets, ROOT_SECRET, root.cert_pem(), &root.key_pem())?;
                tracing::info!(fingerprint = %root.fingerprint(), "made the cell's root certificate");
                root
            }
        };
        let leaf = match read_pair(&secrets, LEAF_SECRET)? {
            Some(pair) => match Leaf::load(&pair.cert_pem, &pair.key_pem) {
                // A leaf of an earlier root (replaced since) is not served.
                Ok(leaf) if leaf.chain_pem().ends_with(root.cert_pem()) => Some(leaf),
                Ok(_) => None,
                Err(error) => {
                    tracing::warn!(%error, "the stored leaf certificate is unreadable; a new one will be made");
                    None
                }
            },
            None => None,
        };
        let public = match read_pair(&secrets, PUBLIC_SECRET)? {
            Some(pair) => match Leaf::load(&pair.cert_pem, &pair.key_pem) {
                Ok(leaf) => Some(leaf),
                Err(error) => {
                    tracing::warn!(%error, "the stored ACME certificate is unreadable; a new one will be asked for");
                    None
                }
            },
            None => None,
        };
        Ok(Self {
            secrets,
            root: Mutex::new(std::sync::Arc::new(root)),
            served: watch::Sender::new(Served {
                serial: 1,
                leaf,
                public,
                http_challenges: Vec::new(),
            }),
            front_door_has: watch::Sender::new(0),
        })
    }

    /// The encrypted store the certificates live in (the ACME account's key too).
    pub fn secrets(&self) -> &SecretStore {
        &self.secrets
    }

    /// The certificate from the ACME CA served now.
    pub fn public(&self) -> Option<Leaf> {
        self.served.borrow().public.clone()
    }

    /// Serves `public` (from the ACME CA) for its names from now on, or none; kept
    /// encrypted across restarts.
    pub fn set_public(&self, public: Option<Leaf>) -> Result<(), PkiStoreError> {
        match &public {
            Some(leaf) => write_pair(
                &self.secrets,
                PUBLIC_SECRET,
                leaf.chain_pem(),
                leaf.key_pem(),
            )?,
            None => self.secrets.remove(PUBLIC_SECRET)?,
        }
        self.served.send_modify(|served| {
            served.serial += 1;
            served.public = public;
        });
        Ok(())
    }

    /// Has the front door answer `challenges` on port 80 (none: stop answering). Returns
    /// the handover's serial that carries them.
    pub fn set_http_challenges(&self, challenges: Vec<HttpChallenge>) -> u64 {
        let mut serial = 0;
        self.served.send_modify(|served| {
            served.serial += 1;
            served.http_challenges = challenges;
            serial = served.serial;
        });
        serial
    }

    /// The front door asked for certificates saying it holds serial `known`.
    pub fn front_door_holds(&self, known: u64) {
        self.front_door_has.send_if_modified(|has| {
            let newer = known > *has;
            if newer {
                *has = known;
            }
            newer
        });
    }

    /// Waits until the front door holds serial `serial` or newer; false after `limit`.
    pub async fn front_door_took(&self, serial: u64, limit: std::time::Duration) -> bool {
        let mut has = self.front_door_has.subscribe();
        tokio::time::timeout(limit, has.wait_for(|has| *has >= serial))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    pub fn root(&self) -> std::sync::Arc<Authority> {
        lock(&self.root).clone()
    }

    pub fn root_fingerprint(&self) -> String {
        self.root().fingerprint()
    }

    /// Follows the front door's certificates as they change.
    pub fn subscribe(&self) -> watch::Receiver<Served> {
        self.served.subscribe()
    }

    /// Makes the root cover `zone` (a new root when the zone moved to a domain it may not
    /// sign for) and the leaf serve `request` at `now`: a new one when the names or
    /// addresses differ or it is due. Says what it changed, or `None` when nothing.
    pub fn ensure(
        &self,
        zone: &str,
        request: &LeafRequest,
        now: i64,
    ) -> Result<Option<String>, PkiStoreError> {
        let mut changes = Vec::new();
        let mut root = self.root();
        let wanted = Constraints::for_zone(zone);
        if !root.constraints().covers(&wanted) {
            let new_root = Authority::create(wanted, now)?;
            write_pair(
                &self.secrets,
                ROOT_SECRET,
                new_root.cert_pem(),
                &new_root.key_pem(),
            )?;
            tracing::warn!(
                zone,
                fingerprint = %new_root.fingerprint(),
                "made a new root certificate: the old one may not sign for the cell's domain"
            );
            changes.push(format!("new root {}", new_root.fingerprint()));
            root = std::sync::Arc::new(new_root);
            *lock(&self.root) = root.clone();
        }
        let current = self.served.borrow().leaf.clone();
        let fresh = current.as_ref().is_some_and(|leaf| {
            leaf.serves(request, now) && leaf.chain_pem().ends_with(root.cert_pem())
        });
        if fresh && changes.is_empty() {
            return Ok(None);
        }
        let leaf = root.issue(request, now)?;
        write_pair(&self.secrets, LEAF_SECRET, leaf.chain_pem(), leaf.key_pem())?;
        changes.push(format!(
            "new certificate for {} names and {} addresses",
            request.names().count(),
            request.addresses().count()
        ));
        self.served.send_modify(|served| {
            served.serial += 1;
            served.leaf = Some(leaf);
        });
        Ok(Some(changes.join("; ")))
    }

    /// The root and the served certificates, without keys, with `acme`'s state.
    pub fn view(&self, acme: AcmeView) -> PkiView {
        let root = self.root();
        let served = self.served.borrow();
        let certificates = served
            .leaf
            .iter()
            .map(|leaf| served_view(leaf, "cell"))
            .chain(served.public.iter().map(|leaf| served_view(leaf, "acme")))
            .collect();
        PkiView {
            root: root_view(&root),
            certificates,
            acme,
        }
    }

    /// What the front door needs to serve, keys included.
    pub fn handover(&self) -> TlsHandover {
        let served = self.served.borrow();
        let handed = |leaf: &Leaf, public: bool| TlsCertificate {
            names: leaf.request().names().map(str::to_owned).collect(),
            chain_pem: leaf.chain_pem().to_owned(),
            key_pem: leaf.key_pem().to_owned(),
            public,
        };
        // The cell's own leaf first: it is the one for clients that name no known host.
        TlsHandover {
            serial: served.serial,
            certificates: served
                .leaf
                .iter()
                .map(|leaf| handed(leaf, false))
                .chain(served.public.iter().map(|leaf| handed(leaf, true)))
                .collect(),
            http_challenges: served.http_challenges.clone(),
        }
    }
}

/// A served certificate as the API shows it.
pub fn served_view(leaf: &Leaf, issuer: &str) -> ServedCertificate {
    ServedCertificate {
        names: leaf.request().names().map(str::to_owned).collect(),
        addresses: leaf.request().addresses().copied().collect(),
        not_before: timestamp(leaf.not_before()),
        not_after: timestamp(leaf.not_after()),
        renew_at: timestamp(leaf.renew_at()),
        issuer: issuer.to_owned(),
    }
}

pub fn root_view(root: &Authority) -> RootCertificate {
    RootCertificate {
        fingerprint: root.fingerprint(),
        pem: root.cert_pem().to_owned(),
        not_after: timestamp(root.not_after()),
        name_constraints: root.constraints().dns().map(str::to_owned).collect(),
    }
}

fn read_pair(
    secrets: &SecretStore,
    name: &'static str,
) -> Result<Option<StoredPair>, PkiStoreError> {
    let Some(bytes) = secrets.get(name)? else {
        return Ok(None);
    };
    serde_json::from_slice(bytes.expose())
        .map(Some)
        .map_err(|source| PkiStoreError::Stored { name, source })
}

fn write_pair(
    secrets: &SecretStore,
    name: &'static str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(), PkiStoreError> {
    let pair = StoredPair {
        cert_pem: cert_pem.to_owned(),
        key_pem: key_pem.to_owned(),
    };
    let bytes = Zeroizing::new(
        serde_json::to_vec(&pair).map_err(|source| PkiStoreError::Stored { name, source })?,
    );
    // The key's copy in the struct is dropped here; the JSON is zeroed on drop.
    drop(pair);
    Ok(secrets.put(name, &bytes)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(names: &[&str]) -> LeafRequest {
        LeafRequest::new(
            names.iter().map(|n| (*n).to_owned()),
            ["192.168.1.2".parse().unwrap()],
        )
    }

    #[test]
    fn the_root_is_made_once_and_kept_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::open(dir.path(), "home.cell").unwrap();
        let print = pki.root_fingerprint();
        let again = Pki::open(dir.path(), "home.cell").unwrap();
        assert_eq!(
            again.root_fingerprint(),
            print,
            "the same root after a restart"
        );
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("PRIVATE KEY"), "no key in clear at rest");
        }
    }

    #[test]
    fn leaves_follow_names_and_the_root_follows_the_domain() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::open(dir.path(), "home.cell").unwrap();
        let mut seen = pki.subscribe();
        let names = request(&["home.cell", "files.home.cell"]);
        assert!(pki.ensure("home.cell", &names, now()).unwrap().is_some());
        assert!(seen.has_changed().unwrap());
        let first = seen.borrow_and_update().serial;
        assert_eq!(
            pki.ensure("home.cell", &names, now()).unwrap(),
            None,
            "unchanged"
        );
        assert!(!seen.has_changed().unwrap());
        // Due for renewal after sixty days.
        let later = now() + 61 * 86_400;
        assert!(pki.ensure("home.cell", &names, later).unwrap().is_some());
        assert!(seen.borrow_and_update().serial > first);
        // The leaf survives a restart.
        let again = Pki::open(dir.path(), "home.cell").unwrap();
        assert_eq!(again.handover().certificates.len(), 1);
        // An own domain outside the root's constraints brings a new root.
        let print = pki.root_fingerprint();
        let own = request(&["example.org", "files.example.org"]);
        let change = pki.ensure("example.org", &own, now()).unwrap().unwrap();
        assert!(change.contains("new root"), "{change}");
        assert_ne!(pki.root_fingerprint(), print);
        let view = pki.view(crate::acme::off_view());
        assert_eq!(
            view.certificates[0].names,
            ["example.org", "files.example.org"]
        );
        assert!(view
            .root
            .name_constraints
            .contains(&"example.org".to_owned()));
        // Outside the constraints (a public address) is refused, nothing replaced.
        let public = LeafRequest::new([], ["8.8.8.8".parse().unwrap()]);
        assert!(pki.ensure("example.org", &public, now()).is_err());
        assert_eq!(
            pki.view(crate::acme::off_view()).certificates[0].names,
            ["example.org", "files.example.org"]
        );
        let handover = pki.handover();
        assert!(format!("{handover:?}").contains("redacted"));
        assert!(!format!("{handover:?}").contains("PRIVATE KEY"));
    }
}
