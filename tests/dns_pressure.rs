//! The resolver under pressure: more idle or slow TCP connections than its open-file limit
//! allows, and a flood of queries outside the zone. Each asserts that clients still get answers (within
//! a generous deadline, never a timing), and that the log stays readable.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use support::dns::{Serve, home_with};
use support::skip;

/// Raise this test process's own open-file limit to its hard limit; `false` (after a skip
/// notice) when that is below `need`.
fn files_for_the_test(need: u64) -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to an rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    let files = limit.rlim_cur as u64;
    if files < need {
        skip(&format!(
            "this process may open only {} files, the test needs {need}",
            limit.rlim_cur
        ));
        return false;
    }
    true
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

/// Ask over UDP from `socket`, retrying, until an answer with the query's id comes or the
/// generous deadline passes.
fn ask_udp(socket: &UdpSocket, server: SocketAddr, name: &str) -> Option<Message> {
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 1u16;
    while Instant::now() < deadline {
        id = id.wrapping_add(1);
        socket.send_to(&query(id, name), server).unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            if let Ok(m) = Message::from_vec(&buf[..n])
                && m.metadata.id == id
            {
                return Some(m);
            }
        }
    }
    None
}

fn ask_tcp(server: SocketAddr, name: &str) -> Message {
    let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(10)).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let q = query(7, name);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("an answer over TCP");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    Message::from_vec(&buf).unwrap()
}

fn address(m: &Message) -> String {
    m.answers
        .first()
        .map(|r| r.data.to_string())
        .unwrap_or_default()
}

#[test]
fn idle_tcp_connections_beyond_the_file_limit_do_not_lock_out_clients() {
    const IDLE: usize = 1_500;
    if !files_for_the_test(IDLE as u64 + 200) {
        return;
    }
    let home = home_with("");
    let s = Serve::start_limited(home.path(), &["--no-forward"], 1_024);
    let mut idle = Vec::new();
    for i in 0..IDLE {
        match TcpStream::connect_timeout(&s.addr, Duration::from_secs(10)) {
            Ok(c) => idle.push(c),
            Err(e) => panic!("connection {i} of {IDLE}: {e}; stderr: {}", s.stderr()),
        }
    }
    // UDP and a new TCP client still get their answers.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let m = ask_udp(&socket, s.addr, "shop.macula.local.").expect("an answer over UDP");
    assert_eq!(address(&m), "127.0.0.2");
    for _ in 0..3 {
        let m = ask_tcp(s.addr, "registry.macula.local.");
        assert_eq!(address(&m), "127.0.0.1");
    }
    // The oldest idle connections made the room: the first one was closed by the server.
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1];
    match idle[0].read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the oldest idle connection is still open: {other:?}"),
    }
}

#[test]
fn slow_tcp_senders_beyond_the_file_limit_do_not_lock_out_clients() {
    const SLOW: usize = 1_500;
    if !files_for_the_test(SLOW as u64 + 200) {
        return;
    }
    let home = home_with("");
    let s = Serve::start_limited(home.path(), &["--no-forward"], 1_024);
    // Each announces a 512-byte query and sends one byte of it, then one more byte every
    // second or so: never enough to be answered, always something arriving.
    let mut slow = Vec::new();
    for i in 0..SLOW {
        let mut c = match TcpStream::connect_timeout(&s.addr, Duration::from_secs(10)) {
            Ok(c) => c,
            Err(e) => panic!("connection {i} of {SLOW}: {e}; stderr: {}", s.stderr()),
        };
        c.write_all(&[0x02, 0x00, 0x00]).unwrap();
        slow.push(c);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let senders: Vec<TcpStream> = slow.iter().map(|c| c.try_clone().unwrap()).collect();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut senders = senders;
            while !stop.load(Ordering::Relaxed) {
                for c in &mut senders {
                    // Closed by the server to make room: nothing to do about it here.
                    let _ = c.write(&[0]);
                }
                std::thread::sleep(Duration::from_millis(1_000));
            }
        })
    };
    // UDP and new TCP clients still get their answers.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let m = ask_udp(&socket, s.addr, "shop.macula.local.").expect("an answer over UDP");
    assert_eq!(address(&m), "127.0.0.2");
    for _ in 0..3 {
        let m = ask_tcp(s.addr, "registry.macula.local.");
        assert_eq!(address(&m), "127.0.0.1");
    }
    stop.store(true, Ordering::Relaxed);
    trickle.join().unwrap();
    // The slowest senders made the room: the first one was closed by the server.
    slow[0]
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1];
    match slow[0].read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the slowest sender is still connected: {other:?}"),
    }
}

/// An upstream that answers names under `fast.test` at once and never answers the rest.
fn slow_upstream(stop: Arc<AtomicBool>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(question) = q.queries.first() else {
                continue;
            };
            if !question.name().to_ascii().ends_with("fast.test.") {
                continue;
            }
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.message_type = MessageType::Response;
            r.metadata.recursion_desired = true;
            r.metadata.recursion_available = true;
            r.add_query(question.clone());
            r.add_answer(Record::from_rdata(
                question.name().clone(),
                60,
                RData::A(A::new(192, 0, 2, 1)),
            ));
            let _ = socket.send_to(&r.to_vec().unwrap(), from);
        }
    });
    addr
}

#[test]
fn a_flood_outside_the_zone_does_not_starve_other_loopback_clients_nor_the_log() {
    let stop = Arc::new(AtomicBool::new(false));
    let upstream = slow_upstream(stop.clone());
    let home = home_with("");
    let s = Serve::start(home.path(), &["--upstream", &upstream.to_string()]);
    // The flood: names the upstream never answers, from another loopback address.
    let flooder = {
        let stop = stop.clone();
        let server = s.addr;
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.9:0").unwrap();
            socket.set_nonblocking(true).unwrap();
            let mut n = 0u32;
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                n = n.wrapping_add(1);
                let _ = socket.send_to(&query(n as u16, &format!("q{n}.slow.test.")), server);
                while socket.recv(&mut buf).is_ok() {}
                if n.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    let mut answered = 0;
    // Ask through the flood for several seconds, across the upstream timeouts it causes.
    while started.elapsed() < Duration::from_secs(5) {
        let name = format!("n{answered}.fast.test.");
        let m = ask_udp(&client, s.addr, &name).expect("a loopback client's query is answered");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(address(&m), "192.0.2.1");
        let m = ask_udp(&client, s.addr, "shop.macula.local.").expect("the zone is answered");
        assert_eq!(address(&m), "127.0.0.2");
        answered += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = flooder.join().unwrap();
    assert!(sent > 1_000, "the flood sent only {sent} queries");
    let stderr = s.stderr();
    let warnings = stderr.lines().filter(|l| l.contains("WARN")).count();
    assert!(
        stderr.contains("forwarding"),
        "the failures are still reported: {stderr}"
    );
    assert!(
        warnings <= 5,
        "{warnings} warning lines for one flood:\n{}",
        &stderr[..stderr.len().min(3_000)]
    );
}
