//! The cell's DNS settings: records a person adds to the cell's zone beside the names the
//! cell gives itself and its services. Validated here, so every stored record is one the
//! zone can serve: each refusal names its field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Names the cell answers itself: records may not take them.
pub const SERVICE_LABELS: &[&str] = &["calendar", "files", "webdav", "mail"];
const MAX_NAME: usize = 200;
const MAX_TXT: usize = 1024;
pub const DEFAULT_TTL: u32 = 300;
const TTL_RANGE: std::ops::RangeInclusive<u32> = 30..=86_400;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    #[serde(default)]
    pub records: Vec<DnsRecord>,
    /// Resolvers asked for names outside the cell's zone; none listed: the ones the
    /// uplink's DHCP server gave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<IpAddr>,
    /// Zones another resolver answers (a linked cell's), asked there instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_zones: Vec<ForwardZone>,
    /// Ask the listed upstreams over DNS-over-TLS (port 853), checking their certificate
    /// against this name (e.g. `dns.quad9.net`), so the ISP does not see the queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_tls: Option<String>,
}

/// Names under `zone` are asked of `servers` (port 53).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardZone {
    pub zone: String,
    pub servers: Vec<IpAddr>,
}

/// At most this many upstreams, and servers per forwarding zone.
pub const MAX_SERVERS: usize = 4;
const MAX_FORWARD_ZONES: usize = 32;

fn server_problem(address: &IpAddr) -> Option<String> {
    (address.is_unspecified() || address.is_multicast() || address.is_loopback())
        .then(|| format!("{address} cannot be a DNS server's address"))
}

fn servers_problem(field: &str, servers: &[IpAddr]) -> Result<(), FieldError> {
    if servers.len() > MAX_SERVERS {
        return Err(FieldError::new(
            field,
            format!("at most {MAX_SERVERS} servers"),
        ));
    }
    for (index, server) in servers.iter().enumerate() {
        if let Some(problem) = server_problem(server) {
            return Err(FieldError::new(format!("{field}.{index}"), problem));
        }
        if servers[..index].contains(server) {
            return Err(FieldError::new(
                format!("{field}.{index}"),
                format!("{server} is listed twice"),
            ));
        }
    }
    Ok(())
}

/// `name` (absolute or not) is `zone` or below it.
pub fn is_within(name: &str, zone: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    name == zone || name.ends_with(&format!(".{zone}"))
}

impl Dns {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// Every record well formed, none at a service's name, no CNAME beside other data;
    /// servers that can be asked; forwarding zones outside the cell's own `zone`.
    pub fn validate(&self, zone: &str) -> Result<(), FieldError> {
        servers_problem("upstreams", &self.upstreams)?;
        if let Some(name) = &self.upstream_tls {
            if let Err(problem) = crate::names::DomainName::parse(name) {
                return Err(FieldError::new(
                    "upstream_tls",
                    format!("'{name}' is not the name on the upstreams' certificate: {problem}"),
                ));
            }
            if self.upstreams.is_empty() {
                return Err(FieldError::new(
                    "upstream_tls",
                    "list the upstreams that serve DNS-over-TLS (the uplink's DHCP does not say which do)",
                ));
            }
        }
        if self.forward_zones.len() > MAX_FORWARD_ZONES {
            return Err(FieldError::new(
                "forward_zones",
                format!("at most {MAX_FORWARD_ZONES} zones"),
            ));
        }
        for (index, forward) in self.forward_zones.iter().enumerate() {
            let at = |e: FieldError| e.at(&format!("forward_zones.{index}"));
            if let Some(problem) = target_problem(&forward.zone) {
                return Err(at(FieldError::new("zone", problem)));
            }
            if is_within(&forward.zone, zone) || is_within(zone, &forward.zone) {
                return Err(at(FieldError::new(
                    "zone",
                    format!(
                        "'{}' overlaps the cell's own zone {zone}, which the cell answers itself",
                        forward.zone
                    ),
                )));
            }
            if self.forward_zones[..index].iter().any(|other| {
                is_within(&other.zone, &forward.zone) && is_within(&forward.zone, &other.zone)
            }) {
                return Err(at(FieldError::new(
                    "zone",
                    format!("'{}' is listed twice", forward.zone),
                )));
            }
            if forward.servers.is_empty() {
                return Err(at(FieldError::new("servers", "at least one server")));
            }
            servers_problem("servers", &forward.servers).map_err(at)?;
        }
        for (index, record) in self.records.iter().enumerate() {
            let at = |e: FieldError| e.at(&format!("records.{index}"));
            record.validate().map_err(at)?;
            let clash = self.records.iter().enumerate().any(|(other, r)| {
                other != index
                    && r.name == record.name
                    && (matches!(r.data, RecordData::Cname { .. })
                        || matches!(record.data, RecordData::Cname { .. }))
            });
            if clash {
                return Err(at(FieldError::new(
                    "name",
                    format!(
                        "'{}' has a CNAME: a name with a CNAME can have no other record",
                        record.name
                    ),
                )));
            }
        }
        Ok(())
    }
}

