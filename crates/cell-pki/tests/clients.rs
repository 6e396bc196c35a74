//! The certificates as real clients judge them: rustls's WebPKI verifier (what the cell's
//! own Rust clients use) and `openssl verify` (curl's and most tools' library), including
//! the root's name constraints.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cell_pki::{certificates_der, Authority, Constraints, Leaf, LeafRequest, PkiError};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::RootCertStore;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn home_leaf(root: &Authority) -> Leaf {
    let request = LeafRequest::new(
        ["home.cell".to_owned(), "calendar.home.cell".to_owned()],
        ["10.87.0.1".parse().unwrap(), "fd00:87::1".parse().unwrap()],
    );
    root.issue(&request, now()).unwrap()
}

/// What rustls says of `leaf` for `name`, trusting only `root`.
fn rustls_verdict(root: &Authority, leaf: &Leaf, name: &str) -> Result<(), rustls::Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(root.cert_der().to_vec()))
        .unwrap();
    let verifier = WebPkiServerVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let chain = certificates_der(leaf.chain_pem()).unwrap();
    let end = CertificateDer::from(chain[0].clone());
    let at = UnixTime::since_unix_epoch(Duration::from_secs(now() as u64));
    verifier
        .verify_server_cert(
            &end,
            &[],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            at,
        )
        .map(|_| ())
}

/// `openssl verify -CAfile root leaf`: Ok with its output, or Err with it.
fn openssl_verdict(root: &Authority, leaf: &Leaf) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root.pem"), root.cert_pem()).unwrap();
    let leaf_pem = leaf
        .chain_pem()
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap();
    std::fs::write(dir.path().join("leaf.pem"), leaf_pem).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile"])
        .arg(dir.path().join("root.pem"))
        .arg(dir.path().join("leaf.pem"))
        .output()
        .expect("openssl (make deps installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

#[test]
fn a_leaf_for_the_cells_names_is_trusted_by_clients_that_trust_the_root() {
    let root = Authority::create(Constraints::for_zone("home.cell"), now()).unwrap();
    let leaf = home_leaf(&root);
    for name in ["home.cell", "calendar.home.cell", "10.87.0.1", "fd00:87::1"] {
        rustls_verdict(&root, &leaf, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(
        rustls_verdict(&root, &leaf, "files.home.cell").is_err(),
        "a name it does not carry"
    );
    openssl_verdict(&root, &leaf).unwrap();
    // Another cell's root does not vouch for it.
    let other = Authority::create(Constraints::for_zone("home.cell"), now()).unwrap();
    assert!(rustls_verdict(&other, &leaf, "home.cell").is_err());
    assert_ne!(root.fingerprint(), other.fingerprint());
}

#[test]
fn the_roots_name_constraints_hold_in_clients() {
    let root = Authority::create(Constraints::for_zone("home.cell"), now()).unwrap();
    for outside in ["example.com", "www.google.com"] {
        let request = LeafRequest::new([outside.to_owned()], []);
        assert!(
            matches!(
                root.issue(&request, now()),
                Err(PkiError::OutsideConstraints { .. })
            ),
            "the cell itself refuses to sign {outside}"
        );
        // Were the root's key to sign it anyway, clients refuse the leaf.
        let rogue = root.sign_unchecked(&request, now()).unwrap();
        let verdict = openssl_verdict(&root, &rogue).expect_err(outside);
        assert!(verdict.contains("subtree violation"), "{verdict}");
        assert!(rustls_verdict(&root, &rogue, outside).is_err());
    }
    let public_address = LeafRequest::new([], ["8.8.8.8".parse().unwrap()]);
    assert!(root.issue(&public_address, now()).is_err());
    let rogue = root.sign_unchecked(&public_address, now()).unwrap();
    assert!(openssl_verdict(&root, &rogue).is_err());
}

#[test]
fn an_own_domain_is_within_the_constraints() {
    let root = Authority::create(Constraints::for_zone("example.org"), now()).unwrap();
    let request = LeafRequest::new(["files.example.org".to_owned(), "home.cell".to_owned()], []);
    let leaf = root.issue(&request, now()).unwrap();
    rustls_verdict(&root, &leaf, "files.example.org").unwrap();
    openssl_verdict(&root, &leaf).unwrap();
}

#[test]
fn root_and_leaf_survive_a_round_trip_through_pem() {
    let root = Authority::create(Constraints::for_zone("example.org"), now()).unwrap();
    let loaded = Authority::load(root.cert_pem(), &root.key_pem()).unwrap();
    assert_eq!(loaded.fingerprint(), root.fingerprint());
    assert_eq!(loaded.constraints(), root.constraints());
    assert!(loaded.not_after() > now() + 19 * 365 * 86400);
    // A leaf signed by the reloaded root is trusted under the original.
    let leaf = home_leaf(&loaded);
    rustls_verdict(&root, &leaf, "home.cell").unwrap();
    let again = Leaf::load(leaf.chain_pem(), leaf.key_pem()).unwrap();
    assert_eq!(again.request(), leaf.request());
    // A key that is not the certificate's is refused.
    let other = Authority::create(Constraints::for_zone("home.cell"), now()).unwrap();
    assert!(Authority::load(root.cert_pem(), &other.key_pem()).is_err());
    assert!(Leaf::load(leaf.chain_pem(), &other.key_pem()).is_err());
    assert!(Authority::load("not pem", &root.key_pem()).is_err());
}

#[test]
fn leaves_are_renewed_at_two_thirds_of_their_life_or_when_names_change() {
    let root = Authority::create(Constraints::for_zone("home.cell"), now()).unwrap();
    let leaf = home_leaf(&root);
    let request = leaf.request().clone();
    assert!(leaf.serves(&request, now()));
    let day = 86_400;
    assert!(leaf.serves(&request, now() + 59 * day));
    assert!(
        !leaf.serves(&request, now() + 61 * day),
        "due at day 60 of 90"
    );
    let more = LeafRequest::new(["home.cell".to_owned(), "files.home.cell".to_owned()], []);
    assert!(!leaf.serves(&more, now()));
    assert!((leaf.not_after() - leaf.not_before()) <= 91 * day);
}
