//! `devenv up` / `down` / `status` / `logs` against this machine's real Docker engine.
//!
//! There is no registry here, so every service runs the stand-in image built from Debian's
//! busybox-static (tests/support/standin): it answers each service's real healthcheck command.
//! Each test has its own environment name, subnet, ports and state directory, and cleans up
//! on drop. Without an engine these skip visibly; with `DEVENV_REQUIRE_DOCKER=1` they fail.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use support::docker::{self, EngineProxy, Env, SERVICES, docker as docker_cli};

/// An environment for `test`, or `None` (after a skip notice) without an engine.
fn env(test: &str) -> Option<Env> {
    if !docker::engine() {
        return None;
    }
    let image = docker::standin_image()?;
    Some(Env::new(test, &image))
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the published port accepts");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn up_from_nothing_then_a_rerun_changes_nothing() {
    let Some(mut env) = env("fresh") else { return };
    let gateway = support::free_port();
    let dns = support::free_port();
    env.publish("gateway", "http", gateway);
    env.publish("pdns", "dns", dns);

    let first = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(first.code, 0, "{first}");
    let states = env.states();
    assert_eq!(states.len(), SERVICES.len(), "{states:?}");
    assert!(states.values().all(|s| s == "running"), "{states:?}");
    // The summary table names every service, healthy.
    for (service, _) in SERVICES {
        let line = first
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{service} ")))
            .unwrap_or_else(|| panic!("{service} missing from the summary:\n{first}"));
        assert!(
            line.contains("running") && line.contains("healthy"),
            "{line}"
        );
    }
    // Labels, the network alias, the kind network, TCP and UDP publishing.
    let inspect = docker_cli(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"dev.devenv.service\"}} {{index .Config.Labels \"dev.devenv.spec-hash\"}} {{json .NetworkSettings.Networks}}",
        &env.container("registry"),
    ]);
    assert!(inspect.stdout.starts_with("registry "), "{inspect}");
    assert_eq!(inspect.stdout.split_whitespace().nth(1).unwrap().len(), 64);
    assert!(inspect.stdout.contains("\"kind\""), "{inspect}");
    assert!(
        inspect.stdout.contains(&format!("{}-infra", env.name)),
        "{inspect}"
    );
    // The internal metrics network: a /29 devenv chose from its own ranges, not a /16 of
    // Docker's default address pools.
    let metrics = docker_cli(&[
        "network",
        "inspect",
        "--format",
        "{{.Internal}} {{range .IPAM.Config}}{{.Subnet}}{{end}}",
        &format!("{}-metrics", env.name),
    ]);
    let (internal, subnet) = metrics.stdout.trim().split_once(' ').expect("a subnet");
    assert_eq!(internal, "true", "{metrics}");
    assert!(
        subnet.ends_with("/29")
            && (subnet.starts_with("172.31.255.") || subnet.starts_with("10.255.255.")),
        "{metrics}"
    );
    let ports = docker_cli(&["port", &env.container("pdns")]).stdout;
    assert!(
        ports.contains(&format!("5300/udp -> 127.0.0.1:{dns}")),
        "{ports}"
    );
    assert!(
        ports.contains(&format!("5300/tcp -> 127.0.0.1:{dns}")),
        "{ports}"
    );
    assert!(http_get(gateway, "/health").contains("200 OK"));
    // Another service reaches the registry by its service name on the infrastructure network.
    let by_alias = docker_cli(&[
        "exec",
        &env.container("grafana"),
        "wget",
        "-q",
        "-O",
        "-",
        "http://registry:5000/v2/",
    ]);
    assert_eq!(by_alias.code, 0, "{by_alias}");
    // Secrets reach the containers, and only through the state directory.
    let secrets = std::fs::read_to_string(env.state().join("secrets.env")).unwrap();
    let env_of = docker_cli(&[
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        &env.container("timescaledb"),
    ]);
    let password = secrets
        .lines()
        .find_map(|l| l.strip_prefix("DEVENV_TIMESCALE_PASSWORD="))
        .unwrap();
    assert!(
        env_of
            .stdout
            .contains(&format!("POSTGRES_PASSWORD={password}"))
    );
    assert!(!first.stdout.contains(password) && !first.stderr.contains(password));
    assert!(
        env.state()
            .join("rendered/compose/gateway/nginx.conf")
            .is_file()
    );

    let ids = env.containers();
    let again = env.devenv(&["up", "--output", "json"]);
    assert_eq!(again.code, 0, "{again}");
    let doc = json(&again.stdout);
    assert_eq!(doc["changed"], false, "{again}");
    assert!(
        doc["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["action"] == "keep"),
        "{again}"
    );
    assert_eq!(
        env.containers(),
        ids,
        "a rerun must not touch any container"
    );
    assert_eq!(again.stderr, "", "JSON output prints no progress");
    let human = env.devenv(&["up"]);
    assert!(human.stderr.contains("nothing to do"), "{human}");
    assert_eq!(env.containers(), ids);

    let status = env.devenv(&["status", "--output", "json"]);
    assert_eq!(status.code, 0, "{status}");
    assert_eq!(json(&status.stdout)["healthy"], true);

    let logs = env.devenv(&["logs", "gateway", "--tail", "5"]);
    assert_eq!(logs.code, 0, "{logs}");
    assert!(logs.stdout.contains("stand-in serving"), "{logs}");
    let unknown = env.devenv(&["logs", "nope"]);
    assert_eq!(unknown.code, 2, "{unknown}");
}

