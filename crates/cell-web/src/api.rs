//! The public REST API under `/api/v1`. One table lists every route with who may call it;
//! the routes, their guard (see [`crate::routes`]) and the OpenAPI document are all built
//! from it, so the document cannot miss a route. Most routes forward to celld's local API
//! with the browser's session token and address; celld resolves the session, validates
//! and checks the role itself.

use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::{Extension, Json};
use cell_model::api::{ApiError, CurrentSession, LoginAnswer, LoginRequest};
use cell_model::Role;
use celld_client::{Bytes, OnBehalf};
use serde::Serialize;
use serde_json::json;

use crate::client_addr::ClientAddr;
pub use crate::routes::{failure, Access};
use crate::routes::{Kind, Route, Routed};
use crate::session::{self, WebSession};
use crate::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    Forward,
    /// Like `Forward`, for a download that may be large: passed on as it arrives.
    Stream,
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
    fn route(&self) -> Route {
        Route {
            method: self.method.clone(),
            path: self.path,
            access: self.access,
            kind: Kind::Api,
        }
    }

    /// State-changing calls of a session need its CSRF token; logging in and setting up
    /// have no session yet.
    pub fn needs_csrf(&self) -> bool {
        self.route().needs_csrf()
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
        route!(GET "/api/v1/sessions", User, Forward, "Live sessions: device, address, last seen (an admin sees everyone's)"),
        route!(DELETE "/api/v1/sessions/{id}", User, Forward, "End a session: one's own, or anyone's (admin)"),
        route!(GET "/api/v1/status", User, Forward, "Version, hostname, uptime, settings generation"),
        route!(GET "/api/v1/settings", Admin, Forward, "The cell's settings"),
        route!(PUT "/api/v1/settings", Admin, Forward, "Replace the cell's settings"),
        route!(GET "/api/v1/users", User, Forward, "Accounts (a peer sees only their own)"),
        route!(POST "/api/v1/users", Admin, Forward, "Create an account"),
        route!(GET "/api/v1/users/{name}", User, Forward, "One account"),
        route!(PATCH "/api/v1/users/{name}", Admin, Forward, "Disable, enable or change the role of an account"),
        route!(DELETE "/api/v1/users/{name}", Admin, Forward, "Delete an account with its devices, then its mailbox, calendars, address books and files (export them first); of a name that is no longer an account, remove what it left"),
        route!(GET "/api/v1/users/{name}/export", User, Stream, "An account's mail (maildir), calendars (.ics), address books (.vcf) and files as one tar archive, streamed (its owner, or an admin)"),
        route!(PUT "/api/v1/users/{name}/password", User, Forward, "Change one's password, or reset another's (admin)"),
        route!(GET "/api/v1/users/{name}/app-passwords", User, Forward, "An account's app passwords (own, or any for an admin): name, made, last use; never the password"),
        route!(POST "/api/v1/users/{name}/app-passwords", User, Forward, "Make an app password for a device ({name}); the password is in this answer only"),
        route!(DELETE "/api/v1/users/{name}/app-passwords/{id}", User, Forward, "Revoke an app password: service logins with it are refused at once"),
        route!(GET "/api/v1/users/{name}/client-settings", User, Forward, "What to type into an app for each service that is on: mail address and servers, the CalDAV/CardDAV and WebDAV URLs (own, or any for an admin)"),
        route!(GET "/api/v1/service-logins", User, Forward, "Whether service logins accept the account password (accounts without a second factor)"),
        route!(PUT "/api/v1/service-logins", Admin, Forward, "Allow or refuse the account password for service logins (app passwords always work)"),
        route!(POST "/api/v1/users/{name}/totp", User, Forward, "Start enrolling a TOTP second factor"),
        route!(DELETE "/api/v1/users/{name}/totp", User, Forward, "Remove a second factor (the owner confirms with current_password)"),
        route!(POST "/api/v1/users/{name}/totp/confirm", User, Forward, "Confirm a second factor; returns recovery codes"),
        route!(GET "/api/v1/mail/relay", Admin, Forward, "The outbound mail relay (smarthost): host, port, login, whether its certificate is checked, when its password was set (never the password), and whether mail leaves the cell"),
        route!(PUT "/api/v1/mail/relay", Admin, Forward, "Send outgoing mail through a relay: host, port (587 or 465), username, password (needed first and for a new login; left out, kept), verify_certificate"),
        route!(DELETE "/api/v1/mail/relay", Admin, Forward, "Stop using the relay and forget its password"),
        route!(GET "/api/v1/vpn", Admin, Forward, "The VPN server: subnet, port, endpoint, public key, reconcile state"),
        route!(PUT "/api/v1/vpn", Admin, Forward, "Change the VPN subnet, port or endpoint (202: a new subnet or port waits for confirmation)"),
        route!(POST "/api/v1/changes/confirm", Admin, Forward, "Keep a risky change (VPN subnet or port) before its deadline, or it is undone"),
        route!(GET "/api/v1/vpn/peers", User, Forward, "VPN devices with live status (a peer sees only their own)"),
        route!(POST "/api/v1/vpn/peers", Admin, Forward, "Add a device: key pair generated on the cell, or the device's own public key"),
        route!(GET "/api/v1/vpn/peers/{name}", User, Forward, "One VPN device"),
        route!(PATCH "/api/v1/vpn/peers/{name}", Admin, Forward, "Rename, disable or enable a device, or change its access"),
        route!(DELETE "/api/v1/vpn/peers/{name}", Admin, Forward, "Remove a device and every trace of it"),
        route!(GET "/api/v1/vpn/peers/{name}/config", User, Forward, "The device's WireGuard configuration (.conf)"),
        route!(GET "/api/v1/vpn/peers/{name}/mobileconfig", User, Forward, "The device's WireGuard configuration and the cell's root certificate as one Apple profile (.mobileconfig)"),
        route!(GET "/api/v1/vpn/peers/{name}/qr.png", User, Forward, "The configuration as a QR code (PNG)"),
        route!(GET "/api/v1/vpn/peers/{name}/qr.svg", User, Forward, "The configuration as a QR code (SVG)"),
        route!(GET "/api/v1/firewall", Admin, Forward, "The live nftables table inet cell"),
        route!(GET "/api/v1/dns", User, Forward, "The cell's zone: its records and the names it answers, per view"),
        route!(PUT "/api/v1/dns", Admin, Forward, "Replace the zone's records (A, AAAA, CNAME, TXT, MX, SRV), upstreams or forwarding zones (each part given replaces that part); a refusal names the field"),
        route!(GET "/api/v1/lan", Admin, Forward, "The LAN port's addressing (DHCP or static), the DHCP server and its reservations, the port's addresses and the leases given"),
        route!(PUT "/api/v1/lan", Admin, Forward, "Set the LAN addressing (a change waits for confirmation and is undone without one) and the DHCP server; a refusal names the field"),
        route!(GET "/api/v1/pki/root", Public, Forward, "The cell's root certificate (PEM) and its SHA-256 fingerprint, to compare with the console's before trusting it"),
        route!(GET "/api/v1/pki", User, Forward, "The root and the certificates the front door serves: names, addresses, validity, next renewal"),
        route!(GET "/api/v1/acme", User, Forward, "Public certificates through ACME: settings, state, the certificate in force, next renewal, last error and backoff"),
        route!(PUT "/api/v1/acme", Admin, Forward, "Turn ACME on or off (agreeing to the CA's terms); set the directory, contact e-mail and challenge (http-01, dns-01)"),
        route!(POST "/api/v1/acme/renew", Admin, Forward, "Ask the ACME CA for a new certificate now, forgetting the backoff of earlier failures"),
        route!(GET "/api/v1/ntp", User, Forward, "Time sources, whether the cell serves time, and chrony's synchronisation (stratum, offset)"),
        route!(PUT "/api/v1/ntp", Admin, Forward, "Set the time sources (host, pool, nts) and whether LAN and VPN clients are served"),
        route!(GET "/api/v1/recovery", Admin, Forward, "Whether the recovery console's root shell has a password"),
        route!(PUT "/api/v1/recovery/shell-password", Admin, Forward, "Set the password of the recovery console's root shell"),
        route!(DELETE "/api/v1/recovery/shell-password", Admin, Forward, "Remove it: the shell then needs presence at the console"),
        route!(GET "/api/v1/update", Admin, Forward, "Running, available, pending and failed versions; the update job's progress and last result"),
        route!(PUT "/api/v1/update", Admin, Forward, "Set (or clear) the URL updates are published at"),
        route!(POST "/api/v1/update/check", Admin, Forward, "Ask the update server for newer versions (runs in the background)"),
        route!(POST "/api/v1/update/install", Admin, Forward, "Download, verify and install a version (default: the newest) into the inactive slot"),
        route!(POST "/api/v1/update/reboot", Admin, Forward, "Reboot now, or at a time (RFC 3339), to start the installed version"),
        route!(DELETE "/api/v1/update/reboot", Admin, Forward, "Cancel a scheduled reboot"),
        route!(GET "/api/v1/units", Admin, Forward, "Every unit of the cell: active and sub state, since when, automatic restarts, description"),
        route!(GET "/api/v1/logs", Admin, Forward, "Journal lines of the cell's units, oldest first, and the cursor to follow from (filters: unit, priority 0-7, text; after=CURSOR, limit)"),
        route!(GET "/api/v1/audit", Admin, Forward, "The audit log, newest first (filters: actor, action, q, limit)"),
        route!(GET "/api/v1/audit/verify", Admin, Forward, "Check the audit log's hash chain"),
    ]
}

