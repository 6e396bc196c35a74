//! The Network page: the LAN port (DHCP or a static address, which waits for confirmation),
//! the cell's DHCP server with its reservations and leases (administrators), and the
//! cell's time (sources, whether LAN and VPN clients are served, and chrony's
//! synchronisation: stratum, offset). celld validates every change.

use askama::Template;
use axum::extract::Path;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Form;
use cell_model::api::{LanView, NtpView};
use cell_model::lan::{DhcpServer, Lan, LanAddressing, Reservation};
use cell_model::ntp::{NtpServer, DEFAULT_POOL};
use celld_client::{Bytes, ClientError};
use serde::Deserialize;
use serde_json::json;

use crate::pages::{render, Errors, Nav, PageUser};
use crate::routes::{page as declare, Routed};
use crate::{field_errors, AppError, AppState};

pub fn routes() -> Vec<Routed> {
    use crate::routes::Access::{Admin, User};
    vec![
        declare(Method::GET, "/network", User, get(network_get)),
        declare(Method::POST, "/network/ntp", Admin, post(ntp_post)),
        declare(Method::POST, "/network/lan", Admin, post(lan_post)),
        declare(Method::POST, "/network/dhcp", Admin, post(dhcp_post)),
        declare(
            Method::POST,
            "/network/reservations",
            Admin,
            post(reservation_add_post),
        ),
        declare(
            Method::POST,
            "/network/reservations/{index}/remove",
            Admin,
            post(reservation_remove_post),
        ),
    ]
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LanForm {
    mode: String,
    address: String,
    gateway: String,
    /// Resolvers, separated by commas or spaces.
    dns: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DhcpForm {
    enabled: Option<String>,
    pool_start: String,
    pool_size: String,
    lease_seconds: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReservationForm {
    res_mac: String,
    res_address: String,
    res_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NtpForm {
    /// One source per line: `host`, then `pool` and/or `nts`.
    servers: String,
    /// A checkbox: present when ticked.
    serve: Option<String>,
}

#[derive(Template)]
#[template(path = "network.html")]
struct NetworkPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    csrf: String,
    admin: bool,
    ntp: NtpView,
    default_pool: &'static str,
    form: NtpForm,
    /// None for a user who is not an administrator.
    lan: Option<LanView>,
    lan_form: LanForm,
    dhcp_form: DhcpForm,
    reservation_form: ReservationForm,
    errors: Errors,
    general_error: Option<String>,
}
field_errors!(NetworkPage);

/// What a page shows besides the state: the forms as sent, errors and a notice.
#[derive(Default)]
struct Shown {
    ntp: Option<NtpForm>,
    lan: Option<LanForm>,
    dhcp: Option<DhcpForm>,
    reservation: Option<ReservationForm>,
    errors: Errors,
    notice: Option<String>,
}

fn lan_form(lan: &Lan) -> LanForm {
    match &lan.addressing {
        LanAddressing::Dhcp => LanForm {
            mode: "dhcp".into(),
            ..LanForm::default()
        },
        LanAddressing::Static {
            address,
            gateway,
            dns,
        } => LanForm {
            mode: "static".into(),
            address: address.clone(),
            gateway: gateway.to_string(),
            dns: dns
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        },
    }
}

fn dhcp_form(lan: &Lan) -> DhcpForm {
    match &lan.dhcp_server {
        Some(server) => DhcpForm {
            enabled: server.enabled.then(String::new),
            pool_start: server.pool_start.to_string(),
            pool_size: server.pool_size.to_string(),
            lease_seconds: server.lease_seconds.to_string(),
        },
        None => DhcpForm {
            lease_seconds: "3600".into(),
            ..DhcpForm::default()
        },
    }
}

fn server_lines(servers: &[NtpServer]) -> String {
    servers
        .iter()
        .map(|server| {
            let mut line = server.host.clone();
            if server.pool {
                line.push_str(" pool");
            }
            if server.nts {
                line.push_str(" nts");
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The form's lines as sources, or the line to fix.
fn parse_servers(text: &str) -> Result<Vec<NtpServer>, Errors> {
    let mut servers = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        let Some(host) = words.next() else { continue };
        let mut server = NtpServer {
            host: host.to_owned(),
            pool: false,
            nts: false,
        };
        for word in words {
            match word.to_ascii_lowercase().as_str() {
                "pool" => server.pool = true,
                "nts" => server.nts = true,
                other => {
                    return Err(Errors::field(
                        "servers",
                        format!("line {}: '{other}' is neither 'pool' nor 'nts'", number + 1),
                    ))
                }
            }
        }
        servers.push(server);
    }
    Ok(servers)
}

async fn current(state: &AppState, user: &PageUser) -> Result<NtpView, AppError> {
    Ok(state
        .celld
        .json(Method::GET, "/v1/ntp", &user.on_behalf(), None)
        .await?)
}

async fn current_lan(state: &AppState, user: &PageUser) -> Result<Option<LanView>, AppError> {
    if !user.is_admin() {
        return Ok(None);
    }
    Ok(Some(
        state
            .celld
            .json(Method::GET, "/v1/lan", &user.on_behalf(), None)
            .await?,
    ))
}

async fn page(state: &AppState, user: &PageUser, shown: Shown) -> Result<Html<String>, AppError> {
    let ntp = current(state, user).await?;
    let lan = current_lan(state, user).await?;
    let form = shown.ntp.unwrap_or_else(|| NtpForm {
        servers: server_lines(&ntp.ntp.servers),
        serve: ntp.ntp.serve.then(String::new),
    });
    let settings = lan
        .as_ref()
        .map(|view| view.lan.clone())
        .unwrap_or_default();
    render(NetworkPage {
        version: cell_systemd::image_version(),
        nav: user.nav("network"),
        notice: shown.notice,
        csrf: user.csrf(),
        admin: user.is_admin(),
        ntp,
        default_pool: DEFAULT_POOL,
        form,
        lan,
        lan_form: shown.lan.unwrap_or_else(|| lan_form(&settings)),
        dhcp_form: shown.dhcp.unwrap_or_else(|| dhcp_form(&settings)),
        reservation_form: shown.reservation.unwrap_or_default(),
        general_error: shown.errors.general.clone(),
        errors: shown.errors,
    })
}

async fn refused(state: &AppState, user: &PageUser, shown: Shown) -> Result<Response, AppError> {
    Ok((StatusCode::BAD_REQUEST, page(state, user, shown).await?).into_response())
}

pub async fn network_get(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Html<String>, AppError> {
    page(&state, &user, Shown::default()).await
}

pub async fn ntp_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<NtpForm>,
) -> Result<Response, AppError> {
    let servers = match parse_servers(&form.servers) {
        Ok(servers) => servers,
        Err(errors) => {
            let shown = Shown {
                ntp: Some(form),
                errors,
                ..Shown::default()
            };
            return refused(&state, &user, shown).await;
        }
    };
    let body = json!({"servers": servers, "serve": form.serve.is_some()});
    let answer: Result<NtpView, _> = state
        .celld
        .json(
            Method::PUT,
            "/v1/ntp",
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await;
    match answer {
        Ok(_) => {
            let notice = Some("Saved: chrony takes the new sources at once.".to_owned());
            Ok(page(
                &state,
                &user,
                Shown {
                    notice,
                    ..Shown::default()
                },
            )
            .await?
            .into_response())
        }
        Err(error) => {
            let mut errors = Errors::from_refusal(error)?;
            // `servers.N.host` is a line of the one text box.
            let fields = std::mem::take(&mut errors.fields);
            for (_, message) in fields {
                errors.fields.insert("servers".to_owned(), message);
            }
            refused(
                &state,
                &user,
                Shown {
                    ntp: Some(form),
                    errors,
                    ..Shown::default()
                },
            )
            .await
        }
    }
}

/// celld's refusal of a `lan.…` field, on the page's inputs.
fn lan_errors(error: ClientError) -> Result<Errors, AppError> {
    let path = match &error {
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
    for (field, message) in errors.fields {
        let input = if path.contains("reservations") {
            format!("res_{field}")
        } else {
            field
        };
        mapped.fields.insert(input, message);
    }
    Ok(mapped)
}

/// Sends the LAN settings to celld; the page with a notice, or the refusal on the form.
async fn put_lan(
    state: &AppState,
    user: &PageUser,
    lan: Lan,
    notice: String,
    shown: Shown,
) -> Result<Response, AppError> {
    let body = Bytes::from(serde_json::to_string(&lan).unwrap_or_default());
    let answer: Result<LanView, ClientError> = state
        .celld
        .json(Method::PUT, "/v1/lan", &user.on_behalf(), Some(body))
        .await;
    match answer {
        Ok(view) => {
            let notice = match view.pending_change {
                Some(pending) => format!(
                    "{notice} The new address is in use: confirm it on the dashboard within {} s, or it is undone.",
                    pending.seconds_left
                ),
                None => notice,
            };
            Ok(page(
                state,
                user,
                Shown {
                    notice: Some(notice),
                    ..Shown::default()
                },
            )
            .await?
            .into_response())
        }
        Err(error) => {
            let shown = Shown {
                errors: lan_errors(error)?,
                ..shown
            };
            refused(state, user, shown).await
        }
    }
}

async fn lan_settings(state: &AppState, user: &PageUser) -> Result<Lan, AppError> {
    Ok(current_lan(state, user)
        .await?
        .map(|view| view.lan)
        .unwrap_or_default())
}

pub async fn lan_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<LanForm>,
) -> Result<Response, AppError> {
    let mut lan = lan_settings(&state, &user).await?;
    lan.addressing = if form.mode == "static" {
        let gateway = match form.gateway.trim().parse() {
            Ok(gateway) => gateway,
            Err(_) => {
                let errors = Errors::field("gateway", "an IPv4 address, e.g. 192.168.1.1");
                return refused(
                    &state,
                    &user,
                    Shown {
                        lan: Some(form),
                        errors,
                        ..Shown::default()
                    },
                )
                .await;
            }
        };
        let mut dns = Vec::new();
        for word in form
            .dns
            .split([',', ' '])
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            match word.parse() {
                Ok(address) => dns.push(address),
                Err(_) => {
                    let errors = Errors::field("dns", format!("'{word}' is not an IP address"));
                    return refused(
                        &state,
                        &user,
                        Shown {
                            lan: Some(form),
                            errors,
                            ..Shown::default()
                        },
                    )
                    .await;
                }
            }
        }
        LanAddressing::Static {
            address: form.address.trim().to_owned(),
            gateway,
            dns,
        }
    } else {
        LanAddressing::Dhcp
    };
    let notice = "Saved.".to_owned();
    put_lan(
        &state,
        &user,
        lan,
        notice,
        Shown {
            lan: Some(form),
            ..Shown::default()
        },
    )
    .await
}

pub async fn dhcp_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<DhcpForm>,
) -> Result<Response, AppError> {
    let mut lan = lan_settings(&state, &user).await?;
    let parsed = (
        form.pool_start.trim().parse(),
        form.pool_size.trim().parse(),
        form.lease_seconds.trim().parse(),
    );
    let (pool_start, pool_size, lease_seconds) = match parsed {
        (Ok(start), Ok(size), Ok(lease)) => (start, size, lease),
        (Err(_), _, _) => {
            let errors = Errors::field("pool_start", "an IPv4 address, e.g. 192.168.1.100");
            return refused(
                &state,
                &user,
                Shown {
                    dhcp: Some(form),
                    errors,
                    ..Shown::default()
                },
            )
            .await;
        }
        (_, Err(_), _) => {
            let errors = Errors::field("pool_size", "a number of addresses");
            return refused(
                &state,
                &user,
                Shown {
                    dhcp: Some(form),
                    errors,
                    ..Shown::default()
                },
            )
            .await;
        }
        (_, _, Err(_)) => {
            let errors = Errors::field("lease_seconds", "a number of seconds");
            return refused(
                &state,
                &user,
                Shown {
                    dhcp: Some(form),
                    errors,
                    ..Shown::default()
                },
            )
            .await;
        }
    };
    let reservations = lan
        .dhcp_server
        .take()
        .map(|server| server.reservations)
        .unwrap_or_default();
    lan.dhcp_server = Some(DhcpServer {
        enabled: form.enabled.is_some(),
        pool_start,
        pool_size,
        lease_seconds,
        reservations,
    });
    let notice = if form.enabled.is_some() {
        "The DHCP server is on."
    } else {
        "The DHCP server is off."
    };
    put_lan(
        &state,
        &user,
        lan,
        notice.to_owned(),
        Shown {
            dhcp: Some(form),
            ..Shown::default()
        },
    )
    .await
}

pub async fn reservation_add_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<ReservationForm>,
) -> Result<Response, AppError> {
    let mut lan = lan_settings(&state, &user).await?;
    let Ok(address) = form.res_address.trim().parse() else {
        let errors = Errors::field("res_address", "an IPv4 address on the LAN");
        return refused(
            &state,
            &user,
            Shown {
                reservation: Some(form),
                errors,
                ..Shown::default()
            },
        )
        .await;
    };
    let Some(server) = lan.dhcp_server.as_mut() else {
        let errors = Errors::field("res_mac", "set up the DHCP server first");
        return refused(
            &state,
            &user,
            Shown {
                reservation: Some(form),
                errors,
                ..Shown::default()
            },
        )
        .await;
    };
    server.reservations.push(Reservation {
        mac: form.res_mac.trim().to_ascii_lowercase(),
        address,
        name: form.res_name.trim().to_owned(),
    });
    let notice = format!("Reserved {address} for {}.", form.res_name.trim());
    put_lan(
        &state,
        &user,
        lan,
        notice,
        Shown {
            reservation: Some(form),
            ..Shown::default()
        },
    )
    .await
}

pub async fn reservation_remove_post(
    State(state): State<AppState>,
    user: PageUser,
    Path(index): Path<usize>,
) -> Result<Response, AppError> {
    let mut lan = lan_settings(&state, &user).await?;
    let Some(server) = lan
        .dhcp_server
        .as_mut()
        .filter(|s| index < s.reservations.len())
    else {
        return Err(AppError::NotFound);
    };
    let removed = server.reservations.remove(index);
    let notice = format!(
        "{} ({}) is no longer reserved.",
        removed.name, removed.address
    );
    put_lan(&state, &user, lan, notice, Shown::default()).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_become_sources_and_back() {
        let servers =
            parse_servers("time.cloudflare.com nts\n\npool.ntp.org pool\n192.0.2.1\n").unwrap();
        assert_eq!(servers.len(), 3);
        assert!(servers[0].nts && servers[1].pool && !servers[2].pool);
        assert_eq!(
            server_lines(&servers),
            "time.cloudflare.com nts\npool.ntp.org pool\n192.0.2.1"
        );
        assert!(parse_servers("a.example fast").is_err());
    }
}