#[test]
fn editing_one_service_recreates_only_it_and_only_limits_the_scope() {
    let Some(mut env) = env("edit") else { return };
    let only = env.devenv(&["up", "--only", "grafana"]);
    assert_eq!(only.code, 0, "{only}");
    let mut names: Vec<String> = env.containers().into_keys().collect();
    names.sort();
    let expected: Vec<String> = ["grafana", "loki", "prometheus", "tempo"]
        .iter()
        .map(|s| env.container(s))
        .collect();
    assert_eq!(
        names, expected,
        "--only brings up the service and what it needs"
    );

    let up = env.devenv(&["up"]);
    assert_eq!(up.code, 0, "{up}");
    let before = env.containers();
    // Another image (the same stand-in under another tag). A published port is edited in
    // tests/real_programs.rs, where the gateway is the real nginx that reloads its stream
    // servers for it.
    let edited_image = format!("{}-edited", env.image);
    let tag = support::docker::docker(&["tag", &env.image, &edited_image]);
    assert_eq!(tag.code, 0, "{tag}");
    env.image_overrides
        .insert("timescaledb".into(), edited_image);
    env.write();
    let edited = env.devenv(&["up"]);
    assert_eq!(edited.code, 0, "{edited}");
    let after = env.containers();
    for (name, id) in &before {
        if *name == env.container("timescaledb") {
            assert_ne!(&after[name], id, "the edited service is recreated");
        } else {
            assert_eq!(&after[name], id, "{name} must not be touched:\n{edited}");
        }
    }
    assert!(
        edited.stderr.contains("1 of 13 services changed"),
        "{edited}"
    );

    // Switching a service off removes its container (and nothing else).
    env.extra
        .insert("excalidraw".into(), "    enabled: false\n".into());
    env.write();
    let off = env.devenv(&["up"]);
    assert_eq!(off.code, 0, "{off}");
    let now = env.containers();
    assert!(!now.contains_key(&env.container("excalidraw")), "{off}");
    assert_eq!(now.len(), after.len() - 1);
}

