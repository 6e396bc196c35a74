//! The DNS page: the cell's zone (the names it gives itself, per view), the records people
//! add, the upstream resolvers and forwarding zones, and a query box that shows what a
//! given device would be answered (computed with cell-dns's own answering code from the
//! zone celld rendered). celld validates every change.

use std::net::{IpAddr, Ipv4Addr};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Form;
use cell_dns::{Explanation, Zone};
use cell_model::api::{DnsView, PeerView};
use cell_model::dns::{DnsRecord, ForwardZone, RecordData, DEFAULT_TTL, RECORD_TYPES};
use celld_client::{Bytes, ClientError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::pages::{render, Errors, Nav, PageUser};
use crate::routes::{page as declare, Routed};
use crate::{field_errors, AppError, AppState};

pub fn routes() -> Vec<Routed> {
    use crate::routes::Access::{Admin, User};
    vec![
        declare(Method::GET, "/dns", User, get(dns_get)),
        declare(Method::POST, "/dns/records", Admin, post(record_add_post)),
        declare(
            Method::POST,
            "/dns/records/{index}/remove",
            Admin,
            post(record_remove_post),
        ),
        declare(Method::POST, "/dns/upstreams", Admin, post(upstreams_post)),
        declare(Method::POST, "/dns/forward", Admin, post(forward_add_post)),
        declare(
            Method::POST,
            "/dns/forward/{index}/remove",
            Admin,
            post(forward_remove_post),
        ),
    ]
}

/// The asker the query box stands for when no device is chosen: an address in no VPN
/// network, so it gets the LAN view.
const LAN_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// The query box's types: the record types and the cell's own.
const ASK_TYPES: &[&str] = &["A", "AAAA", "CNAME", "TXT", "MX", "SRV", "SOA", "NS", "ANY"];

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RecordForm {
    name: String,
    kind: String,
    value: String,
    ttl: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UpstreamsForm {
    upstreams: String,
    /// The name on the upstreams' certificate, for DNS-over-TLS; empty: plain DNS.
    upstream_tls: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ForwardForm {
    zone: String,
    servers: String,
}

/// The query box (a GET form: asking changes nothing).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AskForm {
    ask: String,
    #[serde(rename = "type")]
    kind: String,
    from: String,
}

struct Row {
    name: String,
    kind: &'static str,
    value: String,
    ttl: u32,
}

fn row(record: &DnsRecord) -> Row {
    Row {
        name: record.name.clone(),
        kind: record.data.kind(),
        value: record.data.value_text(),
        ttl: record.ttl,
    }
}

/// A device the query box can stand for.
struct Asker {
    value: String,
    label: String,
    address: IpAddr,
}

struct Asked {
    question: String,
    asker: String,
    explanation: Explanation,
}

#[derive(Template)]
#[template(path = "dns.html")]
struct DnsPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    csrf: String,
    admin: bool,
    view: DnsView,
    rows: Vec<Row>,
    kinds: &'static [&'static str],
    ask_types: &'static [&'static str],
    form: RecordForm,
    upstreams: String,
    upstream_tls: String,
    forward: ForwardForm,
    ask: AskForm,
    askers: Vec<Asker>,
    asked: Option<Asked>,
    errors: Errors,
    general_error: Option<String>,
}
field_errors!(DnsPage);

/// What the page shows besides the zone: the forms as sent (or fresh), and a notice.
#[derive(Default)]
struct Shown {
    form: Option<RecordForm>,
    upstreams: Option<UpstreamsForm>,
    forward: Option<ForwardForm>,
    ask: AskForm,
    errors: Errors,
    notice: Option<String>,
}

async fn current(state: &AppState, user: &PageUser) -> Result<DnsView, AppError> {
    Ok(state
        .celld
        .json(Method::GET, "/v1/dns", &user.on_behalf(), None)
        .await?)
}

/// The devices the user may see, with the address each asks from.
async fn askers(state: &AppState, user: &PageUser) -> Result<Vec<Asker>, AppError> {
    let peers: Vec<PeerView> = state
        .celld
        .json(Method::GET, "/v1/vpn/peers", &user.on_behalf(), None)
        .await?;
    Ok(peers
        .into_iter()
        .filter_map(|peer| {
            let address = peer
                .address4
                .parse()
                .or_else(|_| peer.address6.parse())
                .ok()?;
            Some(Asker {
                value: peer.name.to_string(),
                label: format!("{} ({}, over the VPN)", peer.name, peer.owner),
                address,
            })
        })
        .collect())
}

