//! The fast path: answers for the zone's own names, precomputed as wire bytes when the zone is
//! compiled ([`Served`]), and written straight into the response buffer without allocating or
//! parsing the query into a message.
//!
//! Only plain queries take it: one question, no answer or authority records, at most one
//! additional record which must be an EDNS(0) OPT. Of those it answers the zone's names of
//! class IN when the answer fits the client's UDP size, and refuses at once what devenv never
//! answers (other classes, zone transfers, and names outside the zone that are not to be
//! forwarded), so that a flood of those costs no more than the zone's own answers. Everything
//! else (other opcodes, EDNS versions, truncation, names to forward, malformed packets) goes
//! to hickory's generic path in [`super::handler`], which decides the same questions from the
//! same [`Zone`] records.
//!
//! Not for: sockets (see [`super::server`]) or forwarding.

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::records::{Answer, Node, Zone, is_loopback, wire};

/// Class IN.
const CLASS_IN: u16 = 1;
/// QCLASS `*` (ANY).
const CLASS_ANY: u16 = 255;
/// Incremental and full zone transfers.
const IXFR: u16 = 251;
const AXFR: u16 = 252;
/// RCODE REFUSED.
const REFUSED: u8 = 5;

/// The UDP payload size devenv advertises in EDNS (the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;

/// The query types precomputed per name; any other type gets the name's default answer.
const TYPES: [RecordType; 7] = [
    RecordType::A,
    RecordType::NS,
    RecordType::CNAME,
    RecordType::SOA,
    RecordType::TXT,
    RecordType::AAAA,
    RecordType::ANY,
];

/// A type no name has, to compute a name's answer for "anything else" (NODATA, or its CNAME).
const OTHER: RecordType = RecordType::Unknown(65_280);

/// The answer and authority sections of one response, as wire bytes. Owner names equal to the
/// question are written as a pointer to it (offset 12), so the bytes do not depend on the
/// name asked, nor on its case.
#[derive(Debug, Clone, Default)]
struct Sections {
    answers: u16,
    authorities: u16,
    bytes: Box<[u8]>,
}

/// One name's precomputed answers for one view.
#[derive(Debug, Clone, Default)]
struct ViewAnswers {
    by_type: Vec<(u16, Sections)>,
    other: Sections,
}

impl ViewAnswers {
    fn get(&self, qtype: u16) -> &Sections {
        self.by_type
            .iter()
            .find(|(t, _)| *t == qtype)
            .map_or(&self.other, |(_, s)| s)
    }
}

/// Precomputed answers of every explicit name and of the wildcard, per view.
#[derive(Debug, Default)]
struct FastTable {
    nodes: HashMap<Box<[u8]>, Vec<ViewAnswers>>,
    wildcard: Vec<ViewAnswers>,
}

fn encode(answer: &Answer, owner: &Name) -> Sections {
    let mut bytes = Vec::new();
    for record in answer.answers.iter().chain(&answer.authorities) {
        append(&mut bytes, record, owner);
    }
    Sections {
        answers: answer.answers.len() as u16,
        authorities: answer.authorities.len() as u16,
        bytes: bytes.into_boxed_slice(),
    }
}

fn append(out: &mut Vec<u8>, record: &Record, owner: &Name) {
    let mut buf = Vec::with_capacity(64);
    {
        let mut enc = BinEncoder::new(&mut buf);
        enc.set_name_encoding(NameEncoding::UncompressedLowercase);
        if record.emit(&mut enc).is_err() {
            return;
        }
    }
    if record.name.to_lowercase() == owner.to_lowercase() {
        let owner_len = wire(&record.name).len();
        out.extend_from_slice(&[0xC0, 0x0C]);
        out.extend_from_slice(&buf[owner_len..]);
    } else {
        out.extend_from_slice(&buf);
    }
}

fn compile_node(zone: &Zone, node: &Node) -> Vec<ViewAnswers> {
    (0..node.views.len())
        .map(|view| {
            let other = zone
                .lookup(&node.name, OTHER, view)
                .map(|a| encode(&a, &node.name))
                .unwrap_or_default();
            let by_type = TYPES
                .iter()
                .filter_map(|t| {
                    let answer = zone.lookup(&node.name, *t, view)?;
                    Some((u16::from(*t), encode(&answer, &node.name)))
                })
                .collect();
            ViewAnswers { by_type, other }
        })
        .collect()
}

