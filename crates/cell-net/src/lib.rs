//! Links and addresses over rtnetlink. celld only ever changes links it owns (by name),
//! and on those it makes the address list exactly the desired one.

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::{Handle, LinkUnspec};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("opening a netlink socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error("{action} on {interface}: {source}")]
    Netlink {
        action: &'static str,
        interface: String,
        #[source]
        source: rtnetlink::Error,
    },
}

/// The kernel's answer for a link name it does not know.
const ENODEV: i32 = 19;

/// An address with its prefix length, as it sits on an interface.
pub type Address = (IpAddr, u8);

/// What a sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub brought_up: bool,
    pub added: Vec<Address>,
    pub removed: Vec<Address>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        !self.brought_up && self.added.is_empty() && self.removed.is_empty()
    }
}

/// A route-netlink connection, driven on the current tokio runtime.
#[derive(Debug, Clone)]
pub struct Net {
    handle: Handle,
}

/// A link as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub up: bool,
}

impl Net {
    pub fn connect() -> Result<Self, NetError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetError::Connect)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// The link named `name`, or `None` when there is none.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, NetError> {
        let result = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute()
            .try_next()
            .await;
        match result {
            Ok(Some(message)) => Ok(Some(Link {
                index: message.header.index,
                up: message.header.flags.contains(LinkFlags::Up),
            })),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(error)) if error.raw_code() == -ENODEV => Ok(None),
            Err(source) => Err(NetError::Netlink {
                action: "looking up the link",
                interface: name.to_owned(),
                source,
            }),
        }
    }

    /// Brings `name` up and makes its addresses exactly `desired`: missing ones are added
    /// (IPv6 without duplicate detection: the link is point-to-point), others removed.
    pub async fn sync_link(
        &self,
        name: &str,
        link: &Link,
        desired: &BTreeSet<Address>,
    ) -> Result<Changes, NetError> {
        let netlink = |action| {
            move |source| NetError::Netlink {
                action,
                interface: name.to_owned(),
                source,
            }
        };
        let mut changes = Changes::default();
        let live: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute()
            .try_collect()
            .await
            .map_err(netlink("listing addresses"))?;
        let mut present = BTreeSet::new();
        for message in live {
            let Some(address) = address_of(&message) else {
                continue;
            };
            let entry = (address, message.header.prefix_len);
            let link_local =
                matches!(address, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
            if desired.contains(&entry) {
                present.insert(entry);
            } else if !link_local {
                self.handle
                    .address()
                    .del(message)
                    .execute()
                    .await
                    .map_err(netlink("removing an address"))?;
                changes.removed.push(entry);
            }
        }
        for entry in desired.difference(&present) {
            let mut request = self.handle.address().add(link.index, entry.0, entry.1);
            if entry.0.is_ipv6() {
                request
                    .message_mut()
                    .attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            request
                .execute()
                .await
                .map_err(netlink("adding an address"))?;
            changes.added.push(*entry);
        }
        if !link.up {
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(link.index).up().build())
                .execute()
                .await
                .map_err(netlink("bringing the link up"))?;
            changes.brought_up = true;
        }
        Ok(changes)
    }

    /// Every address on every link: (link name, address, prefix length).
    pub async fn all_addresses(&self) -> Result<Vec<(String, IpAddr, u8)>, NetError> {
        let netlink = |action| {
            move |source| NetError::Netlink {
                action,
                interface: "all links".to_owned(),
                source,
            }
        };
        let links: Vec<_> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(netlink("listing links"))?;
        let names: std::collections::HashMap<u32, String> = links
            .into_iter()
            .filter_map(|link| {
                let name = link.attributes.into_iter().find_map(|a| match a {
                    LinkAttribute::IfName(name) => Some(name),
                    _ => None,
                })?;
                Some((link.header.index, name))
            })
            .collect();
        let addresses: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(netlink("listing addresses"))?;
        Ok(addresses
            .iter()
            .filter_map(|message| {
                let name = names.get(&message.header.index)?.clone();
                Some((name, address_of(message)?, message.header.prefix_len))
            })
            .collect())
    }
}

fn address_of(message: &AddressMessage) -> Option<IpAddr> {
    // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS the peer.
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(address) => Some(*address),
        _ => None,
    });
    local.or_else(|| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(address) => Some(*address),
            _ => None,
        })
    })
}
