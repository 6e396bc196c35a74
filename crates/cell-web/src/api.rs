//! The public REST API under `/api/v1`. One table lists every route with who may call it;
//! the router, the access checks and the OpenAPI document are all built from it, so the
//! document cannot miss a route. Most routes forward to celld's local API with the
//! caller's name and address; celld validates and re-checks the role.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};

use crate::client_addr::ClientAddr;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Extension, Json, Router};
use cell_model::api::{ApiError, LoginRequest, Principal};
use cell_model::Role;
use celld_client::OnBehalf;
use serde::Serialize;
use serde_json::json;

use crate::session::{self, Session};
use crate::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone, at any time.
    Public,
    /// Anyone, before and during setup (the wizard's routes).
    Setup,
    /// Anyone, once set up: logging in.
    Login,
    /// A logged-in user of either role.
    User,
    /// A logged-in admin.
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    Forward,
    Login,
    WhoAmI,
    Logout,
    OpenApi,
}

pub struct ApiRoute {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    handler: Handler,
}

impl ApiRoute {
    /// State-changing calls of a session need its CSRF token; logging in and setting up
    /// have no session yet.
    pub fn needs_csrf(&self) -> bool {
        matches!(self.access, Access::User | Access::Admin)
            && !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }
}

macro_rules! route {
    ($method:ident $path:literal, $access:ident, $handler:ident, $summary:literal) => {
        ApiRoute {
            method: Method::$method,
            path: $path,
            access: Access::$access,
            summary: $summary,
            handler: Handler::$handler,
        }
    };
}

pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// Every route of the API, built once: the guard looks a route up on every request.
pub fn routes() -> &'static [ApiRoute] {
    static ROUTES: std::sync::LazyLock<Vec<ApiRoute>> = std::sync::LazyLock::new(all_routes);
    &ROUTES
}

fn all_routes() -> Vec<ApiRoute> {
    vec![
        route!(GET "/api/v1/openapi.json", Public, OpenApi, "This document"),
        route!(GET "/api/v1/setup", Setup, Forward, "Whether the cell has been set up"),
        route!(POST "/api/v1/setup", Setup, Forward, "Claim the cell with its setup code and set it up"),
        route!(POST "/api/v1/session", Login, Login, "Log in"),
        route!(GET "/api/v1/session", User, WhoAmI, "Who is logged in, and the CSRF token"),
        route!(DELETE "/api/v1/session", User, Logout, "Log out"),
        route!(GET "/api/v1/status", User, Forward, "Version, hostname, uptime, settings generation"),
        route!(GET "/api/v1/settings", Admin, Forward, "The cell's settings"),
        route!(PUT "/api/v1/settings", Admin, Forward, "Replace the cell's settings"),
        route!(GET "/api/v1/users", User, Forward, "Accounts (a peer sees only their own)"),
        route!(POST "/api/v1/users", Admin, Forward, "Create an account"),
        route!(GET "/api/v1/users/{name}", User, Forward, "One account"),
        route!(PATCH "/api/v1/users/{name}", Admin, Forward, "Disable, enable or change the role of an account"),
        route!(DELETE "/api/v1/users/{name}", Admin, Forward, "Delete an account"),
        route!(PUT "/api/v1/users/{name}/password", User, Forward, "Change one's password, or reset another's (admin)"),
        route!(POST "/api/v1/users/{name}/totp", User, Forward, "Start enrolling a TOTP second factor"),
        route!(DELETE "/api/v1/users/{name}/totp", User, Forward, "Remove a second factor"),
        route!(POST "/api/v1/users/{name}/totp/confirm", User, Forward, "Confirm a second factor; returns recovery codes"),
        route!(GET "/api/v1/vpn", Admin, Forward, "The VPN server: subnet, port, endpoint, public key, reconcile state"),
        route!(PUT "/api/v1/vpn", Admin, Forward, "Change the VPN subnet, port or endpoint (202: a new subnet or port waits for confirmation)"),
        route!(POST "/api/v1/changes/confirm", Admin, Forward, "Keep a risky change (VPN subnet or port) before its deadline, or it is undone"),
        route!(GET "/api/v1/vpn/peers", User, Forward, "VPN devices with live status (a peer sees only their own)"),
        route!(POST "/api/v1/vpn/peers", Admin, Forward, "Add a device: key pair generated on the cell, or the device's own public key"),
        route!(GET "/api/v1/vpn/peers/{name}", User, Forward, "One VPN device"),
        route!(PATCH "/api/v1/vpn/peers/{name}", Admin, Forward, "Rename, disable or enable a device, or change its access"),
        route!(DELETE "/api/v1/vpn/peers/{name}", Admin, Forward, "Remove a device and every trace of it"),
        route!(GET "/api/v1/vpn/peers/{name}/config", User, Forward, "The device's WireGuard configuration (.conf)"),
        route!(GET "/api/v1/vpn/peers/{name}/qr.png", User, Forward, "The configuration as a QR code (PNG)"),
        route!(GET "/api/v1/vpn/peers/{name}/qr.svg", User, Forward, "The configuration as a QR code (SVG)"),
        route!(GET "/api/v1/firewall", Admin, Forward, "The live nftables table inet cell"),
        route!(GET "/api/v1/recovery", Admin, Forward, "Whether the recovery console's root shell has a password"),
        route!(PUT "/api/v1/recovery/shell-password", Admin, Forward, "Set the password of the recovery console's root shell"),
        route!(DELETE "/api/v1/recovery/shell-password", Admin, Forward, "Remove it: the shell then needs presence at the console"),
        route!(GET "/api/v1/update", Admin, Forward, "Running, available, pending and failed versions; the update job's progress and last result"),
        route!(PUT "/api/v1/update", Admin, Forward, "Set (or clear) the URL updates are published at"),
        route!(POST "/api/v1/update/check", Admin, Forward, "Ask the update server for newer versions (runs in the background)"),
        route!(POST "/api/v1/update/install", Admin, Forward, "Download, verify and install a version (default: the newest) into the inactive slot"),
        route!(POST "/api/v1/update/reboot", Admin, Forward, "Reboot now, or at a time (RFC 3339), to start the installed version"),
        route!(DELETE "/api/v1/update/reboot", Admin, Forward, "Cancel a scheduled reboot"),
        route!(GET "/api/v1/audit", Admin, Forward, "The audit log, newest first (filters: actor, action, q, limit)"),
        route!(GET "/api/v1/audit/verify", Admin, Forward, "Check the audit log's hash chain"),
    ]
}

