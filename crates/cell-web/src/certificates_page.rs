//! The cell's certificates: the root to download (PEM for most systems, DER for phones)
//! with its fingerprint to compare, how to install it per platform, the certificates the
//! front door serves with their expiry and next renewal, and public certificates through
//! ACME (administrators turn it on, pick the CA and challenge, and ask again).

use askama::Template;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Form;
use cell_model::acme::LETS_ENCRYPT;
use cell_model::api::{AcmeView, PkiView, RootCertificate};
use celld_client::{Bytes, Method, OnBehalf};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;

use crate::pages::{render, Errors, Nav, PageUser};
use crate::routes::{page as declare, Routed};
use crate::{AppError, AppState};

pub fn routes() -> Vec<Routed> {
    use crate::routes::Access::{Admin, Public, User};
    vec![
        declare(Method::GET, "/ca.pem", Public, get(root_pem_get)),
        declare(Method::GET, "/ca.der", Public, get(root_der_get)),
        declare(
            Method::GET,
            "/ca.mobileconfig",
            Public,
            get(root_mobileconfig_get),
        ),
        declare(Method::GET, "/certificates", User, get(certificates_get)),
        declare(Method::POST, "/certificates/acme", Admin, post(acme_post)),
        declare(
            Method::POST,
            "/certificates/acme/renew",
            Admin,
            post(acme_renew_post),
        ),
    ]
}

/// The cell's root, as anyone may see it.
pub(crate) async fn root(state: &AppState) -> Result<RootCertificate, AppError> {
    Ok(state
        .celld
        .json(Method::GET, "/v1/pki/root", &OnBehalf::default(), None)
        .await?)
}

const FILE_NAME: &str = "personal-internet-cell-root";

/// The root as PEM (Linux, Windows, macOS, Firefox).
pub async fn root_pem_get(State(state): State<AppState>) -> Result<Response, AppError> {
    let root = root(&state).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{FILE_NAME}.pem\""),
            ),
        ],
        root.pem,
    )
        .into_response())
}

/// The root as DER with the type iOS and Android offer to install.
pub async fn root_der_get(State(state): State<AppState>) -> Result<Response, AppError> {
    let root = root(&state).await?;
    let der = CertificateDer::from_pem_slice(root.pem.as_bytes())
        .map_err(|e| AppError::Internal(format!("the root certificate from celld: {e}")))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/x-x509-ca-cert".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{FILE_NAME}.crt\""),
            ),
        ],
        der.to_vec(),
    )
        .into_response())
}

/// The root as an Apple profile (iPhone, iPad, Mac), as celld makes it.
pub async fn root_mobileconfig_get(State(state): State<AppState>) -> Result<Response, AppError> {
    let answer = state
        .celld
        .call_answer(
            Method::GET,
            "/v1/pki/root.mobileconfig",
            &OnBehalf::default(),
            None,
        )
        .await?;
    if !answer.status.is_success() {
        return Err(AppError::Internal(format!(
            "celld answered the root profile with {}",
            answer.status
        )));
    }
    Ok(crate::api::answer_response(answer))
}

#[derive(Template)]
#[template(path = "certificates.html")]
struct CertificatesPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    view: PkiView,
    /// QR codes a phone scans to fetch the root over plain HTTP (before it trusts the
    /// cell): (what, URL, SVG markup).
    codes: Vec<(&'static str, String, String)>,
    admin: bool,
    csrf: String,
    acme_form: AcmeForm,
    lets_encrypt: &'static str,
    errors: Errors,
}

crate::field_errors!(CertificatesPage);

/// The ACME form as posted (and shown again, with the errors, when refused).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AcmeForm {
    enabled: Option<String>,
    directory: String,
    email: String,
    challenge: String,
}

impl AcmeForm {
    fn of(view: &AcmeView) -> Self {
        Self {
            enabled: view.settings.enabled.then(|| "on".to_owned()),
            directory: view.settings.directory.clone(),
            email: view.settings.email.clone().unwrap_or_default(),
            challenge: view.settings.challenge.as_str().to_owned(),
        }
    }
}

