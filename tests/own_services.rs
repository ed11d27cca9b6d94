//! Services of the user's own beside the built-in ones, on real programs from Debian's packages
//! (tests/support/realimages: redis-server and rabbitmq-server in images built like the other
//! real-program images, standing in for `redis:<tag>` and `rabbitmq:<tag>`), through the real
//! binary: `up` makes them healthy with a secret devenv generated (never printed), their ports
//! answer their own protocols, their names resolve through devenv's resolver, `down` keeps
//! their volume's data (and the secret that opens it), `down --purge` removes it, and
//! `render` writes them into the compose file with secret references only.
//!
//! The built-in services run as the busybox stand-in, only the gateway on: these tests are
//! about the services of one's own. Skips visibly without Docker, dig or the images; fails
//! instead under DEVENV_REQUIRE_DOCKER=1.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use support::docker::{self, Env, SERVICES};
use support::{free_port, realimages, tool};

/// An environment with only the gateway among the built-ins, the resolver on a free port, and
/// `own` as the services of one's own (lines under `services:`).
fn env_with(test: &str, own: String) -> Option<(Env, u16)> {
    if !docker::engine() || tool("dig").is_none() {
        return None;
    }
    let standin = docker::standin_image()?;
    let mut env = Env::new(test, &standin);
    for (service, _) in SERVICES {
        let enabled = *service == "gateway";
        env.extra
            .insert(service.to_string(), format!("    enabled: {enabled}\n"));
    }
    let dns = free_port();
    env.dns = format!("  port: {dns}\n");
    env.own = own;
    env.write();
    Some((env, dns))
}

/// Send RESP commands (one per line, inline form) to Redis at `port` and read what it answers
/// to all of them.
fn redis(port: u16, commands: &[&str]) -> String {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("redis answers");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = String::new();
    for c in commands {
        s.write_all(format!("{c}\r\n").as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    out
}

const REDIS: &str = r#"  cache:
    image: "IMAGE"
    command: [sh, -c, 'exec redis-server --protected-mode no --appendonly yes --requirepass "$REDIS_PASSWORD"']
    env:
      REDIS_PASSWORD: "${DEVENV_SECRET_CACHE_PASSWORD}"
    ports:
      redis: {container: 6379, host: PORT}
    volumes: ["data:/data"]
    healthcheck:
      command: [sh, -c, 'redis-cli --no-auth-warning -a "$REDIS_PASSWORD" ping | grep -q PONG']
      interval: 1
    hostnames: [cache]
"#;

#[test]
fn redis_as_a_service_of_ones_own_keeps_its_data_and_its_secret_across_down() {
    let Some(image) = realimages::program("redis") else {
        return;
    };
    let port = free_port();
    let own = REDIS
        .replace("IMAGE", &image)
        .replace("PORT", &port.to_string());
    let Some((env, dns)) = env_with("own", own) else {
        return;
    };
    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 0, "{up}");
    let password = env.secret("DEVENV_SECRET_CACHE_PASSWORD");
    assert_eq!(password.len(), 32);
    assert!(!up.stdout.contains(&password) && !up.stderr.contains(&password));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.state().join("secrets.env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let states = env.states();
    assert_eq!(states[&env.container("cache")], "running", "{states:?}");

    // The real Redis, with the generated password: refused without it.
    assert!(redis(port, &["PING"]).starts_with("-NOAUTH"));
    let answers = redis(
        port,
        &[&format!("AUTH {password}"), "SET devenv-kept yes", "PING"],
    );
    assert_eq!(answers, "+OK\r\n+OK\r\n+PONG\r\n");

    // Its name, from devenv's resolver, as the infrastructure's names are answered.
    let a = support::dns::short(&dns.to_string(), &["cache.macula.local", "A"]);
    assert_eq!(a, ["127.0.0.1"], "{a:?}");

    // `status` lists it with the built-ins.
    let status = env.devenv(&["status"]);
    assert!(status.stdout.contains("cache"), "{status}");

    // `down` keeps the volume, and the secret that opens it: the data is there after `up`.
    let down = env.devenv(&["down"]);
    assert_eq!(down.code, 0, "{down}");
    let volume = format!("{}-cache-data", env.name);
    assert_eq!(
        docker::docker(&["volume", "inspect", &volume]).code,
        0,
        "down removed {volume}"
    );
    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 0, "{up}");
    assert_eq!(env.secret("DEVENV_SECRET_CACHE_PASSWORD"), password);
    let answers = redis(port, &[&format!("AUTH {password}"), "GET devenv-kept"]);
    assert_eq!(answers, "+OK\r\n$3\r\nyes\r\n");

    // `--purge` removes it.
    let purge = env.devenv(&["down", "--purge", "--yes"]);
    assert_eq!(purge.code, 0, "{purge}");
    assert_ne!(docker::docker(&["volume", "inspect", &volume]).code, 0);
}

#[test]
fn rabbitmq_as_a_service_of_ones_own_becomes_healthy_and_speaks_amqp() {
    let Some(image) = realimages::program("rabbitmq") else {
        return;
    };
    let amqp = free_port();
    let own = format!(
        r#"  queue:
    image: "{image}"
    env:
      RABBITMQ_DEFAULT_PASS: "${{DEVENV_SECRET_QUEUE_PASSWORD}}"
    ports:
      amqp: {{container: 5672, host: {amqp}}}
    volumes: ["data:/var/lib/rabbitmq"]
    healthcheck:
      command: [rabbitmq-diagnostics, -q, check_port_connectivity]
      interval: 2
      timeout: 10
      retries: 30
"#
    );
    let Some((env, _)) = env_with("own", own) else {
        return;
    };
    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 0, "{up}");
    // The AMQP 0-9-1 protocol header gets the server's Connection.Start: a method frame
    // (type 1) on channel 0.
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, amqp)).expect("AMQP answers");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    let mut frame = [0u8; 7];
    s.read_exact(&mut frame).unwrap();
    assert_eq!(frame[0], 1, "not a method frame: {frame:?}");
    assert_eq!(&frame[1..3], &[0, 0], "not channel 0: {frame:?}");
}

