//! `devenv routes` through the real binary: add, list (-o json), rm; every bad input exits 2
//! (an unreadable routes file 3) and leaves the routes file as it was; the running resolver
//! answers a route's name with the gateway's address (instead of the ingress's) as soon as it is added and forgets it
//! when it is removed (it follows the routes file), and `dns query` in-process sees it too.
//!
//! The environment has a name of its own, so no gateway of another environment on a shared
//! Docker engine is touched: with no gateway running, the route is saved for `devenv up`.

mod support;

use std::time::{Duration, Instant};

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
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = rows.as_array().unwrap();
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

    let r = run(devenv(h).args(["routes", "add", "api", "--to", "127.0.0.1:3000"]));
    assert_eq!(r.code, 0, "{r}");
    let until = |want: &[&str]| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = short(&port, &["api.routes.test", "A"]);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still {got:?}, wanted {want:?}\n{}",
                serve.stderr()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    until(&["127.0.0.1"]);
    let r = run(devenv(h).args(["routes", "rm", "api"]));
    assert_eq!(r.code, 0, "{r}");
    until(&["127.0.0.2"]);
}
