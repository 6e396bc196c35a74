//! The VPN section of the settings: the WireGuard server's subnet, port and endpoint, and
//! its peers with their per-peer access. Everything the VPN, the firewall and (later) DNS
//! derive is computed from here: addresses come from a peer's host number, so IPv4 and
//! IPv6 always match and an address can never be handed out twice.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::names::DomainName;
use crate::net::{PrivateNet4, UlaPrefix, WgPublicKey};
use crate::users::Username;
use crate::FieldError;

/// Host numbers below this belong to the cell: 1 is its gateway address, the services
/// have theirs just above it, the rest is kept for services to come.
pub const FIRST_PEER_HOST: u32 = 16;
/// The smallest VPN subnet: room for the cell's own addresses and 14 peers.
pub const MAX_VPN_PREFIX: u8 = 27;
pub const DEFAULT_LISTEN_PORT: u16 = 51820;
pub const DEFAULT_SUBNET4: &str = "10.87.0.0/20";
/// WireGuard's own limit on the keepalive interval.
pub const MAX_KEEPALIVE: u16 = 3600;

/// A service a peer may be allowed to reach through the VPN. Each has its own address
/// on the cell, so the firewall can tell them apart by destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Calendar,
    Files,
    Mail,
    Webdav,
}

impl Service {
    pub const ALL: [Service; 4] = [Self::Calendar, Self::Files, Self::Mail, Self::Webdav];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Calendar => "calendar",
            Self::Files => "files",
            Self::Mail => "mail",
            Self::Webdav => "webdav",
        }
    }

    /// The service's host number in the VPN subnet.
    pub fn host(self) -> u32 {
        match self {
            Self::Calendar => 2,
            Self::Files => 3,
            Self::Mail => 4,
            Self::Webdav => 5,
        }
    }

    /// The TCP ports the service answers on.
    pub fn ports(self) -> &'static [u16] {
        match self {
            Self::Calendar | Self::Files | Self::Webdav => &[443],
            Self::Mail => &[25, 443, 587, 993],
        }
    }
}

/// A peer's (device's) name: one DNS label, lower case, so it can become `<name>.<zone>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerName(String);

impl PeerName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.contains('.') {
            return Err(format!(
                "'{s}' contains a dot; a device name is a single label such as 'phone'"
            ));
        }
        match crate::names::label_problem(s) {
            Some(problem) => Err(problem),
            None => Ok(Self(s.to_ascii_lowercase())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PeerName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<PeerName> for String {
    fn from(name: PeerName) -> String {
        name.0
    }
}

/// Where clients reach the cell's WireGuard port: a host name or an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EndpointHost {
    Address(IpAddr),
    Name(DomainName),
}

impl EndpointHost {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Ok(address) = s.parse::<IpAddr>() {
            return Ok(Self::Address(address));
        }
        DomainName::parse(s)
            .map(Self::Name)
            .map_err(|problem| format!("not an IP address nor a host name: {problem}"))
    }
}

impl fmt::Display for EndpointHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(IpAddr::V6(address)) => write!(f, "[{address}]"),
            Self::Address(IpAddr::V4(address)) => write!(f, "{address}"),
            Self::Name(name) => write!(f, "{name}"),
        }
    }
}

impl TryFrom<String> for EndpointHost {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<EndpointHost> for String {
    fn from(host: EndpointHost) -> String {
        match host {
            EndpointHost::Address(address) => address.to_string(),
            EndpointHost::Name(name) => name.to_string(),
        }
    }
}

/// Which of the cell's services a peer may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccess {
    #[serde(default)]
    pub calendar: bool,
    #[serde(default)]
    pub files: bool,
    #[serde(default)]
    pub mail: bool,
    #[serde(default)]
    pub webdav: bool,
}

impl ServiceAccess {
    pub fn allows(&self, service: Service) -> bool {
        match service {
            Service::Calendar => self.calendar,
            Service::Files => self.files,
            Service::Mail => self.mail,
            Service::Webdav => self.webdav,
        }
    }
}

