//! CI mode's throwaway environment: one per job, sharing nothing with another job on the same
//! engine. Its name comes from the job ([`job_name`]); its host ports and its network's subnet
//! are chosen free when it is first brought up ([`Assignment`]) and applied onto the one
//! [`Config`] that the renderers and the drivers read, so the compose file in the state
//! directory and what runs cannot disagree. [`coordinates`] is what a job's command is told
//! about it; [`command`] runs that command.
//!
//! Not for: the `--ci` flag or the event stream (output), bringing the environment up or down
//! (converge), nor the arguments of `devenv ci` (the command).

pub mod command;
pub mod coordinates;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;

use anyhow::Context as _;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::config::{ClusterProvider, Config, PortSetting, Protocol, RoutingMode};
use crate::env;

/// The longest environment name (validation's limit: it prefixes container names).
const NAME_MAX: usize = 40;
/// The file in the state directory that records an environment's [`Assignment`].
pub const ASSIGNMENT_FILE: &str = "ci.json";

/// The part of the environment name that identifies the job, from the CI system's variables
/// (`var` reads one): GitHub Actions' run, attempt and job, or GitLab's job ID. `None` outside
/// a known CI system.
pub fn job(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if let Some(run) = var(env::GITHUB_RUN_ID) {
        let attempt = var(env::GITHUB_RUN_ATTEMPT).unwrap_or_else(|| "1".into());
        let job = var(env::GITHUB_JOB).unwrap_or_default();
        return Some(format!("{job}-{run}-{attempt}"));
    }
    var(env::CI_JOB_ID).map(|id| format!("job-{id}"))
}

/// A random job part, for a `devenv ci` run outside a known CI system.
pub fn random_job() -> String {
    use rand::Rng as _;
    format!("{:08x}", rand::rng().random::<u32>())
}

/// The environment name for `base` (devenv.yaml's `name:`) in job `job`.
pub fn job_name(base: &str, job: &str) -> String {
    sanitize(&format!("{base}-{job}"))
}

/// `raw` as an environment name: a DNS label of lowercase letters, digits and `-`, at most
/// [`NAME_MAX`] characters (a longer one keeps its start and a hash of the whole, so that two
/// long names stay apart). Empty when nothing usable is left.
pub fn sanitize(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    let mut out = out.trim_end_matches('-').to_string();
    if out.len() > NAME_MAX {
        let hash = hex::encode(sha2::Sha256::digest(raw.as_bytes()));
        out.truncate(NAME_MAX - 9);
        let out = out.trim_end_matches('-');
        return format!("{out}-{}", &hash[..8]);
    }
    out
}

/// What CI mode chose for one environment so that it shares nothing with another: its host
/// ports and its subnet. Recorded in the state directory ([`ASSIGNMENT_FILE`]) once the
/// environment is brought up, so that `status`, `down` and a second `up` see the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Host port by service and port name (`gateway` -> `http` -> 41234).
    pub services: BTreeMap<String, BTreeMap<String, u16>>,
    /// The cluster ingress's HTTP, HTTPS and QUIC host ports, when there is a cluster.
    pub cluster: Option<[u16; 3]>,
    /// The resolver's port.
    pub dns: u16,
    /// The network's subnet, when devenv.yaml does not fix it.
    pub subnet: Option<Ipv4Net>,
}

impl Assignment {
    /// Free host ports for everything `config` publishes, each found by binding port 0 on its
    /// address (TCP, and UDP too where it is published over UDP); all are held until every
    /// one is chosen, so no two coincide. The subnet is left to [`crate::subnets::free_ci_subnet`].
    pub fn choose(config: &Config) -> anyhow::Result<Assignment> {
        let mut held = Vec::new();
        let mut out = Assignment::default();
        for service in config.services() {
            let mut by_name: BTreeMap<&str, (IpAddr, Vec<Protocol>)> = BTreeMap::new();
            for p in &service.ports {
                by_name
                    .entry(&p.name)
                    .or_insert((p.host_ip, Vec::new()))
                    .1
                    .push(p.protocol);
            }
            for (name, (ip, protocols)) in by_name {
                let port = free_port(ip, &protocols, &mut held)
                    .with_context(|| format!("finding a free port for {}.{name}", service.name))?;
                out.services
                    .entry(service.name.clone())
                    .or_default()
                    .insert(name.to_string(), port);
            }
        }
        if config.cluster.provider == ClusterProvider::Kind {
            let ip = IpAddr::V4(config.cluster.listen_address);
            let tcp = [Protocol::Tcp];
            out.cluster = Some([
                free_port(ip, &tcp, &mut held).context("finding a free port for the ingress")?,
                free_port(ip, &tcp, &mut held).context("finding a free port for the ingress")?,
                free_port(ip, &[Protocol::Udp], &mut held)
                    .context("finding a free port for the ingress")?,
            ]);
        }
        out.dns = free_port(
            config.dns.address,
            &[Protocol::Udp, Protocol::Tcp],
            &mut held,
        )
        .context("finding a free port for the resolver")?;
        Ok(out)
    }

