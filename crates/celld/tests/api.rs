//! celld's local API in-process: a real daemon on a temporary state directory, requests
//! arriving as root (cellctl), as cell-web's user, or as a stranger.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use celld::network::RecordedNetwork;
use celld::peer::Peer;
use celld::system::RecordedSystem;
use celld::{Config, Daemon};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const WEB_UID: u32 = 990;
const PASSWORD: &str = "correct horse battery";

struct Live {
    device: cell_wg::DesiredDevice,
    firewall: cell_firewall::Plan,
}

struct Cell {
    dir: tempfile::TempDir,
    daemon: Arc<Daemon>,
    system: Arc<RecordedSystem>,
    network: Arc<RecordedNetwork>,
}

impl Cell {
    fn new() -> Self {
        Self::with_window(celld::daemon::DEFAULT_CONFIRM_WINDOW)
    }

    /// The hostname and time-zone changes asked of the system (not unit restarts).
    fn identity_requests(&self) -> Vec<String> {
        self.system
            .requests()
            .into_iter()
            .filter(|r| !r.starts_with("restart=") && !r.starts_with("start="))
            .collect()
    }

    /// A cell whose risky changes wait `window` for their confirmation.
    fn with_window(window: std::time::Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let system = Arc::new(RecordedSystem::default());
        let mut config = Config::new(
            dir.path().join("state"),
            dir.path().to_owned(),
            vec![0, WEB_UID],
        );
        config.wg_interface = "cellwg-test".into();
        // The DAV machine's state stays the test's own (no foreign owners unprivileged).
        config.machine_owners = false;
        config.uplink_resolvers = dir.path().join("resolv.conf");
        config.confirm_window = window;
        config.timing.retry_first = std::time::Duration::from_millis(20);
        config.timing.retry_max = std::time::Duration::from_millis(200);
        let network = Arc::new(RecordedNetwork::default());
        let daemon = Daemon::start(config, system.clone(), network.clone()).unwrap();
        Self {
            dir,
            daemon,
            system,
            network,
        }
    }

    /// The kernel's VPN state once the reconciler has applied the generation in force.
    async fn live(&self) -> Live {
        self.daemon.settled().await;
        Live {
            device: self.network.live_device().unwrap(),
            firewall: self.network.live_firewall().unwrap(),
        }
    }

    fn router(&self, uid: u32) -> Router {
        celld::api::router(self.daemon.clone()).layer(MockConnectInfo(Peer {
            uid: Some(uid),
            pid: Some(1),
        }))
    }

