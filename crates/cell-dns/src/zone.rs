//! The cell's zone as one snapshot per settings generation, and the answer to a query from
//! a given source address. Pure: no sockets, so every rule is tested directly.
//!
//! Views: a source inside a VPN network is answered with the VPN addresses of the cell
//! and its services, and a service the peer has no access to does not exist for it
//! (NXDOMAIN, the same sets the firewall uses); any other source gets the LAN addresses.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use cell_model::dns::{DnsRecord, RecordData};
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

pub use cell_model::dns::{PeerAccess, ZoneName, ZoneSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("{name:?} is not a domain name: {message}")]
    BadName { name: String, message: String },
}

/// An answer: what a response carries besides the question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
}

impl Answer {
    fn refused() -> Self {
        Self {
            code: ResponseCode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
        }
    }
}

/// An answer as text: the response code, the records, and for a name outside the zone the
/// servers it would be asked of (none: refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub code: String,
    pub answers: Vec<String>,
    pub authorities: Vec<String>,
    pub forwarded_to: Vec<SocketAddr>,
}

/// At most this many CNAMEs are followed in one answer.
const MAX_CHAIN: usize = 8;
/// The RRset an ANY query gets, by preference (RFC 8482: one RRset).
const ANY_ORDER: [RecordType; 6] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::MX,
    RecordType::TXT,
    RecordType::SRV,
];

/// A snapshot ready to answer from: names parsed once.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Name,
    snapshot: ZoneSnapshot,
    soa: Record,
    ns: Record,
    /// The names, absolute, with their entry.
    names: Vec<(Name, ZoneName)>,
    /// The user records, ready to send, by owner name.
    records: HashMap<Name, Vec<Record>>,
    /// Every name above a user record, up to the origin: they exist (as empty
    /// non-terminals, if nothing else).
    record_ancestors: HashSet<Name>,
    /// Zones asked of other servers, deepest first.
    forward_zones: Vec<(Name, Vec<SocketAddr>)>,
}

fn parse_name(name: &str) -> Result<Name, ZoneError> {
    let mut parsed = Name::from_ascii(name).map_err(|e| ZoneError::BadName {
        name: name.to_owned(),
        message: e.to_string(),
    })?;
    parsed.set_fqdn(true);
    Ok(parsed.to_lowercase())
}

