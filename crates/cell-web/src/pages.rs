//! The web UI: server-rendered pages and plain HTML forms, usable without JavaScript.
//! Handlers are named `<page>_<get|post>`; each page has one view struct.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};

use crate::client_addr::ClientAddr;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json};
use cell_model::api::{
    AuditEntry, AuditVerification, LoginRequest, RecoveryCodes, SessionInfo, SettingsView,
    TotpEnrolment, UserView,
};
use cell_model::{Role, Status};
use celld_client::{Bytes, ClientError, Method, OnBehalf};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api;
use crate::routes::{page, Access, Routed};
use crate::session::{self, WebSession};
use crate::{AppError, AppState};

const PROVIDERS: &[(&str, &str)] = &[
    ("duckdns", "DuckDNS"),
    ("cloudflare", "Cloudflare"),
    ("noip", "No-IP"),
    ("freedns", "FreeDNS"),
    ("rfc2136", "RFC 2136 (own DNS server)"),
    ("http", "Generic HTTP update URL"),
];

const ZONES: &[&str] = &[
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Amsterdam",
    "Europe/Stockholm",
    "Europe/Warsaw",
    "Europe/Kyiv",
    "Europe/Istanbul",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Mexico_City",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "Africa/Lagos",
    "Africa/Nairobi",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Australia/Sydney",
    "Pacific/Auckland",
];

pub fn routes() -> Vec<Routed> {
    use Access::{Admin, Login, Public, Setup, User};
    vec![
        page(Method::GET, "/health", Public, get(health_get)),
        page(Method::GET, "/static/cell.css", Public, get(stylesheet_get)),
        page(
            Method::GET,
            "/static/countdown.js",
            Public,
            get(countdown_get),
        ),
        page(Method::GET, "/", User, get(dashboard_get)),
        page(Method::GET, "/setup", Setup, get(setup_get)),
        page(Method::POST, "/setup", Setup, post(setup_post)),
        page(Method::GET, "/login", Login, get(login_get)),
        page(Method::POST, "/login", Login, post(login_post)),
        page(Method::POST, "/logout", User, post(logout_post)),
        page(Method::GET, "/settings", Admin, get(settings_get)),
        page(Method::POST, "/settings", Admin, post(settings_post)),
        page(Method::GET, "/users", User, get(users_get)),
        page(Method::POST, "/users", Admin, post(users_post)),
        page(
            Method::POST,
            "/users/reset-password",
            Admin,
            post(users_reset_password_post),
        ),
        page(
            Method::POST,
            "/users/{name}/{action}",
            Admin,
            post(user_action_post),
        ),
        page(Method::GET, "/audit", Admin, get(audit_get)),
        page(Method::GET, "/account", User, get(account_get)),
        page(
            Method::POST,
            "/account/password",
            User,
            post(account_password_post),
        ),
        page(Method::POST, "/account/totp", User, post(account_totp_post)),
        page(
            Method::POST,
            "/account/totp/confirm",
            User,
            post(account_totp_confirm_post),
        ),
        page(
            Method::POST,
            "/account/totp/remove",
            User,
            post(account_totp_remove_post),
        ),
        page(
            Method::POST,
            "/account/app-passwords",
            User,
            post(account_app_password_post),
        ),
        page(
            Method::POST,
            "/account/app-passwords/{id}/revoke",
            User,
            post(account_app_password_revoke_post),
        ),
        page(
            Method::POST,
            "/sessions/{id}/revoke",
            User,
            post(session_revoke_post),
        ),
    ]
}

/// What the layout shows about the logged-in user.
#[derive(Debug, Clone)]
pub struct Nav {
    pub name: String,
    pub admin: bool,
    pub csrf: String,
    pub current: &'static str,
}

/// Field errors of a form, as celld named them, mapped to the form's inputs.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    pub(crate) general: Option<String>,
    pub(crate) fields: BTreeMap<String, String>,
}

impl Errors {
    pub(crate) fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.fields.insert(field.to_owned(), message.into());
        errors
    }

    /// From celld's refusal: `identity.domain.hostname` becomes the form's `domain`.
    pub(crate) fn from_refusal(error: ClientError) -> Result<Self, AppError> {
        match error {
            ClientError::Refused {
                message,
                field: Some(field),
                ..
            } => {
                let last = field.rsplit('.').next().unwrap_or(&field);
                let input = match last {
                    "hostname" | "provider" | "mode" => "domain",
                    other => other,
                };
                Ok(Self::field(input, message))
            }
            ClientError::Refused {
                message,
                field: None,
                ..
            } => Ok(Self {
                general: Some(message),
                fields: BTreeMap::new(),
            }),
            other => Err(AppError::CelldUnavailable(other)),
        }
    }
}

