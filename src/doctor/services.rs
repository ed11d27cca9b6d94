//! Checks of the services: each one running and healthy, the gateway answering each name it
//! serves, the registry taking a blob and giving it back, and devenv's CA trusted by the OS.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::host::ENGINE;
use super::{Check, Facts, Finding, Group};
use crate::routes::list;
use crate::{env, tls};

/// How long one HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// The repository and the blob of the registry round trip: fixed, so repeated runs store it
/// once.
const REPOSITORY: &str = "devenv-doctor";
const BLOB: &[u8] = b"devenv doctor: registry round trip\n";

/// The name of the check of `service`.
pub fn service_check(service: &str) -> String {
    format!("service:{service}")
}

pub fn checks(facts: &Facts) -> Vec<Check<'_>> {
    let config = &facts.config;
    let services = config.services();
    let mut out: Vec<Check<'_>> = services
        .iter()
        .map(|s| {
            let name = s.name.clone();
            Check::new(service_check(&s.name), Group::Services, health(facts, name)).needs(ENGINE)
        })
        .collect();
    if let Some(gateway) = list::gateway_http(config) {
        let routes = crate::routes::load(&facts.state_dir).unwrap_or_default();
        for listed in list::listing(config, &routes) {
            let mut check = Check::new(
                format!("gateway:{}", listed.host),
                Group::Services,
                through_gateway(gateway, listed.clone()),
            )
            .needs(service_check("gateway"));
            if listed.kind == "infrastructure" && listed.name != "gateway" {
                check = check.needs(service_check(&listed.name));
            }
            out.push(check);
        }
    }
    if services.iter().any(|s| s.name == "registry") {
        out.push(
            Check::new("registry-roundtrip", Group::Services, registry(facts))
                .needs(service_check("registry")),
        );
    }
    out.push(Check::new("tls-trust", Group::Services, async {
        let dir = facts.state_dir.clone();
        let domain = facts.config.domain.clone();
        tokio::task::spawn_blocking(move || trust(&dir, &domain))
            .await
            .unwrap_or_else(|e| Finding::fail(e.to_string(), "run it again"))
    }));
    out
}

async fn health(facts: &Facts, service: String) -> Finding {
    let rows = match facts.rows().await {
        Ok(r) => r,
        Err(u) => return Finding::fail(u.message, u.hint.unwrap_or_else(|| "start Docker".into())),
    };
    let Some(row) = rows.iter().find(|r| r.service == service) else {
        return Finding::fail("no row for it", "`devenv status`");
    };
    let url = row
        .url
        .as_deref()
        .map(|u| format!(" ({u})"))
        .unwrap_or_default();
    if row.ok() {
        let health = if row.health == crate::converge::summary::NO_CHECK {
            "no healthcheck"
        } else {
            "healthy"
        };
        return Finding::ok(format!("running, {health}{url}"));
    }
    let fix = match row.state.as_str() {
        "missing" => "create it: `devenv up`".to_string(),
        "running" => format!("`devenv logs {service}` shows why its healthcheck fails"),
        _ => format!("start it: `devenv up` (`devenv logs {service}` shows why it stopped)"),
    };
    Finding::fail(format!("{}, health {}", row.state, row.health), fix)
}

async fn through_gateway(gateway: SocketAddr, listed: list::Listed) -> Finding {
    let host = listed.host.clone();
    let probe =
        tokio::task::spawn_blocking(move || list::probe(gateway, &host, "/", HTTP_TIMEOUT)).await;
    let Ok(probe) = probe else {
        return Finding::fail("the probe did not finish", "run it again");
    };
    let fix = if listed.kind == "route" {
        format!(
            "is the process at {} listening (on 0.0.0.0 on Linux: the gateway reaches the host through the Docker bridge)? `devenv logs gateway` shows the gateway's side",
            listed.target
        )
    } else {
        format!(
            "`devenv logs gateway` and `devenv logs {}` show why",
            listed.name
        )
    };
    match (probe.status, probe.error) {
        (Some(status), _) if status < 500 => Finding::ok(format!(
            "HTTP {status} from {gateway} for Host {} -> {}",
            listed.host, listed.target
        )),
        (Some(status), _) => Finding::fail(
            format!(
                "HTTP {status} from {gateway} for Host {}: the gateway cannot reach {}",
                listed.host, listed.target
            ),
            fix,
        ),
        (None, error) => Finding::fail(
            format!(
                "no HTTP answer for Host {}: {}",
                listed.host,
                error.unwrap_or_default()
            ),
            fix,
        ),
    }
}