/// One record: its name relative to the zone (`@` for the zone itself), TTL and data.
/// (serde cannot refuse unknown fields beside a flattened enum.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub name: String,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    #[serde(flatten)]
    pub data: RecordData,
}

fn default_ttl() -> u32 {
    DEFAULT_TTL
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum RecordData {
    A {
        address: Ipv4Addr,
    },
    Aaaa {
        address: Ipv6Addr,
    },
    Cname {
        target: String,
    },
    Txt {
        text: String,
    },
    Mx {
        preference: u16,
        exchange: String,
    },
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
}

/// The cell's zone as celld renders it from the settings, per generation, into the file
/// cell-dns reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneSnapshot {
    /// The zone's origin, e.g. `home.cell.`.
    pub origin: String,
    /// The settings generation it was rendered from (the SOA serial).
    pub serial: u32,
    /// TTL of every record.
    pub ttl: u32,
    /// Names in the zone: the apex (`""`) and one per service.
    pub names: Vec<ZoneName>,
    /// Networks whose sources get the VPN view: (network address, prefix length).
    pub vpn_networks: Vec<(IpAddr, u8)>,
    /// VPN peers and the services each may reach.
    pub peers: Vec<PeerAccess>,
    /// The records people added, the same in every view.
    #[serde(default)]
    pub records: Vec<DnsRecord>,
    /// Where names outside the zone are asked (none: they are refused).
    #[serde(default)]
    pub upstreams: Vec<std::net::SocketAddr>,
    /// Zones asked of other servers than the upstreams (linked cells).
    #[serde(default)]
    pub forward_zones: Vec<ForwardTo>,
    /// The addresses to answer on (port from cell-dns's command line): the cell's own on
    /// its LAN and VPN, never a public one.
    #[serde(default)]
    pub listen: Vec<IpAddr>,
    /// The upstreams are asked over TLS, their certificates checked against this name.
    #[serde(default)]
    pub upstream_tls: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardTo {
    /// Absolute, e.g. `other.cell.`.
    pub zone: String,
    pub servers: Vec<std::net::SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneName {
    /// Relative to the origin: `""` for the apex, `calendar`, `files`.
    pub label: String,
    /// The service this name is for (None: the cell itself, visible to everyone).
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub lan: Vec<IpAddr>,
    #[serde(default)]
    pub vpn: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAccess {
    pub addresses: Vec<IpAddr>,
    pub services: Vec<String>,
}

fn name_problem(name: &str) -> Option<String> {
    if name == "@" {
        return None;
    }
    if name.ends_with('.') {
        return Some(format!(
            "'{name}' is an absolute name: give it relative to the cell's zone ('www', or '@' for the zone itself); records outside the zone are not the cell's to serve"
        ));
    }
    if name.is_empty() || name.len() > MAX_NAME {
        return Some(format!("must be 1 to {MAX_NAME} characters long"));
    }
    name.split('.').find_map(|label| {
        if label.is_empty() || label.len() > 63 {
            return Some(format!("'{name}' has an empty or over-long label"));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')))
        {
            return Some(format!(
                "'{name}' contains '{bad}'; only lower-case letters, digits, '-' and '_' are allowed"
            ));
        }
        (label.starts_with('-') || label.ends_with('-'))
            .then(|| format!("'{label}' must not start or end with a hyphen"))
    })
}

/// A target name (CNAME, MX, SRV): absolute, anywhere.
fn target_problem(target: &str) -> Option<String> {
    let name = target.strip_suffix('.').unwrap_or(target);
    if name.is_empty() || name.len() > 253 {
        return Some("must be a domain name".to_owned());
    }
    name.split('.').find_map(|label| {
        (label.is_empty()
            || label.len() > 63
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
        .then(|| format!("'{target}' is not a domain name"))
    })
}

/// The record types people may add, as they are written.
pub const RECORD_TYPES: [&str; 6] = ["A", "AAAA", "CNAME", "TXT", "MX", "SRV"];

impl RecordData {
    /// The type as written (`A`, `MX`…).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::A { .. } => "A",
            Self::Aaaa { .. } => "AAAA",
            Self::Cname { .. } => "CNAME",
            Self::Txt { .. } => "TXT",
            Self::Mx { .. } => "MX",
            Self::Srv { .. } => "SRV",
        }
    }

    /// The value as a person writes it: an address, a name, the text, `10 mail.example.org`
    /// (MX) or `1 5 5060 sip.example.org` (SRV). [`RecordData::parse`] reads it back.
    pub fn value_text(&self) -> String {
        match self {
            Self::A { address } => address.to_string(),
            Self::Aaaa { address } => address.to_string(),
            Self::Cname { target } => target.clone(),
            Self::Txt { text } => text.clone(),
            Self::Mx {
                preference,
                exchange,
            } => format!("{preference} {exchange}"),
            Self::Srv {
                priority,
                weight,
                port,
                target,
            } => format!("{priority} {weight} {port} {target}"),
        }
    }

    /// A record's data from its type and value as written (see [`RecordData::value_text`]);
    /// a refusal names `kind` or `value`. Names are checked by [`Dns::validate`].
    pub fn parse(kind: &str, value: &str) -> Result<Self, FieldError> {
        let value = value.trim();
        let words: Vec<&str> = value.split_whitespace().collect();
        let number = |word: &str, what: &str| -> Result<u16, FieldError> {
            word.parse().map_err(|_| {
                FieldError::new(
                    "value",
                    format!("{what} must be a number from 0 to 65535, not '{word}'"),
                )
            })
        };
        let address_problem = |kind: &str| {
            FieldError::new(
                "value",
                format!(
                    "'{value}' is not an {} address",
                    if kind == "A" { "IPv4" } else { "IPv6" }
                ),
            )
        };
        match (kind.to_ascii_uppercase().as_str(), words.as_slice()) {
            ("A", [one]) => Ok(Self::A {
                address: one.parse().map_err(|_| address_problem("A"))?,
            }),
            ("AAAA", [one]) => Ok(Self::Aaaa {
                address: one.parse().map_err(|_| address_problem("AAAA"))?,
            }),
            ("CNAME", [one]) => Ok(Self::Cname {
                target: (*one).to_owned(),
            }),
            ("TXT", _) if !value.is_empty() => Ok(Self::Txt {
                text: value.to_owned(),
            }),
            ("MX", [preference, exchange]) => Ok(Self::Mx {
                preference: number(preference, "the preference")?,
                exchange: (*exchange).to_owned(),
            }),
            ("SRV", [priority, weight, port, target]) => Ok(Self::Srv {
                priority: number(priority, "the priority")?,
                weight: number(weight, "the weight")?,
                port: number(port, "the port")?,
                target: (*target).to_owned(),
            }),
            ("A", _) => Err(FieldError::new("value", "an A record is one IPv4 address")),
            ("AAAA", _) => Err(FieldError::new(
                "value",
                "an AAAA record is one IPv6 address",
            )),
            ("CNAME", _) => Err(FieldError::new("value", "a CNAME record is one name")),
            ("TXT", _) => Err(FieldError::new("value", "a TXT record needs text")),
            ("MX", _) => Err(FieldError::new(
                "value",
                "an MX record is a preference and a name: 10 mail.example.org",
            )),
            ("SRV", _) => Err(FieldError::new(
                "value",
                "an SRV record is priority, weight, port and a name: 1 5 5060 sip.example.org",
            )),
            _ => Err(FieldError::new(
                "kind",
                format!(
                    "'{kind}' is not a record type the cell serves ({})",
                    RECORD_TYPES.join(", ")
                ),
            )),
        }
    }
}

impl DnsRecord {
    fn validate(&self) -> Result<(), FieldError> {
        if let Some(problem) = name_problem(&self.name) {
            return Err(FieldError::new("name", problem));
        }
        if SERVICE_LABELS.contains(&self.name.as_str()) {
            return Err(FieldError::new(
                "name",
                format!("'{}' is the name of one of the cell's services", self.name),
            ));
        }
        if !TTL_RANGE.contains(&self.ttl) {
            return Err(FieldError::new(
                "ttl",
                format!(
                    "must be between {} and {} seconds",
                    TTL_RANGE.start(),
                    TTL_RANGE.end()
                ),
            ));
        }
        match &self.data {
            RecordData::A { .. } | RecordData::Aaaa { .. } => Ok(()),
            RecordData::Cname { target } if self.name == "@" => Err(FieldError::new(
                "type",
                format!("the zone itself cannot be a CNAME (to {target})"),
            )),
            RecordData::Cname { target } => check_target("target", target),
            RecordData::Txt { text } if text.is_empty() || text.len() > MAX_TXT => Err(
                FieldError::new("text", format!("must be 1 to {MAX_TXT} characters long")),
            ),
            RecordData::Txt { .. } => Ok(()),
            RecordData::Mx { exchange, .. } => check_target("exchange", exchange),
            RecordData::Srv { target, .. } => check_target("target", target),
        }
    }
}

fn check_target(field: &str, target: &str) -> Result<(), FieldError> {
    match target_problem(target) {
        Some(problem) => Err(FieldError::new(field, problem)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(json: serde_json::Value) -> Dns {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn good_records_pass() {
        let good = dns(serde_json::json!({"records": [
            {"name": "@", "type": "MX", "preference": 10, "exchange": "mail.example.org."},
            {"name": "printer", "type": "A", "address": "192.168.1.9"},
            {"name": "printer", "type": "AAAA", "address": "fd00::9", "ttl": 60},
            {"name": "www", "type": "CNAME", "target": "printer.home.cell."},
            {"name": "_dmarc", "type": "TXT", "text": "v=DMARC1; p=none"},
            {"name": "_sip._tcp", "type": "SRV", "priority": 1, "weight": 5, "port": 5060, "target": "printer.home.cell"}
        ]}));
        assert_eq!(good.validate("home.cell"), Ok(()));
        assert_eq!(good.records[1].ttl, DEFAULT_TTL);
    }

    #[test]
    fn each_refusal_names_its_field() {
        for (record, field) in [
            (
                serde_json::json!({"name": "Printer", "type": "A", "address": "192.168.1.9"}),
                "records.0.name",
            ),
            (
                serde_json::json!({"name": "x.example.org.", "type": "A", "address": "192.168.1.9"}),
                "records.0.name",
            ),
            (
                serde_json::json!({"name": "calendar", "type": "A", "address": "192.168.1.9"}),
                "records.0.name",
            ),
            (
                serde_json::json!({"name": "a", "type": "A", "address": "192.168.1.9", "ttl": 5}),
                "records.0.ttl",
            ),
            (
                serde_json::json!({"name": "a", "type": "CNAME", "target": "bad target"}),
                "records.0.target",
            ),
            (
                serde_json::json!({"name": "@", "type": "CNAME", "target": "x.org"}),
                "records.0.type",
            ),
            (
                serde_json::json!({"name": "a", "type": "TXT", "text": ""}),
                "records.0.text",
            ),
        ] {
            let error = dns(serde_json::json!({"records": [record]}))
                .validate("home.cell")
                .unwrap_err();
            assert_eq!(error.field, field, "{error}");
        }
        let beside = dns(serde_json::json!({"records": [
            {"name": "www", "type": "A", "address": "192.168.1.9"},
            {"name": "www", "type": "CNAME", "target": "x.org"}
        ]}));
        let error = beside.validate("home.cell").unwrap_err();
        assert_eq!(error.field, "records.0.name");
        assert!(error.message.contains("CNAME"), "{error}");
    }

    #[test]
    fn upstreams_and_forwarding_zones_are_checked() {
        let good = dns(serde_json::json!({
            "upstreams": ["192.0.2.53", "2001:db8::53"],
            "forward_zones": [{"zone": "other.cell", "servers": ["10.88.0.1"]}]
        }));
        assert_eq!(good.validate("home.cell"), Ok(()));
        for (settings, field) in [
            (
                serde_json::json!({"upstreams": ["127.0.0.1"]}),
                "upstreams.0",
            ),
            (
                serde_json::json!({"upstream_tls": "dns.quad9.net"}),
                "upstream_tls",
            ),
            (
                serde_json::json!({"upstreams": ["9.9.9.9"], "upstream_tls": "not a name"}),
                "upstream_tls",
            ),
            (
                serde_json::json!({"upstreams": ["192.0.2.1", "192.0.2.1"]}),
                "upstreams.1",
            ),
            (
                serde_json::json!({"upstreams": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"]}),
                "upstreams",
            ),
            (
                serde_json::json!({"forward_zones": [{"zone": "kids.home.cell", "servers": ["10.88.0.1"]}]}),
                "forward_zones.0.zone",
            ),
            (
                serde_json::json!({"forward_zones": [{"zone": "cell", "servers": ["10.88.0.1"]}]}),
                "forward_zones.0.zone",
            ),
            (
                serde_json::json!({"forward_zones": [{"zone": "other.cell", "servers": []}]}),
                "forward_zones.0.servers",
            ),
            (
                serde_json::json!({"forward_zones": [
                    {"zone": "other.cell", "servers": ["10.88.0.1"]},
                    {"zone": "Other.cell.", "servers": ["10.88.0.2"]}
                ]}),
                "forward_zones.1.zone",
            ),
            (
                serde_json::json!({"forward_zones": [{"zone": "a b", "servers": ["10.88.0.1"]}]}),
                "forward_zones.0.zone",
            ),
        ] {
            let error = dns(settings).validate("home.cell").unwrap_err();
            assert_eq!(error.field, field, "{error}");
        }
    }

    #[test]
    fn values_as_written_read_back() {
        for (kind, value) in [
            ("A", "192.168.1.9"),
            ("AAAA", "fd00::9"),
            ("CNAME", "printer.home.cell."),
            ("TXT", "v=spf1 -all"),
            ("MX", "10 mail.example.org."),
            ("SRV", "1 5 5060 sip.example.org."),
        ] {
            let data = RecordData::parse(kind, value).unwrap();
            assert_eq!((data.kind(), data.value_text().as_str()), (kind, value));
        }
        assert_eq!(
            RecordData::parse("mx", "ten mail").unwrap_err().field,
            "value"
        );
        assert_eq!(
            RecordData::parse("A", "1.2.3.4 5.6.7.8").unwrap_err().field,
            "value"
        );
        assert_eq!(
            RecordData::parse("A", "fd00::1").unwrap_err().field,
            "value"
        );
        assert_eq!(RecordData::parse("NAPTR", "x").unwrap_err().field, "kind");
    }
}
