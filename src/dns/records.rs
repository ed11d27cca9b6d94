//! The zone as data: which names under the domain exist, what they answer, and for whom.
//!
//! [`Records`] is the pure table derived from devenv.yaml (and, at run time, from other
//! sources such as user routes or the cluster's Ingresses). [`Zone`] is that table compiled for
//! answering: hickory [`Record`]s per name, type and view, from which the generic path
//! answers and [`super::fast`] precomputes its wire answers.
//!
//! Not for: sockets, forwarding or the live swapping of tables (see [`super::store`]).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::Context;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::config::{Config, RecordKind};

/// The source name of the entries derived from devenv.yaml.
pub const CONFIG_SOURCE: &str = "devenv.yaml";

/// The most CNAMEs followed inside the zone before giving up (a loop in `dns.records`).
const MAX_CNAME_CHAIN: usize = 8;

/// What one name answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// An infrastructure hostname: the host gateway (or the service's own loopback address)
    /// from the host, the view's infrastructure address from a Docker or KinD network.
    Infrastructure(Option<IpAddr>),
    /// An application hostname: the cluster's ingress.
    Applications,
    /// A fixed IPv4 address (the same for every view).
    A(Ipv4Addr),
    /// A fixed IPv6 address.
    Aaaa(Ipv6Addr),
    /// An alias (fully qualified, lowercase, without the trailing dot).
    Cname(String),
    /// Text.
    Txt(String),
}

/// One name under the domain and what it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Fully qualified, lowercase, without the trailing dot (`grafana.macula.local`).
    pub name: String,
    pub data: Data,
}

impl Entry {
    /// An entry, its name normalised (lowercase, no trailing dot).
    pub fn new(name: &str, data: Data) -> Entry {
        Entry {
            name: name.trim_end_matches('.').to_ascii_lowercase(),
            data,
        }
    }
}

/// The answers given to clients on one network (a Docker or KinD network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub cidr: ipnet::IpNet,
    pub infrastructure: Ipv4Addr,
    pub applications: Ipv4Addr,
}

/// Zone-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The domain, lowercase, without the trailing dot.
    pub domain: String,
    pub ttl: u32,
    /// Answer AAAA with `::1` for loopback clients.
    pub ipv6: bool,
    /// Infrastructure address for loopback clients (and anyone outside the views).
    pub infrastructure: Ipv4Addr,
    /// Applications address for loopback clients (by routing mode).
    pub applications: Ipv4Addr,
    pub views: Vec<View>,
}

/// The pure table: settings plus the entries of each source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records {
    pub settings: Settings,
    /// Entries by source (`devenv.yaml`, `routes`, `ingress`, ...). A later source does not
    /// override an earlier one: all entries of a name are merged.
    pub sources: BTreeMap<String, Vec<Entry>>,
}

impl Records {
    /// The table devenv.yaml describes: every enabled service's hostnames (Tcp ones too) to its
    /// address, `dns.records`, and the settings of the wildcard and the views.
    pub fn from_config(config: &Config) -> Records {
        let d = &config.dns;
        let settings = Settings {
            domain: config.domain.trim_end_matches('.').to_ascii_lowercase(),
            ttl: d.ttl,
            ipv6: d.ipv6,
            infrastructure: d.infrastructure,
            applications: config.applications_address(),
            views: d
                .views
                .iter()
                .map(|v| View {
                    cidr: v.cidr,
                    infrastructure: v.infrastructure,
                    applications: match config.routing.mode {
                        crate::config::RoutingMode::SplitIp => v.applications,
                        crate::config::RoutingMode::Ports => v.infrastructure,
                    },
                })
                .collect(),
        };
        let mut entries = Vec::new();
        for service in config.services() {
            let own = config.services.get(&service.name).and_then(|s| s.address);
            for route in &service.routes {
                entries.push(Entry::new(&route.hostname, Data::Infrastructure(own)));
            }
        }
        for r in &d.records {
            let name = config.fqdn(&r.name);
            let data = match r.kind {
                // Validation has checked the values; a value that still does not parse is skipped
                // rather than taking the resolver down.
                RecordKind::A => match r.value.parse() {
                    Ok(ip) => Data::A(ip),
                    Err(_) => continue,
                },
                RecordKind::AAAA => match r.value.parse() {
                    Ok(ip) => Data::Aaaa(ip),
                    Err(_) => continue,
                },
                RecordKind::CNAME => {
                    Data::Cname(r.value.trim_end_matches('.').to_ascii_lowercase())
                }
                RecordKind::TXT => Data::Txt(r.value.clone()),
            };
            entries.push(Entry::new(&name, data));
        }
        let mut sources = BTreeMap::new();
        sources.insert(CONFIG_SOURCE.to_string(), entries);
        Records { settings, sources }
    }