/// One device allowed into the VPN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub name: PeerName,
    /// The user whose device this is; a peer-role user sees only their own.
    pub owner: Username,
    pub public_key: WgPublicKey,
    /// Host number in the VPN subnet and the ULA prefix; unique among peers.
    pub host: u32,
    #[serde(default)]
    pub access: ServiceAccess,
    #[serde(default)]
    pub internet_exit: bool,
    #[serde(default)]
    pub lan_access: bool,
    /// Seconds between keepalives, 0 for none.
    #[serde(default)]
    pub keepalive: u16,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The cell generated the key pair and keeps the private key (in its secret store) for
    /// the client configuration; false when the client brought its own public key.
    #[serde(default)]
    pub key_on_cell: bool,
}

fn yes() -> bool {
    true
}

/// The WireGuard server and its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vpn {
    pub subnet4: PrivateNet4,
    pub prefix6: UlaPrefix,
    pub listen_port: u16,
    /// What clients dial; without it the cell's own domain name is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointHost>,
    #[serde(default)]
    pub peers: Vec<Peer>,
}

impl Vpn {
    /// A fresh VPN section: the default subnet, the given ULA prefix, no peers.
    pub fn new(prefix6: UlaPrefix) -> Self {
        Self {
            subnet4: PrivateNet4::parse(DEFAULT_SUBNET4)
                .expect("the default VPN subnet is a valid private network"),
            prefix6,
            listen_port: DEFAULT_LISTEN_PORT,
            endpoint: None,
            peers: Vec::new(),
        }
    }

    pub fn gateway4(&self) -> Ipv4Addr {
        self.subnet4.gateway()
    }

    pub fn gateway6(&self) -> Ipv6Addr {
        self.prefix6.host(1)
    }

    pub fn service4(&self, service: Service) -> Option<Ipv4Addr> {
        self.subnet4.host(service.host())
    }

    pub fn service6(&self, service: Service) -> Ipv6Addr {
        self.prefix6.host(service.host())
    }

    pub fn peer_address4(&self, peer: &Peer) -> Option<Ipv4Addr> {
        self.subnet4.host(peer.host)
    }

    pub fn peer_address6(&self, peer: &Peer) -> Ipv6Addr {
        self.prefix6.host(peer.host)
    }

    pub fn peer(&self, name: &PeerName) -> Option<&Peer> {
        self.peers.iter().find(|p| &p.name == name)
    }

    pub fn peer_mut(&mut self, name: &PeerName) -> Option<&mut Peer> {
        self.peers.iter_mut().find(|p| &p.name == name)
    }

    /// The lowest free peer host number, or `None` when the subnet is full.
    pub fn free_host(&self) -> Option<u32> {
        let taken: BTreeSet<u32> = self.peers.iter().map(|p| p.host).collect();
        (FIRST_PEER_HOST..self.subnet4.size().saturating_sub(1)).find(|h| !taken.contains(h))
    }