#[test]
fn render_writes_a_service_of_ones_own_with_secret_references_only() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir(h.join("conf")).unwrap();
    std::fs::write(
        h.join("devenv.yaml"),
        r#"services:
  mail:
    image: axllent/mailpit:v1.27.8
    env:
      MP_UI_AUTH: "admin:${DEVENV_SECRET_MAIL_UI}"
      MP_MAX_MESSAGES: "500"
    ports:
      smtp: {container: 1025, host: 1025}
      http: {container: 8025, host: 0}
    hostnames: [mail]
    volumes: ["data:/data", "./conf:/etc/mailpit"]
"#,
    )
    .unwrap();
    let out = h.join("out");
    let r = support::run(
        support::devenv(h)
            .arg("--config")
            .arg(h.join("devenv.yaml"))
            .args(["render", "--out"])
            .arg(&out),
    );
    assert_eq!(r.code, 0, "{r}");
    let compose = std::fs::read_to_string(out.join("compose/infra.yaml")).unwrap();
    assert!(compose.contains("container_name: macula-mail"), "{compose}");
    assert!(
        compose.contains("admin:${DEVENV_SECRET_MAIL_UI:?pass devenv secrets.env with --env-file}"),
        "{compose}"
    );
    assert!(compose.contains("127.0.0.1:1025:1025/tcp"), "{compose}");
    assert!(compose.contains("macula-mail-data"), "{compose}");
    assert!(
        compose.contains(&h.join("conf").display().to_string()),
        "{compose}"
    );
    // The gateway proxies its `http` port under its name.
    let nginx = std::fs::read_to_string(out.join("compose/gateway/nginx.conf")).unwrap();
    assert!(nginx.contains("mail.macula.local"), "{nginx}");
    assert!(nginx.contains("mail:8025"), "{nginx}");
}

