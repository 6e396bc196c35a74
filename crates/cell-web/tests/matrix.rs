//! The authorisation matrix of every route cell-web declares, API and HTML pages alike,
//! generated from the declarations the router is built from (`cell_web::routes`), over
//! real HTTP to a real cell-web and celld: before setup, without a session, with an
//! invented, an expired and a reset-ended session, a peer on admin routes, and a missing
//! or wrong CSRF token. And a crawl of every page as an admin: each link and form on them
//! goes to a declared route, so a route added without a declaration shows up here (the
//! guard also refuses to serve it).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cell_web::routes::{declared, Access, Kind, Route};
use common::*;
use serde_json::json;

fn concrete(path: &str) -> String {
    path.replace("{name}", "alice")
        .replace("{id}", "0123456789abcdef")
        .replace("{action}", "disable")
}

/// Calls `route` with `cookie` (if any) and `csrf` (if any), with a harmless body.
async fn call(cell: &Cell, route: &Route, cookie: Option<&str>, csrf: Option<&str>) -> Response {
    let path = concrete(route.path);
    let method = route.method.as_str();
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(cookie) = cookie {
        headers.push(("cookie", cookie));
    }
    let changes = !matches!(method, "GET" | "HEAD");
    match route.kind {
        Kind::Api => {
            if let Some(csrf) = csrf {
                headers.push(("x-csrf-token", csrf));
            }
            let body = if changes && method != "DELETE" {
                "{}"
            } else {
                ""
            };
            if !body.is_empty() {
                headers.push(("content-type", "application/json"));
            }
            raw(cell.addr, method, &path, &headers, body).await
        }
        Kind::Page => {
            let body = csrf.map(|c| format!("csrf={c}")).unwrap_or_default();
            if changes {
                headers.push(("content-type", "application/x-www-form-urlencoded"));
            }
            raw(cell.addr, method, &path, &headers, &body).await
        }
    }
}

fn is_redirect_to(response: &Response, target: &str) -> bool {
    response.status == 303
        && response
            .head
            .lines()
            .any(|line| line.trim() == format!("location: {target}"))
}

fn assert_not_logged_in(route: &Route, response: &Response, case: &str) {
    let what = format!(
        "{} {} {case}: {} {}",
        route.method, route.path, response.status, response.body
    );
    match route.kind {
        Kind::Api => assert_eq!(response.status, 401, "{what}"),
        Kind::Page => assert!(is_redirect_to(response, "/login"), "{what}"),
    }
}

fn guarded(route: &Route) -> bool {
    matches!(route.access, Access::User | Access::Admin)
}

#[tokio::test]
async fn every_declared_route_is_guarded_as_declared() {
    let routes = declared();
    assert!(routes.len() >= 60, "only {} routes declared", routes.len());
    assert!(routes
        .iter()
        .any(|r| r.kind == Kind::Page && r.path == "/vpn/peers/{name}/{action}"));
    let cell = start().await;

    // Before setup: only the wizard's and public routes answer.
    for route in routes
        .iter()
        .filter(|r| matches!(r.access, Access::Login | Access::User | Access::Admin))
    {
        let response = call(&cell, route, None, None).await;
        let what = format!(
            "{} {} before setup: {}",
            route.method, route.path, response.status
        );
        match route.kind {
            Kind::Api => assert_eq!(response.status, 428, "{what}"),
            Kind::Page => assert!(is_redirect_to(&response, "/setup"), "{what}"),
        }
    }

    let (admin_cookie, admin_csrf) = set_up_as_alice(&cell).await;
    for name in ["bob", "carol"] {
        let user = json!({"name": name, "role": "peer", "password": PASSWORD});
        let created = http(
            cell.addr,
            "POST",
            "/api/v1/users",
            Some(&admin_cookie),
            Some(&admin_csrf),
            Some(&user),
        )
        .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let (peer_cookie, peer_csrf) = log_in(&cell, "bob", PASSWORD).await;
    let (carol_cookie, carol_csrf) = log_in(&cell, "carol", PASSWORD).await;
    // Carol's password is reset elsewhere (by an admin): her session is over.
    let reset = json!({"password": "reset elsewhere!"});
    let done = http(
        cell.addr,
        "PUT",
        "/api/v1/users/carol/password",
        Some(&admin_cookie),
        Some(&admin_csrf),
        Some(&reset),
    )
    .await;
    assert_eq!(done.status, 204, "{}", done.body);
    let invented = format!("cell_session={}", "0".repeat(64));

    let mut checked = 0;
    for route in routes.iter().filter(|r| guarded(r)) {
        assert_not_logged_in(
            route,
            &call(&cell, route, None, None).await,
            "without a session",
        );
        assert_not_logged_in(
            route,
            &call(&cell, route, Some(&invented), None).await,
            "with an invented session",
        );
        assert_not_logged_in(
            route,
            &call(&cell, route, Some(&carol_cookie), Some(&carol_csrf)).await,
            "with a session ended by a password reset",
        );
        if route.access == Access::Admin {
            let response = call(&cell, route, Some(&peer_cookie), Some(&peer_csrf)).await;
            assert_eq!(
                response.status, 403,
                "{} {} as a peer: {}",
                route.method, route.path, response.body
            );
        }
        if route.needs_csrf() {
            for (case, csrf) in [
                ("without a CSRF token", None),
                ("with a wrong CSRF token", Some("0123")),
            ] {
                let response = call(&cell, route, Some(&admin_cookie), csrf).await;
                assert_eq!(
                    response.status, 403,
                    "{} {} {case}: {}",
                    route.method, route.path, response.body
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} guarded routes checked");

    // The login form needs its own token (login CSRF).
    let login = routes
        .iter()
        .find(|r| r.kind == Kind::Page && r.path == "/login" && r.method == "POST")
        .unwrap();
    assert!(login.needs_csrf());
    let forged = raw(
        cell.addr,
        "POST",
        "/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", &format!("cell_login={}", "a".repeat(64))),
        ],
        &format!(
            "csrf={}&username=alice&password=correct+horse+battery",
            "b".repeat(64)
        ),
    )
    .await;
    assert_eq!(
        forged.status, 403,
        "a login form from elsewhere: {}",
        forged.body
    );
    // The API's login takes JSON only as JSON.
    let text_plain = raw(
        cell.addr,
        "POST",
        "/api/v1/session",
        &[("content-type", "text/plain")],
        r#"{"username":"alice","password":"correct horse battery"}"#,
    )
    .await;
    assert_eq!(text_plain.status, 415, "{}", text_plain.body);

    // Nothing the refusals touched changed: three users, alice still an enabled admin.
    let users = http(
        cell.addr,
        "GET",
        "/api/v1/users",
        Some(&admin_cookie),
        None,
        None,
    )
    .await;
    let users = users.json();
    assert_eq!(users.as_array().unwrap().len(), 3, "{users}");
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["disabled"] == false));
}