fn find<'a>(routes: &'a [ApiRoute], method: &Method, path: &str) -> Option<&'a ApiRoute> {
    routes
        .iter()
        .find(|r| r.method == *method && r.path == path)
}

pub fn router(state: AppState) -> Router<AppState> {
    let mut paths: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for route in routes() {
        let filter = MethodFilter::try_from(route.method.clone()).unwrap_or(MethodFilter::GET);
        let method_router = match route.handler {
            Handler::Forward => on(filter, forward),
            Handler::Login => on(filter, login),
            Handler::WhoAmI => on(filter, who_am_i),
            Handler::Logout => on(filter, logout),
            Handler::OpenApi => on(filter, openapi_get),
        };
        match paths.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(method_router),
            None => paths.push((route.path, method_router)),
        }
    }
    let mut router = Router::new();
    for (path, method_router) in paths {
        router = router.route(path, method_router);
    }
    router
        .route_layer(middleware::from_fn_with_state(state, guard))
        .fallback(|| async { failure(StatusCode::NOT_FOUND, "no such API route") })
}

pub fn failure(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(ApiError {
            error: message.to_owned(),
            field: None,
        }),
    )
        .into_response()
}

/// Whether the cell is set up; remembered once it is, since only a factory reset (which
/// restarts everything) undoes it.
pub async fn setup_complete(state: &AppState) -> Result<bool, celld_client::ClientError> {
    if state.setup_done.load(Ordering::Relaxed) {
        return Ok(true);
    }
    let done = state.celld.status().await?.setup_complete;
    if done {
        state.setup_done.store(true, Ordering::Relaxed);
    }
    Ok(done)
}

/// The client's session, if its cookie names a live one.
pub fn session_of(state: &AppState, headers: &HeaderMap) -> Option<(String, Session)> {
    let token = session::token_from(headers)?;
    let session = state.sessions.get(&token, Instant::now())?;
    Some((token, session))
}