fn ask(view: &DnsView, askers: &[Asker], form: &AskForm) -> Result<Option<Asked>, Errors> {
    if form.ask.trim().is_empty() {
        return Ok(None);
    }
    let Some(snapshot) = view.snapshot.clone() else {
        return Err(Errors::field("ask", "the zone has not been written yet"));
    };
    let (address, asker) = match askers.iter().find(|a| a.value == form.from) {
        Some(asker) => (asker.address, asker.label.clone()),
        None => (LAN_CLIENT, "a device on the LAN".to_owned()),
    };
    let zone = Zone::new(snapshot).map_err(|e| Errors::field("ask", e.to_string()))?;
    let kind = if form.kind.is_empty() {
        "A"
    } else {
        &form.kind
    };
    let explanation = zone
        .explain(&form.ask, kind, address)
        .map_err(|e| Errors::field("ask", e.to_string()))?;
    Ok(Some(Asked {
        question: format!("{} {kind}", form.ask.trim()),
        asker,
        explanation,
    }))
}

async fn page(
    state: &AppState,
    user: &PageUser,
    view: DnsView,
    shown: Shown,
) -> Result<Html<String>, AppError> {
    let askers = askers(state, user).await?;
    let mut errors = shown.errors;
    let asked = match ask(&view, &askers, &shown.ask) {
        Ok(asked) => asked,
        Err(problem) => {
            errors.fields.extend(problem.fields);
            None
        }
    };
    let upstreams = shown.upstreams.unwrap_or_else(|| UpstreamsForm {
        upstreams: view
            .upstreams
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        upstream_tls: view.upstream_tls.clone().unwrap_or_default(),
    });
    render(DnsPage {
        version: cell_systemd::image_version(),
        nav: user.nav("dns"),
        notice: shown.notice,
        csrf: user.csrf(),
        admin: user.is_admin(),
        rows: view.records.iter().map(row).collect(),
        view,
        kinds: &RECORD_TYPES,
        ask_types: ASK_TYPES,
        form: shown.form.unwrap_or_else(fresh_form),
        upstreams: upstreams.upstreams,
        upstream_tls: upstreams.upstream_tls,
        forward: shown.forward.unwrap_or_default(),
        ask: shown.ask,
        askers,
        asked,
        general_error: errors.general.clone(),
        errors,
    })
}

fn fresh_form() -> RecordForm {
    RecordForm {
        kind: "A".into(),
        ttl: DEFAULT_TTL.to_string(),
        ..RecordForm::default()
    }
}

pub async fn dns_get(
    State(state): State<AppState>,
    user: PageUser,
    Query(ask): Query<AskForm>,
) -> Result<Html<String>, AppError> {
    let view = current(&state, &user).await?;
    let shown = Shown {
        ask,
        ..Shown::default()
    };
    page(&state, &user, view, shown).await
}

/// The form as a record for celld, or the field the person has to fix.
fn record_json(form: &RecordForm) -> Result<Value, Errors> {
    let ttl: u32 = match form.ttl.trim() {
        "" => DEFAULT_TTL,
        text => text
            .parse()
            .map_err(|_| Errors::field("ttl", "a number of seconds"))?,
    };
    let data = RecordData::parse(&form.kind, &form.value)
        .map_err(|e| Errors::field(&e.field, e.message))?;
    let record = DnsRecord {
        name: form.name.trim().to_owned(),
        ttl,
        data,
    };
    serde_json::to_value(record).map_err(|e| Errors::field("value", e.to_string()))
}

/// celld's refusal of `records.N.field` (or `upstreams.N`, `forward_zones.N.field`), on
/// the form's own inputs.
fn form_errors(error: ClientError) -> Result<Errors, AppError> {
    let field = match &error {
        ClientError::Refused {
            field: Some(field), ..
        } => field.clone(),
        _ => String::new(),
    };
    let errors = Errors::from_refusal(error)?;
    let mut mapped = Errors {
        general: errors.general,
        ..Errors::default()
    };
    for (_, message) in errors.fields {
        let input = match field.split('.').collect::<Vec<_>>().as_slice() {
            ["upstreams", ..] => "upstreams",
            ["upstream_tls"] => "upstream_tls",
            ["forward_zones", _, "zone"] => "zone",
            ["forward_zones", ..] => "servers",
            [.., "name"] => "name",
            [.., "ttl"] => "ttl",
            [.., "type"] => "kind",
            _ => "value",
        };
        mapped.fields.insert(input.to_owned(), message);
    }
    Ok(mapped)
}

async fn put(
    state: &AppState,
    user: &PageUser,
    body: Value,
) -> Result<Result<DnsView, ClientError>, AppError> {
    let body = Bytes::from(body.to_string());
    Ok(state
        .celld
        .json(Method::PUT, "/v1/dns", &user.on_behalf(), Some(body))
        .await)
}

/// Sends `body` to celld and shows the page: with `notice` when it was taken, with the
/// refusal on the form otherwise (`shown` keeps what the person typed).
async fn change(
    state: &AppState,
    user: &PageUser,
    view: DnsView,
    body: Value,
    notice: String,
    mut shown: Shown,
) -> Result<Response, AppError> {
    match put(state, user, body).await? {
        Ok(view) => {
            let shown = Shown {
                notice: Some(notice),
                ..Shown::default()
            };
            Ok(page(state, user, view, shown).await?.into_response())
        }
        Err(error) => {
            shown.errors = form_errors(error)?;
            Ok((
                StatusCode::BAD_REQUEST,
                page(state, user, view, shown).await?,
            )
                .into_response())
        }
    }
}