impl Errors {
    /// For forms whose inputs are not where the error shows: the first message as a banner.
    pub(crate) fn into_banner(self) -> Self {
        Self {
            general: self.fields.into_values().next().or(self.general),
            fields: BTreeMap::new(),
        }
    }
}

#[macro_export]
macro_rules! field_errors {
    ($($view:ident),*) => {$(
        impl $view {
            fn error_for(&self, field: &str) -> Option<&str> {
                self.errors.fields.get(field).map(String::as_str)
            }
        }
    )*};
}

pub(crate) fn render(view: impl Template) -> Result<Html<String>, AppError> {
    Ok(Html(view.render()?))
}

/// The logged-in user of a page request: the session the guard resolved with celld (only
/// routes declared `User` or `Admin` have one; their role and CSRF token are checked).
pub struct PageUser {
    pub(crate) session: WebSession,
    source: Option<String>,
}

impl PageUser {
    pub(crate) fn nav(&self, current: &'static str) -> Option<Nav> {
        Some(Nav {
            name: self.session.current.name.to_string(),
            admin: self.is_admin(),
            csrf: self.csrf(),
            current,
        })
    }

    pub(crate) fn csrf(&self) -> String {
        self.session.current.csrf_token.clone()
    }

    /// celld's path of the logged-in user's own account, e.g. `own_path("/totp")`.
    fn own_path(&self, suffix: &str) -> String {
        format!("/v1/users/{}{suffix}", self.session.current.name)
    }

    /// The client's address, when the server knows it (always on the device).
    pub(crate) fn client_ip(&self) -> Option<std::net::IpAddr> {
        self.source.as_deref().and_then(|s| s.parse().ok())
    }

    pub(crate) fn is_admin(&self) -> bool {
        self.session.current.role == Role::Admin
    }

    pub(crate) fn on_behalf(&self) -> OnBehalf {
        OnBehalf {
            session: Some(self.session.token.clone()),
            source: self.source.clone(),
            user_agent: None,
        }
    }
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(session) = parts.extensions.get::<WebSession>().cloned() else {
            return Err(Redirect::to("/login").into_response());
        };
        let Ok(ClientAddr(source)) = ClientAddr::from_request_parts(parts, state).await;
        Ok(Self { session, source })
    }
}

// --- health and static -------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Health<'a> {
    status: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// 200 when this process and celld both answer, 503 otherwise.
pub async fn health_get(State(state): State<AppState>) -> Response {
    match state.celld.status().await {
        Ok(_) => Json(Health {
            status: "ok",
            version: cell_systemd::image_version(),
            error: None,
        })
        .into_response(),
        Err(error) => {
            tracing::warn!(%error, "health check: celld unavailable");
            let body = Health {
                status: "unavailable",
                version: cell_systemd::image_version(),
                error: Some("celld is not answering".to_owned()),
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

pub async fn stylesheet_get() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/cell.css"),
    )
}

pub async fn countdown_get() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/countdown.js"),
    )
}

// --- setup -------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SetupForm {
    code: String,
    cell_name: String,
    domain_mode: String,
    domain: String,
    provider: String,
    timezone: String,
    admin_username: String,
    admin_password: String,
    admin_password_again: String,
    calendar: Option<String>,
    files: Option<String>,
    mail: Option<String>,
    webdav: Option<String>,
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupView {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    hostname: String,
    uptime: String,
    /// The root certificate's fingerprint, to compare with the console's.
    root_fingerprint: String,
    form: SetupForm,
    errors: Errors,
    general_error: Option<String>,
    providers: &'static [(&'static str, &'static str)],
    zones: &'static [&'static str],
}
field_errors!(SetupView);

async fn setup_view(
    state: &AppState,
    form: SetupForm,
    errors: Errors,
) -> Result<Html<String>, AppError> {
    let status = state.celld.status().await?;
    let root = crate::certificates_page::root(state).await?;
    render(SetupView {
        version: cell_systemd::image_version(),
        nav: None,
        notice: None,
        hostname: status.hostname,
        uptime: human_duration(status.uptime_seconds),
        root_fingerprint: root.fingerprint,
        general_error: errors.general.clone(),
        form,
        errors,
        providers: PROVIDERS,
        zones: ZONES,
    })
}

