//! The settings tree: the single source of truth every generated file, netlink object and
//! firewall rule is derived from. Later work adds its sections here (network, VPN, DNS…).

use serde::{Deserialize, Serialize};

use crate::names::{CellName, DomainName, Timezone};

/// The internal top-level domain of cells that have no domain of their own.
pub const INTERNAL_TLD: &str = "cell";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub identity: Identity,
    #[serde(default)]
    pub services: Services,
}

/// Who the cell is: its name, its domain and its clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub cell_name: CellName,
    pub domain: DomainMode,
    pub timezone: Timezone,
}

/// Where the cell's names live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum DomainMode {
    /// `<cell_name>.cell`, resolvable by the cell's own DNS for its LAN and VPN clients.
    Internal,
    /// A domain the user owns and points at the cell.
    Own { domain: DomainName },
    /// A name at a dynamic DNS provider, kept pointed at the cell's public address.
    Dynamic {
        provider: DdnsProvider,
        hostname: DomainName,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DdnsProvider {
    Cloudflare,
    Duckdns,
    Noip,
    Freedns,
    /// RFC 2136 dynamic updates to the user's own DNS server.
    Rfc2136,
    /// A generic HTTP update URL.
    Http,
}

/// Which of the cell's digital services are switched on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Services {
    #[serde(default)]
    pub calendar: bool,
    #[serde(default)]
    pub files: bool,
    #[serde(default)]
    pub mail: bool,
    #[serde(default)]
    pub webdav: bool,
}

impl Default for Settings {
    /// A cell fresh from the image, before its setup wizard: named `cell`, internal
    /// domain, UTC, every optional service off.
    fn default() -> Self {
        Self {
            identity: Identity {
                cell_name: CellName::parse("cell").expect("'cell' is a valid cell name"),
                domain: DomainMode::Internal,
                timezone: Timezone::utc(),
            },
            services: Services::default(),
        }
    }
}

impl Settings {
    /// The DNS zone the cell is authoritative for.
    pub fn zone(&self) -> String {
        match &self.identity.domain {
            DomainMode::Internal => format!("{}.{INTERNAL_TLD}", self.identity.cell_name),
            DomainMode::Own { domain } => domain.to_string(),
            DomainMode::Dynamic { hostname, .. } => hostname.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cell_lives_in_the_internal_zone() {
        let settings = Settings::default();
        assert_eq!(settings.zone(), "cell.cell");
        assert_eq!(settings.identity.timezone.as_str(), "UTC");
    }

    #[test]
    fn domain_modes_have_a_tagged_wire_form() {
        let own: DomainMode =
            serde_json::from_value(serde_json::json!({"mode": "own", "domain": "Example.org"}))
                .unwrap();
        assert_eq!(
            own,
            DomainMode::Own {
                domain: DomainName::parse("example.org").unwrap()
            }
        );
        let dynamic = serde_json::json!({"mode": "dynamic", "provider": "duckdns", "hostname": "me.duckdns.org"});
        assert!(serde_json::from_value::<DomainMode>(dynamic).is_ok());
        let unknown = serde_json::json!({"mode": "dynamic", "provider": "acme-dns", "hostname": "me.example.org"});
        assert!(serde_json::from_value::<DomainMode>(unknown).is_err());
    }

    #[test]
    fn unknown_fields_are_refused_not_dropped() {
        let mut json = serde_json::to_value(Settings::default()).unwrap();
        json["identity"]["colour"] = "blue".into();
        let err = serde_json::from_value::<Settings>(json).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn zone_follows_the_domain_mode() {
        let mut settings = Settings::default();
        settings.identity.cell_name = CellName::parse("home").unwrap();
        assert_eq!(settings.zone(), "home.cell");
        settings.identity.domain = DomainMode::Own {
            domain: DomainName::parse("family.example").unwrap(),
        };
        assert_eq!(settings.zone(), "family.example");
    }
}
