//! devenv's core tier on the REAL programs, not the busybox stand-in: nginx as the gateway, the
//! Distribution registry, PostgreSQL, PowerDNS with its pgsql backend and Prometheus, from
//! Debian packages (tests/support/realimages), each configured only by what devenv renders and
//! passes (mounted config files, environment, generated secrets).
//!
//! What it proves, for real: every gateway hostname reaches its program; `docker push` to the
//! registry's published port and a pull back; the PowerDNS API through the gateway with the
//! generated key (401 without); a zone created through it answered by `dig` over UDP and TCP;
//! Prometheus scraping every target it is given, and taking a remote-write request through the
//! gateway (as a cluster's collector sends it) that a query reads back; zones and images
//! surviving `down`/`up`; each
//! service at its fixed address, PowerDNS's webserver refusing any other container of its
//! network, and the registry's debug listener reached by Prometheus on the internal metrics
//! network only: not from KinD's network, the infrastructure network or the host.
//!
//! registry-ui and PowerDNS-Admin are disabled (no Debian package); the other tiers are off.
//! The cluster is off (`cluster.provider: none`, the test environments' default): this is the
//! infrastructure half on real programs. Skips visibly
//! without Docker, curl, dig or a way to build the images; fails instead under
//! `DEVENV_REQUIRE_DOCKER=1`.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::docker::{self, Env, docker as docker_cli};
use support::{Run, realimages, run, tool};

/// The domain devenv uses when devenv.yaml names none.
const DOMAIN: &str = "macula.local";

/// One HTTP exchange through the gateway, by hostname, as a browser or client on this host
/// would make it once the name resolves to the gateway (curl's `--resolve`).
struct Http {
    status: u16,
    headers: String,
    body: String,
}

fn http(port: u16, label: &str, method: &str, path: &str, extra: &[&str]) -> Http {
    let host = format!("{label}.{DOMAIN}");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "30", "-X", method])
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(extra)
        .arg(format!("http://{host}:{port}{path}"));
    let r = run(&mut cmd);
    assert_eq!(r.code, 0, "curl {method} {host}{path}: {r}");
    let (head, body) = r
        .stdout
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response from {host}{path}: {r}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line from {host}{path}: {r}"));
    Http {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// `dig` against PowerDNS's published DNS port: the answer section, one record per line.
fn dig(port: u16, name: &str, tcp: bool) -> Run {
    let mut cmd = Command::new("dig");
    cmd.args(["@127.0.0.1", "-p", &port.to_string(), name, "A", "+short"])
        .args(["+time=3", "+tries=2"]);
    if tcp {
        cmd.arg("+tcp");
    }
    run(&mut cmd)
}

/// A tiny image built locally (FROM scratch, one file) under a name in the registry at
/// `registry`; removed from the engine on drop.
struct Pushed {
    reference: String,
}

impl Pushed {
    fn build(registry: &str, repository: &str, content: &str) -> Pushed {
        let ctx = tempfile::tempdir().expect("a build context");
        std::fs::write(ctx.path().join("hello.txt"), content).unwrap();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY hello.txt /hello.txt\n",
        )
        .unwrap();
        let reference = format!("{registry}/{repository}:v1");
        let r = run(Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", &reference])
            .arg(ctx.path()));
        assert_eq!(r.code, 0, "building {reference}: {r}");
        Pushed { reference }
    }

    fn id(&self) -> String {
        let r = docker_cli(&["image", "inspect", "-f", "{{.Id}}", &self.reference]);
        assert_eq!(r.code, 0, "{r}");
        r.stdout.trim().to_string()
    }

    fn forget_locally(&self) {
        let r = docker_cli(&["image", "rm", &self.reference]);
        assert_eq!(r.code, 0, "{r}");
        assert_ne!(
            docker_cli(&["image", "inspect", &self.reference]).code,
            0,
            "{} is still in the engine",
            self.reference
        );
    }

    fn pull(&self) -> Run {
        docker_cli(&["pull", &self.reference])
    }
}

impl Drop for Pushed {
    fn drop(&mut self) {
        docker_cli(&["image", "rm", "-f", &self.reference]);
    }
}