pub async fn setup_get(State(state): State<AppState>) -> Result<Response, AppError> {
    if api::setup_complete(&state).await? {
        return Ok(Redirect::to("/login").into_response());
    }
    let form = SetupForm {
        cell_name: "cell".into(),
        domain_mode: "internal".into(),
        provider: "duckdns".into(),
        timezone: "UTC".into(),
        calendar: Some("on".into()),
        files: Some("on".into()),
        ..SetupForm::default()
    };
    Ok(setup_view(&state, form, Errors::default())
        .await?
        .into_response())
}

fn domain_json(mode: &str, domain: &str, provider: &str) -> serde_json::Value {
    match mode {
        "own" => json!({"mode": "own", "domain": domain}),
        "dynamic" => json!({"mode": "dynamic", "provider": provider, "hostname": domain}),
        _ => json!({"mode": "internal"}),
    }
}

fn services_json(
    calendar: &Option<String>,
    files: &Option<String>,
    mail: &Option<String>,
    webdav: &Option<String>,
) -> serde_json::Value {
    json!({
        "calendar": calendar.is_some(),
        "files": files.is_some(),
        "mail": mail.is_some(),
        "webdav": webdav.is_some(),
    })
}

pub async fn setup_post(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    Form(mut form): Form<SetupForm>,
) -> Result<Response, AppError> {
    if api::setup_complete(&state).await? {
        return Ok(Redirect::to("/login").into_response());
    }
    if form.admin_password != form.admin_password_again {
        form.admin_password.clear();
        form.admin_password_again.clear();
        let errors = Errors::field("admin_password_again", "the two passwords differ");
        return Ok((
            StatusCode::BAD_REQUEST,
            setup_view(&state, form, errors).await?,
        )
            .into_response());
    }
    let body = json!({
        "code": form.code.trim(),
        "cell_name": form.cell_name.trim(),
        "domain": domain_json(&form.domain_mode, form.domain.trim(), &form.provider),
        "timezone": form.timezone.trim(),
        "admin_username": form.admin_username.trim(),
        "admin_password": form.admin_password,
        "services": services_json(&form.calendar, &form.files, &form.mail, &form.webdav),
    });
    let on_behalf = OnBehalf {
        session: None,
        source,
        user_agent: None,
    };
    let result: Result<serde_json::Value, ClientError> = state
        .celld
        .json(
            Method::POST,
            "/v1/setup",
            &on_behalf,
            Some(Bytes::from(body.to_string())),
        )
        .await;
    match result {
        Ok(_) => {
            state
                .setup_done
                .store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(Redirect::to("/setup/done").into_response())
        }
        Err(error) => {
            form.admin_password.clear();
            form.admin_password_again.clear();
            let errors = Errors::from_refusal(error)?;
            Ok((
                StatusCode::BAD_REQUEST,
                setup_view(&state, form, errors).await?,
            )
                .into_response())
        }
    }
}

// --- login and logout --------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginView {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    cell_name: String,
    username: String,
    ask_second_factor: bool,
    general_error: Option<String>,
    /// The login form's own token, also in its cookie (against login CSRF).
    login_token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    username: String,
    password: String,
    second_factor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    welcome: Option<String>,
}

/// The login form's token: the one the browser's cookie holds, or a new one (set with the
/// page that carries it).
fn login_token(headers: &HeaderMap) -> (String, bool) {
    match session::cookie_from(headers, session::LOGIN_COOKIE) {
        Some(token) => (token, false),
        None => (session::random_token(), true),
    }
}

fn login_page(
    state: &AppState,
    view: LoginView,
    status: StatusCode,
    new_token: bool,
) -> Result<Response, AppError> {
    let token = view.login_token.clone();
    let mut response = (status, render(view)?).into_response();
    if new_token {
        response.headers_mut().insert(
            header::SET_COOKIE,
            session::set_login_cookie(&token, state.secure_cookies),
        );
    }
    Ok(response)
}

pub async fn login_get(
    State(state): State<AppState>,
    Query(query): Query<LoginQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let status = state.celld.status().await?;
    let notice = query
        .welcome
        .map(|_| "Your cell is set up. Log in with the account you just created.".to_owned());
    let (login_token, new_token) = login_token(&headers);
    let view = LoginView {
        version: cell_systemd::image_version(),
        nav: None,
        notice,
        cell_name: status.cell_name,
        username: String::new(),
        ask_second_factor: false,
        general_error: None,
        login_token,
    };
    login_page(&state, view, StatusCode::OK, new_token)
}

