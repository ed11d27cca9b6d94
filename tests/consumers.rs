//! The rendered files, checked by the real programs that consume them: nginx (config test and a
//! live gateway answering /health and the 404 of unknown hosts), promtool, docker-compose
//! 1.29's `config`, and PowerDNS for real — Debian's pdns_server on a throwaway Postgres 15
//! loaded with the rendered schema, configured by the rendered pdns.conf and the secrets
//! template rendered by Jinja2 as the PowerDNS image's startup script does, a zone created
//! through its HTTP API and answered over DNS.
//!
//! A missing tool skips locally and fails under DEVENV_REQUIRE_DOCKER=1 (CI).

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::postgres::Postgres;
use support::process::{Guard, wait_for};
use support::{devenv, free_port, run, skip, tool};

/// The default rendering in a fresh directory (`<home>/out`).
fn rendered(home: &Path) -> PathBuf {
    let out = home.join("out");
    let r = run(devenv(home).args(["render", "--out"]).arg(&out));
    assert_eq!(r.code, 0, "render failed\n{r}");
    out
}

/// One HTTP/1.1 request; returns status code, headers and body.
fn http(
    port: u16,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, head.to_string(), body.to_string()))
}

#[test]
fn nginx_accepts_the_gateway_config_and_serves_it() {
    let Some(nginx) = tool("nginx") else { return };
    let home = tempfile::tempdir().unwrap();
    let out = rendered(home.path());
    let rendered_conf = out.join("compose/gateway/nginx.conf");
    let prefix = home.path().join("nginx");
    std::fs::create_dir_all(&prefix).unwrap();
    let pid = prefix.join("nginx.pid");
    // Debian's module files name their modules relative to the prefix, as in the container.
    std::os::unix::fs::symlink("/usr/lib/nginx/modules", prefix.join("modules")).unwrap();

    // The config as rendered, its live directory (certificate, key, routes; the container's
    // /etc/nginx/devenv) prepared by devenv in a state directory. Upstream names are not
    // resolved at startup, so this passes without Docker's DNS.
    let state = home.path().join("state");
    devenv::gateway::prepare(&devenv::config::Config::default(), &state).unwrap();
    // The routes file as prepared is the container's (it listens on :80); none here.
    std::fs::remove_file(devenv::gateway::dir(&state).join("routes.conf")).unwrap();
    let conf = prefix.join("rendered.conf");
    let text = std::fs::read_to_string(&rendered_conf).unwrap().replace(
        devenv::config::GATEWAY_LIVE_DIR,
        &devenv::gateway::dir(&state).display().to_string(),
    );
    std::fs::write(&conf, &text).unwrap();
    let t = run(Command::new(&nginx)
        .arg("-t")
        .arg("-e")
        .arg("stderr")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        .arg("-g")
        .arg(format!("pid {};", pid.display())));
    assert_eq!(t.code, 0, "nginx -t rejects {}\n{t}", conf.display());
    assert!(t.stderr.contains("test is successful"), "{t}");

    // Live, with only the listen port moved off :80.
    let port = free_port();
    let live = text
        .replace("listen 80", &format!("listen 127.0.0.1:{port}"))
        .replace("listen 443", &format!("listen 127.0.0.1:{}", free_port()));
    // The stream servers (in the live directory) too: on the host those ports are the
    // services' own.
    let streams_file = devenv::gateway::dir(&state).join(devenv::render::nginx::STREAMS_FILE);
    let streams = std::fs::read_to_string(&streams_file).unwrap();
    assert!(streams.contains("stream {"), "{streams}");
    let moved: Vec<String> = streams
        .lines()
        .map(|l| match l.trim().strip_prefix("listen ") {
            Some(rest) => {
                let udp = if rest.contains("udp") { " udp" } else { "" };
                format!("        listen 127.0.0.1:{}{udp};", free_port())
            }
            None => l.to_string(),
        })
        .collect();
    std::fs::write(&streams_file, moved.join("\n")).unwrap();
    let live_conf = prefix.join("nginx.conf");
    std::fs::write(&live_conf, live).unwrap();
    let mut server = Guard::spawn(
        "nginx",
        Command::new(&nginx)
            .arg("-e")
            .arg("stderr")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&live_conf)
            .arg("-g")
            .arg(format!("pid {}; daemon off;", pid.display())),
    );
    wait_for("nginx", &mut server, || {
        http(port, "GET", "x", "/health", &[], "").is_ok()
    });

    // The container's healthcheck: no Host of ours, answered by the default server.
    let (code, head, body) = http(port, "GET", "127.0.0.1", "/health", &[], "").unwrap();
    assert_eq!((code, body.as_str()), (200, "ok\n"), "{head}");
    for host in [
        "registry.macula.local",
        "grafana.macula.local",
        "dns.macula.local",
    ] {
        let (code, head, _) = http(port, "GET", host, "/health", &[], "").unwrap();
        assert_eq!(code, 200, "{host}: {head}");
        assert!(head.contains("X-Frame-Options: SAMEORIGIN"), "{head}");
        assert!(head.contains("X-Content-Type-Options: nosniff"), "{head}");
        assert!(head.contains("Referrer-Policy:"), "{head}");
    }
    let (code, _, body) = http(port, "GET", "nothing.macula.local", "/", &[], "").unwrap();
    assert_eq!(code, 404);
    for host in [
        "http://registry.macula.local/",
        "http://grafana.macula.local/",
        "http://s3-console.macula.local/",
    ] {
        assert!(body.contains(host), "the 404 does not list {host}:\n{body}");
    }
    assert!(!body.contains("postgres.macula.local"), "{body}");
}

