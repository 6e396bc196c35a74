//! The cell's certificates: the root for anyone to download and compare, what the front
//! door serves for those logged in, and the handover of certificates with their keys to
//! the front door's own user alone.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cell_model::acme::Acme;
use cell_model::api::{AcmeView, PkiView, RootCertificate};
use serde::Deserialize;

use super::extract::{Actor, Admin, ValidJson};
use super::{blocking, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::peer::Peer;
use crate::sync::lock;

/// The root, without a session: a device fetches it before it can trust the cell.
pub async fn root_get(State(daemon): State<Arc<Daemon>>) -> Json<RootCertificate> {
    Json(crate::pki::root_view(&daemon.pki.root()))
}

/// The root alone as an Apple profile, without a session, like the root's other forms.
pub async fn root_mobileconfig_get(State(daemon): State<Arc<Daemon>>) -> Response {
    let root = daemon.pki.root();
    let zone = crate::sync::lock(&daemon.store).current().settings.zone();
    let profile = crate::apple_profile::render(&crate::apple_profile::Profile {
        zone: &zone,
        root_der: root.cert_der(),
        root_fingerprint: &root.fingerprint(),
        wireguard: None,
        accounts: None,
    });
    super::vpn::attachment(
        crate::apple_profile::CONTENT_TYPE,
        "personal-internet-cell-root.mobileconfig".into(),
        profile.into_bytes(),
    )
}

fn acme_view(daemon: &Daemon) -> AcmeView {
    let settings = lock(&daemon.store).current().settings.clone();
    daemon.acme.view(&settings)
}

pub async fn pki_get(State(daemon): State<Arc<Daemon>>, _actor: Actor) -> Json<PkiView> {
    Json(daemon.pki.view(acme_view(&daemon)))
}

/// ACME's settings and how it is going, for everyone logged in (no secret in it).
pub async fn acme_get(State(daemon): State<Arc<Daemon>>, _actor: Actor) -> Json<AcmeView> {
    Json(acme_view(&daemon))
}

/// Turns ACME on or off, or changes its CA, contact or challenge; the order follows.
pub async fn acme_put(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(acme): ValidJson<Acme>,
) -> Result<Json<AcmeView>, AppError> {
    let worker = daemon.clone();
    blocking(move || {
        let record = Record::new(&actor.name, "acme.update").source(actor.source.clone());
        worker.commit(record, |next| {
            acme.validate(&next.identity.domain)
                .map_err(|e| AppError::Invalid(e.at("acme")))?;
            next.acme = acme;
            Ok::<(), AppError>(())
        })?;
        Ok(())
    })
    .await?;
    Ok(Json(acme_view(&daemon)))
}

/// Asks the CA again now, forgetting the backoff of earlier failures.
pub async fn acme_renew_post(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
) -> Result<Json<AcmeView>, AppError> {
    if crate::acme::wanted(&lock(&daemon.store).current().settings).is_none() {
        return Err(AppError::Conflict(
            "ACME is off, or the cell has no public name to ask a certificate for".into(),
        ));
    }
    super::record(
        &daemon,
        Record::new(&actor.name, "acme.renew").source(actor.source.clone()),
    )
    .await?;
    daemon.acme.ask_now();
    Ok(Json(acme_view(&daemon)))
}

#[derive(Debug, Deserialize)]
pub struct Known {
    known: Option<u64>,
}

/// The certificates and keys the front door serves; 204 when it already has serial
/// `known`. Only the front door's user gets them, whatever else it may ask.
pub async fn tls_get(
    State(daemon): State<Arc<Daemon>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Query(known): Query<Known>,
) -> Result<Response, AppError> {
    if peer.uid != Some(daemon.config.front_door_uid) {
        tracing::warn!(uid = ?peer.uid, pid = ?peer.pid, "refused the certificate keys to a process that is not the front door");
        return Err(AppError::Forbidden(
            "only the front door gets the certificates' keys".into(),
        ));
    }
    let handover = daemon.pki.handover();
    // A serial from before celld restarted (numbered anew) says nothing of what it holds.
    if let Some(known) = known.known.filter(|known| *known <= handover.serial) {
        daemon.pki.front_door_holds(known);
    }
    if known.known == Some(handover.serial) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Json(handover).into_response())
}
