//! The root certificate's downloads and the Certificates page, over a real cell-web and
//! celld.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test]
async fn the_root_downloads_before_setup_and_the_page_shows_its_fingerprint() {
    let cell = start().await;
    let root = http(cell.addr, "GET", "/api/v1/pki/root", None, None, None).await;
    assert_eq!(root.status, 200, "public, before setup: {}", root.body);
    let root = root.json();
    let fingerprint = root["fingerprint"].as_str().unwrap();
    let pem = http(cell.addr, "GET", "/ca.pem", None, None, None).await;
    assert_eq!(pem.status, 200);
    assert!(
        pem.head.contains("content-type: application/x-pem-file"),
        "{}",
        pem.head
    );
    assert!(pem.head.contains("attachment"), "{}", pem.head);
    assert_eq!(pem.body, root["pem"].as_str().unwrap());
    let der = http(cell.addr, "GET", "/ca.der", None, None, None).await;
    assert_eq!(der.status, 200);
    assert!(
        der.head
            .contains("content-type: application/x-x509-ca-cert"),
        "{}",
        der.head
    );

    let served = http(cell.addr, "GET", "/api/v1/pki", None, None, None).await;
    assert_eq!(served.status, 428, "the served names wait for setup");
    let (cookie, _) = set_up_as_alice(&cell).await;
    let served = http(cell.addr, "GET", "/api/v1/pki", None, None, None).await;
    assert_eq!(served.status, 401);
    let page = http(cell.addr, "GET", "/certificates", Some(&cookie), None, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(fingerprint), "{}", page.body);
    assert!(page.body.contains("href=\"/ca.der\""));
    assert!(!page.body.contains("PRIVATE KEY"));
    let api = http(cell.addr, "GET", "/api/v1/pki", Some(&cookie), None, None).await;
    assert_eq!(api.status, 200);
    assert_eq!(api.json()["root"]["fingerprint"], fingerprint);
    // The keys' handover is celld's alone: cell-web has no route to it.
    let keys = http(cell.addr, "GET", "/api/v1/tls", Some(&cookie), None, None).await;
    assert_eq!(keys.status, 404, "{}", keys.body);
}
