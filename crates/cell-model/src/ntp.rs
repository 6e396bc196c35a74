//! The cell's time: where its clock comes from, and whether it serves time to the LAN and
//! the VPN. celld renders chrony's configuration from this.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::names::DomainName;
use crate::FieldError;

/// Asked when no server is listed.
pub const DEFAULT_POOL: &str = "2.debian.pool.ntp.org";
const MAX_SERVERS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ntp {
    /// Time sources; none listed: the Debian pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<NtpServer>,
    /// Serve time to the cell's LAN and VPN (never beyond them).
    #[serde(default = "serve_by_default")]
    pub serve: bool,
}

fn serve_by_default() -> bool {
    true
}

impl Default for Ntp {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            serve: true,
        }
    }
}

/// One time source: a host name or address; a pool stands for several servers; NTS
/// authenticates the time (the server must offer it, as e.g. time.cloudflare.com does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtpServer {
    pub host: String,
    #[serde(default)]
    pub pool: bool,
    #[serde(default)]
    pub nts: bool,
}

fn host_problem(host: &str) -> Option<String> {
    if host
        .parse::<IpAddr>()
        .is_ok_and(|a| a.is_unspecified() || a.is_multicast())
    {
        return Some(format!("{host} cannot be a time server's address"));
    }
    if host.parse::<IpAddr>().is_ok() {
        return None;
    }
    DomainName::parse(host)
        .err()
        .map(|problem| format!("'{host}' is neither an address nor a host name: {problem}"))
}

impl Ntp {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        if self.servers.len() > MAX_SERVERS {
            return Err(FieldError::new(
                "servers",
                format!("at most {MAX_SERVERS} servers"),
            ));
        }
        for (index, server) in self.servers.iter().enumerate() {
            let at = |message: String| FieldError::new(format!("servers.{index}.host"), message);
            if let Some(problem) = host_problem(&server.host) {
                return Err(at(problem));
            }
            if server.nts && server.host.parse::<IpAddr>().is_ok() {
                return Err(at(
                    "NTS checks the server's certificate against its name: give a host name".into(),
                ));
            }
            if self.servers[..index]
                .iter()
                .any(|other| other.host.eq_ignore_ascii_case(&server.host))
            {
                return Err(at(format!("{} is listed twice", server.host)));
            }
        }
        Ok(())
    }

    /// The sources in force: the listed ones, or the default pool.
    pub fn sources(&self) -> Vec<NtpServer> {
        if self.servers.is_empty() {
            vec![NtpServer {
                host: DEFAULT_POOL.to_owned(),
                pool: true,
                nts: false,
            }]
        } else {
            self.servers.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ntp(json: serde_json::Value) -> Ntp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_serve_and_use_the_pool() {
        let default = ntp(serde_json::json!({}));
        assert!(default.serve && default.is_default());
        assert_eq!(default.sources()[0].host, DEFAULT_POOL);
        assert!(default.sources()[0].pool);
    }

    #[test]
    fn servers_are_checked() {
        let good = ntp(serde_json::json!({"servers": [
            {"host": "time.cloudflare.com", "nts": true},
            {"host": "192.0.2.123"},
            {"host": "pool.ntp.org", "pool": true}
        ]}));
        assert_eq!(good.validate(), Ok(()));
        for (servers, field) in [
            (
                serde_json::json!([{"host": "not a host"}]),
                "servers.0.host",
            ),
            (
                serde_json::json!([{"host": "192.0.2.1", "nts": true}]),
                "servers.0.host",
            ),
            (
                serde_json::json!([{"host": "a.example"}, {"host": "A.example"}]),
                "servers.1.host",
            ),
            (serde_json::json!([{"host": "0.0.0.0"}]), "servers.0.host"),
        ] {
            let error = ntp(serde_json::json!({"servers": servers}))
                .validate()
                .unwrap_err();
            assert_eq!(error.field, field, "{error}");
        }
    }
}