/// A compiled zone with its precomputed wire answers: what the resolver answers from. It
/// derefs to its [`Zone`] for the generic path.
#[derive(Debug)]
pub struct Served {
    zone: Zone,
    table: FastTable,
}

impl Served {
    /// Precompute the wire answers of `zone`.
    pub fn new(zone: Zone) -> Served {
        let table = FastTable::compile(&zone);
        Served { zone, table }
    }
}

impl std::ops::Deref for Served {
    type Target = Zone;

    fn deref(&self) -> &Zone {
        &self.zone
    }
}

impl FastTable {
    /// Precompute the answers of `zone`.
    fn compile(zone: &Zone) -> FastTable {
        FastTable {
            nodes: zone
                .nodes
                .iter()
                .map(|(key, node)| (key.clone(), compile_node(zone, node)))
                .collect(),
            wildcard: compile_node(zone, &zone.wildcard),
        }
    }
}

/// What the fast path made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The response is in the output buffer.
    Answered,
    /// Not for the fast path: hand the packet to the generic handler.
    Generic,
    /// Not a query (a response, or too short to carry a header): send nothing.
    Drop,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Answer `query` from `served` into `out` when it is a plain question for the zone's names,
/// or one devenv refuses whatever the name. Allocation-free once `out` has grown to a
/// response's size.
pub fn answer(served: &Served, query: &[u8], src: IpAddr, out: &mut Vec<u8>) -> Outcome {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Outcome::Drop;
    }
    // Opcode QUERY, TC clear; one question, no answers or authorities, at most one additional.
    if query[2] & 0x7A != 0
        || u16_at(query, 4) != 1
        || u16_at(query, 6) != 0
        || u16_at(query, 8) != 0
        || u16_at(query, 10) > 1
    {
        return Outcome::Generic;
    }
    let mut name = [0u8; 256];
    let mut n = 0;
    let mut i = 12;
    loop {
        let Some(&len) = query.get(i) else {
            return Outcome::Generic;
        };
        let len = len as usize;
        if len == 0 {
            name[n] = 0;
            n += 1;
            i += 1;
            break;
        }
        // Compression in the question, or an oversized label: leave it to the generic path.
        if len > 63 || n + len + 2 > 255 || i + 1 + len > query.len() {
            return Outcome::Generic;
        }
        name[n] = len as u8;
        for (d, s) in name[n + 1..n + 1 + len]
            .iter_mut()
            .zip(&query[i + 1..i + 1 + len])
        {
            *d = s.to_ascii_lowercase();
        }
        n += len + 1;
        i += len + 1;
    }
    let question_end = i + 4;
    if question_end > query.len() {
        return Outcome::Generic;
    }
    let qtype = u16_at(query, i);
    let qclass = u16_at(query, i + 2);
    // RFC 6891: the only additional record a plain query carries is one OPT of version 0.
    let mut limit = 512usize;
    let edns = u16_at(query, 10) == 1;
    let mut dnssec_ok = 0u8;
    if edns {
        let p = question_end;
        if p + 11 > query.len()
            || query[p] != 0
            || u16_at(query, p + 1) != 41
            || query[p + 6] != 0
            || p + 11 + u16_at(query, p + 9) as usize != query.len()
        {
            return Outcome::Generic;
        }
        limit = (u16_at(query, p + 3) as usize).clamp(512, EDNS_PAYLOAD as usize);
        // RFC 3225: the DO bit (the top bit of the flags) is copied into the response.
        dnssec_ok = query[p + 7] & 0x80;
    } else if question_end != query.len() {
        return Outcome::Generic;
    }
    let zone = &served.zone;
    let name = &name[..n];
    let node = served.table.nodes.get(name);
    let inside = node.is_some() || in_zone(name, &zone.apex_wire);
    let recursion_desired = query[2] & 0x01 != 0;
    if (qclass != CLASS_IN && qclass != CLASS_ANY)
        || qtype == AXFR
        || qtype == IXFR
        || (!inside && (!recursion_desired || !zone.recursion_available || !is_loopback(src)))
    {
        respond(
            zone,
            query,
            question_end,
            REFUSED,
            0,
            0,
            &[],
            edns,
            dnssec_ok,
            out,
        );
        return Outcome::Answered;
    }
    if qclass != CLASS_IN || !inside {
        return Outcome::Generic;
    }
    let views = node.unwrap_or(&served.table.wildcard);
    let view = zone.view_of(src).min(views.len() - 1);
    let sections = views[view].get(qtype);
    let size = question_end + sections.bytes.len() + if edns { 11 } else { 0 };
    if size > limit {
        // Truncation is the generic path's business.
        return Outcome::Generic;
    }
    respond(
        zone,
        query,
        question_end,
        0,
        sections.answers,
        sections.authorities,
        &sections.bytes,
        edns,
        dnssec_ok,
        out,
    );
    Outcome::Answered
}

