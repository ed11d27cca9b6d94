//! Running the resolver: `dns query` and `dns status` finding it through its run file, binding
//! failures that say what to do, the loopback-only default, and the library's server API
//! in-process.

mod support;

use std::net::UdpSocket;
use std::process::Command;

use support::dns::{
    CONFIG, Serve, devenv_as_nobody, home_with, run_or_hang, unprivileged_port_start,
};
use support::{devenv, run, skip};

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
        r.stderr
            .contains("`dns.port` in devenv.yaml, default 20053")
            && r.stderr.contains("setcap cap_net_bind_service=+ep"),
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

#[test]
fn dns_alone_prints_help_instead_of_serving() {
    let home = home_with("");
    let r = run_or_hang(devenv(home.path()).arg("dns"));
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("Usage: devenv dns"), "{r}");
    for sub in ["serve", "query", "install", "uninstall", "status"] {
        assert!(r.stderr.contains(sub), "{sub} missing: {r}");
    }
    assert!(
        !home.path().join("state/dns.json").exists(),
        "nothing served"
    );
}

#[test]
fn a_second_serve_names_the_running_one_and_leaves_it_alone() {
    let home = home_with(CONFIG);
    let first = Serve::start(home.path(), &["--no-forward"]);
    let run_file = std::fs::read_to_string(home.path().join("state/dns.json")).unwrap();
    let r = run_or_hang(devenv(home.path()).args(["dns", "serve", "--port", "0", "--no-forward"]));
    assert_eq!(r.code, 3, "{r}");
    assert!(
        r.stderr.contains("already running")
            && r.stderr.contains(&format!("pid {}", first.pid()))
            && r.stderr.contains(&first.addr.to_string()),
        "{r}"
    );
    assert_eq!(
        std::fs::read_to_string(home.path().join("state/dns.json")).unwrap(),
        run_file,
        "the running resolver's run file is untouched"
    );
    let r = run(devenv(home.path()).args(["dns", "status", "-o", "json"]));
    assert_eq!(r.code, 0, "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["running"], true);
    assert_eq!(v["udp"], first.addr.to_string());
    // Once it stops, another may start.
    assert_eq!(first.stop(), 0);
    let second = Serve::start(home.path(), &["--no-forward"]);
    assert_ne!(second.pid(), 0);
}
