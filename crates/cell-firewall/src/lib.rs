//! The cell's firewall: one nftables table, `inet cell`, derived from the VPN settings.
//!
//! The table's chains and rules depend only on the cell (its WireGuard interface, port,
//! subnets and service addresses); peers appear only as elements of sets, so the number of
//! rules, and the cost per packet, does not grow with the number of peers. The whole table
//! is written in one nftables transaction (nft, JSON); when only set elements changed since
//! the last write, one netlink batch adds and deletes just those elements.

mod netlink;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;

use cell_model::vpn::{Service, Vpn};
use nftables::schema::Nftables;
use serde_json::{json, Value};

pub const FAMILY: &str = "inet";
pub const TABLE: &str = "cell";

/// Ports open to everyone: the web UI and the reverse proxy.
const WEB_PORTS: [u16; 2] = [80, 443];
/// Ports open to internal (private, link-local, VPN) sources only: DNS and NTP.
const INTERNAL_UDP_PORTS: [u16; 3] = [53, 123, 5353];
const INTERNAL_TCP_PORTS: [u16; 1] = [53];
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const PRIVATE4: [(&str, u8); 4] = [
    ("10.0.0.0", 8),
    ("172.16.0.0", 12),
    ("192.168.0.0", 16),
    ("169.254.0.0", 16),
];
const PRIVATE6: [(&str, u8); 2] = [("fc00::", 7), ("fe80::", 10)];

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("building the nftables batch: {0}")]
    Schema(#[source] serde_json::Error),
    #[error("applying the nftables batch: {}", nft_reason(.0))]
    Apply(#[source] nftables::helper::NftablesError),
    #[error("reading table inet cell: {0}")]
    Read(String),
}

/// nft's own words for a refused batch, which the library's message leaves out.
fn nft_reason(error: &nftables::helper::NftablesError) -> String {
    match error {
        nftables::helper::NftablesError::NftFailed { stderr, .. } if !stderr.trim().is_empty() => {
            stderr.trim().to_owned()
        }
        other => other.to_string(),
    }
}

/// Everything the table is built from: the fixed part (`Shape`) and the per-peer sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub shape: Shape,
    /// Set name → members, sorted and unique. Every set of the table is here, empty ones
    /// included.
    pub sets: BTreeMap<String, Vec<IpAddr>>,
}

/// The part of the table that does not depend on peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub interface: String,
    pub listen_port: u16,
    pub subnet4: String,
    pub prefix6: String,
    /// Service → (IPv4 address, IPv6 address, ports).
    pub services: Vec<(Service, Option<IpAddr>, IpAddr, Vec<u16>)>,
    /// (service, port, the port its machine listens on): a service machine's daemons
    /// have no privilege over the cell's network stack, so they listen on unprivileged
    /// ports and the cell redirects the standard ones there. VPN peers are redirected
    /// only when they may use the service.
    pub redirects: Vec<(Service, u16, u16)>,
    /// (user, ports): loopback ports only that user (the front door's) may connect to.
    /// The service machines' web servers trust the identity header the front door sets,
    /// so no other process of the cell, nor a machine sharing its network, may reach them.
    pub front_door_only: Option<(u32, Vec<u16>)>,
}

fn set_name(what: &str, v6: bool) -> String {
    format!("{what}{}", if v6 { "6" } else { "4" })
}