fn refused(errors: Errors, shown: Shown) -> Shown {
    Shown { errors, ..shown }
}

pub async fn record_add_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<RecordForm>,
) -> Result<Response, AppError> {
    let view = current(&state, &user).await?;
    let record = match record_json(&form) {
        Ok(record) => record,
        Err(errors) => {
            let shown = refused(
                errors,
                Shown {
                    form: Some(form),
                    ..Shown::default()
                },
            );
            return Ok((
                StatusCode::BAD_REQUEST,
                page(&state, &user, view, shown).await?,
            )
                .into_response());
        }
    };
    let mut records: Vec<Value> = view
        .records
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    records.push(record);
    let notice = format!("Added {} ({}).", form.name.trim(), form.kind);
    let shown = Shown {
        form: Some(form),
        ..Shown::default()
    };
    change(
        &state,
        &user,
        view,
        json!({ "records": records }),
        notice,
        shown,
    )
    .await
}

pub async fn record_remove_post(
    State(state): State<AppState>,
    user: PageUser,
    Path(index): Path<usize>,
) -> Result<Response, AppError> {
    let view = current(&state, &user).await?;
    if index >= view.records.len() {
        return Err(AppError::NotFound);
    }
    let mut records = view.records.clone();
    let removed = records.remove(index);
    let notice = format!("Removed a record of {}.", removed.name);
    change(
        &state,
        &user,
        view,
        json!({ "records": records }),
        notice,
        Shown::default(),
    )
    .await
}

/// Addresses separated by commas or spaces.
fn addresses(text: &str, field: &str) -> Result<Vec<IpAddr>, Errors> {
    text.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|word| !word.is_empty())
        .map(|word| {
            word.parse()
                .map_err(|_| Errors::field(field, format!("'{word}' is not an IP address")))
        })
        .collect()
}

pub async fn upstreams_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<UpstreamsForm>,
) -> Result<Response, AppError> {
    let view = current(&state, &user).await?;
    let tls = form.upstream_tls.trim().to_owned();
    let servers = addresses(&form.upstreams, "upstreams");
    let listed = form.upstreams.trim().to_owned();
    let shown = Shown {
        upstreams: Some(form),
        ..Shown::default()
    };
    let servers = match servers {
        Ok(servers) => servers,
        Err(errors) => {
            return Ok((
                StatusCode::BAD_REQUEST,
                page(&state, &user, view, refused(errors, shown)).await?,
            )
                .into_response())
        }
    };
    let notice = match (servers.is_empty(), tls.is_empty()) {
        (true, _) => {
            "Names outside the zone now go to the resolvers the uplink's DHCP gives.".to_owned()
        }
        (false, true) => format!("Names outside the zone now go to {listed}."),
        (false, false) => format!(
            "Names outside the zone now go to {listed} over DNS-over-TLS, checked as {tls}."
        ),
    };
    let body = json!({ "upstreams": servers, "upstream_tls": tls });
    change(&state, &user, view, body, notice, shown).await
}

pub async fn forward_add_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<ForwardForm>,
) -> Result<Response, AppError> {
    let view = current(&state, &user).await?;
    let servers = match addresses(&form.servers, "servers") {
        Ok(servers) => servers,
        Err(errors) => {
            let shown = refused(
                errors,
                Shown {
                    forward: Some(form),
                    ..Shown::default()
                },
            );
            return Ok((
                StatusCode::BAD_REQUEST,
                page(&state, &user, view, shown).await?,
            )
                .into_response());
        }
    };
    let zone = form.zone.trim().to_owned();
    let mut zones = view.forward_zones.clone();
    zones.push(ForwardZone {
        zone: zone.clone(),
        servers,
    });
    let notice = format!(
        "Names under {zone} are now asked of {}.",
        form.servers.trim()
    );
    let shown = Shown {
        forward: Some(form),
        ..Shown::default()
    };
    change(
        &state,
        &user,
        view,
        json!({ "forward_zones": zones }),
        notice,
        shown,
    )
    .await
}

pub async fn forward_remove_post(
    State(state): State<AppState>,
    user: PageUser,
    Path(index): Path<usize>,
) -> Result<Response, AppError> {
    let view = current(&state, &user).await?;
    if index >= view.forward_zones.len() {
        return Err(AppError::NotFound);
    }
    let mut zones = view.forward_zones.clone();
    let removed = zones.remove(index);
    let notice = format!("{} is no longer forwarded.", removed.zone);
    change(
        &state,
        &user,
        view,
        json!({ "forward_zones": zones }),
        notice,
        Shown::default(),
    )
    .await
}