/// Write a response to `query` into `out`: its header (AA unless refused), the question, the
/// precomputed `sections` and an OPT when the query had one.
#[allow(clippy::too_many_arguments)]
fn respond(
    zone: &Zone,
    query: &[u8],
    question_end: usize,
    rcode: u8,
    answers: u16,
    authorities: u16,
    sections: &[u8],
    edns: bool,
    dnssec_ok: u8,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(&query[..2]);
    // QR, AA for the zone's answers, and the client's RD; RA when forwarding; the client's
    // CD; the RCODE.
    let aa = if rcode == 0 { 0x04 } else { 0 };
    out.push(0x80 | aa | (query[2] & 0x01));
    out.push(if zone.recursion_available { 0x80 } else { 0 } | (query[3] & 0x10) | rcode);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&authorities.to_be_bytes());
    out.extend_from_slice(&u16::from(edns).to_be_bytes());
    out.extend_from_slice(&query[12..question_end]);
    out.extend_from_slice(sections);
    if edns {
        let payload = EDNS_PAYLOAD.to_be_bytes();
        out.extend_from_slice(&[0, 0, 41, payload[0], payload[1], 0, 0, dnssec_ok, 0, 0, 0]);
    }
}

/// Whether the lowercase wire name ends in the apex at a label boundary.
fn in_zone(name: &[u8], apex: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        if &name[i..] == apex {
            return true;
        }
        i += name[i] as usize + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::dns::records::Records;
    use hickory_proto::op::{Message, Query, ResponseCode};
    use hickory_proto::rr::DNSClass;
    use hickory_proto::serialize::binary::BinDecodable;

    fn zone() -> Served {
        Served::new(Zone::compile(&Records::from_config(&Config::default()), 7, true).unwrap())
    }

    fn ask(zone: &Served, name: &str, t: RecordType, edns: bool) -> Message {
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        q.metadata.recursion_desired = true;
        if edns {
            q.set_edns(hickory_proto::op::Edns::new());
        }
        let bytes = q.to_vec().unwrap();
        let mut out = Vec::new();
        assert_eq!(
            answer(zone, &bytes, "127.0.0.1".parse().unwrap(), &mut out),
            Outcome::Answered
        );
        let m =
            Message::read(&mut hickory_proto::serialize::binary::BinDecoder::new(&out)).unwrap();
        assert_eq!(m.metadata.id, q.metadata.id);
        assert!(m.metadata.authoritative && m.metadata.recursion_desired);
        assert_eq!(m.queries, q.queries);
        assert_eq!(m.edns.is_some(), edns);
        m
    }

    #[test]
    fn fast_answers_match_the_generic_lookup() {
        let z = zone();
        for (name, t) in [
            ("Grafana.MACULA.local.", RecordType::A),
            ("shop.macula.local.", RecordType::A),
            ("a.b.shop.macula.local.", RecordType::AAAA),
            ("macula.local.", RecordType::SOA),
            ("macula.local.", RecordType::NS),
            ("registry.macula.local.", RecordType::MX),
            ("macula.local.", RecordType::A),
        ] {
            for edns in [false, true] {
                let m = ask(&z, name, t, edns);
                let expected = z.lookup(&Name::from_ascii(name).unwrap(), t, 0).unwrap();
                assert_eq!(m.metadata.response_code, ResponseCode::NoError);
                let lower = |rs: &[Record]| -> Vec<Record> {
                    rs.iter()
                        .map(|r| {
                            let mut r = r.clone();
                            r.name = r.name.to_lowercase();
                            r
                        })
                        .collect()
                };
                assert_eq!(lower(&m.answers), lower(&expected.answers), "{name} {t}");
                assert_eq!(m.authorities, expected.authorities, "{name} {t}");
            }
        }
    }

    #[test]
    fn names_outside_the_zone_and_odd_packets_are_not_fast() {
        let z = zone();
        let mut out = Vec::new();
        let mut q = Message::query();
        q.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::A,
        ));
        q.metadata.recursion_desired = true;
        let bytes = q.to_vec().unwrap();
        let src = "127.0.0.1".parse().unwrap();
        assert_eq!(answer(&z, &bytes, src, &mut out), Outcome::Generic);
        // "notmacula.local" shares a suffix but not a label boundary.
        let mut q = Message::query();
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(
            Name::from_ascii("notmacula.local.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(
            answer(&z, &q.to_vec().unwrap(), src, &mut out),
            Outcome::Generic
        );
        assert_eq!(answer(&z, &[0u8; 5], src, &mut out), Outcome::Drop);
        let mut response = bytes.clone();
        response[2] |= 0x80;
        assert_eq!(answer(&z, &response, src, &mut out), Outcome::Drop);
        let mut truncated = bytes.clone();
        truncated.truncate(20);
        assert_eq!(answer(&z, &truncated, src, &mut out), Outcome::Generic);
        for len in 0..bytes.len() {
            let _ = answer(&z, &bytes[..len], src, &mut out);
        }
    }

    #[test]
    fn what_is_never_answered_is_refused_on_the_fast_path() {
        let z = zone();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let far: IpAddr = "10.1.2.3".parse().unwrap();
        let refused = |name: &str, t: RecordType, class: DNSClass, rd: bool, src: IpAddr| {
            let mut q = Message::query();
            let mut question = Query::query(Name::from_ascii(name).unwrap(), t);
            question.set_query_class(class);
            q.add_query(question);
            q.metadata.recursion_desired = rd;
            let mut edns = hickory_proto::op::Edns::new();
            edns.set_dnssec_ok(true);
            q.set_edns(edns);
            let mut out = Vec::new();
            let outcome = answer(&z, &q.to_vec().unwrap(), src, &mut out);
            if outcome != Outcome::Answered {
                return false;
            }
            let m = Message::read(&mut hickory_proto::serialize::binary::BinDecoder::new(&out))
                .unwrap();
            assert_eq!(m.queries, q.queries);
            assert!(m.edns.as_ref().unwrap().flags().dnssec_ok, "DO echoed");
            m.metadata.response_code == ResponseCode::Refused && !m.metadata.authoritative
        };
        assert!(refused(
            "version.bind.",
            RecordType::TXT,
            DNSClass::CH,
            true,
            loopback
        ));
        assert!(refused(
            "shop.macula.local.",
            RecordType::A,
            DNSClass::HS,
            true,
            loopback
        ));
        assert!(refused(
            "macula.local.",
            RecordType::AXFR,
            DNSClass::IN,
            false,
            loopback
        ));
        assert!(refused(
            "macula.local.",
            RecordType::IXFR,
            DNSClass::IN,
            false,
            loopback
        ));
        assert!(refused(
            "example.com.",
            RecordType::A,
            DNSClass::IN,
            false,
            loopback
        ));
        assert!(refused(
            "example.com.",
            RecordType::A,
            DNSClass::IN,
            true,
            far
        ));
        assert!(!refused(
            "example.com.",
            RecordType::A,
            DNSClass::IN,
            true,
            loopback
        ));
        let no_forward = Served::new(
            Zone::compile(&Records::from_config(&Config::default()), 7, false).unwrap(),
        );
        let mut q = Message::query();
        q.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::A,
        ));
        q.metadata.recursion_desired = true;
        let mut out = Vec::new();
        assert_eq!(
            answer(&no_forward, &q.to_vec().unwrap(), loopback, &mut out),
            Outcome::Answered
        );
        assert_eq!(out[3] & 0x0F, 5, "REFUSED with --no-forward");
    }
}