#[test]
fn a_killed_or_removed_container_is_restored_by_the_next_up() {
    let Some(env) = env("restore") else { return };
    assert_eq!(env.devenv(&["up"]).code, 0);
    let before = env.containers();
    let killed = env.container("loki");
    let removed = env.container("minio");
    // `logs -f` follows until the container stops, then ends cleanly.
    let follow = env
        .command(&["logs", "loki", "-f", "--tail", "5"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("devenv logs starts");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(docker_cli(&["kill", &killed]).code, 0);
    let started = Instant::now();
    let mut follow = follow;
    while follow.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "logs -f still running a minute after its container was killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let followed = support::Run::of(follow.wait_with_output().unwrap());
    assert_eq!(followed.code, 0, "{followed}");
    assert!(followed.stdout.contains("stand-in serving"), "{followed}");
    assert_eq!(docker_cli(&["rm", "-f", &removed]).code, 0);

    let status = env.devenv(&["status"]);
    assert_eq!(
        status.code, 4,
        "status fails while a service is down:\n{status}"
    );
    assert!(
        status.stderr.contains("loki") && status.stderr.contains("minio"),
        "{status}"
    );

    let up = env.devenv(&["up"]);
    assert_eq!(up.code, 0, "{up}");
    let after = env.containers();
    assert!(env.states().values().all(|s| s == "running"));
    assert_eq!(
        after[&killed], before[&killed],
        "a stopped container is started, not replaced"
    );
    assert_ne!(after[&removed], before[&removed]);
    assert_eq!(env.devenv(&["status"]).code, 0);
}

#[test]
fn data_survives_down_and_up() {
    let Some(env) = env("data") else { return };
    assert_eq!(env.devenv(&["up"]).code, 0);
    let registry = env.container("registry");
    let write = docker_cli(&[
        "exec",
        &registry,
        "sh",
        "-c",
        "echo kept > /var/lib/registry/marker",
    ]);
    assert_eq!(write.code, 0, "{write}");

    let down = env.devenv(&["down"]);
    assert_eq!(down.code, 0, "{down}");
    assert!(env.containers().is_empty());
    env.assert_networks_removed(&down);
    assert!(
        env.labelled("volume")
            .contains(&format!("{}-registry-data", env.name)),
        "down keeps the volumes"
    );
    assert!(down.stderr.contains("kept"), "{down}");

    assert_eq!(env.devenv(&["up"]).code, 0);
    let read = docker_cli(&["exec", &registry, "cat", "/var/lib/registry/marker"]);
    assert_eq!(read.stdout.trim(), "kept", "{read}");
}

#[test]
fn purge_removes_only_what_devenv_made() {
    let Some(env) = env("purge") else { return };
    let by = format!("{}-bystander", env.name);
    let _bystanders = Bystanders(by.clone());
    // Bystanders carry the environment's name but not devenv's label.
    assert_eq!(docker_cli(&["volume", "create", &by]).code, 0);
    assert_eq!(docker_cli(&["network", "create", &by]).code, 0);
    let c = docker_cli(&[
        "create",
        "--name",
        &by,
        "--network",
        &by,
        "-v",
        &format!("{by}:/data"),
        &env.image,
    ]);
    assert_eq!(c.code, 0, "{c}");

    assert_eq!(env.devenv(&["up"]).code, 0);
    assert!(!env.labelled("volume").is_empty());

    let unconfirmed = env.devenv(&["down", "--purge"]);
    assert_eq!(unconfirmed.code, 2, "{unconfirmed}");
    assert!(unconfirmed.stderr.contains("--yes"), "{unconfirmed}");
    assert_eq!(
        env.containers().len(),
        SERVICES.len(),
        "nothing removed without --yes"
    );

    let purge = env.devenv(&["down", "--purge", "--yes"]);
    assert_eq!(purge.code, 0, "{purge}");
    assert!(env.containers().is_empty());
    assert!(env.labelled("volume").is_empty(), "{purge}");
    env.assert_networks_removed(&purge);
    assert!(!env.state().join("secrets.env").exists());
    for (kind, name) in [("container", &by), ("volume", &by), ("network", &by)] {
        let r = docker_cli(&[kind, "inspect", name]);
        assert_eq!(r.code, 0, "the bystander {kind} {name} must survive");
    }
}

/// Removes the test's bystanders however the test ends.
struct Bystanders(String);

impl Drop for Bystanders {
    fn drop(&mut self) {
        docker_cli(&["rm", "-f", &self.0]);
        docker_cli(&["volume", "rm", &self.0]);
        docker_cli(&["network", "rm", &self.0]);
    }
}

#[test]
fn a_taken_port_fails_preflight_naming_its_owner_and_nothing_is_created() {
    let Some(mut env) = env("taken") else { return };
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    env.publish("grafana", "http", port);
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(up.stderr.contains(&format!("127.0.0.1:{port}/tcp")), "{up}");
    assert!(up.stderr.contains("services.grafana.ports.http"), "{up}");
    assert!(
        up.stderr.contains(&format!("pid {}", std::process::id())),
        "the owner (this test) is named:\n{up}"
    );
    assert!(env.containers().is_empty(), "nothing is created");
    assert!(env.labelled("volume").is_empty());
    assert!(env.labelled("network").is_empty());
    drop(holder);
}

#[test]
fn a_subnet_overlapping_another_network_fails_preflight_and_nothing_is_created() {
    let Some(env) = env("subnet") else { return };
    let by = format!("{}-bystander", env.name);
    let _bystanders = Bystanders(by.clone());
    // Another tool's network on the very range devenv.yaml asks for.
    let r = docker_cli(&["network", "create", "--subnet", env.subnet(), &by]);
    assert_eq!(r.code, 0, "{r}");
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(up.stderr.contains("preflight failed"), "{up}");
    assert!(
        up.stderr.contains(&format!("Docker network {by}")),
        "the other network is named:\n{up}"
    );
    assert!(up.stderr.contains("`network.subnet`"), "{up}");
    assert!(env.containers().is_empty(), "nothing is created");
    assert!(env.labelled("volume").is_empty());
    assert!(env.labelled("network").is_empty());
    assert_eq!(docker_cli(&["network", "inspect", &by]).code, 0);
}

/// A port below 1024 that is free on 127.0.0.1 (this process runs as root).
fn free_privileged_port() -> u16 {
    (900..1024)
        .rev()
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below 1024")
}

#[test]
fn a_normal_user_publishes_a_port_below_1024_through_a_rootful_engine() {
    let Some(mut env) = env("lowport") else {
        return;
    };
    if !support::is_root() {
        // Not root: nothing here can become another user, and a normal user's run of the
        // suite exercises the same path in every other test only above 1024.
        support::skip("running devenv as another user needs root");
        return;
    }
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let port = free_privileged_port();
    if port >= start {
        support::skip(&format!(
            "unprivileged users may bind every port from {start} on"
        ));
        return;
    }
    env.publish("registry", "api", port);
    // uid 65534 (nobody) may write the environment's directory but not open the engine's
    // socket, and binds no port below `start`; the rootful engine publishes it regardless.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let proxy = EngineProxy::start();
    let mut cmd = env.command(&["up", "--only", "registry"]);
    cmd.uid(65534).gid(65534).env("DOCKER_HOST", proxy.uri());
    let up = support::run(&mut cmd);
    assert_eq!(up.code, 0, "{up}");
    assert!(
        !up.stderr.contains("privilege"),
        "no privilege problem:\n{up}"
    );
    assert!(http_get(port, "/v2/").contains("200 OK"));
}

#[test]
fn a_dead_docker_host_exits_3_with_what_was_tried() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    for command in [&["up"][..], &["status"], &["down"]] {
        let r = support::run(
            support::devenv(dir.path())
                .args(command)
                .env("DOCKER_HOST", format!("unix://{}", socket.display())),
        );
        assert_eq!(r.code, 3, "{command:?}: {r}");
        assert!(r.stderr.contains("no Docker engine answered"), "{r}");
        assert!(r.stderr.contains(&socket.display().to_string()), "{r}");
        assert!(r.stderr.contains("hint:"), "{r}");
    }
    // A port nobody listens on.
    let port = support::free_port();
    let r = support::run(
        support::devenv(dir.path())
            .arg("up")
            .env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}")),
    );
    assert_eq!(r.code, 3, "{r}");
    assert!(r.stderr.contains(&format!("tcp://127.0.0.1:{port}")), "{r}");
    // `--output json` still prints its one document, with the error, and keeps the exit code.
    let r = support::run(
        support::devenv(dir.path())
            .args(["up", "-o", "json"])
            .env("DOCKER_HOST", format!("unix://{}", socket.display())),
    );
    assert_eq!(r.code, 3, "{r}");
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON document");
    assert_eq!(doc["changed"], false, "{r}");
    assert!(
        doc["error"]
            .as_str()
            .is_some_and(|e| e.contains("no Docker engine answered")),
        "{r}"
    );
}

