//! `devenv doctor` on real environments: the real binary, the real Docker engine, the real
//! programs (nginx as the gateway, the Distribution registry, PowerDNS, PostgreSQL,
//! Prometheus from tests/support/realimages) and devenv's real resolver.
//!
//! - A broken setup — the resolver `up` started stopped, the gateway's port taken by a foreign listener
//!   while the gateway container is stopped, devenv's CA not in the OS store — is named check
//!   by check with each fix, dependents skipped with the reason, exit 4.
//! - A healthy one (`cluster.provider: none`) reports every check ok or skipped with its
//!   reason, exit 0 — the inotify limits asserted as ok or as the exact warning from the
//!   machine's own /proc values. The OS sends the domain to devenv for doctor's process alone:
//!   as root, doctor runs in a mount namespace whose /etc/resolv.conf names the resolver (on
//!   port 53 of 127.0.0.153). Without root that link is asserted as the exact failure, the
//!   only one (exit 4 from it alone), after a visible skip notice.
//!
//! Skips visibly without Docker or the images; fails instead under `DEVENV_REQUIRE_DOCKER=1`.

mod support;

use std::net::TcpListener;
use std::process::Command;

use support::docker::{self, Env, docker as docker_cli};
use support::realimages;

const DOMAIN: &str = "macula.local";

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// An environment on the real programs, up, with the gateway's HTTP port and the registry's
/// API published; `None` after a skip notice.
fn up(test: &str) -> Option<(Env, u16)> {
    // The resolver `up` starts in the background, on a port of its own.
    up_with_resolver(test, &format!("  port: {}\n", support::free_port()))
}

/// [`up`], with `dns` as the lines under `dns:` (where the resolver listens).
fn up_with_resolver(test: &str, dns: &str) -> Option<(Env, u16)> {
    if !docker::engine() {
        return None;
    }
    let images = realimages::images()?;
    let mut env = realimages::env(test, &images);
    let gateway = support::free_port();
    env.publish("gateway", "http", gateway);
    env.publish("registry", "api", support::free_port());
    env.dns = dns.to_string();
    env.write();
    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 0, "{up}");
    Some((env, gateway))
}

/// Where the healthy test's resolver listens when the test routes the domain to it.
const ROUTED_AT: &str = "127.0.0.153";

/// `command` run in a mount namespace of its own (`unshare`, root) whose /etc/resolv.conf is
/// `resolv`: the system resolver of that process alone sends its queries where `resolv` says.
fn in_namespace_with_resolv_conf(command: &Command, resolv: &std::path::Path) -> Command {
    let mut wrapped = Command::new("unshare");
    wrapped
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#)
        .arg(resolv)
        .arg(command.get_program())
        .args(command.get_args())
        .env_clear();
    for (k, v) in command.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// The check named `name` in a `doctor -o json` document.
fn check<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {doc:#}"))
}

/// The lines of the human output about check `name`: its own and its `fix:` line.
fn lines_of<'a>(stdout: &'a str, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut lines = stdout.lines().peekable();
    while let Some(line) = lines.next() {
        if line.split_whitespace().nth(1) == Some(name) {
            out.push(line);
            if let Some(fix) = lines.peek().filter(|l| l.trim_start().starts_with("fix:")) {
                out.push(fix);
            }
        }
    }
    assert!(!out.is_empty(), "no line for {name}:\n{stdout}");
    out
}

