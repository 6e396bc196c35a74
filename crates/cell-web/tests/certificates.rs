//! The root certificate's downloads and the Certificates page, over a real cell-web and
//! celld.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

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
    assert!(
        page.body
            .contains("<code>http://cell/ca.mobileconfig</code>")
            && page.body.contains("<svg"),
        "a QR code of the root's plain-HTTP address at the host the browser used"
    );
    assert!(!page.body.contains("<?xml"));
    assert!(!page.body.contains("PRIVATE KEY"));
    let api = http(cell.addr, "GET", "/api/v1/pki", Some(&cookie), None, None).await;
    assert_eq!(api.status, 200);
    assert_eq!(api.json()["root"]["fingerprint"], fingerprint);
    // The keys' handover is celld's alone: cell-web has no route to it.
    let keys = http(cell.addr, "GET", "/api/v1/tls", Some(&cookie), None, None).await;
    assert_eq!(keys.status, 404, "{}", keys.body);
}

/// A property list parsed by Python's plistlib (what an Apple profile is), as JSON: each
/// payload's type, the root's data (base64) and the WireGuard configuration.
fn parse_profile(xml: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profile.mobileconfig");
    std::fs::write(&path, xml).unwrap();
    let script = r#"
import base64, json, plistlib, sys
p = plistlib.load(open(sys.argv[1], "rb"))
out = {"type": p["PayloadType"], "id": p["PayloadIdentifier"], "payloads": []}
for item in p["PayloadContent"]:
    entry = {"type": item["PayloadType"], "uuid": item["PayloadUUID"]}
    if "PayloadContent" in item:
        entry["der"] = base64.b64encode(item["PayloadContent"]).decode()
    if "VendorConfig" in item:
        entry["conf"] = item["VendorConfig"]["WgQuickConfig"]
        entry["subtype"] = item["VPNSubType"]
    out["payloads"].append(entry)
print(json.dumps(out))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Sets the VPN up (with a public endpoint) and adds `device`; the answer to the adding.
async fn vpn_with_device(
    cell: &Cell,
    cookie: &str,
    csrf: &str,
    device: serde_json::Value,
) -> Response {
    let vpn =
        json!({"subnet4": "10.87.0.0/20", "listen_port": 51820, "endpoint": "vpn.example.org"});
    let put = http(
        cell.addr,
        "PUT",
        "/api/v1/vpn",
        Some(cookie),
        Some(csrf),
        Some(&vpn),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    http(
        cell.addr,
        "POST",
        "/api/v1/vpn/peers",
        Some(cookie),
        Some(csrf),
        Some(&device),
    )
    .await
}

#[tokio::test]
async fn apple_profiles_carry_the_root_and_a_devices_vpn() {
    let cell = start().await;
    let root = http(cell.addr, "GET", "/api/v1/pki/root", None, None, None)
        .await
        .json();
    let root_der: String = root["pem"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let trust = http(cell.addr, "GET", "/ca.mobileconfig", None, None, None).await;
    assert_eq!(trust.status, 200);
    assert!(
        trust
            .head
            .contains("content-type: application/x-apple-aspen-config"),
        "{}",
        trust.head
    );
    let profile = parse_profile(&trust.body);
    assert_eq!(profile["type"], "Configuration");
    assert_eq!(profile["payloads"].as_array().unwrap().len(), 1);
    assert_eq!(profile["payloads"][0]["type"], "com.apple.security.root");
    assert_eq!(
        profile["payloads"][0]["der"],
        root_der.as_str(),
        "the root itself"
    );

    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let added = vpn_with_device(&cell, &cookie, &csrf, json!({"name": "phone"})).await;
    assert_eq!(added.status, 201, "{}", added.body);
    let conf = http(
        cell.addr,
        "GET",
        "/api/v1/vpn/peers/phone/config",
        Some(&cookie),
        None,
        None,
    )
    .await;
    let device = http(
        cell.addr,
        "GET",
        "/api/v1/vpn/peers/phone/mobileconfig",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(device.status, 200, "{}", device.body);
    assert!(
        device.head.contains("filename=\"phone.mobileconfig\""),
        "{}",
        device.head
    );
    let profile = parse_profile(&device.body);
    let payloads = profile["payloads"].as_array().unwrap();
    assert_eq!(payloads.len(), 2);
    assert_eq!(payloads[0]["der"], root_der.as_str());
    assert_eq!(payloads[1]["type"], "com.apple.vpn.managed");
    assert_eq!(payloads[1]["subtype"], "com.wireguard.ios");
    assert_eq!(
        payloads[1]["conf"],
        conf.body.as_str(),
        "the device's .conf, whole"
    );
    assert!(conf.body.contains("PrivateKey = "));
    // Downloaded again, the same identifiers: it replaces the installed profile.
    let again = http(
        cell.addr,
        "GET",
        "/api/v1/vpn/peers/phone/mobileconfig",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(
        parse_profile(&again.body)["payloads"][1]["uuid"],
        payloads[1]["uuid"]
    );
    let anonymous = http(
        cell.addr,
        "GET",
        "/api/v1/vpn/peers/phone/mobileconfig",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(
        anonymous.status, 401,
        "the device's key needs its owner's session"
    );
    let page = http(
        cell.addr,
        "GET",
        "/vpn/peers/phone",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert!(page.body.contains("/api/v1/vpn/peers/phone/mobileconfig"));
    assert!(page.body.contains(root["fingerprint"].as_str().unwrap()));
}

#[tokio::test]
async fn acme_is_set_on_the_certificates_page_and_its_failures_are_shown() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let form = |fields: &str| format!("csrf={csrf}&{fields}");
    // A .cell name cannot have a public certificate: refused, nothing saved.
    let refused = http_form(
        cell.addr,
        "/certificates/acme",
        &cookie,
        &form("enabled=on&challenge=http-01&directory=https%3A%2F%2Facme.example%2Fdir&email="),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("own domain"), "{}", refused.body);
    assert!(
        refused.body.contains("https://acme.example/dir"),
        "the form is kept"
    );
    let own = json!({
        "identity": {"cell_name": "home", "domain": {"mode": "own", "domain": "example.org"}, "timezone": "UTC"},
        "services": {}
    });
    let moved = http(
        cell.addr,
        "PUT",
        "/api/v1/settings",
        Some(&cookie),
        Some(&csrf),
        Some(&own),
    )
    .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    for (fields, shown) in [
        (
            "enabled=on&challenge=http-01&directory=http%3A%2F%2Facme.example%2Fdir&email=",
            "must start with https://",
        ),
        (
            "enabled=on&challenge=http-01&directory=https%3A%2F%2Facme.example%2Fdir&email=nobody",
            "an e-mail address has an @",
        ),
    ] {
        let refused = http_form(cell.addr, "/certificates/acme", &cookie, &form(fields)).await;
        assert_eq!(refused.status, 400, "{fields}: {}", refused.body);
        assert!(refused.body.contains(shown), "{fields}: {}", refused.body);
    }
    let view = http(cell.addr, "GET", "/api/v1/acme", Some(&cookie), None, None).await;
    assert_eq!(view.json()["state"], "off", "nothing saved");

    // On, against a CA that does not answer (a closed port): the failure and the backoff
    // are shown on the page.
    let saved = http_form(
        cell.addr,
        "/certificates/acme",
        &cookie,
        &form("enabled=on&challenge=dns-01&directory=https%3A%2F%2F127.0.0.1%3A9%2Fdir&email=me%40example.org"),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(saved.body.contains("asks the CA"), "{}", saved.body);
    let mut page = String::new();
    for _ in 0..100 {
        page = http(cell.addr, "GET", "/certificates", Some(&cookie), None, None)
            .await
            .body;
        if page.contains("id=\"acme-last-error\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        page.contains("<dd id=\"acme-state\">failing</dd>"),
        "{page}"
    );
    assert!(page.contains("refused"), "the cause: {page}");
    assert!(page.contains("id=\"acme-next-attempt\""), "{page}");
    assert!(page.contains("value=\"me@example.org\""), "{page}");
    let view = http(cell.addr, "GET", "/api/v1/acme", Some(&cookie), None, None)
        .await
        .json();
    assert_eq!(view["settings"]["challenge"], "dns-01");
    assert_eq!(view["names"], json!(["example.org"]));
    assert_eq!(view["failures"], 1);
    let again = http_form(
        cell.addr,
        "/certificates/acme/renew",
        &cookie,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.body.contains("ordering a new certificate"));
}

#[tokio::test]
async fn a_devices_profile_is_one_scan_away_and_its_link_works_once() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let added = vpn_with_device(
        &cell,
        &cookie,
        &csrf,
        json!({"name": "phone", "owner": "alice"}),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let page = http(
        cell.addr,
        "GET",
        "/vpn/peers/phone",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<code>http://cell/ca.der</code>"),
        "the root's codes"
    );
    assert!(page
        .body
        .contains("action=\"/vpn/peers/phone/profile-link\""));
    let linked = http_form(
        cell.addr,
        "/vpn/peers/phone/profile-link",
        &cookie,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(linked.status, 200, "{}", linked.body);
    let start = linked
        .body
        .find("https://cell/p/")
        .expect("the link's address");
    let ticket =
        &linked.body[start + "https://cell/p/".len()..start + "https://cell/p/".len() + 32];
    assert!(linked.body.contains("id=\"profile-link\""));
    // The phone has no session: the link alone opens the profile, once.
    let profile = http(cell.addr, "GET", &format!("/p/{ticket}"), None, None, None).await;
    assert_eq!(profile.status, 200, "{}", profile.body);
    assert!(
        profile.head.contains("application/x-apple-aspen-config"),
        "{}",
        profile.head
    );
    let parsed = parse_profile(&profile.body);
    assert_eq!(
        parsed["payloads"].as_array().unwrap().len(),
        2,
        "the root and the VPN"
    );
    let again = http(cell.addr, "GET", &format!("/p/{ticket}"), None, None, None).await;
    assert_eq!(again.status, 404, "spent");
    let forged = http(
        cell.addr,
        "GET",
        "/p/00000000000000000000000000000000",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(forged.status, 404);
    let audit = http(
        cell.addr,
        "GET",
        "/api/v1/audit?action=vpn.peer.config",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert!(audit.body.contains("one-time link"), "{}", audit.body);
}