/// The guard has checked the form's token against the login cookie before this runs.
pub async fn login_post(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let login = LoginRequest {
        username: form.username.trim().to_owned(),
        password: form.password,
        second_factor: form.second_factor.filter(|c| !c.trim().is_empty()),
    };
    match api::authenticate(&state, source, api::user_agent(&headers), &login).await {
        Ok(answer) => {
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session::set_cookie(&answer.token, state.secure_cookies),
            );
            Ok(response)
        }
        Err(refused) => {
            let refusal: Option<cell_model::ApiError> = serde_json::from_slice(&refused.body).ok();
            let ask_second_factor =
                refusal.as_ref().and_then(|r| r.field.as_deref()) == Some("second_factor");
            let message = match refusal {
                _ if ask_second_factor => None,
                Some(refusal) => Some(refusal.error),
                None => Some(
                    "The cell's core service is not answering; try again in a moment.".to_owned(),
                ),
            };
            let cell_name = state
                .celld
                .status()
                .await
                .map(|s| s.cell_name)
                .unwrap_or_default();
            let (login_token, new_token) = login_token(&headers);
            let view = LoginView {
                version: cell_systemd::image_version(),
                nav: None,
                notice: None,
                cell_name,
                username: login.username,
                ask_second_factor,
                general_error: message,
                login_token,
            };
            let status = if ask_second_factor {
                StatusCode::OK
            } else {
                refused.status
            };
            let mut response = login_page(&state, view, status, new_token)?;
            if let Some(wait) = refused
                .retry_after
                .and_then(|v| header::HeaderValue::from_str(&v).ok())
            {
                response.headers_mut().insert(header::RETRY_AFTER, wait);
            }
            Ok(response)
        }
    }
}

/// Logs out: celld ends the session.
pub async fn logout_post(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Response, AppError> {
    if let Err(error) = state
        .celld
        .send(Method::DELETE, "/v1/session", &user.on_behalf(), None)
        .await
    {
        tracing::warn!(%error, "ending a session at celld");
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::clear_cookie(state.secure_cookies),
    );
    Ok(response)
}

// --- dashboard ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardView {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    pending: Option<cell_model::api::PendingChange>,
    status: Status,
    uptime: String,
}

pub async fn dashboard_get(
    State(state): State<AppState>,
    user: PageUser,
    query: Query<crate::changes_page::DashboardQuery>,
) -> Result<Html<String>, AppError> {
    let status: Status = state
        .celld
        .json(Method::GET, "/v1/status", &user.on_behalf(), None)
        .await?;
    render(DashboardView {
        version: cell_systemd::image_version(),
        nav: user.nav("dashboard"),
        notice: crate::changes_page::kept_notice(&query),
        pending: status.pending_change.clone(),
        uptime: human_duration(status.uptime_seconds),
        status,
    })
}

// --- settings ----------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    cell_name: String,
    domain_mode: String,
    domain: String,
    provider: String,
    timezone: String,
    calendar: Option<String>,
    files: Option<String>,
    mail: Option<String>,
    webdav: Option<String>,
}

impl SettingsForm {
    fn from_view(view: &SettingsView) -> Self {
        use cell_model::settings::DomainMode;
        let identity = &view.settings.identity;
        let services = &view.settings.services;
        let on = |b: bool| b.then(|| "on".to_owned());
        let (domain_mode, domain, provider) = match &identity.domain {
            DomainMode::Internal => ("internal", String::new(), "duckdns".to_owned()),
            DomainMode::Own { domain } => ("own", domain.to_string(), "duckdns".to_owned()),
            DomainMode::Dynamic { provider, hostname } => (
                "dynamic",
                hostname.to_string(),
                serde_json::to_value(provider)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ),
        };
        Self {
            cell_name: identity.cell_name.to_string(),
            domain_mode: domain_mode.to_owned(),
            domain,
            provider,
            timezone: identity.timezone.to_string(),
            calendar: on(services.calendar),
            files: on(services.files),
            mail: on(services.mail),
            webdav: on(services.webdav),
        }
    }
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    csrf: String,
    generation: u64,
    form: SettingsForm,
    errors: Errors,
    general_error: Option<String>,
    providers: &'static [(&'static str, &'static str)],
    zones: &'static [&'static str],
}
field_errors!(SettingsPage);