/// A Prometheus remote-write request of one sample: a protobuf `WriteRequest` (prompb's
/// remote.proto and types.proto: timeseries 1; labels 1, samples 2; name 1, value 2; value 1
/// as a double, timestamp 2 as a varint), labels sorted by name with `__name__` among them, in
/// the snappy block format. The block is written as literals only, which every snappy decoder
/// takes: the test needs no compressor.
fn remote_write(name: &str, labels: &[(&str, &str)], value: f64, at_ms: i64) -> Vec<u8> {
    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn field(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }
    let mut all: Vec<(&str, &str)> = labels.to_vec();
    all.push(("__name__", name));
    all.sort();
    let mut series = Vec::new();
    for (k, v) in all {
        let mut label = Vec::new();
        field(0x0a, k.as_bytes(), &mut label);
        field(0x12, v.as_bytes(), &mut label);
        field(0x0a, &label, &mut series);
    }
    let mut sample = vec![0x09];
    sample.extend_from_slice(&value.to_le_bytes());
    sample.push(0x10);
    varint(at_ms as u64, &mut sample);
    field(0x12, &sample, &mut series);
    let mut request = Vec::new();
    field(0x0a, &series, &mut request);
    // Snappy: the uncompressed length, then literal elements of at most 60 bytes, each with
    // the tag byte (length - 1) << 2.
    let mut block = Vec::new();
    varint(request.len() as u64, &mut block);
    for chunk in request.chunks(60) {
        block.push(((chunk.len() - 1) as u8) << 2);
        block.extend_from_slice(chunk);
    }
    block
}

