//! The VPN pages: status and devices (list, add, QR code, edit access, remove) and the
//! live firewall. Downloads and QR images are the API's own routes, which the session
//! cookie authorises.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Form;
use cell_model::api::{ClientSettings, FirewallView, PeerView, UserView, VpnView};
use cell_model::vpn::PeerName;
use celld_client::{Bytes, ClientError, Method};
use serde::Deserialize;
use serde_json::json;

use crate::pages::{human_duration, render, Errors, Nav, PageUser};
use crate::routes::{page as declare, Routed};
use crate::{AppError, AppState};

pub fn routes() -> Vec<Routed> {
    use crate::routes::Access::{Admin, Public, User};
    vec![
        declare(Method::GET, "/vpn", User, get(vpn_get)),
        declare(Method::POST, "/vpn", Admin, post(vpn_settings_post)),
        declare(Method::POST, "/vpn/peers", Admin, post(peer_add_post)),
        declare(Method::GET, "/vpn/peers/{name}", User, get(peer_get)),
        declare(
            Method::POST,
            "/vpn/peers/{name}/profile-link",
            User,
            post(peer_profile_link_post),
        ),
        declare(Method::GET, "/p/{ticket}", Public, get(profile_by_link_get)),
        declare(
            Method::POST,
            "/vpn/peers/{name}",
            Admin,
            post(peer_edit_post),
        ),
        declare(
            Method::POST,
            "/vpn/peers/{name}/{action}",
            Admin,
            post(peer_action_post),
        ),
        declare(Method::GET, "/firewall", Admin, get(firewall_get)),
    ]
}