#[test]
fn a_second_up_waits_for_the_lock_then_fails_clearly() {
    let Some(env) = env("lock") else { return };
    std::fs::create_dir_all(env.state()).unwrap();
    let lock = std::fs::File::create(env.state().join("lock")).unwrap();
    lock.lock().unwrap();
    let up = env.devenv(&["up", "--timeout", "1"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(up.stderr.contains("waiting for another devenv run"), "{up}");
    assert!(up.stderr.contains("still holds"), "{up}");
    assert!(env.containers().is_empty());
    lock.unlock().unwrap();
}

#[test]
fn sigkill_in_the_middle_of_up_and_the_next_up_converges() {
    let Some(mut env) = env("sigkill") else {
        return;
    };
    // pdns-db takes seconds to accept connections, so pdns and pdns-admin, which wait for it,
    // cannot exist yet when the first containers appear: the kill lands mid-up.
    let slow = variant(
        &env.image,
        "devenv-test/slow-start:v1",
        "sleep 4; exec /bin/serve",
    );
    env.image_overrides.insert("pdns-db".into(), slow);
    env.write();
    let log = env.dir.path().join("killed-up.log");
    let mut child = env
        .command(&["up"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("devenv starts");
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    let mut seen = env.containers();
    while seen.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "up created nothing within a minute:\n{}",
            said()
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("up exited ({status}) before creating anything:\n{}", said());
        }
        std::thread::sleep(Duration::from_millis(20));
        seen = env.containers();
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "up finished before it could be killed"
    );
    assert!(
        seen.len() < SERVICES.len() && !seen.contains_key(&env.container("pdns")),
        "up got too far before it could be killed: {seen:?}"
    );
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let partial = env.states();

    let up = env.devenv(&["up"]);
    assert_eq!(up.code, 0, "after a kill with {partial:?}:\n{up}");
    let states = env.states();
    assert_eq!(states.len(), SERVICES.len());
    assert!(states.values().all(|s| s == "running"), "{states:?}");
    let again = env.devenv(&["up", "-o", "json"]);
    assert_eq!(json(&again.stdout)["changed"], false, "{again}");
}

/// Build a variant of the stand-in whose entrypoint is `entrypoint` (a shell command).
fn variant(base: &str, tag: &str, entrypoint: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base}\nENTRYPOINT [\"/bin/sh\", \"-c\", \"{entrypoint}\"]\n"),
    )
    .unwrap();
    let r = support::run(
        std::process::Command::new("docker")
            .args(["build", "-q", "-t", tag])
            .arg(dir.path())
            .env("DOCKER_BUILDKIT", "0"),
    );
    assert_eq!(r.code, 0, "{r}");
    tag.to_string()
}

