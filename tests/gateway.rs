//! The host gateway on a real nginx (Debian's, on the host): the rendered nginx.conf serving
//! HTTPS with devenv's wildcard certificate (verified against devenv's CA by curl and openssl,
//! HTTP/2 negotiated), routes to a local HTTP server and a real WebSocket echo (Python
//! `websockets`) through it, and route changes through `gateway::apply` — `nginx -t` on the
//! candidate, swap, reload, verify — including a candidate nginx rejects, which names the
//! route and leaves the previous routes serving.
//!
//! The same config and pipeline run in the gateway container; only the [`Nginx`] seam differs
//! (here: listen ports and the live directory on the host). A missing tool skips locally and
//! fails under DEVENV_REQUIRE_DOCKER=1.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use devenv::config::Config;
use devenv::gateway::{self, Applied, Nginx};
use devenv::render::nginx::{Layout, ROUTES_FILE, conf};
use devenv::routes::Routes;
use support::process::{Guard, wait_for};
use support::{free_port, run, tool};

/// A real nginx on the host running the gateway's config.
struct HostNginx {
    nginx: PathBuf,
    prefix: PathBuf,
    main: PathBuf,
    live: PathBuf,
    http: u16,
    https: u16,
}

impl HostNginx {
    /// nginx with this prefix and pid file, and `extra` global directives (one `-g` only:
    /// nginx keeps the last).
    fn base(&self, extra: &str) -> Command {
        let mut c = Command::new(&self.nginx);
        c.arg("-e")
            .arg("stderr")
            .arg("-p")
            .arg(&self.prefix)
            .arg("-g")
            .arg(format!(
                "pid {}; {extra}",
                self.prefix.join("nginx.pid").display()
            ));
        c
    }
}

impl Nginx for HostNginx {
    fn live_dir(&self) -> String {
        self.live.display().to_string()
    }

    fn listen(&self) -> (String, String) {
        (
            format!("127.0.0.1:{}", self.http),
            format!("127.0.0.1:{}", self.https),
        )
    }

    fn in_container(&self) -> bool {
        false
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<(bool, String)> {
        let mut c = self.base("");
        // `-s reload` finds the master by the pid of the config it runs.
        if !args.contains(&"-c") {
            c.arg("-c").arg(&self.main);
        }
        let out = c.args(args).output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    }

    async fn generation(&self) -> Option<String> {
        let (code, _, body) = http(self.http, gateway::conf::GENERATION_HOST, "/").ok()?;
        (code == 200).then(|| body.trim().to_string())
    }
}

/// One HTTP/1.1 GET; status, head, body.
fn http(port: u16, host: &str, path: &str) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
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

/// The gateway's config on a host nginx, its live directory prepared by devenv.
struct Gateway {
    _home: tempfile::TempDir,
    state: PathBuf,
    config: Config,
    host: HostNginx,
    server: Guard,
}

fn gateway() -> Option<Gateway> {
    gateway_with(|_, _| {})
}

/// [`gateway`] with `edit` applied to the configuration, which gets the ports this nginx
/// listens on (HTTP, HTTPS).
fn gateway_with(edit: impl FnOnce(&mut Config, (u16, u16))) -> Option<Gateway> {
    let nginx = tool("nginx")?;
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("state");
    let (http_port, https_port) = (free_port(), free_port());
    let mut config = Config::default();
    edit(&mut config, (http_port, https_port));
    gateway::prepare(&config, &state).unwrap();
    let prefix = home.path().join("nginx");
    std::fs::create_dir_all(&prefix).unwrap();
    let host = HostNginx {
        nginx,
        main: prefix.join("nginx.conf"),
        live: gateway::dir(&state),
        prefix,
        http: http_port,
        https: https_port,
    };
    let (h, s) = host.listen();
    let layout = Layout::at(&h, &s, &host.live_dir(), ROUTES_FILE);
    std::fs::write(&host.main, conf(&config, &layout).unwrap()).unwrap();
    // The routes file as prepared is the container's; this nginx gets its own by apply.
    std::fs::remove_file(host.live.join(ROUTES_FILE)).unwrap();
    let mut server = Guard::spawn("nginx", host.base("daemon off;").arg("-c").arg(&host.main));
    let port = host.http;
    wait_for("nginx", &mut server, || http(port, "x", "/health").is_ok());
    Some(Gateway {
        _home: home,
        state,
        config,
        host,
        server,
    })
}

/// A runtime for `gateway::apply`.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ca(state: &Path) -> PathBuf {
    state.join(devenv::tls::DIR).join(devenv::tls::CA_CERT)
}

fn curl(args: &[&str]) -> support::Run {
    run(Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args))
}

