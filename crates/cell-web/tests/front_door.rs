//! The front door's TLS as a client sees it over real sockets: a client that trusts only
//! the cell's root reaches it over TLS 1.2 and 1.3, HTTP/1.1 and HTTP/2 (ALPN); the
//! certificate is chosen by SNI with a fallback for unknown names; a handover swaps the
//! certificate for new connections while an open HTTP/2 connection keeps working; plain
//! HTTP redirects.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use cell_model::api::{TlsCertificate, TlsHandover};
use cell_pki::{Authority, Constraints, Leaf, LeafRequest};
use cell_web::tls::CertificateStore;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tower::ServiceExt;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn leaf(root: &Authority, names: &[&str]) -> Leaf {
    let request = LeafRequest::new(names.iter().map(|n| (*n).to_owned()), []);
    root.issue(&request, now()).unwrap()
}

fn handed(leaf: &Leaf, public: bool) -> TlsCertificate {
    TlsCertificate {
        names: leaf.request().names().map(str::to_owned).collect(),
        chain_pem: leaf.chain_pem().to_owned(),
        key_pem: leaf.key_pem().to_owned(),
        public,
    }
}

fn handover(serial: u64, leaves: &[&Leaf]) -> TlsHandover {
    TlsHandover {
        serial,
        certificates: leaves.iter().map(|leaf| handed(leaf, false)).collect(),
        http_challenges: Vec::new(),
    }
}

fn leaf_der(leaf: &Leaf) -> Vec<u8> {
    cell_pki::certificates_der(leaf.chain_pem())
        .unwrap()
        .remove(0)
}