fn settings_page(
    user: &PageUser,
    generation: u64,
    form: SettingsForm,
    errors: Errors,
    notice: Option<String>,
) -> Result<Html<String>, AppError> {
    render(SettingsPage {
        version: cell_systemd::image_version(),
        nav: user.nav("settings"),
        notice,
        csrf: user.csrf(),
        generation,
        general_error: errors.general.clone(),
        form,
        errors,
        providers: PROVIDERS,
        zones: ZONES,
    })
}

pub async fn settings_get(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Html<String>, AppError> {
    let view: SettingsView = state
        .celld
        .json(Method::GET, "/v1/settings", &user.on_behalf(), None)
        .await?;
    settings_page(
        &user,
        view.generation,
        SettingsForm::from_view(&view),
        Errors::default(),
        None,
    )
}

pub async fn settings_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<SettingsForm>,
) -> Result<Response, AppError> {
    let body = json!({
        "identity": {
            "cell_name": form.cell_name.trim(),
            "domain": domain_json(&form.domain_mode, form.domain.trim(), &form.provider),
            "timezone": form.timezone.trim(),
        },
        "services": services_json(&form.calendar, &form.files, &form.mail, &form.webdav),
    });
    let result: Result<SettingsView, ClientError> = state
        .celld
        .json(
            Method::PUT,
            "/v1/settings",
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await;
    match result {
        Ok(view) => {
            let notice = Some(format!(
                "Saved. The cell now runs settings generation {}.",
                view.generation
            ));
            Ok(settings_page(
                &user,
                view.generation,
                SettingsForm::from_view(&view),
                Errors::default(),
                notice,
            )?
            .into_response())
        }
        Err(error) => {
            let errors = Errors::from_refusal(error)?;
            let current: SettingsView = state
                .celld
                .json(Method::GET, "/v1/settings", &user.on_behalf(), None)
                .await?;
            Ok((
                StatusCode::BAD_REQUEST,
                settings_page(&user, current.generation, form, errors, None)?,
            )
                .into_response())
        }
    }
}

// --- users -------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewUserForm {
    name: String,
    role: String,
    password: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    admin: bool,
    csrf: String,
    users: Vec<UserView>,
    form: NewUserForm,
    errors: Errors,
    general_error: Option<String>,
    sessions: Vec<SessionRow>,
    all_users: bool,
    sessions_back: &'static str,
}
field_errors!(UsersPage);

async fn users_page(
    state: &AppState,
    user: &PageUser,
    form: NewUserForm,
    errors: Errors,
    notice: Option<String>,
) -> Result<Html<String>, AppError> {
    let users: Vec<UserView> = state
        .celld
        .json(Method::GET, "/v1/users", &user.on_behalf(), None)
        .await?;
    let sessions = session_rows(state, user).await?;
    render(UsersPage {
        sessions,
        all_users: user.is_admin(),
        sessions_back: "/users",
        version: cell_systemd::image_version(),
        nav: user.nav("users"),
        notice,
        admin: user.is_admin(),
        csrf: user.csrf(),
        users,
        general_error: errors.general.clone(),
        form,
        errors,
    })
}

