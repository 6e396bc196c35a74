//! The root: made once on the device, loaded from its PEM certificate and key afterwards.

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType, PKCS_ECDSA_P256_SHA256,
};
use x509_parser::extensions::GeneralName;
use zeroize::Zeroizing;

use crate::constraints::{Constraints, PRIVATE_RANGES};
use crate::leaf::{Leaf, LeafRequest, LEAF_LIFETIME_DAYS};
use crate::{at, certificates_der, fingerprint, random_serial, PkiError};

/// How long a root is valid: long, as every device that trusts it would need the new one.
const ROOT_LIFETIME_DAYS: i64 = 20 * 365;
const DAY: i64 = 24 * 60 * 60;
/// Leaves start a little in the past, for devices whose clocks run slightly behind.
const BACKDATE: i64 = 10 * 60;

/// The cell's certificate authority.
pub struct Authority {
    cert_der: Vec<u8>,
    cert_pem: String,
    key: KeyPair,
    constraints: Constraints,
    not_after: i64,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("fingerprint", &self.fingerprint())
            .field("constraints", &self.constraints)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// A new root with a new key, valid from `now` (seconds since the Unix epoch).
    pub fn create(constraints: Constraints, now: i64) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| {
            PkiError::Generate {
                what: "the root's key",
                source,
            }
        })?;
        let mut params = CertificateParams::default();
        // A short tag from the key tells two cells' roots apart in a device's trust list.
        let tag = &fingerprint(key.public_key_raw()).replace(':', "")[..8];
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, format!("Personal Internet Cell {tag}"));
        name.push(DnType::OrganizationName, "Personal Internet Cell");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        params.not_before = at(now - BACKDATE)?;
        params.not_after = at(now + ROOT_LIFETIME_DAYS * DAY)?;
        let mut permitted: Vec<GeneralSubtree> = constraints
            .dns()
            .map(|tree| GeneralSubtree::DnsName(tree.to_owned()))
            .collect();
        permitted.extend(PRIVATE_RANGES.iter().map(|(network, prefix)| {
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(*network, *prefix))
        }));
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: permitted,
            excluded_subtrees: Vec::new(),
        });
        let cert = params
            .self_signed(&key)
            .map_err(|source| PkiError::Generate {
                what: "the root certificate",
                source,
            })?;
        Self::load(&cert.pem(), &key.serialize_pem())
    }

    /// The root from its certificate and key (both PEM), as [`Authority::create`] made them.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let cert_der = certificates_der(cert_pem)?
            .into_iter()
            .next()
            .ok_or(PkiError::Parse {
                what: "the root certificate",
                reason: "no CERTIFICATE block".into(),
            })?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::Parse {
            what: "the root's key",
            reason: e.to_string(),
        })?;
        let parse_error = |reason: String| PkiError::Parse {
            what: "the root certificate",
            reason,
        };
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| parse_error(e.to_string()))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(parse_error("its key is not the one given".into()));
        }
        let mut dns = Vec::new();
        if let Some(extension) = cert
            .name_constraints()
            .map_err(|e| parse_error(e.to_string()))?
        {
            for subtree in extension.value.permitted_subtrees.iter().flatten() {
                if let GeneralName::DNSName(tree) = subtree.base {
                    dns.push(tree.to_owned());
                }
            }
        }
        let not_after = cert.validity().not_after.timestamp();
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            cert_der,
            key,
            constraints: Constraints::from_dns(dns),
            not_after,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The root's private key, PEM: to be stored encrypted, never shown.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.key.serialize_pem())
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    pub fn constraints(&self) -> &Constraints {
        &self.constraints
    }

    /// When the root expires, in seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// A new leaf (with a new key) for `request`, valid from `now` for
    /// [`LEAF_LIFETIME_DAYS`], chained to this root. Names outside the root's constraints
    /// are refused: a client would refuse the leaf anyway.
    pub fn issue(&self, request: &LeafRequest, now: i64) -> Result<Leaf, PkiError> {
        if request.is_empty() {
            return Err(PkiError::Empty);
        }
        if let Some(name) = request
            .names()
            .find(|name| !self.constraints.permits_name(name))
        {
            return Err(PkiError::OutsideConstraints {
                name: name.to_owned(),
            });
        }
        if let Some(address) = request
            .addresses()
            .find(|address| !Constraints::permits_address(address))
        {
            return Err(PkiError::OutsideConstraints {
                name: address.to_string(),
            });
        }
        self.sign(request, now)
    }

    /// Signs without checking the constraints: for tests that show clients refuse it.
    #[doc(hidden)]
    pub fn sign_unchecked(&self, request: &LeafRequest, now: i64) -> Result<Leaf, PkiError> {
        self.sign(request, now)
    }

    fn sign(&self, request: &LeafRequest, now: i64) -> Result<Leaf, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| {
            PkiError::Generate {
                what: "a leaf key",
                source,
            }
        })?;
        let mut params = CertificateParams::default();
        // No subject name: clients match the alternative names, and a common name would
        // be checked against the constraints by some of them.
        params.distinguished_name = DistinguishedName::new();
        for name in request.names() {
            let name = name
                .to_owned()
                .try_into()
                .map_err(|source| PkiError::Generate {
                    what: "a leaf's DNS name",
                    source,
                })?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params.subject_alt_names.extend(
            request
                .addresses()
                .map(|address| SanType::IpAddress(*address)),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params.not_before = at(now - BACKDATE)?;
        params.not_after = at(now + LEAF_LIFETIME_DAYS * DAY)?;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der.clone().into(), &self.key).map_err(
            |source| PkiError::Generate {
                what: "the root's issuer",
                source,
            },
        )?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|source| PkiError::Generate {
                what: "a leaf certificate",
                source,
            })?;
        let chain_pem = format!("{}{}", cert.pem(), self.cert_pem);
        Leaf::load(&chain_pem, &key.serialize_pem())
    }
}