#[test]
fn promtool_accepts_prometheus_yml() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let out = rendered(home.path());
    let file = out.join("compose/prometheus/prometheus.yml");
    let r = run(Command::new(promtool).args(["check", "config"]).arg(&file));
    assert_eq!(r.code, 0, "promtool rejects {}\n{r}", file.display());
    assert!(r.stdout.contains("SUCCESS"), "{r}");
}

const SECRET_VARS: [&str; 6] = [
    "DEVENV_PDNS_DB_PASSWORD",
    "DEVENV_PDNS_API_KEY",
    "DEVENV_PDNS_ADMIN_SECRET_KEY",
    "DEVENV_GRAFANA_ADMIN_PASSWORD",
    "DEVENV_MINIO_ROOT_PASSWORD",
    "DEVENV_TIMESCALE_PASSWORD",
];

fn compose(tool: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(tool);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", out)
        .current_dir(out)
        .args(["-f", "compose/infra.yaml"]);
    cmd
}

#[test]
fn docker_compose_accepts_infra_yaml() {
    let Some(dc) = tool("docker-compose") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let out = rendered(home.path());

    // As a person runs it: the secrets from an env file like devenv's state directory has.
    let secrets = home.path().join("secrets.env");
    let mut body: String = SECRET_VARS
        .iter()
        .map(|v| format!("{v}=dummy-{v}\n"))
        .collect();
    // The gateway mounts its live directory (certificate, routes) from the state directory.
    body.push_str(&format!(
        "DEVENV_STATE_DIR={}\n",
        home.path().join("state").display()
    ));
    std::fs::write(&secrets, body).unwrap();
    let r = run(compose(&dc, &out)
        .arg("--env-file")
        .arg(&secrets)
        .args(["config", "-q"]));
    assert_eq!(r.code, 0, "docker-compose rejects compose/infra.yaml\n{r}");

    // The resolved file has the secrets from the env file, in environments only: never in an
    // entrypoint or command, which every user of the host can read in /proc/<pid>/cmdline.
    let r = run(compose(&dc, &out)
        .arg("--env-file")
        .arg(&secrets)
        .arg("config"));
    assert_eq!(r.code, 0, "{r}");
    let resolved: serde_json::Value =
        serde_saphyr::from_str(&r.stdout).expect("docker-compose config prints YAML");
    let pdns_env = &resolved["services"]["pdns"]["environment"];
    assert_eq!(pdns_env["PDNS_API_KEY"], "dummy-DEVENV_PDNS_API_KEY", "{r}");
    assert_eq!(
        pdns_env["PDNS_DB_PASSWORD"], "dummy-DEVENV_PDNS_DB_PASSWORD",
        "{r}"
    );
    assert_eq!(pdns_env["TEMPLATE_FILES"], "secrets", "{r}");
    for (name, svc) in resolved["services"].as_object().unwrap() {
        for key in ["entrypoint", "command"] {
            let argv = svc[key].to_string();
            assert!(
                !argv.contains("dummy-") && !argv.contains("PASSWORD") && !argv.contains("KEY"),
                "{name}'s {key} carries a secret: {argv}"
            );
        }
    }

    // Without the secrets compose refuses, naming the variable.
    let r = run(compose(&dc, &out).args(["config", "-q"]));
    assert_ne!(
        r.code, 0,
        "compose must refuse to run without the secrets\n{r}"
    );
    assert!(r.stderr.contains("DEVENV_"), "{r}");

    // Every bind mount's source is a file the renderer wrote.
    let text = std::fs::read_to_string(out.join("compose/infra.yaml")).unwrap();
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("infra.yaml is YAML");
    let mut binds = 0;
    for (name, svc) in doc["services"].as_object().unwrap() {
        for v in svc["volumes"].as_array().into_iter().flatten() {
            if v["type"] == "bind" {
                let src = v["source"].as_str().unwrap();
                assert_eq!(v["read_only"], true, "{name} mounts {src} writable");
                // The gateway's live directory is devenv's, in the state directory.
                if src.starts_with("${DEVENV_STATE_DIR:?") {
                    continue;
                }
                assert!(
                    out.join("compose").join(src).is_file(),
                    "{name} mounts {src}, which was not rendered"
                );
                assert_eq!(v["read_only"], true, "{name} mounts {src} writable");
                binds += 1;
            }
        }
    }
    assert!(
        binds >= 8,
        "expected every rendered config to be mounted, found {binds}"
    );
}