impl Plan {
    /// The table for `vpn` on `interface`. Disabled peers are in no set.
    pub fn new(vpn: &Vpn, interface: &str) -> Self {
        let services = Service::ALL
            .iter()
            .map(|s| {
                (
                    *s,
                    vpn.service4(*s).map(IpAddr::V4),
                    IpAddr::V6(vpn.service6(*s)),
                    s.ports().to_vec(),
                )
            })
            .collect();
        let shape = Shape {
            interface: interface.to_owned(),
            listen_port: vpn.listen_port,
            subnet4: vpn.subnet4.to_string(),
            prefix6: vpn.prefix6.to_string(),
            services,
            redirects: Vec::new(),
            front_door_only: None,
        };
        // One bucket per (group, family); groups are the services, then lan and exit.
        let groups: Vec<&str> = Service::ALL
            .iter()
            .map(|s| s.as_str())
            .chain(["lan", "exit"])
            .collect();
        let mut buckets: Vec<Vec<IpAddr>> = vec![Vec::new(); groups.len() * 2];
        for peer in vpn.peers.iter().filter(|p| p.enabled) {
            let address6 = IpAddr::V6(vpn.peer_address6(peer));
            let address4 = vpn.peer_address4(peer).map(IpAddr::V4);
            let member = Service::ALL
                .iter()
                .map(|s| peer.access.allows(*s))
                .chain([peer.lan_access, peer.internet_exit]);
            for (group, is_member) in member.enumerate() {
                if is_member {
                    buckets[group * 2 + 1].push(address6);
                    buckets[group * 2].extend(address4);
                }
            }
        }
        let mut sets = BTreeMap::new();
        for (index, mut members) in buckets.into_iter().enumerate() {
            // Peers are usually stored in address order already.
            if !members.is_sorted() {
                members.sort_unstable();
            }
            members.dedup();
            sets.insert(set_name(groups[index / 2], index % 2 == 1), members);
        }
        Self { shape, sets }
    }

    /// Redirects `ports` ((standard, machine's)) of `service` to its machine.
    pub fn with_redirects(mut self, service: Service, ports: &[(u16, u16)]) -> Self {
        self.shape
            .redirects
            .extend(ports.iter().map(|(from, to)| (service, *from, *to)));
        self
    }

    /// Lets only `uid` connect to `ports` on the loopback.
    pub fn with_front_door_only(mut self, uid: u32, ports: &[u16]) -> Self {
        self.shape.front_door_only = Some((uid, ports.to_vec()));
        self
    }