#[test]
fn a_broken_setup_is_named_link_by_link_with_each_fix() {
    let Some((env, gateway)) = up("docbroken") else {
        return;
    };
    // The resolver `up` started was stopped.
    let run = json(&std::fs::read_to_string(env.state().join("dns.json")).unwrap());
    let pid = run["pid"].as_u64().unwrap().to_string();
    assert_eq!(
        support::run(Command::new("kill").args(["-TERM", &pid])).code,
        0
    );
    // It removes its run file as it shuts down (its process may linger as a zombie where
    // nothing reaps orphans).
    let file = env.state().join("dns.json");
    for _ in 0..200 {
        if !file.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!file.exists(), "the resolver (pid {pid}) did not stop");
    // The gateway went down, and something else took its port meanwhile.
    let stop = docker_cli(&["stop", &env.container("gateway")]);
    assert_eq!(stop.code, 0, "{stop}");
    let _foreign = TcpListener::bind(("127.0.0.1", gateway)).expect("the freed port");
    // devenv's CA exists (up made it) and is not in this machine's store.
    assert!(env.state().join("tls/ca.crt").is_file());

    let r = env.devenv(&["doctor"]);
    assert_eq!(r.code, 4, "{r}");
    let out = &r.stdout;

    let resolver = lines_of(out, "resolver");
    assert!(resolver[0].starts_with("FAIL"), "{r}");
    assert!(
        resolver[0].contains("devenv's resolver is not running"),
        "{r}"
    );
    assert!(
        resolver[1].contains("fix: start it: `devenv up` (starts it in the background)"),
        "{r}"
    );
    let routing = lines_of(out, "os-routing");
    assert_eq!(routing.len(), 1, "a skip has no fix: {r}");
    assert!(
        routing[0].starts_with("skip") && routing[0].ends_with("needs resolver, which failed"),
        "{r}"
    );

    let ports = lines_of(out, "ports");
    assert!(ports[0].starts_with("FAIL"), "{r}");
    assert!(
        ports[0].contains(&format!(
            "127.0.0.1:{gateway}/tcp for services.gateway.ports.http is taken by pid {}",
            std::process::id()
        )),
        "the holder is named: {r}"
    );
    assert!(
        ports[1].contains("fix: stop that process, or set `services.gateway.ports.http`"),
        "{r}"
    );

    let service = lines_of(out, "service:gateway");
    assert!(service[0].starts_with("FAIL"), "{r}");
    assert!(service[0].contains("exited, health"), "{r}");
    assert!(
        service[1]
            .contains("fix: start it: `devenv up` (`devenv logs gateway` shows why it stopped)"),
        "{r}"
    );
    for name in ["registry", "prometheus"] {
        let through = lines_of(out, &format!("gateway:{name}.{DOMAIN}"));
        assert!(
            through[0].starts_with("skip")
                && through[0].ends_with("needs service:gateway, which failed"),
            "{r}"
        );
    }

    let tls = lines_of(out, "tls-trust");
    assert!(tls[0].starts_with("FAIL"), "{r}");
    assert!(tls[0].contains("is not in the OS store"), "{r}");
    assert!(
        tls[1].contains("fix: trust it: `sudo devenv trust install`"),
        "{r}"
    );

    // What still works says so.
    for name in ["docker-engine", "service:registry", "registry-roundtrip"] {
        assert!(lines_of(out, name)[0].starts_with("ok "), "{name}: {r}");
    }
    assert!(
        r.stderr
            .contains("error: failed: ports, resolver, service:gateway, tls-trust"),
        "{r}"
    );
}