pub async fn users_get(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Html<String>, AppError> {
    let form = NewUserForm {
        role: "peer".into(),
        ..NewUserForm::default()
    };
    users_page(&state, &user, form, Errors::default(), None).await
}

pub async fn users_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(mut form): Form<NewUserForm>,
) -> Result<Response, AppError> {
    let body = json!({"name": form.name.trim(), "role": form.role, "password": form.password});
    form.password.clear();
    let result: Result<UserView, ClientError> = state
        .celld
        .json(
            Method::POST,
            "/v1/users",
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await;
    match result {
        Ok(created) => {
            let notice = Some(format!("Added {}.", created.name));
            let form = NewUserForm {
                role: "peer".into(),
                ..NewUserForm::default()
            };
            Ok(users_page(&state, &user, form, Errors::default(), notice)
                .await?
                .into_response())
        }
        Err(error) => {
            let errors = Errors::from_refusal(error)?;
            Ok((
                StatusCode::BAD_REQUEST,
                users_page(&state, &user, form, errors, None).await?,
            )
                .into_response())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResetForm {
    name: String,
    password: String,
}

pub async fn users_reset_password_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<ResetForm>,
) -> Result<Response, AppError> {
    let name = cell_model::Username::parse(&form.name).map_err(|_| AppError::NotFound)?;
    let body = Bytes::from(json!({"password": form.password}).to_string());
    let path = format!("/v1/users/{name}/password");
    let result = state
        .celld
        .send(Method::PUT, &path, &user.on_behalf(), Some(body))
        .await;
    let done = format!("The password of {name} was reset; their sessions were ended.");
    users_outcome(&state, &user, name.as_str(), result, done).await
}

/// What a user action's form may carry besides the CSRF token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserActionForm {
    /// Mail aliases, separated by spaces or commas.
    aliases: String,
}

pub async fn user_action_post(
    State(state): State<AppState>,
    user: PageUser,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<UserActionForm>,
) -> Result<Response, AppError> {
    let name = cell_model::Username::parse(&name).map_err(|_| AppError::NotFound)?;
    let path = format!("/v1/users/{name}");
    let aliases: Vec<String> = form
        .aliases
        .split([' ', ','])
        .filter(|a| !a.is_empty())
        .map(|a| a.trim().to_lowercase())
        .collect();
    let (method, body, done) = match action.as_str() {
        "disable" => (Method::PATCH, Some(json!({"disabled": true})), "disabled"),
        "enable" => (Method::PATCH, Some(json!({"disabled": false})), "enabled"),
        "delete" => (Method::DELETE, None, "deleted"),
        "aliases" => (
            Method::PATCH,
            Some(json!({"mail_aliases": aliases})),
            "given new mail aliases",
        ),
        _ => return Err(AppError::NotFound),
    };
    let body = body.map(|b| Bytes::from(b.to_string()));
    let result = state
        .celld
        .send(method, &path, &user.on_behalf(), body)
        .await;
    users_outcome(
        &state,
        &user,
        name.as_str(),
        result,
        format!("{name} was {done}."),
    )
    .await
}

/// The users page after an action on `name` (celld ends the account's sessions itself
/// when it is disabled, deleted or its password reset), or celld's refusal as a banner.
async fn users_outcome(
    state: &AppState,
    user: &PageUser,
    name: &str,
    result: Result<(), ClientError>,
    done: String,
) -> Result<Response, AppError> {
    let fresh = NewUserForm {
        role: "peer".into(),
        ..NewUserForm::default()
    };
    match result {
        Ok(()) => {
            tracing::info!(user = %name, "account changed from the users page");
            Ok(
                users_page(state, user, fresh, Errors::default(), Some(done))
                    .await?
                    .into_response(),
            )
        }
        Err(error) => {
            let errors = Errors::from_refusal(error)?.into_banner();
            Ok((
                StatusCode::BAD_REQUEST,
                users_page(state, user, fresh, errors, None).await?,
            )
                .into_response())
        }
    }
}

// --- audit -------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AuditFilter {
    actor: String,
    action: String,
    q: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    filter: AuditFilter,
    entries: Vec<AuditEntry>,
    verification: AuditVerification,
}

pub async fn audit_get(
    State(state): State<AppState>,
    user: PageUser,
    Query(filter): Query<AuditFilter>,
) -> Result<Html<String>, AppError> {
    let mut query = Vec::new();
    for (key, value) in [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("q", &filter.q),
    ] {
        if !value.trim().is_empty() {
            query.push(format!(
                "{key}={}",
                celld_client::encode_component(value.trim())
            ));
        }
    }
    let path = if query.is_empty() {
        "/v1/audit".to_owned()
    } else {
        format!("/v1/audit?{}", query.join("&"))
    };
    let entries: Vec<AuditEntry> = state
        .celld
        .json(Method::GET, &path, &user.on_behalf(), None)
        .await?;
    let verification: AuditVerification = state
        .celld
        .json(Method::GET, "/v1/audit/verify", &user.on_behalf(), None)
        .await?;
    render(AuditPage {
        version: cell_systemd::image_version(),
        nav: user.nav("audit"),
        notice: None,
        filter,
        entries,
        verification,
    })
}

// --- account: password and second factor -------------------------------------------------

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    csrf: String,
    totp_enabled: bool,
    enrolment: Option<TotpEnrolment>,
    recovery_codes: Option<Vec<String>>,
    errors: Errors,
    general_error: Option<String>,
    sessions: Vec<SessionRow>,
    all_users: bool,
    sessions_back: &'static str,
    app_passwords: Vec<cell_model::api::AppPasswordView>,
    new_app_password: Option<cell_model::api::CreatedAppPassword>,
}
field_errors!(AccountPage);