/// Where the registry's HTTP API is reached from the host, and the Host header to send: its
/// published port, else the gateway with its hostname.
fn registry_endpoint(facts: &Facts) -> Option<(SocketAddr, String)> {
    let services = facts.config.services();
    let registry = services.iter().find(|s| s.name == "registry")?;
    let api = registry.container_ports.get("api").copied();
    if let Some(p) = registry
        .ports
        .iter()
        .find(|p| Some(p.container_port) == api)
    {
        let ip = if p.host_ip.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            p.host_ip
        };
        let addr = SocketAddr::new(ip, p.host_port);
        return Some((addr, addr.to_string()));
    }
    let gateway = list::gateway_http(&facts.config)?;
    let route = registry.routes.first()?;
    Some((gateway, route.hostname.clone()))
}

async fn registry(facts: &Facts) -> Finding {
    let Some((addr, host)) = registry_endpoint(facts) else {
        return Finding::skip(
            "the registry is reached neither on a published port nor through the gateway",
        );
    };
    let result = tokio::task::spawn_blocking(move || round_trip(addr, &host)).await;
    match result {
        Ok(Ok(digest)) => Finding::ok(format!(
            "pushed a {}-byte blob to {addr} (repository {REPOSITORY}) and read it back by {digest}",
            BLOB.len()
        )),
        Ok(Err(why)) => Finding::fail(
            format!("registry round trip at {addr}: {why}"),
            "`devenv logs registry` shows the registry's side",
        ),
        Err(e) => Finding::fail(e.to_string(), "run it again"),
    }
}

/// Upload [`BLOB`] (a monolithic upload: POST, then PUT with the digest) and fetch it back by
/// digest; the digest, or what went wrong.
fn round_trip(addr: SocketAddr, host: &str) -> Result<String, String> {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(BLOB)));
    let start = exchange(
        addr,
        "POST",
        host,
        &format!("/v2/{REPOSITORY}/blobs/uploads/"),
        &[],
    )?;
    if start.status != 202 {
        return Err(format!(
            "starting an upload: HTTP {} (expected 202)",
            start.status
        ));
    }
    let location = start
        .header("location")
        .ok_or("starting an upload: no Location header")?;
    let path = path_of(location);
    let sep = if path.contains('?') { '&' } else { '?' };
    let put = exchange(
        addr,
        "PUT",
        host,
        &format!("{path}{sep}digest={digest}"),
        BLOB,
    )?;
    if put.status != 201 {
        return Err(format!(
            "uploading the blob: HTTP {} (expected 201)",
            put.status
        ));
    }
    let get = exchange(
        addr,
        "GET",
        host,
        &format!("/v2/{REPOSITORY}/blobs/{digest}"),
        &[],
    )?;
    if get.status != 200 {
        return Err(format!(
            "fetching the blob back: HTTP {} (expected 200)",
            get.status
        ));
    }
    if get.body != BLOB {
        return Err(format!(
            "fetching the blob back: got {} bytes that differ from the {} pushed",
            get.body.len(),
            BLOB.len()
        ));
    }
    Ok(digest)
}

