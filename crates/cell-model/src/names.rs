//! Validated names: DNS labels, domain names, time zones. Each type can only hold a valid
//! value; parsing one from a string says what is wrong with it.

use std::fmt;

use serde::{Deserialize, Serialize};

const MAX_LABEL: usize = 63;
const MAX_DOMAIN: usize = 253;
const MAX_TIMEZONE: usize = 64;

/// Why a label is not a valid DNS label (letters, digits, hyphens; 1–63; no hyphen at
/// either end), or `None` when it is one.
pub(crate) fn label_problem(label: &str) -> Option<String> {
    if label.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if label.len() > MAX_LABEL {
        return Some(format!(
            "'{label}' is {} characters long; at most {MAX_LABEL} are allowed",
            label.len()
        ));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Some(format!(
            "'{label}' contains '{bad}'; only letters, digits and hyphens are allowed"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Some(format!("'{label}' must not start or end with a hyphen"));
    }
    None
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

/// The cell's name: one DNS label, stored in lower case. It is the machine's hostname,
/// its mDNS name (`<name>.local`) and the first label of its internal zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CellName(String);

impl CellName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.contains('.') {
            return Err(format!(
                "'{s}' contains a dot; a cell name is a single label such as 'home'"
            ));
        }
        match label_problem(s) {
            Some(problem) => Err(problem),
            None => Ok(Self(s.to_ascii_lowercase())),
        }
    }
}
string_newtype!(CellName);

/// A fully qualified domain name of at least two labels, without the trailing dot, in
/// lower case: 253 characters at most, each label a valid DNS label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let name = s.strip_suffix('.').unwrap_or(s);
        if name.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if name.len() > MAX_DOMAIN {
            return Err(format!(
                "is {} characters long; at most {MAX_DOMAIN} are allowed",
                name.len()
            ));
        }
        let labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 2 {
            return Err(format!(
                "'{name}' has a single label; a domain looks like 'example.org'"
            ));
        }
        if let Some(problem) = labels.iter().find_map(|label| label_problem(label)) {
            return Err(problem);
        }
        if labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(format!(
                "'{name}' ends in a number; a domain's last label has a letter"
            ));
        }
        Ok(Self(name.to_ascii_lowercase()))
    }
}
string_newtype!(DomainName);

/// An IANA time zone name such as `Europe/Berlin`, `UTC` or `America/Argentina/Salta`.
/// Only the form is checked here; whether the zone exists is for the system to say.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timezone(String);

impl Timezone {
    pub fn utc() -> Self {
        Self("UTC".to_owned())
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if s.len() > MAX_TIMEZONE {
            return Err(format!(
                "is {} characters long; at most {MAX_TIMEZONE} are allowed",
                s.len()
            ));
        }
        for part in s.split('/') {
            let well_formed = part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'));
            if !well_formed {
                return Err(format!(
                    "'{s}' is not a time zone name such as 'Europe/Berlin' or 'UTC'"
                ));
            }
        }
        Ok(Self(s.to_owned()))
    }
}
string_newtype!(Timezone);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_names_follow_dns_label_rules() {
        assert_eq!(CellName::parse("Home-1").unwrap().as_str(), "home-1");
        assert!(CellName::parse(&"a".repeat(63)).is_ok());
        for bad in [
            "",
            "-home",
            "home-",
            "ho_me",
            "hóme",
            "home.lan",
            &"a".repeat(64),
        ] {
            assert!(CellName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn domains_are_checked_label_by_label_and_in_total() {
        assert_eq!(
            DomainName::parse("Example.ORG.").unwrap().as_str(),
            "example.org"
        );
        // 4 labels of 63 plus 3 dots = 255 > 253; 3 of 63 + one of 61 = 253.
        let long = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
        assert_eq!(long.len(), 253);
        assert!(DomainName::parse(&long).is_ok());
        let too_long = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(62));
        assert!(DomainName::parse(&too_long)
            .unwrap_err()
            .contains("at most 253"));
        for bad in [
            "",
            "org",
            "example..org",
            "-x.org",
            "x-.org",
            "exa mple.org",
            "example.123",
            ".",
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn label_errors_say_what_is_wrong() {
        let err = CellName::parse("my_cell").unwrap_err();
        assert!(err.contains("'_'"), "{err}");
        let err = DomainName::parse(&format!("{}.org", "x".repeat(64))).unwrap_err();
        assert!(err.contains("64 characters"), "{err}");
    }

    #[test]
    fn timezones_have_the_iana_form() {
        for good in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Salta",
            "Etc/GMT+5",
        ] {
            assert!(Timezone::parse(good).is_ok(), "{good:?} was refused");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../UTC",
            "Europe//Berlin",
            "Europe/Ber lin",
            "5/x",
        ] {
            assert!(Timezone::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn serde_refuses_invalid_values() {
        let parsed: Result<CellName, _> = serde_json::from_str("\"bad name\"");
        assert!(parsed.is_err());
        let parsed: CellName = serde_json::from_str("\"Home\"").unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"home\"");
    }
}
