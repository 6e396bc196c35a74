//! What the cell-web tests share: a real celld on a Unix socket and a real cell-web on a
//! TCP port, and raw HTTP/1.1 requests to it.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PASSWORD: &str = "correct horse battery";

pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn cookie(&self) -> String {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_owned()
    }
}

pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    csrf: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: cell\r\nconnection: close\r\n");
    if let Some(cookie) = cookie {
        request.push_str(&format!("cookie: {cookie}\r\n"));
    }
    if let Some(csrf) = csrf {
        request.push_str(&format!("x-csrf-token: {csrf}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("content-type: application/json\r\n");
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Response {
        status,
        head: head.to_lowercase(),
        body: body.to_owned(),
    }
}

pub struct Cell {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

pub async fn start() -> Cell {
    start_with(|_| {}).await
}

/// A cell whose celld configuration `adjust` changes first.
pub async fn start_with(adjust: impl FnOnce(&mut celld::Config)) -> Cell {
    start_full(adjust, Vec::new()).await
}

/// A cell whose front door also proxies `routes`.
#[allow(dead_code)]
pub async fn start_proxying(routes: Vec<cell_web::proxy::ProxyRoute>) -> Cell {
    start_full(|_| {}, routes).await
}

async fn start_full(
    adjust: impl FnOnce(&mut celld::Config),
    routes: Vec<cell_web::proxy::ProxyRoute>,
) -> Cell {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("celld.sock");
    let listener = celld::socket::bind(&socket).unwrap();
    let daemon = celld::daemon::testing::daemon_with(dir.path(), adjust);
    tokio::spawn(celld::serve(listener, daemon, std::future::pending()));
    let state = cell_web::AppState::new(celld_client::CelldClient::new(socket), false);
    state.proxy.install(routes);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let app = cell_web::router(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(tcp, app).await });
    Cell { addr, dir }
}

pub async fn http_form(addr: SocketAddr, path: &str, cookie: &str, body: &str) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: cell\r\nconnection: close\r\ncookie: {cookie}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Response {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        head: head.to_lowercase(),
        body: body.to_owned(),
    }
}

/// Claims the cell with alice as its administrator and logs her in: (cookie, CSRF token).
pub async fn set_up_as_alice(cell: &Cell) -> (String, String) {
    let code = std::fs::read_to_string(cell.dir.path().join("state/setup-code")).unwrap();
    let setup = json!({
        "code": code.trim(), "cell_name": "home", "domain": {"mode": "internal"},
        "timezone": "UTC", "admin_username": "alice", "admin_password": PASSWORD
    });
    let done = http(cell.addr, "POST", "/api/v1/setup", None, None, Some(&setup)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let login = http(
        cell.addr,
        "POST",
        "/api/v1/session",
        None,
        None,
        Some(&json!({"username": "alice", "password": PASSWORD})),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    (
        login.cookie(),
        login.json()["csrf_token"].as_str().unwrap().to_owned(),
    )
}

/// Any request: `headers` as given (`host: cell` unless they name one), and a body when
/// not empty.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request.push_str("host: cell\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Response {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        head: head.to_lowercase(),
        body: body.to_owned(),
    }
}

/// Logs `name` in through the API: (cookie, CSRF token).
pub async fn log_in(cell: &Cell, name: &str, password: &str) -> (String, String) {
    let login = http(
        cell.addr,
        "POST",
        "/api/v1/session",
        None,
        None,
        Some(&json!({"username": name, "password": password})),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    (
        login.cookie(),
        login.json()["csrf_token"].as_str().unwrap().to_owned(),
    )
}
