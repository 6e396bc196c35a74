//! The front door's certificates: held in memory only, chosen per connection by the name
//! the client asks for (SNI), and swapped whole when celld hands over new ones — new
//! connections get the new certificate, open ones keep theirs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use cell_model::api::{TlsCertificate, TlsHandover};
use celld_client::{CelldClient, OnBehalf};
use hyper::Method;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// How often the front door asks celld whether its certificates changed.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the certificate for {names:?} is unreadable: {reason}")]
    Certificate { names: Vec<String>, reason: String },
    #[error("the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// One generation of certificates: by name, and the one for clients that name none we
/// know (or none at all, as when they reach the cell by address).
#[derive(Debug, Default)]
struct Certificates {
    serial: u64,
    by_name: HashMap<String, Arc<CertifiedKey>>,
    fallback: Option<Arc<CertifiedKey>>,
    /// Names served with a public CA's certificate (sent with HSTS).
    public_names: HashSet<String>,
    /// ACME HTTP-01: token → key authorization.
    challenges: HashMap<String, String>,
}

/// The certificates in force, shared by the TLS configuration and the task that follows
/// celld.
#[derive(Debug, Clone, Default)]
pub struct CertificateStore {
    current: Arc<ArcSwap<Certificates>>,
}

impl CertificateStore {
    /// The serial of the handover in force (0: none yet).
    pub fn serial(&self) -> u64 {
        self.current.load().serial
    }

    pub fn is_empty(&self) -> bool {
        self.current.load().fallback.is_none()
    }

    /// The key authorization to answer an ACME HTTP-01 `token` with, while it is pending.
    pub fn challenge(&self, token: &str) -> Option<String> {
        self.current.load().challenges.get(token).cloned()
    }

    /// Whether `host` is served with a public CA's certificate.
    pub fn is_public(&self, host: &str) -> bool {
        self.current
            .load()
            .public_names
            .contains(&host.to_ascii_lowercase())
    }

    /// Replaces every certificate with `handover`'s at once; on any unreadable one,
    /// nothing is replaced.
    pub fn install(&self, handover: &TlsHandover) -> Result<(), TlsError> {
        let mut next = Certificates {
            serial: handover.serial,
            ..Certificates::default()
        };
        for certificate in &handover.certificates {
            let key = Arc::new(certified_key(certificate)?);
            for name in certificate.names.iter().map(|n| n.to_ascii_lowercase()) {
                // A public CA's certificate wins for its names: browsers without the
                // cell's root trust it.
                if certificate.public {
                    next.public_names.insert(name.clone());
                    next.by_name.insert(name, key.clone());
                } else {
                    next.by_name.entry(name).or_insert_with(|| key.clone());
                }
            }
            if !certificate.public {
                next.fallback.get_or_insert(key);
            }
        }
        next.challenges = handover
            .http_challenges
            .iter()
            .map(|c| (c.token.clone(), c.key_authorization.clone()))
            .collect();
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// The TLS configuration of the front door: TLS 1.2 and 1.3 with rustls's safe
    /// defaults, HTTP/2 and HTTP/1.1 by ALPN, certificates from this store.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(self.clone()));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.load();
        client_hello
            .server_name()
            .and_then(|name| current.by_name.get(&name.to_ascii_lowercase()))
            .or(current.fallback.as_ref())
            .cloned()
    }
}

fn certified_key(certificate: &TlsCertificate) -> Result<CertifiedKey, TlsError> {
    let unreadable = |reason: String| TlsError::Certificate {
        names: certificate.names.clone(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(certificate.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(e.to_string()))?;
    if chain.is_empty() {
        return Err(unreadable("no certificate in the chain".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(certificate.key_pem.as_bytes())
        .map_err(|e| unreadable(e.to_string()))?;
    let key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(CertifiedKey::new(chain, key))
}

/// Asks celld for newer certificates every [`FOLLOW_EVERY`] and installs them; returns
/// once the first are installed when `first` is given (the front door opens its TLS
/// port only then).
pub async fn follow_celld(
    celld: CelldClient,
    store: CertificateStore,
    first: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let mut first = first;
    loop {
        let mut installed = false;
        let path = format!("/v1/tls?known={}", store.serial());
        match celld
            .call(Method::GET, &path, &OnBehalf::default(), None)
            .await
        {
            Ok((status, _)) if status == hyper::StatusCode::NO_CONTENT => {}
            Ok((status, body)) => match celld_client::decode::<TlsHandover>(&path, status, &body) {
                Ok(handover) => match store.install(&handover) {
                    Ok(()) => {
                        tracing::info!(
                            serial = handover.serial,
                            certificates = handover.certificates.len(),
                            challenges = handover.http_challenges.len(),
                            "installed the certificates celld handed over"
                        );
                        installed = true;
                    }
                    Err(error) => {
                        tracing::error!(%error, "kept the certificates in force")
                    }
                },
                Err(error) => tracing::warn!(%error, "celld gave no certificates"),
            },
            Err(error) => tracing::warn!(%error, "cannot ask celld for certificates"),
        }
        if !store.is_empty() {
            if let Some(ready) = first.take() {
                let _ = ready.send(());
            }
        }
        // After an install, ask again at once: saying "I hold it" is how celld learns
        // that an ACME challenge is being answered.
        if !installed {
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }
}