    /// The nftables batch that replaces the whole table: create it if absent, delete it,
    /// create everything anew. Applied as one transaction.
    pub fn replace_batch(&self) -> Result<Nftables<'static>, FirewallError> {
        let mut commands = vec![
            json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
            json!({"delete": {"table": {"family": FAMILY, "name": TABLE}}}),
            json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
        ];
        commands.push(interval_set("private4", "ipv4_addr", &PRIVATE4));
        commands.push(interval_set("private6", "ipv6_addr", &PRIVATE6));
        for (name, members) in &self.sets {
            let kind = if name.ends_with('6') {
                "ipv6_addr"
            } else {
                "ipv4_addr"
            };
            commands.push(json!({"add": {"set": {
                "family": FAMILY, "table": TABLE, "name": name, "type": kind}}}));
            if !members.is_empty() {
                commands.push(elements("add", name, members.iter()));
            }
        }
        commands.extend(self.chains());
        for (chain, rule) in self.rules() {
            commands.push(json!({"add": {"rule": {
                "family": FAMILY, "table": TABLE, "chain": chain, "expr": rule}}}));
        }
        batch(commands)
    }

    /// The element changes that turn `applied`'s sets into this plan's, when the shape is
    /// the same; `None` when the whole table must be replaced instead.
    pub fn element_changes(&self, applied: &Plan) -> Option<Vec<netlink::ElementChange>> {
        if applied.shape != self.shape || applied.sets.keys().ne(self.sets.keys()) {
            return None;
        }
        let mut changes = Vec::new();
        for (name, members) in &self.sets {
            let (removed, added) = sorted_difference(&applied.sets[name], members);
            for (add, members) in [(false, removed), (true, added)] {
                if !members.is_empty() {
                    changes.push(netlink::ElementChange {
                        set: name.clone(),
                        add,
                        members,
                    });
                }
            }
        }
        Some(changes)
    }

    fn chains(&self) -> Vec<Value> {
        let chain = |name: &str, kind: &str, hook: &str, prio: i32, policy: &str| {
            json!({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": name,
                "type": kind, "hook": hook, "prio": prio, "policy": policy}}})
        };
        vec![
            chain("input", "filter", "input", 0, "drop"),
            chain("forward", "filter", "forward", 0, "drop"),
            chain("prerouting", "nat", "prerouting", -100, "accept"),
            chain("postrouting", "nat", "postrouting", 100, "accept"),
            chain("output", "filter", "output", 0, "accept"),
        ]
    }

    /// Every rule, with its chain. The count depends on the shape only.
    pub fn rules(&self) -> Vec<(&'static str, Value)> {
        let wg = self.shape.interface.as_str();
        let accept = json!({"accept": null});
        let mut rules = vec![
            (
                "input",
                json!([ct_state(&["established", "related"]), accept]),
            ),
            ("input", json!([ct_state(&["invalid"]), {"drop": null}])),
            ("input", json!([eq(meta("iifname"), json!("lo")), accept])),
        ];
        // What prerouting redirected to a machine, before any rule on the address the
        // redirect chose (the incoming interface's first, maybe a service's).
        let machine_ports: Vec<u16> = self.shape.redirects.iter().map(|(_, _, to)| *to).collect();
        if !machine_ports.is_empty() {
            rules.push((
                "input",
                json!([
                    {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}},
                    eq(payload("tcp", "dport"), set_of(&machine_ports)),
                    accept
                ]),
            ));
        }
        // Only connections to the cell itself: a device's mail to other servers (through
        // the internet exit or to the LAN) passes untouched.
        let to_cell = json!({"match": {"op": "==",
            "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}});
        for (service, from, to) in &self.shape.redirects {
            let redirect = json!({"redirect": {"port": to}});
            for (protocol, v6) in [("ip", false), ("ip6", true)] {
                rules.push((
                    "prerouting",
                    json!([
                        eq(meta("iifname"), json!(wg)),
                        eq(
                            payload(protocol, "saddr"),
                            json!(format!("@{}", set_name(service.as_str(), v6)))
                        ),
                        eq(payload("tcp", "dport"), json!(from)),
                        to_cell,
                        redirect
                    ]),
                ));
            }
            rules.push((
                "prerouting",
                json!([
                    {"match": {"op": "!=", "left": meta("iifname"), "right": wg}},
                    eq(payload("tcp", "dport"), json!(from)),
                    to_cell,
                    redirect
                ]),
            ));
        }
        if let Some((uid, ports)) = &self.shape.front_door_only {
            rules.push((
                "output",
                json!([
                    eq(meta("oifname"), json!("lo")),
                    eq(payload("tcp", "dport"), set_of(ports)),
                    {"match": {"op": "!=", "left": meta("skuid"), "right": uid}},
                    {"reject": {"type": "tcp reset"}}
                ]),
            ));
        }
        rules.extend([
            // By number: the image has no /etc/protocols for nft to look names up in.
            (
                "input",
                json!([eq(meta("l4proto"), json!(IPPROTO_ICMP)), accept]),
            ),
            (
                "input",
                json!([eq(meta("l4proto"), json!(IPPROTO_ICMPV6)), accept]),
            ),
            (
                "input",
                json!([
                    eq(payload("udp", "dport"), json!(self.shape.listen_port)),
                    accept
                ]),
            ),
            // DHCP and DHCPv6 replies to the cell's own address leases, and requests to
            // its DHCP server (sent from 0.0.0.0, so no source can be required; the
            // server runs only when it is turned on).
            (
                "input",
                json!([eq(payload("udp", "dport"), set_of(&[67, 68, 546])), accept]),
            ),
        ]);
        for (service, address4, address6, ports) in &self.shape.services {
            let families = [("ip", *address4), ("ip6", Some(*address6))];
            for (protocol, address) in families {
                let Some(address) = address else { continue };
                let set = format!("@{}", set_name(service.as_str(), protocol == "ip6"));
                let ports: Vec<u16> = ports.clone();
                rules.push((
                    "input",
                    json!([
                        eq(meta("iifname"), json!(wg)),
                        eq(payload(protocol, "daddr"), json!(address.to_string())),
                        eq(payload(protocol, "saddr"), json!(set)),
                        eq(payload("tcp", "dport"), set_of(&ports)),
                        accept
                    ]),
                ));
                // Whoever is not in the service's set reaches none of its ports.
                rules.push((
                    "input",
                    json!([eq(payload(protocol, "daddr"), json!(address.to_string())), {"drop": null}]),
                ));
            }
        }
        rules.push((
            "input",
            json!([eq(payload("tcp", "dport"), set_of(&WEB_PORTS)), accept]),
        ));
        for (protocol, private) in [("ip", "@private4"), ("ip6", "@private6")] {
            rules.push((
                "input",
                json!([
                    eq(payload(protocol, "saddr"), json!(private)),
                    eq(payload("udp", "dport"), set_of(&INTERNAL_UDP_PORTS)),
                    accept
                ]),
            ));
            rules.push((
                "input",
                json!([
                    eq(payload(protocol, "saddr"), json!(private)),
                    eq(payload("tcp", "dport"), set_of(&INTERNAL_TCP_PORTS)),
                    accept
                ]),
            ));
        }
        rules.push((
            "forward",
            json!([ct_state(&["established", "related"]), accept]),
        ));
        rules.push(("forward", json!([ct_state(&["invalid"]), {"drop": null}])));
        for (protocol, v6) in [("ip", false), ("ip6", true)] {
            let private = if v6 { "@private6" } else { "@private4" };
            let from_vpn = [
                eq(meta("iifname"), json!(wg)),
                json!({"match": {"op": "!=", "left": meta("oifname"), "right": wg}}),
            ];
            rules.push((
                "forward",
                json!([
                    from_vpn[0],
                    from_vpn[1],
                    eq(payload(protocol, "daddr"), json!(private)),
                    eq(
                        payload(protocol, "saddr"),
                        json!(format!("@{}", set_name("lan", v6)))
                    ),
                    accept
                ]),
            ));
            rules.push((
                "forward",
                json!([
                    from_vpn[0], from_vpn[1],
                    {"match": {"op": "!=", "left": payload(protocol, "daddr"), "right": private}},
                    eq(payload(protocol, "saddr"), json!(format!("@{}", set_name("exit", v6)))),
                    accept
                ]),
            ));
        }
        for (protocol, subnet) in [("ip", &self.shape.subnet4), ("ip6", &self.shape.prefix6)] {
            let (address, len) = subnet.split_once('/').unwrap_or((subnet, "32"));
            let len: u8 = len.parse().unwrap_or(32);
            rules.push((
                "postrouting",
                json!([
                    eq(payload(protocol, "saddr"), json!({"prefix": {"addr": address, "len": len}})),
                    {"match": {"op": "!=", "left": meta("oifname"), "right": wg}},
                    {"masquerade": null}
                ]),
            ));
        }
        rules
    }

    /// How many set elements the table holds.
    pub fn element_count(&self) -> usize {
        self.sets.values().map(Vec::len).sum::<usize>() + PRIVATE4.len() + PRIVATE6.len()
    }
}

/// What is only in `before`, and what is only in `after`; both sorted and unique.
fn sorted_difference(before: &[IpAddr], after: &[IpAddr]) -> (Vec<IpAddr>, Vec<IpAddr>) {
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < before.len() || j < after.len() {
        match (before.get(i), after.get(j)) {
            (Some(b), Some(a)) if b == a => {
                i += 1;
                j += 1;
            }
            (Some(b), Some(a)) if b < a => {
                removed.push(*b);
                i += 1;
            }
            (Some(b), None) => {
                removed.push(*b);
                i += 1;
            }
            (_, Some(a)) => {
                added.push(*a);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (removed, added)
}

fn batch(commands: Vec<Value>) -> Result<Nftables<'static>, FirewallError> {
    serde_json::from_value(json!({"nftables": commands})).map_err(FirewallError::Schema)
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn eq(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

fn set_of(ports: &[u16]) -> Value {
    json!({"set": ports})
}

fn ct_state(states: &[&str]) -> Value {
    json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": states}})
}

fn interval_set(name: &str, kind: &str, members: &[(&str, u8)]) -> Value {
    let elem: Vec<Value> = members
        .iter()
        .map(|(addr, len)| json!({"prefix": {"addr": addr, "len": len}}))
        .collect();
    json!({"add": {"set": {"family": FAMILY, "table": TABLE, "name": name, "type": kind,
        "flags": ["interval"], "elem": elem}}})
}

fn elements<'a>(verb: &str, set: &str, members: impl Iterator<Item = &'a IpAddr>) -> Value {
    let elem: Vec<String> = members.map(IpAddr::to_string).collect();
    json!({verb: {"element": {"family": FAMILY, "table": TABLE, "name": set, "elem": elem}}})
}

/// The live table, as nft reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Live {
    pub exists: bool,
    pub rules: usize,
    /// Set name → members, sorted.
    pub sets: BTreeMap<String, Vec<IpAddr>>,
}

/// Writes plans to the kernel, remembering the last one so that the next write can be a
/// set-element update.
#[derive(Debug, Default)]
pub struct Firewall {
    applied: Option<Plan>,
    netfilter: Option<netlink::Netfilter>,
}

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Nothing,
    Elements,
    Table,
}

impl Firewall {
    /// Brings the kernel to `plan`: an element update when the shape is unchanged since the
    /// last write, otherwise the whole table. Keeps `plan` as the record of what is live.
    pub fn apply(&mut self, plan: Plan) -> Result<Applied, FirewallError> {
        if let Some(applied) = &self.applied {
            if let Some(changes) = plan.element_changes(applied) {
                if changes.is_empty() {
                    return Ok(Applied::Nothing);
                }
                match self.send_elements(&changes) {
                    Ok(()) => {
                        self.applied = Some(plan);
                        return Ok(Applied::Elements);
                    }
                    // The table may have been changed behind our back: rewrite it whole.
                    Err(error) => {
                        tracing::warn!(%error, "set update refused; replacing table inet cell")
                    }
                }
            }
        }
        self.replace(plan)?;
        Ok(Applied::Table)
    }

    /// Checks the live table against `plan` and rewrites it whole if they differ; what a
    /// periodic pass runs, so that changes made behind celld's back are undone.
    pub fn verify(&mut self, plan: Plan) -> Result<Applied, FirewallError> {
        let live = read_live()?;
        let expected_rules = plan.rules().len();
        let expected_sets = plan
            .sets
            .iter()
            .all(|(name, members)| live.sets.get(name) == Some(members));
        if live.exists && live.rules == expected_rules && expected_sets {
            self.applied = Some(plan);
            return Ok(Applied::Nothing);
        }
        self.replace(plan)?;
        Ok(Applied::Table)
    }

    fn send_elements(&mut self, changes: &[netlink::ElementChange]) -> std::io::Result<()> {
        let netfilter = match &mut self.netfilter {
            Some(netfilter) => netfilter,
            None => self.netfilter.insert(netlink::Netfilter::open()?),
        };
        let result = netfilter.apply(TABLE, changes);
        if result.is_err() {
            // A socket that saw an error may hold stale replies: start afresh next time.
            self.netfilter = None;
        }
        result
    }

    fn replace(&mut self, plan: Plan) -> Result<(), FirewallError> {
        self.applied = None;
        nftables::helper::apply_ruleset(&plan.replace_batch()?).map_err(FirewallError::Apply)?;
        self.applied = Some(plan);
        Ok(())
    }
}

/// The live `inet cell` table from `nft -j`; `exists: false` when there is none.
pub fn read_live() -> Result<Live, FirewallError> {
    let output = Command::new("nft")
        .args(["-j", "list", "table", FAMILY, TABLE])
        .output()
        .map_err(|e| FirewallError::Read(format!("running nft: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No such file or directory") {
            return Ok(Live::default());
        }
        return Err(FirewallError::Read(stderr.trim().to_owned()));
    }
    let document: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| FirewallError::Read(format!("nft printed invalid JSON: {e}")))?;
    Ok(parse_live(&document))
}

fn parse_live(document: &Value) -> Live {
    let mut live = Live {
        exists: true,
        ..Live::default()
    };
    let objects = document["nftables"].as_array().cloned().unwrap_or_default();
    for object in objects {
        if object.get("rule").is_some() {
            live.rules += 1;
        }
        if let Some(set) = object.get("set") {
            let Some(name) = set["name"].as_str() else {
                continue;
            };
            if name.starts_with("private") {
                continue;
            }
            let mut members: Vec<IpAddr> = set["elem"]
                .as_array()
                .map(|elems| {
                    elems
                        .iter()
                        .filter_map(|e| e.as_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            members.sort_unstable();
            live.sets.insert(name.to_owned(), members);
        }
    }
    live
}

/// The live table as nft prints it, for people; empty when there is none.
pub fn ruleset_text() -> Result<String, FirewallError> {
    let output = Command::new("nft")
        .args(["list", "table", FAMILY, TABLE])
        .output()
        .map_err(|e| FirewallError::Read(format!("running nft: {e}")))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No such file or directory") {
        Ok(String::new())
    } else {
        Err(FirewallError::Read(stderr.trim().to_owned()))
    }
}

/// Removes the table (when the VPN is switched off or celld is uninstalled).
pub fn remove() -> Result<(), FirewallError> {
    let batch = batch(vec![
        json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
        json!({"delete": {"table": {"family": FAMILY, "name": TABLE}}}),
    ])?;
    nftables::helper::apply_ruleset(&batch).map_err(FirewallError::Apply)
}

/// VPN settings with many peers, for this crate's tests and benchmarks.
pub mod testing {
    use cell_model::net::{UlaPrefix, WgPublicKey};
    use cell_model::vpn::{Peer, PeerName, ServiceAccess, Vpn};
    use cell_model::Username;

    /// `peers` peers on host numbers 16 onwards, each shaped by `shape(index, peer)`;
    /// keys are the index, owners alice.
    pub fn vpn(peers: u32, shape: impl Fn(u32, &mut Peer)) -> Vpn {
        let prefix = UlaPrefix::parse("fd11:2233:4455:1::/64").expect("a valid ULA prefix");
        let mut vpn = Vpn::new(prefix);
        for i in 0..peers {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            let mut peer = Peer {
                name: PeerName::parse(&format!("p{i}")).expect("a valid peer name"),
                owner: Username::parse("alice").expect("a valid user name"),
                public_key: WgPublicKey::from_bytes(key),
                host: 16 + i,
                access: ServiceAccess::default(),
                internet_exit: false,
                lan_access: false,
                keepalive: 0,
                enabled: true,
                key_on_cell: false,
            };
            shape(i, &mut peer);
            vpn.peers.push(peer);
        }
        vpn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vpn(peers: u32) -> Vpn {
        testing::vpn(peers, |i, peer| {
            peer.access.files = i % 2 == 0;
            peer.internet_exit = true;
        })
    }

    #[test]
    fn rule_count_does_not_depend_on_peers() {
        let one = Plan::new(&vpn(1), "wg0");
        let many = Plan::new(&vpn(1000), "wg0");
        assert_eq!(one.rules().len(), many.rules().len());
        assert_eq!(many.sets["exit4"].len(), 1000);
        assert_eq!(many.sets["files4"].len(), 500);
        assert_eq!(many.sets["files6"].len(), 500);
        assert!(many.sets["calendar4"].is_empty());
    }

    #[test]
    fn batches_fit_the_nftables_schema() {
        let plan = Plan::new(&vpn(3), "wg0");
        let batch = plan.replace_batch().unwrap();
        let text = serde_json::to_string(&batch).unwrap();
        assert!(text.contains("\"masquerade\""));
        assert!(text.contains("10.87.0.16"));
    }

    #[test]
    fn redirected_ports_reach_the_machine_and_vpn_peers_need_the_service() {
        let plain = Plan::new(&vpn(3), "wg0");
        let plan =
            Plan::new(&vpn(3), "wg0").with_redirects(Service::Mail, &[(25, 10025), (993, 10993)]);
        let batch = serde_json::to_string(&plan.replace_batch().unwrap()).unwrap();
        assert!(batch.contains("\"redirect\":{\"port\":10025}"), "{batch}");
        let prerouting: Vec<String> = plan
            .rules()
            .into_iter()
            .filter(|(chain, _)| *chain == "prerouting")
            .map(|(_, rule)| rule.to_string())
            .collect();
        // Per port: peers in the service's v4 and v6 sets, and everyone not on the VPN.
        assert_eq!(prerouting.len(), 6);
        assert!(prerouting
            .iter()
            .any(|r| r.contains("@mail4") && r.contains("10025")));
        assert!(prerouting
            .iter()
            .any(|r| r.contains("@mail6") && r.contains("10993")));
        assert!(!prerouting.iter().any(|r| r.contains("@calendar")));
        assert!(
            prerouting
                .iter()
                .all(|r| r.contains("\"fib\"") && r.contains("\"local\"")),
            "only connections to the cell are redirected: {prerouting:?}"
        );
        // The machine's ports are open only to what was redirected there.
        let input = plan
            .rules()
            .into_iter()
            .filter(|(c, _)| *c == "input")
            .count();
        assert_eq!(
            input,
            plain
                .rules()
                .into_iter()
                .filter(|(c, _)| *c == "input")
                .count()
                + 1
        );
        assert!(batch.contains("\"dnat\""));
    }

    #[test]
    fn updates_touch_only_changed_elements() {
        let before = Plan::new(&vpn(3), "wg0");
        let mut changed = vpn(3);
        changed.peers[1].enabled = false;
        let after = Plan::new(&changed, "wg0");
        let changes = after.element_changes(&before).unwrap();
        let gone: IpAddr = "10.87.0.17".parse().unwrap();
        assert!(!changes.is_empty());
        assert!(
            changes
                .iter()
                .all(|c| !c.add && c.members.iter().all(|m| *m == gone || m.is_ipv6())),
            "{changes:?}"
        );
        assert!(before.element_changes(&before).unwrap().is_empty());

        let mut moved = vpn(3);
        moved.listen_port = 51000;
        assert!(Plan::new(&moved, "wg0").element_changes(&before).is_none());
    }

    #[test]
    fn sorted_differences_find_both_sides() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let before = [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.4")];
        let after = [
            ip("10.0.0.2"),
            ip("10.0.0.3"),
            ip("10.0.0.4"),
            ip("10.0.0.5"),
        ];
        let (removed, added) = sorted_difference(&before, &after);
        assert_eq!(removed, [ip("10.0.0.1")]);
        assert_eq!(added, [ip("10.0.0.3"), ip("10.0.0.5")]);
        assert_eq!(sorted_difference(&after, &after), (vec![], vec![]));
    }

    #[test]
    fn disabled_peers_are_in_no_set() {
        let mut vpn = vpn(2);
        vpn.peers[0].enabled = false;
        let plan = Plan::new(&vpn, "wg0");
        assert!(plan
            .sets
            .values()
            .all(|s| !s.contains(&"10.87.0.16".parse().unwrap())));
    }

    #[test]
    fn live_tables_are_read_back_from_nft_json() {
        let document = json!({"nftables": [
            {"metainfo": {}},
            {"table": {"family": "inet", "name": "cell"}},
            {"set": {"name": "files4", "elem": ["10.87.0.16"]}},
            {"set": {"name": "files6"}},
            {"set": {"name": "private4", "elem": [{"prefix": {"addr": "10.0.0.0", "len": 8}}]}},
            {"rule": {}}, {"rule": {}}
        ]});
        let live = parse_live(&document);
        assert_eq!(live.rules, 2);
        assert_eq!(live.sets["files4"].len(), 1);
        assert!(live.sets["files6"].is_empty());
        assert!(!live.sets.contains_key("private4"));
    }
}