/// What a refused or answered form shows again.
#[derive(Default)]
struct Shown {
    notice: Option<String>,
    form: Option<AcmeForm>,
    errors: Errors,
}

/// QR codes of the root's plain-HTTP downloads at `host`: (for what, URL, SVG markup).
pub(crate) fn root_codes(host: &str) -> Vec<(&'static str, String, String)> {
    [("iPhone, iPad", "ca.mobileconfig"), ("Android", "ca.der")]
        .into_iter()
        .filter_map(|(what, file)| {
            let url = format!("http://{host}/{file}");
            qr_svg(&url).map(|svg| (what, url, svg))
        })
        .collect()
}

/// The host the browser reached the cell by (the phone will reach it the same way).
pub(crate) fn browser_host(
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
) -> Option<String> {
    let value = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| headers.get(header::HOST)?.to_str().ok().map(str::to_owned))?;
    crate::front_door::host_without_port(&value).map(str::to_owned)
}

pub(crate) fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(160, 160)
        .quiet_zone(true)
        .build();
    // Inline in the page: the XML declaration goes.
    let start = svg.find("<svg")?;
    Some(svg[start..].to_owned())
}

async fn certificates_get(
    State(state): State<AppState>,
    user: PageUser,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> Result<Html<String>, AppError> {
    page(&state, &user, &headers, &uri, Shown::default()).await
}

async fn page(
    state: &AppState,
    user: &PageUser,
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
    shown: Shown,
) -> Result<Html<String>, AppError> {
    let view: PkiView = state
        .celld
        .json(Method::GET, "/v1/pki", &user.on_behalf(), None)
        .await?;
    let codes = browser_host(headers, uri)
        .map(|host| root_codes(&host))
        .unwrap_or_default();
    let acme_form = shown.form.unwrap_or_else(|| AcmeForm::of(&view.acme));
    render(CertificatesPage {
        version: cell_systemd::image_version(),
        nav: user.nav("certificates"),
        notice: shown.notice,
        view,
        codes,
        admin: user.is_admin(),
        csrf: user.csrf(),
        acme_form,
        lets_encrypt: LETS_ENCRYPT,
        errors: shown.errors,
    })
}

/// The page again after a post: 200 with a notice, or 400 with the refusal.
async fn answer(
    state: &AppState,
    user: &PageUser,
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
    result: Result<AcmeView, celld_client::ClientError>,
    form: Option<AcmeForm>,
    notice: &str,
) -> Result<Response, AppError> {
    match result {
        Ok(_) => {
            let shown = Shown {
                notice: Some(notice.to_owned()),
                ..Shown::default()
            };
            Ok(page(state, user, headers, uri, shown)
                .await?
                .into_response())
        }
        Err(error) => {
            let shown = Shown {
                errors: Errors::from_refusal(error)?,
                form,
                ..Shown::default()
            };
            let html = page(state, user, headers, uri, shown).await?;
            Ok((StatusCode::BAD_REQUEST, html).into_response())
        }
    }
}

async fn acme_post(
    State(state): State<AppState>,
    user: PageUser,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    Form(form): Form<AcmeForm>,
) -> Result<Response, AppError> {
    let email = form.email.trim();
    let body = serde_json::json!({
        "enabled": form.enabled.is_some(),
        "directory": form.directory.trim(),
        "email": (!email.is_empty()).then_some(email),
        "challenge": form.challenge,
    });
    let result = state
        .celld
        .json(
            Method::PUT,
            "/v1/acme",
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await;
    let notice = if form.enabled.is_some() {
        "Saved: the cell asks the CA for a certificate now; this page shows how it went."
    } else {
        "Saved: ACME is off; the cell's own root serves every name."
    };
    answer(&state, &user, &headers, &uri, result, Some(form), notice).await
}

async fn acme_renew_post(
    State(state): State<AppState>,
    user: PageUser,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, AppError> {
    let result = state
        .celld
        .json(Method::POST, "/v1/acme/renew", &user.on_behalf(), None)
        .await;
    let notice = "Asked: the cell is ordering a new certificate; reload to see how it went.";
    answer(&state, &user, &headers, &uri, result, None, notice).await
}
