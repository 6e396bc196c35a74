//! The authorisation matrix, generated from the OpenAPI document: a real celld on a Unix
//! socket and a real cell-web on a TCP port, driven over HTTP. For every operation the
//! document lists: before setup 428 (except the wizard's and public routes); without a
//! session 401; a peer on an admin route 403; a missing or wrong CSRF token 403.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{json, Value};

/// Every operation of the document: method, concrete path, access, whether CSRF applies.
fn operations(document: &Value) -> Vec<(String, String, String, bool)> {
    let mut out = Vec::new();
    for (path, methods) in document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let concrete = path.replace("{name}", "alice");
            out.push((
                method.to_uppercase(),
                concrete,
                operation["x-cell-access"].as_str().unwrap().to_owned(),
                operation["x-cell-csrf"].as_bool().unwrap(),
            ));
        }
    }
    out
}

fn body_for(method: &str) -> Option<Value> {
    matches!(method, "POST" | "PUT" | "PATCH").then(|| json!({}))
}

#[tokio::test]
async fn every_route_is_guarded_as_its_document_says() {
    let cell = start().await;
    let document = http(cell.addr, "GET", "/api/v1/openapi.json", None, None, None).await;
    assert_eq!(document.status, 200);
    let document = document.json();
    let operations = operations(&document);
    assert!(
        operations.len() >= 18,
        "the document lists {} operations",
        operations.len()
    );

    // Before setup: 428 everywhere but the wizard's and public routes.
    for (method, path, access, _) in &operations {
        if access == "public" || access == "setup" {
            continue;
        }
        let response = http(
            cell.addr,
            method,
            path,
            None,
            None,
            body_for(method).as_ref(),
        )
        .await;
        assert_eq!(
            response.status, 428,
            "{method} {path} before setup: {}",
            response.body
        );
        assert_eq!(response.json()["setup"], "/setup");
    }
    for page in ["/", "/settings", "/users", "/audit", "/login", "/account"] {
        let response = http(cell.addr, "GET", page, None, None, None).await;
        assert_eq!(response.status, 303, "{page} before setup");
        assert!(
            response.head.contains("location: /setup"),
            "{page}: {}",
            response.head
        );
    }

    // Set up, then make a peer.
    let code = std::fs::read_to_string(cell.dir.path().join("state/setup-code")).unwrap();
    let setup = json!({
        "code": code.trim(), "cell_name": "home", "domain": {"mode": "internal"},
        "timezone": "UTC", "admin_username": "alice", "admin_password": PASSWORD
    });
    let done = http(cell.addr, "POST", "/api/v1/setup", None, None, Some(&setup)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let login = |name: &str| json!({"username": name, "password": PASSWORD});
    let admin = http(
        cell.addr,
        "POST",
        "/api/v1/session",
        None,
        None,
        Some(&login("alice")),
    )
    .await;
    assert_eq!(admin.status, 200, "{}", admin.body);
    let (admin_cookie, admin_csrf) = (
        admin.cookie(),
        admin.json()["csrf_token"].as_str().unwrap().to_owned(),
    );
    let bob = json!({"name": "bob", "role": "peer", "password": PASSWORD});
    let created = http(
        cell.addr,
        "POST",
        "/api/v1/users",
        Some(&admin_cookie),
        Some(&admin_csrf),
        Some(&bob),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let peer = http(
        cell.addr,
        "POST",
        "/api/v1/session",
        None,
        None,
        Some(&login("bob")),
    )
    .await;
    let (peer_cookie, peer_csrf) = (
        peer.cookie(),
        peer.json()["csrf_token"].as_str().unwrap().to_owned(),
    );

    let mut checked = 0;
    for (method, path, access, csrf) in &operations {
        let body = body_for(method);
        if access != "user" && access != "admin" {
            continue;
        }
        let anonymous = http(cell.addr, method, path, None, None, body.as_ref()).await;
        assert_eq!(anonymous.status, 401, "{method} {path} without a session");
        let forged = http(
            cell.addr,
            method,
            path,
            Some("cell_session=0000000000000000000000000000000000000000000000000000000000000000"),
            None,
            body.as_ref(),
        )
        .await;
        assert_eq!(
            forged.status, 401,
            "{method} {path} with an invented session"
        );
        if access == "admin" {
            let as_peer = http(
                cell.addr,
                method,
                path,
                Some(&peer_cookie),
                Some(&peer_csrf),
                body.as_ref(),
            )
            .await;
            assert_eq!(as_peer.status, 403, "{method} {path} as a peer");
        }
        if *csrf {
            let missing = http(
                cell.addr,
                method,
                path,
                Some(&admin_cookie),
                None,
                body.as_ref(),
            )
            .await;
            assert_eq!(missing.status, 403, "{method} {path} without CSRF token");
            assert_eq!(missing.json()["error"], "missing or wrong CSRF token");
            let wrong = http(
                cell.addr,
                method,
                path,
                Some(&admin_cookie),
                Some("0123"),
                body.as_ref(),
            )
            .await;
            assert_eq!(wrong.status, 403, "{method} {path} with a wrong CSRF token");
        }
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} guarded operations checked");

    // And the refusals changed nothing: alice is still the only admin, bob still exists.
    let users = http(
        cell.addr,
        "GET",
        "/api/v1/users",
        Some(&admin_cookie),
        None,
        None,
    )
    .await;
    assert_eq!(users.json().as_array().unwrap().len(), 2, "{}", users.body);
}

#[tokio::test]
async fn a_session_changes_settings_and_the_audit_log_shows_it() {
    let cell = start().await;
    let code = std::fs::read_to_string(cell.dir.path().join("state/setup-code")).unwrap();
    let setup = json!({
        "code": code.trim(), "cell_name": "home", "domain": {"mode": "internal"},
        "timezone": "UTC", "admin_username": "alice", "admin_password": PASSWORD
    });
    assert_eq!(
        http(cell.addr, "POST", "/api/v1/setup", None, None, Some(&setup))
            .await
            .status,
        200
    );
    let again = http(cell.addr, "POST", "/api/v1/setup", None, None, Some(&setup)).await;
    assert_eq!(again.status, 409, "setup happens once");

    let wrong = http(
        cell.addr,
        "POST",
        "/api/v1/session",
        None,
        None,
        Some(&json!({"username": "alice", "password": "not it at all"})),
    )
    .await;
    assert_eq!(wrong.status, 401);
    let login = http(
        cell.addr,
        "POST",
        "/api/v1/session",
        None,
        None,
        Some(&json!({"username": "alice", "password": PASSWORD})),
    )
    .await;
    assert!(
        login.head.contains("httponly") && login.head.contains("samesite=strict"),
        "{}",
        login.head
    );
    let (cookie, csrf) = (
        login.cookie(),
        login.json()["csrf_token"].as_str().unwrap().to_owned(),
    );

    let settings = http(
        cell.addr,
        "GET",
        "/api/v1/settings",
        Some(&cookie),
        None,
        None,
    )
    .await;
    let mut edited = settings.json();
    let generation = edited["generation"].as_u64().unwrap();
    edited.as_object_mut().unwrap().remove("generation");
    edited["identity"]["timezone"] = json!("Europe/Berlin");
    let invalid = {
        let mut bad = edited.clone();
        bad["identity"]["cell_name"] = json!("no spaces please");
        http(
            cell.addr,
            "PUT",
            "/api/v1/settings",
            Some(&cookie),
            Some(&csrf),
            Some(&bad),
        )
        .await
    };
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.json()["field"], "identity.cell_name");
    let saved = http(
        cell.addr,
        "PUT",
        "/api/v1/settings",
        Some(&cookie),
        Some(&csrf),
        Some(&edited),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert_eq!(saved.json()["generation"].as_u64(), Some(generation + 1));

    let audit = http(
        cell.addr,
        "GET",
        "/api/v1/audit?action=settings",
        Some(&cookie),
        None,
        None,
    )
    .await;
    let entry = &audit.json()[0];
    assert_eq!(entry["actor"], "alice");
    assert_eq!(entry["source"], "127.0.0.1");
    assert_eq!(entry["changes"]["identity.timezone"], "UTC → Europe/Berlin");

    let logout = http(
        cell.addr,
        "DELETE",
        "/api/v1/session",
        Some(&cookie),
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(logout.status, 204);
    let after = http(
        cell.addr,
        "GET",
        "/api/v1/status",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(after.status, 401, "the session ended");
}

#[tokio::test]
async fn vpn_pages_and_downloads_work_through_a_session() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let vpn =
        json!({"subnet4": "10.87.0.0/20", "listen_port": 51820, "endpoint": "vpn.example.org"});
    let put = http(
        cell.addr,
        "PUT",
        "/api/v1/vpn",
        Some(&cookie),
        Some(&csrf),
        Some(&vpn),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);

    // The add-device form: a bad name comes back as a 400 page naming the problem.
    let form = format!("csrf={csrf}&name=bad+name&owner=alice&keepalive=25&files=on");
    let refused = http_form(cell.addr, "/vpn/peers", &cookie, &form).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("id=\"name-error\""),
        "{}",
        refused.body
    );
    let form = format!("csrf={csrf}&name=phone&owner=alice&keepalive=25&files=on");
    let added = http_form(cell.addr, "/vpn/peers", &cookie, &form).await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(added.body.contains("/api/v1/vpn/peers/phone/qr.svg"));
    let no_csrf = http_form(cell.addr, "/vpn/peers", &cookie, "name=tablet&owner=alice").await;
    assert_eq!(no_csrf.status, 403);

    let page = http(cell.addr, "GET", "/vpn", Some(&cookie), None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("phone") && page.body.contains("10.87.0.16"));

    let conf = http(
        cell.addr,
        "GET",
        "/api/v1/vpn/peers/phone/config",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(conf.status, 200);
    assert!(
        conf.head.contains("content-type: text/plain"),
        "{}",
        conf.head
    );
    assert!(
        conf.head.contains("attachment; filename=\"phone.conf\""),
        "{}",
        conf.head
    );
    assert!(
        conf.head.contains("cache-control: no-store"),
        "{}",
        conf.head
    );
    assert!(
        conf.body.contains("Endpoint = vpn.example.org:51820"),
        "{}",
        conf.body
    );
    let png = http(
        cell.addr,
        "GET",
        "/api/v1/vpn/peers/phone/qr.png",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert!(png.head.contains("content-type: image/png"), "{}", png.head);
    let svg = http(
        cell.addr,
        "GET",
        "/api/v1/vpn/peers/phone/qr.svg",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert!(svg.body.contains("<svg"));

    let firewall = http(cell.addr, "GET", "/firewall", Some(&cookie), None, None).await;
    assert_eq!(firewall.status, 200);
    assert!(firewall.body.contains("inet cell"));
    let remove = http_form(
        cell.addr,
        "/vpn/peers/phone/remove",
        &cookie,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(remove.status, 200);
    assert!(remove.body.contains("phone was removed"));
}

#[tokio::test]
async fn the_recovery_shell_password_is_set_on_its_page() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let page = http(cell.addr, "GET", "/recovery", Some(&cookie), None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("open to whoever is at the machine"));
    let differ = format!("csrf={csrf}&password=console+secret+one&again=console+secret+two");
    let refused = http_form(cell.addr, "/recovery/shell-password", &cookie, &differ).await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("id=\"again-error\""));
    let same = format!("csrf={csrf}&password=console+secret+one&again=console+secret+one");
    let saved = http_form(cell.addr, "/recovery/shell-password", &cookie, &same).await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(saved.body.contains("protected by a password"));
    let api = http(
        cell.addr,
        "GET",
        "/api/v1/recovery",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(api.json()["shell_password_set"], true);
    let check = http(
        cell.addr,
        "POST",
        "/api/v1/recovery/shell-password/check",
        Some(&cookie),
        Some(&csrf),
        Some(&json!({"password": "console secret one"})),
    )
    .await;
    assert_eq!(
        check.status, 404,
        "the check is celld's, for the console only"
    );
}

#[tokio::test]
async fn updates_are_managed_on_their_page() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let page = http(cell.addr, "GET", "/update", Some(&cookie), None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Not checked yet"));
    assert!(
        !page.body.contains("action=\"/update/reboot\""),
        "no reboot button without an installed update"
    );
    assert!(
        !page.body.contains("Check for updates</button>"),
        "no check without a server"
    );
    let bad = http_form(
        cell.addr,
        "/update/url",
        &cookie,
        &format!("csrf={csrf}&url=ftp%3A%2F%2Fexample.org%2F"),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("id=\"url-error\""), "{}", bad.body);
    let saved = http_form(
        cell.addr,
        "/update/url",
        &cookie,
        &format!("csrf={csrf}&url=http%3A%2F%2F192.0.2.1%2Fcell"),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(saved.body.contains("value=\"http://192.0.2.1/cell\""));
    assert!(saved.body.contains("Check for updates</button>"));
    let api = http(
        cell.addr,
        "GET",
        "/api/v1/update",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(api.json()["url"], "http://192.0.2.1/cell");
    let install = http_form(
        cell.addr,
        "/update/install",
        &cookie,
        &format!("csrf={csrf}&version=9.9"),
    )
    .await;
    assert_eq!(
        install.status, 400,
        "celld's refusal is shown: {}",
        install.body
    );
    let no_csrf = http_form(cell.addr, "/update/check", &cookie, "csrf=wrong").await;
    assert_eq!(no_csrf.status, 403);

    // What the update job reports: an installed version waiting for its reboot.
    let update_dir = cell.dir.path().join("state/update");
    std::fs::create_dir_all(&update_dir).unwrap();
    std::fs::write(
        update_dir.join("state.json"),
        json!({"pending": "9.9", "failed": ["9.8"]}).to_string(),
    )
    .unwrap();
    let page = http(cell.addr, "GET", "/update", Some(&cookie), None, None).await;
    assert!(page.body.contains("<strong>9.9</strong> is installed"));
    assert!(page.body.contains("action=\"/update/reboot\""));
    assert!(page.body.contains("while it restarts into 9.9"));
    assert!(page.body.contains("never installed again: 9.8"));
}

#[tokio::test]
async fn the_wizard_ends_on_progress_and_a_risky_change_is_kept_from_its_banner() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let done = http(cell.addr, "GET", "/setup/done", None, None, None).await;
    assert_eq!(done.status, 200);
    assert!(done.body.contains("home is set up"), "{}", done.body);
    assert!(done.body.contains("id=\"setup-progress\""), "{}", done.body);
    assert!(
        !done.body.contains("error"),
        "no error text without a login: {}",
        done.body
    );

    let vpn =
        json!({"subnet4": "10.9.0.0/24", "listen_port": 51820, "endpoint": "vpn.example.org"});
    let put = http(
        cell.addr,
        "PUT",
        "/api/v1/vpn",
        Some(&cookie),
        Some(&csrf),
        Some(&vpn),
    )
    .await;
    assert_eq!(
        put.status, 202,
        "a new subnet waits for confirmation: {}",
        put.body
    );
    let generation = put.json()["pending_change"]["generation"].as_u64().unwrap();
    let page = http(cell.addr, "GET", "/vpn", Some(&cookie), None, None).await;
    assert!(page.body.contains("id=\"pending-change\""), "{}", page.body);
    assert!(page.body.contains("Keep this change"), "{}", page.body);
    assert!(
        page.body.contains("<code>vpn.subnet4</code>"),
        "{}",
        page.body
    );

    let form = format!("csrf={csrf}&generation={generation}");
    let mut kept = http_form(cell.addr, "/changes/confirm", &cookie, &form).await;
    for _ in 0..50 {
        if kept.status != 409 {
            break;
        }
        // Confirmed only once the reconciler has applied it.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        kept = http_form(cell.addr, "/changes/confirm", &cookie, &form).await;
    }
    assert_eq!(kept.status, 303, "{}", kept.body);
    let status = http(
        cell.addr,
        "GET",
        "/api/v1/status",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert!(status.json()["pending_change"].is_null(), "{}", status.body);
    let dashboard = http(
        cell.addr,
        "GET",
        &format!("/?kept={generation}"),
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert!(dashboard.body.contains("is kept"), "{}", dashboard.body);
    assert!(!dashboard.body.contains("id=\"pending-change\""));
    let forged = format!("csrf=wrong&generation={generation}");
    assert_eq!(
        http_form(cell.addr, "/changes/confirm", &cookie, &forged)
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn dns_records_are_added_and_removed_on_their_page() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let page = http(cell.addr, "GET", "/dns", Some(&cookie), None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("home.cell"), "{}", page.body);
    let bad = http_form(
        cell.addr,
        "/dns/records",
        &cookie,
        &format!("csrf={csrf}&name=calendar&kind=A&value=192.168.1.9&ttl=300"),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("id=\"name-error\""), "{}", bad.body);
    let unparsable = http_form(
        cell.addr,
        "/dns/records",
        &cookie,
        &format!("csrf={csrf}&name=mail&kind=MX&value=ten&ttl=300"),
    )
    .await;
    assert!(
        unparsable.body.contains("id=\"value-error\""),
        "{}",
        unparsable.body
    );
    let added = http_form(
        cell.addr,
        "/dns/records",
        &cookie,
        &format!("csrf={csrf}&name=printer&kind=A&value=192.168.1.9&ttl=120"),
    )
    .await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(
        added.body.contains("<code>192.168.1.9</code>"),
        "{}",
        added.body
    );
    let api = http(cell.addr, "GET", "/api/v1/dns", Some(&cookie), None, None).await;
    assert_eq!(api.json()["records"][0]["name"], "printer");
    let removed = http_form(
        cell.addr,
        "/dns/records/0/remove",
        &cookie,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(removed.body.contains("No records of your own yet"));
}

#[tokio::test]
async fn the_query_box_upstreams_and_forwarding_zones() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let form = |body: String| {
        let cookie = cookie.clone();
        async move {
            let path = body.split_once('|').map_or("", |(p, _)| p).to_owned();
            let data = body.split_once('|').map_or("", |(_, d)| d).to_owned();
            http_form(cell.addr, &path, &cookie, &data).await
        }
    };
    let added = form(format!(
        "/dns/records|csrf={csrf}&name=printer&kind=A&value=192.168.1.9&ttl=120"
    ))
    .await;
    assert_eq!(added.status, 200, "{}", added.body);
    // The query box answers from the zone the reconciler rendered: wait for it.
    let ask = |query: &str| {
        let cookie = cookie.clone();
        let path = format!("/dns?{query}");
        async move { http(cell.addr, "GET", &path, Some(&cookie), None, None).await }
    };
    let mut answer = ask("ask=printer.home.cell&type=A&from=").await;
    for _ in 0..50 {
        if answer.body.contains("<strong>NOERROR</strong>") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        answer = ask("ask=printer.home.cell&type=A&from=").await;
    }
    assert!(
        answer.body.contains("<strong>NOERROR</strong>"),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("192.168.1.9"), "{}", answer.body);
    let missing = ask("ask=nope.home.cell&type=A").await;
    assert!(missing.body.contains("NXDOMAIN"), "{}", missing.body);
    let outside = ask("ask=example.org&type=A").await;
    assert!(
        outside.body.contains("<strong>REFUSED</strong>"),
        "no upstream yet: {}",
        outside.body
    );
    let nonsense = ask("ask=home.cell&type=BOGUS").await;
    assert!(
        nonsense.body.contains("id=\"ask-error\""),
        "{}",
        nonsense.body
    );

    let bad = form(format!(
        "/dns/upstreams|csrf={csrf}&upstreams=9.9.9.9,+nonsense"
    ))
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("id=\"upstreams-error\""), "{}", bad.body);
    let refused = form(format!("/dns/upstreams|csrf={csrf}&upstreams=127.0.0.1")).await;
    assert_eq!(refused.status, 400, "celld refuses loopback");
    assert!(
        refused.body.contains("id=\"upstreams-error\""),
        "{}",
        refused.body
    );
    let saved = form(format!("/dns/upstreams|csrf={csrf}&upstreams=9.9.9.9")).await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let api = http(cell.addr, "GET", "/api/v1/dns", Some(&cookie), None, None).await;
    assert_eq!(api.json()["upstreams"], serde_json::json!(["9.9.9.9"]));
    let bad_tls = form(format!(
        "/dns/upstreams|csrf={csrf}&upstreams=&upstream_tls=dns.quad9.net"
    ))
    .await;
    assert_eq!(bad_tls.status, 400, "DNS-over-TLS needs listed upstreams");
    assert!(
        bad_tls.body.contains("id=\"upstream_tls-error\""),
        "{}",
        bad_tls.body
    );
    let tls = form(format!(
        "/dns/upstreams|csrf={csrf}&upstreams=9.9.9.9&upstream_tls=dns.quad9.net"
    ))
    .await;
    assert_eq!(tls.status, 200, "{}", tls.body);
    let api = http(cell.addr, "GET", "/api/v1/dns", Some(&cookie), None, None).await;
    assert_eq!(api.json()["upstream_tls"], "dns.quad9.net");

    let own = form(format!(
        "/dns/forward|csrf={csrf}&zone=kids.home.cell&servers=10.88.0.1"
    ))
    .await;
    assert_eq!(own.status, 400);
    assert!(own.body.contains("id=\"zone-error\""), "{}", own.body);
    let forwarded = form(format!(
        "/dns/forward|csrf={csrf}&zone=other.cell&servers=10.88.0.1"
    ))
    .await;
    assert_eq!(forwarded.status, 200, "{}", forwarded.body);
    assert!(
        forwarded.body.contains("<td><code>other.cell</code></td>"),
        "{}",
        forwarded.body
    );
    let mut via = ask("ask=files.other.cell&type=A").await;
    for _ in 0..50 {
        if via.body.contains("10.88.0.1:53") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        via = ask("ask=files.other.cell&type=A").await;
    }
    assert!(
        via.body.contains("forwarded to <code>10.88.0.1:53</code>"),
        "{}",
        via.body
    );
    let removed = form(format!("/dns/forward/0/remove|csrf={csrf}")).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(
        !removed.body.contains("<td><code>other.cell</code></td>"),
        "{}",
        removed.body
    );
}

#[tokio::test]
async fn time_sources_are_set_on_the_network_page() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let page = http(cell.addr, "GET", "/network", Some(&cookie), None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("2.debian.pool.ntp.org"), "{}", page.body);
    assert!(page.body.contains("id=\"ntp-state\""), "{}", page.body);
    let typo = http_form(
        cell.addr,
        "/network/ntp",
        &cookie,
        &format!("csrf={csrf}&servers=time.cloudflare.com+fast&serve=on"),
    )
    .await;
    assert_eq!(typo.status, 400);
    assert!(typo.body.contains("id=\"servers-error\""), "{}", typo.body);
    let refused = http_form(
        cell.addr,
        "/network/ntp",
        &cookie,
        &format!("csrf={csrf}&servers=192.0.2.1+nts&serve=on"),
    )
    .await;
    assert_eq!(refused.status, 400, "celld: NTS needs a host name");
    assert!(
        refused.body.contains("id=\"servers-error\""),
        "{}",
        refused.body
    );
    let saved = http_form(
        cell.addr,
        "/network/ntp",
        &cookie,
        &format!("csrf={csrf}&servers=time.cloudflare.com+nts%0D%0A192.0.2.123"),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let api = http(cell.addr, "GET", "/api/v1/ntp", Some(&cookie), None, None).await;
    let ntp = api.json();
    assert_eq!(ntp["ntp"]["servers"][0]["host"], "time.cloudflare.com");
    assert_eq!(ntp["ntp"]["servers"][0]["nts"], true);
    assert_eq!(ntp["ntp"]["servers"][1]["host"], "192.0.2.123");
    assert_eq!(ntp["ntp"]["serve"], false, "the box was not ticked");
}

#[tokio::test]
async fn the_lan_and_its_dhcp_server_are_set_on_the_network_page() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let post = |path: &'static str, body: String| {
        let cookie = cookie.clone();
        async move { http_form(cell.addr, path, &cookie, &body).await }
    };
    let dhcp_first = post(
        "/network/dhcp",
        format!("csrf={csrf}&enabled=on&pool_start=192.168.1.100&pool_size=20&lease_seconds=3600"),
    )
    .await;
    assert_eq!(dhcp_first.status, 400, "no static address yet");
    assert!(
        dhcp_first.body.contains("id=\"enabled-error\""),
        "{}",
        dhcp_first.body
    );
    let bad = post(
        "/network/lan",
        format!("csrf={csrf}&mode=static&address=192.168.1.2%2F24&gateway=10.0.0.1&dns="),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("id=\"gateway-error\""), "{}", bad.body);
    let saved = post(
        "/network/lan",
        format!(
            "csrf={csrf}&mode=static&address=192.168.1.2%2F24&gateway=192.168.1.1&dns=192.168.1.1"
        ),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(
        saved.body.contains("confirm it on the dashboard"),
        "{}",
        saved.body
    );
    let on = post(
        "/network/dhcp",
        format!("csrf={csrf}&enabled=on&pool_start=192.168.1.100&pool_size=20&lease_seconds=3600"),
    )
    .await;
    assert_eq!(on.status, 200, "{}", on.body);
    assert!(on.body.contains("The DHCP server is on."), "{}", on.body);
    let bad_mac = post(
        "/network/reservations",
        format!("csrf={csrf}&res_mac=nope&res_address=192.168.1.20&res_name=printer"),
    )
    .await;
    assert_eq!(bad_mac.status, 400);
    assert!(
        bad_mac.body.contains("id=\"res_mac-error\""),
        "{}",
        bad_mac.body
    );
    let reserved = post(
        "/network/reservations",
        format!("csrf={csrf}&res_mac=52%3A54%3A00%3AAB%3ACD%3AEF&res_address=192.168.1.20&res_name=printer"),
    )
    .await;
    assert_eq!(reserved.status, 200, "{}", reserved.body);
    assert!(
        reserved.body.contains("<code>52:54:00:ab:cd:ef</code>"),
        "{}",
        reserved.body
    );
    let api = http(cell.addr, "GET", "/api/v1/lan", Some(&cookie), None, None).await;
    assert_eq!(
        api.json()["lan"]["dhcp_server"]["reservations"][0]["name"],
        "printer"
    );
    let removed = post("/network/reservations/0/remove", format!("csrf={csrf}")).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(
        !removed.body.contains("<code>52:54:00:ab:cd:ef</code>"),
        "{}",
        removed.body
    );
}
