//! The LAN port, rendered from the settings (pure): systemd-networkd's `.network` file for
//! a static address, dnsmasq's configuration for the DHCP server, and the leases dnsmasq
//! keeps, read back for the API and the cell's zone.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use cell_model::api::Lease;
use cell_model::lan::LanAddressing;
use cell_model::Settings;

/// The DHCP server's unit.
pub const DHCP_UNIT: &str = "cell-dhcp.service";
/// Where dnsmasq keeps its leases on the device (its unit's state directory).
pub const LEASES_FILE: &str = "/var/lib/cell-dhcp/dnsmasq.leases";

fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX << (32 - u32::from(prefix)))
}

/// The `.network` file that gives the wired LAN ports a static address (it sorts before the
/// image's DHCP one, so it wins); None when the LAN asks its DHCP server.
pub fn network_file(settings: &Settings) -> Option<String> {
    let LanAddressing::Static {
        address,
        gateway,
        dns,
    } = &settings.lan.addressing
    else {
        return None;
    };
    let mut out = String::from(
        "# Written by celld from the cell's settings: the LAN port's static address.\n\
         [Match]\nName=en* eth*\n\n[Network]\n",
    );
    let _ = writeln!(out, "Address={address}");
    let _ = writeln!(out, "Gateway={gateway}");
    for resolver in dns {
        let _ = writeln!(out, "DNS={resolver}");
    }
    out.push_str("IPv6AcceptRA=yes\nMulticastDNS=yes\n");
    Some(out)
}

/// dnsmasq's configuration: DHCP only (cell-dns answers names), on the static address,
/// pointing clients at the cell for DNS and time; None when the server is off.
pub fn dnsmasq_conf(settings: &Settings, leases: &std::path::Path) -> Option<String> {
    let server = settings.lan.dhcp_server_on()?;
    let (own, prefix) = settings.lan.static_address()?;
    let LanAddressing::Static { gateway, .. } = &settings.lan.addressing else {
        return None;
    };
    let last = Ipv4Addr::from(u32::from(server.pool_start) + server.pool_size.saturating_sub(1));
    let mut out = String::from(
        "# Written by celld from the cell's settings; a change here is overwritten.\n\
         # DHCP only: names are cell-dns's.\nport=0\nno-resolv\nno-hosts\n\
         bind-dynamic\ndhcp-authoritative\nuser=cell-dhcp\ngroup=cell-dhcp\n\
         # No pid file: systemd keeps track of it.\npid-file=\n",
    );
    let _ = writeln!(out, "listen-address={own}");
    let _ = writeln!(out, "dhcp-leasefile={}", leases.display());
    let _ = writeln!(
        out,
        "dhcp-range={},{last},{},{}s",
        server.pool_start,
        netmask(prefix),
        server.lease_seconds
    );
    let _ = writeln!(out, "dhcp-option=option:router,{gateway}");
    let _ = writeln!(out, "dhcp-option=option:dns-server,{own}");
    let _ = writeln!(out, "dhcp-option=option:ntp-server,{own}");
    let _ = writeln!(out, "dhcp-option=option:domain-name,{}", settings.zone());
    for reservation in &server.reservations {
        let _ = writeln!(
            out,
            "dhcp-host={},{},{},{}s",
            reservation.mac.to_ascii_lowercase(),
            reservation.address,
            reservation.name,
            server.lease_seconds
        );
    }
    Some(out)
}

/// dnsmasq's lease file: `expiry mac address hostname client-id` per line (`*` for none).
pub fn parse_leases(text: &str) -> Vec<Lease> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let expires: i64 = fields.next()?.parse().ok()?;
            let mac = fields.next()?.to_ascii_lowercase();
            let address: Ipv4Addr = fields.next()?.parse().ok()?;
            let hostname = fields
                .next()
                .filter(|name| *name != "*")
                .map(str::to_ascii_lowercase);
            Some(Lease {
                mac,
                address,
                hostname,
                expires: jiff::Timestamp::from_second(expires).ok(),
            })
        })
        .collect()
}

/// The leases dnsmasq holds now (none when it never ran).
pub fn leases(path: &std::path::Path) -> Vec<Lease> {
    std::fs::read_to_string(path)
        .map(|text| parse_leases(&text))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(lan: serde_json::Value) -> Settings {
        Settings {
            lan: serde_json::from_value(lan).unwrap(),
            ..Settings::default()
        }
    }

    #[test]
    fn dhcp_needs_no_file_and_a_static_address_gets_one() {
        assert_eq!(network_file(&Settings::default()), None);
        let leases = std::path::Path::new(LEASES_FILE);
        assert_eq!(dnsmasq_conf(&Settings::default(), leases), None);
        let lan = settings(serde_json::json!({
            "addressing": {"mode": "static", "address": "192.168.1.2/24", "gateway": "192.168.1.1", "dns": ["192.168.1.1"]},
            "dhcp_server": {"enabled": true, "pool_start": "192.168.1.100", "pool_size": 50,
                "reservations": [{"mac": "52:54:00:AB:CD:EF", "address": "192.168.1.20", "name": "printer"}]}
        }));
        let network = network_file(&lan).unwrap();
        assert!(
            network.contains("Address=192.168.1.2/24\nGateway=192.168.1.1\nDNS=192.168.1.1\n"),
            "{network}"
        );
        let conf = dnsmasq_conf(&lan, leases).unwrap();
        for line in [
            "port=0",
            "listen-address=192.168.1.2",
            "dhcp-range=192.168.1.100,192.168.1.149,255.255.255.0,3600s",
            "dhcp-option=option:router,192.168.1.1",
            "dhcp-option=option:dns-server,192.168.1.2",
            "dhcp-option=option:ntp-server,192.168.1.2",
            "dhcp-option=option:domain-name,cell.cell",
            "dhcp-host=52:54:00:ab:cd:ef,192.168.1.20,printer,3600s",
        ] {
            assert!(
                conf.lines().any(|l| l == line),
                "{line} missing from:\n{conf}"
            );
        }
    }

    #[test]
    fn leases_are_read() {
        let leases = parse_leases(
            "1796300000 52:54:00:ab:cd:ef 192.168.1.20 printer 01:52:54:00:ab:cd:ef\n\
             1796300100 52:54:00:00:00:01 192.168.1.100 * *\ngarbage\n",
        );
        assert_eq!(leases.len(), 2);
        assert_eq!(leases[0].hostname.as_deref(), Some("printer"));
        assert_eq!(leases[1].hostname, None);
        assert_eq!(
            leases[1].address,
            "192.168.1.100".parse::<Ipv4Addr>().unwrap()
        );
    }
}