#[derive(Default)]
struct AccountExtras {
    notice: Option<String>,
    enrolment: Option<TotpEnrolment>,
    recovery_codes: Option<Vec<String>>,
    errors: Errors,
    new_app_password: Option<cell_model::api::CreatedAppPassword>,
}

async fn account_page(
    state: &AppState,
    user: &PageUser,
    extras: AccountExtras,
) -> Result<Html<String>, AppError> {
    let path = user.own_path("");
    let me: UserView = state
        .celld
        .json(Method::GET, &path, &user.on_behalf(), None)
        .await?;
    let sessions = session_rows(state, user)
        .await?
        .into_iter()
        .filter(|s| s.user == me.name.as_str())
        .collect();
    let app_passwords = state
        .celld
        .json(
            Method::GET,
            &user.own_path("/app-passwords"),
            &user.on_behalf(),
            None,
        )
        .await?;
    render(AccountPage {
        app_passwords,
        new_app_password: extras.new_app_password,
        sessions,
        all_users: false,
        sessions_back: "/account",
        version: cell_systemd::image_version(),
        nav: user.nav("account"),
        notice: extras.notice,
        csrf: user.csrf(),
        totp_enabled: me.totp_enabled,
        enrolment: extras.enrolment,
        recovery_codes: extras.recovery_codes,
        general_error: extras.errors.general.clone(),
        errors: extras.errors,
    })
}

/// The account page after a form: 200 with what `done` makes of celld's answer, or 400
/// with its refusal (as a banner when the form's inputs are not where it shows).
async fn account_answer<T>(
    state: &AppState,
    user: &PageUser,
    result: Result<T, ClientError>,
    banner: bool,
    done: impl FnOnce(T) -> AccountExtras,
) -> Result<Response, AppError> {
    let (status, extras) = match result {
        Ok(answer) => (StatusCode::OK, done(answer)),
        Err(error) => {
            let errors = Errors::from_refusal(error)?;
            let errors = if banner { errors.into_banner() } else { errors };
            (
                StatusCode::BAD_REQUEST,
                AccountExtras {
                    errors,
                    ..AccountExtras::default()
                },
            )
        }
    };
    Ok((status, account_page(state, user, extras).await?).into_response())
}

