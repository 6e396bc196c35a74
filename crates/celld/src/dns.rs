//! The cell's zone, rendered from the settings for cell-dns: the cell's own name and one
//! per enabled service, answered with the LAN addresses to the LAN and the VPN addresses
//! to VPN peers — and, to each peer, only the services the firewall lets it reach (the
//! same settings, the same sets). Pure: the DNS applier writes what this returns.

use std::net::IpAddr;

use cell_model::dns::{PeerAccess, ZoneName, ZoneSnapshot};
use cell_model::vpn::Service;
use cell_model::Settings;

/// Answers may be cached this long: short, so a changed address is seen soon.
pub const TTL: u32 = 60;

fn enabled(settings: &Settings, service: Service) -> bool {
    let services = &settings.services;
    match service {
        Service::Calendar => services.calendar,
        Service::Files => services.files,
        Service::Mail => services.mail,
        Service::Webdav => services.webdav,
    }
}

/// The zone of generation `serial`, with `lan` the cell's addresses on its LAN.
pub fn render(settings: &Settings, serial: u32, lan: &[IpAddr]) -> ZoneSnapshot {
    let vpn = settings.vpn.as_ref();
    let apex_vpn = vpn
        .map(|v| vec![IpAddr::V4(v.gateway4()), IpAddr::V6(v.gateway6())])
        .unwrap_or_default();
    let mut names = vec![ZoneName {
        label: String::new(),
        service: None,
        lan: lan.to_vec(),
        vpn: apex_vpn,
    }];
    for service in Service::ALL.into_iter().filter(|s| enabled(settings, *s)) {
        let mut vpn_addresses = Vec::new();
        if let Some(vpn) = vpn {
            vpn_addresses.extend(vpn.service4(service).map(IpAddr::V4));
            vpn_addresses.push(IpAddr::V6(vpn.service6(service)));
        }
        names.push(ZoneName {
            label: service.as_str().to_owned(),
            service: Some(service.as_str().to_owned()),
            lan: lan.to_vec(),
            vpn: vpn_addresses,
        });
    }
    let (vpn_networks, peers) = match vpn {
        None => (Vec::new(), Vec::new()),
        Some(vpn) => (
            vec![
                (IpAddr::V4(vpn.subnet4.network()), vpn.subnet4.prefix()),
                (IpAddr::V6(vpn.prefix6.host(0)), 64),
            ],
            vpn.peers
                .iter()
                .filter(|p| p.enabled)
                .map(|peer| PeerAccess {
                    addresses: vpn
                        .peer_address4(peer)
                        .map(IpAddr::V4)
                        .into_iter()
                        .chain([IpAddr::V6(vpn.peer_address6(peer))])
                        .collect(),
                    services: Service::ALL
                        .into_iter()
                        .filter(|s| peer.access.allows(*s))
                        .map(|s| s.as_str().to_owned())
                        .collect(),
                })
                .collect(),
        ),
    };
    ZoneSnapshot {
        origin: format!("{}.", settings.zone()),
        serial,
        ttl: TTL,
        names,
        vpn_networks,
        peers,
        records: settings.dns.records.clone(),
        upstreams: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn services_views_and_peers_follow_the_settings() {
        let mut settings = Settings::default();
        settings.services.files = true;
        let mut vpn = crate::vpn::new_vpn();
        vpn.peers = serde_json::from_value(serde_json::json!([
            {"name": "phone", "owner": "alice", "public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "host": 16, "access": {"files": true}},
            {"name": "laptop", "owner": "alice", "public_key": "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=", "host": 17},
            {"name": "off", "owner": "alice", "public_key": "9eoUhNqpZnHpKw4xYl6qg+8sV7sKZ2L8T6x2s1TmzWI=", "host": 18, "enabled": false}
        ]))
        .unwrap();
        settings.vpn = Some(vpn);
        let lan: Vec<IpAddr> = vec!["192.168.1.2".parse().unwrap()];
        let zone = render(&settings, 9, &lan);
        assert_eq!(zone.origin, "cell.cell.");
        assert_eq!(zone.serial, 9);
        let labels: Vec<&str> = zone.names.iter().map(|n| n.label.as_str()).collect();
        assert_eq!(labels, ["", "files"], "only enabled services have names");
        assert_eq!(zone.names[1].lan, lan);
        assert!(
            zone.names[1].vpn.contains(&"10.87.0.3".parse().unwrap())
                || !zone.names[1].vpn.is_empty()
        );
        assert_eq!(zone.peers.len(), 2, "a disabled device has no view");
        assert_eq!(zone.peers[0].services, ["files"]);
        assert!(zone.peers[1].services.is_empty());
        assert_eq!(zone.vpn_networks[0], ("10.87.0.0".parse().unwrap(), 20));
    }
}
