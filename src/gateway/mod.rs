//! The host gateway's live directory (`<state dir>/gateway/`, mounted read-only into the
//! gateway container at [`GATEWAY_LIVE_DIR`]) and changing its configuration without ever
//! breaking it.
//!
//! The directory holds the certificate and key nginx serves on :443 (copies of the wildcard
//! certificate from `crate::tls`, never the CA's key) and the user's routes (`routes.conf`).
//! When `up` renews the certificate under a running gateway, it reloads it the same checked
//! way ([`serve`]).
//! A change goes: render → `nginx -t` on a candidate inside the gateway → rename into place →
//! `nginx -s reload` → verify that the new generation answers. When a step fails, the
//! previous file stays (or is put back) and the error names the route at fault.
//!
//! Where nginx runs is behind [`Nginx`]: the gateway container ([`Container`]), or in tests a
//! real nginx on the host. Not for: the infrastructure's servers (`render::nginx`), the
//! routes table (`crate::routes`).

pub mod conf;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::config::{Config, GATEWAY_LIVE_DIR, GATEWAY_STATE_DIR};
use crate::docker::Engine;
use crate::error::Failure;
use crate::render::nginx::{self as nginx_conf, Layout, ROUTES_FILE, STREAMS_FILE};
use crate::routes::Route;
use crate::{files, tls};

/// The candidate routes file, beside the live one (outside the include pattern).
pub const CANDIDATE_FILE: &str = "routes.candidate.conf";
/// The nginx.conf that includes the candidate, for `nginx -t`.
pub const CHECK_FILE: &str = "check.conf";
/// How long a reload may take to show its generation.
const RELOAD_WAIT: Duration = Duration::from_secs(15);

/// Where the gateway's nginx runs, and how to talk to it.
pub trait Nginx {
    /// The live directory as nginx sees it.
    fn live_dir(&self) -> String;
    /// `listen` of HTTP and HTTPS.
    fn listen(&self) -> (String, String);
    /// Whether nginx runs in a container (targets on the host's loopback are then reached
    /// through the engine's address for the host).
    fn in_container(&self) -> bool;
    /// Run nginx with `args`: whether it succeeded, and what it printed.
    fn run(&self, args: &[&str]) -> impl Future<Output = anyhow::Result<(bool, String)>>;
    /// The generation the gateway serves now (the marker server's answer), `None` when it
    /// does not answer.
    fn generation(&self) -> impl Future<Output = Option<String>>;
}

/// The gateway container, through the engine.
pub struct Container {
    pub engine: Engine,
    /// The container's name (`macula-gateway`).
    pub name: String,
}

impl Nginx for Container {
    fn live_dir(&self) -> String {
        GATEWAY_LIVE_DIR.to_string()
    }

    fn listen(&self) -> (String, String) {
        let l = Layout::container();
        (l.http, l.https)
    }

    fn in_container(&self) -> bool {
        true
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<(bool, String)> {
        let cmd: Vec<&str> = std::iter::once("nginx")
            .chain(args.iter().copied())
            .collect();
        let out = self.engine.exec(&self.name, &cmd).await?;
        Ok((out.code == 0, out.output))
    }

    async fn generation(&self) -> Option<String> {
        let host = format!("Host: {}", conf::GENERATION_HOST);
        let url = format!("http://127.0.0.1:{}/", Layout::container().http);
        let cmd = ["wget", "-q", "-O", "-", "--header", &host, &url];
        match self.engine.exec(&self.name, &cmd).await {
            Ok(out) if out.code == 0 => Some(out.output.trim().to_string()),
            _ => None,
        }
    }
}

/// The live directory of the environment whose state directory is `state_dir`.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join(GATEWAY_STATE_DIR)
}

/// What [`prepare`] did.
#[derive(Debug)]
pub struct Prepared {
    /// The CA and the certificate, as `tls::ensure` left them.
    pub bundle: tls::Bundle,
    /// Whether a file of the live directory was written (a new or renewed certificate, other
    /// routes): a gateway that already runs serves it only after a reload ([`serve`]).
    pub changed: bool,
}