#[test]
fn a_service_that_never_gets_healthy_is_named_with_its_last_log_lines() {
    let Some(mut env) = env("unhealthy") else {
        return;
    };
    let crashing = variant(
        &env.image,
        "devenv-test/crashing:v1",
        "echo boom-from-excalidraw; exit 7",
    );
    let silent = variant(
        &env.image,
        "devenv-test/silent:v1",
        "echo sleeping-gateway; exec sleep 3600",
    );
    env.image_overrides.insert("excalidraw".into(), crashing);
    env.image_overrides.insert("gateway".into(), silent);
    env.write();
    let up = env.devenv(&["up", "--timeout", "10", "--output", "json"]);
    assert_eq!(up.code, 1, "{up}");
    // The one JSON document comes also on failure: states, and the error.
    let doc = json(&up.stdout);
    assert_eq!(doc["changed"], true, "{up}");
    let error = doc["error"].as_str().expect("an error field");
    assert!(error.contains("2 of 13 services are not up"), "{up}");
    assert!(error.contains("service excalidraw"), "{up}");
    let service = |name: &str| {
        doc["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == name)
            .unwrap_or_else(|| panic!("{name} missing:\n{up}"))
            .clone()
    };
    assert_ne!(service("gateway")["health"], "healthy", "{up}");
    assert_eq!(service("registry")["health"], "healthy", "{up}");
    // The error goes to stderr as well, for people.
    assert!(
        up.stderr
            .contains("service excalidraw keeps exiting (code 7"),
        "{up}"
    );
    assert!(up.stderr.contains("boom-from-excalidraw"), "{up}");
    assert!(
        up.stderr
            .contains("service gateway did not become healthy within 10s"),
        "{up}"
    );
    assert!(up.stderr.contains("sleeping-gateway"), "{up}");
    let status = env.devenv(&["status", "--output", "json"]);
    assert_eq!(status.code, 4, "{status}");
    let doc = json(&status.stdout);
    assert_eq!(doc["healthy"], false, "{status}");
    assert_eq!(doc["services"].as_array().unwrap().len(), SERVICES.len());
}

/// Build an image from `base` with `run` (a shell command) run at build time.
fn image_with(base: &str, tag: &str, run: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base}\nRUN {run}\n"),
    )
    .unwrap();
    let r = support::run(
        std::process::Command::new("docker")
            .args(["build", "-q", "-t", tag])
            .arg(dir.path())
            .env("DOCKER_BUILDKIT", "0"),
    );
    assert_eq!(r.code, 0, "{r}");
    tag.to_string()
}