    async fn call(
        &self,
        uid: u32,
        actor: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(celld::api::SOURCE_HEADER, "192.0.2.10");
        if let Some(actor) = actor {
            request = request.header(celld::api::SESSION_HEADER, self.session_of(actor));
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router(uid)
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    /// A request's status, headers and body as they are (for downloads).
    async fn raw(
        &self,
        uid: u32,
        actor: Option<&str>,
        method: Method,
        path: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(celld::api::SOURCE_HEADER, "192.0.2.10");
        if let Some(actor) = actor {
            request = request.header(celld::api::SESSION_HEADER, self.session_of(actor));
        }
        let response = self
            .router(uid)
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, bytes.to_vec())
    }

    /// A fresh session token of `name` (as cell-web would forward after a login), or an
    /// invented one for a user who cannot have one.
    fn session_of(&self, name: &str) -> String {
        cell_model::Username::parse(name)
            .ok()
            .and_then(|name| {
                self.daemon
                    .open_session(&name, celld::sessions::Origin::default())
            })
            .map(|(token, _)| token)
            .unwrap_or_else(|| "0".repeat(64))
    }

    /// A request carrying the session `token`.
    async fn with_token(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(celld::api::SOURCE_HEADER, "192.0.2.10")
            .header(celld::api::SESSION_HEADER, token);
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router(WEB_UID)
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    /// Logs `name` in with `password`: the session's token.
    async fn log_in(&self, name: &str, password: &str) -> String {
        let (status, body) = self
            .anonymous(Method::POST, "/v1/auth/login", login(name, password))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// celld stops and starts again on the same state.
    fn restart(self) -> Self {
        let Self {
            dir,
            daemon,
            system,
            network,
        } = self;
        let config = daemon.config().clone();
        drop(daemon);
        let daemon = Daemon::start(config, system.clone(), network.clone()).unwrap();
        Self {
            dir,
            daemon,
            system,
            network,
        }
    }

    async fn root(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(0, None, method, path, body).await
    }

    async fn web(
        &self,
        actor: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(WEB_UID, Some(actor), method, path, body).await
    }

    async fn anonymous(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(WEB_UID, None, method, path, Some(body)).await
    }

    async fn setup_code(&self) -> String {
        let (_, body) = self.root(Method::GET, "/v1/setup-code", None).await;
        body["code"].as_str().unwrap().to_owned()
    }

    async fn set_up(&self) {
        let code = self.setup_code().await;
        let (status, body) = self
            .anonymous(Method::POST, "/v1/setup", setup_body(&code))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn generation(&self) -> u64 {
        self.root(Method::GET, "/v1/status", None).await.1["generation"]
            .as_u64()
            .unwrap()
    }

    fn audit_actions(&self) -> Vec<String> {
        let text =
            std::fs::read_to_string(self.dir.path().join("state/audit.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["action"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }
}

fn setup_body(code: &str) -> Value {
    json!({
        "code": code,
        "cell_name": "home",
        "domain": {"mode": "internal"},
        "timezone": "Europe/Berlin",
        "admin_username": "alice",
        "admin_password": PASSWORD,
        "services": {"calendar": true, "files": true}
    })
}

fn settings_body() -> Value {
    json!({
        "identity": {"cell_name": "home", "domain": {"mode": "internal"}, "timezone": "Europe/Berlin"},
        "services": {"calendar": true, "files": true, "mail": false, "webdav": false}
    })
}

fn login(username: &str, password: &str) -> Value {
    json!({"username": username, "password": password})
}

#[tokio::test]
async fn a_fresh_cell_is_not_set_up_and_shows_its_code_on_the_console() {
    let cell = Cell::new();
    let (status, body) = cell.root(Method::GET, "/v1/status", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["setup_complete"], false);
    assert_eq!(body["generation"], 0);
    let code = cell.setup_code().await;
    let issue = std::fs::read_to_string(cell.dir.path().join("console.issue")).unwrap();
    assert!(issue.contains(&format!("Setup code: {code}")));
}

#[tokio::test]
async fn only_root_reads_the_setup_code_and_strangers_are_refused() {
    let cell = Cell::new();
    let (status, _) = cell
        .call(WEB_UID, None, Method::GET, "/v1/setup-code", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cell.call(1234, None, Method::GET, "/v1/status", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn setup_needs_the_code_and_happens_once() {
    let cell = Cell::new();
    let (status, body) = cell
        .anonymous(Method::POST, "/v1/setup", setup_body("WRONG-CODE"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "code");
    assert_eq!(cell.generation().await, 0, "a refused setup stores nothing");

    cell.set_up().await;
    let (_, status) = cell.root(Method::GET, "/v1/status", None).await;
    assert_eq!(status["setup_complete"], true);
    assert_eq!(status["cell_name"], "home");
    cell.daemon.settled().await;
    assert_eq!(
        cell.identity_requests(),
        vec!["hostname=home", "timezone=Europe/Berlin"]
    );
    assert!(
        cell.system
            .requests()
            .contains(&"restart=cell-ntp.service".to_owned()),
        "chrony is started with the configuration celld wrote"
    );
    let (_, code) = cell.root(Method::GET, "/v1/setup-code", None).await;
    assert!(code["code"].is_null(), "the code is spent");

    let (status, _) = cell
        .anonymous(Method::POST, "/v1/setup", setup_body("AAAA-AAAA"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        cell.audit_actions(),
        vec!["setup.failure", "setup.complete"]
    );
}

#[tokio::test]
async fn setup_fields_are_validated_by_name() {
    let cell = Cell::new();
    let code = cell.setup_code().await;
    for (field, value) in [
        ("cell_name", json!("bad name")),
        ("timezone", json!("../etc")),
        ("admin_username", json!("Alice!")),
        ("admin_password", json!("short")),
    ] {
        let mut body = setup_body(&code);
        body[field] = value;
        let (status, error) = cell.anonymous(Method::POST, "/v1/setup", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(error["field"], field);
    }
    assert_eq!(cell.generation().await, 0);
}

#[tokio::test]
async fn login_checks_the_password_and_throttles_failures() {
    let cell = Cell::new();
    cell.set_up().await;
    let (status, body) = cell
        .anonymous(Method::POST, "/v1/auth/login", login("alice", PASSWORD))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session"]["name"], "alice");
    assert_eq!(body["session"]["role"], "admin");
    assert_eq!(body["token"].as_str().unwrap().len(), 64);

    let (status, body) = cell
        .anonymous(Method::POST, "/v1/auth/login", login("nobody", PASSWORD))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "wrong username, password or code");

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let wrong = login("alice", "wrong password!");
        statuses.push(
            cell.anonymous(Method::POST, "/v1/auth/login", wrong)
                .await
                .0,
        );
    }
    assert_eq!(
        statuses[..2],
        [StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED]
    );
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    let (status, _) = cell
        .anonymous(Method::POST, "/v1/auth/login", login("alice", PASSWORD))
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(
        cell.audit_actions()
            .iter()
            .filter(|a| *a == "auth.failure")
            .count()
            >= 3
    );
}

#[tokio::test]
async fn every_invalid_settings_field_is_named_and_changes_nothing() {
    let cell = Cell::new();
    cell.set_up().await;
    let generation = cell.generation().await;
    let cases = [
        ("/identity/cell_name", json!("-bad"), "identity.cell_name"),
        ("/identity/cell_name", json!(""), "identity.cell_name"),
        (
            "/identity/timezone",
            json!("Not A Zone"),
            "identity.timezone",
        ),
        (
            "/identity/domain",
            json!({"mode": "own", "domain": "nodot"}),
            "identity.domain.domain",
        ),
        (
            "/identity/domain",
            json!({"mode": "own"}),
            "identity.domain.domain",
        ),
        (
            "/identity/domain",
            json!({"mode": "dynamic", "provider": "nope", "hostname": "a.b.org"}),
            "identity.domain.provider",
        ),
        (
            "/identity/domain",
            json!({"mode": "elsewhere"}),
            "identity.domain.mode",
        ),
        ("/services/mail", json!("yes"), "services.mail"),
        ("/services/calendar", json!(1), "services.calendar"),
    ];
    for (pointer, value, field) in cases {
        let mut body = settings_body();
        *body.pointer_mut(pointer).unwrap() = value.clone();
        let (status, error) = cell
            .web("alice", Method::PUT, "/v1/settings", Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{pointer} = {value}");
        assert_eq!(error["field"], field, "{pointer} = {value}: {error}");
        assert_eq!(
            cell.generation().await,
            generation,
            "{pointer} changed the store"
        );
    }
}

#[tokio::test]
async fn a_settings_change_is_stored_audited_and_applied() {
    let cell = Cell::new();
    cell.set_up().await;
    let generation = cell.generation().await;
    let mut body = settings_body();
    body["identity"]["timezone"] = json!("America/New_York");
    let (status, view) = cell
        .web("alice", Method::PUT, "/v1/settings", Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["generation"], generation + 1);
    let (_, again) = cell
        .web("alice", Method::PUT, "/v1/settings", Some(body))
        .await;
    assert_eq!(
        again["generation"],
        generation + 1,
        "the same settings add no generation"
    );
    cell.daemon.settled().await;
    assert_eq!(
        cell.identity_requests().last().unwrap(),
        "timezone=America/New_York"
    );
    let (_, entries) = cell
        .root(Method::GET, "/v1/audit?action=settings", None)
        .await;
    assert_eq!(entries[0]["actor"], "alice");
    assert_eq!(entries[0]["source"], "192.0.2.10");
    assert_eq!(
        entries[0]["changes"]["identity.timezone"],
        "Europe/Berlin → America/New_York"
    );
}

#[tokio::test]
async fn a_new_user_does_not_inherit_a_deleted_users_mailbox() {
    let cell = Cell::new();
    cell.set_up().await;
    // What the mail machine leaves of a user whose removal was cut short.
    let mailbox = cell.dir.path().join("state/mail/mailboxes/bob");
    std::fs::create_dir_all(mailbox.join("Maildir/cur")).unwrap();
    let bob = json!({"name": "bob", "role": "peer", "password": PASSWORD});
    let (status, body) = cell
        .web("alice", Method::POST, "/v1/users", Some(bob.clone()))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("name")),
        "{body}"
    );
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("mailbox") && error.contains("delete"),
        "{body}"
    );
    // Deleting the name again removes what it left; then the name is free.
    let (status, body) = cell
        .web("alice", Method::DELETE, "/v1/users/bob", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(!mailbox.exists());
    assert!(cell
        .audit_actions()
        .contains(&"user.data_remove".to_owned()));
    let (status, _) = cell
        .web("alice", Method::DELETE, "/v1/users/bob", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing left to remove");
    let (status, _) = cell
        .web("alice", Method::POST, "/v1/users", Some(bob))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn an_account_is_exported_by_its_owner_and_its_data_goes_with_it() {
    let cell = Cell::new();
    cell.set_up().await;
    for name in ["bob", "carol"] {
        let user = json!({"name": name, "role": "peer", "password": PASSWORD});
        let (status, _) = cell
            .web("alice", Method::POST, "/v1/users", Some(user))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let state = cell.dir.path().join("state");
    let write = |path: &str, text: &str| {
        let path = state.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "mail/mailboxes/bob/Maildir/cur/1.cell:2,S",
        "Subject: hello\r\n\r\nhi bob",
    );
    write("dav/files/bob/notes/todo.txt", "buy milk");
    write(
        "dav/collections/collection-root/bob/calendar/.Radicale.props",
        r#"{"tag": "VCALENDAR"}"#,
    );
    write(
        "dav/collections/collection-root/bob/calendar/e.ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e\r\nSUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    );

    let (status, _, _) = cell
        .raw(WEB_UID, Some("carol"), Method::GET, "/v1/users/bob/export")
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "another peer cannot export bob"
    );
    for actor in ["bob", "alice"] {
        let (status, headers, archive) = cell
            .raw(WEB_UID, Some(actor), Method::GET, "/v1/users/bob/export")
            .await;
        assert_eq!(status, StatusCode::OK, "{actor}");
        assert_eq!(headers["content-type"], "application/x-tar");
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\"bob-"),
            "{disposition}"
        );
        let mut seen = std::collections::BTreeMap::new();
        for entry in tar::Archive::new(&archive[..]).entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            seen.insert(path, text);
        }
        assert_eq!(seen["bob/files/notes/todo.txt"], "buy milk", "{seen:?}");
        assert!(seen["bob/mail/Maildir/cur/1.cell:2,S"].contains("hi bob"));
        assert!(seen["bob/calendars/calendar.ics"].contains("SUMMARY:Dentist"));
    }
    assert!(cell.audit_actions().contains(&"user.export".to_owned()));

    // Refused service logins of bob's, as his devices make once he is disabled.
    let disable = json!({"disabled": true});
    let (status, _) = cell
        .web("alice", Method::PATCH, "/v1/users/bob", Some(disable))
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..3 {
        let (status, _) = cell
            .anonymous(
                Method::POST,
                "/v1/auth/service",
                service_login("files", "bob", PASSWORD),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = cell
        .web("alice", Method::DELETE, "/v1/users/bob", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for gone in [
        "mail/mailboxes/bob",
        "dav/files/bob",
        "dav/collections/collection-root/bob",
    ] {
        assert!(!state.join(gone).exists(), "{gone} is left");
    }
    let (status, _, _) = cell
        .raw(WEB_UID, Some("alice"), Method::GET, "/v1/users/bob/export")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing is left to export");
    let bob = json!({"name": "bob", "role": "peer", "password": "another passphrase"});
    let (status, body) = cell
        .web("alice", Method::POST, "/v1/users", Some(bob))
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the name is free again: {body}"
    );
    cell.log_in("bob", "another passphrase").await;
}

#[tokio::test]
async fn peers_cannot_manage_and_the_last_admin_stays() {
    let cell = Cell::new();
    cell.set_up().await;
    let bob = json!({"name": "bob", "role": "peer", "password": PASSWORD});
    let (status, _) = cell
        .web("alice", Method::POST, "/v1/users", Some(bob.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = cell
        .web("alice", Method::POST, "/v1/users", Some(bob))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("name"))
    );

    let (status, _) = cell
        .web("bob", Method::PUT, "/v1/settings", Some(settings_body()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cell.web("bob", Method::GET, "/v1/audit", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, users) = cell.web("bob", Method::GET, "/v1/users", None).await;
    assert_eq!(
        users.as_array().unwrap().len(),
        1,
        "a peer sees only themself"
    );
    let (status, _) = cell.web("mallory", Method::GET, "/v1/users", None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "unknown actors are refused"
    );

    let disable = json!({"disabled": true});
    let (status, _) = cell
        .web(
            "alice",
            Method::PATCH,
            "/v1/users/alice",
            Some(disable.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = cell
        .web("alice", Method::DELETE, "/v1/users/alice", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = cell
        .web("alice", Method::PATCH, "/v1/users/bob", Some(disable))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = cell
        .anonymous(Method::POST, "/v1/auth/login", login("bob", PASSWORD))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a disabled user cannot log in"
    );
    let (status, _) = cell
        .web("alice", Method::DELETE, "/v1/users/bob", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn password_changes_need_the_current_one_unless_an_admin_resets() {
    let cell = Cell::new();
    cell.set_up().await;
    let bob = json!({"name": "bob", "role": "peer", "password": PASSWORD});
    cell.web("alice", Method::POST, "/v1/users", Some(bob))
        .await;
    let wrong_current =
        json!({"password": "a new long password", "current_password": "wrong password!!"});
    let (status, body) = cell
        .web(
            "bob",
            Method::PUT,
            "/v1/users/bob/password",
            Some(wrong_current),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("current_password"))
    );
    let new = json!({"password": "a new long password"});
    let (status, _) = cell
        .web("bob", Method::PUT, "/v1/users/alice/password", Some(new))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let reset = json!({"password": "reset by alice!"});
    let (status, _) = cell
        .web("alice", Method::PUT, "/v1/users/bob/password", Some(reset))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/login",
            login("bob", "reset by alice!"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn totp_second_factor_and_recovery_codes() {
    let cell = Cell::new();
    cell.set_up().await;
    let (status, enrolment) = cell
        .web("alice", Method::POST, "/v1/users/alice/totp", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let confirm = |code: &str| json!({ "code": code });
    let (status, body) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/users/alice/totp/confirm",
            Some(confirm("000000x")),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("code"))
    );
    let code = celld::totp::current_code(&secret, "alice").unwrap();
    let (status, codes) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/users/alice/totp/confirm",
            Some(confirm(&code)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let recovery = codes["recovery_codes"][0].as_str().unwrap().to_owned();
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);

    let with = |second: Option<&str>| json!({"username": "alice", "password": PASSWORD, "second_factor": second});
    let (status, body) = cell
        .anonymous(Method::POST, "/v1/auth/login", with(None))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("second_factor"))
    );
    let (status, _) = cell
        .anonymous(Method::POST, "/v1/auth/login", with(Some(&code)))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the code that confirmed the enrolment does not log in as well"
    );
    // The phone's clock a step ahead: a new code, accepted once.
    let now = jiff::Timestamp::now().as_second() as u64;
    let next = celld::totp::code_at(&secret, "alice", now + 30).unwrap();
    let (status, _) = cell
        .anonymous(Method::POST, "/v1/auth/login", with(Some(&next)))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = cell
        .anonymous(Method::POST, "/v1/auth/login", with(Some(&next)))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a replayed code is refused"
    );
    let upper = recovery.to_uppercase();
    let (status, _) = cell
        .anonymous(Method::POST, "/v1/auth/login", with(Some(&upper)))
        .await;
    assert_eq!(status, StatusCode::OK, "a recovery code works once");
    let (status, _) = cell
        .anonymous(Method::POST, "/v1/auth/login", with(Some(&recovery)))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "and only once");
    let (_, user) = cell
        .web("alice", Method::GET, "/v1/users/alice", None)
        .await;
    assert_eq!(user["totp_enabled"], true);
    let stored = std::fs::read_to_string(cell.dir.path().join("state/settings.toml")).unwrap();
    assert!(!stored.contains(&secret) || stored.contains("totp_secret"));
    assert!(
        !stored.contains(&recovery.replace('-', "")),
        "recovery codes are stored hashed"
    );
}

#[tokio::test]
async fn the_audit_chain_verifies_and_secrets_never_appear() {
    let cell = Cell::new();
    cell.set_up().await;
    let bob = json!({"name": "bob", "role": "peer", "password": PASSWORD});
    cell.web("alice", Method::POST, "/v1/users", Some(bob))
        .await;
    let (status, result) = cell.root(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["intact"], true);
    assert_eq!(result["entries"], 2);
    let log = std::fs::read_to_string(cell.dir.path().join("state/audit.jsonl")).unwrap();
    assert!(!log.contains(PASSWORD) && !log.contains("argon2"), "{log}");
}

async fn add_peer_user(cell: &Cell, name: &str) {
    let user = json!({"name": name, "role": "peer", "password": PASSWORD});
    let (status, body) = cell
        .web("alice", Method::POST, "/v1/users", Some(user))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn setup_creates_the_vpn_and_peers_get_distinct_addresses() {
    let cell = Cell::new();
    cell.set_up().await;
    let (status, vpn) = cell.web("alice", Method::GET, "/v1/vpn", None).await;
    assert_eq!(status, StatusCode::OK, "{vpn}");
    assert_eq!(vpn["subnet4"], "10.87.0.0/20");
    assert!(vpn["prefix6"].as_str().unwrap().starts_with("fd"));
    assert_eq!(vpn["public_key"].as_str().unwrap().len(), 44);

    let (status, phone) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/vpn/peers",
            Some(json!({"name": "phone", "access": {"files": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{phone}");
    let (_, laptop) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/vpn/peers",
            Some(json!({"name": "laptop"})),
        )
        .await;
    assert_eq!(phone["address4"], "10.87.0.16");
    assert_eq!(laptop["address4"], "10.87.0.17");
    assert_eq!(phone["owner"], "alice");
    assert_eq!(phone["key_on_cell"], true);

    // The plan handed to the kernel has both peers and phone in the files set only.
    let plan = cell.live().await;
    assert_eq!(plan.device.peers.len(), 2);
    assert_eq!(plan.firewall.sets["files4"].len(), 1);
    assert!(plan.firewall.sets["files4"].contains(&"10.87.0.16".parse().unwrap()));

    // Removing a peer frees its address for the next one, and leaves no key behind.
    let (status, _) = cell
        .web("alice", Method::DELETE, "/v1/vpn/peers/phone", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let keys = std::fs::read_dir(cell.dir.path().join("state/secrets"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("peer-")
        })
        .count();
    assert_eq!(keys, 1, "only laptop's key remains");
    let plan = cell.live().await;
    assert_eq!(plan.device.peers.len(), 1);
    assert!(plan.firewall.sets["files4"].is_empty());
    let (_, tablet) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/vpn/peers",
            Some(json!({"name": "tablet"})),
        )
        .await;
    assert_eq!(tablet["address4"], "10.87.0.16");
}

#[tokio::test]
async fn bad_vpn_input_is_refused_by_field_and_changes_nothing() {
    let cell = Cell::new();
    cell.set_up().await;
    cell.web(
        "alice",
        Method::POST,
        "/v1/vpn/peers",
        Some(json!({"name": "phone"})),
    )
    .await;
    let before = cell.generation().await;
    cell.daemon.settled().await;
    let writes = cell.network.requests("firewall");
    let cases = [
        (json!({"name": "bad name"}), "name"),
        (json!({"name": "phone"}), "name"),
        (
            json!({"name": "x", "public_key": "not-a-key"}),
            "public_key",
        ),
        (json!({"name": "x", "owner": "nobody"}), "owner"),
        (json!({"name": "x", "keepalive": 99999}), "keepalive"),
        (
            json!({"name": "x", "keepalive": 4000}),
            "vpn.peers[1].keepalive",
        ),
        (
            json!({"name": "x", "access": {"printer": true}}),
            "access.printer",
        ),
    ];
    for (body, field) in cases {
        let (status, error) = cell
            .web("alice", Method::POST, "/v1/vpn/peers", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
        assert_eq!(error["field"], field, "{body}: {error}");
    }
    let edits = [
        (
            json!({"subnet4": "8.8.8.0/24", "listen_port": 51820}),
            "subnet4",
        ),
        (
            json!({"subnet4": "10.9.0.0/29", "listen_port": 51820}),
            "vpn.subnet4",
        ),
        (
            json!({"subnet4": "192.168.0.0/16", "listen_port": 51820}),
            "subnet4",
        ),
        (
            json!({"subnet4": "10.9.0.0/24", "listen_port": 0}),
            "vpn.listen_port",
        ),
        (
            json!({"subnet4": "10.9.0.0/24", "listen_port": 51820, "endpoint": "no such"}),
            "endpoint",
        ),
    ];
    for (body, field) in edits {
        let (status, error) = cell
            .web("alice", Method::PUT, "/v1/vpn", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
        assert_eq!(error["field"], field, "{body}: {error}");
    }
    assert_eq!(cell.generation().await, before, "nothing was stored");
    cell.daemon.settled().await;
    assert_eq!(
        cell.network.requests("firewall"),
        writes,
        "nothing was applied"
    );
}

#[tokio::test]
async fn an_exhausted_subnet_is_named() {
    let cell = Cell::new();
    cell.set_up().await;
    let (status, body) = cell
        .web("alice", Method::PUT, "/v1/vpn", Some(json!({"subnet4": "10.9.0.0/27", "listen_port": 51820, "endpoint": "vpn.example.org"})))
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "a new subnet waits for confirmation: {body}"
    );
    for i in 0..15 {
        let (status, body) = cell
            .web(
                "alice",
                Method::POST,
                "/v1/vpn/peers",
                Some(json!({"name": format!("d{i}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/vpn/peers",
            Some(json!({"name": "one-more"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "vpn.subnet4");
    let secrets = std::fs::read_dir(cell.dir.path().join("state/secrets"))
        .unwrap()
        .count();
    assert_eq!(
        secrets,
        5 + 15,
        "identity, server key, the mail login nonce, the root and the leaf certificate, and one key per stored device"
    );
}

#[tokio::test]
async fn peer_users_see_and_download_only_their_own_devices() {
    let cell = Cell::new();
    cell.set_up().await;
    add_peer_user(&cell, "bob").await;
    cell.web(
        "alice",
        Method::PUT,
        "/v1/vpn",
        Some(json!({"subnet4": "10.87.0.0/20", "listen_port": 51820, "endpoint": "203.0.113.7"})),
    )
    .await;
    for (name, owner) in [("bobphone", "bob"), ("alicephone", "alice")] {
        let (status, body) = cell
            .web(
                "alice",
                Method::POST,
                "/v1/vpn/peers",
                Some(json!({"name": name, "owner": owner, "keepalive": 25})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, list) = cell.web("bob", Method::GET, "/v1/vpn/peers", None).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bobphone"]);
    cell.daemon.settled().await;
    let (_, dns) = cell.web("bob", Method::GET, "/v1/dns", None).await;
    assert_eq!(
        dns["snapshot"]["peers"].as_array().map(Vec::len),
        Some(1),
        "a peer user sees the zone's access list of their own device only: {dns}"
    );
    let (_, dns) = cell.web("alice", Method::GET, "/v1/dns", None).await;
    assert_eq!(dns["snapshot"]["peers"].as_array().map(Vec::len), Some(2));
    let (status, conf) = cell
        .web("bob", Method::GET, "/v1/vpn/peers/bobphone/config", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let conf = conf.as_str().unwrap();
    assert!(
        conf.contains("PrivateKey = ") && conf.contains("Endpoint = 203.0.113.7:51820"),
        "{conf}"
    );
    assert!(conf.contains("Address = 10.87.0.16/32"), "{conf}");
    assert!(conf.contains("PersistentKeepalive = 25"), "{conf}");
    assert!(
        conf.lines()
            .any(|l| l.starts_with("DNS = 10.87.0.1, fd") && l.ends_with(", home.cell")),
        "the cell's DNS server and zone: {conf}"
    );
    let (status, _) = cell
        .web("bob", Method::GET, "/v1/vpn/peers/alicephone/config", None)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "others' devices read as absent"
    );
    let (status, _) = cell
        .web("bob", Method::GET, "/v1/vpn/peers/alicephone", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = cell
        .web(
            "bob",
            Method::POST,
            "/v1/vpn/peers",
            Some(json!({"name": "sneaky"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cell.web("bob", Method::GET, "/v1/firewall", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cell.web("bob", Method::GET, "/v1/vpn", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cell
        .web(
            "bob",
            Method::PATCH,
            "/v1/vpn/peers/bobphone",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The server's private key is never in any answer nor in the audit log.
    let server_key = std::fs::read(cell.dir.path().join("state/secrets/wg-server.age")).unwrap();
    assert!(!server_key.is_empty());
    let (_, vpn) = cell.web("alice", Method::GET, "/v1/vpn", None).await;
    assert!(!vpn.to_string().to_lowercase().contains("private"));
    assert!(cell.audit_actions().contains(&"vpn.peer.config".to_owned()));

    // Disabling bob disables his devices in the kernel, without touching the settings.
    let (status, _) = cell
        .web(
            "alice",
            Method::PATCH,
            "/v1/users/bob",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let plan = cell.live().await;
    assert_eq!(plan.device.peers.len(), 1, "bob's phone is out");

    // Deleting bob deletes his devices and their keys.
    let (status, _) = cell
        .web("alice", Method::DELETE, "/v1/users/bob", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = cell.web("alice", Method::GET, "/v1/vpn/peers", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let keys = std::fs::read_dir(cell.dir.path().join("state/secrets"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("peer-")
        })
        .count();
    assert_eq!(keys, 1, "only alice's device key remains");
}

#[tokio::test]
async fn peers_can_be_renamed_disabled_and_given_access() {
    let cell = Cell::new();
    cell.set_up().await;
    cell.web(
        "alice",
        Method::POST,
        "/v1/vpn/peers",
        Some(json!({"name": "phone"})),
    )
    .await;
    cell.web(
        "alice",
        Method::POST,
        "/v1/vpn/peers",
        Some(json!({"name": "laptop"})),
    )
    .await;
    let (status, body) = cell
        .web(
            "alice",
            Method::PATCH,
            "/v1/vpn/peers/phone",
            Some(json!({"name": "laptop"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "name");
    let (status, body) = cell
        .web("alice", Method::PATCH, "/v1/vpn/peers/phone", Some(json!({"name": "pixel", "enabled": false, "access": {"mail": true}, "internet_exit": true})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "pixel");
    assert_eq!(body["enabled"], false);
    let plan = cell.live().await;
    assert_eq!(
        plan.device.peers.len(),
        1,
        "a disabled peer is not on the device"
    );
    assert!(plan.firewall.sets["mail4"].is_empty() && plan.firewall.sets["exit4"].is_empty());
    cell.web(
        "alice",
        Method::PATCH,
        "/v1/vpn/peers/pixel",
        Some(json!({"enabled": true})),
    )
    .await;
    let plan = cell.live().await;
    assert_eq!(plan.device.peers.len(), 2);
    assert_eq!(plan.firewall.sets["mail4"].len(), 1);
    assert_eq!(plan.firewall.sets["exit6"].len(), 1);
    let (status, _) = cell
        .web("alice", Method::GET, "/v1/vpn/peers/phone", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = cell
        .web("alice", Method::GET, "/v1/vpn/peers/pixel/config", None)
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an internal-domain cell needs an endpoint: {body}"
    );
}

#[tokio::test]
async fn the_recovery_shell_password_is_set_by_admins_and_checked_only_by_root() {
    let cell = Cell::new();
    cell.set_up().await;
    add_peer_user(&cell, "bob").await;
    let (_, view) = cell.web("alice", Method::GET, "/v1/recovery", None).await;
    assert_eq!(view["shell_password_set"], false);
    let body = json!({"password": "console secret 1"});
    let (status, _) = cell
        .web(
            "bob",
            Method::PUT,
            "/v1/recovery/shell-password",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, error) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/recovery/shell-password",
            Some(json!({"password": "short"})),
        )
        .await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("password"))
    );
    let (status, _) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/recovery/shell-password",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, view) = cell.web("alice", Method::GET, "/v1/recovery", None).await;
    assert_eq!(view["shell_password_set"], true);
    assert!(
        !view.to_string().contains("argon2"),
        "the hash never leaves celld"
    );

    let check = "/v1/recovery/shell-password/check";
    let (status, _) = cell
        .web("alice", Method::POST, check, Some(body.clone()))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only root (the console) may check"
    );
    let (_, answer) = cell.root(Method::POST, check, Some(body)).await;
    assert_eq!(answer["matches"], true);
    let (_, answer) = cell
        .root(
            Method::POST,
            check,
            Some(json!({"password": "wrong but long enough"})),
        )
        .await;
    assert_eq!(answer["matches"], false);
    assert!(cell
        .audit_actions()
        .contains(&"recovery.shell_refused".to_owned()));

    let (status, _) = cell
        .web("alice", Method::DELETE, "/v1/recovery/shell-password", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, view) = cell.web("alice", Method::GET, "/v1/recovery", None).await;
    assert_eq!(view["shell_password_set"], false);
}

fn write_update_state(cell: &Cell, state: Value) {
    let dir = cell.dir.path().join("state/update");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("state.json"), state.to_string()).unwrap();
}

#[tokio::test]
async fn updates_are_requested_from_the_job_and_failed_versions_refused() {
    let cell = Cell::new();
    cell.set_up().await;
    add_peer_user(&cell, "bob").await;
    let (status, _) = cell.web("bob", Method::GET, "/v1/update", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "peers do not manage updates");

    let (status, body) = cell
        .web("alice", Method::POST, "/v1/update/check", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "no URL yet: {body}");
    let (status, body) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/update",
            Some(json!({"url": "ftp://updates.example.org/"})),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("url"))
    );
    let generation = cell.generation().await;
    let (status, _) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/update",
            Some(json!({"url": "http://10.0.2.2:8000/cell/"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(cell.generation().await, generation + 1);

    let (status, _) = cell
        .web("alice", Method::POST, "/v1/update/check", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let request: Value = serde_json::from_slice(
        &std::fs::read(cell.dir.path().join("state/update/request.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        request,
        json!({"action": "check", "url": "http://10.0.2.2:8000/cell"})
    );
    assert!(cell
        .system
        .requests()
        .contains(&"start=cell-update.service".to_owned()));
    let (status, body) = cell
        .web("alice", Method::POST, "/v1/update/check", None)
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the first request is not picked up yet: {body}"
    );
    // The job takes its request.
    std::fs::remove_file(cell.dir.path().join("state/update/request.json")).unwrap();

    // What the job found: 3 failed earlier, 2 is available.
    write_update_state(
        &cell,
        json!({"available": ["9.0.2"], "failed": ["9.0.3"], "checked_at": "2026-11-27T12:00:00Z"}),
    );
    let (_, view) = cell.web("alice", Method::GET, "/v1/update", None).await;
    assert_eq!(view["available"], json!(["9.0.2"]));
    assert_eq!(view["failed"], json!(["9.0.3"]));
    assert_eq!(view["url"], "http://10.0.2.2:8000/cell");
    let (status, body) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/update/install",
            Some(json!({"version": "9.0.3"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a rolled-back version: {body}"
    );
    let (status, body) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/update/install",
            Some(json!({"version": "../../etc"})),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("version"))
    );
    let (status, body) = cell
        .web("alice", Method::POST, "/v1/update/install", Some(json!({})))
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the newest available by default: {body}"
    );
    let request: Value = serde_json::from_slice(
        &std::fs::read(cell.dir.path().join("state/update/request.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(request["action"], "install");
    assert_eq!(request["version"], "9.0.2");
    std::fs::remove_file(cell.dir.path().join("state/update/request.json")).unwrap();

    // Installed and waiting for the reboot: nothing else is installed meanwhile.
    write_update_state(
        &cell,
        json!({"available": ["9.0.4"], "failed": ["9.0.3"], "pending": "9.0.2"}),
    );
    let (status, body) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/update/install",
            Some(json!({"version": "9.0.4"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("reboot"), "{body}");

    let (status, body) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/update/reboot",
            Some(json!({"at": "2099-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("at"))
    );
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2);
    let (status, _) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/update/reboot",
            Some(json!({"at": at.to_string()})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, view) = cell.web("alice", Method::GET, "/v1/update", None).await;
    assert!(view["reboot_at"].is_string(), "{view}");
    let (status, _) = cell
        .web("alice", Method::DELETE, "/v1/update/reboot", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, view) = cell.web("alice", Method::GET, "/v1/update", None).await;
    assert!(view["reboot_at"].is_null());
    let actions = cell.audit_actions();
    for action in [
        "update.url_set",
        "update.check",
        "update.install",
        "update.reboot",
        "update.reboot_cancel",
    ] {
        assert!(actions.contains(&action.to_owned()), "{action} audited");
    }
}

/// Polls the status until `done` holds (at most 10 s).
async fn wait_for_status(cell: &Cell, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (_, status) = cell.root(Method::GET, "/v1/status", None).await;
        if done(&status) {
            return status;
        }
        last = status;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the status never got there: {last:#}");
}

#[tokio::test]
async fn an_unconfirmed_risky_change_is_reverted_and_audited() {
    let cell = Cell::with_window(std::time::Duration::from_secs(1));
    cell.set_up().await;
    let (_, before) = cell.web("alice", Method::GET, "/v1/vpn", None).await;
    assert!(
        before["pending_change"].is_null(),
        "setting up needs no confirmation"
    );
    let edit =
        json!({"subnet4": "10.9.0.0/24", "listen_port": 51999, "endpoint": "vpn.example.org"});
    let (status, view) = cell.web("alice", Method::PUT, "/v1/vpn", Some(edit)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    let generation = view["pending_change"]["generation"].as_u64().unwrap();
    assert_eq!(
        view["pending_change"]["fields"],
        json!(["vpn.subnet4", "vpn.listen_port"])
    );
    assert_eq!(
        cell.live().await.device.listen_port,
        51999,
        "applied at once"
    );

    // Other changes in the window stay; only the risky fields go back.
    let (status, _) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/vpn/peers",
            Some(json!({"name": "phone"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let status = wait_for_status(&cell, |s| s["pending_change"].is_null()).await;
    assert!(status["generation"].as_u64().unwrap() > generation);
    let (_, after) = cell.web("alice", Method::GET, "/v1/vpn", None).await;
    assert_eq!(after["subnet4"], before["subnet4"]);
    assert_eq!(after["listen_port"], before["listen_port"]);
    assert_eq!(after["endpoint"], "vpn.example.org", "not a risky field");
    assert_eq!(after["peers"], 1, "the device added meanwhile is kept");
    assert_eq!(
        cell.live().await.device.listen_port,
        before["listen_port"].as_u64().unwrap() as u16,
        "the old port is applied again"
    );
    let (_, entries) = cell
        .root(Method::GET, "/v1/audit?action=change.revert", None)
        .await;
    assert_eq!(entries[0]["actor"], "cell");
    assert!(entries[0]["changes"]["vpn.subnet4"]
        .as_str()
        .unwrap()
        .contains("back as in generation"));
}

#[tokio::test]
async fn a_confirmed_risky_change_is_kept_and_audited() {
    let cell = Cell::with_window(std::time::Duration::from_secs(1));
    cell.set_up().await;
    let edit =
        json!({"subnet4": "10.9.0.0/24", "listen_port": 51820, "endpoint": "vpn.example.org"});
    let (status, view) = cell.web("alice", Method::PUT, "/v1/vpn", Some(edit)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    let generation = view["pending_change"]["generation"].as_u64().unwrap();
    let bob = json!({"name": "bob", "role": "peer", "password": PASSWORD});
    let (status, _) = cell
        .web("alice", Method::POST, "/v1/users", Some(bob))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/changes/confirm",
            Some(json!({"generation": generation + 5})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "generation");
    cell.daemon.settled().await;
    let (status, body) = cell
        .web(
            "bob",
            Method::POST,
            "/v1/changes/confirm",
            Some(json!({"generation": generation})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only an admin confirms: {body}"
    );
    let (status, body) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/changes/confirm",
            Some(json!({"generation": generation})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (_, vpn) = cell.web("alice", Method::GET, "/v1/vpn", None).await;
    assert_eq!(vpn["subnet4"], "10.9.0.0/24", "kept after the deadline");
    assert!(vpn["pending_change"].is_null());
    assert!(cell.audit_actions().contains(&"change.confirm".to_owned()));
    assert!(!cell.audit_actions().contains(&"change.revert".to_owned()));
    let (status, _) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/changes/confirm",
            Some(json!({"generation": generation})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing is pending any more");
}

#[tokio::test]
async fn a_pending_change_survives_a_restart_of_celld() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let pending = celld::settings_store::Pending {
        generation: 2,
        revert_to: 1,
        baseline: {
            let settings = cell_model::Settings {
                vpn: Some(celld::vpn::new_vpn()),
                ..Default::default()
            };
            celld::settings_store::RiskyFields::of(&settings)
        },
        deadline: jiff::Timestamp::now(),
    };
    {
        let mut store =
            celld::settings_store::SettingsStore::open(&state, std::time::Duration::from_secs(60))
                .unwrap();
        let mut settings = cell_model::Settings::default();
        let mut vpn = celld::vpn::new_vpn();
        vpn.listen_port = 40000;
        settings.vpn = Some(vpn);
        store.commit(settings.clone()).unwrap();
        settings.vpn.as_mut().unwrap().listen_port = 40001;
        store.commit(settings).unwrap();
        assert_eq!(store.pending().unwrap().generation, 2);
    }
    std::fs::write(
        state.join(celld::settings_store::PENDING_FILE),
        serde_json::to_vec(&pending).unwrap(),
    )
    .unwrap();
    let mut store =
        celld::settings_store::SettingsStore::open(&state, std::time::Duration::from_secs(60))
            .unwrap();
    assert_eq!(
        store.pending(),
        Some(&pending),
        "read back after the restart"
    );
    let (restored, _, fields) = store.due_revert(jiff::Timestamp::now()).unwrap().unwrap();
    assert_eq!(fields, ["vpn.listen_port"]);
    store.commit(restored).unwrap();
    store.finish_revert().unwrap();
    assert_eq!(
        store.current().settings.vpn.as_ref().unwrap().listen_port,
        51820
    );
    assert!(store.pending().is_none());
    assert!(!state.join(celld::settings_store::PENDING_FILE).exists());
}

#[tokio::test]
async fn handlers_commit_and_answer_without_waiting_for_the_machine() {
    let cell = Cell::new();
    cell.network.hold(true);
    cell.set_up().await;
    let (status, _) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/vpn/peers",
            Some(json!({"name": "phone"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "answered while the kernel is busy"
    );
    let (_, status) = cell.root(Method::GET, "/v1/status", None).await;
    assert!(
        cell.network.live_device().is_none(),
        "no handler touched the device"
    );
    assert_eq!(status["setup_complete"], true);
    assert!(
        status["appliers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["generation"] != status["generation"]),
        "the reconciler has not finished: {status}"
    );
    cell.network.hold(false);
    assert_eq!(cell.live().await.device.peers.len(), 1);
    let status = wait_for_status(&cell, |s| {
        s["appliers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["ok"] == true && a["generation"] == s["generation"])
    })
    .await;
    let names: Vec<&str> = status["appliers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["applier"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "identity",
            "firewall",
            "wireguard",
            "addresses",
            "dns",
            "pki",
            "lan",
            "ntp",
            "mail",
            "dav"
        ]
    );
}

#[tokio::test]
async fn without_the_firewall_the_device_carries_no_peers() {
    let cell = Cell::new();
    cell.set_up().await;
    cell.web(
        "alice",
        Method::POST,
        "/v1/vpn/peers",
        Some(json!({"name": "phone"})),
    )
    .await;
    assert_eq!(cell.live().await.device.peers.len(), 1);
    cell.network.refuse_firewall(true);
    cell.web(
        "alice",
        Method::POST,
        "/v1/vpn/peers",
        Some(json!({"name": "laptop"})),
    )
    .await;
    cell.daemon.settled().await;
    let device = cell.network.live_device().unwrap();
    assert!(
        device.peers.is_empty(),
        "peers came up without their firewall"
    );
    let (_, vpn) = cell.web("alice", Method::GET, "/v1/vpn", None).await;
    let wireguard = vpn["reconcile"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["applier"] == "wireguard")
        .unwrap()
        .clone();
    assert_eq!(wireguard["ok"], false);
    let error = wireguard["error"].as_str().unwrap();
    assert!(error.contains("held back until firewall"), "{error}");
    assert!(error.contains("cannot be written"), "{error}");
    // Retried on its own once the table can be written again.
    cell.network.refuse_firewall(false);
    wait_for_status(&cell, |s| {
        s["appliers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["ok"] == true)
    })
    .await;
    assert_eq!(cell.network.live_device().unwrap().peers.len(), 2);
}

#[tokio::test]
async fn a_failed_hostname_change_is_retried_until_it_works() {
    let cell = Cell::new();
    cell.system.fail_next(2);
    cell.set_up().await;
    let status = wait_for_status(&cell, |s| {
        s["appliers"][0]["ok"] == true && s["appliers"][0]["generation"] == s["generation"]
    })
    .await;
    assert_eq!(status["appliers"][0]["applier"], "identity");
    assert_eq!(
        cell.identity_requests(),
        vec!["hostname=home", "timezone=Europe/Berlin"]
    );
}

#[tokio::test]
async fn the_firewall_stands_from_first_boot_before_any_vpn() {
    let cell = Cell::new();
    cell.daemon.settled().await;
    let firewall = cell
        .network
        .live_firewall()
        .expect("a table before setup: forwarding is on and its forward chain guards it");
    assert!(firewall.sets.values().all(Vec::is_empty), "no device yet");
    assert!(
        cell.network.live_device().is_none(),
        "no WireGuard before setup"
    );
}

#[tokio::test]
async fn a_named_actor_header_is_not_a_login() {
    let cell = Cell::new();
    cell.set_up().await;
    let request = Request::builder()
        .method(Method::GET)
        .uri("/v1/users")
        .header("x-cell-actor", "alice")
        .body(Body::empty())
        .unwrap();
    let response = cell.router(WEB_UID).oneshot(request).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "cell-web cannot name a user: it must bring a session celld issued"
    );
}

#[tokio::test]
async fn sessions_survive_a_restart_and_end_with_the_credentials_they_were_opened_with() {
    let cell = Cell::new();
    cell.set_up().await;
    let bob = json!({"name": "bob", "role": "peer", "password": PASSWORD});
    assert_eq!(
        cell.root(Method::POST, "/v1/users", Some(bob)).await.0,
        StatusCode::CREATED
    );
    let alice = cell.log_in("alice", PASSWORD).await;
    let bob_phone = cell.log_in("bob", PASSWORD).await;
    let bob_laptop = cell.log_in("bob", PASSWORD).await;
    let (status, me) = cell
        .with_token(&alice, Method::GET, "/v1/session", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], "alice");
    assert_eq!(me["csrf_token"].as_str().unwrap().len(), 64);

    // celld restarts: the sessions are still there (only their hashes are on disk).
    let cell = cell.restart();
    let stored = std::fs::read_to_string(cell.dir.path().join("state/sessions.json")).unwrap();
    assert!(!stored.contains(&alice) && !stored.contains(&bob_phone));
    let (status, _) = cell
        .with_token(&alice, Method::GET, "/v1/status", None)
        .await;
    assert_eq!(status, StatusCode::OK, "the session survived the restart");

    // An admin sees everyone's sessions, a peer only their own; a peer cannot end another's.
    let (_, all) = cell
        .with_token(&alice, Method::GET, "/v1/sessions", None)
        .await;
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    let (_, own) = cell
        .with_token(&bob_phone, Method::GET, "/v1/sessions", None)
        .await;
    assert_eq!(own.as_array().unwrap().len(), 2, "{own}");
    assert!(own.as_array().unwrap().iter().all(|s| s["user"] == "bob"));
    assert_eq!(
        own.as_array()
            .unwrap()
            .iter()
            .filter(|s| s["current"] == true)
            .count(),
        1
    );
    let alice_id = all
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == "alice")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = cell
        .with_token(
            &bob_phone,
            Method::DELETE,
            &format!("/v1/sessions/{alice_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bob changes his own password on his phone: his laptop is logged out, his phone not.
    let change = json!({"password": "bob's new password", "current_password": PASSWORD});
    let (status, body) = cell
        .with_token(
            &bob_phone,
            Method::PUT,
            "/v1/users/bob/password",
            Some(change),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        cell.with_token(&bob_laptop, Method::GET, "/v1/session", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        cell.with_token(&bob_phone, Method::GET, "/v1/session", None)
            .await
            .0,
        StatusCode::OK
    );

    // An admin resets it (as cellctl does, as root): the phone is logged out too.
    let reset = json!({"password": "reset by root!!"});
    let (status, _) = cell
        .root(Method::PUT, "/v1/users/bob/password", Some(reset))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        cell.with_token(&bob_phone, Method::GET, "/v1/session", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // Disabling ends sessions; logging out ends one.
    let bob = cell.log_in("bob", "reset by root!!").await;
    let (status, _) = cell
        .with_token(
            &alice,
            Method::PATCH,
            "/v1/users/bob",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        cell.with_token(&bob, Method::GET, "/v1/session", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = cell
        .with_token(&alice, Method::DELETE, "/v1/session", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        cell.with_token(&alice, Method::GET, "/v1/session", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let actions = cell.audit_actions();
    for action in [
        "auth.login",
        "user.password_change",
        "user.password_reset",
        "auth.logout",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

#[tokio::test]
async fn removing_a_second_factor_needs_the_password_and_ends_other_sessions() {
    let cell = Cell::new();
    cell.set_up().await;
    let here = cell.log_in("alice", PASSWORD).await;
    let (_, enrolment) = cell
        .with_token(&here, Method::POST, "/v1/users/alice/totp", None)
        .await;
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let code = celld::totp::current_code(&secret, "alice").unwrap();
    let (status, _) = cell
        .with_token(
            &here,
            Method::POST,
            "/v1/users/alice/totp/confirm",
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        cell.with_token(&here, Method::GET, "/v1/session", None)
            .await
            .0,
        StatusCode::OK,
        "turning two-step login on keeps the session that did it"
    );
    let now = jiff::Timestamp::now().as_second() as u64;
    let next = celld::totp::code_at(&secret, "alice", now + 30).unwrap();
    let (status, body) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/login",
            json!({"username": "alice", "password": PASSWORD, "second_factor": next}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let there = body["token"].as_str().unwrap().to_owned();

    let (status, body) = cell
        .with_token(&here, Method::DELETE, "/v1/users/alice/totp", None)
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("current_password"))
    );
    let wrong = json!({"current_password": "not my password"});
    let (status, _) = cell
        .with_token(&here, Method::DELETE, "/v1/users/alice/totp", Some(wrong))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let right = json!({ "current_password": PASSWORD });
    let (status, _) = cell
        .with_token(&here, Method::DELETE, "/v1/users/alice/totp", Some(right))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        cell.with_token(&there, Method::GET, "/v1/session", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "the other session ended with the second factor"
    );
    assert_eq!(
        cell.with_token(&here, Method::GET, "/v1/session", None)
            .await
            .0,
        StatusCode::OK
    );
    let actions = cell.audit_actions();
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "user.totp_disable_refused")
            .count(),
        2,
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a == "user.totp_disable"));
}

#[tokio::test]
async fn a_burst_of_wrong_logins_gets_only_the_free_attempts_hashed() {
    let cell = Arc::new(Cell::new());
    cell.set_up().await;
    let before = cell.root(Method::GET, "/v1/status", None).await.1["auth"]["password_checks"]
        .as_u64()
        .unwrap();
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let cell = cell.clone();
        burst.spawn(async move {
            cell.anonymous(
                Method::POST,
                "/v1/auth/login",
                login("alice", "a wrong password"),
            )
            .await
            .0
        });
    }
    let statuses = burst.join_all().await;
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS));
    let status = cell.root(Method::GET, "/v1/status", None).await.1;
    let checks = status["auth"]["password_checks"].as_u64().unwrap() - before;
    assert!(
        checks <= u64::from(celld::throttle::FREE_ATTEMPTS),
        "{checks} hashes were checked for one account in one burst"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count() as u64,
        checks
    );
}

#[tokio::test]
async fn reserved_names_are_refused_by_field() {
    let cell = Cell::new();
    let code = cell.setup_code().await;
    let mut body = setup_body(&code);
    body["admin_username"] = json!("root");
    let (status, error) = cell.anonymous(Method::POST, "/v1/setup", body).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("admin_username"))
    );
    cell.set_up().await;
    let root = json!({"name": "root", "role": "admin", "password": PASSWORD});
    let (status, error) = cell
        .web("alice", Method::POST, "/v1/users", Some(root))
        .await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("name"))
    );
    assert!(
        error["error"].as_str().unwrap().contains("reserved"),
        "{error}"
    );
}

#[tokio::test]
async fn every_field_of_a_device_change_is_audited_and_a_cut_tail_is_reported() {
    let cell = Cell::new();
    cell.set_up().await;
    let (status, _) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/vpn/peers",
            Some(json!({"name": "phone", "keepalive": 25})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let patch = json!({
        "access": {"calendar": true, "files": true, "mail": false, "webdav": false},
        "internet_exit": true, "lan_access": true, "keepalive": 10
    });
    let (status, body) = cell
        .web("alice", Method::PATCH, "/v1/vpn/peers/phone", Some(patch))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, entries) = cell
        .root(Method::GET, "/v1/audit?action=vpn.peer.update", None)
        .await;
    let changes = entries[0]["changes"].as_object().unwrap();
    for field in [
        "vpn.peers.phone.access.calendar",
        "vpn.peers.phone.internet_exit",
        "vpn.peers.phone.lan_access",
        "vpn.peers.phone.keepalive",
    ] {
        assert!(changes.contains_key(field), "{field} in {changes:?}");
    }
    let (_, verified) = cell.root(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(verified["intact"], true, "{verified}");
    let entries = verified["entries"].as_u64().unwrap();

    // Cut the last two entries off the end.
    let path = cell.dir.path().join("state/audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text.lines().take(entries as usize - 2).collect();
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    let (_, verified) = cell.root(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(verified["intact"], false, "{verified}");
    assert_eq!(
        verified["missing"],
        json!([entries - 1, entries]),
        "{verified}"
    );
}

#[tokio::test]
async fn dns_records_are_validated_stored_audited_and_rendered_for_cell_dns() {
    let cell = Cell::new();
    cell.set_up().await;
    let bad = json!({"records": [
        {"name": "printer", "type": "A", "address": "192.168.1.9"},
        {"name": "files", "type": "A", "address": "192.168.1.9"}
    ]});
    let (status, error) = cell.web("alice", Method::PUT, "/v1/dns", Some(bad)).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("records.1.name"))
    );
    let generation = cell.generation().await;
    let good = json!({"records": [
        {"name": "printer", "type": "A", "address": "192.168.1.9"},
        {"name": "www", "type": "CNAME", "target": "printer.home.cell."}
    ]});
    let (status, view) = cell.web("alice", Method::PUT, "/v1/dns", Some(good)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["zone"], "home.cell");
    assert_eq!(cell.generation().await, generation + 1);
    let (status, _) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/dns",
            Some(json!({"records": []})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/dns",
            Some(json!({"records": [{"name": "a", "type": "A", "address": "192.168.1.3"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    cell.daemon.settled().await;
    let zone: Value = serde_json::from_slice(
        &std::fs::read(cell.dir.path().join(celld::daemon::DNS_ZONE_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(zone["origin"], "home.cell.");
    assert_eq!(zone["serial"], cell.generation().await);
    assert_eq!(zone["records"][0]["name"], "a");
    let labels: Vec<&str> = zone["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["", "calendar", "files"],
        "the services set up: calendar and files"
    );
    let (_, entries) = cell.root(Method::GET, "/v1/audit?action=dns", None).await;
    assert!(
        entries[0]["changes"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("dns.records")),
        "{entries}"
    );
    let (status, _) = cell
        .web("bob", Method::PUT, "/v1/dns", Some(json!({"records": []})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no such user");
}

#[tokio::test]
async fn upstreams_come_from_the_uplink_unless_listed_and_a_part_left_out_is_kept() {
    let cell = Cell::new();
    cell.set_up().await;
    std::fs::write(
        cell.dir.path().join("resolv.conf"),
        "nameserver 192.0.2.53\nnameserver 127.0.0.53\n",
    )
    .unwrap();
    let records = json!({"records": [{"name": "nas", "type": "A", "address": "192.168.1.7"}]});
    let (status, _) = cell
        .web("alice", Method::PUT, "/v1/dns", Some(records))
        .await;
    assert_eq!(status, StatusCode::OK);
    cell.daemon.settled().await;
    let (_, view) = cell.web("alice", Method::GET, "/v1/dns", None).await;
    assert_eq!(
        view["snapshot"]["upstreams"],
        json!(["192.0.2.53:53"]),
        "{view}"
    );
    assert_eq!(view["upstreams"], json!([]));

    let (status, error) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/dns",
            Some(json!({"upstreams": ["9.9.9.9", "0.0.0.0"]})),
        )
        .await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("upstreams.1"))
    );
    let forward = json!({"upstreams": ["9.9.9.9"], "forward_zones": [{"zone": "other.cell", "servers": ["10.88.0.1"]}]});
    let (status, view) = cell
        .web("alice", Method::PUT, "/v1/dns", Some(forward))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        view["records"][0]["name"], "nas",
        "records left out are kept"
    );
    cell.daemon.settled().await;
    let (_, view) = cell.web("alice", Method::GET, "/v1/dns", None).await;
    assert_eq!(view["snapshot"]["upstreams"], json!(["9.9.9.9:53"]));
    assert_eq!(
        view["snapshot"]["forward_zones"],
        json!([{"zone": "other.cell.", "servers": ["10.88.0.1:53"]}])
    );
    let (status, error) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/dns",
            Some(json!({"forward_zones": [{"zone": "kids.home.cell", "servers": ["10.88.0.1"]}]})),
        )
        .await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("forward_zones.0.zone")),
        "the cell's own zone is not forwarded"
    );
}

#[tokio::test]
async fn time_sources_are_validated_and_rendered_for_chrony() {
    let cell = Cell::new();
    cell.set_up().await;
    cell.daemon.settled().await;
    let conf_path = cell.dir.path().join(celld::daemon::NTP_CONFIG_FILE);
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    assert!(conf.contains("pool 2.debian.pool.ntp.org iburst"), "{conf}");
    assert!(
        conf.contains("allow 10.87.0.0/20"),
        "VPN clients are served: {conf}"
    );
    let (status, error) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/ntp",
            Some(json!({"servers": [{"host": "192.0.2.1", "nts": true}]})),
        )
        .await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("servers.0.host")),
        "NTS needs a host name: {error}"
    );
    let body = json!({"servers": [{"host": "time.cloudflare.com", "nts": true}], "serve": false});
    let (status, view) = cell.web("alice", Method::PUT, "/v1/ntp", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["sources"][0]["host"], "time.cloudflare.com");
    assert!(
        view["sync"].is_object() || view["error"].is_string(),
        "chrony's state, or why it cannot be read: {view}"
    );
    cell.daemon.settled().await;
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    assert!(
        conf.contains("server time.cloudflare.com iburst nts"),
        "{conf}"
    );
    assert!(!conf.contains("\nallow "), "serving is off: {conf}");
    let restarts = cell
        .system
        .requests()
        .iter()
        .filter(|r| *r == "restart=cell-ntp.service")
        .count();
    assert!(
        restarts >= 2,
        "chrony restarted for the new configuration ({restarts})"
    );
    let (status, _) = cell
        .web("bob", Method::PUT, "/v1/ntp", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, entries) = cell.root(Method::GET, "/v1/audit?action=ntp", None).await;
    assert_eq!(entries[0]["action"], "ntp.update", "{entries}");
}

#[tokio::test]
async fn a_static_lan_with_a_dhcp_server_waits_for_confirmation_and_names_its_devices() {
    let cell = Cell::with_window(std::time::Duration::from_secs(2));
    cell.set_up().await;
    let (status, error) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/lan",
            Some(json!({"dhcp_server": {"enabled": true, "pool_start": "192.168.1.100", "pool_size": 10}})),
        )
        .await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("dhcp_server.enabled")),
        "a DHCP server needs a static address: {error}"
    );
    let lan = json!({
        "addressing": {"mode": "static", "address": "192.168.1.2/24", "gateway": "192.168.1.1"},
        "dhcp_server": {"enabled": true, "pool_start": "192.168.1.100", "pool_size": 10,
            "reservations": [{"mac": "52:54:00:ab:cd:ef", "address": "192.168.1.20", "name": "printer"}]}
    });
    let (status, view) = cell.web("alice", Method::PUT, "/v1/lan", Some(lan)).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "a new address waits for confirmation: {view}"
    );
    assert_eq!(view["pending_change"]["fields"], json!(["lan.addressing"]));
    cell.daemon.settled().await;
    let network =
        std::fs::read_to_string(cell.dir.path().join("network/10-cell-lan.network")).unwrap();
    assert!(network.contains("Address=192.168.1.2/24"), "{network}");
    let dnsmasq = std::fs::read_to_string(cell.dir.path().join("dhcp/dnsmasq.conf")).unwrap();
    assert!(
        dnsmasq.contains("dhcp-host=52:54:00:ab:cd:ef,192.168.1.20,printer"),
        "{dnsmasq}"
    );
    let requests = cell.system.requests();
    assert!(
        requests.contains(&"networkd=reload".to_owned()),
        "{requests:?}"
    );
    assert!(
        requests.contains(&"restart=cell-dhcp.service".to_owned()),
        "{requests:?}"
    );
    let zone: Value = serde_json::from_slice(
        &std::fs::read(cell.dir.path().join(celld::daemon::DNS_ZONE_FILE)).unwrap(),
    )
    .unwrap();
    assert!(
        zone["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "printer"),
        "a reservation has a name in the zone: {zone}"
    );
    // Not confirmed: the LAN goes back to DHCP, the file and the DHCP server with it.
    let status = wait_for_status(&cell, |s| s["pending_change"].is_null()).await;
    assert!(status["generation"].as_u64().unwrap() > 0);
    let (_, view) = cell.web("alice", Method::GET, "/v1/lan", None).await;
    assert_eq!(view["lan"]["addressing"]["mode"], "dhcp", "{view}");
    cell.daemon.settled().await;
    assert!(!cell.dir.path().join("network/10-cell-lan.network").exists());
    assert!(cell
        .system
        .requests()
        .contains(&"stop=cell-dhcp.service".to_owned()));
}

#[tokio::test]
async fn the_root_is_public_the_keys_go_to_the_front_door_alone_and_names_follow_the_settings() {
    let cell = Cell::new();
    // Before setup: the root exists (the wizard shows its fingerprint) and a leaf too.
    let (status, root) = cell
        .call(WEB_UID, None, Method::GET, "/v1/pki/root", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{root}");
    let fingerprint = root["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");
    assert!(root["pem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    cell.set_up().await;
    cell.daemon.settled().await;
    let (status, pki) = cell.web("alice", Method::GET, "/v1/pki", None).await;
    assert_eq!(status, StatusCode::OK, "{pki}");
    assert_eq!(
        pki["certificates"][0]["names"],
        json!(["calendar.home.cell", "files.home.cell", "home.cell"]),
        "the UI and each enabled service: {pki}"
    );
    let addresses = pki["certificates"][0]["addresses"].as_array().unwrap();
    assert!(
        addresses.contains(&json!("10.87.0.1")),
        "the VPN gateway: {pki}"
    );
    assert!(!pki.to_string().contains("PRIVATE KEY"), "{pki}");
    let (status, _) = cell.call(WEB_UID, None, Method::GET, "/v1/pki", None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the served names need a login"
    );

    // The keys: to the front door's user only, and 204 when it has the latest.
    let (status, handover) = cell.call(WEB_UID, None, Method::GET, "/v1/tls", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(handover["certificates"][0]["key_pem"]
        .as_str()
        .unwrap()
        .contains("PRIVATE KEY"));
    let serial = handover["serial"].as_u64().unwrap();
    let (status, _) = cell
        .call(
            WEB_UID,
            None,
            Method::GET,
            &format!("/v1/tls?known={serial}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = cell.root(Method::GET, "/v1/tls", None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "not even root's tools get the keys"
    );

    // A service turned on gets its name on a new leaf, handed over under a new serial.
    let mut body = settings_body();
    body["services"]["webdav"] = json!(true);
    let (status, body) = cell
        .web("alice", Method::PUT, "/v1/settings", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    cell.daemon.settled().await;
    let (_, pki) = cell.web("alice", Method::GET, "/v1/pki", None).await;
    let names = pki["certificates"][0]["names"].as_array().unwrap();
    assert!(names.contains(&json!("webdav.home.cell")), "{pki}");
    let (status, handover) = cell
        .call(
            WEB_UID,
            None,
            Method::GET,
            &format!("/v1/tls?known={serial}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(handover["serial"].as_u64().unwrap() > serial);
    // The root stays across restarts; its key is nowhere in clear on disk.
    let cell = cell.restart();
    let (_, root) = cell
        .call(WEB_UID, None, Method::GET, "/v1/pki/root", None)
        .await;
    assert_eq!(root["fingerprint"], fingerprint.as_str());
    for entry in std::fs::read_dir(cell.dir.path().join("state/secrets")).unwrap() {
        let text =
            String::from_utf8_lossy(&std::fs::read(entry.unwrap().path()).unwrap()).into_owned();
        assert!(!text.contains("PRIVATE KEY"));
    }
}

fn service_login(service: &str, username: &str, password: &str) -> Value {
    service_login_from("192.168.1.50", service, username, password)
}

/// From another address: the throttle counts the failures of each.
fn service_login_from(source: &str, service: &str, username: &str, password: &str) -> Value {
    json!({"service": service, "username": username, "password": password, "source": source})
}

#[tokio::test]
async fn app_passwords_are_shown_once_log_in_to_services_and_are_revoked() {
    let cell = Cell::new();
    cell.set_up().await;
    add_peer_user(&cell, "bob").await;
    let (status, body) = cell
        .web(
            "bob",
            Method::POST,
            "/v1/users/bob/app-passwords",
            Some(json!({"name": "  "})),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("name"))
    );
    let (status, created) = cell
        .web(
            "bob",
            Method::POST,
            "/v1/users/bob/app-passwords",
            Some(json!({"name": "Bob's phone"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let password = created["password"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        password.starts_with(&id) && password.len() == 19,
        "{password}"
    );
    let (status, _) = cell
        .web(
            "bob",
            Method::POST,
            "/v1/users/alice/app-passwords",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not someone else's");

    // The app password logs in to a service, typed loosely; the account password too
    // (no second factor), a wrong one not.
    let (status, answer) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/service",
            service_login("mail", "Bob", &password.to_uppercase()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"username": "bob", "app_password": "Bob's phone"})
    );
    let (status, answer) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/service",
            service_login("files", "bob", PASSWORD),
        )
        .await;
    assert_eq!(
        (status, &answer["app_password"]),
        (StatusCode::OK, &Value::Null)
    );
    let (status, _) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/service",
            service_login("files", "bob", "wrong password!"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/service",
            service_login("ftp", "bob", PASSWORD),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("service"))
    );

    // The list shows the last use, never a password or hash.
    let (status, list) = cell
        .web("bob", Method::GET, "/v1/users/bob/app-passwords", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["name"], "Bob's phone");
    assert_eq!(list[0]["last_service"], "mail");
    assert_eq!(list[0]["last_source"], "192.168.1.50");
    assert!(!list.to_string().contains("argon2") && !list.to_string().contains(&password[5..]));
    let (_, admin_view) = cell
        .web("alice", Method::GET, "/v1/users/bob/app-passwords", None)
        .await;
    assert_eq!(
        admin_view.as_array().unwrap().len(),
        1,
        "administrators see them"
    );

    // An administrator turns account passwords off for services: only app passwords work.
    let (status, _) = cell
        .web(
            "bob",
            Method::PUT,
            "/v1/service-logins",
            Some(json!({"account_password": false})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/service-logins",
            Some(json!({"account_password": false})),
        )
        .await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({"account_password": false}))
    );
    let (status, _) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/service",
            service_login("files", "bob", PASSWORD),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the account password no longer works"
    );
    let (status, _) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/service",
            service_login("files", "bob", &password),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the app password does");
    let (status, _) = cell
        .web(
            "bob",
            Method::DELETE,
            &format!("/v1/users/bob/app-passwords/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/service",
            service_login("mail", "bob", &password),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoked: refused at once, trust or not"
    );
    let (status, _) = cell
        .web(
            "bob",
            Method::DELETE,
            &format!("/v1/users/bob/app-passwords/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Disabling the account refuses its service logins at once, even one just accepted.
    let (_, second) = cell
        .web(
            "bob",
            Method::POST,
            "/v1/users/bob/app-passwords",
            Some(json!({"name": "laptop"})),
        )
        .await;
    let second = second["password"].as_str().unwrap().to_owned();
    let (status, _) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/service",
            service_login_from("192.168.1.51", "calendar", "bob", &second),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = cell
        .web(
            "alice",
            Method::PATCH,
            "/v1/users/bob",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/service",
            service_login_from("192.168.1.51", "calendar", "bob", &second),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Failures are audited with the service, and throttled like the web login.
    let (_, audit) = cell
        .web(
            "alice",
            Method::GET,
            "/v1/audit?action=auth.service_failure",
            None,
        )
        .await;
    assert!(audit.to_string().contains("calendar"), "{audit}");
    let mut last = StatusCode::OK;
    for _ in 0..20 {
        (last, _) = cell
            .anonymous(
                Method::POST,
                "/v1/auth/service",
                service_login("mail", "alice", "not her password"),
            )
            .await;
        if last == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

/// The value of `key` in a profile (the first one).
fn profile_value<'a>(profile: &'a str, key: &str) -> Option<&'a str> {
    let start = profile.find(&format!("<key>{key}</key><string>"))? + key.len() + 19;
    let end = start + profile[start..].find("</string>")?;
    Some(&profile[start..end])
}

#[tokio::test]
async fn the_owners_device_profile_carries_their_accounts_with_its_own_app_password() {
    let cell = Cell::new();
    cell.set_up().await;
    add_peer_user(&cell, "bob").await;
    add_peer_user(&cell, "carol").await;
    cell.web(
        "alice",
        Method::PUT,
        "/v1/vpn",
        Some(json!({"subnet4": "10.87.0.0/20", "listen_port": 51820, "endpoint": "203.0.113.7"})),
    )
    .await;
    let (status, body) = cell
        .web(
            "alice",
            Method::POST,
            "/v1/vpn/peers",
            Some(json!({"name": "bobphone", "owner": "bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cell = &cell;
    let profile_of = |actor: &'static str| async move {
        let (status, headers, body) = cell
            .raw(
                WEB_UID,
                Some(actor),
                Method::GET,
                "/v1/vpn/peers/bobphone/mobileconfig",
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{actor}");
        assert_eq!(headers["content-type"], "application/x-apple-aspen-config");
        String::from_utf8(body).unwrap()
    };
    let app_passwords = || async {
        let (_, list) = cell
            .web("bob", Method::GET, "/v1/users/bob/app-passwords", None)
            .await;
        list.as_array().unwrap().clone()
    };

    // Calendar and files are on, mail off.
    let first = profile_of("bob").await;
    assert!(
        first.contains("<string>com.apple.caldav.account</string>"),
        "{first}"
    );
    assert!(first.contains("<string>com.apple.carddav.account</string>"));
    assert!(!first.contains("com.apple.mail.managed"), "mail is off");
    assert_eq!(
        profile_value(&first, "CalDAVPrincipalURL"),
        Some("https://calendar.home.cell/bob/")
    );
    let password = profile_value(&first, "CalDAVPassword").unwrap().to_owned();
    let (status, answer) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/service",
            service_login("calendar", "bob", &password),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the profile's password logs in: {answer}"
    );
    assert_eq!(answer["app_password"], "bobphone (profile)");
    let made = app_passwords().await;
    assert_eq!(made.len(), 1, "{made:?}");

    // Downloaded again: a new password replaces the old one, which no longer works.
    let second = profile_of("bob").await;
    let renewed = profile_value(&second, "CalDAVPassword").unwrap();
    assert_ne!(renewed, password);
    let now = app_passwords().await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0]["id"], made[0]["id"]);
    let (status, _) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/service",
            service_login("calendar", "bob", &password),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the replaced password is refused"
    );

    // An administrator gets the VPN and the root, never someone's password.
    let admins = profile_of("alice").await;
    assert!(admins.contains("com.wireguard.ios"));
    assert!(!admins.contains("Password</key>"), "{admins}");
    assert_eq!(app_passwords().await.len(), 1);

    let (status, client) = cell
        .web("bob", Method::GET, "/v1/users/bob/client-settings", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        client,
        json!({
            "username": "bob",
            "mail": null,
            "calendar_url": "https://calendar.home.cell/",
            "files_url": "https://files.home.cell/"
        })
    );
    let (status, _) = cell
        .web("carol", Method::GET, "/v1/users/bob/client-settings", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_mail_relay_keeps_its_password_secret() {
    let cell = Cell::new();
    cell.set_up().await;
    let relay = |password: Option<&str>| {
        let mut body =
            json!({"host": "SMTP.example.net", "port": 587, "username": "cell@example.org"});
        if let Some(password) = password {
            body["password"] = json!(password);
        }
        body
    };
    let (status, body) = cell
        .web("alice", Method::PUT, "/v1/mail/relay", Some(relay(None)))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("password")),
        "the first time needs a password: {body}"
    );
    let (status, body) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/mail/relay",
            Some(relay(Some(" spaced"))),
        )
        .await;
    assert_eq!(body["field"], "password", "{status} {body}");
    let mut bad_host = relay(Some("relay secret"));
    bad_host["host"] = json!("localhost");
    let (_, body) = cell
        .web("alice", Method::PUT, "/v1/mail/relay", Some(bad_host))
        .await;
    assert_eq!(body["field"], "host", "{body}");
    let (status, _) = cell
        .web(
            "bob",
            Method::PUT,
            "/v1/mail/relay",
            Some(relay(Some("relay secret"))),
        )
        .await;
    assert_ne!(status, StatusCode::OK, "only an administrator sets it");

    let (status, view) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/mail/relay",
            Some(relay(Some("relay secret"))),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["relay"]["host"], "smtp.example.net");
    assert_eq!(view["relay"]["verify_certificate"], true);
    assert_eq!(view["in_use"], false, "a .cell cell sends nothing out");
    let set = view["relay"]["password_set"].clone();
    // Same login, no password: the one set stays.
    let mut port = relay(None);
    port["port"] = json!(465);
    let (status, view) = cell
        .web("alice", Method::PUT, "/v1/mail/relay", Some(port))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (
            view["relay"]["port"].clone(),
            view["relay"]["password_set"].clone()
        ),
        (json!(465), set)
    );
    // Another login needs its own password.
    let mut other = relay(None);
    other["username"] = json!("someone-else");
    let (_, body) = cell
        .web("alice", Method::PUT, "/v1/mail/relay", Some(other))
        .await;
    assert_eq!(body["field"], "password", "{body}");

    let everywhere = [
        std::fs::read_to_string(cell.dir.path().join("state/settings.json")).unwrap_or_default(),
        std::fs::read_to_string(cell.dir.path().join("state/audit.jsonl")).unwrap(),
        cell.web("alice", Method::GET, "/v1/mail/relay", None)
            .await
            .1
            .to_string(),
        cell.web("alice", Method::GET, "/v1/settings", None)
            .await
            .1
            .to_string(),
    ];
    for text in everywhere {
        assert!(!text.contains("relay secret"), "{text}");
    }
    assert!(cell.audit_actions().contains(&"mail.relay".to_owned()));

    let (status, _) = cell
        .web("alice", Method::DELETE, "/v1/mail/relay", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, view) = cell.web("alice", Method::GET, "/v1/mail/relay", None).await;
    assert_eq!(view["relay"], Value::Null);
    let (status, _) = cell
        .web("alice", Method::PUT, "/v1/mail/relay", Some(relay(None)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the password went with it");
}

/// The mail machine's Dovecot (its uid on the cell) asks the login policy.
const MAIL_DOVECOT_UID: u32 = celld::reconcile::mail::MAIL_UID_BASE + 104;

impl Cell {
    async fn mail_policy(&self, uid: u32, command: &str, body: Value) -> (StatusCode, Value) {
        let router =
            celld::api::mail_login_router(self.daemon.clone()).layer(MockConnectInfo(Peer {
                uid: Some(uid),
                pid: Some(1),
            }));
        // Dovecot sends the absolute form: its HTTP client treats the socket as a proxy.
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!(
                "http://127.0.0.1/v1/mail/login-policy?command={command}"
            ))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn mail_login(login: &str, pwhash: &str, matched: &str) -> Value {
    json!({"login": login, "pwhash": pwhash, "remote": "198.51.100.7", "protocol": "imap",
           "fail_type": "", "cell_login": matched})
}

fn mail_report(login: &str, pwhash: &str, matched: &str, success: bool) -> Value {
    let mut body = mail_login(login, pwhash, matched);
    body["success"] = json!(success);
    body["policy_reject"] = json!(false);
    body
}

#[tokio::test]
async fn mail_logins_count_against_the_cells_throttle_and_answer_to_its_settings() {
    let cell = Cell::new();
    cell.set_up().await;
    add_peer_user(&cell, "bob").await;
    let (status, created) = cell
        .web(
            "bob",
            Method::POST,
            "/v1/users/bob/app-passwords",
            Some(json!({"name": "Bob's laptop"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let good = "aa".repeat(32);

    // Only the mail machine (and root) may ask.
    let (status, _) = cell
        .mail_policy(WEB_UID, "allow", mail_login("bob", &good, ""))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cell
        .mail_policy(MAIL_DOVECOT_UID, "delete", mail_login("bob", &good, ""))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A login with the app password: let in before and after its check, its use noted.
    let (status, answer) = cell
        .mail_policy(
            MAIL_DOVECOT_UID,
            "allow",
            mail_login("Bob@home.cell", &good, ""),
        )
        .await;
    assert_eq!(
        (status, answer["status"].as_i64()),
        (StatusCode::OK, Some(0))
    );
    let (_, answer) = cell
        .mail_policy(MAIL_DOVECOT_UID, "allow", mail_login("bob", &good, &id))
        .await;
    assert_eq!(answer["status"], 0, "{answer}");
    let (status, _) = cell
        .mail_policy(
            MAIL_DOVECOT_UID,
            "report",
            mail_report("bob", &good, &id, true),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = cell
        .web("bob", Method::GET, "/v1/users/bob/app-passwords", None)
        .await;
    assert_eq!(list[0]["last_service"], "mail", "{list}");
    assert_eq!(list[0]["last_source"], "198.51.100.7");

    // Wrong passwords: each is audited; after the free attempts the account waits, for
    // the web's service logins too. The password that just worked still goes on.
    for n in 0..3 {
        let bad = format!("{n:064x}");
        let (_, answer) = cell
            .mail_policy(MAIL_DOVECOT_UID, "allow", mail_login("bob", &bad, ""))
            .await;
        assert_eq!(answer["status"], 0, "attempt {n}: {answer}");
        cell.mail_policy(
            MAIL_DOVECOT_UID,
            "report",
            mail_report("bob", &bad, "", false),
        )
        .await;
    }
    let (_, answer) = cell
        .mail_policy(
            MAIL_DOVECOT_UID,
            "allow",
            mail_login("bob", &"bb".repeat(32), ""),
        )
        .await;
    assert!(
        answer["status"].as_i64().is_some_and(|s| s >= 1),
        "held back, not refused, while the account waits: {answer}"
    );
    let (status, _) = cell
        .anonymous(
            Method::POST,
            "/v1/auth/service",
            service_login("files", "bob", "a guess at the web"),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "one throttle");
    let (_, answer) = cell
        .mail_policy(MAIL_DOVECOT_UID, "allow", mail_login("bob", &good, ""))
        .await;
    assert_eq!(answer["status"], 0, "a device that just logged in goes on");
    // Each one held back still counts, until the wait is longer than a login is held
    // (Postfix gives up after 10 s): then it is refused, uncounted.
    let mut refused = None;
    for n in 4..20 {
        let bad = format!("{n:064x}");
        let (_, answer) = cell
            .mail_policy(MAIL_DOVECOT_UID, "allow", mail_login("bob", &bad, ""))
            .await;
        if answer["status"] == -1 {
            assert!(answer["msg"].as_str().unwrap().contains("too many"));
            refused = Some(n);
            break;
        }
        cell.mail_policy(
            MAIL_DOVECOT_UID,
            "report",
            mail_report("bob", &bad, "", false),
        )
        .await;
    }
    assert_eq!(refused, Some(5), "held 2 s, then refused");
    let failures = cell
        .audit_actions()
        .into_iter()
        .filter(|a| a == "auth.service_failure")
        .count();
    assert_eq!(failures, 3 + 1);
    // Failures from one address, whichever account they were for, lock it out.
    for n in 0..10 {
        let mut failure = mail_report(&format!("guess{n}"), &"cc".repeat(32), "", false);
        failure["remote"] = json!("203.0.113.9");
        cell.mail_policy(MAIL_DOVECOT_UID, "report", failure).await;
    }
    assert!(cell.audit_actions().contains(&"auth.lockout".to_owned()));
    let mut from_there = mail_login("guess0", &"dd".repeat(32), "");
    from_there["remote"] = json!("203.0.113.9");
    let (_, answer) = cell
        .mail_policy(MAIL_DOVECOT_UID, "allow", from_there)
        .await;
    assert_eq!(
        answer["status"], -1,
        "refused while the address is locked out"
    );
    let audit = std::fs::read_to_string(cell.dir.path().join("state/audit.jsonl")).unwrap();
    assert!(!audit.contains(&"aa".repeat(32)), "no digest in the audit");

    // The settings decide after the password matched: a changed or revoked password, the
    // account password once an administrator turns it off, a disabled account.
    let settings = std::fs::read_to_string(cell.dir.path().join("state/settings.toml")).unwrap();
    let bobs = &settings[settings.find("name = \"bob\"").unwrap()..];
    let hash = bobs
        .lines()
        .find_map(|l| l.strip_prefix("password_hash = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap();
    let account = format!("account.{}", celld::mail_login::account_tag(hash));
    let (_, answer) = cell
        .mail_policy(
            MAIL_DOVECOT_UID,
            "allow",
            mail_login("bob", &good, "account.000000000000"),
        )
        .await;
    assert_eq!(answer["msg"], "this password was changed", "{answer}");
    let (_, answer) = cell
        .mail_policy(
            MAIL_DOVECOT_UID,
            "allow",
            mail_login("bob", &good, &account),
        )
        .await;
    assert_eq!(answer["status"], 0, "{answer}");
    let (status, _) = cell
        .web(
            "alice",
            Method::PUT,
            "/v1/service-logins",
            Some(json!({"account_password": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, answer) = cell
        .mail_policy(
            MAIL_DOVECOT_UID,
            "allow",
            mail_login("bob", &good, &account),
        )
        .await;
    assert_eq!(answer["status"], -1, "{answer}");
    let (status, _) = cell
        .web(
            "alice",
            Method::PATCH,
            "/v1/users/bob",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, answer) = cell
        .mail_policy(MAIL_DOVECOT_UID, "allow", mail_login("bob", &good, &id))
        .await;
    assert_eq!(
        (answer["status"].as_i64(), answer["msg"].as_str()),
        (Some(-1), Some("this account is disabled"))
    );
    let (status, _) = cell
        .web(
            "alice",
            Method::PATCH,
            "/v1/users/bob",
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = cell
        .web(
            "bob",
            Method::DELETE,
            &format!("/v1/users/bob/app-passwords/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, answer) = cell
        .mail_policy(MAIL_DOVECOT_UID, "allow", mail_login("bob", &good, &id))
        .await;
    assert_eq!(answer["msg"], "this app password was revoked");
}
