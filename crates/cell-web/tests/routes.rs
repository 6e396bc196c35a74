//! cell-web's routes, in-process, backed by a real celld on a temporary socket.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use cell_web::AppState;
use celld_client::CelldClient;
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Harness {
    _dir: tempfile::TempDir,
    _stop: Option<tokio::sync::oneshot::Sender<()>>,
    state: AppState,
}

async fn with_celld() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("celld.sock");
    let listener = celld::socket::bind(&socket).unwrap();
    let daemon = celld::daemon::testing::daemon(dir.path());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(celld::serve(listener, daemon, async {
        let _ = stopped.await;
    }));
    Harness {
        _dir: dir,
        _stop: Some(stop),
        state: AppState::new(CelldClient::new(socket), false),
    }
}

fn without_celld() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("celld.sock");
    Harness {
        _dir: dir,
        _stop: None,
        state: AppState::new(CelldClient::new(socket), false),
    }
}

async fn get(harness: &Harness, path: &str) -> Response {
    cell_web::router(harness.state.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn body_text(response: Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn health_is_ok_when_celld_answers() {
    let harness = with_celld().await;
    let response = get(&harness, "/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = serde_json::from_str(&body_text(response).await).unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], cell_model::VERSION);
}

#[tokio::test]
async fn health_is_unavailable_without_celld_and_hides_internals() {
    let harness = without_celld();
    let response = get(&harness, "/health").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = body_text(response).await;
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "unavailable");
    assert!(!text.contains("celld.sock"), "socket path leaked: {text}");
}

#[tokio::test]
async fn root_redirects_to_setup() {
    let harness = with_celld().await;
    let response = get(&harness, "/").await;
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(response.headers()[header::LOCATION], "/setup");
}

#[tokio::test]
async fn setup_page_shows_version_and_hostname_from_celld() {
    let harness = with_celld().await;
    let status = harness.state.celld.status().await.unwrap();
    let response = get(&harness, "/setup").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = body_text(response).await;
    assert!(
        html.contains(&format!(r#"<dd id="version">{}</dd>"#, status.version)),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"<dd id="hostname">{}</dd>"#, status.hostname)),
        "{html}"
    );
    assert!(
        !html.contains("<script"),
        "the page must work without JavaScript"
    );
}

#[tokio::test]
async fn setup_page_explains_when_celld_is_down() {
    let harness = without_celld();
    let response = get(&harness, "/setup").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = body_text(response).await;
    assert!(html.contains("not answering"), "{html}");
    assert!(!html.contains("celld.sock"), "socket path leaked: {html}");
}

#[tokio::test]
async fn unknown_pages_are_404_with_security_headers() {
    let harness = with_celld().await;
    let response = get(&harness, "/no-such-page").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(
        response.headers()[header::X_CONTENT_TYPE_OPTIONS],
        "nosniff"
    );
}

#[tokio::test]
async fn stylesheet_is_served_as_css() {
    let harness = with_celld().await;
    let response = get(&harness, "/static/cell.css").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/css; charset=utf-8"
    );
}
