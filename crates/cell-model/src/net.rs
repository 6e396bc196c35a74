//! Network values of the settings: IPv4 subnets (RFC 1918, explicit prefix), IPv6 ULA
//! /64 prefixes, WireGuard public keys, and address allocation inside a subnet. The VPN
//! and firewall work builds on these.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// An RFC 1918 IPv4 network written with its prefix, e.g. `10.8.0.0/24`, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrivateNet4 {
    network: Ipv4Addr,
    prefix: u8,
}

const PRIVATE_RANGES: [(Ipv4Addr, u8); 3] = [
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
];

/// Whether `address` is in the network `network/prefix` (either family; never across
/// families).
pub fn in_network(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl PrivateNet4 {
    /// Prefixes from /8 (a whole private range) to /30 (two hosts: the cell and one peer).
    pub const PREFIXES: std::ops::RangeInclusive<u8> = 8..=30;

    pub fn parse(s: &str) -> Result<Self, String> {
        let (address, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' has no prefix length; write it like 10.8.0.0/24"))?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("'{address}' is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("'/{prefix}' is not a prefix length"))?;
        if !Self::PREFIXES.contains(&prefix) {
            return Err(format!(
                "/{prefix} is outside /{} to /{}",
                Self::PREFIXES.start(),
                Self::PREFIXES.end()
            ));
        }
        let bits = u32::from(address);
        let network = Ipv4Addr::from(bits & mask(prefix));
        if network != address {
            return Err(format!(
                "'{s}' has host bits set; the network is {network}/{prefix}"
            ));
        }
        let private = PRIVATE_RANGES.iter().any(|(range, range_prefix)| {
            prefix >= *range_prefix && bits & mask(*range_prefix) == u32::from(*range)
        });
        if !private {
            return Err(format!(
                "'{s}' is not inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"
            ));
        }
        Ok(Self { network, prefix })
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & mask(self.prefix) == u32::from(self.network)
    }

    pub fn overlaps(&self, other: &Self) -> bool {
        self.overlaps_network(other.network, other.prefix)
    }

    /// Whether the network of `address/prefix` (any IPv4 network, e.g. an interface's)
    /// shares addresses with this one.
    pub fn overlaps_network(&self, address: Ipv4Addr, prefix: u8) -> bool {
        let shorter = self.prefix.min(prefix.min(32));
        u32::from(self.network) & mask(shorter) == u32::from(address) & mask(shorter)
    }

    /// The cell's own address in the subnet: the first host.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The address with host number `host`, or `None` when the subnet has no such host
    /// (0 is the network, the last is broadcast).
    pub fn host(&self, host: u32) -> Option<Ipv4Addr> {
        (host >= 1 && host < self.size() - 1)
            .then(|| Ipv4Addr::from(u32::from(self.network) + host))
    }

    /// How many addresses the subnet spans, network and broadcast included.
    pub fn size(&self) -> u32 {
        1u32 << (32 - u32::from(self.prefix))
    }

    /// The lowest host address that is neither the cell's nor in `taken`; `None` when the
    /// subnet is full. Network and broadcast addresses are never handed out.
    pub fn allocate(&self, taken: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let first = u32::from(self.network) + 2;
        let broadcast = u32::from(self.network) | !mask(self.prefix);
        (first..broadcast)
            .map(Ipv4Addr::from)
            .find(|address| !taken.contains(address))
    }
}

impl fmt::Display for PrivateNet4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl TryFrom<String> for PrivateNet4 {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<PrivateNet4> for String {
    fn from(net: PrivateNet4) -> String {
        net.to_string()
    }
}

/// An IPv6 unique-local /64 (`fdXX:XXXX:XXXX:XXXX::/64`), generated once per cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UlaPrefix(Ipv6Addr);

impl UlaPrefix {
    pub fn parse(s: &str) -> Result<Self, String> {
        let address = s
            .strip_suffix("/64")
            .ok_or_else(|| format!("'{s}' is not a /64 prefix like fd12:3456:789a:1::/64"))?;
        let address: Ipv6Addr = address
            .parse()
            .map_err(|_| format!("'{address}' is not an IPv6 address"))?;
        let segments = address.segments();
        if segments[0] & 0xff00 != 0xfd00 {
            return Err(format!("'{s}' is not a unique-local (fd00::/8) prefix"));
        }
        if segments[4..].iter().any(|s| *s != 0) {
            return Err(format!("'{s}' has interface bits set"));
        }
        Ok(Self(address))
    }

    /// From 40 random bits (RFC 4193) and a 16-bit subnet id.
    pub fn from_random(global_id: [u8; 5], subnet: u16) -> Self {
        let [a, b, c, d, e] = global_id;
        Self(Ipv6Addr::new(
            0xfd00 | u16::from(a),
            u16::from_be_bytes([b, c]),
            u16::from_be_bytes([d, e]),
            subnet,
            0,
            0,
            0,
            0,
        ))
    }

    /// The address with interface id `host` (the IPv4 host part, so peers keep matching
    /// addresses in both families).
    pub fn host(&self, host: u32) -> Ipv6Addr {
        let s = self.0.segments();
        Ipv6Addr::new(
            s[0],
            s[1],
            s[2],
            s[3],
            0,
            0,
            (host >> 16) as u16,
            host as u16,
        )
    }
}

impl fmt::Display for UlaPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/64", self.0)
    }
}

impl TryFrom<String> for UlaPrefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<UlaPrefix> for String {
    fn from(prefix: UlaPrefix) -> String {
        prefix.to_string()
    }
}

/// A WireGuard public key: 32 bytes, written as 44 characters of standard base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WgPublicKey([u8; 32]);

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

impl WgPublicKey {
    pub fn parse(s: &str) -> Result<Self, String> {
        let invalid =
            || format!("'{s}' is not a WireGuard key (44 characters of base64 ending in '=')");
        let bytes = s.as_bytes();
        if bytes.len() != 44 || bytes[43] != b'=' {
            return Err(invalid());
        }
        let mut bits: u32 = 0;
        let mut count = 0;
        let mut out = Vec::with_capacity(32);
        for &c in &bytes[..43] {
            let value = BASE64.iter().position(|b| *b == c).ok_or_else(invalid)? as u32;
            bits = (bits << 6) | value;
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
                bits &= (1 << count) - 1;
            }
        }
        // 43 characters carry 258 bits: the last two must be zero in a canonical key.
        if bits != 0 {
            return Err(invalid());
        }
        let key: [u8; 32] = out.try_into().map_err(|_| invalid())?;
        Ok(Self(key))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for WgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(44);
        for chunk in self.0.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let symbols = chunk.len() + 1;
            for i in 0..4 {
                if i < symbols {
                    out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        f.write_str(&out)
    }
}

impl fmt::Debug for WgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WgPublicKey({self})")
    }
}