/// The path and query of a Location header (absolute or not): requests keep going to the
/// same address with the same Host.
fn path_of(location: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = location.strip_prefix(scheme) {
            return rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    location
}

/// An HTTP answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request (so the answer is never chunked: its end is the connection's).
fn exchange(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    body: &[u8],
) -> Result<Answer, String> {
    let fail = |e: std::io::Error| format!("{method} {path} at {addr}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(fail)?;
    s.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(fail)?;
    s.set_write_timeout(Some(HTTP_TIMEOUT)).map_err(fail)?;
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: devenv-doctor\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(fail)?;
    s.write_all(body).map_err(fail)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(fail)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {path} at {addr}: not an HTTP answer"))?;
    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{method} {path} at {addr}: not an HTTP answer"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// Whether devenv's CA (`<state dir>/tls/ca.crt`) is trusted by the OS store.
fn trust(state_dir: &Path, domain: &str) -> Finding {
    let ca_path = state_dir.join(tls::DIR).join(tls::CA_CERT);
    let Ok(ca) = std::fs::read_to_string(&ca_path) else {
        return Finding::skip(format!(
            "no CA at {} yet (`devenv up` makes it)",
            ca_path.display()
        ));
    };
    let fix =
        "trust it: `sudo devenv trust install` (`devenv trust install --dry-run` shows the change)";
    if cfg!(target_os = "macos") {
        let verified = std::process::Command::new("security")
            .arg("verify-cert")
            .arg("-c")
            .arg(&ca_path)
            .output()
            .is_ok_and(|o| o.status.success());
        return if verified {
            Finding::ok(format!(
                "{} is trusted (security verify-cert)",
                ca_path.display()
            ))
        } else {
            Finding::fail(
                format!(
                    "{} is not trusted by the keychain: https://*.{domain} is rejected",
                    ca_path.display()
                ),
                fix,
            )
        };
    }
    if cfg!(windows) {
        return Finding::skip("not checked on Windows: see `devenv trust status`");
    }
    let Some(bundle) = system_bundle() else {
        return Finding::warn(
            "no system CA bundle found",
            "install your distribution's ca-certificates package",
        );
    };
    let text = std::fs::read_to_string(&bundle).unwrap_or_default();
    let trusted = certificates(&ca)
        .first()
        .is_some_and(|mine| certificates(&text).contains(mine));
    if trusted {
        Finding::ok(format!("{} is in {}", ca_path.display(), bundle.display()))
    } else {
        Finding::fail(
            format!(
                "{} is not in the OS store ({}): https://*.{domain} is rejected",
                ca_path.display(),
                bundle.display()
            ),
            fix,
        )
    }
}

/// The CA bundle OpenSSL-based programs read: `SSL_CERT_FILE` when set, else the first of the
/// distributions' bundles that exists (Debian/Ubuntu/Arch, Fedora/RHEL, Alpine/others).
fn system_bundle() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os(env::SSL_CERT_FILE).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(file));
    }
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// The base64 bodies of the PEM certificates in `text`, whitespace removed (so line
/// lengths and endings do not matter).
fn certificates(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line == "-----BEGIN CERTIFICATE-----" {
            current = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            out.extend(current.take());
        } else if let Some(body) = current.as_mut() {
            body.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_compare_whatever_the_line_endings() {
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\nBBBB\n-----END CERTIFICATE-----\n";
        let bundle = "-----BEGIN CERTIFICATE-----\r\nZZZZ\r\n-----END CERTIFICATE-----\r\n-----BEGIN CERTIFICATE-----\r\nAAAABBBB\r\n-----END CERTIFICATE-----\r\n";
        assert_eq!(certificates(one), ["AAAABBBB"]);
        assert!(certificates(bundle).contains(&certificates(one)[0]));
    }

    #[test]
    fn a_location_keeps_only_its_path_and_query() {
        assert_eq!(
            path_of("http://registry.macula.local/v2/x/blobs/uploads/u?_state=s"),
            "/v2/x/blobs/uploads/u?_state=s"
        );
        assert_eq!(path_of("/v2/x/blobs/uploads/u"), "/v2/x/blobs/uploads/u");
    }

    /// The round trip against a server that answers as the Distribution registry does,
    /// recording each request.
    #[test]
    fn the_round_trip_posts_puts_by_digest_and_gets_the_blob_back() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut stored = Vec::new();
            for _ in 0..3 {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                let (head, body) = loop {
                    let n = s.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..n]);
                    if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..i]).into_owned();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        while got.len() < i + 4 + len {
                            let n = s.read(&mut buf).unwrap();
                            got.extend_from_slice(&buf[..n]);
                        }
                        break (head, got[i + 4..].to_vec());
                    }
                };
                let line = head.lines().next().unwrap().to_string();
                let answer: Vec<u8> = if line.starts_with("POST ") {
                    b"HTTP/1.0 202 Accepted\r\nLocation: http://reg.example/v2/devenv-doctor/blobs/uploads/u1?_state=x\r\nContent-Length: 0\r\n\r\n".to_vec()
                } else if line.starts_with("PUT ") {
                    stored = body;
                    b"HTTP/1.0 201 Created\r\nContent-Length: 0\r\n\r\n".to_vec()
                } else {
                    let mut a = format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                        stored.len()
                    )
                    .into_bytes();
                    a.extend_from_slice(&stored);
                    a
                };
                s.write_all(&answer).unwrap();
                seen.push(line);
            }
            seen
        });
        let digest = round_trip(addr, "reg.example").unwrap();
        let seen = server.join().unwrap();
        let hex = hex::encode(Sha256::digest(BLOB));
        assert_eq!(digest, format!("sha256:{hex}"));
        assert_eq!(
            seen,
            [
                "POST /v2/devenv-doctor/blobs/uploads/ HTTP/1.0".to_string(),
                format!(
                    "PUT /v2/devenv-doctor/blobs/uploads/u1?_state=x&digest=sha256:{hex} HTTP/1.0"
                ),
                format!("GET /v2/devenv-doctor/blobs/sha256:{hex} HTTP/1.0"),
            ]
        );
    }
}