#[test]
fn https_with_the_wildcard_certificate_verified_against_the_ca_over_http2() {
    let Some(g) = gateway() else { return };
    if tool("curl").is_none() || tool("openssl").is_none() {
        return;
    }
    let ca = ca(&g.state);
    let resolve = format!("grafana.macula.local:{}:127.0.0.1", g.host.https);
    let url = format!("https://grafana.macula.local:{}/health", g.host.https);
    let r = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        "--http2",
        "-w",
        "\n%{http_code} %{http_version} %{ssl_verify_result}",
        &url,
    ]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.stdout, "ok\n\n200 2 0", "{r}");

    // Without the CA, the same request fails verification: the check above is real.
    let r = curl(&["--resolve", &resolve, &url]);
    assert_eq!(
        r.code, 60,
        "curl trusted devenv's certificate without its CA\n{r}"
    );

    // openssl: the chain verifies against the CA for a name under the domain, by SNI.
    let mut s_client = Command::new("openssl");
    s_client
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", g.host.https))
        .args(["-servername", "anything.macula.local", "-verify_hostname"])
        .arg("anything.macula.local")
        .args(["-verify_return_error", "-alpn", "h2", "-CAfile"])
        .arg(&ca)
        .stdin(std::process::Stdio::null());
    let r = run(&mut s_client);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("Verify return code: 0 (ok)"), "{r}");
    assert!(r.stdout.contains("ALPN protocol: h2"), "{r}");
    assert!(
        r.stdout.contains("CN = *.macula.local") || r.stdout.contains("*.macula.local"),
        "{r}"
    );

    // Plain HTTP stays on the other port.
    let (code, _, body) = http(g.host.http, "grafana.macula.local", "/health").unwrap();
    assert_eq!((code, body.as_str()), (200, "ok\n"));
}

/// A local HTTP server answering every path with `hello from the dev server`.
fn http_server(port: u16) -> Guard {
    let code = format!(
        r#"
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from the dev server, host " + self.headers.get("Host", "") + ", proto " + self.headers.get("X-Forwarded-Proto", "")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", {port}), H).serve_forever()
"#
    );
    let mut g = Guard::spawn("http server", Command::new("python3").arg("-c").arg(code));
    wait_for("http server", &mut g, || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
    });
    g
}

#[test]
fn routes_reach_a_local_server_and_a_websocket_echo_through_http_and_https() {
    let Some(mut g) = gateway() else { return };
    if tool("curl").is_none() || tool("python3").is_none() || !support::python_websockets() {
        return;
    }
    let rt = runtime();
    let web = free_port();
    let ws = free_port();
    let _web = http_server(web);
    let mut echo = Guard::spawn(
        "websocket echo",
        Command::new("python3").arg("-c").arg(format!(
            r#"
from websockets.sync.server import serve
def echo(c):
    for m in c:
        c.send(m)
with serve(echo, "127.0.0.1", {ws}) as s:
    s.serve_forever()
"#
        )),
    );
    wait_for("websocket echo", &mut echo, || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, ws)).is_ok()
    });

    let mut routes = Routes::default();
    routes
        .add(&g.config, "api", &format!("127.0.0.1:{web}"), None)
        .unwrap();
    routes
        .add(
            &g.config,
            "live",
            &format!("127.0.0.1:{ws}"),
            Some("socket.macula.local"),
        )
        .unwrap();
    let applied = rt
        .block_on(gateway::apply(&g.config, &g.state, &routes.routes, &g.host))
        .unwrap();
    assert!(matches!(applied, Applied::Reloaded { .. }), "{applied:?}");
    // The same routes again: nothing to do.
    let again = rt
        .block_on(gateway::apply(&g.config, &g.state, &routes.routes, &g.host))
        .unwrap();
    assert!(matches!(again, Applied::Unchanged { .. }), "{again:?}");
    g.server.assert_running();

    let (code, _, body) = http(g.host.http, "api.macula.local", "/").unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        body,
        "hello from the dev server, host api.macula.local, proto http"
    );
    let ca = ca(&g.state);
    let r = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &format!("api.macula.local:{}:127.0.0.1", g.host.https),
        "-w",
        " %{http_version}",
        &format!("https://api.macula.local:{}/", g.host.https),
    ]);
    assert_eq!(r.code, 0, "{r}");
    // The Host as the client sent it (port included), the scheme it used.
    assert_eq!(
        r.stdout,
        format!(
            "hello from the dev server, host api.macula.local:{}, proto https 2",
            g.host.https
        ),
        "{r}"
    );

    // A WebSocket through the gateway, over TLS, held open for several messages.
    let client = format!(
        r#"
import socket, ssl
from websockets.sync.client import connect
ctx = ssl.create_default_context(cafile={ca:?})
sock = socket.create_connection(("127.0.0.1", {port}))
with connect("wss://socket.macula.local:{port}/", sock=sock, ssl=ctx, server_hostname="socket.macula.local", open_timeout=30) as c:
    for i in range(5):
        c.send("ping %d" % i)
        print(c.recv(timeout=30))
"#,
        ca = ca.display().to_string(),
        port = g.host.https
    );
    let r = run(Command::new("python3").arg("-c").arg(client));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.stdout, "ping 0\nping 1\nping 2\nping 3\nping 4\n", "{r}");

    // A route nginx rejects (its target does not resolve): named, nothing changed, the
    // previous routes still serve.
    let live = gateway::dir(&g.state).join(ROUTES_FILE);
    let before = std::fs::read_to_string(&live).unwrap();
    let mut broken = routes.clone();
    broken
        .add(&g.config, "gone", "nowhere.invalid:80", None)
        .unwrap();
    let e = rt
        .block_on(gateway::apply(&g.config, &g.state, &broken.routes, &g.host))
        .unwrap_err();
    let failure = devenv::error::failure(&e).expect("a typed failure");
    assert_eq!(failure.kind, devenv::error::FailureKind::BadInput, "{e:#}");
    assert!(failure.message.contains("route `gone`"), "{e:#}");
    assert!(failure.message.contains("nowhere.invalid"), "{e:#}");
    assert_eq!(std::fs::read_to_string(&live).unwrap(), before);
    assert!(
        !gateway::dir(&g.state)
            .join(gateway::CANDIDATE_FILE)
            .exists()
    );
    let (code, _, body) = http(g.host.http, "api.macula.local", "/").unwrap();
    assert_eq!((code, body.contains("dev server")), (200, true));

    // Removing a route: it is gone after the reload, the other stays.
    routes.remove("api").unwrap();
    rt.block_on(gateway::apply(&g.config, &g.state, &routes.routes, &g.host))
        .unwrap();
    let (_, _, body) = http(g.host.http, "api.macula.local", "/").unwrap();
    assert!(body.contains("404"), "{body}");
    g.server.assert_running();
}