/// Before setup: 428 for everything but the wizard's routes. After: the session, role and
/// CSRF checks the route's access level asks for.
async fn guard(
    State(state): State<AppState>,
    matched: MatchedPath,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(route) = find(routes(), request.method(), matched.as_str()) else {
        return failure(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    };
    if route.access != Access::Public {
        match setup_complete(&state).await {
            Ok(true) => {}
            Ok(false) if route.access == Access::Setup => {}
            Ok(false) => {
                return (
                    StatusCode::PRECONDITION_REQUIRED,
                    Json(json!({"error": "the cell is not set up yet", "setup": "/setup"})),
                )
                    .into_response()
            }
            Err(error) => {
                tracing::warn!(%error, "celld unavailable");
                return failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the cell's core service is not answering",
                );
            }
        }
    }
    if matches!(route.access, Access::User | Access::Admin) {
        let Some((token, session)) = session_of(&state, request.headers()) else {
            return failure(StatusCode::UNAUTHORIZED, "log in first");
        };
        if route.access == Access::Admin && session.principal.role != Role::Admin {
            return failure(StatusCode::FORBIDDEN, "this needs an administrator");
        }
        if route.needs_csrf() {
            let offered = request
                .headers()
                .get(session::CSRF_HEADER)
                .and_then(|v| v.to_str().ok());
            if !session::csrf_matches(&session, offered) {
                return failure(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
            }
        }
        request.extensions_mut().insert(SessionToken(token));
        request.extensions_mut().insert(session);
    }
    next.run(request).await
}

#[derive(Clone)]
struct SessionToken(String);

/// Passes the call to celld under the same path without `/api`, on behalf of the
/// session's user, and returns celld's answer unchanged.
async fn forward(
    State(state): State<AppState>,
    session: Option<Extension<Session>>,
    ClientAddr(source): ClientAddr,
    method: Method,
    request: Request,
) -> Response {
    let uri = request.uri().clone();
    let path = uri.path().strip_prefix("/api").unwrap_or(uri.path());
    let target = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let body = match axum::body::to_bytes(request.into_body(), 64 * 1024).await {
        Ok(body) => body,
        Err(_) => {
            return failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            )
        }
    };
    let on_behalf = OnBehalf {
        actor: session
            .as_ref()
            .map(|Extension(s)| s.principal.name.to_string()),
        source,
    };
    let body = (!body.is_empty()).then_some(body);
    match state
        .celld
        .call_answer(method.clone(), &target, &on_behalf, body)
        .await
    {
        Ok(answer) => {
            after_success(&state, &method, path, answer.status);
            let status =
                StatusCode::from_u16(answer.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = (status, answer.body).into_response();
            if !response.body_is_empty() {
                let content_type = answer
                    .content_type
                    .and_then(|v| header::HeaderValue::from_str(&v).ok())
                    .unwrap_or(header::HeaderValue::from_static("application/json"));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, content_type);
            }
            if let Some(disposition) = answer
                .content_disposition
                .and_then(|v| header::HeaderValue::from_str(&v).ok())
            {
                // A download (a client configuration with its key): never cached.
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, disposition);
                response.headers_mut().insert(
                    header::CACHE_CONTROL,
                    header::HeaderValue::from_static("no-store"),
                );
            }
            response
        }
        Err(error) => {
            tracing::warn!(%error, path = %target, "celld unavailable");
            failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the cell's core service is not answering",
            )
        }
    }
}

trait EmptyBody {
    fn body_is_empty(&self) -> bool;
}

impl EmptyBody for Response {
    fn body_is_empty(&self) -> bool {
        use axum::body::HttpBody;
        self.body().size_hint().exact() == Some(0)
    }
}