    /// Replace the entries of one source (an empty list removes it).
    pub fn set_source(&mut self, source: &str, entries: Vec<Entry>) {
        if entries.is_empty() {
            self.sources.remove(source);
        } else {
            self.sources.insert(source.to_string(), entries);
        }
    }

    /// Every entry, source by source.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.sources.values().flatten()
    }
}

/// The records of one name for one view, by type.
#[derive(Debug, Clone, Default)]
pub(super) struct RecordSets {
    pub(super) sets: Vec<(RecordType, Vec<Record>)>,
}

impl RecordSets {
    fn get(&self, rtype: RecordType) -> Option<&[Record]> {
        self.sets
            .iter()
            .find(|(t, _)| *t == rtype)
            .map(|(_, r)| r.as_slice())
    }

    fn push(&mut self, record: Record) {
        let rtype = record.record_type();
        match self.sets.iter_mut().find(|(t, _)| *t == rtype) {
            Some((_, records)) => records.push(record),
            None => self.sets.push((rtype, vec![record])),
        }
    }
}

/// One name of the zone: its records for each view (index 0: loopback and everyone outside
/// the views; `i + 1`: `views[i]`).
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) name: Name,
    pub(super) views: Vec<RecordSets>,
}

/// The result of looking a name up in the zone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The answer section (empty: NODATA).
    pub answers: Vec<Record>,
    /// The authority section: the SOA when there is no answer.
    pub authorities: Vec<Record>,
}

/// The compiled zone, ready to answer. Immutable; a change builds a new one.
#[derive(Debug)]
pub struct Zone {
    settings: Settings,
    apex: Name,
    soa: Record,
    /// Explicit names, keyed by their lowercase wire form.
    pub(super) nodes: HashMap<Box<[u8]>, Node>,
    /// Every other name under the domain (owner `*.<domain>`).
    pub(super) wildcard: Node,
    pub(super) apex_wire: Box<[u8]>,
    pub(super) view_cidrs: Vec<ipnet::IpNet>,
    pub(super) recursion_available: bool,
    serial: u32,
    record_count: usize,
}

/// Whether a client address is on this host's loopback (v4-mapped v6 included): the only
/// clients names outside the zone are resolved for.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The lowercase wire form of a fully qualified name (`\x07grafana\x06macula\x05local\x00`).
pub(super) fn wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

fn node_mut<'a>(
    nodes: &'a mut HashMap<Box<[u8]>, Node>,
    name: &Name,
    view_count: usize,
) -> &'a mut Node {
    nodes
        .entry(wire(name).into_boxed_slice())
        .or_insert_with(|| Node {
            name: name.clone(),
            views: vec![RecordSets::default(); view_count],
        })
}

fn fqdn(name: &str) -> anyhow::Result<Name> {
    let mut n = Name::from_ascii(name).with_context(|| format!("`{name}` is not a DNS name"))?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}