/// What the PowerDNS image's startup script does with `TEMPLATE_FILES` before it starts
/// pdns_server: render each named `<templates>/<name>.j2` with Jinja2, the environment as the
/// values, into `<include-dir>/<name>.conf`. Arguments: the templates and include directories.
const RENDER_TEMPLATE_FILES: &str = r#"
import os, sys, jinja2
templates, include = sys.argv[1], sys.argv[2]
for name in os.environ["TEMPLATE_FILES"].split(","):
    with open(os.path.join(templates, name + ".j2")) as source:
        text = jinja2.Template(source.read()).render(os.environ)
    with open(os.path.join(include, name + ".conf"), "w") as target:
        target.write(text)
"#;

/// Debian's python3 with its Jinja2 (python3-jinja2), as in the PowerDNS image.
fn debian_jinja2() -> Option<PathBuf> {
    let python = PathBuf::from("/usr/bin/python3");
    if python.is_file() && run(Command::new(&python).args(["-c", "import jinja2"])).code == 0 {
        return Some(python);
    }
    skip("Debian's python3-jinja2 is not installed (/usr/bin/python3 cannot import jinja2)");
    None
}

#[test]
fn powerdns_serves_a_zone_created_through_its_api_from_the_rendered_schema_and_config() {
    let (Some(pdns_server), Some(dig)) = (tool("pdns_server"), tool("dig")) else {
        return;
    };
    let Some(python) = debian_jinja2() else {
        return;
    };
    if !Path::new("/usr/lib/x86_64-linux-gnu/pdns/libgpgsqlbackend.so").exists()
        && run(Command::new("sh").args(["-c", "ls /usr/lib/*/pdns/libgpgsqlbackend.so"])).code != 0
    {
        skip("pdns-backend-pgsql is not installed");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let out = rendered(home.path());
    let Some(pg) = Postgres::start(&home.path().join("pg")) else {
        return;
    };

    let db_password = "db-secret-for-test";
    let r = run(pg.psql_admin().args([
        "-c",
        &format!("CREATE ROLE pdns LOGIN PASSWORD '{db_password}'"),
        "-c",
        "CREATE DATABASE pdns OWNER pdns",
    ]));
    assert_eq!(r.code, 0, "{r}");

    // The schema, loaded the way the pdns-db container's init does (as the pdns role), twice:
    // it must be safe to re-run.
    let schema = out.join("compose/pdns/schema.pgsql.sql");
    let schema_copy = pg.dir.join("schema.pgsql.sql");
    std::fs::copy(&schema, &schema_copy).unwrap();
    for _ in 0..2 {
        let r = run(pg
            .psql("pdns", db_password, "pdns")
            .arg("-f")
            .arg(&schema_copy));
        assert_eq!(r.code, 0, "the rendered schema does not load\n{r}");
        assert!(!r.stderr.contains("ERROR"), "{r}");
    }

    // The secrets as the container gets them: the rendered secrets.j2 rendered by Jinja2 from
    // the environment into the include-dir, as the image's startup script does before it
    // starts pdns_server (TEMPLATE_FILES names the templates).
    let api_key = "api-key-for-test";
    let include = home.path().join("pdns.d");
    std::fs::create_dir_all(&include).unwrap();
    let r = run(Command::new(&python)
        .arg("-c")
        .arg(RENDER_TEMPLATE_FILES)
        .arg(out.join("compose/pdns"))
        .arg(&include)
        .env("TEMPLATE_FILES", "secrets")
        .env("PDNS_DB_PASSWORD", db_password)
        .env("PDNS_API_KEY", api_key));
    assert_eq!(r.code, 0, "Jinja2 cannot render secrets.j2\n{r}");

    // The rendered pdns.conf with only its include-dir moved to that directory.
    let conf_dir = home.path().join("pdns-conf");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let conf = std::fs::read_to_string(out.join("compose/pdns/pdns.conf")).unwrap();
    let in_container = "\ninclude-dir=/etc/powerdns/pdns.d\n";
    assert_eq!(conf.matches(in_container).count(), 1, "{conf}");
    let conf = conf.replace(
        in_container,
        &format!("\ninclude-dir={}\n", include.display()),
    );
    std::fs::write(conf_dir.join("pdns.conf"), conf).unwrap();

    // pdns_server without any secret on its command line; only where it listens and connects
    // is moved.
    let dns_port = free_port();
    let api_port = free_port();
    let sockets = home.path().join("pdns-run");
    std::fs::create_dir_all(&sockets).unwrap();
    let mut pdns = Guard::spawn(
        "pdns_server",
        Command::new(&pdns_server)
            .arg(format!("--config-dir={}", conf_dir.display()))
            .arg(format!("--socket-dir={}", sockets.display()))
            .arg("--gpgsql-host=127.0.0.1")
            .arg(format!("--gpgsql-port={}", pg.port))
            .arg("--local-address=127.0.0.1")
            .arg(format!("--local-port={dns_port}"))
            .arg("--webserver-address=127.0.0.1")
            .arg(format!("--webserver-port={api_port}")),
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pdns.id())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(
        !cmdline.contains(db_password) && !cmdline.contains(api_key),
        "{cmdline}"
    );
    let key = [("X-API-Key", api_key)];
    wait_for("the PowerDNS API", &mut pdns, || {
        matches!(
            http(
                api_port,
                "GET",
                "localhost",
                "/api/v1/servers/localhost",
                &key,
                ""
            ),
            Ok((200, _, _))
        )
    });

    // The API needs the key.
    let (code, _, _) = http(
        api_port,
        "GET",
        "localhost",
        "/api/v1/servers/localhost/zones",
        &[],
        "",
    )
    .unwrap();
    assert_eq!(code, 401);

    let zone = r#"{"name":"example.macula.local.","kind":"Native","nameservers":["ns1.macula.local."],
        "rrsets":[{"name":"www.example.macula.local.","type":"A","ttl":60,"changetype":"REPLACE",
                   "records":[{"content":"127.0.0.9","disabled":false}]}]}"#;
    let json = [("X-API-Key", api_key), ("Content-Type", "application/json")];
    let (code, head, body) = http(
        api_port,
        "POST",
        "localhost",
        "/api/v1/servers/localhost/zones",
        &json,
        zone,
    )
    .unwrap();
    assert_eq!(code, 201, "creating the zone failed\n{head}\n{body}");

    let answer = run(Command::new(&dig).args([
        "@127.0.0.1",
        "-p",
        &dns_port.to_string(),
        "+short",
        "+time=5",
        "+tries=2",
        "www.example.macula.local",
        "A",
    ]));
    assert_eq!(answer.code, 0, "{answer}");
    assert_eq!(answer.stdout.trim(), "127.0.0.9", "{answer}");
    let soa = run(Command::new(&dig).args([
        "@127.0.0.1",
        "-p",
        &dns_port.to_string(),
        "+short",
        "example.macula.local",
        "SOA",
    ]));
    assert!(soa.stdout.starts_with("ns1.macula.local."), "{soa}");

    // The records are in the rendered schema's tables.
    let r = run(pg.psql("pdns", db_password, "pdns").args([
        "-At",
        "-c",
        "SELECT content FROM records WHERE name = 'www.example.macula.local' AND type = 'A'",
    ]));
    assert_eq!(r.stdout.trim(), "127.0.0.9", "{r}");
}
