//! Public certificates through ACME (RFC 8555) for a cell with a public name: its own
//! domain or a dynamic-DNS name. Off until an administrator turns it on (which agrees to
//! the CA's terms); the cell's own root keeps serving every name meanwhile.

use serde::{Deserialize, Serialize};

use crate::names::DomainName;
use crate::settings::DomainMode;
use crate::FieldError;

/// Let's Encrypt's production directory, asked when no other is given.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
const MAX_URL: usize = 512;
const MAX_EMAIL: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acme {
    /// Ask the CA for certificates (accepting its terms of service).
    #[serde(default)]
    pub enabled: bool,
    /// The CA's directory URL (https).
    #[serde(default = "default_directory")]
    pub directory: String,
    /// Where the CA may write about expiring certificates; none: no contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub challenge: Challenge,
}

fn default_directory() -> String {
    LETS_ENCRYPT.to_owned()
}

impl Default for Acme {
    fn default() -> Self {
        Self {
            enabled: false,
            directory: default_directory(),
            email: None,
            challenge: Challenge::default(),
        }
    }
}

/// How the cell proves to the CA that it holds its names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Challenge {
    /// A token served over plain HTTP on port 80 (the router must forward it).
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// A TXT record answered by the cell's DNS server (the domain must be delegated to
    /// the cell).
    #[serde(rename = "dns-01")]
    Dns01,
}

impl Challenge {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::Dns01 => "dns-01",
        }
    }
}

impl Acme {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// Checks every field; `domain` is the cell's domain mode, which must be public for
    /// ACME to be on.
    pub fn validate(&self, domain: &DomainMode) -> Result<(), FieldError> {
        if self.enabled && matches!(domain, DomainMode::Internal) {
            return Err(FieldError::new(
                "enabled",
                "public certificates need the cell's own domain or a dynamic DNS name; a .cell name is served by the cell's own root",
            ));
        }
        if self.challenge == Challenge::Dns01 && matches!(domain, DomainMode::Dynamic { .. }) {
            return Err(FieldError::new(
                "challenge",
                "a dynamic DNS name lives in the provider's zone, not the cell's: use http-01",
            ));
        }
        directory_problem(&self.directory)
            .map_or(Ok(()), |problem| Err(FieldError::new("directory", problem)))?;
        if let Some(email) = &self.email {
            email_problem(email)
                .map_or(Ok(()), |problem| Err(FieldError::new("email", problem)))?;
        }
        Ok(())
    }
}

fn directory_problem(url: &str) -> Option<String> {
    if url.len() > MAX_URL {
        return Some(format!("at most {MAX_URL} characters"));
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Some("the directory URL must start with https://".into());
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("the directory URL may not contain spaces".into());
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            if port.parse::<u16>().is_err() {
                return Some(format!("'{port}' is not a port"));
            }
            host
        }
        _ => host,
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_err() && DomainName::parse(bare).is_err() {
        return Some(format!("'{host}' is not a host name or address"));
    }
    None
}

fn email_problem(email: &str) -> Option<String> {
    if email.len() > MAX_EMAIL {
        return Some(format!("at most {MAX_EMAIL} characters"));
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Some("an e-mail address has an @".into());
    };
    if local.is_empty()
        || local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;:\"\\".contains(c))
    {
        return Some(format!(
            "'{local}' is not the part of an address before the @"
        ));
    }
    DomainName::parse(domain)
        .err()
        .map(|problem| format!("'{domain}' is not a domain: {problem}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn own() -> DomainMode {
        DomainMode::Own {
            domain: DomainName::parse("example.org").unwrap(),
        }
    }

    #[test]
    fn off_by_default_with_lets_encrypt_and_http_01() {
        let acme: Acme = serde_json::from_str("{}").unwrap();
        assert_eq!(acme, Acme::default());
        assert!(!acme.enabled);
        assert_eq!(acme.directory, LETS_ENCRYPT);
        assert_eq!(acme.challenge, Challenge::Http01);
        let dns: Acme = serde_json::from_str(r#"{"challenge": "dns-01"}"#).unwrap();
        assert_eq!(dns.challenge, Challenge::Dns01);
        assert!(serde_json::from_str::<Acme>(r#"{"challenge": "tls-alpn-01"}"#).is_err());
    }

    #[test]
    fn every_field_is_checked() {
        let on = Acme {
            enabled: true,
            ..Acme::default()
        };
        assert_eq!(on.validate(&own()), Ok(()));
        assert_eq!(
            on.validate(&DomainMode::Internal).unwrap_err().field,
            "enabled"
        );
        let dynamic: DomainMode = serde_json::from_value(
            serde_json::json!({"mode": "dynamic", "provider": "duckdns", "hostname": "me.duckdns.org"}),
        )
        .unwrap();
        let dns = Acme {
            challenge: Challenge::Dns01,
            ..on.clone()
        };
        assert_eq!(dns.validate(&dynamic).unwrap_err().field, "challenge");
        assert_eq!(dns.validate(&own()), Ok(()));
        for bad in [
            "http://acme.example/dir",
            "https://",
            "https://exa mple.org/dir",
            "https://example.org:99999/dir",
            "ftp://example.org",
        ] {
            let acme = Acme {
                directory: bad.into(),
                ..Acme::default()
            };
            assert_eq!(
                acme.validate(&own()).unwrap_err().field,
                "directory",
                "{bad}"
            );
        }
        for good in [
            "https://10.0.0.2:14000/dir",
            "https://[fd00::2]:14000/dir",
            "https://acme.example.org/directory",
        ] {
            let acme = Acme {
                directory: good.into(),
                ..Acme::default()
            };
            assert_eq!(acme.validate(&own()), Ok(()), "{good}");
        }
        for bad in [
            "nobody",
            "a b@example.org",
            "@example.org",
            "me@",
            "me@exa mple",
        ] {
            let acme = Acme {
                email: Some(bad.into()),
                ..Acme::default()
            };
            assert_eq!(acme.validate(&own()).unwrap_err().field, "email", "{bad}");
        }
        let acme = Acme {
            email: Some("me@example.org".into()),
            ..Acme::default()
        };
        assert_eq!(acme.validate(&own()), Ok(()));
    }
}