impl Zone {
    /// Compile a table. `serial` becomes the SOA serial (it grows with every change);
    /// `recursion_available` sets RA in answers (whether names outside the zone are forwarded).
    pub fn compile(
        records: &Records,
        serial: u32,
        recursion_available: bool,
    ) -> anyhow::Result<Zone> {
        let s = &records.settings;
        let apex = fqdn(&s.domain)?;
        let ns_name = fqdn(&format!("ns.{}", s.domain))?;
        let ttl = s.ttl;
        let soa = Record::from_rdata(
            apex.clone(),
            ttl,
            RData::SOA(SOA::new(
                ns_name.clone(),
                fqdn(&format!("hostmaster.{}", s.domain))?,
                serial,
                3600,
                600,
                86_400,
                ttl,
            )),
        );
        let ns = Record::from_rdata(apex.clone(), ttl, RData::NS(NS(ns_name.clone())));
        let view_count = s.views.len() + 1;
        // (infrastructure, applications) per view; AAAA only for loopback clients.
        let addresses: Vec<(Ipv4Addr, Ipv4Addr, bool)> =
            std::iter::once((s.infrastructure, s.applications, s.ipv6))
                .chain(
                    s.views
                        .iter()
                        .map(|v| (v.infrastructure, v.applications, false)),
                )
                .collect();
        let address_records =
            |owner: &Name, view: usize, own: Option<IpAddr>, apps: bool| -> Vec<Record> {
                let (infra, app, v6) = addresses[view];
                let mut out = Vec::new();
                let v4 = match (apps, own, view) {
                    (true, _, _) => app,
                    (false, Some(IpAddr::V4(ip)), 0) => ip,
                    (false, _, _) => infra,
                };
                out.push(Record::from_rdata(owner.clone(), ttl, RData::A(A(v4))));
                if v6 {
                    let ip = match own {
                        Some(IpAddr::V6(ip)) if !apps => ip,
                        _ => Ipv6Addr::LOCALHOST,
                    };
                    out.push(Record::from_rdata(
                        owner.clone(),
                        ttl,
                        RData::AAAA(AAAA(ip)),
                    ));
                }
                out
            };

        let mut nodes: HashMap<Box<[u8]>, Node> = HashMap::new();
        {
            let apex_node = node_mut(&mut nodes, &apex, view_count);
            for v in &mut apex_node.views {
                v.push(soa.clone());
                v.push(ns.clone());
            }
        }
        {
            let n = node_mut(&mut nodes, &ns_name, view_count);
            for view in 0..view_count {
                for r in address_records(&ns_name, view, None, false) {
                    n.views[view].push(r);
                }
            }
        }
        let mut record_count = 2;
        let mut seen: BTreeMap<(String, String), ()> = BTreeMap::new();
        for entry in records.entries() {
            let name = match fqdn(&entry.name) {
                Ok(n) if apex.zone_of(&n) => n,
                // A name outside the domain cannot be answered authoritatively; skip it.
                _ => continue,
            };
            // The same fact from two sources counts once.
            if seen
                .insert((entry.name.clone(), format!("{:?}", entry.data)), ())
                .is_some()
            {
                continue;
            }
            record_count += 1;
            let n = node_mut(&mut nodes, &name, view_count);
            for view in 0..view_count {
                let recs = match &entry.data {
                    Data::Infrastructure(own) => address_records(&name, view, *own, false),
                    Data::Applications => address_records(&name, view, None, true),
                    Data::A(ip) => vec![Record::from_rdata(name.clone(), ttl, RData::A(A(*ip)))],
                    Data::Aaaa(ip) => vec![Record::from_rdata(
                        name.clone(),
                        ttl,
                        RData::AAAA(AAAA(*ip)),
                    )],
                    Data::Cname(target) => match fqdn(target) {
                        Ok(t) => vec![Record::from_rdata(
                            name.clone(),
                            ttl,
                            RData::CNAME(CNAME(t)),
                        )],
                        Err(_) => continue,
                    },
                    Data::Txt(text) => vec![Record::from_rdata(
                        name.clone(),
                        ttl,
                        RData::TXT(TXT::new(vec![text.clone()])),
                    )],
                };
                for r in recs {
                    // Address entries for a name that also has fixed addresses would repeat
                    // them; keep each record once.
                    if !n.views[view]
                        .get(r.record_type())
                        .is_some_and(|set| set.contains(&r))
                    {
                        n.views[view].push(r);
                    }
                }
            }
        }
        let wildcard_name = fqdn(&format!("*.{}", s.domain))?;
        let wildcard = Node {
            views: (0..view_count)
                .map(|view| {
                    let mut sets = RecordSets::default();
                    for r in address_records(&wildcard_name, view, None, true) {
                        sets.push(r);
                    }
                    sets
                })
                .collect(),
            name: wildcard_name,
        };
        Ok(Zone {
            settings: s.clone(),
            apex_wire: wire(&apex).into_boxed_slice(),
            apex,
            soa,
            nodes,
            wildcard,
            view_cidrs: s.views.iter().map(|v| v.cidr).collect(),
            recursion_available,
            serial,
            record_count,
        })
    }

    /// The zone's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The apex (`macula.local.`).
    pub fn apex(&self) -> &Name {
        &self.apex
    }

    /// The SOA serial of this version of the zone.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// How many records the zone holds (SOA and NS included, the wildcard not).
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// Whether answers carry RA (names outside the zone are forwarded).
    pub fn recursion_available(&self) -> bool {
        self.recursion_available
    }