    /// Put the assignment into `config`: the ports, the subnet, and `ports` routing — the
    /// split-ip mapping of 127.0.0.2:80/443 cannot be shared by two clusters, so applications
    /// are reached on the cluster's own (free) ports.
    pub fn apply(&self, config: &mut Config) {
        for (service, ports) in &self.services {
            let settings = config.services.entry(service.clone()).or_default();
            let own = !Config::known_services().contains(&service.as_str());
            for (name, port) in ports {
                // A service of one's own keeps its container port; only the host side moves.
                let setting = match settings.ports.get(name) {
                    Some(p) if own => PortSetting::Mapped {
                        container: p.container(),
                        host: *port,
                    },
                    _ => PortSetting::Host(*port),
                };
                settings.ports.insert(name.clone(), setting);
            }
        }
        if let Some([http, https, quic]) = self.cluster {
            config.cluster.http_port = http;
            config.cluster.https_port = https;
            config.cluster.quic_port = quic;
        }
        config.dns.port = self.dns;
        if let Some(subnet) = self.subnet {
            config.network.subnet = subnet;
        }
        config.routing.mode = RoutingMode::Ports;
    }

    /// The assignment recorded in `state_dir`, if any.
    pub fn load(state_dir: &Path) -> anyhow::Result<Option<Assignment>> {
        let path = state_dir.join(ASSIGNMENT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Record it in `state_dir`.
    pub fn store(&self, state_dir: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        crate::files::write_atomic(&state_dir.join(ASSIGNMENT_FILE), text.as_bytes(), 0o600)
    }
}

/// A port on `ip` free for every protocol in `protocols`, found by binding port 0; the
/// sockets stay in `held` so that the next call picks another.
fn free_port(
    ip: IpAddr,
    protocols: &[Protocol],
    held: &mut Vec<Box<dyn std::any::Any>>,
) -> anyhow::Result<u16> {
    for _ in 0..100 {
        let (port, first): (u16, Box<dyn std::any::Any>) = if protocols.contains(&Protocol::Tcp) {
            let l = TcpListener::bind(SocketAddr::new(ip, 0))
                .with_context(|| format!("binding a TCP port on {ip}"))?;
            (l.local_addr()?.port(), Box::new(l))
        } else {
            let s = UdpSocket::bind(SocketAddr::new(ip, 0))
                .with_context(|| format!("binding a UDP port on {ip}"))?;
            (s.local_addr()?.port(), Box::new(s))
        };
        if protocols.contains(&Protocol::Tcp) && protocols.contains(&Protocol::Udp) {
            match UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(udp) => held.push(Box::new(udp)),
                // Taken over UDP: try another.
                Err(_) => continue,
            }
        }
        held.push(first);
        return Ok(port);
    }
    anyhow::bail!("no port on {ip} is free for both TCP and UDP")
}

/// What [`remove`] removed.
#[derive(Debug, Default)]
pub struct Removed {
    pub containers: usize,
    pub networks: usize,
    /// Networks the engine refused to remove with nothing attached (see
    /// [`crate::converge::Teardown::networks_refused`]).
    pub networks_refused: BTreeMap<String, crate::converge::teardown::Refusal>,
    pub volumes: usize,
    pub cluster: Option<String>,
    /// The state directory was removed too.
    pub state_dir: bool,
}

/// Remove what environment `config` made, as `down --purge --yes` does (only what carries its
/// labels, the cluster only when devenv created it), and its state directory when `made_dir`
/// (this run made it). Repeats while something of it is still there: a container whose
/// creation was under way when `up` was stopped appears after the first look.
pub async fn remove(
    engine: &crate::docker::Engine,
    config: &Config,
    state_dir: &Path,
    made_dir: bool,
) -> anyhow::Result<Removed> {
    let mut out = Removed::default();
    for _ in 0..3 {
        let cluster = crate::converge::cluster::down(engine, config, state_dir, true).await?;
        let done = crate::converge::teardown(engine, &config.name, state_dir, true).await?;
        out.containers += done.containers_removed.len();
        out.networks += done.networks_removed.len();
        out.volumes += done.volumes_removed.len();
        out.cluster = out.cluster.or(cluster.deleted);
        out.networks_refused = done.networks_refused;
        let observed = engine.observe().await?;
        let ours = |p: &Option<String>| p.as_deref() == Some(config.name.as_str());
        let left = observed.containers.iter().any(|c| ours(&c.project))
            || observed.volumes.iter().any(|v| ours(&v.project))
            || observed
                .networks
                .iter()
                .any(|n| ours(&n.project) && n.name != crate::config::KIND_NETWORK);
        if !left {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    if made_dir {
        match std::fs::remove_dir_all(state_dir) {
            Ok(()) => out.state_dir = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("removing {}", state_dir.display()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_job_comes_from_github_or_gitlab_variables() {
        let gh = [
            ("GITHUB_RUN_ID", "9876543210"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_JOB", "Test_Linux"),
        ];
        assert_eq!(job(vars(&gh)).unwrap(), "Test_Linux-9876543210-2");
        assert_eq!(
            job_name("macula", &job(vars(&gh)).unwrap()),
            "macula-test-linux-9876543210-2"
        );
        assert_eq!(job(vars(&[("CI_JOB_ID", "42")])).unwrap(), "job-42");
        assert_eq!(job(vars(&[("CI", "true")])), None);
    }

    #[test]
    fn names_are_dns_labels_of_at_most_forty_characters() {
        assert_eq!(sanitize("--Foo__Bar.baz--"), "foo-bar-baz");
        assert_eq!(sanitize("___"), "");
        let long = sanitize(&"a-very-long-job-name-".repeat(4));
        let other = sanitize(&format!("{}x", "a-very-long-job-name-".repeat(4)));
        assert_eq!(long.len(), 40, "{long}");
        assert_ne!(long, other, "two long names stay apart");
        assert!(!long.starts_with('-') && !long.ends_with('-'));
        assert!(crate::config::load_str(&format!("name: {long}\n"), "t").is_ok());
    }

    #[test]
    fn a_service_of_ones_own_keeps_its_container_port_when_its_host_port_moves() {
        let mut config = crate::config::load_str(
            "services:\n  cache:\n    image: redis:8.2.2-alpine\n    ports: {redis: 6379}\n",
            "t",
        )
        .unwrap();
        let a = Assignment::choose(&config).unwrap();
        a.apply(&mut config);
        let cache = config
            .services()
            .into_iter()
            .find(|s| s.name == "cache")
            .unwrap();
        assert_eq!(cache.ports[0].container_port, 6379);
        assert_eq!(cache.ports[0].host_port, a.services["cache"]["redis"]);
        assert_ne!(cache.ports[0].host_port, 6379);
    }

    #[test]
    fn chosen_ports_are_distinct_and_applied_to_the_one_model() {
        let mut config = Config::default();
        let a = Assignment::choose(&config).unwrap();
        let mut all: Vec<u16> = a
            .services
            .values()
            .flat_map(|p| p.values().copied())
            .collect();
        all.extend(a.cluster.unwrap());
        all.push(a.dns);
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "no port chosen twice");
        assert_eq!(a.services["gateway"].len(), 2, "http and https");
        a.apply(&mut config);
        assert_eq!(config.routing.mode, RoutingMode::Ports);
        let gateway = config
            .services()
            .into_iter()
            .find(|s| s.name == "gateway")
            .unwrap();
        let http = gateway.ports.iter().find(|p| p.name == "http").unwrap();
        assert_eq!(http.host_port, a.services["gateway"]["http"]);
        // What was applied is still a valid devenv.yaml.
        crate::config::load_str(&serde_json::to_string(&config).unwrap(), "assigned").unwrap();
    }
}
