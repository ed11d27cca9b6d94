//! `devenv dns serve` answering its zone: infrastructure and application names, NODATA, SOA
//! and NS, case, views, truncation with the TCP retry, live reloads of devenv.yaml, and
//! malformed packets. The real binary on a loopback port, asked with `dig`.

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use support::dns::{
    CONFIG, Serve, dig, exchange, flags_of, home_with, plain_query, short, status_of,
};
use support::tool;

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