/// The API's routes with their handlers, for the router.
pub fn routed() -> Vec<Routed> {
    routes()
        .iter()
        .map(|route| {
            let filter = MethodFilter::try_from(route.method.clone()).unwrap_or(MethodFilter::GET);
            let handler = match route.handler {
                Handler::Forward => on(filter, forward),
                Handler::Stream => on(filter, stream_forward),
                Handler::Login => on(filter, login),
                Handler::WhoAmI => on(filter, who_am_i),
                Handler::Logout => on(filter, logout),
                Handler::OpenApi => on(filter, openapi_get),
            };
            Routed {
                route: route.route(),
                handler,
            }
        })
        .collect()
}

/// celld's answer as it is: status, body, and the headers that describe the body.
pub(crate) fn answer_response(answer: celld_client::Answer) -> Response {
    let status = StatusCode::from_u16(answer.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
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
    if let Some(wait) = answer
        .retry_after
        .and_then(|v| header::HeaderValue::from_str(&v).ok())
    {
        response.headers_mut().insert(header::RETRY_AFTER, wait);
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

/// Passes the call to celld under the same path without `/api`, with the session's token
/// and the client's address, and returns celld's answer unchanged.
async fn forward(
    State(state): State<AppState>,
    session: Option<Extension<WebSession>>,
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
        session: session.map(|Extension(s)| s.token),
        source,
        user_agent: None,
    };
    let body = (!body.is_empty()).then_some(body);
    match state
        .celld
        .call_answer(method.clone(), &target, &on_behalf, body)
        .await
    {
        Ok(answer) => {
            if answer.status.is_success() && path == "/v1/setup" && method == Method::POST {
                state.setup_done.store(true, Ordering::Relaxed);
            }
            answer_response(answer)
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

/// Passes a GET on to celld like [`forward`], handing celld's answer on as it arrives.
async fn stream_forward(
    State(state): State<AppState>,
    session: Option<Extension<WebSession>>,
    ClientAddr(source): ClientAddr,
    request: Request,
) -> Response {
    let uri = request.uri();
    let path = uri.path().strip_prefix("/api").unwrap_or(uri.path());
    let on_behalf = OnBehalf {
        session: session.map(|Extension(s)| s.token),
        source,
        user_agent: None,
    };
    match state.celld.stream(path, &on_behalf).await {
        Ok(streamed) => streamed_response(streamed),
        Err(celld_client::ClientError::Refused {
            status,
            message,
            field,
            ..
        }) => (
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            Json(ApiError {
                error: message,
                field,
            }),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(%error, path, "celld unavailable");
            failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the cell's core service is not answering",
            )
        }
    }
}

/// celld's streamed answer as it is: status, the headers that describe the body, and the
/// body as it arrives (a download is never cached).
pub(crate) fn streamed_response(streamed: celld_client::Streamed) -> Response {
    let status = StatusCode::from_u16(streamed.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = Response::new(axum::body::Body::new(streamed.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let text = |value: Option<String>| value.and_then(|v| header::HeaderValue::from_str(&v).ok());
    if let Some(content_type) = text(streamed.content_type) {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    if let Some(disposition) = text(streamed.content_disposition) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
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

#[derive(Serialize)]
pub struct SessionView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub csrf_token: String,
}

impl SessionView {
    fn of(session: &CurrentSession) -> Self {
        Self {
            id: session.id.clone(),
            name: session.name.to_string(),
            role: session.role,
            csrf_token: session.csrf_token.clone(),
        }
    }
}

/// The client's browser, for the Sessions list.
pub fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect())
}

/// A login celld refused: its status, its JSON body (empty when celld did not answer) and
/// how long to wait before trying again.
pub struct LoginRefused {
    pub status: StatusCode,
    pub body: Bytes,
    pub retry_after: Option<String>,
}

impl LoginRefused {
    fn unanswered(status: StatusCode) -> Self {
        Self {
            status,
            body: Bytes::new(),
            retry_after: None,
        }
    }

    /// The refusal as an API answer, `Retry-After` kept.
    pub fn into_response(self) -> Response {
        if self.body.is_empty() {
            return failure(self.status, "the cell's core service is not answering");
        }
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body,
        )
            .into_response();
        if let Some(value) = self
            .retry_after
            .and_then(|v| header::HeaderValue::from_str(&v).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// Checks the credentials with celld, which opens a session and hands its token over.
pub async fn authenticate(
    state: &AppState,
    source: Option<String>,
    user_agent: Option<String>,
    login: &LoginRequest,
) -> Result<LoginAnswer, LoginRefused> {
    let body = serde_json::to_vec(login)
        .map(Bytes::from)
        .unwrap_or_default();
    let on_behalf = OnBehalf {
        session: None,
        source,
        user_agent,
    };
    match state
        .celld
        .call_answer(Method::POST, "/v1/auth/login", &on_behalf, Some(body))
        .await
    {
        Ok(answer) if answer.status.is_success() => {
            serde_json::from_slice::<LoginAnswer>(&answer.body).map_err(|error| {
                tracing::error!(%error, "celld's login answer is unreadable");
                LoginRefused::unanswered(StatusCode::BAD_GATEWAY)
            })
        }
        Ok(answer) => Err(LoginRefused {
            status: StatusCode::from_u16(answer.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            body: answer.body,
            retry_after: answer.retry_after,
        }),
        Err(error) => {
            tracing::warn!(%error, "celld unavailable for a login");
            Err(LoginRefused::unanswered(StatusCode::SERVICE_UNAVAILABLE))
        }
    }
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    headers: HeaderMap,
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
    match authenticate(&state, source, user_agent(&headers), &login).await {
        Ok(answer) => {
            let mut response = Json(SessionView::of(&answer.session)).into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session::set_cookie(&answer.token, state.secure_cookies),
            );
            response
        }
        Err(refused) => refused.into_response(),
    }
}

async fn who_am_i(Extension(session): Extension<WebSession>) -> Json<SessionView> {
    Json(SessionView::of(&session.current))
}

async fn logout(
    State(state): State<AppState>,
    Extension(session): Extension<WebSession>,
) -> Response {
    let on_behalf = OnBehalf {
        session: Some(session.token),
        ..OnBehalf::default()
    };
    if let Err(error) = state
        .celld
        .send(Method::DELETE, "/v1/session", &on_behalf, None)
        .await
    {
        tracing::warn!(%error, "ending a session at celld");
    }
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