/// Prometheus's `/api/v1/targets` answer once every target is up, or as it is at a deadline
/// (a wait for the first scrapes, not an assertion on time).
fn scraped_targets(gateway: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = http(gateway, "prometheus", "GET", "/api/v1/targets", &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = json(&r.body);
        let targets = v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let all_up = !targets.is_empty() && targets.iter().all(|t| t["health"] == "up");
        if all_up || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `service`'s address on `network`, as the engine assigned it.
fn address_on(env: &Env, service: &str, network: &str) -> String {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    let r = docker_cli(&["inspect", "-f", &format, &env.container(service)]);
    assert_eq!(r.code, 0, "{r}");
    r.stdout.trim().to_string()
}

/// `wget` of `url` from a throwaway container on `network` (the image's busybox, whose `wget
/// -T` crashes: its `timeout` bounds the wait instead): whether it got an answer, and what was
/// said.
fn fetch_from(env: &Env, network: &str, image: &str, url: &str) -> (bool, String) {
    let name = format!("{}-probe", env.name);
    let r = docker_cli(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--network",
        network,
        "--entrypoint",
        "busybox",
        image,
        "timeout",
        "20",
        "wget",
        "-q",
        "-O",
        "-",
        url,
    ]);
    (r.code == 0, r.to_string())
}

#[test]
fn the_core_tier_runs_on_the_real_programs() {
    if !docker::engine() || tool("curl").is_none() || tool("dig").is_none() {
        return;
    }
    let Some(images) = realimages::images() else {
        return;
    };
    let mut env = realimages::env("real", &images);
    let gateway = support::free_port();
    let registry = support::free_port();
    let dns = support::free_port();
    env.publish("gateway", "http", gateway);
    env.publish("registry", "api", registry);
    env.publish("pdns", "dns", dns);

    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 0, "{up}");
    let states = env.states();
    let expected: Vec<String> = realimages::PROGRAMS
        .iter()
        .map(|(s, _)| env.container(s))
        .collect();
    assert_eq!(
        states.keys().cloned().collect::<Vec<_>>(),
        {
            let mut e = expected.clone();
            e.sort();
            e
        },
        "{up}"
    );
    let status = env.devenv(&["status"]);
    assert_eq!(status.code, 0, "every service healthy: {status}");

    // The gateway: each hostname reaches its program, an unknown one gets the list.
    let v2 = http(gateway, "registry", "GET", "/v2/", &[]);
    assert_eq!(v2.status, 200, "{}", v2.body);
    assert!(
        v2.headers
            .contains("docker-distribution-api-version: registry/2.0"),
        "{}",
        v2.headers
    );
    let healthy = http(gateway, "prometheus", "GET", "/-/healthy", &[]);
    assert_eq!(healthy.status, 200, "{}", healthy.body);
    assert!(healthy.body.contains("Healthy"), "{}", healthy.body);
    let unknown = http(gateway, "nothing-here", "GET", "/", &[]);
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.body.contains(&format!("http://dns.{DOMAIN}/")),
        "{}",
        unknown.body
    );

    // PowerDNS's API through the gateway: the generated key opens it, nothing else does.
    let key = env.secret("DEVENV_PDNS_API_KEY");
    let key_header = format!("X-API-Key: {key}");
    let server = http(
        gateway,
        "dns",
        "GET",
        "/api/v1/servers/localhost",
        &["-H", &key_header],
    );
    assert_eq!(server.status, 200, "{}", server.body);
    assert_eq!(json(&server.body)["daemon_type"], "authoritative");
    let keyless = http(gateway, "dns", "GET", "/api/v1/servers/localhost", &[]);
    assert_eq!(keyless.status, 401, "{}", keyless.body);
    let wrong = http(
        gateway,
        "dns",
        "GET",
        "/api/v1/servers/localhost",
        &["-H", "X-API-Key: not-the-key"],
    );
    assert_eq!(wrong.status, 401, "{}", wrong.body);

    // A zone created through the API is answered on the published DNS port.
    let zone = format!("{}.test.", env.name);
    let body = serde_json::json!({
        "name": zone,
        "kind": "Native",
        "nameservers": [format!("ns1.{zone}")],
        "rrsets": [{
            "name": format!("www.{zone}"),
            "type": "A",
            "ttl": 60,
            "changetype": "REPLACE",
            "records": [{"content": "192.0.2.7", "disabled": false}],
        }],
    })
    .to_string();
    let created = http(
        gateway,
        "dns",
        "POST",
        "/api/v1/servers/localhost/zones",
        &[
            "-H",
            &key_header,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body,
        ],
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let www = format!("www.{zone}");
    for tcp in [false, true] {
        let answer = dig(dns, &www, tcp);
        assert_eq!(answer.code, 0, "{answer}");
        assert_eq!(answer.stdout.trim(), "192.0.2.7", "tcp={tcp}: {answer}");
    }

    // The registry: push to its published port, forget the image, pull it back.
    let pushed = Pushed::build(
        &format!("127.0.0.1:{registry}"),
        &format!("{}/hello", env.name),
        &format!("hello from {}\n", env.name),
    );
    let id = pushed.id();
    let push = docker_cli(&["push", &pushed.reference]);
    assert_eq!(push.code, 0, "{push}");
    let tags = http(
        gateway,
        "registry",
        "GET",
        &format!("/v2/{}/hello/tags/list", env.name),
        &[],
    );
    assert_eq!(tags.status, 200, "{}", tags.body);
    assert_eq!(json(&tags.body)["tags"], serde_json::json!(["v1"]));
    pushed.forget_locally();
    let pull = pushed.pull();
    assert_eq!(pull.code, 0, "{pull}");
    assert_eq!(pushed.id(), id, "the image pulled back is the one pushed");

    // Prometheus scrapes every target devenv configured for these services.
    let targets = scraped_targets(gateway);
    let active = targets["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut jobs: Vec<String> = active
        .iter()
        .map(|t| t["labels"]["job"].as_str().unwrap_or("").to_string())
        .collect();
    jobs.sort();
    assert_eq!(jobs, ["pdns", "prometheus", "registry"], "{targets:#}");
    for t in &active {
        assert_eq!(
            t["health"], "up",
            "{} ({}): {}",
            t["labels"]["job"], t["scrapeUrl"], t["lastError"]
        );
    }

    // Prometheus takes remote write (what a cluster's collector sends) through the gateway,
    // as a pod reaches it by name, and a query reads the sample back.
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let body = remote_write(
        "devenv_remote_write_probe",
        &[("cluster", "kind-probe"), ("devenv", &env.name)],
        42.0,
        at,
    );
    let file = env.dir.path().join("remote-write.bin");
    std::fs::write(&file, body).unwrap();
    let data = format!("@{}", file.display());
    let wrote = http(
        gateway,
        "prometheus",
        "POST",
        "/api/v1/write",
        &[
            "--data-binary",
            &data,
            "-H",
            "Content-Encoding: snappy",
            "-H",
            "Content-Type: application/x-protobuf",
            "-H",
            "X-Prometheus-Remote-Write-Version: 0.1.0",
        ],
    );
    assert_eq!(wrote.status, 204, "{}", wrote.body);
    let read = http(
        gateway,
        "prometheus",
        "GET",
        "/api/v1/query?query=devenv_remote_write_probe",
        &[],
    );
    let result = json(&read.body)["data"]["result"].clone();
    assert_eq!(result[0]["value"][1], "42", "{}", read.body);
    assert_eq!(
        result[0]["metric"]["cluster"], "kind-probe",
        "{}",
        read.body
    );
    assert_eq!(
        result[0]["metric"]["devenv"],
        env.name.as_str(),
        "{}",
        read.body
    );

    // Each service is at its fixed address, the one the allow lists name.
    let infra = format!("{}-infra", env.name);
    let subnet: ipnet::Ipv4Net = env.subnet().parse().unwrap();
    let mut config = devenv::config::Config::default();
    config.network.subnet = subnet;
    for (service, _) in realimages::PROGRAMS {
        let fixed = devenv::config::address_of(&config, service).to_string();
        assert_eq!(address_on(&env, service, &infra), fixed, "{service}");
    }
    // PowerDNS's webserver answers Prometheus and the gateway (above), no other container of
    // its network, though that one reaches the registry's API on the same network.
    let probe_image = &images["pdns"];
    let pdns_at = address_on(&env, "pdns", &infra);
    let registry_at = address_on(&env, "registry", &infra);
    let (ok, said) = fetch_from(
        &env,
        &infra,
        probe_image,
        &format!("http://{registry_at}:5000/v2/"),
    );
    assert!(
        ok,
        "a container of the network reaches the registry's API: {said}"
    );
    for path in ["/", "/metrics", "/api/v1/servers/localhost"] {
        let (ok, said) = fetch_from(
            &env,
            &infra,
            probe_image,
            &format!("http://{pdns_at}:8081{path}"),
        );
        assert!(
            !ok,
            "another container of the network got PowerDNS's {path}: {said}"
        );
        // Nor the host, through its address on the network's bridge.
        let url = format!("http://{pdns_at}:8081{path}");
        let r = run(Command::new("curl").args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            &url,
        ]));
        assert_ne!(r.stdout.trim(), "200", "the host got PowerDNS's {url}: {r}");
    }
    // The registry's debug listener (metrics, pprof) is not on KinD's network.
    let kind = devenv::config::KIND_NETWORK;
    let registry_kind = address_on(&env, "registry", kind);
    let (ok, said) = fetch_from(
        &env,
        kind,
        probe_image,
        &format!("http://{registry_kind}:5000/v2/"),
    );
    assert!(ok, "KinD's network reaches the registry's API: {said}");
    for path in ["/metrics", "/debug/pprof/"] {
        let (ok, said) = fetch_from(
            &env,
            kind,
            probe_image,
            &format!("http://{registry_kind}:5001{path}"),
        );
        assert!(!ok, "KinD's network reached the registry's {path}: {said}");
    }
    // Nor on its own infrastructure network, nor from the host through any of its addresses
    // (the host has one on the bridges of the infrastructure and KinD networks): only on the
    // internal metrics network, which only Prometheus joins with it. A container that joins
    // that network reaches it, so the probes above and below can tell.
    let metrics_network = format!("{}-metrics", env.name);
    let (ok, said) = fetch_from(
        &env,
        &metrics_network,
        probe_image,
        "http://registry-debug:5001/metrics",
    );
    assert!(
        ok && said.contains("go_goroutines"),
        "a container of the metrics network gets the registry's metrics: {said}"
    );
    for path in ["/metrics", "/debug/pprof/"] {
        let (ok, said) = fetch_from(
            &env,
            &infra,
            probe_image,
            &format!("http://{registry_at}:5001{path}"),
        );
        assert!(
            !ok,
            "another container of the infrastructure network reached the registry's {path}: {said}"
        );
    }
    let registry_metrics = address_on(&env, "registry", &metrics_network);
    for address in [&registry_at, &registry_kind, &registry_metrics] {
        let url = format!("http://{address}:5001/metrics");
        let r = run(Command::new("curl").args(["-sS", "--max-time", "5", &url]));
        assert!(
            !r.stdout.contains("go_goroutines"),
            "the host reached the registry's debug listener at {url}: {r}"
        );
    }

    // Data survives down/up: the zone is still served, the image still pullable.
    let down = env.devenv(&["down"]);
    assert_eq!(down.code, 0, "{down}");
    assert!(env.containers().is_empty(), "{down}");
    let again = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(again.code, 0, "{again}");
    let answer = dig(dns, &www, false);
    assert_eq!(answer.stdout.trim(), "192.0.2.7", "{answer}");
    let zones = http(
        gateway,
        "dns",
        "GET",
        &format!("/api/v1/servers/localhost/zones/{zone}"),
        &["-H", &key_header],
    );
    assert_eq!(zones.status, 200, "{}", zones.body);
    pushed.forget_locally();
    let pull = pushed.pull();
    assert_eq!(pull.code, 0, "{pull}");
    assert_eq!(pushed.id(), id);
    assert!(
        env.state().join("secrets.env").is_file(),
        "down keeps the secrets"
    );
}

