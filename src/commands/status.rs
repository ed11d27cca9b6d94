//! `devenv status`: each service's container state, health, published ports and URL; exit 4
//! when one is missing, stopped or unhealthy, so CI can gate on it.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::{Service, ServiceKind};
use crate::docker::{ContainerStatus, Engine, health, runtime};
use crate::error::Failure;
use crate::output::{Format, Printer, table};
use crate::plan::RunState;

use super::Settings;

/// One line of the status (and of `up`'s summary).
#[derive(Debug, Clone, Serialize)]
pub(super) struct Row {
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
pub(super) fn rows(
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

/// Print rows as a table on stdout.
pub(super) fn print_table(printer: &Printer, rows: &[Row]) -> anyhow::Result<()> {
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
    printer.data(table(&lines))?;
    Ok(())
}

pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let loaded = settings.load_config()?;
    let config = &loaded.config;
    let services = config.services();
    let (containers, confirmed) = runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let containers = engine.project_containers(&config.name).await?;
        // Docker reports "starting" until its first probe, an interval after the start; ask
        // the healthcheck itself rather than report a ready service as not yet healthy.
        let probes = containers
            .iter()
            .filter(|c| c.state == RunState::Running && c.health == "starting")
            .filter_map(|c| {
                let service = services
                    .iter()
                    .find(|s| Some(&s.name) == c.service.as_ref())?;
                let engine = &engine;
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
        anyhow::Ok((containers, confirmed))
    })?;
    let rows = rows(&services, &containers, &confirmed);
    let bad: Vec<&Row> = rows.iter().filter(|r| !r.ok()).collect();
    let p = &settings.printer;
    if p.format == Format::Json {
        p.json(&serde_json::json!({
            "name": config.name,
            "healthy": bad.is_empty(),
            "services": rows,
        }))?;
    } else {
        print_table(p, &rows)?;
    }
    if bad.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = bad
        .iter()
        .map(|r| format!("{} ({}, {})", r.service, r.state, r.health))
        .collect();
    Err(Failure::check_failed(format!("not healthy: {}", names.join(", "))).into())
}
