//! What the root may sign: DNS names under the cell's zones and addresses in the private
//! ranges. A leaked root key can then not impersonate any public site to a device that
//! installed it.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cell_model::net::in_network;

/// The address ranges the root may sign for: RFC 1918 and IPv6 unique local addresses,
/// where the cell's LAN and VPN addresses are.
pub const PRIVATE_RANGES: [(IpAddr, u8); 4] = [
    (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8),
    (IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)), 12),
    (IpAddr::V4(Ipv4Addr::new(192, 168, 0, 0)), 16),
    (IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 7),
];

/// The internal top-level domain every cell's zone is under unless it has its own domain.
const INTERNAL_TLD: &str = "cell";

/// The DNS subtrees a root is constrained to (its IP ranges are always
/// [`PRIVATE_RANGES`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraints {
    dns: BTreeSet<String>,
}

impl Constraints {
    /// For a cell whose names are under `zone`: `.cell`, and the zone itself when it is a
    /// domain of the person's own.
    pub fn for_zone(zone: &str) -> Self {
        let mut dns = BTreeSet::from([INTERNAL_TLD.to_owned()]);
        let zone = normalise(zone);
        if !zone.is_empty() && !within(&zone, INTERNAL_TLD) {
            dns.insert(zone);
        }
        Self { dns }
    }

    pub(crate) fn from_dns(dns: impl IntoIterator<Item = String>) -> Self {
        Self {
            dns: dns.into_iter().map(|name| normalise(&name)).collect(),
        }
    }

    /// The DNS subtrees, e.g. `cell`, `example.org`.
    pub fn dns(&self) -> impl Iterator<Item = &str> {
        self.dns.iter().map(String::as_str)
    }

    /// Whether `name` is one of the subtrees or under one.
    pub fn permits_name(&self, name: &str) -> bool {
        let name = normalise(name);
        self.dns.iter().any(|tree| within(&name, tree))
    }

    /// Whether `address` is in a private range.
    pub fn permits_address(address: &IpAddr) -> bool {
        PRIVATE_RANGES
            .iter()
            .any(|(network, prefix)| in_network(*address, *network, *prefix))
    }

    /// Whether every subtree of `other` is within one of these.
    pub fn covers(&self, other: &Constraints) -> bool {
        other.dns.iter().all(|tree| self.permits_name(tree))
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn within(name: &str, tree: &str) -> bool {
    name == tree
        || name
            .strip_suffix(tree)
            .is_some_and(|head| head.ends_with('.'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn internal_zones_need_only_the_tld() {
        let c = Constraints::for_zone("home.cell.");
        assert_eq!(c.dns().collect::<Vec<_>>(), ["cell"]);
        assert!(c.permits_name("calendar.home.cell"));
        assert!(c.permits_name("other.cell"));
        assert!(!c.permits_name("evilcell"));
        assert!(!c.permits_name("example.org"));
    }

    #[test]
    fn own_domains_are_added() {
        let c = Constraints::for_zone("Example.ORG");
        assert!(c.permits_name("files.example.org"));
        assert!(!c.permits_name("badexample.org"));
        assert!(c.covers(&Constraints::for_zone("home.cell")));
        assert!(!Constraints::for_zone("home.cell").covers(&c));
    }

    #[test]
    fn only_private_addresses() {
        for ok in ["10.87.0.1", "192.168.1.2", "172.31.255.1", "fd12::1"] {
            assert!(Constraints::permits_address(&ok.parse().unwrap()), "{ok}");
        }
        for no in ["172.32.0.1", "8.8.8.8", "2001:db8::1", "127.0.0.1"] {
            assert!(!Constraints::permits_address(&no.parse().unwrap()), "{no}");
        }
    }
}
