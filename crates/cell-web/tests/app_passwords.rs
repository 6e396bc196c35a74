//! App passwords on the Security page, over a real cell-web and celld.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test]
async fn an_app_password_is_shown_once_listed_and_revoked() {
    let cell = start().await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let refused = http_form(
        cell.addr,
        "/account/app-passwords",
        &cookie,
        &format!("csrf={csrf}&name="),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("a name of 1 to 40 characters"),
        "{}",
        refused.body
    );
    let made = http_form(
        cell.addr,
        "/account/app-passwords",
        &cookie,
        &format!("csrf={csrf}&name=Alice%27s+phone"),
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let start =
        made.body.find("<code class=\"secret\">").unwrap() + "<code class=\"secret\">".len();
    let password = &made.body[start..start + 19];
    assert!(
        password.chars().filter(|c| *c == '-').count() == 3,
        "{password}"
    );
    assert!(made.body.contains("Alice&#39;s phone"), "{}", made.body);
    let page = http(cell.addr, "GET", "/account", Some(&cookie), None, None).await;
    assert!(!page.body.contains(password), "shown once");
    assert!(page.body.contains("never"), "not used yet");
    let listed = http(
        cell.addr,
        "GET",
        "/api/v1/users/alice/app-passwords",
        Some(&cookie),
        None,
        None,
    )
    .await
    .json();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert!(password.starts_with(&id));
    // The service-login check is celld's alone: not reachable through the web API.
    let oracle = http(
        cell.addr,
        "POST",
        "/api/v1/auth/service",
        Some(&cookie),
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(oracle.status, 404);
    let revoked = http_form(
        cell.addr,
        &format!("/account/app-passwords/{id}/revoke"),
        &cookie,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(revoked.body.contains("Revoked"));
    let listed = http(
        cell.addr,
        "GET",
        "/api/v1/users/alice/app-passwords",
        Some(&cookie),
        None,
        None,
    )
    .await
    .json();
    assert_eq!(listed, serde_json::json!([]));
}

/// A backend that says who the proxy told it the user is, and whether a password came.
async fn who_backend() -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let user = headers
            .get("x-remote-user")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        format!(
            "user={user} authorization={}",
            headers.contains_key("authorization")
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn a_service_behind_the_front_door_is_told_the_user_an_app_password_logged_in() {
    let backend = who_backend().await;
    let cell = start_proxying(vec![cell_web::proxy::ProxyRoute {
        host: "files.home.cell".into(),
        backend,
        body_limit: None,
        vpn_networks: Vec::new(),
        vpn_allowed: Default::default(),
        login: Some("files".into()),
        quota: false,
    }])
    .await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let made = http(
        cell.addr,
        "POST",
        "/api/v1/users/alice/app-passwords",
        Some(&cookie),
        Some(&csrf),
        Some(&serde_json::json!({"name": "DAVx5"})),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let password = made.json()["password"].as_str().unwrap().to_owned();
    let ask = |authorization: Option<String>, forged: bool| {
        let mut headers = vec![("host", "files.home.cell".to_owned())];
        if let Some(value) = authorization {
            headers.push(("authorization", value));
        }
        if forged {
            headers.push(("x-remote-user", "mallory".to_owned()));
        }
        async move {
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            raw(cell.addr, "PROPFIND", "/alice/", &pairs, "").await
        }
    };
    let anonymous = ask(None, true).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(
        anonymous
            .head
            .contains("www-authenticate: basic realm=\"files.home.cell\""),
        "{}",
        anonymous.head
    );
    let wrong = ask(Some(basic("alice", "abcd-efgh-jkmn-pqrs")), false).await;
    assert_eq!(wrong.status, 401);
    let right = ask(Some(basic("alice", &password)), true).await;
    assert_eq!(right.status, 200, "{}", right.body);
    assert_eq!(
        right.body, "user=alice authorization=false",
        "told who (not the client's forged name), never the password"
    );
    let again = ask(Some(basic("Alice", &password)), false).await;
    assert_eq!(again.body, "user=alice authorization=false");
}

/// A backend that counts the bytes of every complete body it receives.
async fn counting_backend() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let received = std::sync::Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(body.len() as u64, Ordering::SeqCst);
            (axum::http::StatusCode::CREATED, "stored")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, received)
}

#[tokio::test]
async fn an_upload_past_the_files_quota_gets_507_and_never_reaches_the_service_whole() {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (backend, received) = counting_backend().await;
    let cell = start_proxying(vec![cell_web::proxy::ProxyRoute {
        host: "files.home.cell".into(),
        backend,
        body_limit: None,
        vpn_networks: Vec::new(),
        vpn_allowed: Default::default(),
        login: Some("files".into()),
        quota: true,
    }])
    .await;
    let (cookie, csrf) = set_up_as_alice(&cell).await;
    let made = http(
        cell.addr,
        "POST",
        "/api/v1/users/alice/app-passwords",
        Some(&cookie),
        Some(&csrf),
        Some(&serde_json::json!({"name": "laptop"})),
    )
    .await;
    let password = made.json()["password"].as_str().unwrap().to_owned();
    let quota = http(
        cell.addr,
        "PATCH",
        "/api/v1/users/alice",
        Some(&cookie),
        Some(&csrf),
        Some(&serde_json::json!({"files_quota_mib": 1})),
    )
    .await;
    assert_eq!(quota.status, 200, "{}", quota.body);
    assert_eq!(quota.json()["files_quota_mib"], 1);
    let authorization = basic("alice", &password);
    let headers = [
        ("host", "files.home.cell"),
        ("authorization", authorization.as_str()),
    ];
    let too_big = "x".repeat(2 << 20);
    let refused = raw(cell.addr, "PUT", "/big.bin", &headers, &too_big).await;
    assert_eq!(refused.status, 507, "{}", refused.body);
    let small = raw(cell.addr, "PUT", "/note.txt", &headers, "hello").await;
    assert_eq!(small.status, 201, "{}", small.body);
    assert_eq!(received.load(Ordering::SeqCst), 5);

    // Without a length: refused once the body passes the quota, and the backend never
    // gets it whole.
    let mut stream = tokio::net::TcpStream::connect(cell.addr).await.unwrap();
    let head = format!(
        "PUT /streamed.bin HTTP/1.1\r\nhost: files.home.cell\r\nauthorization: {authorization}\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 << 10, "y".repeat(64 << 10));
    for _ in 0..40 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 507"), "{answer}");
    assert_eq!(received.load(Ordering::SeqCst), 5, "nothing more stored");

    // Two uploads at once draw on one budget: 700 KiB in flight leaves no room for 400.
    let start = |path: &'static str| {
        let authorization = authorization.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(cell.addr).await.unwrap();
            let head = format!(
                "PUT {path} HTTP/1.1\r\nhost: files.home.cell\r\nauthorization: {authorization}\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            stream
        }
    };
    let send_kib = |kib: usize| format!("{:x}\r\n{}\r\n", kib << 10, "z".repeat(kib << 10));
    let mut first = start("/first.bin").await;
    first.write_all(send_kib(700).as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut second = start("/second.bin").await;
    let _ = second.write_all(send_kib(400).as_bytes()).await;
    let _ = second.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = second.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 507"), "the second: {answer}");
    first.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    first.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "the first: {answer}");

    // A copy is made by the service from what is stored: it must fit in what is left.
    let home = cell.dir.path().join("state/dav/files/alice");
    std::fs::create_dir_all(home.join("album")).unwrap();
    std::fs::write(home.join("album/big.bin"), vec![0u8; 600 << 10]).unwrap();
    std::fs::write(home.join("note.txt"), "hello").unwrap();
    let copy = |destination: &'static str| {
        [
            ("host", "files.home.cell"),
            ("authorization", authorization.as_str()),
            ("destination", destination),
        ]
    };
    let refused = raw(
        cell.addr,
        "COPY",
        "/album",
        &copy("https://files.home.cell/album2"),
        "",
    )
    .await;
    assert_eq!(refused.status, 507, "{}", refused.body);
    let fits = raw(
        cell.addr,
        "COPY",
        "/note.txt",
        &copy("https://files.home.cell/note2.txt"),
        "",
    )
    .await;
    assert_eq!(fits.status, 201, "{}", fits.body);
    let outside = raw(
        cell.addr,
        "COPY",
        "/album/%2e%2e/%2e%2e/bob",
        &copy("https://files.home.cell/bob2"),
        "",
    )
    .await;
    assert_eq!(outside.status, 400, "{}", outside.body);
}