/// A device as a row of the page: its view plus what the template shows of it.
struct DeviceRow {
    peer: PeerView,
    last_seen: String,
    traffic: String,
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn row(peer: PeerView, now: u64) -> DeviceRow {
    let (last_seen, traffic) = match &peer.live {
        Some(live) => (
            match live.last_handshake {
                Some(at) => format!("{} ago", human_duration(now.saturating_sub(at))),
                None => "never".to_owned(),
            },
            format!("↓ {} ↑ {}", bytes(live.tx_bytes), bytes(live.rx_bytes)),
        ),
        None => ("never".to_owned(), "–".to_owned()),
    };
    DeviceRow {
        peer,
        last_seen,
        traffic,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PeerForm {
    name: String,
    owner: String,
    public_key: String,
    calendar: Option<String>,
    files: Option<String>,
    mail: Option<String>,
    webdav: Option<String>,
    internet_exit: Option<String>,
    lan_access: Option<String>,
    keepalive: String,
}

impl PeerForm {
    fn access_json(&self) -> serde_json::Value {
        json!({
            "calendar": self.calendar.is_some(),
            "files": self.files.is_some(),
            "mail": self.mail.is_some(),
            "webdav": self.webdav.is_some(),
        })
    }

    fn keepalive(&self) -> Result<u16, Errors> {
        let text = self.keepalive.trim();
        if text.is_empty() {
            return Ok(0);
        }
        text.parse()
            .map_err(|_| Errors::field("keepalive", "a number of seconds, 0 to 3600"))
    }

    fn of(peer: &PeerView) -> Self {
        let on = |b: bool| b.then(|| "on".to_owned());
        Self {
            name: peer.name.to_string(),
            owner: peer.owner.to_string(),
            calendar: on(peer.access.calendar),
            files: on(peer.access.files),
            mail: on(peer.access.mail),
            webdav: on(peer.access.webdav),
            internet_exit: on(peer.internet_exit),
            lan_access: on(peer.lan_access),
            keepalive: peer.keepalive.to_string(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VpnForm {
    subnet4: String,
    listen_port: String,
    endpoint: String,
}

#[derive(Template)]
#[template(path = "vpn.html")]
struct VpnPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    admin: bool,
    csrf: String,
    vpn: Option<VpnView>,
    devices: Vec<DeviceRow>,
    users: Vec<UserView>,
    form: PeerForm,
    settings: VpnForm,
    errors: Errors,
    general_error: Option<String>,
}
crate::field_errors!(VpnPage);

async fn vpn_page(
    state: &AppState,
    user: &PageUser,
    form: PeerForm,
    settings: Option<VpnForm>,
    errors: Errors,
    notice: Option<String>,
) -> Result<Html<String>, AppError> {
    let on_behalf = user.on_behalf();
    let peers: Vec<PeerView> = state
        .celld
        .json(Method::GET, "/v1/vpn/peers", &on_behalf, None)
        .await?;
    let (vpn, users) = if user.is_admin() {
        let vpn: VpnView = state
            .celld
            .json(Method::GET, "/v1/vpn", &on_behalf, None)
            .await?;
        let users: Vec<UserView> = state
            .celld
            .json(Method::GET, "/v1/users", &on_behalf, None)
            .await?;
        (Some(vpn), users)
    } else {
        (None, Vec::new())
    };
    let settings = settings.unwrap_or_else(|| match &vpn {
        Some(vpn) => VpnForm {
            subnet4: vpn.subnet4.clone(),
            listen_port: vpn.listen_port.to_string(),
            endpoint: vpn.endpoint.clone().unwrap_or_default(),
        },
        None => VpnForm::default(),
    });
    let now = unix_now();
    render(VpnPage {
        version: cell_systemd::image_version(),
        nav: user.nav("vpn"),
        notice,
        admin: user.is_admin(),
        csrf: user.csrf(),
        vpn,
        devices: peers.into_iter().map(|p| row(p, now)).collect(),
        users,
        form,
        settings,
        general_error: errors.general.clone(),
        errors,
    })
}

fn fresh_form(user: &PageUser) -> PeerForm {
    PeerForm {
        owner: user.session.current.name.to_string(),
        keepalive: "25".into(),
        ..PeerForm::default()
    }
}

pub async fn vpn_get(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Html<String>, AppError> {
    let form = fresh_form(&user);
    vpn_page(&state, &user, form, None, Errors::default(), None).await
}

/// A refused form: the page again, with celld's reasons by the inputs, as a 400.
async fn refused(
    state: &AppState,
    user: &PageUser,
    form: PeerForm,
    settings: Option<VpnForm>,
    errors: Errors,
) -> Result<Response, AppError> {
    Ok((
        StatusCode::BAD_REQUEST,
        vpn_page(state, user, form, settings, errors, None).await?,
    )
        .into_response())
}

pub async fn vpn_settings_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<VpnForm>,
) -> Result<Response, AppError> {
    let Ok(port) = form.listen_port.trim().parse::<u16>() else {
        let errors = Errors::field("listen_port", "a port number, 1 to 65535");
        return refused(&state, &user, fresh_form(&user), Some(form), errors).await;
    };
    let endpoint = form.endpoint.trim();
    let body = json!({
        "subnet4": form.subnet4.trim(),
        "listen_port": port,
        "endpoint": (!endpoint.is_empty()).then_some(endpoint),
    });
    let result: Result<VpnView, ClientError> = state
        .celld
        .json(
            Method::PUT,
            "/v1/vpn",
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await;
    match result {
        Ok(view) => Ok(vpn_page(
            &state,
            &user,
            fresh_form(&user),
            None,
            Errors::default(),
            Some(if view.pending_change.is_some() {
                "VPN settings saved and applied. Keep them below, or they are undone.".into()
            } else {
                "VPN settings saved.".into()
            }),
        )
        .await?
        .into_response()),
        Err(error) => {
            let errors = Errors::from_refusal(error)?;
            refused(&state, &user, fresh_form(&user), Some(form), errors).await
        }
    }
}

pub async fn peer_add_post(
    State(state): State<AppState>,
    user: PageUser,
    Form(form): Form<PeerForm>,
) -> Result<Response, AppError> {
    let keepalive = match form.keepalive() {
        Ok(k) => k,
        Err(errors) => return refused(&state, &user, form, None, errors).await,
    };
    let public_key = form.public_key.trim();
    let body = json!({
        "name": form.name.trim(),
        "owner": form.owner.trim(),
        "public_key": (!public_key.is_empty()).then_some(public_key),
        "access": form.access_json(),
        "internet_exit": form.internet_exit.is_some(),
        "lan_access": form.lan_access.is_some(),
        "keepalive": keepalive,
    });
    let result: Result<PeerView, ClientError> = state
        .celld
        .json(
            Method::POST,
            "/v1/vpn/peers",
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await;
    match result {
        Ok(peer) => Ok(device_page(
            &state,
            &user,
            &peer.name,
            None,
            Errors::default(),
            Some(format!(
                "Added {}. Scan the code with the WireGuard app, or download the file.",
                peer.name
            )),
        )
        .await?
        .into_response()),
        Err(error) => {
            let errors = Errors::from_refusal(error)?;
            refused(&state, &user, form, None, errors).await
        }
    }
}

#[derive(Template)]
#[template(path = "vpn_peer.html")]
struct DevicePage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    admin: bool,
    csrf: String,
    device: DeviceRow,
    /// The cell's root, to install on the device too.
    root_fingerprint: String,
    form: PeerForm,
    errors: Errors,
    general_error: Option<String>,
    extras: DeviceExtras,
    /// What the owner types into other apps, for the services that are on.
    client: Option<ClientSettings>,
    /// Whether the one looking owns the device.
    own: bool,
    /// Whether the device's profile carries the owner's accounts (for the owner, with
    /// calendar or mail on).
    profile_accounts: bool,
}
crate::field_errors!(DevicePage);

/// What only a fresh view of the device's page shows: QR codes for the root's downloads
/// and, when asked for, the one-time link to the device's profile.
#[derive(Default)]
struct DeviceExtras {
    root_codes: Vec<(&'static str, String, String)>,
    /// (URL, SVG markup, minutes it lasts).
    profile: Option<(String, String, u64)>,
}

fn parse_peer(name: &str) -> Result<PeerName, AppError> {
    PeerName::parse(name).map_err(|_| AppError::NotFound)
}

async fn device_page(
    state: &AppState,
    user: &PageUser,
    name: &PeerName,
    form: Option<PeerForm>,
    errors: Errors,
    notice: Option<String>,
) -> Result<Html<String>, AppError> {
    device_page_with(
        state,
        user,
        name,
        form,
        errors,
        notice,
        DeviceExtras::default(),
    )
    .await
}

async fn device_page_with(
    state: &AppState,
    user: &PageUser,
    name: &PeerName,
    form: Option<PeerForm>,
    errors: Errors,
    notice: Option<String>,
    extras: DeviceExtras,
) -> Result<Html<String>, AppError> {
    let peer: PeerView = state
        .celld
        .json(
            Method::GET,
            &format!("/v1/vpn/peers/{name}"),
            &user.on_behalf(),
            None,
        )
        .await
        .map_err(|error| match error {
            ClientError::Refused { status, .. } if status == 404 => AppError::NotFound,
            other => AppError::CelldUnavailable(other),
        })?;
    let form = form.unwrap_or_else(|| PeerForm::of(&peer));
    let root = crate::certificates_page::root(state).await?;
    let client = match state
        .celld
        .json::<ClientSettings>(
            Method::GET,
            &format!("/v1/users/{}/client-settings", peer.owner),
            &user.on_behalf(),
            None,
        )
        .await
    {
        Ok(client) => {
            let any = client.mail.is_some()
                || client.calendar_url.is_some()
                || client.files_url.is_some();
            any.then_some(client)
        }
        // The owner is gone, or the viewer may not see their settings.
        Err(ClientError::Refused { .. }) => None,
        Err(other) => return Err(AppError::CelldUnavailable(other)),
    };
    let own = user.session.current.name == peer.owner;
    let profile_accounts = own
        && client
            .as_ref()
            .is_some_and(|c| c.mail.is_some() || c.calendar_url.is_some());
    render(DevicePage {
        version: cell_systemd::image_version(),
        nav: user.nav("vpn"),
        notice,
        admin: user.is_admin(),
        csrf: user.csrf(),
        device: row(peer, unix_now()),
        root_fingerprint: root.fingerprint,
        form,
        general_error: errors.general.clone(),
        errors,
        extras,
        client,
        own,
        profile_accounts,
    })
}

pub async fn peer_get(
    State(state): State<AppState>,
    user: PageUser,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> Result<Html<String>, AppError> {
    let name = parse_peer(&name)?;
    let extras = DeviceExtras {
        root_codes: crate::certificates_page::browser_host(&headers, &uri)
            .map(|host| crate::certificates_page::root_codes(&host))
            .unwrap_or_default(),
        profile: None,
    };
    device_page_with(&state, &user, &name, None, Errors::default(), None, extras).await
}

/// A one-time link to the device's profile, shown as a QR code for the phone to scan.
pub async fn peer_profile_link_post(
    State(state): State<AppState>,
    user: PageUser,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, AppError> {
    let name = parse_peer(&name)?;
    let Some(host) = crate::certificates_page::browser_host(&headers, &uri) else {
        let errors = Errors {
            general: Some("the request names no host for the link".into()),
            ..Errors::default()
        };
        return Ok((
            StatusCode::BAD_REQUEST,
            device_page(&state, &user, &name, None, errors, None).await?,
        )
            .into_response());
    };
    let answer = state
        .celld
        .json::<cell_model::api::ProfileLink>(
            Method::POST,
            &format!("/v1/vpn/peers/{name}/profile-link"),
            &user.on_behalf(),
            None,
        )
        .await;
    let link = match answer {
        Ok(link) => link,
        Err(error) => {
            let errors = Errors::from_refusal(error)?.into_banner();
            return Ok((
                StatusCode::BAD_REQUEST,
                device_page(&state, &user, &name, None, errors, None).await?,
            )
                .into_response());
        }
    };
    // HTTPS: the profile carries the device's key. The phone does not trust the cell yet
    // and warns once; the profile installs the root that ends the warnings.
    // As the browser reached the cell (the checked host, and its port): the phone reaches
    // it the same way.
    let port = uri.port_u16().or_else(|| {
        headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
            .and_then(|a| a.port_u16())
    });
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let authority = match port.filter(|p| *p != 443) {
        Some(port) => format!("{bracketed}:{port}"),
        None => bracketed,
    };
    let url = format!("https://{authority}/p/{}", link.ticket);
    let svg = crate::certificates_page::qr_svg(&url)
        .ok_or_else(|| AppError::Internal("the link does not fit a QR code".into()))?;
    let extras = DeviceExtras {
        root_codes: crate::certificates_page::root_codes(&host),
        profile: Some((url, svg, link.expires_in_s / 60)),
    };
    Ok(
        device_page_with(&state, &user, &name, None, Errors::default(), None, extras)
            .await?
            .into_response(),
    )
}

/// The profile behind a one-time link (no session: the link is the permission).
pub async fn profile_by_link_get(
    State(state): State<AppState>,
    Path(ticket): Path<String>,
    crate::client_addr::ClientAddr(source): crate::client_addr::ClientAddr,
) -> Result<Response, AppError> {
    if ticket.len() != 32 || !ticket.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(AppError::NotFound);
    }
    let answer = state
        .celld
        .call_answer(
            Method::GET,
            &format!("/v1/vpn/profile/{ticket}"),
            &celld_client::OnBehalf {
                source,
                ..Default::default()
            },
            None,
        )
        .await?;
    if answer.status == StatusCode::NOT_FOUND {
        return Err(AppError::NotFound);
    }
    Ok(crate::api::answer_response(answer))
}

pub async fn peer_edit_post(
    State(state): State<AppState>,
    user: PageUser,
    Path(name): Path<String>,
    Form(form): Form<PeerForm>,
) -> Result<Response, AppError> {
    let name = parse_peer(&name)?;
    let keepalive = match form.keepalive() {
        Ok(k) => k,
        Err(errors) => {
            return Ok((
                StatusCode::BAD_REQUEST,
                device_page(&state, &user, &name, Some(form), errors, None).await?,
            )
                .into_response())
        }
    };
    let body = json!({
        "name": form.name.trim(),
        "access": form.access_json(),
        "internet_exit": form.internet_exit.is_some(),
        "lan_access": form.lan_access.is_some(),
        "keepalive": keepalive,
    });
    let result: Result<PeerView, ClientError> = state
        .celld
        .json(
            Method::PATCH,
            &format!("/v1/vpn/peers/{name}"),
            &user.on_behalf(),
            Some(Bytes::from(body.to_string())),
        )
        .await;
    match result {
        Ok(peer) => Ok(device_page(
            &state,
            &user,
            &peer.name,
            None,
            Errors::default(),
            Some("Saved.".into()),
        )
        .await?
        .into_response()),
        Err(error) => {
            let errors = Errors::from_refusal(error)?;
            Ok((
                StatusCode::BAD_REQUEST,
                device_page(&state, &user, &name, Some(form), errors, None).await?,
            )
                .into_response())
        }
    }
}

pub async fn peer_action_post(
    State(state): State<AppState>,
    user: PageUser,
    Path((name, action)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let name = parse_peer(&name)?;
    let path = format!("/v1/vpn/peers/{name}");
    let (method, body, done) = match action.as_str() {
        "disable" => (Method::PATCH, Some(json!({"enabled": false})), "disabled"),
        "enable" => (Method::PATCH, Some(json!({"enabled": true})), "enabled"),
        "remove" => (Method::DELETE, None, "removed"),
        _ => return Err(AppError::NotFound),
    };
    let body = body.map(|b| Bytes::from(b.to_string()));
    let result = state
        .celld
        .send(method, &path, &user.on_behalf(), body)
        .await;
    let fresh = fresh_form(&user);
    match result {
        Ok(()) => Ok(vpn_page(
            &state,
            &user,
            fresh,
            None,
            Errors::default(),
            Some(format!("{name} was {done}.")),
        )
        .await?
        .into_response()),
        Err(error) => {
            let errors = Errors::from_refusal(error)?.into_banner();
            refused(&state, &user, fresh, None, errors).await
        }
    }
}

#[derive(Template)]
#[template(path = "firewall.html")]
struct FirewallPage {
    version: &'static str,
    nav: Option<Nav>,
    notice: Option<String>,
    firewall: FirewallView,
}

pub async fn firewall_get(
    State(state): State<AppState>,
    user: PageUser,
) -> Result<Html<String>, AppError> {
    let firewall: FirewallView = state
        .celld
        .json(Method::GET, "/v1/firewall", &user.on_behalf(), None)
        .await?;
    render(FirewallPage {
        version: cell_systemd::image_version(),
        nav: user.nav("firewall"),
        notice: None,
        firewall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