impl TryFrom<String> for WgPublicKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<WgPublicKey> for String {
    fn from(key: WgPublicKey) -> String {
        key.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_subnets_need_a_prefix_and_a_private_range() {
        assert_eq!(
            PrivateNet4::parse("10.8.0.0/24").unwrap().to_string(),
            "10.8.0.0/24"
        );
        assert!(PrivateNet4::parse("172.31.255.0/24").is_ok());
        assert!(PrivateNet4::parse("192.168.0.0/16").is_ok());
        for (bad, why) in [
            ("10.8.0.0", "no prefix"),
            ("10.8.0.1/24", "host bits"),
            ("8.8.8.0/24", "private"),
            ("172.32.0.0/16", "private"),
            ("192.168.0.0/15", "private"),
            ("10.0.0.0/31", "/31"),
            ("10.0.0.0/x", "prefix"),
            ("10.0.0/24", "IPv4"),
        ] {
            let err = PrivateNet4::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn overlap_is_symmetric_and_exact() {
        let a = PrivateNet4::parse("10.8.0.0/16").unwrap();
        let b = PrivateNet4::parse("10.8.4.0/24").unwrap();
        let c = PrivateNet4::parse("10.9.0.0/24").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&a));
    }

    #[test]
    fn allocation_skips_the_cell_and_taken_addresses_until_full() {
        let net = PrivateNet4::parse("10.8.0.0/29").unwrap();
        assert_eq!(net.gateway(), Ipv4Addr::new(10, 8, 0, 1));
        let mut taken = BTreeSet::new();
        let mut handed = Vec::new();
        while let Some(address) = net.allocate(&taken) {
            assert!(net.contains(address));
            assert!(taken.insert(address), "{address} handed out twice");
            handed.push(address);
        }
        // /29: .0 network, .1 the cell, .7 broadcast → .2 to .6.
        assert_eq!(handed.len(), 5);
        assert_eq!(handed.first(), Some(&Ipv4Addr::new(10, 8, 0, 2)));
        assert_eq!(handed.last(), Some(&Ipv4Addr::new(10, 8, 0, 6)));
        taken.remove(&Ipv4Addr::new(10, 8, 0, 4));
        assert_eq!(
            net.allocate(&taken),
            Some(Ipv4Addr::new(10, 8, 0, 4)),
            "a freed address returns"
        );
    }

    #[test]
    fn ula_prefixes_are_unique_local_slash_64() {
        let prefix = UlaPrefix::from_random([0x12, 0x34, 0x56, 0x78, 0x9a], 1);
        assert_eq!(prefix.to_string(), "fd12:3456:789a:1::/64");
        assert_eq!(UlaPrefix::parse(&prefix.to_string()).unwrap(), prefix);
        assert_eq!(prefix.host(5).to_string(), "fd12:3456:789a:1::5");
        for bad in [
            "fd12:3456:789a:1::/48",
            "2001:db8::/64",
            "fd12::1/64",
            "nonsense/64",
        ] {
            assert!(UlaPrefix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wireguard_keys_round_trip_and_refuse_malformed_ones() {
        // The form `wg pubkey` prints: 32 bytes in 44 characters of base64.
        let text = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
        let key = WgPublicKey::parse(text).unwrap();
        assert_eq!(key.to_string(), text);
        let zero = WgPublicKey::from_bytes([0; 32]);
        assert_eq!(
            zero.to_string(),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        );
        for bad in [
            "",
            "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg",
            "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8D==",
            "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dh=",
            "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8D!=",
        ] {
            assert!(WgPublicKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
