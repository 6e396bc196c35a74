//! The cell's DNS records: listed, and replaced as a whole (validated: a refusal names the
//! record and field, and stores nothing). The reconciler renders the zone for cell-dns.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cell_model::api::{DnsEdit, DnsView};
use cell_model::dns::ZoneSnapshot;

use super::extract::{Actor, Admin, ValidJson};
use super::{blocking, AppError};
use crate::audit::Record;
use crate::daemon::Daemon;
use crate::sync::lock;

/// The DNS settings and the zone in force; to anyone but an administrator, the zone's
/// per-device access lists only for their own devices.
fn view(daemon: &Daemon, actor: &Actor) -> DnsView {
    let settings = lock(&daemon.store).current().settings.clone();
    let mut snapshot = std::fs::read(&daemon.config().dns_zone)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ZoneSnapshot>(&bytes).ok());
    if let (Some(zone), false) = (snapshot.as_mut(), actor.is_admin()) {
        let own: Vec<std::net::IpAddr> = settings
            .vpn
            .iter()
            .flat_map(|vpn| {
                vpn.peers
                    .iter()
                    .filter(|peer| peer.owner.as_str() == actor.name)
                    .flat_map(|peer| {
                        vpn.peer_address4(peer)
                            .map(std::net::IpAddr::V4)
                            .into_iter()
                            .chain([std::net::IpAddr::V6(vpn.peer_address6(peer))])
                    })
            })
            .collect();
        zone.peers
            .retain(|peer| peer.addresses.iter().any(|address| own.contains(address)));
    }
    DnsView {
        zone: settings.zone(),
        records: settings.dns.records,
        upstreams: settings.dns.upstreams,
        forward_zones: settings.dns.forward_zones,
        upstream_tls: settings.dns.upstream_tls,
        snapshot,
    }
}

/// Everyone logged in may see the zone's records (they are answered to anyone anyway).
pub async fn dns_get(State(daemon): State<Arc<Daemon>>, actor: Actor) -> Json<DnsView> {
    Json(view(&daemon, &actor))
}

pub async fn dns_put(
    State(daemon): State<Arc<Daemon>>,
    Admin(actor): Admin,
    ValidJson(edit): ValidJson<DnsEdit>,
) -> Result<Json<DnsView>, AppError> {
    let actor_view = actor.clone();
    let worker = daemon.clone();
    blocking(move || {
        let record = Record::new(&actor.name, "dns.update").source(actor.source.clone());
        worker.commit(record, |next| {
            let zone = next.zone();
            let dns = &mut next.dns;
            if let Some(records) = edit.records {
                dns.records = records;
            }
            if let Some(upstreams) = edit.upstreams {
                dns.upstreams = upstreams;
            }
            if let Some(forward_zones) = edit.forward_zones {
                dns.forward_zones = forward_zones;
            }
            if let Some(name) = edit.upstream_tls {
                dns.upstream_tls = (!name.is_empty()).then_some(name);
            }
            dns.validate(&zone).map_err(AppError::Invalid)
        })?;
        Ok(())
    })
    .await?;
    Ok(Json(view(&daemon, &actor_view)))
}
