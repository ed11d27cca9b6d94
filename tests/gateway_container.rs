//! The gateway's checked reload in the real gateway container (nginx from Debian's package,
//! `devenv-real/gateway`, tests/support/realimages), through the real binary: `routes add`
//! runs `nginx -t` on the candidate inside the container, swaps, reloads and reads the new
//! generation back; a route nginx rejects is named, exits 2 and leaves the old routes
//! serving; and an `up` that renews the certificate under the running gateway reloads it, so
//! that a TLS client sees the new certificate from the same container.
//!
//! The environment runs the gateway alone (every other service disabled). Skips visibly
//! without Docker, curl, openssl or the images; fails instead under DEVENV_REQUIRE_DOCKER=1.

mod support;

use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;

use support::docker::{self, Env, SERVICES};
use support::process::{Guard, wait_for};
use support::{free_port, realimages, run, tool};

/// The domain devenv uses when devenv.yaml names none.
const DOMAIN: &str = "macula.local";

/// An environment running only the real gateway, its HTTP and HTTPS ports published.
fn gateway_env(test: &str) -> Option<(Env, u16, u16)> {
    gateway_env_with(test, None)
}

/// The same, with `dns` as the lines under `dns:` (the background resolver on, for example).
fn gateway_env_with(test: &str, dns: Option<String>) -> Option<(Env, u16, u16)> {
    if !docker::engine() || tool("curl").is_none() || tool("openssl").is_none() {
        return None;
    }
    let images = realimages::images()?;
    let image = images.get("gateway").expect("a gateway image").clone();
    let mut env = Env::new(test, &image);
    if let Some(dns) = dns {
        env.dns = dns;
    }
    for (service, _) in SERVICES {
        let enabled = *service == "gateway";
        env.extra
            .insert(service.to_string(), format!("    enabled: {enabled}\n"));
    }
    let (http, https) = (free_port(), free_port());
    env.publish("gateway", "http", http);
    env.publish("gateway", "https", https);
    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 0, "{up}");
    Some((env, http, https))
}

/// `GET /` for `host.<domain>` through the gateway's published HTTP port: status and body.
fn get(port: u16, label: &str) -> (u16, String) {
    let r = run(Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Host: {label}.{DOMAIN}"))
        .arg(format!("http://127.0.0.1:{port}/")));
    assert_eq!(r.code, 0, "{r}");
    let (body, code) = r.stdout.rsplit_once('\n').expect("a status line");
    (code.parse().expect("a status"), body.to_string())
}

/// A dev server on this host answering `hello from the dev server`, and its port, listening on
/// every address. It binds a port of the kernel's choosing and reports it, so that no other
/// test's process can take the port between choosing and binding.
fn dev_server() -> (Guard, u16) {
    dev_server_on("0.0.0.0")
}

