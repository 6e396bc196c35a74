//! One-time links to a VPN device's Apple profile, for the QR code on the device's page: a
//! phone that scans it has no session, so the link itself is the permission — random
//! (128 bits), good for ten minutes and one download, kept only as a digest.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cell_model::vpn::PeerName;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const LIFETIME: Duration = Duration::from_secs(600);
/// Outstanding links at most; the oldest goes first.
const MAX_LINKS: usize = 256;

#[derive(Debug, Default)]
pub struct ProfileLinks {
    by_digest: HashMap<[u8; 32], Link>,
}

#[derive(Debug, Clone)]
pub struct Link {
    pub peer: PeerName,
    /// The device's public key then: a device removed and added again under the same
    /// name is another device.
    pub public_key: String,
    /// Who made the link (the audit log names them for its download; they must still be
    /// allowed to see the device when it is used).
    pub issuer: String,
    made: Instant,
}

fn digest(ticket: &str) -> [u8; 32] {
    Sha256::digest(ticket.as_bytes()).into()
}

impl ProfileLinks {
    /// A new link's ticket for `peer`'s profile.
    pub fn issue(
        &mut self,
        peer: PeerName,
        public_key: &str,
        issuer: &str,
        now: Instant,
    ) -> String {
        self.by_digest
            .retain(|_, link| now.duration_since(link.made) < LIFETIME);
        if self.by_digest.len() >= MAX_LINKS {
            if let Some(oldest) = self
                .by_digest
                .iter()
                .min_by_key(|(_, link)| link.made)
                .map(|(key, _)| *key)
            {
                self.by_digest.remove(&oldest);
            }
        }
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let ticket = hex::encode(bytes);
        self.by_digest.insert(
            digest(&ticket),
            Link {
                peer,
                public_key: public_key.to_owned(),
                issuer: issuer.to_owned(),
                made: now,
            },
        );
        ticket
    }

    /// The link's device, once: the ticket is spent (or was unknown, or expired).
    pub fn take(&mut self, ticket: &str, now: Instant) -> Option<Link> {
        let link = self.by_digest.remove(&digest(ticket))?;
        (now.duration_since(link.made) < LIFETIME).then_some(link)
    }

    /// Puts back a link taken for a download that failed: it works until it would have
    /// expired anyway.
    pub fn give_back(&mut self, ticket: &str, link: Link) {
        self.by_digest.insert(digest(ticket), link);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_link_works_once_and_not_after_ten_minutes() {
        let mut links = ProfileLinks::default();
        let now = Instant::now();
        let phone = PeerName::parse("phone").unwrap();
        let ticket = links.issue(phone.clone(), "key", "alice", now);
        assert_eq!(ticket.len(), 32);
        assert_eq!(links.take("0000", now).map(|l| l.peer), None);
        let link = links.take(&ticket, now).unwrap();
        assert_eq!(
            (link.peer.clone(), link.issuer.as_str()),
            (phone.clone(), "alice")
        );
        assert!(links.take(&ticket, now).is_none(), "spent");
        links.give_back(&ticket, link);
        assert!(
            links.take(&ticket, now).is_some(),
            "given back after a failure"
        );
        let late = links.issue(phone, "key", "alice", now);
        assert!(links.take(&late, now + LIFETIME).is_none(), "expired");
    }
}