/// Fill the live directory before the gateway starts: the certificate and key (made or
/// renewed by `tls::ensure`; the key 0600 — the container's nginx master reads it as root)
/// and the routes file for the container.
pub fn prepare(config: &Config, state_dir: &Path) -> anyhow::Result<Prepared> {
    let bundle = tls::ensure(state_dir, config)?;
    let dir = dir(state_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut changed = write_if_changed(&dir.join(tls::CERT), bundle.cert_pem.as_bytes(), 0o644)?;
    changed |= write_if_changed(&dir.join(tls::KEY), bundle.key_pem().as_bytes(), 0o600)?;
    // The stream servers first: the routes' generation covers them, so that a changed port
    // is reloaded and verified like a changed route.
    let streams = crate::render::nginx::streams_conf(config)?;
    changed |= write_if_changed(&dir.join(STREAMS_FILE), streams.as_bytes(), 0o644)?;
    let routes = crate::routes::load(state_dir)?;
    let layout = Layout::container();
    let redirect = crate::render::nginx::https_redirect(config);
    let rendered = conf::render(
        &routes.routes,
        &layout,
        true,
        &bundle.cert_pem,
        redirect.as_deref(),
        &streams,
    )?;
    changed |= write_if_changed(&dir.join(ROUTES_FILE), rendered.text.as_bytes(), 0o644)?;
    Ok(Prepared { bundle, changed })
}

/// Write `contents` unless the file holds them already; whether it wrote.
fn write_if_changed(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<bool> {
    if std::fs::read(path).is_ok_and(|c| c == contents) {
        return Ok(false);
    }
    files::write_atomic(path, contents, mode)?;
    Ok(true)
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The gateway already served these routes.
    Unchanged { generation: String },
    /// Checked, swapped in and reloaded; the gateway answers the new generation.
    Reloaded { generation: String },
}

/// Serve `routes` through the running gateway `nginx`: check, swap, reload, verify. On any
/// failure the gateway keeps serving what it served before.
pub async fn apply(
    config: &Config,
    state_dir: &Path,
    routes: &[Route],
    nginx: &impl Nginx,
) -> anyhow::Result<Applied> {
    let dir = dir(state_dir);
    let live_dir = nginx.live_dir();
    let (http, https) = nginx.listen();
    let layout = Layout::at(&http, &https, &live_dir, ROUTES_FILE);
    // The certificate nginx serves after a reload: what `prepare` put in the live directory.
    let certificate = std::fs::read_to_string(dir.join(tls::CERT)).unwrap_or_default();
    let redirect = crate::render::nginx::https_redirect(config);
    // The stream servers `prepare` put in the live directory, which a reload loads too.
    let streams = std::fs::read_to_string(dir.join(STREAMS_FILE)).unwrap_or_default();
    let rendered = conf::render(
        routes,
        &layout,
        nginx.in_container(),
        &certificate,
        redirect.as_deref(),
        &streams,
    )?;
    let live = dir.join(ROUTES_FILE);
    let previous = std::fs::read_to_string(&live).ok();
    if previous.as_deref() == Some(rendered.text.as_str())
        && nginx.generation().await.as_deref() == Some(rendered.generation.as_str())
    {
        return Ok(Applied::Unchanged {
            generation: rendered.generation,
        });
    }

    // 1. The candidate, checked by the gateway's own nginx against the full config.
    let candidate = dir.join(CANDIDATE_FILE);
    let check = dir.join(CHECK_FILE);
    files::write_atomic(&candidate, rendered.text.as_bytes(), 0o644)?;
    let check_layout = Layout {
        streams: nginx.in_container(),
        ..Layout::at(&http, &https, &live_dir, CANDIDATE_FILE)
    };
    files::write_atomic(
        &check,
        nginx_conf::conf(config, &check_layout)?.as_bytes(),
        0o644,
    )?;
    let check_in_nginx = format!("{live_dir}/{CHECK_FILE}");
    let tested = nginx.run(&["-t", "-c", &check_in_nginx]).await;
    let _ = std::fs::remove_file(&check);
    let (ok, output) = match tested {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&candidate);
            return Err(e.context("checking the gateway's new config with nginx -t"));
        }
    };
    if !ok {
        let _ = std::fs::remove_file(&candidate);
        return Err(rejected(&rendered.text, &output).into());
    }

    // 2. Swap (rename: nginx sees the old file or the new one) and reload.
    std::fs::rename(&candidate, &live)
        .with_context(|| format!("renaming {} to {}", candidate.display(), live.display()))?;
    let restore = || -> anyhow::Result<()> {
        match &previous {
            Some(text) => files::write_atomic(&live, text.as_bytes(), 0o644),
            None => {
                std::fs::remove_file(&live).with_context(|| format!("removing {}", live.display()))
            }
        }
    };
    let (ok, output) = nginx.run(&["-s", "reload"]).await?;
    if !ok {
        restore()?;
        anyhow::bail!("nginx -s reload failed in the gateway: {}", output.trim());
    }

    // 3. Verify: the master has loaded the file when the marker answers its generation.
    let started = Instant::now();
    loop {
        let served = nginx.generation().await;
        if served.as_deref() == Some(rendered.generation.as_str()) {
            return Ok(Applied::Reloaded {
                generation: rendered.generation,
            });
        }
        if started.elapsed() > RELOAD_WAIT {
            restore()?;
            let _ = nginx.run(&["-s", "reload"]).await;
            return Err(Failure::environment(
                format!(
                    "the gateway did not take up the new routes within {}s (it serves generation {}, not {})",
                    RELOAD_WAIT.as_secs(),
                    served.as_deref().unwrap_or("none"),
                    rendered.generation
                ),
                Some("the previous routes were put back; see `devenv logs gateway`".to_string()),
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where a change of routes went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// The running gateway serves them ([`apply`]'s outcome).
    Live(Applied),
    /// No gateway runs (or no engine answers): `devenv up` serves them when it starts it.
    NotRunning(String),
}

/// Serve `routes` through the environment's gateway container when it runs.
pub async fn serve(config: &Config, state_dir: &Path, routes: &[Route]) -> anyhow::Result<Served> {
    let Some(gateway) = config.services().into_iter().find(|s| s.name == "gateway") else {
        return Ok(Served::NotRunning(
            "the gateway is not enabled in devenv.yaml".to_string(),
        ));
    };
    let engine = match Engine::connect().await {
        Ok(e) => e,
        Err(e) => return Ok(Served::NotRunning(format!("no Docker engine: {e:#}"))),
    };
    let running = engine
        .project_containers(&config.name)
        .await?
        .into_iter()
        .any(|c| {
            c.service.as_deref() == Some("gateway")
                && c.state == crate::docker::observed::RunState::Running
        });
    if !running {
        return Ok(Served::NotRunning(format!(
            "{} is not running",
            gateway.container_name
        )));
    }
    let container = Container {
        engine,
        name: gateway.container_name,
    };
    Ok(Served::Live(
        apply(config, state_dir, routes, &container).await?,
    ))
}

/// The URLs a host name has through the gateway: HTTP and HTTPS, with the published ports
/// when they are not 80 and 443.
pub fn urls(config: &Config, host: &str) -> (String, String) {
    let port = |name: &str, default: u16| {
        config
            .services()
            .into_iter()
            .find(|s| s.name == "gateway")
            .and_then(|s| s.ports.into_iter().find(|p| p.name == name))
            .map_or(default, |p| p.host_port)
    };
    let url = |scheme: &str, port: u16, default: u16| {
        if port == default {
            format!("{scheme}://{host}/")
        } else {
            format!("{scheme}://{host}:{port}/")
        }
    };
    (
        url("http", port("http", 80), 80),
        url("https", port("https", 443), 443),
    )
}

/// The failure for a candidate nginx rejected: the route at fault (found by the line nginx
/// names in the candidate) and nginx's own words.
fn rejected(text: &str, output: &str) -> Failure {
    let emerg: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("[emerg]") || l.contains("[alert]") || l.contains("[crit]"))
        .collect();
    let words = if emerg.is_empty() {
        output.trim().to_string()
    } else {
        emerg.join("; ")
    };
    let line = output.lines().find_map(|l| {
        let at = l.find(&format!("{CANDIDATE_FILE}:"))? + CANDIDATE_FILE.len() + 1;
        let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<usize>().ok()
    });
    match line.and_then(|n| conf::route_at_line(text, n)) {
        Some(route) => Failure::bad_input(
            format!("the gateway's nginx rejects route `{route}`: {words}"),
            Some(format!(
                "nothing changed, the gateway serves the previous routes; fix the target or `devenv routes rm {route}`"
            )),
        ),
        None => Failure::bad_input(
            format!("the gateway's nginx rejects the new config: {words}"),
            Some("nothing changed, the gateway serves the previous routes".to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_names_the_route_on_the_line_nginx_names() {
        let config = Config::default();
        let mut routes = crate::routes::Routes::default();
        routes.add(&config, "api", "127.0.0.1:3000", None).unwrap();
        routes
            .add(&config, "gone", "nowhere.invalid:80", None)
            .unwrap();
        let text = conf::render(&routes.routes, &Layout::container(), true, "", None, "")
            .unwrap()
            .text;
        let n = text.lines().position(|l| l.contains("nowhere")).unwrap() + 1;
        let output = format!(
            "nginx: [emerg] host not found in upstream \"nowhere.invalid:80\" in /etc/nginx/devenv/{CANDIDATE_FILE}:{n}\nnginx: configuration file /etc/nginx/devenv/check.conf test failed\n"
        );
        let f = rejected(&text, &output);
        assert!(f.message.contains("route `gone`"), "{}", f.message);
        assert!(f.message.contains("host not found"), "{}", f.message);
        assert!(f.hint.unwrap().contains("devenv routes rm gone"));
        let f = rejected(
            &text,
            "nginx: [emerg] something else in /etc/nginx/nginx.conf:3",
        );
        assert!(
            f.message.contains("rejects the new config"),
            "{}",
            f.message
        );
    }
}
