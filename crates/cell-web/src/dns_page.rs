//! The DNS page: the cell's zone (the names it gives itself, per view) and the records
//! people add, with a form to add one and a button to remove each. celld validates.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Form;
use cell_model::api::DnsView;
use cell_model::dns::{DnsRecord, RecordData, DEFAULT_TTL};
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
    ]
}

const KINDS: &[&str] = &["A", "AAAA", "CNAME", "TXT", "MX", "SRV"];

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RecordForm {
    name: String,
    kind: String,
    value: String,
    ttl: String,
}

struct Row {
    name: String,
    kind: &'static str,
    value: String,
    ttl: u32,
}

fn row(record: &DnsRecord) -> Row {
    let (kind, value) = match &record.data {
        RecordData::A { address } => ("A", address.to_string()),
        RecordData::Aaaa { address } => ("AAAA", address.to_string()),
        RecordData::Cname { target } => ("CNAME", target.clone()),
        RecordData::Txt { text } => ("TXT", text.clone()),
        RecordData::Mx {
            preference,
            exchange,
        } => ("MX", format!("{preference} {exchange}")),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => ("SRV", format!("{priority} {weight} {port} {target}")),
    };
    Row {
        name: record.name.clone(),
        kind,
        value,
        ttl: record.ttl,
    }
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
    form: RecordForm,
    errors: Errors,
    general_error: Option<String>,
}
field_errors!(DnsPage);

async fn current(state: &AppState, user: &PageUser) -> Result<DnsView, AppError> {
    Ok(state
        .celld
        .json(Method::GET, "/v1/dns", &user.on_behalf(), None)
        .await?)
}

fn page(
    user: &PageUser,
    view: DnsView,
    form: RecordForm,
    errors: Errors,
    notice: Option<String>,
) -> Result<Html<String>, AppError> {
    render(DnsPage {
        version: cell_systemd::image_version(),
        nav: user.nav("dns"),
        notice,
        csrf: user.csrf(),
        admin: user.is_admin(),
        rows: view.records.iter().map(row).collect(),
        view,
        kinds: KINDS,
        form,
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
) -> Result<Html<String>, AppError> {
    let view = current(&state, &user).await?;
    page(&user, view, fresh_form(), Errors::default(), None)
}

/// The form as a record for celld, or the field the person has to fix.
fn record_json(form: &RecordForm) -> Result<Value, Errors> {
    let value = form.value.trim();
    let ttl: u32 = match form.ttl.trim() {
        "" => DEFAULT_TTL,
        text => text
            .parse()
            .map_err(|_| Errors::field("ttl", "a number of seconds"))?,
    };
    let parts: Vec<&str> = value.split_whitespace().collect();
    let number = |text: &str| -> Result<u16, Errors> {
        text.parse().map_err(|_| {
            Errors::field("value", format!("'{text}' is not a number from 0 to 65535"))
        })
    };
    let data =
        match form.kind.as_str() {
            "A" | "AAAA" => json!({"type": form.kind, "address": value}),
            "CNAME" => json!({"type": "CNAME", "target": value}),
            "TXT" => json!({"type": "TXT", "text": value}),
            "MX" => match parts.as_slice() {
                [preference, exchange] => {
                    json!({"type": "MX", "preference": number(preference)?, "exchange": exchange})
                }
                _ => {
                    return Err(Errors::field(
                        "value",
                        "an MX record is a preference and a name: 10 mail.example.org",
                    ))
                }
            },
            "SRV" => match parts.as_slice() {
                [priority, weight, port, target] => json!({
                    "type": "SRV", "priority": number(priority)?, "weight": number(weight)?,
                    "port": number(port)?, "target": target
                }),
                _ => return Err(Errors::field(
                    "value",
                    "an SRV record is priority, weight, port and a name: 1 5 5060 sip.example.org",
                )),
            },
            _ => return Err(Errors::field("kind", "choose a type from the list")),
        };
    let mut record = data;
    record["name"] = json!(form.name.trim());
    record["ttl"] = json!(ttl);
    Ok(record)
}

/// celld's refusal of `records.N.field`, on the form's own inputs.
fn form_errors(error: ClientError) -> Result<Errors, AppError> {
    let errors = Errors::from_refusal(error)?;
    let mut mapped = Errors {
        general: errors.general,
        ..Errors::default()
    };
    for (field, message) in errors.fields {
        let input = match field.as_str() {
            "name" | "ttl" => field,
            "type" => "kind".to_owned(),
            _ => "value".to_owned(),
        };
        mapped.fields.insert(input, message);
    }
    Ok(mapped)
}

async fn put_records(
    state: &AppState,
    user: &PageUser,
    records: Vec<Value>,
) -> Result<Result<DnsView, ClientError>, AppError> {
    let body = Bytes::from(json!({ "records": records }).to_string());
    Ok(state
        .celld
        .json(Method::PUT, "/v1/dns", &user.on_behalf(), Some(body))
        .await)
}

fn existing(view: &DnsView) -> Vec<Value> {
    view.records
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect()
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
            return Ok((
                StatusCode::BAD_REQUEST,
                page(&user, view, form, errors, None)?,
            )
                .into_response())
        }
    };
    let mut records = existing(&view);
    records.push(record);
    match put_records(&state, &user, records).await? {
        Ok(view) => {
            let notice = Some(format!("Added {} ({}).", form.name.trim(), form.kind));
            Ok(page(&user, view, fresh_form(), Errors::default(), notice)?.into_response())
        }
        Err(error) => {
            let errors = form_errors(error)?;
            Ok((
                StatusCode::BAD_REQUEST,
                page(&user, view, form, errors, None)?,
            )
                .into_response())
        }
    }
}

pub async fn record_remove_post(
    State(state): State<AppState>,
    user: PageUser,
    Path(index): Path<usize>,
) -> Result<Response, AppError> {
    let view = current(&state, &user).await?;
    let mut records = existing(&view);
    if index >= records.len() {
        return Err(AppError::NotFound);
    }
    let removed = view.records[index].name.clone();
    records.remove(index);
    match put_records(&state, &user, records).await? {
        Ok(view) => {
            let notice = Some(format!("Removed a record of {removed}."));
            Ok(page(&user, view, fresh_form(), Errors::default(), notice)?.into_response())
        }
        Err(error) => {
            let errors = Errors::from_refusal(error)?.into_banner();
            Ok((
                StatusCode::BAD_REQUEST,
                page(&user, view, fresh_form(), errors, None)?,
            )
                .into_response())
        }
    }
}
