//! The cell's zone, rendered from the settings for cell-dns: the cell's own name and one
//! per enabled service, answered with the LAN addresses to the LAN and the VPN addresses
//! to VPN peers — and, to each peer, only the services the firewall lets it reach (the
//! same settings, the same sets). Pure: the DNS applier writes what this returns.

use std::net::{IpAddr, SocketAddr};

use cell_model::api::Lease;
use cell_model::dns::{DnsRecord, ForwardTo, PeerAccess, RecordData, ZoneName, ZoneSnapshot};
use cell_model::vpn::Service;
use cell_model::Settings;

/// Answers may be cached this long: short, so a changed address is seen soon.
pub const TTL: u32 = 60;

pub(crate) fn enabled(settings: &Settings, service: Service) -> bool {
    let services = &settings.services;
    match service {
        Service::Calendar => services.calendar,
        Service::Files => services.files,
        Service::Mail => services.mail,
        Service::Webdav => services.webdav,
    }
}

const DNS_PORT: u16 = 53;
/// DNS-over-TLS (RFC 7858).
const DOT_PORT: u16 = 853;

/// An address only the cell's own networks reach: cell-dns answers there, and never on a
/// public one (the uplink of a cell with a public address).
fn is_private(address: &IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => v6.is_unique_local(),
    }
}

/// The resolvers in a resolv.conf (systemd-resolved's list of the uplink's servers):
/// `nameserver` lines, without scoped link-local ones and loopback stubs.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    let mut servers: Vec<IpAddr> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .filter(|address| !address.is_loopback() && !address.is_unspecified())
        .collect();
    servers.dedup();
    servers
}

/// How long the names of DHCP devices may be cached: their addresses can move.
const DEVICE_TTL: u32 = 60;

/// A name for each DHCP reservation and each lease whose device sent a usable host name,
/// unless a record of the person's own or a service already has it.
fn device_records(settings: &Settings, leases: &[Lease]) -> Vec<DnsRecord> {
    let Some(server) = settings.lan.dhcp_server_on() else {
        return Vec::new();
    };
    let mut taken: Vec<String> = settings
        .dns
        .records
        .iter()
        .map(|r| r.name.clone())
        .collect();
    taken.extend(
        cell_model::dns::SERVICE_LABELS
            .iter()
            .map(|s| (*s).to_owned()),
    );
    let mut records = Vec::new();
    let reserved = server
        .reservations
        .iter()
        .map(|r| (r.name.clone(), r.address));
    let leased = leases
        .iter()
        .filter_map(|lease| Some((lease.hostname.clone()?, lease.address)));
    for (name, address) in reserved.chain(leased) {
        let label_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !label_ok || taken.contains(&name) {
            continue;
        }
        taken.push(name.clone());
        records.push(DnsRecord {
            name,
            ttl: DEVICE_TTL,
            data: RecordData::A { address },
        });
    }
    records
}

