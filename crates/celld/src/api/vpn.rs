//! The VPN and firewall routes: server settings, peers, client configurations, live state.
//! Admins manage everything; a peer-role user sees and downloads only their own devices.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cell_model::api::{FirewallView, NewPeer, PeerPatch, PeerView, VpnSettingsEdit, VpnView};
use cell_model::net::WgPublicKey;
use cell_model::vpn::{Peer, PeerName, Vpn};
use cell_model::{Role, Settings, Username};

use super::extract::{Actor, Admin, LoginOrigin, ValidJson};
use super::{blocking, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::sync::lock;
use crate::vpn::{self, peer_key_name};

fn parse_name(name: &str) -> Result<PeerName, AppError> {
    PeerName::parse(name).map_err(|message| AppError::field("name", message))
}

fn no_such_peer(name: &PeerName) -> AppError {
    AppError::NotFound(format!("there is no device '{name}'"))
}

fn vpn_of(settings: &Settings) -> Result<&Vpn, AppError> {
    settings
        .vpn
        .as_ref()
        .ok_or_else(|| AppError::Internal("the VPN section is missing".into()))
}

/// Applies `change` to a copy of the VPN settings, validates the result, commits it and
/// records `record`; nothing is stored when any step refuses.
fn commit_vpn(
    daemon: &Daemon,
    change: impl FnOnce(&Settings, &mut Vpn) -> Result<(), AppError>,
    record: Record,
) -> Result<Settings, AppError> {
    let stored = daemon.commit(record, |next| {
        let mut vpn = vpn_of(next)?.clone();
        change(next, &mut vpn)?;
        vpn.validate().map_err(|e| AppError::Invalid(e.at("vpn")))?;
        next.vpn = Some(vpn);
        Ok::<(), AppError>(())
    })?;
    Ok(stored.settings)
}

/// The peer named `name` if the actor may see it: their own, or any for an admin. Others'
/// devices read as absent, so names do not leak.
fn visible_peer(settings: &Settings, actor: &Actor, name: &PeerName) -> Result<Peer, AppError> {
    vpn_of(settings)?
        .peer(name)
        .filter(|p| actor.is_admin() || actor.is(&p.owner))
        .cloned()
        .ok_or_else(|| no_such_peer(name))
}

async fn live_device(daemon: &Daemon) -> Option<cell_wg::LiveDevice> {
    match daemon.network.device(&daemon.config.wg_interface).await {
        Ok(device) => device,
        Err(error) => {
            tracing::warn!(%error, "cannot read the WireGuard device");
            None
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub async fn vpn_get(
    State(daemon): State<Arc<Daemon>>,
    Admin(_): Admin,
) -> Result<Json<VpnView>, AppError> {
    let settings = lock(&daemon.store).current().settings.clone();
    let vpn = vpn_of(&settings)?;
    let public = WgPublicKey::from_bytes(daemon.wg_key.public());
    let device = live_device(&daemon).await;
    let appliers = daemon
        .board()
        .states()
        .into_iter()
        .filter(|s| VPN_APPLIERS.contains(&s.applier.as_str()))
        .collect();
    let pending = lock(&daemon.store).pending_view();
    Ok(Json(vpn::vpn_view(
        vpn,
        &daemon.config.wg_interface,
        Some(public),
        device.as_ref(),
        appliers,
        pending,
        unix_now(),
    )))
}

/// The appliers whose state the VPN page shows.
const VPN_APPLIERS: [&str; 3] = [
    crate::reconcile::vpn::FIREWALL,
    crate::reconcile::vpn::WIREGUARD,
    crate::reconcile::vpn::ADDRESSES,
];

async fn lan(daemon: &Daemon) -> Result<Vec<(String, IpAddr, u8)>, AppError> {
    daemon
        .network
        .local_networks(&daemon.config.wg_interface)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// Changes the VPN server settings. A new subnet or port can cut off whoever reaches the
/// cell through the VPN: it is applied at once but answered 202, and undone unless
/// confirmed (`POST /v1/changes/confirm`) before the deadline in `pending_change`.
pub async fn vpn_put(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(edit): ValidJson<VpnSettingsEdit>,
) -> Result<(StatusCode, Json<VpnView>), AppError> {
    let local = lan(&daemon).await?;
    for (link, address, prefix) in &local {
        if let IpAddr::V4(v4) = address {
            if edit.subnet4.overlaps_network(*v4, *prefix) {
                return Err(AppError::field(
                    "subnet4",
                    format!("{} overlaps {v4}/{prefix} on {link}", edit.subnet4),
                ));
            }
        }
    }
    let record = Record::new(&actor.name, "vpn.update").source(actor.source.clone());
    let worker = daemon.clone();
    let generation = blocking(move || {
        commit_vpn(
            &worker,
            move |_, vpn| {
                vpn.subnet4 = edit.subnet4;
                vpn.listen_port = edit.listen_port;
                vpn.endpoint = edit.endpoint;
                Ok(())
            },
            record,
        )?;
        Ok(lock(&worker.store).current().generation)
    })
    .await?;
    let Json(view) = vpn_get(State(daemon), Admin(actor)).await?;
    let status = match &view.pending_change {
        Some(pending) if pending.generation == generation => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(view)))
}

pub async fn peers_get(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
) -> Result<Json<Vec<PeerView>>, AppError> {
    let settings = lock(&daemon.store).current().settings.clone();
    let vpn = vpn_of(&settings)?;
    let device = live_device(&daemon).await;
    Ok(Json(
        vpn.peers
            .iter()
            .filter(|p| actor.is_admin() || actor.is(&p.owner))
            .map(|p| vpn::peer_view(vpn, p, device.as_ref()))
            .collect(),
    ))
}

pub async fn peer_get(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Json<PeerView>, AppError> {
    let name = parse_name(&name)?;
    let settings = lock(&daemon.store).current().settings.clone();
    let peer = visible_peer(&settings, &actor, &name)?;
    let device = live_device(&daemon).await;
    Ok(Json(vpn::peer_view(
        vpn_of(&settings)?,
        &peer,
        device.as_ref(),
    )))
}

pub async fn peers_post(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(new): ValidJson<NewPeer>,
) -> Result<(StatusCode, Json<PeerView>), AppError> {
    let owner = match new.owner.clone() {
        Some(owner) => owner,
        None => actor
            .user
            .as_ref()
            .map(|(name, _)| name.clone())
            .ok_or_else(|| AppError::field("owner", "root must name the device's owner"))?,
    };
    let worker = daemon.clone();
    let record = Record::new(&actor.name, "vpn.peer.create")
        .source(actor.source.clone())
        .target(new.name.as_str())
        .change("owner", owner.as_str());
    let settings = blocking(move || {
        let (public_key, private_key) = match new.public_key {
            Some(key) => (key, None),
            None => {
                let (private, public) = cell_wg::generate_keypair();
                (WgPublicKey::from_bytes(public), Some(private))
            }
        };
        let secret_name = peer_key_name(&public_key);
        if let Some(private) = &private_key {
            worker
                .secrets
                .put(&secret_name, private)
                .map_err(|e| AppError::Internal(e.to_string()))?;
        }
        let name = new.name.clone();
        let result = commit_vpn(
            &worker,
            |settings, vpn| {
                if settings.user(&owner).is_none() {
                    return Err(AppError::field(
                        "owner",
                        format!("there is no user '{owner}'"),
                    ));
                }
                if vpn.peer(&name).is_some() {
                    return Err(AppError::field(
                        "name",
                        format!("there is already a device named '{name}'"),
                    ));
                }
                if vpn.peers.iter().any(|p| p.public_key == public_key) {
                    return Err(AppError::field(
                        "public_key",
                        "another device already uses this public key",
                    ));
                }
                let host = vpn.free_host().ok_or_else(|| {
                    AppError::field(
                        "vpn.subnet4",
                        format!(
                            "{} has no free address left; choose a larger VPN subnet",
                            vpn.subnet4
                        ),
                    )
                })?;
                vpn.peers.push(Peer {
                    name: name.clone(),
                    owner: owner.clone(),
                    public_key,
                    host,
                    access: new.access,
                    internet_exit: new.internet_exit,
                    lan_access: new.lan_access,
                    keepalive: new.keepalive,
                    enabled: true,
                    key_on_cell: private_key.is_some(),
                });
                Ok(())
            },
            record,
        );
        if result.is_err() && private_key.is_some() {
            // The device was never stored: its key must not linger.
            let _ = worker.secrets.remove(&secret_name);
        }
        result
    })
    .await?;
    let vpn = vpn_of(&settings)?;
    let peer = vpn
        .peers
        .last()
        .ok_or_else(|| AppError::Internal("the new device is missing".into()))?;
    Ok((StatusCode::CREATED, Json(vpn::peer_view(vpn, peer, None))))
}

pub async fn peer_patch(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    Path(name): Path<String>,
    ValidJson(patch): ValidJson<PeerPatch>,
) -> Result<Json<PeerView>, AppError> {
    let name = parse_name(&name)?;
    let mut record = Record::new(&actor.name, "vpn.peer.update")
        .source(actor.source.clone())
        .target(name.as_str());
    if let Some(enabled) = patch.enabled {
        record = record.change("enabled", enabled.to_string());
    }
    if let Some(new_name) = &patch.name {
        record = record.change("name", new_name.as_str());
    }
    let worker = daemon.clone();
    let current = patch.name.clone().unwrap_or_else(|| name.clone());
    let settings = blocking(move || {
        commit_vpn(
            &worker,
            |_, vpn| {
                if let Some(new_name) = &patch.name {
                    if new_name != &name && vpn.peer(new_name).is_some() {
                        return Err(AppError::field(
                            "name",
                            format!("there is already a device named '{new_name}'"),
                        ));
                    }
                }
                let peer = vpn.peer_mut(&name).ok_or_else(|| no_such_peer(&name))?;
                if let Some(new_name) = patch.name {
                    peer.name = new_name;
                }
                if let Some(enabled) = patch.enabled {
                    peer.enabled = enabled;
                }
                if let Some(access) = patch.access {
                    peer.access = access;
                }
                if let Some(exit) = patch.internet_exit {
                    peer.internet_exit = exit;
                }
                if let Some(lan) = patch.lan_access {
                    peer.lan_access = lan;
                }
                if let Some(keepalive) = patch.keepalive {
                    peer.keepalive = keepalive;
                }
                Ok(())
            },
            record,
        )
    })
    .await?;
    let vpn = vpn_of(&settings)?;
    let peer = vpn.peer(&current).ok_or_else(|| no_such_peer(&current))?;
    let device = live_device(&daemon).await;
    Ok(Json(vpn::peer_view(vpn, peer, device.as_ref())))
}

pub async fn peer_delete(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, AppError> {
    let name = parse_name(&name)?;
    let record = Record::new(&actor.name, "vpn.peer.delete")
        .source(actor.source.clone())
        .target(name.as_str());
    let worker = daemon.clone();
    blocking(move || {
        let mut removed = None;
        commit_vpn(
            &worker,
            |_, vpn| {
                let index = vpn
                    .peers
                    .iter()
                    .position(|p| p.name == name)
                    .ok_or_else(|| no_such_peer(&name))?;
                removed = Some(vpn.peers.remove(index));
                Ok(())
            },
            record,
        )?;
        if let Some(peer) = removed {
            worker
                .secrets
                .remove(&peer_key_name(&peer.public_key))
                .map_err(|e| AppError::Internal(e.to_string()))?;
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The client configuration text of a visible peer; each download is audited because it
/// can carry the device's private key.
async fn config_text(
    daemon: &Arc<Daemon>,
    actor: &Actor,
    name: &str,
    what: &str,
) -> Result<(PeerName, String), AppError> {
    let name = parse_name(name)?;
    let settings = lock(&daemon.store).current().settings.clone();
    let peer = visible_peer(&settings, actor, &name)?;
    let text = render_config(daemon, &settings, &peer).await?;
    let record = Record::new(&actor.name, "vpn.peer.config")
        .source(actor.source.clone())
        .target(name.as_str())
        .change("format", what);
    super::record(daemon, record).await?;
    Ok((name, text))
}

/// The device's WireGuard configuration (with its key, when the cell keeps it).
async fn render_config(
    daemon: &Arc<Daemon>,
    settings: &Settings,
    peer: &Peer,
) -> Result<String, AppError> {
    let name = &peer.name;
    let vpn = vpn_of(settings)?;
    let endpoint = vpn::endpoint(settings, vpn).ok_or_else(|| {
        AppError::Conflict(
            "the cell has no public name yet: set the VPN endpoint (the address devices dial) first"
                .into(),
        )
    })?;
    let private_key = if peer.key_on_cell {
        let secret = daemon
            .secrets
            .get(&peer_key_name(&peer.public_key))
            .map_err(|e| AppError::Internal(e.to_string()))?
            .ok_or_else(|| AppError::Internal(format!("the key of device '{name}' is missing")))?;
        Some(
            <[u8; 32]>::try_from(secret.expose())
                .map_err(|_| AppError::Internal("a stored device key is malformed".into()))?,
        )
    } else {
        None
    };
    let lan = if peer.lan_access {
        vpn::lan_networks(&lan(daemon).await?)
    } else {
        Vec::new()
    };
    let config = vpn::client_config(
        &settings.zone(),
        vpn,
        peer,
        endpoint,
        daemon.wg_key.public(),
        private_key,
        &lan,
    );
    Ok(config.render())
}

pub(super) fn attachment(content_type: &'static str, filename: String, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

pub async fn peer_config_get(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let (name, text) = config_text(&daemon, &actor, &name, "conf").await?;
    Ok(attachment(
        "text/plain; charset=utf-8",
        format!("{name}.conf"),
        text.into_bytes(),
    ))
}

/// The device's WireGuard configuration and the cell's root in one Apple profile: one tap
/// on an iPhone or iPad installs both.
pub async fn peer_mobileconfig_get(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let (name, text) = config_text(&daemon, &actor, &name, "mobileconfig").await?;
    let settings = lock(&daemon.store).current().settings.clone();
    let peer = visible_peer(&settings, &actor, &name)?;
    let accounts =
        profile_accounts(&daemon, &settings, &peer, &actor.name, actor.source.clone()).await?;
    Ok(mobileconfig(&daemon, &name, &text, accounts.as_ref()))
}

/// The device owner's accounts for its profile.
struct ProfileAccounts {
    username: String,
    password: String,
    /// The address and the server.
    mail: Option<(String, String)>,
    dav_host: Option<String>,
}

/// The owner's calendar, contacts and mail accounts for the device's profile, with a
/// fresh app password for the device that replaces the one an earlier download made.
/// Only for the owner: an administrator never receives someone's password. None when the
/// asker is not the owner or no service with an account is on.
async fn profile_accounts(
    daemon: &Arc<Daemon>,
    settings: &Settings,
    peer: &Peer,
    asker: &str,
    source: Option<String>,
) -> Result<Option<ProfileAccounts>, AppError> {
    let services = &settings.services;
    let owner_active = settings.user(&peer.owner).is_some_and(|u| !u.disabled);
    if asker != peer.owner.as_str() || !owner_active || !(services.mail || services.calendar) {
        return Ok(None);
    }
    let device: String = peer.name.as_str().chars().take(30).collect();
    let label = format!("{device} (profile)");
    let created =
        super::app_passwords::issue(daemon, asker, source, &peer.owner, label, true).await?;
    let zone = settings.zone();
    Ok(Some(ProfileAccounts {
        username: peer.owner.to_string(),
        password: created.password,
        mail: services
            .mail
            .then(|| (format!("{}@{zone}", peer.owner), format!("mail.{zone}"))),
        dav_host: services.calendar.then(|| format!("calendar.{zone}")),
    }))
}

/// A one-time link to the device's profile, for a phone without a session (a QR code).
pub async fn peer_profile_link_post(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Json<cell_model::api::ProfileLink>, AppError> {
    let name = parse_name(&name)?;
    let settings = lock(&daemon.store).current().settings.clone();
    let peer = visible_peer(&settings, &actor, &name)?;
    // Refused now, not on the phone, when there is nothing to put in it yet.
    render_config(&daemon, &settings, &peer).await?;
    let ticket = lock(&daemon.profile_links).issue(
        name.clone(),
        &peer.public_key.to_string(),
        &actor.name,
        std::time::Instant::now(),
    );
    let record = Record::new(&actor.name, "vpn.peer.profile_link")
        .source(actor.source.clone())
        .target(name.as_str());
    super::record(&daemon, record).await?;
    Ok(Json(cell_model::api::ProfileLink {
        ticket,
        expires_in_s: crate::profile_links::LIFETIME.as_secs(),
    }))
}

/// The profile behind a one-time link; the link is spent.
pub async fn profile_by_link_get(
    State(daemon): State<Arc<Daemon>>,
    LoginOrigin(origin): LoginOrigin,
    Path(ticket): Path<String>,
) -> Result<Response, AppError> {
    let gone = || {
        AppError::NotFound(
            "this link was used or has expired: make a new one on the device's page".into(),
        )
    };
    let link = lock(&daemon.profile_links)
        .take(&ticket, std::time::Instant::now())
        .ok_or_else(gone)?;
    let answer = profile_for_link(&daemon, &link, origin.source).await;
    if answer.is_err() {
        // A download that failed (too many app passwords, a full disk) leaves the link
        // for another try.
        lock(&daemon.profile_links).give_back(&ticket, link);
    }
    answer
}

async fn profile_for_link(
    daemon: &Arc<Daemon>,
    link: &crate::profile_links::Link,
    source: Option<String>,
) -> Result<Response, AppError> {
    let gone = || {
        AppError::NotFound(
            "this link was used or has expired: make a new one on the device's page".into(),
        )
    };
    let settings = lock(&daemon.store).current().settings.clone();
    // The maker must still see the device, and it must be the same device.
    let issuer_sees = |peer: &Peer| match Username::parse(&link.issuer)
        .ok()
        .and_then(|name| settings.user(&name))
    {
        Some(user) => !user.disabled && (user.role == Role::Admin || user.name == peer.owner),
        None => link.issuer == "root",
    };
    let peer = vpn_of(&settings)?
        .peer(&link.peer)
        .filter(|peer| peer.public_key.to_string() == link.public_key && issuer_sees(peer))
        .cloned()
        .ok_or_else(gone)?;
    let text = render_config(daemon, &settings, &peer).await?;
    let accounts = profile_accounts(daemon, &settings, &peer, &link.issuer, source.clone()).await?;
    let record = Record::new(&link.issuer, "vpn.peer.config")
        .source(source)
        .target(link.peer.as_str())
        .change("format", "mobileconfig (one-time link)");
    super::record(daemon, record).await?;
    Ok(mobileconfig(daemon, &link.peer, &text, accounts.as_ref()))
}

fn mobileconfig(
    daemon: &Daemon,
    name: &PeerName,
    text: &str,
    accounts: Option<&ProfileAccounts>,
) -> Response {
    let root = daemon.pki.root();
    let zone = lock(&daemon.store).current().settings.zone();
    let profile = crate::apple_profile::render(&crate::apple_profile::Profile {
        zone: &zone,
        root_der: root.cert_der(),
        root_fingerprint: &root.fingerprint(),
        wireguard: Some(crate::apple_profile::WireGuard {
            name: name.as_str(),
            conf: text,
        }),
        accounts: accounts.map(|a| crate::apple_profile::Accounts {
            username: &a.username,
            password: &a.password,
            mail: a
                .mail
                .as_ref()
                .map(|(address, host)| crate::apple_profile::MailAccount { address, host }),
            dav_host: a.dav_host.as_deref(),
        }),
    });
    attachment(
        crate::apple_profile::CONTENT_TYPE,
        format!("{name}.mobileconfig"),
        profile.into_bytes(),
    )
}

pub async fn peer_qr_png_get(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let (name, text) = config_text(&daemon, &actor, &name, "png").await?;
    let png = cell_wg::qr_png(&text).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(attachment("image/png", format!("{name}.png"), png))
}

pub async fn peer_qr_svg_get(
    State(daemon): State<Arc<Daemon>>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let (name, text) = config_text(&daemon, &actor, &name, "svg").await?;
    let svg = cell_wg::qr_svg(&text).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(attachment(
        "image/svg+xml",
        format!("{name}.svg"),
        svg.into_bytes(),
    ))
}

pub async fn firewall_get(
    State(daemon): State<Arc<Daemon>>,
    Admin(_): Admin,
) -> Result<Json<FirewallView>, AppError> {
    let (ruleset, live) = daemon
        .network
        .firewall()
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Json(FirewallView {
        ruleset,
        rules: live.rules,
        elements: live.sets.values().map(|s| s.len()).sum(),
    }))
}