pub async fn account_get(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Html<String>, AppError> {
    account_page(&state, &user, AccountExtras::default()).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    current_password: String,
    password: String,
}

pub async fn account_password_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<PasswordForm>,
) -> Result<Response, AppError> {
    let path = user.own_path("/password");
    let body = json!({"password": form.password, "current_password": form.current_password});
    let result = state
        .celld
        .send(
            Method::PUT,
            &path,
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await;
    account_answer(&state, &user, result, false, |()| AccountExtras {
        notice: Some("Your password was changed.".into()),
        ..AccountExtras::default()
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AppPasswordForm {
    name: String,
}

/// Makes an app password for a device and shows it, this once.
pub async fn account_app_password_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<AppPasswordForm>,
) -> Result<Response, AppError> {
    let body = json!({"name": form.name});
    let result = state
        .celld
        .json::<cell_model::api::CreatedAppPassword>(
            Method::POST,
            &user.own_path("/app-passwords"),
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await;
    account_answer(&state, &user, result, false, |created| AccountExtras {
        new_app_password: Some(created),
        ..AccountExtras::default()
    })
    .await
}

pub async fn account_app_password_revoke_post(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let path = user.own_path(&format!(
        "/app-passwords/{}",
        celld_client::encode_component(&id)
    ));
    let result = state
        .celld
        .send(Method::DELETE, &path, &user.on_behalf(), None)
        .await;
    account_answer(&state, &user, result, true, |()| AccountExtras {
        notice: Some("Revoked: devices using that app password can no longer log in.".into()),
        ..AccountExtras::default()
    })
    .await
}

pub async fn account_totp_post(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Html<String>, AppError> {
    let path = user.own_path("/totp");
    let enrolment: TotpEnrolment = state
        .celld
        .json(Method::POST, &path, &user.on_behalf(), None)
        .await?;
    account_page(
        &state,
        &user,
        AccountExtras {
            enrolment: Some(enrolment),
            ..AccountExtras::default()
        },
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TotpConfirmForm {
    code: String,
}

pub async fn account_totp_confirm_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<TotpConfirmForm>,
) -> Result<Response, AppError> {
    let path = user.own_path("/totp/confirm");
    let body = json!({"code": form.code.trim()});
    let result: Result<RecoveryCodes, ClientError> = state
        .celld
        .json(
            Method::POST,
            &path,
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await;
    match result {
        Ok(codes) => Ok(account_page(
            &state,
            &user,
            AccountExtras {
                recovery_codes: Some(codes.recovery_codes),
                ..AccountExtras::default()
            },
        )
        .await?
        .into_response()),
        Err(error) => {
            let errors = Errors::from_refusal(error)?;
            let extras = AccountExtras {
                errors: errors.into_banner(),
                ..AccountExtras::default()
            };
            Ok((
                StatusCode::BAD_REQUEST,
                account_page(&state, &user, extras).await?,
            )
                .into_response())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TotpRemoveForm {
    current_password: String,
}

pub async fn account_totp_remove_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<TotpRemoveForm>,
) -> Result<Response, AppError> {
    let path = user.own_path("/totp");
    let body = json!({"current_password": form.current_password});
    let result = state
        .celld
        .send(
            Method::DELETE,
            &path,
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await;
    account_answer(&state, &user, result, true, |()| AccountExtras {
        notice: Some("Two-step login is off.".into()),
        ..AccountExtras::default()
    })
    .await
}

// --- sessions ----------------------------------------------------------------------------

/// A session as a row of the Sessions table.
pub(crate) struct SessionRow {
    id: String,
    user: String,
    device: String,
    address: String,
    last_seen: String,
    created: String,
    current: bool,
}

/// A short name for a browser from its User-Agent: "Firefox on Linux".
fn device_name(user_agent: Option<&str>) -> String {
    let Some(agent) = user_agent else {
        return "unknown".to_owned();
    };
    let browser = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(needle, _)| agent.contains(needle))
    .map(|(_, name)| *name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| agent.contains(needle))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(name), None) | (None, Some(name)) => name.to_owned(),
        (None, None) => agent.chars().take(40).collect(),
    }
}

fn ago(time: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let seconds = now.duration_since(time).as_secs().max(0) as u64;
    if seconds < 60 {
        "just now".to_owned()
    } else {
        format!("{} ago", human_duration(seconds))
    }
}

async fn session_rows(state: &AppState, user: &PageUser) -> Result<Vec<SessionRow>, AppError> {
    let sessions: Vec<SessionInfo> = state
        .celld
        .json(Method::GET, "/v1/sessions", &user.on_behalf(), None)
        .await?;
    let now = jiff::Timestamp::now();
    Ok(sessions
        .into_iter()
        .map(|s| SessionRow {
            device: device_name(s.user_agent.as_deref()),
            address: s
                .source
                .clone()
                .unwrap_or_else(|| "this machine".to_owned()),
            last_seen: ago(s.last_seen, now),
            created: ago(s.created, now),
            id: s.id,
            user: s.user.to_string(),
            current: s.current,
        })
        .collect())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RevokeForm {
    back: String,
}

/// Ends a session (one's own, or anyone's for an admin: celld decides), then shows the
/// page the list was on.
pub async fn session_revoke_post(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, AppError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::NotFound);
    }
    state
        .celld
        .send(
            Method::DELETE,
            &format!("/v1/sessions/{id}"),
            &user.on_behalf(),
            None,
        )
        .await?;
    let back = if form.back == "/users" {
        "/users#sessions"
    } else {
        "/account#sessions"
    };
    Ok(Redirect::to(back).into_response())
}

/// "3 days, 4 hours", "5 minutes", "12 seconds": the two largest units that are non-zero.
pub fn human_duration(seconds: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let mut rest = seconds;
    let mut parts = Vec::new();
    for (size, name) in UNITS {
        let count = rest / size;
        rest %= size;
        if count > 0 && parts.len() < 2 {
            let plural = if count == 1 { "" } else { "s" };
            parts.push(format!("{count} {name}{plural}"));
        } else if !parts.is_empty() {
            break;
        }
    }
    if parts.is_empty() {
        "0 seconds".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(0), "0 seconds");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(61), "1 minute, 1 second");
        assert_eq!(human_duration(3_600), "1 hour");
        assert_eq!(
            human_duration(3 * 86_400 + 4 * 3_600 + 5),
            "3 days, 4 hours"
        );
    }
}