/// A front door on a loopback port serving a page that names the client's address and
/// the protocol version it was asked with.
async fn front_door(store: &CertificateStore) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let app = Router::new().route(
        "/",
        get(
            |ConnectInfo(remote): ConnectInfo<SocketAddr>, request: Request<Body>| async move {
                format!("{} {:?}", remote.ip(), request.version())
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let config = store.server_config().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(cell_web::front_door::serve_tls(
        listener,
        config,
        app,
        async {
            let _ = stopped.await;
        },
    ));
    (address, stop)
}

fn client(
    root: &Authority,
    version: &'static rustls::SupportedProtocolVersion,
    alpn: &[u8],
) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(root.cert_der().to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// A client that accepts whatever certificate it is served, to see which one that is.
fn any_certificate() -> TlsConnector {
    #[derive(Debug)]
    struct AcceptAll(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AcceptAll {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAll(provider)))
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    connector: &TlsConnector,
    address: SocketAddr,
    name: &str,
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let tcp = TcpStream::connect(address).await.unwrap();
    connector
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
}

fn served_der(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn get_root(name: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("https://{name}/"))
        .body(Empty::new())
        .unwrap()
}

async fn body_text(response: hyper::Response<hyper::body::Incoming>) -> String {
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

#[tokio::test]
async fn tls_versions_http_versions_and_sni() {
    let root = Authority::create(Constraints::for_zone("home.cell"), now()).unwrap();
    let home = leaf(&root, &["home.cell"]);
    let files = leaf(&root, &["files.home.cell"]);
    let store = CertificateStore::default();
    store.install(&handover(1, &[&home, &files])).unwrap();
    let (address, _stop) = front_door(&store).await;

    for (version, protocol) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        // HTTP/1.1 by ALPN.
        let connector = client(&root, version, b"http/1.1");
        let stream = connect(&connector, address, "home.cell").await.unwrap();
        assert_eq!(stream.get_ref().1.protocol_version(), Some(protocol));
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(served_der(&stream), leaf_der(&home));
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let response = sender.send_request(get_root("home.cell")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await, "127.0.0.1 HTTP/1.1");

        // HTTP/2 by ALPN.
        let connector = client(&root, version, b"h2");
        let stream = connect(&connector, address, "files.home.cell")
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        assert_eq!(served_der(&stream), leaf_der(&files), "chosen by SNI");
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let response = sender
            .send_request(get_root("files.home.cell"))
            .await
            .unwrap();
        assert_eq!(body_text(response).await, "127.0.0.1 HTTP/2.0");
    }

    // An unknown name gets the first certificate, which the client then rejects for
    // the name it asked: the fallback is for clients that name no host.
    let connector = client(&root, &rustls::version::TLS13, b"http/1.1");
    let refused = connect(&connector, address, "unknown.home.cell").await;
    assert!(refused.is_err(), "the fallback does not carry that name");
    // A client that trusts another root is refused.
    let stranger = Authority::create(Constraints::for_zone("home.cell"), now()).unwrap();
    let connector = client(&stranger, &rustls::version::TLS13, b"http/1.1");
    assert!(connect(&connector, address, "home.cell").await.is_err());
}

#[tokio::test]
async fn a_public_certificate_wins_for_its_names_and_the_cells_own_stays_the_fallback() {
    let cell_root = Authority::create(Constraints::for_zone("example.org"), now()).unwrap();
    // A stand-in for the public CA: another root, which the "browser" below trusts alone.
    let public_ca = Authority::create(Constraints::for_zone("example.org"), now()).unwrap();
    let own = leaf(&cell_root, &["example.org", "files.example.org"]);
    let public = leaf(&public_ca, &["example.org", "files.example.org"]);
    let store = CertificateStore::default();
    // The public one comes last in the handover and still wins for its names.
    store
        .install(&TlsHandover {
            serial: 1,
            certificates: vec![handed(&own, false), handed(&public, true)],
            http_challenges: Vec::new(),
        })
        .unwrap();
    assert!(store.is_public("files.example.org") && store.is_public("EXAMPLE.org"));
    assert!(!store.is_public("home.cell"));
    let (address, _stop) = front_door(&store).await;
    let browser = client(&public_ca, &rustls::version::TLS13, b"http/1.1");
    let stream = connect(&browser, address, "files.example.org")
        .await
        .unwrap();
    assert_eq!(served_der(&stream), leaf_der(&public));
    // A client that names no host (it reached the cell by address) gets the cell's own
    // leaf, not the public one (seen by a client that takes any certificate).
    let by_address = connect(&any_certificate(), address, "127.0.0.1")
        .await
        .unwrap();
    assert_eq!(served_der(&by_address), leaf_der(&own));
    let device = client(&cell_root, &rustls::version::TLS13, b"http/1.1");
    let stream = connect(&device, address, "example.org").await;
    assert!(
        stream.is_err(),
        "its names get the public certificate, whoever asks"
    );
}

#[tokio::test]
async fn hsts_only_for_names_with_a_public_certificate() {
    let cell_root = Authority::create(Constraints::for_zone("example.org"), now()).unwrap();
    let public_ca = Authority::create(Constraints::for_zone("example.org"), now()).unwrap();
    let own = leaf(&cell_root, &["example.org", "home.example.org"]);
    let public = leaf(&public_ca, &["example.org"]);
    let state = cell_web::AppState::new(celld_client::CelldClient::new("/nonexistent.sock"), true);
    state
        .certificates
        .install(&TlsHandover {
            serial: 1,
            certificates: vec![handed(&own, false), handed(&public, true)],
            http_challenges: Vec::new(),
        })
        .unwrap();
    for (host, hsts) in [
        ("example.org", true),
        ("example.org:8443", true),
        ("home.example.org", false),
        ("192.168.1.2", false),
    ] {
        let request = Request::get("/login")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap();
        let response = cell_web::router(state.clone())
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(
            response
                .headers()
                .get(header::STRICT_TRANSPORT_SECURITY)
                .is_some(),
            hsts,
            "{host}"
        );
    }
}

#[tokio::test]
async fn a_handover_swaps_the_certificate_for_new_connections_while_open_ones_keep_working() {
    let root = Authority::create(Constraints::for_zone("home.cell"), now()).unwrap();
    let first = leaf(&root, &["home.cell"]);
    let store = CertificateStore::default();
    store.install(&handover(1, &[&first])).unwrap();
    let (address, _stop) = front_door(&store).await;
    let connector = client(&root, &rustls::version::TLS13, b"h2");
    let stream = connect(&connector, address, "home.cell").await.unwrap();
    assert_eq!(served_der(&stream), leaf_der(&first));
    let (mut open, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    assert_eq!(
        open.send_request(get_root("home.cell"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let second = leaf(&root, &["home.cell", "calendar.home.cell"]);
    store.install(&handover(2, &[&second])).unwrap();
    assert_eq!(store.serial(), 2);
    let connector = client(&root, &rustls::version::TLS13, b"h2");
    let fresh = connect(&connector, address, "home.cell").await.unwrap();
    assert_eq!(
        served_der(&fresh),
        leaf_der(&second),
        "new connections get the new one"
    );
    for _ in 0..3 {
        let response = open.send_request(get_root("home.cell")).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "the open HTTP/2 connection goes on"
        );
    }

    // A broken handover changes nothing.
    let mut broken = handover(3, &[&first]);
    broken.certificates[0].key_pem =
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
    assert!(store.install(&broken).is_err());
    assert_eq!(store.serial(), 2);
    // A new client: this one would resume its first session, with that session's
    // certificate.
    let connector = client(&root, &rustls::version::TLS13, b"h2");
    let again = connect(&connector, address, "home.cell").await.unwrap();
    assert_eq!(served_der(&again), leaf_der(&second));
}

#[tokio::test]
async fn plain_http_redirects_to_https_but_for_acme_challenges() {
    let state = cell_web::AppState::new(celld_client::CelldClient::new("/nonexistent.sock"), true);
    let redirect = |host: &'static str, path: &'static str, port: u16| {
        let app = cell_web::front_door::plain_http_router(state.clone(), port);
        async move {
            let request = Request::get(path)
                .header(header::HOST, host)
                .body(Body::empty())
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let location = response
                .headers()
                .get(header::LOCATION)
                .map(|l| l.to_str().unwrap().to_owned());
            (response.status(), location)
        }
    };
    assert_eq!(
        redirect("home.cell", "/login?next=%2Fvpn", 443).await,
        (
            StatusCode::PERMANENT_REDIRECT,
            Some("https://home.cell/login?next=%2Fvpn".into())
        )
    );
    assert_eq!(
        redirect("192.168.1.2:80", "/", 8443).await,
        (
            StatusCode::PERMANENT_REDIRECT,
            Some("https://192.168.1.2:8443/".into())
        )
    );
    assert_eq!(
        redirect("[fd00::1]:80", "/setup", 443).await,
        (
            StatusCode::PERMANENT_REDIRECT,
            Some("https://[fd00::1]/setup".into())
        )
    );
    assert_eq!(
        redirect("evil/x", "/", 443).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        redirect("home.cell", "/.well-known/acme-challenge/abc", 443).await,
        (StatusCode::NOT_FOUND, None),
        "challenges are answered over HTTP, never redirected"
    );
    // A pending challenge from celld's handover is answered with its key authorization.
    let root = Authority::create(Constraints::for_zone("home.cell"), now()).unwrap();
    let mut pending = handover(2, &[&leaf(&root, &["home.cell"])]);
    pending.http_challenges = vec![cell_model::api::HttpChallenge {
        token: "abc".into(),
        key_authorization: "abc.thumbprint".into(),
    }];
    state.certificates.install(&pending).unwrap();
    let app = cell_web::front_door::plain_http_router(state.clone(), 443);
    let request = Request::get("/.well-known/acme-challenge/abc")
        .header(header::HOST, "example.org")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_of(response).await, "abc.thumbprint");
    let request = Request::get("/.well-known/acme-challenge/other")
        .header(header::HOST, "example.org")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.oneshot(request).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

async fn body_of(response: axum::response::Response) -> String {
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}