#[tokio::test]
async fn an_expired_session_opens_no_route() {
    let cell = start_with(|config| config.session_idle = Duration::from_secs(1)).await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for route in declared().iter().filter(|r| guarded(r)) {
        assert_not_logged_in(
            route,
            &call(&cell, route, Some(&cookie), Some(&csrf)).await,
            "with an expired session",
        );
    }
}

/// Where a page leads: (method, path) of each `href="/…"` link and each form's action.
fn targets(html: &str) -> Vec<(&'static str, String)> {
    let path_of = |rest: &str| {
        rest.split('"')
            .next()
            .unwrap_or_default()
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let mut out: Vec<(&'static str, String)> = html
        .match_indices("href=\"/")
        .map(|(at, _)| ("GET", path_of(&html[at + 6..])))
        .collect();
    for (at, _) in html.match_indices("<form ") {
        let tag = html[at..].split('>').next().unwrap_or_default();
        let method = if tag.contains("method=\"get\"") {
            "GET"
        } else {
            "POST"
        };
        if let Some(start) = tag.find("action=\"/") {
            out.push((method, path_of(&tag[start + 8..])));
        }
    }
    out
}

fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(p, s)| (p.starts_with('{') && !s.is_empty()) || p == s)
}

#[tokio::test]
async fn every_link_and_form_on_every_page_goes_to_a_declared_route() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let device = json!({"name": "phone", "keepalive": 25});
    let added = http(
        cell.addr,
        "POST",
        "/api/v1/vpn/peers",
        Some(&cookie),
        Some(&csrf),
        Some(&device),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let routes = declared();
    let mut pages: Vec<String> = routes
        .iter()
        .filter(|r| {
            r.kind == Kind::Page
                && r.method == "GET"
                && !r.path.starts_with("/static")
                && r.path != "/health"
                // A one-time link exists only once made (its own test follows one).
                && !r.path.contains("{ticket}")
                // A file, not a page, and only for a file that exists (the DAV test
                // downloads one).
                && r.path != "/files/download"
                && r.path != "/users/{name}/data/export"
        })
        // Account pages are alice's; device pages are the phone's.
        .map(|r| match r.path.starts_with("/users/") {
            true => r.path.replace("{name}", "alice"),
            false => r.path.replace("{name}", "phone"),
        })
        .collect();
    pages.sort();
    let mut seen = 0;
    for page in &pages {
        let response = raw(cell.addr, "GET", page, &[("cookie", &cookie)], "").await;
        assert!(response.status < 400, "{page}: {}", response.status);
        for (method, target) in targets(&response.body) {
            let declared = routes
                .iter()
                .any(|r| r.method == method && matches(r.path, &target));
            assert!(
                declared,
                "{page} links to {method} {target}, which no route declares"
            );
            seen += 1;
        }
    }
    assert!(seen >= 30, "only {seen} links and forms found");
}
