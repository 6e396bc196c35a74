//! The settings tree: the single source of truth every generated file, netlink object and
//! firewall rule is derived from. Later work adds its sections here (network, VPN, DNS…).

use serde::{Deserialize, Serialize};

use crate::names::{CellName, DomainName, Timezone};
use crate::users::{User, Username};

/// The internal top-level domain of cells that have no domain of their own.
pub const INTERNAL_TLD: &str = "cell";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Set once, by the first-boot wizard; until then the cell can be claimed.
    #[serde(default)]
    pub setup_complete: bool,
    pub identity: Identity,
    #[serde(default)]
    pub services: Services,
    #[serde(default)]
    pub users: Vec<User>,
    /// The WireGuard server and its peers; celld creates it, with a random ULA prefix,
    /// the first time it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpn: Option<crate::vpn::Vpn>,
    #[serde(default, skip_serializing_if = "Recovery::is_default")]
    pub recovery: Recovery,
    #[serde(
        default,
        skip_serializing_if = "crate::update::UpdateSettings::is_default"
    )]
    pub update: crate::update::UpdateSettings,
    /// Records people add to the cell's zone.
    #[serde(default, skip_serializing_if = "crate::dns::Dns::is_default")]
    pub dns: crate::dns::Dns,
    /// The LAN port's addressing and the cell's DHCP server.
    #[serde(default, skip_serializing_if = "crate::lan::Lan::is_default")]
    pub lan: crate::lan::Lan,
    /// Where the cell's clock comes from; whether it serves time.
    #[serde(default, skip_serializing_if = "crate::ntp::Ntp::is_default")]
    pub ntp: crate::ntp::Ntp,
    /// Public certificates from an ACME CA for a cell with a public name.
    #[serde(default, skip_serializing_if = "crate::acme::Acme::is_default")]
    pub acme: crate::acme::Acme,
    /// How people log in to the services (mail, calendar, files).
    #[serde(default, skip_serializing_if = "ServiceLogins::is_default")]
    pub service_logins: ServiceLogins,
    /// The outbound mail relay.
    #[serde(default, skip_serializing_if = "crate::mail::MailSettings::is_default")]
    pub mail: crate::mail::MailSettings,
}

/// What a service login (IMAP, SMTP, CalDAV, WebDAV) accepts besides app passwords.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLogins {
    /// The account password works too, for accounts without a second factor (with one,
    /// only app passwords do: a service login cannot ask for the code).
    #[serde(default = "yes")]
    pub account_password: bool,
}

fn yes() -> bool {
    true
}

impl Default for ServiceLogins {
    fn default() -> Self {
        Self {
            account_password: true,
        }
    }
}

impl ServiceLogins {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// The recovery console's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// argon2id hash of the password that opens a root shell on the console; without it,
    /// the person at the console proves presence by typing back a code shown there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell_password_hash: Option<crate::users::Secret>,
}

impl Recovery {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
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
#[serde(try_from = "DomainModeWire", into = "DomainModeWire")]
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
enum Mode {
    Internal,
    Own,
    Dynamic,
}

/// The wire form `{"mode": "own", "domain": "example.org"}`. A flat struct rather than an
/// internally tagged enum, because serde buffers tagged content and then loses the path
/// of an invalid field: here `identity.domain.domain` is named, not `identity.domain`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainModeWire {
    mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domain: Option<DomainName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<DdnsProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hostname: Option<DomainName>,
}

impl TryFrom<DomainModeWire> for DomainMode {
    type Error = String;

    fn try_from(wire: DomainModeWire) -> Result<Self, String> {
        let unused = |field: &str, present: bool| {
            if present {
                Err(
                    format!("field `{field}` does not belong to mode `{:?}`", wire.mode)
                        .to_lowercase(),
                )
            } else {
                Ok(())
            }
        };
        match wire.mode {
            Mode::Internal => {
                unused("domain", wire.domain.is_some())?;
                unused("provider", wire.provider.is_some())?;
                unused("hostname", wire.hostname.is_some())?;
                Ok(Self::Internal)
            }
            Mode::Own => {
                unused("provider", wire.provider.is_some())?;
                unused("hostname", wire.hostname.is_some())?;
                let domain = wire.domain.ok_or("missing field `domain`")?;
                Ok(Self::Own { domain })
            }
            Mode::Dynamic => {
                unused("domain", wire.domain.is_some())?;
                let provider = wire.provider.ok_or("missing field `provider`")?;
                let hostname = wire.hostname.ok_or("missing field `hostname`")?;
                Ok(Self::Dynamic { provider, hostname })
            }
        }
    }
}

impl From<DomainMode> for DomainModeWire {
    fn from(mode: DomainMode) -> Self {
        let empty = |mode| Self {
            mode,
            domain: None,
            provider: None,
            hostname: None,
        };
        match mode {
            DomainMode::Internal => empty(Mode::Internal),
            DomainMode::Own { domain } => Self {
                domain: Some(domain),
                ..empty(Mode::Own)
            },
            DomainMode::Dynamic { provider, hostname } => Self {
                provider: Some(provider),
                hostname: Some(hostname),
                ..empty(Mode::Dynamic)
            },
        }
    }
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
            setup_complete: false,
            identity: Identity {
                cell_name: CellName::parse("cell").expect("'cell' is a valid cell name"),
                domain: DomainMode::Internal,
                timezone: Timezone::utc(),
            },
            services: Services::default(),
            users: Vec::new(),
            vpn: None,
            recovery: Recovery::default(),
            update: Default::default(),
            dns: Default::default(),
            ntp: Default::default(),
            lan: Default::default(),
            acme: Default::default(),
            service_logins: Default::default(),
            mail: Default::default(),
        }
    }
}

impl Settings {
    pub fn user(&self, name: &Username) -> Option<&User> {
        self.users.iter().find(|u| &u.name == name)
    }

    pub fn user_mut(&mut self, name: &Username) -> Option<&mut User> {
        self.users.iter_mut().find(|u| &u.name == name)
    }

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