/// A published port of an infrastructure service other than HTTP reaches it under its name
/// through the gateway, as a pod does: the cluster's zone sends `postgres.<domain>` to the
/// gateway container, whose stream server for the published port passes it to the database.
/// Here from a container on the infrastructure network (the gateway's stream servers listen on
/// every network it is on; pods come from the `kind` one), with `postgres.<domain>` resolved
/// the way the zone says.
#[test]
fn a_database_port_is_reached_by_name_through_the_gateway_as_from_a_pod() {
    if !docker::engine() {
        return;
    }
    let Some(images) = realimages::images() else {
        return;
    };
    let mut env = realimages::env("rstream", &images);
    // TimescaleDB's service on the real Postgres: the same image contract (POSTGRES_* and
    // pg_isready).
    let postgres = images["pdns-db"].clone();
    env.image_overrides
        .insert("timescaledb".into(), postgres.clone());
    env.extra
        .insert("timescaledb".into(), "    enabled: true\n".into());
    let port = support::free_port();
    env.publish("timescaledb", "postgres", port);
    env.write();
    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 0, "{up}");

    // The zone pods get sends the name to the gateway.
    let out = env.dir.path().join("rendered");
    let render = env.devenv(&["render", "--out", out.to_str().unwrap()]);
    assert_eq!(render.code, 0, "{render}");
    let zone = std::fs::read_to_string(out.join("kind/manifests/coredns-zone.yaml")).unwrap();
    let gateway = env.container("gateway");
    let record = format!("postgres.{DOMAIN}. 5 IN CNAME {gateway}.");
    assert!(zone.contains(&record), "no `{record}` in the zone:\n{zone}");

    let network = format!("{}-infra", env.name);
    let address = address_on(&env, "gateway", &network);
    let password = env.secret("DEVENV_TIMESCALE_PASSWORD");
    // psql by name, on the published port `at`, as a pod would connect.
    let query = |at: u16, sql: &str| {
        docker_cli(&[
            "run",
            "--rm",
            "--network",
            &network,
            "--add-host",
            &format!("postgres.{DOMAIN}:{address}"),
            "-e",
            &format!("PGPASSWORD={password}"),
            "--entrypoint",
            "psql",
            &postgres,
            &format!(
                "host=postgres.{DOMAIN} port={at} user=devenv dbname=devenv connect_timeout=10"
            ),
            "-tAc",
            sql,
        ])
    };
    let answer = query(port, "select 6 * 7");
    assert_eq!(answer.code, 0, "{answer}");
    assert_eq!(answer.stdout.trim(), "42", "{answer}");
    // A port nothing publishes is not proxied.
    let closed = docker_cli(&[
        "run",
        "--rm",
        "--network",
        &network,
        "--entrypoint",
        "psql",
        &postgres,
        &format!("host={address} port=5433 user=devenv dbname=devenv connect_timeout=5"),
        "-tAc",
        "select 1",
    ]);
    assert_ne!(closed.code, 0, "{closed}");

    // Another published port: the database is recreated, the gateway kept and reloaded with
    // its stream servers, and the name answers on the new port.
    let gateway_id = env.containers()[&gateway].clone();
    let moved = support::free_port();
    env.publish("timescaledb", "postgres", moved);
    env.write();
    let again = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(again.code, 0, "{again}");
    assert!(again.stderr.contains("reloaded gateway"), "{again}");
    assert_eq!(
        env.containers()[&gateway],
        gateway_id,
        "reloaded, not re-created"
    );
    let moved_query = query(moved, "select 6 * 7");
    assert_eq!(moved_query.stdout.trim(), "42", "{moved_query}");
    let old_port = query(port, "select 1");
    assert_ne!(
        old_port.code, 0,
        "the old port is no longer proxied: {old_port}"
    );
    let down = env.devenv(&["down", "--purge", "--yes"]);
    assert_eq!(down.code, 0, "{down}");
}
