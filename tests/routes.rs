//! `devenv routes` through the real binary: add, list (-o json), rm; every bad input exits 2
//! (an unreadable routes file 3) and leaves the routes file as it was; the running resolver
//! answers a route's name with the gateway's address (instead of the ingress's) as soon as it is added and forgets it
//! when it is removed (it follows the routes file), and `dns query` in-process sees it too.
//! `routes list` also lists the cluster's Ingresses through its API (here a small API server
//! that answers as Kubernetes does) and probes them through the ingress's address.
//!
//! The environment has a name of its own, so no gateway of another environment on a shared
//! Docker engine is touched: with no gateway running, the route is saved for `devenv up`.

mod support;

use support::dns::{Serve, home_with, short};
use support::{devenv, run, tool};

const CONFIG: &str = "name: names-routes-test\ndomain: routes.test\n";

fn routes_file(home: &std::path::Path) -> std::path::PathBuf {
    home.join("state").join("routes.json")
}

#[test]
fn add_list_rm_and_bad_input_changes_nothing() {
    let home = home_with(CONFIG);
    let h = home.path();
    let r = run(devenv(h).args(["routes", "add", "api", "--to", "127.0.0.1:3000"]));
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stderr
            .contains("api -> 127.0.0.1:3000 (https://api.routes.test/"),
        "{r}"
    );
    assert!(r.stderr.contains("`devenv up` serves the routes"), "{r}");
    let r = run(devenv(h).args([
        "routes",
        "add",
        "web",
        "--to",
        "[::1]:5173",
        "--host",
        "shop.routes.test",
    ]));
    assert_eq!(r.code, 0, "{r}");

    let r = run(devenv(h).args(["routes", "list", "-o", "json"]));
    assert_eq!(r.code, 0, "{r}");
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    // No cluster to read (no kubeconfig): the rest is listed, and the reason given.
    assert_eq!(doc["cluster"]["listed"], false, "{r}");
    assert_eq!(doc["cluster"]["context"], "kind-names-routes-test", "{r}");
    let warning = doc["cluster"]["warning"].as_str().unwrap();
    assert!(
        warning.starts_with("cluster Ingresses not listed: cannot read the kubeconfig"),
        "{r}"
    );
    assert!(r.stderr.contains(&format!("warning: {warning}")), "{r}");
    let rows = doc["names"].as_array().unwrap();
    let api = rows.iter().find(|r| r["name"] == "api").unwrap();
    assert_eq!(api["kind"], "route");
    assert_eq!(api["host"], "api.routes.test");
    assert_eq!(api["https"], "https://api.routes.test/");
    assert_eq!(api["target"], "127.0.0.1:3000");
    assert!(
        rows.iter()
            .any(|r| r["kind"] == "infrastructure" && r["host"] == "grafana.routes.test")
    );
    let web = rows.iter().find(|r| r["name"] == "web").unwrap();
    assert_eq!(
        (web["host"].as_str(), web["target"].as_str()),
        (Some("shop.routes.test"), Some("[::1]:5173"))
    );

    // In-process answer (no resolver runs): the route's name is the gateway's.
    let r = run(devenv(h).args(["dns", "query", "api.routes.test"]));
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("127.0.0.1"), "{r}");

    let file = routes_file(h);
    let before = std::fs::read(&file).unwrap();
    for (args, says) in [
        (
            vec!["add", "x", "--to", "127.0.0.1:1", "--host", "api"],
            "taken by the route `api`",
        ),
        (
            vec!["add", "g", "--to", "127.0.0.1:1", "--host", "grafana"],
            "infrastructure service `grafana`",
        ),
        (
            vec!["add", "x", "--to", "127.0.0.1:1", "--host", "x.example.com"],
            "outside the domain",
        ),
        (
            vec![
                "add",
                "x",
                "--to",
                "127.0.0.1:1",
                "--host",
                "a.b.routes.test",
            ],
            "one label",
        ),
        (
            vec!["add", "Not_A_Label", "--to", "127.0.0.1:1"],
            "route name",
        ),
        (vec!["add", "x", "--to", "localhost"], "not host:port"),
        (vec!["add", "x", "--to", "127.0.0.1:70000"], "not host:port"),
        (vec!["rm", "nope"], "no route named `nope`"),
    ] {
        let r = run(devenv(h).arg("routes").args(&args));
        assert_eq!(r.code, 2, "{args:?}\n{r}");
        assert!(r.stderr.contains(says), "{args:?}: wanted {says:?}\n{r}");
        assert!(r.stderr.contains("hint:"), "{args:?}\n{r}");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            before,
            "{args:?} changed the file"
        );
    }

    let r = run(devenv(h).args(["routes", "rm", "api"]));
    assert_eq!(r.code, 0, "{r}");
    let r = run(devenv(h).args(["routes", "list"]));
    assert!(!r.stdout.contains("api.routes.test"), "{r}");
    assert!(r.stdout.contains("https://shop.routes.test/"), "{r}");

    // A broken file: exit 3 naming it, untouched.
    std::fs::write(&file, "{ not json").unwrap();
    let r = run(devenv(h).args(["routes", "add", "y", "--to", "127.0.0.1:1"]));
    assert_eq!(r.code, 3, "{r}");
    assert!(r.stderr.contains("routes.json"), "{r}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{ not json");
}

