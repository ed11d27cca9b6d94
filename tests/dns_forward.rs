//! Names outside the domain: forwarded to a real upstream (dnsmasq) with a cache, for
//! loopback clients only.

mod support;

use std::process::Command;

use support::dns::{Dnsmasq, Serve, dig, flags_of, home_with, short, status_of};
use support::tool;

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
