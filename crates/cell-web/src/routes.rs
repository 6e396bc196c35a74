//! Every route of cell-web, API and HTML page alike, is declared once with who may use it.
//! The router is built from the declarations and one guard enforces them before any
//! handler runs: the setup state, the session (which celld resolves), the role, the CSRF
//! token (a header for the API, the form's `csrf` field for pages), JSON bodies only as
//! `application/json`. A route the guard finds no declaration for is refused, so a route
//! added without one fails closed; the authorisation matrix test walks the declarations.

use std::sync::LazyLock;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::MethodRouter;
use axum::{Json, Router};
use celld_client::{ClientError, OnBehalf};
use serde::Serialize;
use serde_json::json;

use crate::session::{self, WebSession};
use crate::{AppError, AppState};

/// Who may use a route.
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

/// What a route answers with, and so how the guard refuses: JSON or a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Api,
    Page,
}

/// One declared route.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub kind: Kind,
}

impl Route {
    fn changes_state(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    /// Whether a request must carry a CSRF token: state-changing calls of a session, and
    /// the login form (against login CSRF; the API's login takes JSON only, which a
    /// foreign page cannot send without the browser asking first).
    pub fn needs_csrf(&self) -> bool {
        match self.access {
            Access::User | Access::Admin => self.changes_state(),
            Access::Login => self.kind == Kind::Page && self.changes_state(),
            Access::Public | Access::Setup => false,
        }
    }
}

/// A declared route and its handler.
pub struct Routed {
    pub route: Route,
    pub handler: MethodRouter<AppState>,
}

pub fn page(
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
) -> Routed {
    Routed {
        route: Route {
            method,
            path,
            access,
            kind: Kind::Page,
        },
        handler,
    }
}

fn everything() -> Vec<Routed> {
    let mut all = crate::pages::routes();
    all.extend(crate::account_data_page::routes());
    all.extend(crate::vpn_pages::routes());
    all.extend(crate::changes_page::routes());
    all.extend(crate::recovery_page::routes());
    all.extend(crate::mail_page::routes());
    all.extend(crate::update_page::routes());
    all.extend(crate::dns_page::routes());
    all.extend(crate::network_page::routes());
    all.extend(crate::certificates_page::routes());
    all.extend(crate::logs_page::routes());
    all.extend(crate::files_page::routes());
    all.extend(crate::api::routed());
    all
}

/// Every declared route, API and pages.
pub fn declared() -> &'static [Route] {
    static ROUTES: LazyLock<Vec<Route>> =
        LazyLock::new(|| everything().into_iter().map(|r| r.route).collect());
    &ROUTES
}

/// The router of every declared route behind the guard.
pub fn router(state: AppState) -> Router<AppState> {
    let mut paths: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for Routed { route, handler } in everything() {
        match paths.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(handler),
            None => paths.push((route.path, handler)),
        }
    }
    let mut router = Router::new();
    for (path, handler) in paths {
        router = router.route(path, handler);
    }
    router
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state, guard))
}

async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        failure(StatusCode::NOT_FOUND, "no such API route")
    } else {
        AppError::NotFound.into_response()
    }
}

/// A JSON error answer of the API.
pub fn failure(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(cell_model::ApiError {
            error: message.to_owned(),
            field: None,
        }),
    )
        .into_response()
}

/// Why the guard refused a request.
enum Refusal {
    NotSetUp,
    NotLoggedIn,
    NotAdmin,
    BadCsrf,
    NotJson,
    TooLarge,
    Unavailable(ClientError),
    MethodNotAllowed,
    Undeclared,
}

fn refuse(kind: Kind, refusal: Refusal, secure: bool) -> Response {
    match (kind, refusal) {
        (Kind::Api, Refusal::NotSetUp) => (
            StatusCode::PRECONDITION_REQUIRED,
            Json(json!({"error": "the cell is not set up yet", "setup": "/setup"})),
        )
            .into_response(),
        (Kind::Page, Refusal::NotSetUp) => Redirect::to("/setup").into_response(),
        (Kind::Api, Refusal::NotLoggedIn) => {
            let mut response = failure(StatusCode::UNAUTHORIZED, "log in first");
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session::clear_cookie(secure));
            response
        }
        (Kind::Page, Refusal::NotLoggedIn) => {
            let mut response = Redirect::to("/login").into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session::clear_cookie(secure));
            response
        }
        (Kind::Api, Refusal::NotAdmin) => {
            failure(StatusCode::FORBIDDEN, "this needs an administrator")
        }
        (Kind::Page, Refusal::NotAdmin) => AppError::Forbidden.into_response(),
        (Kind::Api, Refusal::BadCsrf) => {
            failure(StatusCode::FORBIDDEN, "missing or wrong CSRF token")
        }
        (Kind::Page, Refusal::BadCsrf) => AppError::BadCsrf.into_response(),
        (_, Refusal::NotJson) => failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON, with Content-Type: application/json",
        ),
        (_, Refusal::TooLarge) => failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        ),
        (Kind::Api, Refusal::Unavailable(error)) => {
            tracing::warn!(%error, "celld unavailable");
            failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the cell's core service is not answering",
            )
        }
        (Kind::Page, Refusal::Unavailable(error)) => {
            AppError::CelldUnavailable(error).into_response()
        }
        (Kind::Api, Refusal::MethodNotAllowed) => {
            failure(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        (Kind::Page, Refusal::MethodNotAllowed) => {
            (StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response()
        }
        (_, Refusal::Undeclared) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "this route has no access declaration",
        )
            .into_response(),
    }
}