/// Consequences in cell-web of changes celld accepted: a finished setup, and sessions of
/// accounts that were disabled, deleted or had their password reset.
fn after_success(state: &AppState, method: &Method, path: &str, status: celld_client::StatusCode) {
    if !status.is_success() {
        return;
    }
    if path == "/v1/setup" && *method == Method::POST {
        state.setup_done.store(true, Ordering::Relaxed);
    }
    if let Some(rest) = path.strip_prefix("/v1/users/") {
        let (user, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let ends_sessions = matches!(
            (method, tail),
            (&Method::DELETE, "") | (&Method::PATCH, "") | (&Method::PUT, "password")
        );
        if ends_sessions {
            state.sessions.end_all_of(user);
        }
    }
}

#[derive(Serialize)]
pub struct SessionView {
    pub name: String,
    pub role: Role,
    pub csrf_token: String,
}

impl SessionView {
    fn of(session: &Session) -> Self {
        Self {
            name: session.principal.name.to_string(),
            role: session.principal.role,
            csrf_token: session.csrf.clone(),
        }
    }
}

/// Checks the credentials with celld and starts a session.
pub async fn authenticate(
    state: &AppState,
    source: Option<String>,
    login: &LoginRequest,
) -> Result<(String, Session), (StatusCode, Bytes)> {
    let body = serde_json::to_vec(login)
        .map(Bytes::from)
        .unwrap_or_default();
    let on_behalf = OnBehalf {
        actor: None,
        source,
    };
    match state
        .celld
        .call(Method::POST, "/v1/auth/login", &on_behalf, Some(body))
        .await
    {
        Ok((status, body)) if status.is_success() => {
            match serde_json::from_slice::<Principal>(&body) {
                Ok(principal) => Ok(state.sessions.create(principal, Instant::now())),
                Err(error) => {
                    tracing::error!(%error, "celld's login answer is unreadable");
                    Err((StatusCode::BAD_GATEWAY, Bytes::new()))
                }
            }
        }
        Ok((status, body)) => Err((
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            body,
        )),
        Err(error) => {
            tracing::warn!(%error, "celld unavailable for a login");
            Err((StatusCode::SERVICE_UNAVAILABLE, Bytes::new()))
        }
    }
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Response {
    let login: LoginRequest = match serde_json::from_slice(&body) {
        Ok(login) => login,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(ApiError {
                    error: error.to_string(),
                    field: Some("body".into()),
                }),
            )
                .into_response()
        }
    };
    match authenticate(&state, source, &login).await {
        Ok((token, session)) => {
            let mut response = Json(SessionView::of(&session)).into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session::set_cookie(&token, state.secure_cookies),
            );
            response
        }
        Err((status, body)) if !body.is_empty() => {
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err((status, _)) => failure(status, "the cell's core service is not answering"),
    }
}

async fn who_am_i(Extension(session): Extension<Session>) -> Json<SessionView> {
    Json(SessionView::of(&session))
}

async fn logout(
    State(state): State<AppState>,
    Extension(SessionToken(token)): Extension<SessionToken>,
) -> Response {
    state.sessions.end(&token);
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::clear_cookie(state.secure_cookies),
    );
    response
}

async fn openapi_get() -> Json<serde_json::Value> {
    Json(openapi())
}

/// The OpenAPI 3 document of every route in the table. `x-cell-access` and
/// `x-cell-csrf` say who may call an operation and whether it needs the CSRF token.
pub fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for route in routes() {
        let parameters: Vec<serde_json::Value> = route
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let security = match route.access {
            Access::User | Access::Admin if route.needs_csrf() => {
                json!([{"session": [], "csrf": []}])
            }
            Access::User | Access::Admin => json!([{"session": []}]),
            _ => json!([]),
        };
        let mut responses = serde_json::Map::new();
        responses.insert("200".into(), json!({"description": "Success"}));
        responses.insert(
            "400".into(),
            json!({"$ref": "#/components/responses/Invalid"}),
        );
        if route.access != Access::Public {
            responses.insert(
                "428".into(),
                json!({"description": "The cell is not set up yet"}),
            );
        }
        if matches!(route.access, Access::User | Access::Admin) {
            responses.insert("401".into(), json!({"description": "Not logged in"}));
            responses.insert(
                "403".into(),
                json!({"description": "Not allowed, or missing CSRF token"}),
            );
        }
        let operation_id = format!(
            "{}{}",
            route.method.as_str().to_lowercase(),
            route
                .path
                .trim_start_matches("/api/v1")
                .replace(['/', '{', '}', '.', '-'], "_")
        );
        let operation = json!({
            "summary": route.summary,
            "operationId": operation_id,
            "tags": [serde_json::to_value(route.access).unwrap_or_default()],
            "parameters": parameters,
            "security": security,
            "responses": responses,
            "x-cell-access": route.access,
            "x-cell-csrf": route.needs_csrf(),
        });
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        if let Some(methods) = entry.as_object_mut() {
            methods.insert(route.method.as_str().to_lowercase(), operation);
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Personal Internet Cell API",
            "version": cell_systemd::image_version(),
            "description": "Every change needs a session cookie (POST /api/v1/session) and, for POST, PUT, PATCH and DELETE, the session's CSRF token in X-CSRF-Token. Before setup every route but the wizard's answers 428. Errors are JSON {\"error\", \"field\"}."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": session::COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"}
            },
            "responses": {
                "Invalid": {
                    "description": "Refused input; `field` names it",
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["error"],
                        "properties": {"error": {"type": "string"}, "field": {"type": "string"}}
                    }}}
                }
            }
        }
    })
}
