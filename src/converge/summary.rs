//! Step: what the services look like now, one [`Row`] each — `up`'s summary and `devenv
//! status` share it — and the table they are printed as.
//!
//! Not for: printing (the commands do) or deciding the exit code.

use std::collections::BTreeSet;

use serde::Serialize;

use std::net::SocketAddr;

use crate::config::{Protocol, Service, ServiceKind};
use crate::docker::observed::RunState;
use crate::docker::{ContainerStatus, Engine, health};
use crate::output::events::{Finished, Kind};

/// One line of `status` (and of `up`'s summary).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub service: String,
    pub url: Option<String>,
    pub ports: Vec<String>,
    /// `running`, `exited`, ..., or `missing`.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, `none`, or `-` without a container.
    pub health: String,
}

impl Row {
    /// Whether the service runs and is healthy.
    pub fn ok(&self) -> bool {
        self.state == "running" && (self.health == "healthy" || self.health == NO_CHECK)
    }
}

/// Where a person reaches `service`: through the gateway by hostname where the gateway is
/// one of `services` (not with an `--only` that leaves it out), else the published port of the
/// route's own container port. Never another port of the service (PowerDNS's DNS port is no
/// web page); `None` where there is nothing to show.
fn url(services: &[Service], service: &Service) -> Option<String> {
    let gateway = services
        .iter()
        .find(|s| s.name == "gateway")
        .and_then(|g| g.ports.iter().find(|p| p.name == "http"));
    let route = service.routes.first();
    // The port on the host that leads to `container_port`, TCP.
    let published = |container_port: u16| {
        service
            .ports
            .iter()
            .find(|p| p.container_port == container_port && p.protocol == Protocol::Tcp)
    };
    match (route, gateway) {
        (Some(r), _) if r.kind == ServiceKind::Tcp => {
            published(r.container_port).map(|p| format!("{}:{}", r.hostname, p.host_port))
        }
        (Some(r), Some(g)) => Some(if g.host_port == 80 {
            format!("http://{}/", r.hostname)
        } else {
            format!("http://{}:{}/", r.hostname, g.host_port)
        }),
        (Some(r), None) => published(r.container_port)
            .map(|p| format!("http://{}/", SocketAddr::new(p.host_ip, p.host_port))),
        // The gateway itself, and services without a hostname.
        (None, _) if service.name == "gateway" => service
            .ports
            .first()
            .map(|p| format!("http://{}/", SocketAddr::new(p.host_ip, p.host_port))),
        (None, _) => None,
    }
}

