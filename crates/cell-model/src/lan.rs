//! The cell's LAN port: its address (from the LAN's DHCP server, the default, or static)
//! and, on a static address only, the cell's own DHCP server with reservations. celld
//! applies the addressing through systemd-networkd (under the confirmation window: a wrong
//! address cuts the administrator off) and runs dnsmasq as the DHCP server.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::FieldError;

const MAX_RESERVATIONS: usize = 256;
const MAX_RESOLVERS: usize = 4;
const LEASE_RANGE: std::ops::RangeInclusive<u32> = 120..=604_800;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lan {
    #[serde(default)]
    pub addressing: LanAddressing,
    /// The cell's DHCP server (only with a static address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp_server: Option<DhcpServer>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum LanAddressing {
    /// Ask the LAN's DHCP server (the router), as a fresh cell does.
    #[default]
    Dhcp,
    Static {
        /// The cell's address with its prefix, e.g. `192.168.1.2/24`.
        address: String,
        gateway: Ipv4Addr,
        /// Resolvers for the cell itself (and cell-dns's upstreams, unless listed there).
        #[serde(default)]
        dns: Vec<IpAddr>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpServer {
    pub enabled: bool,
    /// The first address handed out, and how many.
    pub pool_start: Ipv4Addr,
    pub pool_size: u32,
    #[serde(default = "default_lease")]
    pub lease_seconds: u32,
    #[serde(default)]
    pub reservations: Vec<Reservation>,
}

fn default_lease() -> u32 {
    3600
}

/// A device that always gets the same address, and a name in the cell's zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub address: Ipv4Addr,
    /// A DNS label: `printer` answers as `printer.<zone>`.
    pub name: String,
}

/// `a.b.c.d/p` as the address and its prefix.
pub fn parse_address(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let (address, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("'{text}' has no prefix length; write it like 192.168.1.2/24"))?;
    let address: Ipv4Addr = address
        .parse()
        .map_err(|_| format!("'{address}' is not an IPv4 address"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (8..=30).contains(p))
        .ok_or_else(|| format!("'/{prefix}' is not a prefix length from /8 to /30"))?;
    let bits = u32::from(address);
    let mask = u32::MAX << (32 - u32::from(prefix));
    if bits & !mask == 0 || bits | mask == u32::MAX {
        return Err(format!(
            "{address} is the network's own or broadcast address"
        ));
    }
    if address.is_loopback() || address.is_multicast() || address.is_unspecified() {
        return Err(format!("{address} cannot be the cell's address"));
    }
    Ok((address, prefix))
}

fn within(address: Ipv4Addr, network: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX << (32 - u32::from(prefix));
    u32::from(address) & mask == u32::from(network) & mask
}

fn mac_problem(mac: &str) -> Option<String> {
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    (!ok).then(|| format!("'{mac}' is not a MAC address (aa:bb:cc:dd:ee:ff)"))
}

impl Lan {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// The static address and prefix, if the LAN has one.
    pub fn static_address(&self) -> Option<(Ipv4Addr, u8)> {
        match &self.addressing {
            LanAddressing::Static { address, .. } => parse_address(address).ok(),
            LanAddressing::Dhcp => None,
        }
    }

    /// The DHCP server, if it is on (it can only be, on a static address).
    pub fn dhcp_server_on(&self) -> Option<&DhcpServer> {
        self.dhcp_server.as_ref().filter(|server| server.enabled)
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        let own = match &self.addressing {
            LanAddressing::Dhcp => None,
            LanAddressing::Static {
                address,
                gateway,
                dns,
            } => {
                let (own, prefix) =
                    parse_address(address).map_err(|m| FieldError::new("addressing.address", m))?;
                if !within(*gateway, own, prefix) || *gateway == own {
                    return Err(FieldError::new(
                        "addressing.gateway",
                        format!("{gateway} must be another address in {address}'s network"),
                    ));
                }
                if dns.len() > MAX_RESOLVERS {
                    return Err(FieldError::new(
                        "addressing.dns",
                        format!("at most {MAX_RESOLVERS} resolvers"),
                    ));
                }
                if let Some(bad) = dns.iter().find(|a| a.is_unspecified() || a.is_multicast()) {
                    return Err(FieldError::new(
                        "addressing.dns",
                        format!("{bad} cannot be a resolver"),
                    ));
                }
                Some((own, prefix, *gateway))
            }
        };
        let Some(server) = self.dhcp_server_on() else {
            return Ok(());
        };
        let Some((own, prefix, gateway)) = own else {
            return Err(FieldError::new(
                "dhcp_server.enabled",
                "the DHCP server needs a static LAN address: set one first",
            ));
        };
        let at =
            |field: &str, message: String| FieldError::new(format!("dhcp_server.{field}"), message);
        let size = 1u64 << (32 - u32::from(prefix));
        let first = u64::from(u32::from(server.pool_start));
        let last = first + u64::from(server.pool_size).saturating_sub(1);
        let network = u64::from(u32::from(own) & (u32::MAX << (32 - u32::from(prefix))));
        if server.pool_size == 0 || server.pool_size > 65_534 {
            return Err(at("pool_size", "from 1 to 65534 addresses".into()));
        }
        if first <= network || last >= network + size - 1 {
            return Err(at(
                "pool_start",
                format!(
                    "the pool ({} addresses from {}) must lie inside {own}/{prefix}",
                    server.pool_size, server.pool_start
                ),
            ));
        }
        let in_pool = |a: Ipv4Addr| (first..=last).contains(&u64::from(u32::from(a)));
        if in_pool(own) || in_pool(gateway) {
            return Err(at(
                "pool_start",
                format!("the pool must not include the cell ({own}) or the gateway ({gateway})"),
            ));
        }
        if !LEASE_RANGE.contains(&server.lease_seconds) {
            return Err(at(
                "lease_seconds",
                format!(
                    "from {} to {} seconds",
                    LEASE_RANGE.start(),
                    LEASE_RANGE.end()
                ),
            ));
        }
        if server.reservations.len() > MAX_RESERVATIONS {
            return Err(at("reservations", format!("at most {MAX_RESERVATIONS}")));
        }
        for (index, reservation) in server.reservations.iter().enumerate() {
            let at = |field: &str, message: String| {
                FieldError::new(format!("dhcp_server.reservations.{index}.{field}"), message)
            };
            if let Some(problem) = mac_problem(&reservation.mac) {
                return Err(at("mac", problem));
            }
            if let Some(problem) = crate::names::label_problem(&reservation.name) {
                return Err(at("name", problem));
            }
            if crate::dns::SERVICE_LABELS.contains(&reservation.name.as_str()) {
                return Err(at(
                    "name",
                    format!("'{}' is one of the cell's services", reservation.name),
                ));
            }
            let address = reservation.address;
            if !within(address, own, prefix) || address == own || address == gateway {
                return Err(at(
                    "address",
                    format!("{address} must be a free address in {own}/{prefix} (not the cell's or the gateway's)"),
                ));
            }
            for other in &server.reservations[..index] {
                if other.mac.eq_ignore_ascii_case(&reservation.mac) {
                    return Err(at("mac", format!("{} is reserved twice", reservation.mac)));
                }
                if other.address == address {
                    return Err(at(
                        "address",
                        format!("{address} is reserved for {} already", other.name),
                    ));
                }
                if other.name == reservation.name {
                    return Err(at("name", format!("'{}' is taken", reservation.name)));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lan(json: serde_json::Value) -> Lan {
        serde_json::from_value(json).unwrap()
    }

    fn static_with(server: serde_json::Value) -> Lan {
        lan(serde_json::json!({
            "addressing": {"mode": "static", "address": "192.168.1.2/24", "gateway": "192.168.1.1"},
            "dhcp_server": server
        }))
    }

    #[test]
    fn a_static_lan_with_a_dhcp_server_passes() {
        let good = static_with(serde_json::json!({
            "enabled": true, "pool_start": "192.168.1.100", "pool_size": 50,
            "reservations": [{"mac": "52:54:00:12:34:56", "address": "192.168.1.20", "name": "printer"}]
        }));
        assert_eq!(good.validate(), Ok(()));
        assert_eq!(
            good.static_address(),
            Some(("192.168.1.2".parse().unwrap(), 24))
        );
        assert!(Lan::default().is_default());
    }

    #[test]
    fn each_refusal_names_its_field() {
        let cases = [
            (
                lan(
                    serde_json::json!({"addressing": {"mode": "static", "address": "192.168.1.0/24", "gateway": "192.168.1.1"}}),
                ),
                "addressing.address",
            ),
            (
                lan(
                    serde_json::json!({"addressing": {"mode": "static", "address": "192.168.1.2/24", "gateway": "10.0.0.1"}}),
                ),
                "addressing.gateway",
            ),
            (
                lan(
                    serde_json::json!({"dhcp_server": {"enabled": true, "pool_start": "192.168.1.100", "pool_size": 10}}),
                ),
                "dhcp_server.enabled",
            ),
            (
                static_with(
                    serde_json::json!({"enabled": true, "pool_start": "192.168.2.100", "pool_size": 10}),
                ),
                "dhcp_server.pool_start",
            ),
            (
                static_with(
                    serde_json::json!({"enabled": true, "pool_start": "192.168.1.1", "pool_size": 10}),
                ),
                "dhcp_server.pool_start",
            ),
            (
                static_with(
                    serde_json::json!({"enabled": true, "pool_start": "192.168.1.100", "pool_size": 10, "lease_seconds": 5}),
                ),
                "dhcp_server.lease_seconds",
            ),
            (
                static_with(
                    serde_json::json!({"enabled": true, "pool_start": "192.168.1.100", "pool_size": 10,
                    "reservations": [{"mac": "nope", "address": "192.168.1.20", "name": "a"}]}),
                ),
                "dhcp_server.reservations.0.mac",
            ),
            (
                static_with(
                    serde_json::json!({"enabled": true, "pool_start": "192.168.1.100", "pool_size": 10,
                    "reservations": [{"mac": "52:54:00:12:34:56", "address": "192.168.1.2", "name": "a"}]}),
                ),
                "dhcp_server.reservations.0.address",
            ),
            (
                static_with(
                    serde_json::json!({"enabled": true, "pool_start": "192.168.1.100", "pool_size": 10,
                    "reservations": [{"mac": "52:54:00:12:34:56", "address": "192.168.1.20", "name": "files"}]}),
                ),
                "dhcp_server.reservations.0.name",
            ),
            (
                static_with(
                    serde_json::json!({"enabled": true, "pool_start": "192.168.1.100", "pool_size": 10,
                    "reservations": [
                        {"mac": "52:54:00:12:34:56", "address": "192.168.1.20", "name": "a"},
                        {"mac": "52:54:00:12:34:57", "address": "192.168.1.20", "name": "b"}]}),
                ),
                "dhcp_server.reservations.1.address",
            ),
        ];
        for (lan, field) in cases {
            let error = lan.validate().unwrap_err();
            assert_eq!(error.field, field, "{error}");
        }
    }
}
