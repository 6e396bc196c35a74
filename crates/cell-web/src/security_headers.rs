//! Headers every answer carries: the UI needs no frames or foreign resources, and no
//! scripts but its own (one countdown, an enhancement: pages work without it).

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::tls::CertificateStore;

/// A week, renewed by every visit: short enough that turning ACME off (or a renewal that
/// lapses) does not shut devices without the cell's root out for long. No
/// `includeSubDomains`: the user's other hosts under the domain are not the cell's to
/// decide for.
const HSTS: &str = "max-age=604800";

const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn add(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// HSTS only for names served with a public CA's certificate: with the cell's own root,
/// HSTS would take away the click-through a device without the root still needs.
pub async fn hsts(
    State(certificates): State<CertificateStore>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .and_then(crate::front_door::host_without_port)
        .map(str::to_owned);
    let mut response = next.run(request).await;
    if host.is_some_and(|host| certificates.is_public(&host)) {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}