fn state_word(state: RunState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// The health of a running service that has no healthcheck (one of the user's own): it counts
/// as up.
pub const NO_CHECK: &str = "no check";

/// The rows for `services`, from the containers of the project. `confirmed` are services
/// whose healthcheck passed just now (Docker's own verdict may lag by an interval).
pub fn rows(
    services: &[Service],
    containers: &[ContainerStatus],
    confirmed: &BTreeSet<String>,
) -> Vec<Row> {
    services
        .iter()
        .map(|s| {
            let c = containers
                .iter()
                .find(|c| c.service.as_deref() == Some(s.name.as_str()));
            let (state, mut health, ports) = match c {
                Some(c) => (state_word(c.state), c.health.clone(), c.ports.clone()),
                None => ("missing".to_string(), "-".to_string(), Vec::new()),
            };
            if state == "running" && confirmed.contains(&s.name) {
                health = "healthy".into();
            }
            // A service of the user's own without a healthcheck Docker runs: devenv's own probe
            // says, or without one running is all there is.
            if state == "running" && s.healthcheck.is_none() {
                health = match (&s.probe, confirmed.contains(&s.name)) {
                    (None, _) => NO_CHECK.into(),
                    (Some(_), true) => "healthy".into(),
                    (Some(_), false) => "unhealthy".into(),
                };
            }
            Row {
                service: s.name.clone(),
                url: url(services, s),
                ports,
                state,
                health,
            }
        })
        .collect()
}

/// The rows of `services` of environment `project` as they are now. Docker reports
/// "starting" until its first probe, an interval after the start; the healthcheck itself is
/// asked rather than a ready service reported as not yet healthy. A service devenv probes
/// itself is probed now.
pub async fn status(
    engine: &Engine,
    project: &str,
    services: &[Service],
) -> anyhow::Result<Vec<Row>> {
    let containers = engine.project_containers(project).await?;
    let probes = containers
        .iter()
        .filter(|c| c.state == RunState::Running)
        .filter_map(|c| {
            let service = services
                .iter()
                .find(|s| Some(&s.name) == c.service.as_ref())?;
            let starting = c.health == "starting";
            match (&service.healthcheck, &service.probe) {
                (Some(_), _) if !starting => None,
                (None, None) => None,
                _ => Some(async move {
                    let verdict = match (&service.healthcheck, &service.probe) {
                        (Some(check), _) => health::probe(engine, &c.id, check).await,
                        (None, Some(p)) => health::probe_from_host(engine, &c.id, p).await,
                        (None, None) => unreachable!("filtered out above"),
                    };
                    (verdict == health::Verdict::Passed).then(|| service.name.clone())
                }),
            }
        });
    let confirmed: BTreeSet<String> = futures_util::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect();
    Ok(rows(services, &containers, &confirmed))
}

/// The host side of Docker's `127.0.0.1:5300->5300/udp` with its protocol
/// (`127.0.0.1:5300/udp`), each once: TCP and UDP on one port are two entries, an address
/// Docker lists twice is one. A port given as its host side already (`127.0.0.1:4433/udp`, as
/// the cluster's rows give theirs) is kept as it is.
fn host_ports(ports: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in ports {
        let entry = match p.split_once("->") {
            Some((host, container)) => {
                let protocol = container.rsplit_once('/').map_or("tcp", |(_, proto)| proto);
                format!("{host}/{protocol}")
            }
            None => p.clone(),
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// The rows as table lines, the header first (for `output::table`).
pub fn table<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Vec<Vec<String>> {
    let mut lines = vec![vec![
        "SERVICE".to_string(),
        "URL".to_string(),
        "ADDRESS:PORT".to_string(),
        "STATE".to_string(),
        "HEALTH".to_string(),
    ]];
    for r in rows {
        let ports = host_ports(&r.ports);
        lines.push(vec![
            r.service.clone(),
            r.url.clone().unwrap_or_else(|| "-".into()),
            if ports.is_empty() {
                "-".into()
            } else {
                ports.join(",")
            },
            r.state.clone(),
            r.health.clone(),
        ]);
    }
    lines
}

/// The markdown summary of an `up` for GitHub Actions' step summary: the result, and a table of
/// every unit with its URL, ports, state, health and how long it took (from the recorded spans
/// of services and the cluster; `-` for a unit this run did not bring up).
pub fn markdown(rows: &[&Row], spans: &[Finished], result: &str) -> String {
    use crate::output::github::cell;
    let mut text = format!("### devenv up: {}\n\n", cell(result));
    if !rows.is_empty() {
        text.push_str("| service | URL | ports | state | health | time |\n");
        text.push_str("|---|---|---|---|---|---|\n");
        for r in rows {
            let kind = if r.service == super::cluster::UNIT {
                Kind::Cluster
            } else {
                Kind::Service
            };
            let time = spans
                .iter()
                .find(|s| s.kind == kind && s.name == r.service)
                .map_or_else(
                    || "-".to_string(),
                    |s| format!("{:.1}s", s.duration.as_secs_f64()),
                );
            let ports = host_ports(&r.ports);
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                cell(&r.service),
                r.url.as_deref().map_or_else(|| "-".to_string(), cell),
                if ports.is_empty() {
                    "-".to_string()
                } else {
                    cell(&ports.join(", "))
                },
                cell(&r.state),
                cell(&r.health),
                time
            ));
        }
        text.push('\n');
    }
    let steps: Vec<String> = spans
        .iter()
        .filter(|s| s.kind == Kind::Step)
        .map(|s| format!("{} {:.1}s", s.name, s.duration.as_secs_f64()))
        .collect();
    if !steps.is_empty() {
        text.push_str(&format!("Steps: {}\n\n", steps.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_summary_table_shows_urls_ports_state_and_health() {
        let services = Config::default().services();
        let status = |service: &str, state, health: &str, ports: &[&str]| ContainerStatus {
            id: format!("id-{service}"),
            name: format!("macula-{service}"),
            service: Some(service.to_string()),
            state,
            health: health.to_string(),
            ports: ports.iter().map(|p| p.to_string()).collect(),
        };
        let containers = [
            status(
                "registry",
                RunState::Running,
                "healthy",
                &["127.0.0.1:5001->5000/tcp"],
            ),
            status("pdns-db", RunState::Running, "starting", &[]),
            status(
                "pdns",
                RunState::Running,
                "healthy",
                &["127.0.0.1:5300->5300/tcp", "127.0.0.1:5300->5300/udp"],
            ),
            status(
                "grafana",
                RunState::Exited,
                "unhealthy",
                &["127.0.0.1:3000->3000/tcp"],
            ),
            status(
                "timescaledb",
                RunState::Running,
                "healthy",
                &["127.0.0.1:5432->5432/tcp"],
            ),
            status(
                "gateway",
                RunState::Running,
                "healthy",
                &["127.0.0.1:80->80/tcp"],
            ),
        ];
        // pdns-db's healthcheck passed just now: Docker's "starting" lags.
        let confirmed = BTreeSet::from(["pdns-db".to_string()]);
        let rows = rows(&services, &containers, &confirmed);
        assert!(rows.iter().find(|r| r.service == "pdns-db").unwrap().ok());
        insta::assert_snapshot!(crate::output::table(&table(&rows)));
    }

    #[test]
    fn a_running_service_of_ones_own_without_a_healthcheck_is_up_and_a_stopped_one_is_not() {
        let config = crate::config::load_str(
            "services:\n  worker:\n    image: example.com/worker:1\n",
            "t",
        )
        .unwrap();
        let services = config.services();
        let worker = |state| ContainerStatus {
            id: "id".into(),
            name: "macula-worker".into(),
            service: Some("worker".into()),
            state,
            health: "none".into(),
            ports: Vec::new(),
        };
        let row = |state| {
            rows(&services, &[worker(state)], &BTreeSet::new())
                .into_iter()
                .find(|r| r.service == "worker")
                .unwrap()
        };
        let up = row(RunState::Running);
        assert!(up.ok());
        assert_eq!(up.health, NO_CHECK);
        assert!(!row(RunState::Exited).ok());
        // A built-in with Docker's "none" (its healthcheck lost) is not up.
        let gateway = ContainerStatus {
            service: Some("gateway".into()),
            ..worker(RunState::Running)
        };
        let rows = rows(&services, &[gateway], &BTreeSet::new());
        assert!(!rows.iter().find(|r| r.service == "gateway").unwrap().ok());
    }

    #[test]
    fn without_the_gateway_a_url_is_the_routes_own_published_port_or_none() {
        let mut config = Config::default();
        let services = crate::converge::plan::select(&config, &["pdns".to_string()]).unwrap();
        assert!(!services.iter().any(|s| s.name == "gateway"));
        let pdns = services.iter().find(|s| s.name == "pdns").unwrap();
        // Its API is unpublished by default; its DNS port is no web page.
        assert_eq!(url(&services, pdns), None);
        config.services.insert(
            "pdns".into(),
            crate::config::ServiceSettings {
                ports: [("api".to_string(), 18081.into())].into(),
                ..Default::default()
            },
        );
        let services = crate::converge::plan::select(&config, &["pdns".to_string()]).unwrap();
        let pdns = services.iter().find(|s| s.name == "pdns").unwrap();
        assert_eq!(
            url(&services, pdns).as_deref(),
            Some("http://127.0.0.1:18081/")
        );
        // With the gateway: the hostname.
        let all = config.services();
        let pdns = all.iter().find(|s| s.name == "pdns").unwrap();
        assert_eq!(url(&all, pdns).as_deref(), Some("http://dns.macula.local/"));
    }

    #[test]
    fn the_ports_column_keeps_the_protocol_and_never_repeats() {
        let ports = [
            "127.0.0.1:5300->5300/tcp",
            "127.0.0.1:5300->5300/udp",
            "127.0.0.1:5300->5300/tcp",
        ]
        .map(String::from);
        assert_eq!(
            host_ports(&ports),
            ["127.0.0.1:5300/tcp", "127.0.0.1:5300/udp"]
        );
        // The cluster's rows give the host side already: kept, not given a second protocol.
        let cluster = ["127.0.0.1:4433/udp", "127.0.0.2:443/tcp"].map(String::from);
        assert_eq!(host_ports(&cluster), cluster);
    }
}