fn within(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

impl Zone {
    pub fn new(snapshot: ZoneSnapshot) -> Result<Self, ZoneError> {
        let origin = parse_name(&snapshot.origin)?;
        let mut names = Vec::new();
        for entry in &snapshot.names {
            let name = if entry.label.is_empty() {
                origin.clone()
            } else {
                parse_name(&entry.label)?
                    .append_domain(&origin)
                    .map_err(|e| ZoneError::BadName {
                        name: entry.label.clone(),
                        message: e.to_string(),
                    })?
            };
            names.push((name, entry.clone()));
        }
        let hostmaster = Name::from_ascii("hostmaster")
            .and_then(|h| h.append_domain(&origin))
            .map_err(|e| ZoneError::BadName {
                name: "hostmaster".into(),
                message: e.to_string(),
            })?;
        let soa = Record::from_rdata(
            origin.clone(),
            snapshot.ttl,
            RData::SOA(SOA::new(
                origin.clone(),
                hostmaster,
                snapshot.serial,
                3600,
                600,
                86400,
                snapshot.ttl,
            )),
        );
        let ns = Record::from_rdata(origin.clone(), snapshot.ttl, RData::NS(NS(origin.clone())));
        let mut records: HashMap<Name, Vec<Record>> = HashMap::new();
        let mut record_ancestors = HashSet::new();
        for record in &snapshot.records {
            let record = user_record(&origin, record)?;
            let mut above = record.name.base_name();
            while above.num_labels() > origin.num_labels() {
                let next = above.base_name();
                record_ancestors.insert(above);
                above = next;
            }
            records.entry(record.name.clone()).or_default().push(record);
        }
        let mut forward_zones = snapshot
            .forward_zones
            .iter()
            .map(|forward| Ok((parse_name(&forward.zone)?, forward.servers.clone())))
            .collect::<Result<Vec<_>, ZoneError>>()?;
        forward_zones.sort_by_key(|(zone, _)| std::cmp::Reverse(zone.num_labels()));
        Ok(Self {
            origin,
            snapshot,
            soa,
            ns,
            names,
            records,
            record_ancestors,
            forward_zones,
        })
    }

    /// Where a name outside the zone is asked: the deepest forwarding zone holding it,
    /// else the upstreams (empty: nowhere).
    pub fn servers_for(&self, name: &Name) -> &[SocketAddr] {
        self.route_for(name).0
    }

    /// [`Self::servers_for`], with the TLS name to check them against (the upstreams may
    /// be asked over DNS-over-TLS; forwarding zones are plain DNS).
    pub fn route_for(&self, name: &Name) -> (&[SocketAddr], Option<&str>) {
        let name = name.to_lowercase();
        match self
            .forward_zones
            .iter()
            .find(|(zone, _)| zone.zone_of(&name))
        {
            Some((_, servers)) => (servers, None),
            None => (
                &self.snapshot.upstreams,
                self.snapshot.upstream_tls.as_deref(),
            ),
        }
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    pub fn snapshot(&self) -> &ZoneSnapshot {
        &self.snapshot
    }

    /// Whether `source` gets the VPN view, and which services it may see there.
    fn view(&self, source: IpAddr) -> View<'_> {
        let source = canonical(source);
        if !self
            .snapshot
            .vpn_networks
            .iter()
            .any(|(network, prefix)| within(source, *network, *prefix))
        {
            return View::Lan;
        }
        let services = self
            .snapshot
            .peers
            .iter()
            .find(|p| p.addresses.contains(&source))
            .map(|p| p.services.as_slice())
            .unwrap_or(&[]);
        View::Vpn(services)
    }

    /// The answer to `name`/`kind` asked from `source`.
    pub fn answer(&self, name: &Name, kind: RecordType, source: IpAddr) -> Answer {
        let name = name.to_lowercase();
        // Zone transfers are not offered: the zone differs per asker anyway.
        if !self.origin.zone_of(&name) || matches!(kind, RecordType::AXFR | RecordType::IXFR) {
            return Answer::refused();
        }
        let view = self.view(source);
        if kind == RecordType::ANY {
            return self.any(&name, &view);
        }
        let mut answers = Vec::new();
        let mut current = name;
        // A CNAME stands for the whole name: answer it, and follow it while it stays in
        // the zone; the response code is that of the last name (RFC 6604).
        for _ in 0..MAX_CHAIN {
            if kind != RecordType::CNAME {
                if let Some(alias) = self.cname_at(&current) {
                    answers.push(alias.clone());
                    let RData::CNAME(CNAME(target)) = &alias.data else {
                        break;
                    };
                    let looped = answers.iter().any(|r| r.name == *target);
                    if !self.origin.zone_of(target) || looped {
                        break;
                    }
                    current = target.clone();
                    continue;
                }
            }
            let (direct, found) = self.direct(&current, kind, &view);
            if !direct.is_empty() {
                answers.extend(direct);
                break;
            }
            let mut negative = self.negative(if found || self.has_children(&current, &view) {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            });
            negative.answers = answers;
            return negative;
        }
        self.positive(answers)
    }

    /// What `source` would be told for `name`/`kind`, as text for people: the query box
    /// of the DNS page. A name outside the zone shows where it would be forwarded.
    pub fn explain(
        &self,
        name: &str,
        kind: &str,
        source: IpAddr,
    ) -> Result<Explanation, ZoneError> {
        let bad = |message: String| ZoneError::BadName {
            name: name.to_owned(),
            message,
        };
        let mut asked = Name::from_ascii(name.trim()).map_err(|e| bad(e.to_string()))?;
        asked.set_fqdn(true);
        let kind: RecordType = kind
            .trim()
            .to_ascii_uppercase()
            .parse()
            .map_err(|_| bad(format!("'{kind}' is not a record type")))?;
        let answer = self.answer(&asked, kind, source);
        let outside = !self.origin.zone_of(&asked.to_lowercase());
        Ok(Explanation {
            code: match answer.code {
                ResponseCode::NoError if answer.answers.is_empty() => "NOERROR, no data".to_owned(),
                ResponseCode::NoError => "NOERROR".to_owned(),
                ResponseCode::NXDomain => "NXDOMAIN: no such name".to_owned(),
                ResponseCode::Refused => "REFUSED".to_owned(),
                other => other.to_string(),
            },
            answers: answer.answers.iter().map(ToString::to_string).collect(),
            authorities: answer.authorities.iter().map(ToString::to_string).collect(),
            forwarded_to: if outside {
                self.servers_for(&asked).to_vec()
            } else {
                Vec::new()
            },
        })
    }

    /// ANY, answered as RFC 8482 allows and NSD does: one RRset of the name — the SOA at
    /// the apex, else the first of A, AAAA, CNAME, MX, TXT, SRV it has.
    fn any(&self, name: &Name, view: &View<'_>) -> Answer {
        if *name == self.origin {
            return self.positive(vec![self.soa.clone()]);
        }
        let (all, found) = self.direct(name, RecordType::ANY, view);
        let chosen = ANY_ORDER.iter().find_map(|kind| {
            let set: Vec<Record> = all
                .iter()
                .filter(|r| r.record_type() == *kind)
                .cloned()
                .collect();
            (!set.is_empty()).then_some(set)
        });
        match chosen {
            Some(set) => self.positive(set),
            None if found || self.has_children(name, view) => self.negative(ResponseCode::NoError),
            None => self.negative(ResponseCode::NXDomain),
        }
    }

    fn records_at(&self, name: &Name) -> &[Record] {
        self.records.get(name).map_or(&[], Vec::as_slice)
    }

    fn cname_at(&self, name: &Name) -> Option<&Record> {
        self.records_at(name)
            .iter()
            .find(|r| r.record_type() == RecordType::CNAME)
    }

    /// Whether a name exists only as the parent of others (an empty non-terminal): no
    /// data, but not a non-existent name either.
    fn has_children(&self, name: &Name, view: &View<'_>) -> bool {
        self.record_ancestors.contains(name)
            || self
                .names
                .iter()
                .filter(|(_, entry)| view.sees(entry))
                .any(|(n, _)| n != name && name.zone_of(n))
    }

    /// The records at exactly `name` of `kind` in `view` (no CNAME following), and whether
    /// the name has anything at all.
    fn direct(&self, name: &Name, kind: RecordType, view: &View<'_>) -> (Vec<Record>, bool) {
        let mut answers = Vec::new();
        let mut exists = false;
        let ttl = self.snapshot.ttl;
        if *name == self.origin {
            exists = true;
            match kind {
                RecordType::SOA => answers.push(self.soa.clone()),
                RecordType::NS => answers.push(self.ns.clone()),
                _ => {}
            }
        }
        if let Some((owner, entry)) = self
            .names
            .iter()
            .find(|(n, entry)| n == name && view.sees(entry))
        {
            exists = true;
            let addresses = match view {
                View::Lan => &entry.lan,
                View::Vpn(_) => &entry.vpn,
            };
            for address in addresses {
                match (kind, address) {
                    (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => {
                        answers.push(Record::from_rdata(owner.clone(), ttl, RData::A(A(*v4))))
                    }
                    (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => answers.push(
                        Record::from_rdata(owner.clone(), ttl, RData::AAAA(AAAA(*v6))),
                    ),
                    _ => {}
                }
            }
        }
        for record in self.records_at(name) {
            exists = true;
            if kind == RecordType::ANY || record.record_type() == kind {
                answers.push(record.clone());
            }
        }
        (answers, exists)
    }

    fn positive(&self, answers: Vec<Record>) -> Answer {
        Answer {
            code: ResponseCode::NoError,
            authoritative: true,
            answers,
            authorities: Vec::new(),
        }
    }

    /// NXDOMAIN, or NODATA (NOERROR without answers), with the SOA for negative caching.
    fn negative(&self, code: ResponseCode) -> Answer {
        Answer {
            code,
            authoritative: true,
            answers: Vec::new(),
            authorities: vec![self.soa.clone()],
        }
    }
}

/// A TXT text as character-strings of at most 255 bytes each, cut between characters.
fn character_strings(text: &str) -> Vec<String> {
    let mut strings = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if current.len() + c.len_utf8() > 255 {
            strings.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    strings.push(current);
    strings
}

/// A target name as written in the settings: absolute, whether or not it ends in a dot.
fn target(name: &str) -> Result<Name, ZoneError> {
    parse_name(name.strip_suffix('.').unwrap_or(name))
}

fn user_record(origin: &Name, record: &DnsRecord) -> Result<Record, ZoneError> {
    let owner = if record.name == "@" {
        origin.clone()
    } else {
        parse_name(&record.name)?
            .append_domain(origin)
            .map_err(|e| ZoneError::BadName {
                name: record.name.clone(),
                message: e.to_string(),
            })?
    };
    let data = match &record.data {
        RecordData::A { address } => RData::A(A(*address)),
        RecordData::Aaaa { address } => RData::AAAA(AAAA(*address)),
        RecordData::Cname { target: to } => RData::CNAME(CNAME(target(to)?)),
        RecordData::Txt { text } => RData::TXT(TXT::new(character_strings(text))),
        RecordData::Mx {
            preference,
            exchange,
        } => RData::MX(MX::new(*preference, target(exchange)?)),
        RecordData::Srv {
            priority,
            weight,
            port,
            target: to,
        } => RData::SRV(SRV::new(*priority, *weight, *port, target(to)?)),
    };
    Ok(Record::from_rdata(owner, record.ttl, data))
}

enum View<'a> {
    Lan,
    Vpn(&'a [String]),
}

impl View<'_> {
    fn sees(&self, entry: &ZoneName) -> bool {
        match (self, &entry.service) {
            (_, None) | (View::Lan, Some(_)) => true,
            (View::Vpn(services), Some(service)) => services.contains(service),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn home() -> ZoneSnapshot {
        ZoneSnapshot {
            origin: "home.cell.".into(),
            serial: 7,
            ttl: 60,
            names: vec![
                ZoneName {
                    label: String::new(),
                    service: None,
                    lan: vec!["192.168.1.2".parse().unwrap()],
                    vpn: vec!["10.87.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
                },
                ZoneName {
                    label: "calendar".into(),
                    service: Some("calendar".into()),
                    lan: vec!["192.168.1.2".parse().unwrap()],
                    vpn: vec!["10.87.0.1".parse().unwrap()],
                },
            ],
            vpn_networks: vec![
                ("10.87.0.0".parse().unwrap(), 20),
                ("fd00::".parse().unwrap(), 64),
            ],
            peers: vec![
                PeerAccess {
                    addresses: vec!["10.87.0.16".parse().unwrap()],
                    services: vec!["calendar".into()],
                },
                PeerAccess {
                    addresses: vec!["10.87.0.17".parse().unwrap()],
                    services: vec![],
                },
            ],
            records: serde_json::from_value(serde_json::json!([
                {"name": "printer", "ttl": 120, "type": "A", "address": "192.168.1.9"},
                {"name": "www", "ttl": 120, "type": "CNAME", "target": "printer.home.cell."},
                {"name": "@", "ttl": 120, "type": "MX", "preference": 10, "exchange": "mail.example.org"},
                {"name": "_sip._tcp", "ttl": 120, "type": "SRV", "priority": 1, "weight": 5, "port": 5060, "target": "printer.home.cell"},
                {"name": "note", "ttl": 120, "type": "TXT", "text": "hello"}
            ]))
            .unwrap(),
            upstreams: vec!["192.0.2.53:53".parse().unwrap()],
            forward_zones: serde_json::from_value(serde_json::json!([
                {"zone": "other.cell.", "servers": ["10.88.0.1:53"]},
                {"zone": "deep.other.cell.", "servers": ["10.88.0.2:53"]}
            ]))
            .unwrap(),
            listen: Vec::new(),
            upstream_tls: None,
        }
    }

    #[test]
    fn names_outside_go_to_the_deepest_forwarding_zone_or_the_upstreams() {
        let zone = Zone::new(home()).unwrap();
        let servers = |n: &str| zone.servers_for(&name(n)).to_vec();
        assert_eq!(
            servers("Files.Other.Cell."),
            ["10.88.0.1:53".parse().unwrap()]
        );
        assert_eq!(
            servers("x.deep.other.cell."),
            ["10.88.0.2:53".parse().unwrap()]
        );
        assert_eq!(servers("example.org."), ["192.0.2.53:53".parse().unwrap()]);
        assert_eq!(
            servers("notother.cell."),
            ["192.0.2.53:53".parse().unwrap()]
        );
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn addresses(answer: &Answer) -> Vec<String> {
        answer.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn the_apex_has_soa_ns_and_the_address_of_the_view() {
        let zone = Zone::new(home()).unwrap();
        let lan: IpAddr = "192.168.1.50".parse().unwrap();
        let soa = zone.answer(&name("home.cell."), RecordType::SOA, lan);
        assert_eq!(soa.code, ResponseCode::NoError);
        assert!(soa.authoritative);
        assert!(matches!(&soa.answers[0].data, RData::SOA(s) if s.serial == 7));
        let ns = zone.answer(&name("HOME.cell."), RecordType::NS, lan);
        assert_eq!(ns.answers.len(), 1, "case does not matter");
        assert_eq!(
            addresses(&zone.answer(&name("home.cell."), RecordType::A, lan)),
            ["192.168.1.2"]
        );
        let vpn: IpAddr = "10.87.0.17".parse().unwrap();
        assert_eq!(
            addresses(&zone.answer(&name("home.cell."), RecordType::A, vpn)),
            ["10.87.0.1"]
        );
        assert_eq!(
            addresses(&zone.answer(&name("home.cell."), RecordType::AAAA, vpn)),
            ["fd00::1"]
        );
    }

    #[test]
    fn a_peer_without_access_to_a_service_gets_nxdomain_for_it() {
        let zone = Zone::new(home()).unwrap();
        let with: IpAddr = "10.87.0.16".parse().unwrap();
        let without: IpAddr = "10.87.0.17".parse().unwrap();
        let lan: IpAddr = "192.168.1.50".parse().unwrap();
        let calendar = name("calendar.home.cell.");
        assert_eq!(
            addresses(&zone.answer(&calendar, RecordType::A, with)),
            ["10.87.0.1"]
        );
        let refused = zone.answer(&calendar, RecordType::A, without);
        assert_eq!(refused.code, ResponseCode::NXDomain);
        assert!(matches!(&refused.authorities[0].data, RData::SOA(_)));
        assert_eq!(
            addresses(&zone.answer(&calendar, RecordType::A, lan)),
            ["192.168.1.2"]
        );
        let mapped: IpAddr = "::ffff:10.87.0.17".parse().unwrap();
        assert_eq!(
            zone.answer(&calendar, RecordType::A, mapped).code,
            ResponseCode::NXDomain
        );
    }

    #[test]
    fn user_records_cnames_and_empty_non_terminals() {
        let zone = Zone::new(home()).unwrap();
        let lan: IpAddr = "192.168.1.50".parse().unwrap();
        assert_eq!(
            addresses(&zone.answer(&name("printer.home.cell."), RecordType::A, lan)),
            ["192.168.1.9"]
        );
        let www = zone.answer(&name("www.home.cell."), RecordType::A, lan);
        assert_eq!(
            addresses(&www),
            ["printer.home.cell.", "192.168.1.9"],
            "the CNAME and its target"
        );
        let mx = zone.answer(&name("home.cell."), RecordType::MX, lan);
        assert_eq!(addresses(&mx), ["10 mail.example.org."]);
        let srv = zone.answer(&name("_sip._tcp.home.cell."), RecordType::SRV, lan);
        assert_eq!(srv.answers.len(), 1);
        let txt = zone.answer(&name("note.home.cell."), RecordType::TXT, lan);
        assert_eq!(txt.answers.len(), 1);
        let ent = zone.answer(&name("_tcp.home.cell."), RecordType::A, lan);
        assert_eq!(
            (ent.code, ent.answers.len()),
            (ResponseCode::NoError, 0),
            "an empty non-terminal is NODATA"
        );
        let any = zone.answer(&name("home.cell."), RecordType::ANY, lan);
        assert_eq!(addresses(&any).len(), 1, "ANY gets one RRset: {any:?}");
        assert_eq!(any.answers[0].record_type(), RecordType::SOA);
        let any = zone.answer(&name("_sip._tcp.home.cell."), RecordType::ANY, lan);
        assert_eq!(any.answers[0].record_type(), RecordType::SRV);
        let axfr = zone.answer(&name("home.cell."), RecordType::AXFR, lan);
        assert_eq!(axfr.code, ResponseCode::Refused, "no zone transfers");
    }

    #[test]
    fn cname_chains_end_with_the_code_of_their_last_name() {
        let mut snapshot = home();
        snapshot.records = serde_json::from_value(serde_json::json!([
            {"name": "a", "ttl": 120, "type": "CNAME", "target": "b.home.cell."},
            {"name": "b", "ttl": 120, "type": "CNAME", "target": "c.home.cell."},
            {"name": "c", "ttl": 120, "type": "A", "address": "192.168.1.3"},
            {"name": "gone", "ttl": 120, "type": "CNAME", "target": "missing.home.cell."},
            {"name": "loop1", "ttl": 120, "type": "CNAME", "target": "loop2.home.cell."},
            {"name": "loop2", "ttl": 120, "type": "CNAME", "target": "loop1.home.cell."}
        ]))
        .unwrap();
        let zone = Zone::new(snapshot).unwrap();
        let lan: IpAddr = "192.168.1.50".parse().unwrap();
        let chain = zone.answer(&name("a.home.cell."), RecordType::A, lan);
        assert_eq!(
            addresses(&chain),
            ["b.home.cell.", "c.home.cell.", "192.168.1.3"]
        );
        let nodata = zone.answer(&name("a.home.cell."), RecordType::TXT, lan);
        assert_eq!(
            (nodata.code, nodata.answers.len(), nodata.authorities.len()),
            (ResponseCode::NoError, 2, 1),
            "the CNAMEs, then NODATA with the SOA"
        );
        let gone = zone.answer(&name("gone.home.cell."), RecordType::A, lan);
        assert_eq!((gone.code, gone.answers.len()), (ResponseCode::NXDomain, 1));
        let looped = zone.answer(&name("loop1.home.cell."), RecordType::A, lan);
        assert_eq!(looped.answers.len(), 2, "a loop is answered once around");
    }

    #[test]
    fn explanations_are_the_answers_as_text() {
        let zone = Zone::new(home()).unwrap();
        let peer: IpAddr = "10.87.0.17".parse().unwrap();
        let hidden = zone.explain("calendar.home.cell", "a", peer).unwrap();
        assert_eq!(hidden.code, "NXDOMAIN: no such name");
        let www = zone
            .explain("www.home.cell", "A", "192.168.1.50".parse().unwrap())
            .unwrap();
        assert_eq!(www.answers.len(), 2, "{www:?}");
        assert!(www.answers[0].contains("CNAME"), "{www:?}");
        let outside = zone.explain("example.org", "A", peer).unwrap();
        assert_eq!(outside.forwarded_to, ["192.0.2.53:53".parse().unwrap()]);
        assert!(zone.explain("home.cell", "BOGUS", peer).is_err());
    }

    #[test]
    fn long_text_is_cut_between_characters() {
        let text = "é".repeat(200);
        let strings = character_strings(&text);
        assert_eq!(strings.concat(), text);
        assert!(strings.iter().all(|s| s.len() <= 255), "{strings:?}");
        assert_eq!(strings.len(), 2);
    }

    #[test]
    fn unknown_names_nodata_and_other_zones() {
        let zone = Zone::new(home()).unwrap();
        let lan: IpAddr = "192.168.1.50".parse().unwrap();
        assert_eq!(
            zone.answer(&name("nope.home.cell."), RecordType::A, lan)
                .code,
            ResponseCode::NXDomain
        );
        let nodata = zone.answer(&name("calendar.home.cell."), RecordType::MX, lan);
        assert_eq!(nodata.code, ResponseCode::NoError);
        assert!(nodata.answers.is_empty() && !nodata.authorities.is_empty());
        let other = zone.answer(&name("example.org."), RecordType::A, lan);
        assert_eq!(other.code, ResponseCode::Refused);
        assert!(!other.authoritative);
    }
}
