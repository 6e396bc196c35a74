//! A leaf certificate for the cell's names and addresses, and when to renew it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use zeroize::Zeroizing;

use crate::{certificates_der, PkiError};

/// How long a leaf is valid. Renewed at two thirds of it (day 60), well before expiry.
pub const LEAF_LIFETIME_DAYS: i64 = 90;

/// What a leaf must name: DNS names (lower case, no trailing dot) and IP addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeafRequest {
    names: BTreeSet<String>,
    addresses: BTreeSet<IpAddr>,
}

impl LeafRequest {
    pub fn new(
        names: impl IntoIterator<Item = String>,
        addresses: impl IntoIterator<Item = IpAddr>,
    ) -> Self {
        Self {
            names: names
                .into_iter()
                .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
                .filter(|name| !name.is_empty())
                .collect(),
            addresses: addresses.into_iter().collect(),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    pub fn addresses(&self) -> impl Iterator<Item = &IpAddr> {
        self.addresses.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.addresses.is_empty()
    }
}

/// A signed leaf: its chain (leaf first, then the root) and its key, both PEM.
#[derive(Clone)]
pub struct Leaf {
    chain_pem: String,
    key_pem: Zeroizing<String>,
    request: LeafRequest,
    not_before: i64,
    not_after: i64,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf")
            .field("request", &self.request)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Leaf {
    /// A leaf from its chain and key (PEM), reading its names and validity from the
    /// certificate itself.
    pub fn load(chain_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let parse_error = |reason: String| PkiError::Parse {
            what: "a leaf certificate",
            reason,
        };
        let chain = certificates_der(chain_pem)?;
        let der = chain
            .first()
            .ok_or_else(|| parse_error("no CERTIFICATE block".into()))?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| parse_error(e.to_string()))?;
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| PkiError::Parse {
            what: "a leaf's key",
            reason: e.to_string(),
        })?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(parse_error("its key is not the one given".into()));
        }
        let mut names = Vec::new();
        let mut addresses = Vec::new();
        if let Some(san) = cert
            .subject_alternative_name()
            .map_err(|e| parse_error(e.to_string()))?
        {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(name) => names.push((*name).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                            addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            addresses.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(Self {
            chain_pem: chain_pem.to_owned(),
            key_pem: Zeroizing::new(key_pem.to_owned()),
            request: LeafRequest::new(names, addresses),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The leaf's private key, PEM: for the front door's memory and the encrypted store.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The names and addresses the leaf carries.
    pub fn request(&self) -> &LeafRequest {
        &self.request
    }

    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// When to replace it: at two thirds of its lifetime.
    pub fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }

    /// Whether it still does for `request` at `now`: the same names and addresses, and not
    /// yet due for renewal.
    pub fn serves(&self, request: &LeafRequest, now: i64) -> bool {
        self.request == *request && now < self.renew_at() && now >= self.not_before
    }
}