#[test]
fn a_healthy_environment_is_ok_or_skipped_with_reasons() {
    // As root, the OS routes the domain to devenv's resolver for doctor's own process, as
    // `sudo devenv dns install` does for the whole machine: doctor runs in a mount namespace
    // of its own whose /etc/resolv.conf names the resolver, which listens on port 53 (the
    // only port resolv.conf can name) of a loopback address nothing else uses. Nothing
    // outside that one process sees the change.
    let routed = support::is_root() && support::tool("unshare").is_some();
    if !routed {
        support::skip(
            "routing the domain for doctor needs root (a mount namespace and port 53); os-routing is checked as the failure it is without",
        );
    }
    let started = if routed {
        up_with_resolver(
            "dochealthy",
            &format!("  address: {ROUTED_AT}\n  port: 53\n"),
        )
    } else {
        up("dochealthy")
    };
    let Some((env, _gateway)) = started else {
        return;
    };
    let run = json(&std::fs::read_to_string(env.state().join("dns.json")).unwrap());
    // An OpenSSL bundle that trusts devenv's CA: the system's plus it, through SSL_CERT_FILE
    // (the bundle OpenSSL-based programs read when it is set).
    let ca = std::fs::read_to_string(env.state().join("tls/ca.crt")).unwrap();
    let system = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    let bundle = env.dir.path().join("bundle.pem");
    std::fs::write(&bundle, format!("{system}\n{ca}")).unwrap();

    let mut doctor = env.command(&["doctor", "-o", "json"]);
    doctor.env("SSL_CERT_FILE", &bundle);
    let r = if routed {
        let resolv = env.dir.path().join("resolv.conf");
        std::fs::write(
            &resolv,
            format!("nameserver {ROUTED_AT}\noptions timeout:2 attempts:2\n"),
        )
        .unwrap();
        support::run(&mut in_namespace_with_resolv_conf(&doctor, &resolv))
    } else {
        support::run(&mut doctor)
    };
    let doc = json(&r.stdout);
    let checks = doc["checks"].as_array().unwrap();
    for c in checks {
        assert!(
            c.as_object().unwrap().keys().cloned().collect::<Vec<_>>()
                == ["detail", "fix", "group", "name", "status"],
            "{c}"
        );
    }

    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let routing = check(&doc, "os-routing");
    if routed {
        // Every link holds: exit 0, nothing failed.
        assert_eq!(routing["status"], "ok", "{doc:#}");
        assert_eq!(
            routing["detail"],
            format!("registry.{DOMAIN} -> 127.0.0.1 through the system resolver"),
            "{routing}"
        );
        assert_eq!(failed, Vec::<&str>::new(), "{doc:#}");
        assert_eq!(r.code, 0, "{r}");
        assert_eq!(doc["ok"], true);
    } else {
        // Without the route: the OS does not send the domain to devenv, and says how to.
        assert_eq!(routing["status"], "fail", "{doc:#}");
        assert!(
            routing["detail"]
                .as_str()
                .unwrap()
                .ends_with(&format!("the OS does not send `{DOMAIN}` to devenv")),
            "{routing}"
        );
        assert!(
            routing["fix"]
                .as_str()
                .unwrap()
                .starts_with("route the domain to devenv: `sudo devenv dns install`"),
            "{routing}"
        );
        assert_eq!(r.code, 4, "exit 4 from os-routing alone:\n{r}");
        assert_eq!(doc["ok"], false);
        assert_eq!(failed, ["os-routing"], "{doc:#}");
    }

    // inotify: ok, or the exact warning this machine's limits call for.
    let read = |n: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/sys/fs/inotify/{n}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let inotify = check(&doc, "inotify");
    let low_watches = read("max_user_watches") < 524_288;
    let low_instances = read("max_user_instances") < 512;
    if low_watches || low_instances {
        assert_eq!(inotify["status"], "warn", "{inotify}");
        let fix = inotify["fix"].as_str().unwrap();
        assert_eq!(
            fix.contains("fs.inotify.max_user_watches=524288"),
            low_watches
        );
        assert_eq!(
            fix.contains("fs.inotify.max_user_instances=512"),
            low_instances
        );
    } else {
        assert_eq!(inotify["status"], "ok", "{inotify}");
    }

    // Everything else is ok, or skipped with its reason.
    let expected_ok: Vec<String> = [
        "docker-engine",
        "ports",
        "loopback",
        "resolver",
        "mdns",
        "service:gateway",
        "service:registry",
        "service:pdns-db",
        "service:pdns",
        "service:prometheus",
        "registry-roundtrip",
        "tls-trust",
    ]
    .iter()
    .map(ToString::to_string)
    .chain(
        ["registry", "dns", "prometheus"]
            .iter()
            .map(|h| format!("gateway:{h}.{DOMAIN}")),
    )
    .collect();
    for name in &expected_ok {
        let c = check(&doc, name);
        assert_eq!(c["status"], "ok", "{c}");
        assert_eq!(c["fix"], serde_json::Value::Null, "{c}");
    }
    assert!(
        check(&doc, "resolver")["detail"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "pid {} on {}",
                run["pid"],
                run["udp"].as_str().unwrap()
            )),
        "{doc:#}"
    );
    let skipped = [
        ("kind", "cluster.provider is `none`: kind is not used"),
        (
            "cluster-api",
            "cluster.provider is `none` in devenv.yaml: there is no cluster",
        ),
        ("cluster-nodes", "needs cluster-api, which was skipped"),
        ("gateway-api", "needs cluster-api, which was skipped"),
        ("pod-dns", "needs cluster-nodes, which was skipped"),
    ];
    for (name, why) in skipped {
        let c = check(&doc, name);
        assert_eq!(
            (c["status"].as_str(), c["detail"].as_str()),
            (Some("skip"), Some(why))
        );
    }
    let accounted = expected_ok.len() + skipped.len() + 2; // + os-routing, inotify
    assert_eq!(
        checks.len(),
        accounted,
        "a check no assertion covers: {doc:#}"
    );
}
