//! What the resolver says to queries it must not answer as ordinary ones: the DO bit echoed
//! (RFC 3225), other classes (CH `version.bind`), names outside the zone without RD, and zone
//! transfers, each refused at once and never forwarded. A black-hole upstream (a socket that
//! never answers) shows that nothing was forwarded.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use support::dns::{Serve, dig, home_with, status_of};
use support::tool;

/// An upstream that receives queries and never answers.
struct BlackHole {
    socket: UdpSocket,
}

impl BlackHole {
    fn new() -> BlackHole {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        BlackHole { socket }
    }

    fn addr(&self) -> String {
        self.socket.local_addr().unwrap().to_string()
    }

    /// How many queries reached it so far.
    fn received(&self) -> usize {
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while self.socket.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        n
    }
}

fn query(name: &str, t: RecordType, class: DNSClass, rd: bool) -> Message {
    let mut m = Message::query();
    let mut q = Query::query(Name::from_ascii(name).unwrap(), t);
    q.set_query_class(class);
    m.add_query(q);
    m.metadata.recursion_desired = rd;
    m
}

fn over_udp(server: SocketAddr, m: &Message) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket.send_to(&m.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("an answer over UDP");
    Message::from_vec(&buf[..n]).unwrap()
}

fn over_tcp(server: SocketAddr, m: &Message) -> Message {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let bytes = m.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    s.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("an answer over TCP");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    Message::from_vec(&buf).unwrap()
}

#[test]
fn the_do_bit_is_echoed_on_every_path() {
    if tool("dig").is_none() {
        return;
    }
    let home = home_with("");
    let s = Serve::start(home.path(), &["--no-forward"]);
    let p = s.port();
    for extra in [&[][..], &["+tcp"][..]] {
        let mut args = vec!["+dnssec", "shop.macula.local"];
        args.extend_from_slice(extra);
        let out = dig(&p, &args);
        assert_eq!(status_of(&out), "NOERROR", "{out}");
        assert!(
            out.contains("; EDNS: version: 0, flags: do;"),
            "{extra:?}: {out}"
        );
        // Without DO, none comes back.
        let mut args = vec!["shop.macula.local"];
        args.extend_from_slice(extra);
        let out = dig(&p, &args);
        assert!(
            out.contains("; EDNS: version: 0, flags:;"),
            "{extra:?}: {out}"
        );
    }
}

#[test]
fn other_classes_are_refused_at_once_and_never_forwarded() {
    let upstream = BlackHole::new();
    let home = home_with("");
    let s = Serve::start(home.path(), &["--upstream", &upstream.addr()]);
    for (name, t, class) in [
        ("version.bind.", RecordType::TXT, DNSClass::CH),
        ("hostname.bind.", RecordType::TXT, DNSClass::CH),
        ("shop.macula.local.", RecordType::A, DNSClass::CH),
        ("example.com.", RecordType::A, DNSClass::HS),
    ] {
        let q = query(name, t, class, true);
        for m in [over_udp(s.addr, &q), over_tcp(s.addr, &q)] {
            assert_eq!(m.metadata.id, q.metadata.id);
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::Refused,
                "{name} {class}"
            );
        }
    }
    // With EDNS too (the fast path's other shape), the OPT comes back.
    let mut q = query("version.bind.", RecordType::TXT, DNSClass::CH, true);
    q.set_edns(Edns::new());
    let m = over_udp(s.addr, &q);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.edns.is_some());
    assert_eq!(upstream.received(), 0, "nothing was forwarded");
}

#[test]
fn names_outside_the_zone_without_rd_are_refused_not_forwarded() {
    let upstream = BlackHole::new();
    let home = home_with("");
    let s = Serve::start(home.path(), &["--upstream", &upstream.addr()]);
    let q = query("example.com.", RecordType::A, DNSClass::IN, false);
    for m in [over_udp(s.addr, &q), over_tcp(s.addr, &q)] {
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    }
    // The zone itself still answers without RD: devenv is authoritative there.
    let m = over_udp(
        s.addr,
        &query("shop.macula.local.", RecordType::A, DNSClass::IN, false),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].data.to_string(), "127.0.0.2");
    assert_eq!(upstream.received(), 0, "nothing was forwarded");
}

#[test]
fn zone_transfers_are_refused() {
    let upstream = BlackHole::new();
    let home = home_with("");
    let s = Serve::start(home.path(), &["--upstream", &upstream.addr()]);
    for t in [RecordType::AXFR, RecordType::IXFR] {
        for name in ["macula.local.", "example.com."] {
            let q = query(name, t, DNSClass::IN, false);
            let m = over_tcp(s.addr, &q);
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::Refused,
                "{t} {name} over TCP"
            );
            assert!(m.answers.is_empty());
            let m = over_udp(s.addr, &q);
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::Refused,
                "{t} {name} over UDP"
            );
        }
    }
    assert_eq!(upstream.received(), 0, "nothing was forwarded");
}