/// The same dev server listening on `address` only.
fn dev_server_on(address: &str) -> (Guard, u16) {
    let code = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from the dev server"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
server = http.server.ThreadingHTTPServer((sys.argv[1], 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;
    let mut g = Guard::spawn(
        "dev server",
        Command::new("python3").arg("-c").arg(code).arg(address),
    );
    let port = g
        .first_line()
        .parse()
        .expect("the dev server prints its port");
    wait_for("dev server", &mut g, || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
    });
    (g, port)
}

#[test]
fn routes_reload_the_real_gateway_container_and_a_rejected_route_leaves_the_old_ones_serving() {
    let Some((env, http, _)) = gateway_env("gwreload") else {
        return;
    };
    let (_server, backend) = dev_server();
    let gateway = env.container("gateway");
    let id = env.containers()[&gateway].clone();

    let r = env.devenv(&[
        "routes",
        "add",
        "api",
        "--to",
        &format!("127.0.0.1:{backend}"),
    ]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stderr.contains("gateway reloaded (routes generation "),
        "{r}"
    );
    assert_eq!(get(http, "api"), (200, "hello from the dev server".into()));

    // The nginx in the container read the file devenv swapped in.
    let live = env.state().join("gateway").join("routes.conf");
    let before = std::fs::read_to_string(&live).unwrap();
    let routes_file = env.state().join("routes.json");
    let routes_before = std::fs::read_to_string(&routes_file).unwrap();
    let inside = docker::docker(&["exec", &gateway, "cat", "/etc/nginx/devenv/routes.conf"]);
    assert_eq!(inside.stdout, before, "{inside}");

    // A route devenv accepts and nginx -t rejects in the container: its target does not
    // resolve there. Named, exit 2, nothing changed, the old routes still served.
    let r = env.devenv(&["routes", "add", "gone", "--to", "nowhere.invalid:80"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr
            .contains("the gateway's nginx rejects route `gone`"),
        "{r}"
    );
    assert!(r.stderr.contains("nowhere.invalid"), "{r}");
    assert_eq!(std::fs::read_to_string(&live).unwrap(), before);
    assert_eq!(
        std::fs::read_to_string(&routes_file).unwrap(),
        routes_before
    );
    assert!(
        !env.state()
            .join("gateway")
            .join("routes.candidate.conf")
            .exists()
    );
    assert_eq!(get(http, "api"), (200, "hello from the dev server".into()));

    // Removing the route: reloaded, gone (the gateway's 404 for unknown hosts).
    let r = env.devenv(&["routes", "rm", "api"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("gateway reloaded"), "{r}");
    assert_eq!(get(http, "api").0, 404);
    // All of it in the same container: reloads, not restarts.
    assert_eq!(env.containers()[&gateway], id);
}

#[test]
fn a_dev_server_on_loopback_only_answers_through_the_relay_of_the_background_resolver() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let dns = format!("  port: {}\n", free_port());
    let Some((env, http, _)) = gateway_env_with("gwrelay", Some(dns)) else {
        return;
    };
    let (_server, backend) = dev_server_on("127.0.0.1");
    let gateway = env.container("gateway");
    // Without the relay the container cannot reach it: Docker's address for the host is not
    // loopback, and the dev server listens on loopback only.
    let direct = docker::docker(&[
        "exec",
        &gateway,
        "wget",
        "-q",
        "-T",
        "5",
        "-O",
        "-",
        &format!("http://host.docker.internal:{backend}/"),
    ]);
    assert_ne!(
        direct.code, 0,
        "the container reached a loopback-only port: {direct}"
    );

    let r = env.devenv(&[
        "routes",
        "add",
        "api",
        "--to",
        &format!("127.0.0.1:{backend}"),
    ]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        !r.stderr.contains("loopback only") && !r.stderr.contains("warning"),
        "{r}"
    );
    // When `add` returns, the gateway, the resolver and the relay all serve it.
    assert_eq!(get(http, "api"), (200, "hello from the dev server".into()));
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.state().join("routes.json")).unwrap())
            .unwrap();
    let relay = &table["routes"][0]["relay"];
    let address: std::net::IpAddr = relay["address"].as_str().unwrap().parse().unwrap();
    let port = relay["port"].as_u64().unwrap() as u16;
    // The relay listens on the bridge address only, not on loopback or every address.
    assert!(
        !address.is_loopback() && !address.is_unspecified(),
        "{relay}"
    );
    assert!(TcpStream::connect((address, port)).is_ok());
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());

    // A WebSocket to a loopback-only server, held open for several messages: the relay is a
    // byte stream both ways, under the gateway's upgrade.
    if support::python_websockets() {
        let mut echo = Guard::spawn(
            "websocket echo",
            Command::new("python3").arg("-c").arg(
                r#"
from websockets.sync.server import serve
def echo(c):
    for m in c:
        c.send(m)
with serve(echo, "127.0.0.1", 0) as s:
    print(s.socket.getsockname()[1], flush=True)
    s.serve_forever()
"#,
            ),
        );
        let ws: u16 = echo.first_line().parse().expect("the echo prints its port");
        let r = env.devenv(&["routes", "add", "live", "--to", &format!("127.0.0.1:{ws}")]);
        assert_eq!(r.code, 0, "{r}");
        let client = format!(
            r#"
import socket
from websockets.sync.client import connect
sock = socket.create_connection(("127.0.0.1", {http}))
with connect("ws://live.{DOMAIN}/", sock=sock, open_timeout=30) as c:
    for i in range(5):
        c.send("ping %d" % i)
        print(c.recv(timeout=30))
"#
        );
        let r = run(Command::new("python3").arg("-c").arg(client));
        assert_eq!(r.code, 0, "{r}");
        let expected: Vec<String> = (0..5).map(|i| format!("ping {i}")).collect();
        assert_eq!(r.stdout.lines().collect::<Vec<_>>(), expected, "{r}");
    }

    // Removing the route closes its relay, as the resolver reads the file (`rm` waits for
    // that with the name; the listener closes as its task is cancelled, a moment later).
    let r = env.devenv(&["routes", "rm", "api"]);
    assert_eq!(r.code, 0, "{r}");
    wait_for_closed((address, port));
}