#[test]
fn the_running_resolver_follows_the_routes_file() {
    if tool("dig").is_none() {
        return;
    }
    let home = home_with(CONFIG);
    let h = home.path();
    let serve = Serve::start(h, &["--no-forward"]);
    let port = serve.port();
    // Before: an application name (the wildcard, the cluster's ingress).
    assert_eq!(short(&port, &["api.routes.test", "A"]), ["127.0.0.2"]);

    // `routes add` and `rm` return when they are true: the very next query has the new answer.
    for _ in 0..3 {
        let r = run(devenv(h).args(["routes", "add", "api", "--to", "127.0.0.1:3000"]));
        assert_eq!(r.code, 0, "{r}");
        assert!(!r.stderr.contains("did not take up"), "{r}");
        assert_eq!(
            short(&port, &["api.routes.test", "A"]),
            ["127.0.0.1"],
            "{}",
            serve.stderr()
        );
        let r = run(devenv(h).args(["routes", "rm", "api"]));
        assert_eq!(r.code, 0, "{r}");
        assert_eq!(
            short(&port, &["api.routes.test", "A"]),
            ["127.0.0.2"],
            "{}",
            serve.stderr()
        );
    }
}

/// A plain-HTTP server on a free loopback port answering each request with `answer(method,
/// path, host)` — (status, JSON or text body) — one request per connection; it records the
/// requests it saw. Runs until the test ends.
fn serve(
    answer: impl Fn(&str, &str, &str) -> (u16, String) + Send + 'static,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let mut host = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(h) = line.to_ascii_lowercase().strip_prefix("host:") {
                    host = h.trim().to_string();
                }
            }
            let mut parts = first.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            log.lock().unwrap().push(format!("{method} {path} {host}"));
            // The answer depends on the path; the log keeps the query for the test to see.
            let bare = path.split('?').next().unwrap_or(path);
            let (status, body) = answer(method, bare, &host);
            let _ = write!(
                &stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn list_shows_the_clusters_ingresses_with_named_ports_resolved_and_check_probes_them() {
    // The cluster's API: the version, one Ingress with a named port, its Service.
    let (api, requests) = serve(|method, path, _| {
        match (method, path) {
        ("GET", "/version") => (200, r#"{"major":"1","minor":"34","gitVersion":"v1.34.0"}"#.into()),
        ("GET", "/apis/networking.k8s.io/v1/ingresses") => (
            200,
            serde_json::json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "IngressList", "metadata": {},
                "items": [{
                    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {"name": "app", "namespace": "shop"},
                    "spec": {
                        "tls": [{"hosts": ["app.routes.test"]}],
                        "rules": [{"host": "app.routes.test", "http": {"paths": [
                            {"path": "/", "pathType": "Prefix",
                             "backend": {"service": {"name": "web", "port": {"name": "http"}}}}
                        ]}}]
                    }
                }]
            })
            .to_string(),
        ),
        ("GET", "/api/v1/namespaces/shop/services/web") => (
            200,
            serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
            })
            .to_string(),
        ),
        _ => (404, r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#.into()),
    }
    });
    // The cluster's ingress on the host (routing mode `ports`): answers the app's host.
    let (ingress, probes) = serve(|_, _, host| {
        if host.starts_with("app.routes.test") {
            (200, "app".into())
        } else {
            (404, "no such host".into())
        }
    });
    // The gateway's port has nothing listening: its names fail the check.
    let gateway = support::free_port();
    let home = home_with(&format!(
        "name: names-routes-cluster\ndomain: routes.test\nrouting:\n  mode: ports\n\
         cluster:\n  provider: existing\n  context: dev\n  http_port: {ingress}\n\
         services:\n  gateway:\n    ports:\n      http: {gateway}\n"
    ));
    let h = home.path();
    let kubeconfig = h.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: http://127.0.0.1:{api}\n  name: dev\n\
             contexts:\n- context:\n    cluster: dev\n    user: dev\n  name: dev\ncurrent-context: dev\n\
             users:\n- name: dev\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    let kc = kubeconfig.to_str().unwrap();

    let r = run(devenv(h).args(["--kubeconfig", kc, "routes", "list"]));
    assert_eq!(r.code, 0, "{r}");
    assert!(!r.stderr.contains("warning"), "{r}");
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("ingress"))
        .unwrap_or_else(|| panic!("no ingress row\n{r}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words,
        [
            "ingress",
            "shop/app",
            &format!("https://app.routes.test:{}/", 8443),
            "web:http=80",
            "->",
            "8080",
            "[tls]"
        ],
        "{r}"
    );

    let r = run(devenv(h).args([
        "--kubeconfig",
        kc,
        "routes",
        "list",
        "--check",
        "-o",
        "json",
    ]));
    assert_eq!(r.code, 4, "the gateway's names do not answer\n{r}");
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["cluster"]["listed"], true, "{r}");
    assert_eq!(doc["cluster"]["context"], "dev", "{r}");
    let names = doc["names"].as_array().unwrap();
    let app = names.iter().find(|n| n["kind"] == "ingress").unwrap();
    assert_eq!(app["host"], "app.routes.test");
    assert_eq!(app["http"], format!("http://app.routes.test:{ingress}/"));
    assert_eq!(app["ingress"]["backend"]["port"], 80);
    assert_eq!(app["ingress"]["backend"]["port_name"], "http");
    assert_eq!(app["ingress"]["backend"]["target_port"], "8080");
    assert_eq!(app["ingress"]["tls"], true);
    assert_eq!(app["check"]["status"], 200, "{r}");
    assert!(
        names
            .iter()
            .filter(|n| n["kind"] == "infrastructure")
            .all(|n| n["check"]["status"].is_null()),
        "{r}"
    );
    assert!(!r.stderr.contains("app.routes.test"), "{r}");
    assert!(r.stderr.contains("grafana.routes.test"), "{r}");
    assert!(
        probes
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.starts_with("GET / app.routes.test")),
        "{:?}",
        probes.lock().unwrap()
    );
    // The API was asked the version, the Ingresses, the HTTPRoutes (none: this server has no
    // Gateway API, a 404 that lists nothing) and the one Service: nothing else.
    let mut asked = requests.lock().unwrap().clone();
    asked.sort();
    asked.dedup();
    assert_eq!(
        asked
            .iter()
            .map(|a| a.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
        [
            "GET /api/v1/namespaces/shop/services/web",
            // kube-rs's list with no parameters: an empty query.
            "GET /apis/gateway.networking.k8s.io/v1/httproutes?",
            "GET /apis/networking.k8s.io/v1/ingresses?",
            "GET /version"
        ]
    );

    // The API server gone: the rest is still listed, with the warning; --check fails.
    let gone = support::free_port();
    let text = std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .replace(&format!("127.0.0.1:{api}"), &format!("127.0.0.1:{gone}"));
    std::fs::write(&kubeconfig, text).unwrap();
    let r = run(devenv(h).args(["--kubeconfig", kc, "routes", "list"]));
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("grafana.routes.test"), "{r}");
    assert!(!r.stdout.contains("ingress"), "{r}");
    assert!(
        r.stderr.contains(
            "warning: cluster Ingresses not listed: cannot reach the Kubernetes API server"
        ),
        "{r}"
    );
}