    /// Checks what the types alone cannot: subnet size, unique names, keys and
    /// addresses, every peer inside the subnet, keepalive range. Errors name the field
    /// relative to the VPN section.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.subnet4.prefix() > MAX_VPN_PREFIX {
            return Err(FieldError::new(
                "subnet4",
                format!(
                    "/{} is too small; the VPN needs at least a /{MAX_VPN_PREFIX}",
                    self.subnet4.prefix()
                ),
            ));
        }
        if self.listen_port == 0 {
            return Err(FieldError::new(
                "listen_port",
                "must be between 1 and 65535",
            ));
        }
        let mut names = BTreeSet::new();
        let mut keys = BTreeSet::new();
        let mut hosts = BTreeSet::new();
        for (index, peer) in self.peers.iter().enumerate() {
            let field = |name: &str| format!("peers[{index}].{name}");
            if !names.insert(&peer.name) {
                return Err(FieldError::new(
                    field("name"),
                    format!("there is already a device named '{}'", peer.name),
                ));
            }
            if !keys.insert(peer.public_key) {
                return Err(FieldError::new(
                    field("public_key"),
                    "another device already uses this public key",
                ));
            }
            if !hosts.insert(peer.host) {
                return Err(FieldError::new(
                    field("host"),
                    "another device already has this address",
                ));
            }
            if peer.host < FIRST_PEER_HOST || self.peer_address4(peer).is_none() {
                return Err(FieldError::new(
                    "subnet4",
                    format!(
                        "{} has no room for device '{}' (host number {})",
                        self.subnet4, peer.name, peer.host
                    ),
                ));
            }
            if peer.keepalive > MAX_KEEPALIVE {
                return Err(FieldError::new(
                    field("keepalive"),
                    format!("at most {MAX_KEEPALIVE} seconds"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> WgPublicKey {
        WgPublicKey::from_bytes([byte; 32])
    }

    fn peer(name: &str, host: u32, key_byte: u8) -> Peer {
        Peer {
            name: PeerName::parse(name).unwrap(),
            owner: Username::parse("alice").unwrap(),
            public_key: key(key_byte),
            host,
            access: ServiceAccess::default(),
            internet_exit: false,
            lan_access: false,
            keepalive: 0,
            enabled: true,
            key_on_cell: false,
        }
    }

    fn vpn() -> Vpn {
        Vpn::new(UlaPrefix::parse("fd11:2233:4455:1::/64").unwrap())
    }

    #[test]
    fn addresses_follow_the_host_number_in_both_families() {
        let vpn = vpn();
        let p = peer("phone", 16, 1);
        assert_eq!(vpn.peer_address4(&p), Some("10.87.0.16".parse().unwrap()));
        assert_eq!(
            vpn.peer_address6(&p),
            "fd11:2233:4455:1::10".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(vpn.gateway4(), "10.87.0.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(
            vpn.service4(Service::Files),
            Some("10.87.0.3".parse().unwrap())
        );
    }

    #[test]
    fn free_host_skips_taken_ones_and_ends_when_full() {
        let mut vpn = vpn();
        vpn.subnet4 = PrivateNet4::parse("10.9.0.0/27").unwrap();
        assert_eq!(vpn.free_host(), Some(16));
        vpn.peers.push(peer("a", 16, 1));
        vpn.peers.push(peer("b", 18, 2));
        assert_eq!(vpn.free_host(), Some(17));
        for host in 17..31 {
            if host != 18 {
                vpn.peers.push(peer(&format!("p{host}"), host, host as u8));
            }
        }
        assert_eq!(vpn.free_host(), None, "31 is the broadcast address");
        vpn.validate().unwrap();
    }

    #[test]
    fn validation_names_the_offending_field() {
        let mut vpn = vpn();
        vpn.peers.push(peer("phone", 16, 1));
        vpn.peers.push(peer("phone", 17, 2));
        assert_eq!(vpn.validate().unwrap_err().field, "peers[1].name");
        vpn.peers[1].name = PeerName::parse("laptop").unwrap();
        vpn.peers[1].public_key = key(1);
        assert_eq!(vpn.validate().unwrap_err().field, "peers[1].public_key");
        vpn.peers[1].public_key = key(2);
        vpn.peers[1].host = 16;
        assert_eq!(vpn.validate().unwrap_err().field, "peers[1].host");
        vpn.peers[1].host = 5000;
        assert_eq!(vpn.validate().unwrap_err().field, "subnet4");
        vpn.peers[1].host = 17;
        vpn.subnet4 = PrivateNet4::parse("10.9.0.0/28").unwrap();
        assert_eq!(vpn.validate().unwrap_err().field, "subnet4");
    }

    #[test]
    fn peer_names_are_single_lower_case_labels() {
        assert_eq!(PeerName::parse("Phone").unwrap().as_str(), "phone");
        assert!(PeerName::parse("my.phone").is_err());
        assert!(PeerName::parse("-x").is_err());
        assert!(PeerName::parse("").is_err());
    }

    #[test]
    fn endpoints_are_addresses_or_host_names() {
        assert_eq!(
            EndpointHost::parse("203.0.113.5").unwrap().to_string(),
            "203.0.113.5"
        );
        assert_eq!(
            EndpointHost::parse("2001:db8::1").unwrap().to_string(),
            "[2001:db8::1]"
        );
        assert_eq!(
            EndpointHost::parse("vpn.example.org").unwrap().to_string(),
            "vpn.example.org"
        );
        assert!(EndpointHost::parse("not a host").is_err());
    }
}