/// Wait up to 5 s for nothing to accept connections at `at`.
fn wait_for_closed(at: (std::net::IpAddr, u16)) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while TcpStream::connect(at).is_ok() {
        assert!(std::time::Instant::now() < deadline, "{at:?} still accepts");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The serial of the certificate the gateway presents for `name` on `port`.
fn served_serial(port: u16, name: &str, ca: &std::path::Path) -> String {
    let mut s_client = Command::new("sh");
    s_client.arg("-c").arg(format!(
        "openssl s_client -connect 127.0.0.1:{port} -servername {name} -verify_hostname {name} \
         -verify_return_error -CAfile '{}' </dev/null 2>/dev/null | openssl x509 -noout -serial",
        ca.display()
    ));
    let r = run(&mut s_client);
    assert_eq!(r.code, 0, "{r}");
    r.stdout.trim().to_string()
}

fn file_serial(path: &std::path::Path) -> String {
    let r = run(Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(path));
    assert_eq!(r.code, 0, "{r}");
    r.stdout.trim().to_string()
}

#[test]
fn an_up_that_renews_the_certificate_reloads_the_running_gateway() {
    let Some((env, _, https)) = gateway_env("gwrenew") else {
        return;
    };
    let gateway = env.container("gateway");
    let id = env.containers()[&gateway].clone();
    let tls = env.state().join("tls");
    let ca = tls.join("ca.crt");
    let name = format!("app.{DOMAIN}");
    let first = served_serial(https, &name, &ca);
    assert_eq!(first, file_serial(&tls.join("tls.crt")));

    // The certificate as if issued 340 days ago: 25 days left, inside the renewal window.
    std::fs::remove_file(tls.join("tls.crt")).unwrap();
    std::fs::remove_file(tls.join("tls.key")).unwrap();
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::days(340);
    let old =
        devenv::tls::ensure_at(&env.state(), &devenv::config::Config::default(), long_ago).unwrap();
    assert!(old.issued);
    // The running gateway still serves the first one: it reads certificates on reload only.
    assert_eq!(served_serial(https, &name, &ca), first);

    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 0, "{up}");
    assert!(up.stderr.contains("reloaded"), "{up}");
    let renewed = file_serial(&tls.join("tls.crt"));
    assert_ne!(renewed, first);
    assert_ne!(renewed, file_serial_of_pem(&old.cert_pem));
    // The same container serves the renewed certificate, verified against the CA.
    assert_eq!(served_serial(https, &name, &ca), renewed);
    assert_eq!(env.containers()[&gateway], id, "reloaded, not re-created");

    // A second `up` with nothing renewed reloads nothing.
    let again = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(again.code, 0, "{again}");
    assert!(!again.stderr.contains("reloaded"), "{again}");

    // `devenv trust install` renewing it (into a throwaway Debian root's store) reloads the
    // running gateway too, without waiting for the next `up`.
    for t in ["update-ca-certificates", "run-parts", "openssl"] {
        if support::tool(t).is_none() {
            return;
        }
    }
    std::fs::remove_file(tls.join("tls.crt")).unwrap();
    std::fs::remove_file(tls.join("tls.key")).unwrap();
    devenv::tls::ensure_at(&env.state(), &devenv::config::Config::default(), long_ago).unwrap();
    assert_eq!(served_serial(https, &name, &ca), renewed);
    let root = env.dir.path().join("store-root");
    support::debian_root(&root);
    let trust = env.devenv(&["trust", "install", "--root", root.to_str().unwrap()]);
    assert_eq!(trust.code, 0, "{trust}");
    assert!(trust.stderr.contains("reloaded"), "{trust}");
    let by_trust = file_serial(&tls.join("tls.crt"));
    assert_ne!(by_trust, renewed);
    assert_eq!(served_serial(https, &name, &ca), by_trust);
    assert_eq!(env.containers()[&gateway], id, "reloaded, not re-created");
}

fn file_serial_of_pem(pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cert.pem");
    std::fs::write(&path, pem).unwrap();
    file_serial(&path)
}
