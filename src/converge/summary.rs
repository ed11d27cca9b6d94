//! Step: what the services look like now, one [`Row`] each — `up`'s summary and `devenv
//! status` share it — and the table they are printed as.
//!
//! Not for: printing (the commands do) or deciding the exit code.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::{Service, ServiceKind};
use crate::docker::observed::RunState;
use crate::docker::{ContainerStatus, Engine, health};

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
        self.state == "running" && self.health == "healthy"
    }
}

/// Where a person reaches `service`: through the gateway by hostname where there is one,
/// else its first published port.
fn url(services: &[Service], service: &Service) -> Option<String> {
    let gateway = services
        .iter()
        .find(|s| s.name == "gateway")
        .and_then(|g| g.ports.iter().find(|p| p.name == "http"));
    let route = service.routes.first();
    match (route, gateway) {
        (Some(r), Some(g)) if r.kind != ServiceKind::Tcp => Some(if g.host_port == 80 {
            format!("http://{}/", r.hostname)
        } else {
            format!("http://{}:{}/", r.hostname, g.host_port)
        }),
        (Some(r), _) if r.kind == ServiceKind::Tcp => service
            .ports
            .first()
            .map(|p| format!("{}:{}", r.hostname, p.host_port)),
        _ => service.ports.first().map(|p| {
            let scheme = if service.routes.iter().any(|r| r.kind == ServiceKind::Tcp) {
                ""
            } else {
                "http://"
            };
            format!("{scheme}{}:{}/", p.host_ip, p.host_port)
        }),
    }
}

fn state_word(state: RunState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

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
/// asked rather than a ready service reported as not yet healthy.
pub async fn status(
    engine: &Engine,
    project: &str,
    services: &[Service],
) -> anyhow::Result<Vec<Row>> {
    let containers = engine.project_containers(project).await?;
    let probes = containers
        .iter()
        .filter(|c| c.state == RunState::Running && c.health == "starting")
        .filter_map(|c| {
            let service = services
                .iter()
                .find(|s| Some(&s.name) == c.service.as_ref())?;
            Some(async move {
                let (ok, _) = health::probe(engine, &c.id, &service.healthcheck).await;
                ok.then(|| service.name.clone())
            })
        });
    let confirmed: BTreeSet<String> = futures_util::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect();
    Ok(rows(services, &containers, &confirmed))
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
        let ports: Vec<String> = r
            .ports
            .iter()
            .map(|p| p.split("->").next().unwrap_or(p).to_string())
            .collect();
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
}