#[test]
fn with_redirect_http_routes_and_infrastructure_names_send_plain_http_to_https() {
    // The gateway's HTTPS published where this nginx listens, as `up` publishes it.
    let Some(g) = gateway_with(|config, (_, https)| {
        config.gateway.redirect_http = true;
        config.services.insert(
            "gateway".into(),
            devenv::config::ServiceSettings {
                ports: [("https".to_string(), https.into())].into(),
                ..Default::default()
            },
        );
    }) else {
        return;
    };
    if tool("curl").is_none() {
        return;
    }
    let rt = runtime();
    let web = free_port();
    let _web = http_server(web);
    let mut routes = Routes::default();
    routes
        .add(&g.config, "api", &format!("127.0.0.1:{web}"), None)
        .unwrap();
    let applied = rt
        .block_on(gateway::apply(&g.config, &g.state, &routes.routes, &g.host))
        .unwrap();
    assert!(matches!(applied, Applied::Reloaded { .. }), "{applied:?}");

    for host in ["api.macula.local", "grafana.macula.local"] {
        let (code, head, _) = http(g.host.http, host, "/a/b?c=d").unwrap();
        assert_eq!(code, 308, "{host}: {head}");
        let location = head
            .lines()
            .find_map(|l| l.strip_prefix("Location: "))
            .unwrap_or_else(|| panic!("{host}: no Location in {head}"));
        assert_eq!(
            location,
            format!("https://{host}:{}/a/b?c=d", g.host.https),
            "{host}"
        );
    }
    // A client that follows it ends at the route over HTTPS, the certificate verified.
    let ca = ca(&g.state);
    let r = curl(&[
        "-L",
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &format!("api.macula.local:{}:127.0.0.1", g.host.http),
        "--resolve",
        &format!("api.macula.local:{}:127.0.0.1", g.host.https),
        &format!("http://api.macula.local:{}/", g.host.http),
    ]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        r.stdout,
        format!(
            "hello from the dev server, host api.macula.local:{}, proto https",
            g.host.https
        ),
        "{r}"
    );
    // The generation marker still answers over plain HTTP (devenv reads reloads by it).
    let (code, _, _) = http(g.host.http, gateway::conf::GENERATION_HOST, "/").unwrap();
    assert_eq!(code, 200);

    // devenv's own probe (`routes list --check`, doctor) sees the route's process, not the
    // redirect: 200 while it answers, the gateway's 502 for a route whose process is down.
    let at = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, g.host.http));
    let probe = |host: &str| devenv::routes::list::probe(at, host, "/", Duration::from_secs(10));
    assert_eq!(probe("api.macula.local").status, Some(200));
    let down = free_port();
    routes
        .add(&g.config, "down", &format!("127.0.0.1:{down}"), None)
        .unwrap();
    let applied = rt
        .block_on(gateway::apply(&g.config, &g.state, &routes.routes, &g.host))
        .unwrap();
    assert!(matches!(applied, Applied::Reloaded { .. }), "{applied:?}");
    assert_eq!(probe("down.macula.local").status, Some(502));
    let (code, _, _) = http(g.host.http, "down.macula.local", "/").unwrap();
    assert_eq!(code, 308, "anyone else is still redirected");
}