    /// The view a client at `ip` gets: the first view whose CIDR holds it, else 0 (loopback
    /// answers).
    pub fn view_of(&self, ip: IpAddr) -> usize {
        let ip = match ip {
            // A v4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.view_cidrs
            .iter()
            .position(|c| c.contains(&ip))
            .map_or(0, |i| i + 1)
    }

    /// Whether `name` is the apex or under it.
    pub fn contains(&self, name: &Name) -> bool {
        self.apex.zone_of(name)
    }

    pub(super) fn node(&self, name: &Name) -> Option<&Node> {
        self.nodes.get(wire(name).as_slice())
    }

    /// Answer `name`/`rtype` for view `view`. `None` when the name is outside the zone.
    /// Every name under the domain exists (the wildcard), so there is never NXDOMAIN: a type
    /// the name does not have gets NODATA (no answers, the SOA in authority).
    pub fn lookup(&self, name: &Name, rtype: RecordType, view: usize) -> Option<Answer> {
        if !self.contains(name) {
            return None;
        }
        let view = view.min(self.view_cidrs.len());
        let mut answers = Vec::new();
        let mut current = name.to_lowercase();
        for _ in 0..MAX_CNAME_CHAIN {
            if !self.contains(&current) {
                break;
            }
            let (node, is_wildcard) = match self.node(&current) {
                Some(n) => (n, false),
                None => (&self.wildcard, true),
            };
            let sets = &node.views[view];
            let owned = |r: &Record| -> Record {
                let mut r = r.clone();
                if is_wildcard {
                    r.name = current.clone();
                }
                r
            };
            if rtype == RecordType::ANY {
                for (_, set) in &sets.sets {
                    answers.extend(set.iter().map(owned));
                }
                break;
            }
            if let Some(set) = sets.get(rtype) {
                answers.extend(set.iter().map(owned));
                break;
            }
            match sets.get(RecordType::CNAME).and_then(|s| s.first()) {
                Some(cname) => {
                    answers.push(owned(cname));
                    match &cname.data {
                        RData::CNAME(CNAME(target)) => current = target.to_lowercase(),
                        _ => break,
                    }
                }
                None => break,
            }
        }
        let authorities = if answers.is_empty() {
            vec![self.soa.clone()]
        } else {
            Vec::new()
        };
        Some(Answer {
            answers,
            authorities,
        })
    }

    /// Every explicit name with its loopback-view records, sorted, for `status` and `query`.
    pub fn listing(&self) -> Vec<(String, RecordType, String)> {
        let mut out: Vec<_> = self
            .nodes
            .values()
            .flat_map(|n| {
                n.views[0].sets.iter().flat_map(move |(t, set)| {
                    set.iter()
                        .map(move |r| (n.name.to_ascii(), *t, r.data.to_string()))
                })
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(config: &Config) -> Zone {
        Zone::compile(&Records::from_config(config), 1, true).unwrap()
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn a(answer: &Answer) -> Vec<String> {
        answer.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn infrastructure_applications_and_nodata() {
        let z = zone(&Config::default());
        let grafana = z
            .lookup(&name("GraFana.Macula.Local."), RecordType::A, 0)
            .unwrap();
        assert_eq!(a(&grafana), ["127.0.0.1"]);
        let app = z
            .lookup(&name("shop.macula.local."), RecordType::A, 0)
            .unwrap();
        assert_eq!(a(&app), ["127.0.0.2"]);
        assert_eq!(app.answers[0].name, name("shop.macula.local."));
        let aaaa = z
            .lookup(&name("grafana.macula.local."), RecordType::AAAA, 0)
            .unwrap();
        assert!(aaaa.answers.is_empty());
        assert_eq!(aaaa.authorities[0].record_type(), RecordType::SOA);
        assert!(z.lookup(&name("example.com."), RecordType::A, 0).is_none());
    }

    #[test]
    fn ports_mode_service_address_views_and_cname() {
        let mut c = Config::default();
        c.routing.mode = crate::config::RoutingMode::Ports;
        c.services.insert(
            "grafana".into(),
            crate::config::ServiceSettings {
                address: Some("127.0.0.7".parse().unwrap()),
                ..Default::default()
            },
        );
        c.dns.views.push(crate::config::DnsView {
            cidr: "172.18.0.0/16".parse().unwrap(),
            infrastructure: "172.18.0.1".parse().unwrap(),
            applications: "172.18.0.2".parse().unwrap(),
        });
        c.dns.records.push(crate::config::DnsRecord {
            name: "www".into(),
            kind: RecordKind::CNAME,
            value: "grafana.macula.local".into(),
        });
        let z = zone(&c);
        let app = z
            .lookup(&name("shop.macula.local."), RecordType::A, 0)
            .unwrap();
        assert_eq!(a(&app), ["127.0.0.1"]);
        let g = z
            .lookup(&name("grafana.macula.local."), RecordType::A, 0)
            .unwrap();
        assert_eq!(a(&g), ["127.0.0.7"]);
        let view = z.view_of("172.18.0.5".parse().unwrap());
        assert_eq!(view, 1);
        let g = z
            .lookup(&name("grafana.macula.local."), RecordType::A, view)
            .unwrap();
        assert_eq!(a(&g), ["172.18.0.1"]);
        let www = z
            .lookup(&name("www.macula.local."), RecordType::A, 0)
            .unwrap();
        assert_eq!(a(&www), ["grafana.macula.local.", "127.0.0.7"]);
    }
}