#[test]
fn a_healthcheck_that_cannot_run_fails_at_once_with_exit_3_and_what_the_runtime_said() {
    let Some(mut env) = env("nocheck") else {
        return;
    };
    // The image runs, but the healthcheck's program (`pg_isready`) is not in it.
    let lacking = image_with(
        &env.image,
        "devenv-test/no-pg-isready:v1",
        "rm /bin/pg_isready",
    );
    env.image_overrides.insert("timescaledb".into(), lacking);
    env.write();
    let up = env.devenv(&["up", "--only", "timescaledb", "--timeout", "30"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(
        up.stderr.contains("healthcheck `pg_isready") && up.stderr.contains("cannot run"),
        "{up}"
    );
    assert!(up.stderr.contains("services.timescaledb.image"), "{up}");
    assert!(
        !up.stderr.contains("did not become healthy within"),
        "not a timeout:\n{up}"
    );
}

#[test]
fn up_only_without_the_gateway_shows_no_gateway_url_and_ports_with_their_protocol() {
    let Some(mut env) = env("onlypdns") else {
        return;
    };
    let dns = support::free_port();
    env.publish("pdns", "dns", dns);
    let up = env.devenv(&["up", "--only", "pdns"]);
    assert_eq!(up.code, 0, "{up}");
    let line = up
        .stdout
        .lines()
        .find(|l| l.starts_with("pdns "))
        .unwrap_or_else(|| panic!("no pdns row:\n{up}"));
    // Its API is not published and the gateway is not up: no URL, and never the DNS port.
    assert!(!line.contains("http://"), "{line}");
    assert!(
        line.contains(&format!("127.0.0.1:{dns}/tcp"))
            && line.contains(&format!("127.0.0.1:{dns}/udp")),
        "{line}"
    );
    assert_eq!(line.matches(&format!(":{dns}/tcp")).count(), 1, "{line}");
}

#[test]
fn lost_secrets_with_existing_data_stop_up_before_anything_changes() {
    let Some(env) = env("secrets") else { return };
    assert_eq!(env.devenv(&["up", "--only", "timescaledb"]).code, 0);
    assert_eq!(env.devenv(&["down"]).code, 0);
    let secrets = env.state().join("secrets.env");
    let kept = std::fs::read_to_string(&secrets).unwrap();
    let volume = format!("{}-timescaledb-data", env.name);
    // Deleted, emptied, cut off in the middle of a value.
    let cut = &kept[..kept.len() - 10];
    for (case, text) in [
        ("deleted", None),
        ("emptied", Some("")),
        ("cut off", Some(cut)),
    ] {
        match text {
            None => std::fs::remove_file(&secrets).unwrap(),
            Some(t) => std::fs::write(&secrets, t).unwrap(),
        }
        let up = env.devenv(&["up", "--only", "timescaledb"]);
        assert_eq!(up.code, 3, "{case}: {up}");
        assert!(
            up.stderr.contains(&secrets.display().to_string()),
            "{case}: {up}"
        );
        assert!(up.stderr.contains(&volume), "{case}: {up}");
        assert!(
            up.stderr.contains("restore") && up.stderr.contains("down --purge"),
            "{case}: {up}"
        );
        assert!(env.containers().is_empty(), "{case}: nothing is created");
        assert_eq!(
            std::fs::read_to_string(&secrets).ok().as_deref(),
            text,
            "{case}: the file is left as it was"
        );
    }
    // Restored, everything comes back with the data's own passwords.
    std::fs::write(&secrets, &kept).unwrap();
    assert_eq!(env.devenv(&["up", "--only", "timescaledb"]).code, 0);
}

#[test]
fn a_failed_preflight_writes_nothing_to_the_state_directory() {
    let Some(mut env) = env("nowrite") else {
        return;
    };
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    env.publish("grafana", "http", holder.local_addr().unwrap().port());
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, 3, "{up}");
    let mut left: Vec<String> = std::fs::read_dir(env.state())
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    left.sort();
    // Only the lock (README: a failed `up` leaves at most the directory and its lock file).
    assert_eq!(left, ["lock"], "{up}");
    let mode = std::fs::metadata(env.state()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn ports_held_by_the_environments_own_paused_container_are_no_conflict() {
    let Some(mut env) = env("paused") else {
        return;
    };
    let port = support::free_port();
    env.publish("registry", "api", port);
    assert_eq!(env.devenv(&["up", "--only", "registry"]).code, 0);
    let registry = env.container("registry");
    // Paused, it still holds its published port, as a container a killed run left half
    // started (created, restarting) does.
    assert_eq!(docker_cli(&["pause", &registry]).code, 0);
    let up = env.devenv(&["up", "--only", "registry"]);
    assert_eq!(up.code, 0, "{up}");
    assert!(!up.stderr.contains("is taken by"), "{up}");
    assert_eq!(env.states()[&registry], "running", "{up}");
    assert!(http_get(port, "/v2/").contains("200 OK"));
}

#[test]
fn another_checkout_with_the_same_name_needs_force_to_act_on_the_environment() {
    let Some(env) = env("owner") else { return };
    assert_eq!(env.devenv(&["up", "--only", "registry"]).code, 0);
    let ids = env.containers();
    // A second checkout: the same devenv.yaml text (so the same `name:`), its own directory,
    // HOME and state directory.
    let other = tempfile::tempdir().unwrap();
    std::fs::copy(
        env.dir.path().join("devenv.yaml"),
        other.path().join("devenv.yaml"),
    )
    .unwrap();
    let mine = env.dir.path().join("devenv.yaml");
    for command in [&["down"][..], &["up", "--only", "registry"]] {
        let r = support::run(support::devenv(other.path()).args(command));
        assert_eq!(r.code, 2, "{command:?}: {r}");
        assert!(
            r.stderr.contains(&mine.display().to_string()),
            "{command:?} names the other devenv.yaml:\n{r}"
        );
        assert!(r.stderr.contains("--force"), "{r}");
        assert_eq!(env.containers(), ids, "{command:?} changed nothing");
    }
    let forced = support::run(support::devenv(other.path()).args(["down", "--force"]));
    assert_eq!(forced.code, 0, "{forced}");
    assert!(env.containers().is_empty(), "{forced}");
    // Its own again: no question.
    assert_eq!(env.devenv(&["up", "--only", "registry"]).code, 0);
    assert_eq!(env.devenv(&["down"]).code, 0);
}

#[test]
fn verbose_shows_each_engine_call_and_decision_of_up_status_and_down() {
    let Some(env) = env("verbose") else { return };
    let registry = env.container("registry");
    let up = env.devenv(&["-v", "up", "--only", "registry"]);
    assert_eq!(up.code, 0, "{up}");
    for line in [
        "plan: Create".to_string(),
        format!("engine: creating container {registry}"),
        format!("engine: starting container {registry}"),
        "preflight: checking".to_string(),
    ] {
        assert!(up.stderr.contains(&line), "up -v lacks `{line}`:\n{up}");
    }
    let status = env.devenv(&["-v", "status"]);
    assert!(
        status
            .stderr
            .contains("engine: listing the containers labelled"),
        "{status}"
    );
    let down = env.devenv(&["-v", "down"]);
    assert_eq!(down.code, 0, "{down}");
    assert!(
        down.stderr.contains(&format!(
            "engine: stopping and removing container {registry}"
        )),
        "{down}"
    );
    // Without -v: none of it.
    let quiet = env.devenv(&["up", "--only", "registry"]);
    assert!(!quiet.stderr.contains("engine:"), "{quiet}");
}

/// A gateway that could not be reloaded is tried again by the next `up`, though nothing changed
/// since: `up` does not report success while the gateway serves the old configuration. (The
/// stand-in gateway has no nginx, so every reload of it fails.)
#[test]
fn a_failed_gateway_reload_is_tried_again_by_the_next_up() {
    let Some(mut env) = env("reload") else { return };
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, 0, "{up}");
    // A port the gateway's stream servers follow.
    env.publish("timescaledb", "postgres", support::free_port());
    let failed = env.devenv(&["up"]);
    assert_ne!(failed.code, 0, "{failed}");
    assert!(failed.stderr.contains("reloading the gateway"), "{failed}");
    let again = env.devenv(&["up"]);
    assert_ne!(
        again.code, 0,
        "the gateway still serves the old ports: {again}"
    );
    assert!(again.stderr.contains("reloading the gateway"), "{again}");
    // A new gateway container loads the files as they are: nothing left to reload.
    let recreate = env.devenv(&["down"]);
    assert_eq!(recreate.code, 0, "{recreate}");
    let fresh = env.devenv(&["up"]);
    assert_eq!(fresh.code, 0, "{fresh}");
    let after = env.devenv(&["up"]);
    assert_eq!(after.code, 0, "{after}");
}
