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
}

impl Dns {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// Every record well formed, none at a service's name, no CNAME beside other data.
    pub fn validate(&self) -> Result<(), FieldError> {
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
        assert_eq!(good.validate(), Ok(()));
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
                .validate()
                .unwrap_err();
            assert_eq!(error.field, field, "{error}");
        }
        let beside = dns(serde_json::json!({"records": [
            {"name": "www", "type": "A", "address": "192.168.1.9"},
            {"name": "www", "type": "CNAME", "target": "x.org"}
        ]}));
        let error = beside.validate().unwrap_err();
        assert_eq!(error.field, "records.0.name");
        assert!(error.message.contains("CNAME"), "{error}");
    }
}
