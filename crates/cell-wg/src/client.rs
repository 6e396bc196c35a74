//! The client's side of a peer, as a wg-quick `.conf` file.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::key_base64;

/// Everything a client needs to join; the private key only when the cell generated it.
pub struct ClientConfig {
    pub private_key: Option<[u8; 32]>,
    pub addresses: Vec<(IpAddr, u8)>,
    /// Resolvers the client uses while the tunnel is up.
    pub dns: Vec<IpAddr>,
    /// Search domains, so that short names work (wg-quick takes them on the DNS line).
    pub search: Vec<String>,
    pub server_public_key: [u8; 32],
    /// `host:port`, IPv6 hosts in brackets.
    pub endpoint: String,
    pub allowed_ips: Vec<(IpAddr, u8)>,
    pub keepalive: u16,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("addresses", &self.addresses)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn list(items: &[(IpAddr, u8)]) -> String {
    items
        .iter()
        .map(|(a, p)| format!("{a}/{p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ClientConfig {
    pub fn render(&self) -> String {
        let mut out = String::from("[Interface]\n");
        match &self.private_key {
            Some(key) => {
                let _ = writeln!(out, "PrivateKey = {}", key_base64(key));
            }
            None => out.push_str(
                "# This device brought its own key: put its private key here.\n# PrivateKey = \n",
            ),
        }
        let _ = writeln!(out, "Address = {}", list(&self.addresses));
        if !self.dns.is_empty() {
            let dns: Vec<String> = self
                .dns
                .iter()
                .map(IpAddr::to_string)
                .chain(self.search.iter().cloned())
                .collect();
            let _ = writeln!(out, "DNS = {}", dns.join(", "));
        }
        out.push_str("\n[Peer]\n");
        let _ = writeln!(out, "PublicKey = {}", key_base64(&self.server_public_key));
        let _ = writeln!(out, "Endpoint = {}", self.endpoint);
        let _ = writeln!(out, "AllowedIPs = {}", list(&self.allowed_ips));
        if self.keepalive > 0 {
            let _ = writeln!(out, "PersistentKeepalive = {}", self.keepalive);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_wg_quick_file() {
        let config = ClientConfig {
            private_key: Some([1; 32]),
            addresses: vec![
                ("10.87.0.16".parse().unwrap(), 32),
                ("fd00::10".parse().unwrap(), 128),
            ],
            dns: vec![],
            search: vec!["home.cell".into()],
            server_public_key: [2; 32],
            endpoint: "vpn.example.org:51820".into(),
            allowed_ips: vec![("10.87.0.0".parse().unwrap(), 20)],
            keepalive: 25,
        };
        let text = config.render();
        assert!(
            text.starts_with(
                "[Interface]\nPrivateKey = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"
            ),
            "{text}"
        );
        assert!(text.contains("Address = 10.87.0.16/32, fd00::10/128\n"));
        assert!(text.contains("Endpoint = vpn.example.org:51820\n"));
        assert!(text.contains("AllowedIPs = 10.87.0.0/20\n"));
        assert!(text.contains("PersistentKeepalive = 25\n"));
        assert!(!text.contains("DNS"));
        let own_key = ClientConfig {
            private_key: None,
            keepalive: 0,
            dns: vec!["10.87.0.1".parse().unwrap()],
            ..config
        };
        let text = own_key.render();
        assert!(!text.contains("\nPrivateKey ="));
        assert!(!text.contains("PersistentKeepalive"));
        assert!(text.contains("DNS = 10.87.0.1, home.cell\n"), "{text}");
    }
}