/// The zone of generation `serial`, with `lan` the cell's addresses on its LAN, `uplink`
/// the resolvers the uplink's DHCP server gave, `leases` the DHCP server's, and
/// `generated` the records celld makes itself (an ACME order's DNS-01 challenges, the mail
/// records).
pub fn render(
    settings: &Settings,
    serial: u32,
    lan: &[IpAddr],
    uplink: &[IpAddr],
    leases: &[Lease],
    generated: &[DnsRecord],
) -> ZoneSnapshot {
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
    let mut listen: Vec<IpAddr> = lan.iter().copied().filter(is_private).collect();
    if let Some(vpn) = vpn {
        listen.extend([IpAddr::V4(vpn.gateway4()), IpAddr::V6(vpn.gateway6())]);
    }
    let chosen = if settings.dns.upstreams.is_empty() {
        uplink
    } else {
        &settings.dns.upstreams
    };
    let upstream_port = if settings.dns.upstream_tls.is_some() {
        DOT_PORT
    } else {
        DNS_PORT
    };
    // The cell itself is no upstream: asking itself would loop.
    let upstreams = chosen
        .iter()
        .filter(|address| !lan.contains(address) && !listen.contains(address))
        .map(|address| SocketAddr::new(*address, upstream_port))
        .collect();
    let forward_zones = settings
        .dns
        .forward_zones
        .iter()
        .map(|forward| ForwardTo {
            zone: format!(
                "{}.",
                forward.zone.trim_end_matches('.').to_ascii_lowercase()
            ),
            servers: forward
                .servers
                .iter()
                .map(|address| SocketAddr::new(*address, DNS_PORT))
                .collect(),
        })
        .collect();
    ZoneSnapshot {
        origin: format!("{}.", settings.zone()),
        serial,
        ttl: TTL,
        names,
        vpn_networks,
        peers,
        records: settings
            .dns
            .records
            .iter()
            .cloned()
            .chain(device_records(settings, leases))
            .chain(generated.iter().cloned())
            .collect(),
        upstreams,
        forward_zones,
        listen,
        upstream_tls: settings.dns.upstream_tls.clone(),
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
        let lan: Vec<IpAddr> = vec![
            "192.168.1.2".parse().unwrap(),
            "203.0.113.7".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            "fd12::2".parse().unwrap(),
        ];
        let uplink: Vec<IpAddr> = vec![
            "192.168.1.1".parse().unwrap(),
            "192.168.1.2".parse().unwrap(),
        ];
        let zone = render(&settings, 9, &lan, &uplink, &[], &[]);
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
        let vpn = settings.vpn.as_ref().unwrap();
        let listen_expected: Vec<IpAddr> = vec![
            "192.168.1.2".parse().unwrap(),
            "fd12::2".parse().unwrap(),
            IpAddr::V4(vpn.gateway4()),
            IpAddr::V6(vpn.gateway6()),
        ];
        assert_eq!(
            zone.listen, listen_expected,
            "private LAN addresses and the VPN gateways; never a public address"
        );
        assert_eq!(
            zone.upstreams,
            ["192.168.1.1:53".parse().unwrap()],
            "the uplink's resolvers, never the cell itself"
        );
        settings.dns.upstreams = vec!["9.9.9.9".parse().unwrap()];
        settings.dns.forward_zones = vec![cell_model::dns::ForwardZone {
            zone: "Other.cell".into(),
            servers: vec!["10.88.0.1".parse().unwrap()],
        }];
        let zone = render(&settings, 10, &lan, &uplink, &[], &[]);
        assert_eq!(
            zone.upstreams,
            ["9.9.9.9:53".parse().unwrap()],
            "listed upstreams win"
        );
        assert_eq!(zone.forward_zones[0].zone, "other.cell.");
        assert_eq!(
            zone.forward_zones[0].servers,
            ["10.88.0.1:53".parse().unwrap()]
        );
    }

    #[test]
    fn dhcp_devices_have_names_unless_taken() {
        let mut settings = Settings {
            lan: serde_json::from_value(serde_json::json!({
            "addressing": {"mode": "static", "address": "192.168.1.2/24", "gateway": "192.168.1.1"},
            "dhcp_server": {"enabled": true, "pool_start": "192.168.1.100", "pool_size": 50,
                "reservations": [{"mac": "52:54:00:ab:cd:ef", "address": "192.168.1.20", "name": "printer"}]}
            }))
            .unwrap(),
            ..Settings::default()
        };
        settings.dns.records = serde_json::from_value(serde_json::json!([
            {"name": "nas", "type": "A", "address": "192.168.1.7"}
        ]))
        .unwrap();
        let leases = crate::lan::parse_leases(
            "1796300000 52:54:00:00:00:01 192.168.1.100 laptop *\n\
             1796300000 52:54:00:00:00:02 192.168.1.101 nas *\n\
             1796300000 52:54:00:00:00:03 192.168.1.102 Bad_Name *\n",
        );
        let zone = render(&settings, 1, &[], &[], &leases, &[]);
        let names: Vec<&str> = zone.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["nas", "printer", "laptop"],
            "the user's nas wins; bad names skipped"
        );
    }

    #[test]
    fn resolv_conf_gives_the_uplink_servers() {
        let text = "# generated\nnameserver 192.168.1.1\nnameserver fe80::1%2\nnameserver 127.0.0.53\nnameserver 2001:db8::1\nsearch lan\n";
        let servers: Vec<String> = parse_resolv_conf(text)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(servers, ["192.168.1.1", "2001:db8::1"]);
    }
}
