//! The Network page: the cell's time (sources, whether LAN and VPN clients are served, and
//! chrony's synchronisation: stratum, offset). celld validates every change.

use askama::Template;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Form;
use cell_model::api::NtpView;
use cell_model::ntp::{NtpServer, DEFAULT_POOL};
use celld_client::Bytes;
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
    ]
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
    errors: Errors,
    general_error: Option<String>,
}
field_errors!(NetworkPage);

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

fn page(
    user: &PageUser,
    ntp: NtpView,
    form: Option<NtpForm>,
    errors: Errors,
    notice: Option<String>,
) -> Result<Html<String>, AppError> {
    let form = form.unwrap_or_else(|| NtpForm {
        servers: server_lines(&ntp.ntp.servers),
        serve: ntp.ntp.serve.then(String::new),
    });
    render(NetworkPage {
        version: cell_systemd::image_version(),
        nav: user.nav("network"),
        notice,
        csrf: user.csrf(),
        admin: user.is_admin(),
        ntp,
        default_pool: DEFAULT_POOL,
        form,
        general_error: errors.general.clone(),
        errors,
    })
}

pub async fn network_get(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Html<String>, AppError> {
    let ntp = current(&state, &user).await?;
    page(&user, ntp, None, Errors::default(), None)
}

pub async fn ntp_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<NtpForm>,
) -> Result<Response, AppError> {
    let servers = match parse_servers(&form.servers) {
        Ok(servers) => servers,
        Err(errors) => {
            let ntp = current(&state, &user).await?;
            return Ok((
                StatusCode::BAD_REQUEST,
                page(&user, ntp, Some(form), errors, None)?,
            )
                .into_response());
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
        Ok(ntp) => {
            let notice = Some("Saved: chrony takes the new sources at once.".to_owned());
            Ok(page(&user, ntp, None, Errors::default(), notice)?.into_response())
        }
        Err(error) => {
            let mut errors = Errors::from_refusal(error)?;
            // `servers.N.host` is a line of the one text box.
            let fields = std::mem::take(&mut errors.fields);
            for (_, message) in fields {
                errors.fields.insert("servers".to_owned(), message);
            }
            let ntp = current(&state, &user).await?;
            Ok((
                StatusCode::BAD_REQUEST,
                page(&user, ntp, Some(form), errors, None)?,
            )
                .into_response())
        }
    }
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