/// A route to this host's loopback: `routes add` says whether the gateway container can reach
/// the process — a warning for a port that listens on 127.0.0.1 only (the container comes from
/// Docker's host address), a note when nothing listens yet, nothing when it listens on 0.0.0.0.
#[test]
fn add_tells_whether_the_gateway_can_reach_the_local_process() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let home = home_with(CONFIG);
    let h = home.path();
    let loopback = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let lo = loopback.local_addr().unwrap().port();
    let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let all = any.local_addr().unwrap().port();
    let free = support::free_port();

    let r = run(devenv(h).args(["routes", "add", "lo", "--to", &format!("127.0.0.1:{lo}")]));
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stderr.contains(&format!(
            "warning: port {lo} listens on loopback only, out of the gateway container's reach"
        )),
        "{r}"
    );
    let r = run(devenv(h).args(["routes", "add", "all", "--to", &format!("localhost:{all}")]));
    assert_eq!(r.code, 0, "{r}");
    assert!(
        !r.stderr.contains("warning:") && !r.stderr.contains("note:"),
        "{r}"
    );
    let r = run(devenv(h).args([
        "routes",
        "add",
        "none",
        "--to",
        &format!("127.0.0.1:{free}"),
    ]));
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stderr
            .contains(&format!("note: nothing listens on port {free} yet")),
        "{r}"
    );
    // A target on another host is not this host's to judge.
    let r = run(devenv(h).args(["routes", "add", "box", "--to", &format!("10.9.8.7:{lo}")]));
    assert_eq!(r.code, 0, "{r}");
    assert!(!r.stderr.contains("loopback only"), "{r}");
}
