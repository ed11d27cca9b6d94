//! `devenv dns`: the real binary serving on a loopback port, asked with `dig`, forwarding to a
//! real dnsmasq; the library's server API in-process for live updates and the network policy;
//! `install`/`uninstall` against a temporary root.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{devenv, run, skip, tool};

/// A `devenv dns serve --port 0` process, stopped with SIGTERM on drop.
struct Serve {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Serve {
    fn start(home: &Path, extra: &[&str]) -> Serve {
        let mut cmd = devenv(home);
        cmd.args(["dns", "serve", "--port", "0"]).args(extra);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("devenv dns serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        {
            let mut err = child.stderr.take().unwrap();
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let addr = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve printed {line:?} instead of its address; stderr: {}",
                stderr.lock().unwrap()
            )
        });
        Serve {
            child,
            addr,
            stderr,
        }
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, and the exit code.
    fn stop(mut self) -> i32 {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dig` against a port, one try, short timeout; the full output.
fn dig(port: &str, args: &[&str]) -> String {
    let dig = tool("dig").expect("checked by the caller");
    let out = Command::new(dig)
        .args(["@127.0.0.1", "-p", port, "+time=2", "+tries=1"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn short(port: &str, args: &[&str]) -> Vec<String> {
    let mut a = vec!["+short"];
    a.extend_from_slice(args);
    dig(port, &a).lines().map(str::to_string).collect()
}

fn status_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no status in dig output:\n{out}"))
}

fn flags_of(out: &str) -> Vec<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .map(|s| {
            s.split(';')
                .next()
                .unwrap()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn home_with(config: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("devenv.yaml"), config).unwrap();
    home
}

const CONFIG: &str = "\
services:
  grafana:
    address: 127.0.0.3
dns:
  port: 5399
  views:
    - cidr: 127.0.0.5/32
      infrastructure: 172.30.80.1
      applications: 172.30.80.2
  records:
    - {name: api, type: A, value: 10.1.2.3}
    - {name: www, type: CNAME, value: registry.macula.local}
";

#[test]
fn zone_answers_infrastructure_wildcard_nodata_soa_ns_and_case() {
    if tool("dig").is_none() {
        return;
    }
    let home = home_with(CONFIG);
    let s = Serve::start(home.path(), &["--no-forward"]);
    let p = s.port();
    assert_eq!(short(&p, &["registry.macula.local"]), ["127.0.0.1"]);
    assert_eq!(
        short(&p, &["grafana.macula.local"]),
        ["127.0.0.3"],
        "the service's own address"
    );
    assert_eq!(
        short(&p, &["GrAfAnA.MaCuLa.LoCaL"]),
        ["127.0.0.3"],
        "case-insensitive"
    );
    assert_eq!(short(&p, &["shop.macula.local"]), ["127.0.0.2"], "wildcard");
    assert_eq!(short(&p, &["a.b.c.macula.local"]), ["127.0.0.2"]);
    assert_eq!(short(&p, &["api.macula.local"]), ["10.1.2.3"]);
    assert_eq!(
        short(&p, &["www.macula.local"]),
        ["registry.macula.local.", "127.0.0.1"]
    );
    // The answer keeps the client's case in the question (0x20 randomisation).
    let out = dig(&p, &["ReGiStRy.macula.local"]);
    assert!(out.contains(";ReGiStRy.macula.local.\t\tIN\tA"), "{out}");
    assert!(flags_of(&out).contains(&"aa".to_string()), "{out}");
    assert!(
        !flags_of(&out).contains(&"ra".to_string()),
        "no RA with --no-forward: {out}"
    );

    for (name, t) in [
        ("registry.macula.local", "AAAA"),
        ("shop.macula.local", "MX"),
        ("grafana.macula.local", "TXT"),
    ] {
        let out = dig(&p, &[name, t]);
        assert_eq!(status_of(&out), "NOERROR", "NODATA, never NXDOMAIN: {out}");
        assert!(out.contains("ANSWER: 0,"), "{out}");
        assert!(
            out.contains("AUTHORITY: 1,")
                && out.contains("IN\tSOA\tns.macula.local. hostmaster.macula.local."),
            "{out}"
        );
    }
    let soa = short(&p, &["macula.local", "SOA"]);
    assert_eq!(soa.len(), 1);
    assert!(
        soa[0].starts_with("ns.macula.local. hostmaster.macula.local. "),
        "{soa:?}"
    );
    assert_eq!(short(&p, &["macula.local", "NS"]), ["ns.macula.local."]);
    assert_eq!(short(&p, &["ns.macula.local"]), ["127.0.0.1"]);
    // Without EDNS too (the fast path's other shape), and over TCP (the generic path).
    assert_eq!(short(&p, &["+noedns", "shop.macula.local"]), ["127.0.0.2"]);
    assert_eq!(short(&p, &["+tcp", "shop.macula.local"]), ["127.0.0.2"]);
    assert_eq!(short(&p, &["+tcp", "grafana.macula.local"]), ["127.0.0.3"]);
    let out = dig(&p, &["+tcp", "registry.macula.local", "AAAA"]);
    assert_eq!(status_of(&out), "NOERROR", "{out}");
    assert!(out.contains("ANSWER: 0,"), "{out}");
    // Outside the zone with --no-forward: REFUSED.
    assert_eq!(status_of(&dig(&p, &["example.com"])), "REFUSED");
    assert_eq!(status_of(&dig(&p, &["+tcp", "example.com"])), "REFUSED");
    assert_eq!(s.stop(), 0, "SIGTERM is a clean shutdown");
}

#[test]
fn aaaa_answers_loopback_only_when_configured_and_ports_mode_points_apps_at_the_host() {
    if tool("dig").is_none() {
        return;
    }
    let home = home_with("routing: {mode: ports}\ndns: {ipv6: true}\n");
    let s = Serve::start(home.path(), &["--no-forward"]);
    let p = s.port();
    assert_eq!(short(&p, &["registry.macula.local", "AAAA"]), ["::1"]);
    assert_eq!(
        short(&p, &["shop.macula.local"]),
        ["127.0.0.1"],
        "ports mode: applications on the host address"
    );
}

#[test]
fn split_horizon_answers_a_cluster_network_with_its_own_addresses() {
    if tool("dig").is_none() {
        return;
    }
    let home = home_with(CONFIG);
    let s = Serve::start(home.path(), &["--no-forward"]);
    let p = s.port();
    // 127.0.0.5 is configured as a "cluster" network; 127.0.0.1 is the host.
    assert_eq!(
        short(&p, &["-b", "127.0.0.5", "registry.macula.local"]),
        ["172.30.80.1"]
    );
    assert_eq!(
        short(&p, &["-b", "127.0.0.5", "grafana.macula.local"]),
        ["172.30.80.1"]
    );
    assert_eq!(
        short(&p, &["-b", "127.0.0.5", "shop.macula.local"]),
        ["172.30.80.2"]
    );
    assert_eq!(
        short(&p, &["-b", "127.0.0.5", "+tcp", "shop.macula.local"]),
        ["172.30.80.2"]
    );
    assert_eq!(
        short(&p, &["-b", "127.0.0.1", "shop.macula.local"]),
        ["127.0.0.2"]
    );
}

/// A free loopback port for UDP and TCP (closed again before use; the race is harmless here).
fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A dnsmasq answering `upstream.test` on a loopback port, killed on drop.
struct Dnsmasq {
    child: Child,
    port: u16,
}

impl Dnsmasq {
    fn start() -> Option<Dnsmasq> {
        let bin = tool("dnsmasq")?;
        let port = free_port();
        let child = Command::new(bin)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--except-interface=nonexistent",
                &format!("--port={port}"),
                "--local-ttl=300",
                "--neg-ttl=60",
                "--address=/upstream.test/192.0.2.7",
                "--address=/nothing.example/",
                "--txt-record=txt.upstream.test,hello from dnsmasq",
                "--pid-file=",
                "--user=root",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dnsmasq starts");
        let d = Dnsmasq { child, port };
        // Ready when it answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if short(&port.to_string(), &["upstream.test"]) == ["192.0.2.7"] {
                return Some(d);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("dnsmasq did not answer on port {port}");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn forwards_outside_the_domain_to_a_real_upstream_and_caches() {
    if tool("dig").is_none() {
        return;
    }
    let Some(upstream) = Dnsmasq::start() else {
        return;
    };
    let home = home_with("");
    let up = format!("127.0.0.1:{}", upstream.port);
    let s = Serve::start(home.path(), &["--upstream", &up]);
    let p = s.port();
    let out = dig(&p, &["upstream.test"]);
    assert_eq!(status_of(&out), "NOERROR", "{out}");
    assert!(
        out.contains("upstream.test.\t\t300\tIN\tA\t192.0.2.7"),
        "{out}"
    );
    let flags = flags_of(&out);
    assert!(
        flags.contains(&"ra".into()) && !flags.contains(&"aa".into()),
        "{out}"
    );
    assert_eq!(
        short(&p, &["txt.upstream.test", "TXT"]),
        ["\"hello from dnsmasq\""]
    );
    assert_eq!(short(&p, &["+tcp", "sub.upstream.test"]), ["192.0.2.7"]);
    // The zone is still answered locally, with RA now set.
    let out = dig(&p, &["shop.macula.local"]);
    assert!(
        flags_of(&out).contains(&"ra".into()) && flags_of(&out).contains(&"aa".into()),
        "{out}"
    );
    // An upstream NXDOMAIN passes through.
    assert_eq!(status_of(&dig(&p, &["nothing.example"])), "NXDOMAIN");

    // With the upstream gone, cached answers still come (TTL counting down), new ones fail.
    drop(upstream);
    let out = dig(&p, &["upstream.test"]);
    assert_eq!(status_of(&out), "NOERROR", "cached: {out}");
    assert!(out.contains("IN\tA\t192.0.2.7"), "{out}");
    let ttl: u32 = out
        .lines()
        .find(|l| l.starts_with("upstream.test."))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|t| t.parse().ok())
        .unwrap();
    assert!(ttl <= 300, "{out}");
    let out = Command::new(tool("dig").unwrap())
        .args([
            "@127.0.0.1",
            "-p",
            &p,
            "+time=6",
            "+tries=1",
            "uncached.upstream.test",
        ])
        .output()
        .unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&out.stdout)), "SERVFAIL");
}

#[test]
fn a_truncated_answer_falls_back_to_tcp() {
    if tool("dig").is_none() {
        return;
    }
    let mut config = String::from("dns:\n  records:\n");
    for i in 0..12 {
        config.push_str(&format!(
            "    - {{name: big, type: TXT, value: \"{i:02}{}\"}}\n",
            "x".repeat(200)
        ));
    }
    let home = home_with(&config);
    let s = Serve::start(home.path(), &["--no-forward"]);
    let p = s.port();
    // Without TCP retry, UDP gets TC and fewer records than exist.
    let out = dig(&p, &["+ignore", "+noedns", "big.macula.local", "TXT"]);
    assert!(flags_of(&out).contains(&"tc".into()), "{out}");
    let out = dig(&p, &["+ignore", "big.macula.local", "TXT"]);
    assert!(
        flags_of(&out).contains(&"tc".into()),
        "1232 bytes of EDNS do not hold 2.4 kB: {out}"
    );
    // dig retries over TCP and gets all twelve.
    let out = dig(&p, &["+noedns", "big.macula.local", "TXT"]);
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("big.macula.local."))
            .count(),
        12,
        "{out}"
    );
}

#[test]
fn editing_devenv_yaml_updates_the_records_without_a_restart() {
    if tool("dig").is_none() {
        return;
    }
    let home = home_with("dns:\n  records:\n    - {name: api, type: A, value: 10.0.0.1}\n");
    let s = Serve::start(home.path(), &["--no-forward"]);
    let p = s.port();
    assert_eq!(short(&p, &["api.macula.local"]), ["10.0.0.1"]);
    let wait_for = |name: &str, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = short(&p, &[name]);
            if got == [want] {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is still {got:?}, not {want}; stderr: {}",
                s.stderr()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    std::fs::write(
        home.path().join("devenv.yaml"),
        "dns:\n  records:\n    - {name: api, type: A, value: 10.0.0.2}\n    - {name: new, type: A, value: 10.0.0.3}\n",
    )
    .unwrap();
    wait_for("new.macula.local", "10.0.0.3");
    assert_eq!(short(&p, &["api.macula.local"]), ["10.0.0.2"]);
    // A file that fails validation keeps the records in force and says why.
    std::fs::write(
        home.path().join("devenv.yaml"),
        "dns:\n  ttl: 999999\n  records:\n    - {name: api, type: A, value: 10.0.0.9}\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.stderr().contains("not reloaded") {
        assert!(
            Instant::now() < deadline,
            "no reload error logged: {}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(s.stderr().contains("dns.ttl"), "{}", s.stderr());
    // serve listens where --port said; edits that leave dns.address/dns.port alone say nothing
    // about them, and the log is plain text off a terminal.
    assert!(!s.stderr().contains("dns.port changed"), "{}", s.stderr());
    assert!(!s.stderr().contains('\u{1b}'), "{}", s.stderr());
    assert_eq!(short(&p, &["api.macula.local"]), ["10.0.0.2"]);
    assert_eq!(short(&p, &["new.macula.local"]), ["10.0.0.3"]);
}

/// Send `packet` and return the answer, if any arrives within a short wait.
fn exchange(socket: &UdpSocket, server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(packet, server).unwrap();
    let mut buf = [0u8; 4096];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

fn plain_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[test]
fn malformed_packets_get_formerr_or_nothing_and_the_server_keeps_answering() {
    let home = home_with("");
    let s = Serve::start(home.path(), &["--no-forward"]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let good = plain_query(0x1234, "shop.macula.local");
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("short", vec![1, 2, 3]),
        (
            "header only, one question promised",
            vec![0xAB, 0xCD, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        ),
        ("question cut short", good[..20].to_vec()),
        ("label past the end", {
            let mut g = good.clone();
            g[12] = 60;
            g
        }),
        ("pointer loop", {
            let mut g = good[..12].to_vec();
            g.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
            g
        }),
        ("65535 questions", {
            let mut g = good.clone();
            g[4] = 0xFF;
            g[5] = 0xFF;
            g
        }),
        ("garbage after the question", {
            let mut g = good.clone();
            g.extend_from_slice(&[9; 40]);
            g
        }),
        ("additional count without records", {
            let mut g = good.clone();
            g[11] = 3;
            g
        }),
    ];
    let mut noise = 0x9E37_79B9u32;
    for n in [12usize, 13, 40, 512, 1500] {
        let mut p = vec![0u8; n];
        for b in &mut p {
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            *b = noise as u8;
        }
        p[2] &= 0x7F; // a query, so that it deserves an answer if it parses
        cases.push(("random", p));
    }
    for (what, packet) in &cases {
        if let Some(answer) = exchange(&socket, s.addr, packet) {
            assert!(answer.len() >= 12, "{what}: a short answer {answer:?}");
            assert_eq!(
                &answer[..2],
                &packet[..2],
                "{what}: the answer has the query's id"
            );
            assert!(answer[2] & 0x80 != 0, "{what}: QR set");
            let rcode = answer[3] & 0x0F;
            // FORMERR; NOERROR/REFUSED/NOTIMP only when the packet was in fact a valid question.
            assert!(matches!(rcode, 0 | 1 | 4 | 5), "{what}: rcode {rcode}");
        }
        let answer = exchange(&socket, s.addr, &good).expect("still answering");
        assert_eq!(&answer[..2], &[0x12, 0x34]);
        assert_eq!(
            &answer[answer.len() - 4..],
            &[127, 0, 0, 2],
            "{what}: still answering correctly"
        );
    }
    // A response (QR set) is never answered: no reflection loops between resolvers.
    let mut response = good.clone();
    response[2] |= 0x80;
    assert_eq!(exchange(&socket, s.addr, &response), None);
    // A header that promises a question and has none is a FORMERR.
    let answer = exchange(&socket, s.addr, &cases[2].1).expect("an answer");
    assert_eq!(answer[3] & 0x0F, 1, "FORMERR");
}

#[test]
fn query_asks_the_running_resolver_or_answers_in_process() {
    let home = home_with(CONFIG);
    // In-process: no resolver is running.
    let r = run(devenv(home.path()).args(["dns", "query", "grafana"]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.stdout, "grafana.macula.local.\t5\tA\t127.0.0.3\n", "{r}");
    assert!(r.stderr.contains("in-process"), "{r}");
    let r = run(devenv(home.path()).args([
        "dns",
        "query",
        "shop.macula.local",
        "--type",
        "aaaa",
        "-o",
        "json",
    ]));
    assert_eq!(r.code, 0, "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["rcode"], "NOERROR");
    assert_eq!(v["answers"].as_array().unwrap().len(), 0);
    assert_eq!(v["authorities"][0]["type"], "SOA");
    let r = run(devenv(home.path()).args(["dns", "query", "x", "--type", "BOGUS"]));
    assert_eq!(r.code, 2, "{r}");

    // Through the running resolver, found by its run file.
    let s = Serve::start(home.path(), &["--no-forward"]);
    let r = run(devenv(home.path()).args(["dns", "query", "shop"]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.stdout, "shop.macula.local.\t5\tA\t127.0.0.2\n");
    assert!(r.stderr.contains(&s.addr.to_string()), "{r}");
    let r = run(devenv(home.path()).args(["dns", "query", "example.com"]));
    assert_eq!(r.code, 4, "REFUSED is a failed check: {r}");
    assert!(r.stderr.contains("REFUSED"), "{r}");

    let r = run(devenv(home.path()).args(["dns", "status", "-o", "json"]));
    assert_eq!(r.code, 0, "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["running"], true);
    assert_eq!(v["udp"], s.addr.to_string());
    assert_eq!(v["forwarding"], false);
    assert!(v["records"].as_u64().unwrap() >= 10, "{v}");
    assert_eq!(
        v["host_resolves_domain"], false,
        "this host does not route macula.local to the test's resolver"
    );
    assert_eq!(s.stop(), 0);
    let r = run(devenv(home.path()).args(["dns", "status"]));
    assert_eq!(r.code, 4, "{r}");
    assert!(r.stdout.contains("not running"), "{r}");
    assert!(
        !home.path().join("state/dns.json").exists(),
        "the run file is removed on shutdown"
    );
}

/// The lowest port an unprivileged process may bind (Linux's sysctl; 1024 elsewhere).
fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(1024)
}

/// `devenv` run as user and group `nobody` (65534) through util-linux's `setpriv`, with no
/// capabilities, in `home` (which nobody must be able to write). When this host lets anyone
/// bind port 53 (`net.ipv4.ip_unprivileged_port_start`, 0 in Docker containers), it runs in a
/// new network namespace, where the limit is back at its default of 1024. `None` after a skip
/// notice when that is not possible.
fn devenv_as_nobody(home: &Path) -> Option<Command> {
    let setpriv = tool("setpriv")?;
    let own_netns = unprivileged_port_start() <= 53;
    let unshare = if own_netns {
        Some(tool("unshare")?)
    } else {
        None
    };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o777)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut cmd = match &unshare {
            Some(unshare) => {
                let mut c = Command::new(unshare);
                c.args(["--net", "--"]).arg(&setpriv);
                c
            }
            None => Command::new(&setpriv),
        };
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_devenv"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("DEVENV_STATE_DIR", home.join("state"))
            .env("NO_COLOR", "1")
            .current_dir(home);
        cmd
    };
    let probe = run(&mut as_nobody(&["--version"]));
    if probe.code != 0 {
        skip(&format!(
            "cannot run {} as the user nobody{}: {probe}",
            env!("CARGO_BIN_EXE_devenv"),
            if own_netns {
                " in a new network namespace"
            } else {
                " (a parent directory closed to others?)"
            }
        ));
        return None;
    }
    Some(as_nobody(&[]))
}

#[test]
fn a_privileged_port_refused_says_what_to_do() {
    let home = home_with("");
    // A port already taken fails in its own way, with its own hint.
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let r = run(devenv(home.path()).args(["dns", "serve", "--port", &port]));
    assert_eq!(r.code, 3, "{r}");
    assert!(
        r.stderr.contains("already in use") && r.stderr.contains("hint:"),
        "{r}"
    );

    let uid = Command::new("id").arg("-u").output().unwrap();
    let mut serve = if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        // Root may bind port 53: ask as an unprivileged user, as users run it.
        let Some(cmd) = devenv_as_nobody(home.path()) else {
            return;
        };
        cmd
    } else if unprivileged_port_start() <= 53 {
        skip(
            "this host lets unprivileged users bind port 53 (net.ipv4.ip_unprivileged_port_start), and only root can make a network namespace where it does not: the permission message is not reachable",
        );
        return;
    } else {
        devenv(home.path())
    };
    let r = run(serve.args(["dns", "serve", "--port", "53"]));
    assert_eq!(r.code, 3, "{r}");
    assert!(
        r.stderr
            .contains("binding 127.0.0.1:53/udp: permission denied"),
        "{r}"
    );
    assert!(
        r.stderr.contains("--port 5353") && r.stderr.contains("setcap cap_net_bind_service=+ep"),
        "{r}"
    );
}

#[test]
fn serve_refuses_a_non_loopback_address_unless_allowed() {
    let home = home_with("");
    let r = run(devenv(home.path()).args(["dns", "serve", "--port", "0", "--address", "0.0.0.0"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("allow_non_loopback"), "{r}");
}

fn read(root: &Path, path: &str) -> Option<String> {
    std::fs::read_to_string(root.join(path)).ok()
}

#[test]
fn install_and_uninstall_write_and_remove_exactly_the_drop_in() {
    let home = home_with("dns: {port: 5353}\n");
    let root = tempfile::tempdir().unwrap();
    let r_ = root.path().to_str().unwrap();
    // Nothing detected: a clear environment failure.
    let r = run(devenv(home.path()).args(["dns", "install", "--root", r_]));
    assert_eq!(r.code, 3, "{r}");
    // systemd-resolved, as this host would look with it running.
    std::fs::create_dir_all(root.path().join("run/systemd/resolve")).unwrap();
    std::fs::create_dir_all(root.path().join("etc/systemd/resolved.conf.d")).unwrap();
    std::fs::write(
        root.path().join("etc/systemd/resolved.conf.d/vpn.conf"),
        "[Resolve]\nDNS=10.8.0.1\n",
    )
    .unwrap();
    let drop_in = "etc/systemd/resolved.conf.d/devenv-macula.local.conf";
    let expected = "# Written by `devenv dns install` for macula.local; `devenv dns uninstall` removes it.\n[Resolve]\nDNS=127.0.0.1:5353\nDomains=~macula.local\n";

    let r = run(devenv(home.path()).args(["dns", "install", "--dry-run", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        r.stdout,
        "write /etc/systemd/resolved.conf.d/devenv-macula.local.conf:\n    # Written by `devenv dns install` for macula.local; `devenv dns uninstall` removes it.\n    [Resolve]\n    DNS=127.0.0.1:5353\n    Domains=~macula.local\nrun systemctl restart systemd-resolved\n"
    );
    assert_eq!(read(root.path(), drop_in), None, "a dry run writes nothing");

    let r = run(devenv(home.path()).args(["dns", "install", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(read(root.path(), drop_in).as_deref(), Some(expected));
    assert!(home.path().join("state/dns-install.json").is_file(), "{r}");

    let r = run(devenv(home.path()).args(["dns", "uninstall", "--dry-run", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        r.stdout,
        "would remove /etc/systemd/resolved.conf.d/devenv-macula.local.conf\n"
    );
    assert!(read(root.path(), drop_in).is_some());

    let r = run(devenv(home.path()).args(["dns", "uninstall", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(read(root.path(), drop_in), None);
    assert_eq!(
        read(root.path(), "etc/systemd/resolved.conf.d/vpn.conf").as_deref(),
        Some("[Resolve]\nDNS=10.8.0.1\n")
    );
    assert!(!home.path().join("state/dns-install.json").exists());
    let left: Vec<PathBuf> = walk(root.path());
    assert_eq!(left.len(), 1, "only the neighbour's file is left: {left:?}");

    // NetworkManager in dnsmasq mode, and macOS with its port line.
    std::fs::create_dir_all(root.path().join("etc/NetworkManager")).unwrap();
    std::fs::write(
        root.path().join("etc/NetworkManager/NetworkManager.conf"),
        "[main]\ndns=dnsmasq\n",
    )
    .unwrap();
    let r = run(devenv(home.path()).args(["dns", "install", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert!(
        read(
            root.path(),
            "etc/NetworkManager/dnsmasq.d/devenv-macula.local.conf"
        )
        .unwrap()
        .ends_with("server=/macula.local/127.0.0.1#5353\n")
    );
    let r = run(devenv(home.path()).args(["dns", "uninstall", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        r.stdout,
        "removed /etc/NetworkManager/dnsmasq.d/devenv-macula.local.conf\nremoved /etc/NetworkManager/dnsmasq.d/\n",
        "the directory install created goes too"
    );
    assert!(!root.path().join("etc/NetworkManager/dnsmasq.d").exists());
    assert!(
        root.path()
            .join("etc/NetworkManager/NetworkManager.conf")
            .is_file()
    );

    // macOS: /etc/resolver did not exist; installing twice still records that it made it.
    for _ in 0..2 {
        let r =
            run(devenv(home.path()).args(["dns", "install", "--mechanism", "macos", "--root", r_]));
        assert_eq!(r.code, 0, "{r}");
    }
    let r = run(devenv(home.path()).args(["dns", "uninstall", "--dry-run", "--root", r_]));
    assert_eq!(
        r.stdout, "would remove /etc/resolver/macula.local\nwould remove /etc/resolver/\n",
        "{r}"
    );
    assert!(root.path().join("etc/resolver/macula.local").is_file());
    let r = run(devenv(home.path()).args(["dns", "uninstall", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert!(!root.path().join("etc/resolver").exists(), "{r}");
    // Exactly the tree before the installs: the neighbours' files and the directories that
    // were there.
    let mut dirs = walk_dirs(root.path());
    dirs.sort();
    let expected: Vec<PathBuf> = [
        "etc",
        "etc/NetworkManager",
        "etc/systemd",
        "etc/systemd/resolved.conf.d",
        "run",
        "run/systemd",
        "run/systemd/resolve",
    ]
    .iter()
    .map(|d| root.path().join(d))
    .collect();
    assert_eq!(dirs, expected);
    assert_eq!(
        walk(root.path()).len(),
        2,
        "vpn.conf and NetworkManager.conf"
    );
    let r = run(devenv(home.path()).args([
        "dns",
        "install",
        "--dry-run",
        "--mechanism",
        "macos",
        "--root",
        r_,
    ]));
    assert!(
        r.stdout.contains("write /etc/resolver/macula.local:")
            && r.stdout.contains("    port 5353"),
        "{r}"
    );
    assert!(r.stderr.contains("multicast DNS"), "{r}");
    let r =
        run(devenv(home.path()).args(["dns", "install", "--mechanism", "windows", "--root", r_]));
    assert!(
        r.stdout
            .contains("Add-DnsClientNrptRule -Namespace \".macula.local\""),
        "{r}"
    );
    assert!(r.stderr.contains("port 53"), "{r}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_dirs(&p));
            out.push(p);
        }
    }
    out
}

mod in_process {
    //! The library's server API: a live record added through the store without a restart, and
    //! the network policy (clients off loopback get only the zone).
    use std::net::SocketAddr;
    use std::sync::Arc;

    use devenv::config::Config;
    use devenv::dns::{self, Data, Entry, Forwarder, Handler, Records, Running, Store};
    use hickory_proto::op::{Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};

    fn ask_udp(server: SocketAddr, name: &str) -> Message {
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        socket.send_to(&q.to_vec().unwrap(), server).unwrap();
        let mut buf = [0u8; 2048];
        let n = socket.recv(&mut buf).unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    }

    fn addresses(m: &Message) -> Vec<String> {
        m.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn a_live_record_is_served_without_a_restart() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store =
                Arc::new(Store::new(Records::from_config(&Config::default()), false).unwrap());
            let running = Running::start(
                "127.0.0.1:0".parse().unwrap(),
                Handler::new(store.clone(), None),
            )
            .unwrap();
            let addr = running.udp_addr();
            let ask = |name: &'static str| tokio::task::spawn_blocking(move || ask_udp(addr, name));
            assert_eq!(
                addresses(&ask("api.macula.local.").await.unwrap()),
                ["127.0.0.2"]
            );
            let changes = store.subscribe();
            store
                .set_source(
                    "ingress",
                    vec![Entry::new(
                        "api.macula.local",
                        Data::A("10.7.7.7".parse().unwrap()),
                    )],
                )
                .unwrap();
            assert!(changes.has_changed().unwrap());
            assert_eq!(
                addresses(&ask("api.macula.local.").await.unwrap()),
                ["10.7.7.7"]
            );
            store.set_source("ingress", vec![]).unwrap();
            assert_eq!(
                addresses(&ask("api.macula.local.").await.unwrap()),
                ["127.0.0.2"]
            );
            running.shutdown().await.unwrap();
        });
    }

    #[test]
    fn clients_off_loopback_get_only_the_zone() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store =
                Arc::new(Store::new(Records::from_config(&Config::default()), true).unwrap());
            // An upstream nobody listens on: a loopback client would get SERVFAIL, not REFUSED.
            let forwarder = Arc::new(Forwarder::new(vec!["127.0.0.1:9".parse().unwrap()]));
            let handler = Handler::new(store, Some(forwarder));
            let query = |name: &str| {
                let mut q = Message::query();
                q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
                q.to_vec().unwrap()
            };
            let far: SocketAddr = "10.1.2.3:4000".parse().unwrap();
            let bytes = dns::server::answer_in_process(&handler, query("example.com."), far)
                .await
                .unwrap();
            assert_eq!(
                Message::from_vec(&bytes).unwrap().metadata.response_code,
                ResponseCode::Refused
            );
            let bytes = dns::server::answer_in_process(&handler, query("shop.macula.local."), far)
                .await
                .unwrap();
            let m = Message::from_vec(&bytes).unwrap();
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert_eq!(addresses(&m), ["127.0.0.2"]);
        });
    }
}