/// Form bodies are small; the guard reads them to find the CSRF field.
const FORM_LIMIT: usize = 64 * 1024;

async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(path) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(request).await;
    };
    let method = match *request.method() {
        Method::HEAD => Method::GET,
        ref other => other.clone(),
    };
    let secure = state.secure_cookies;
    let routes = declared();
    let Some(route) = routes.iter().find(|r| r.method == method && r.path == path) else {
        let kind = if path.starts_with("/api/") {
            Kind::Api
        } else {
            Kind::Page
        };
        if routes.iter().any(|r| r.path == path) {
            return refuse(kind, Refusal::MethodNotAllowed, secure);
        }
        tracing::error!(%path, %method, "refused a route without an access declaration");
        return refuse(kind, Refusal::Undeclared, secure);
    };
    match admit(&state, route, request).await {
        Ok(request) => next.run(request).await,
        Err(refusal) => refuse(route.kind, refusal, secure),
    }
}

/// The checks of `route`'s access level; the request comes back (its body read and put
/// back when a form's CSRF field had to be found), with the session in its extensions.
async fn admit(state: &AppState, route: &Route, request: Request) -> Result<Request, Refusal> {
    if route.kind == Kind::Api && route.changes_state() && !json_or_empty(request.headers()) {
        return Err(Refusal::NotJson);
    }
    if matches!(route.access, Access::Public) {
        return Ok(request);
    }
    let set_up = crate::api::setup_complete(state)
        .await
        .map_err(Refusal::Unavailable)?;
    match route.access {
        Access::Public | Access::Setup => return Ok(request),
        _ if !set_up => return Err(Refusal::NotSetUp),
        Access::Login => {
            if !route.needs_csrf() {
                return Ok(request);
            }
            let expected = session::cookie_from(request.headers(), session::LOGIN_COOKIE);
            let (request, offered) = form_csrf(request).await?;
            return match expected {
                Some(expected) if session::tokens_match(&expected, offered.as_deref()) => {
                    Ok(request)
                }
                _ => Err(Refusal::BadCsrf),
            };
        }
        Access::User | Access::Admin => {}
    }
    let token = session::token_from(request.headers()).ok_or(Refusal::NotLoggedIn)?;
    let on_behalf = OnBehalf {
        session: Some(token.clone()),
        ..OnBehalf::default()
    };
    let current = match state
        .celld
        .json(Method::GET, "/v1/session", &on_behalf, None)
        .await
    {
        Ok(current) => current,
        Err(ClientError::Refused { status, .. }) if status.as_u16() == 401 => {
            return Err(Refusal::NotLoggedIn)
        }
        Err(error) => return Err(Refusal::Unavailable(error)),
    };
    let web = WebSession { token, current };
    if route.access == Access::Admin && web.current.role != cell_model::Role::Admin {
        return Err(Refusal::NotAdmin);
    }
    let mut request = request;
    if route.needs_csrf() {
        let offered = match route.kind {
            Kind::Api => request
                .headers()
                .get(session::CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            // An upload's form (multipart, maybe gigabytes) is not read here: its token
            // comes in the form's address (same origin; pages send no Referer).
            Kind::Page if is_multipart(request.headers()) => request
                .uri()
                .query()
                .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
                .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v)),
            Kind::Page => {
                let (back, offered) = form_csrf(request).await?;
                request = back;
                offered
            }
        };
        if !session::tokens_match(&web.current.csrf_token, offered.as_deref()) {
            return Err(Refusal::BadCsrf);
        }
    }
    request.extensions_mut().insert(web);
    Ok(request)
}

/// Whether the request's body, if it has one, is declared as JSON.
fn json_or_empty(headers: &HeaderMap) -> bool {
    let has_body = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() != "0")
        && (headers.contains_key(header::CONTENT_LENGTH)
            || headers.contains_key(header::TRANSFER_ENCODING));
    if !has_body {
        return true;
    }
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// Reads a form body for its `csrf` field and puts the body back.
async fn form_csrf(request: Request) -> Result<(Request, Option<String>), Refusal> {
    let (parts, body) = request.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| Refusal::TooLarge)?;
    let offered = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v));
    Ok((Request::from_parts(parts, Body::from(bytes)), offered))
}