/// `tcp:` and `http:` healthchecks, for images with no tool to check with, are probed by devenv
/// itself: Redis's port unpublished (at the container's address), the stand-in's HTTP port
/// published (through the host's binding); `status` asks them too; the compose file carries no
/// Docker healthcheck for them; a path that answers 404 keeps `up` waiting until its timeout,
/// naming the answer.
#[test]
fn tcp_and_http_healthchecks_are_probed_by_devenv_itself() {
    let Some(redis) = realimages::program("redis") else {
        return;
    };
    if !docker::engine() {
        return;
    }
    let Some(standin) = docker::standin_image() else {
        return;
    };
    let web_port = free_port();
    let own = |path: &str| {
        format!(
            r#"  kv:
    image: "{redis}"
    command: [redis-server, --protected-mode, "no"]
    ports:
      redis: {{container: 6379, host: 0}}
    healthcheck: {{tcp: redis, interval: 1}}
  web:
    image: "{standin}"
    ports:
      http: {{container: 3000, host: {web_port}}}
    healthcheck: {{http: {{port: http, path: {path}}}, timeout: 2}}
"#
        )
    };
    let Some((mut env, _dns)) = env_with("probe", own("/health")) else {
        return;
    };
    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 0, "{up}");
    let status = env.devenv(&["status", "-o", "json"]);
    assert_eq!(status.code, 0, "{status}");
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    for name in ["kv", "web"] {
        let row = doc["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["service"] == name)
            .unwrap_or_else(|| panic!("no row for {name}: {doc}"));
        assert_eq!(row["health"], "healthy", "{row}");
    }
    let out = env.dir.path().join("out");
    let render = env.devenv(&["render", "--out", out.to_str().unwrap()]);
    assert_eq!(render.code, 0, "{render}");
    let compose = std::fs::read_to_string(out.join("compose/infra.yaml")).unwrap();
    for name in ["kv", "web"] {
        let block = service_block(&compose, name);
        assert!(
            block.contains("image:"),
            "no `{name}` in the compose file:\n{compose}"
        );
        assert!(
            !block.contains("healthcheck"),
            "{name} has a Docker healthcheck:\n{block}"
        );
    }

    // A path that is not there: `up` waits out its timeout and names the answer.
    env.own = own("/missing");
    env.write();
    let up = env.devenv(&["up", "--pull", "never", "--timeout", "8s"]);
    assert_ne!(up.code, 0, "{up}");
    assert!(
        up.stderr.contains("GET /missing") && up.stderr.contains("404"),
        "{up}"
    );

    // A published port nothing listens behind: Docker's proxy accepts and closes at once, which
    // is not healthy.
    let dead = free_port();
    env.own = format!(
        "{}  dead:\n    image: \"{standin}\"\n    ports:\n      x: {{container: 7777, host: {dead}}}\n    healthcheck: {{tcp: x}}\n",
        own("/health")
    );
    env.write();
    let up = env.devenv(&["up", "--pull", "never", "--timeout", "8s"]);
    assert_ne!(up.code, 0, "{up}");
    assert!(
        up.stderr.contains("service dead did not become healthy"),
        "{up}"
    );
    let down = env.devenv(&["down", "--purge", "--yes"]);
    assert_eq!(down.code, 0, "{down}");
}

/// The lines of service `name` in a compose file (from `  name:` to the next service).
fn service_block(compose: &str, name: &str) -> String {
    let start = format!("  {name}:");
    let mut lines = compose.lines().skip_while(|l| *l != start);
    let mut out: Vec<&str> = lines.next().into_iter().collect();
    out.extend(lines.take_while(|l| l.starts_with("    ") || l.is_empty()));
    out.join("\n")
}
