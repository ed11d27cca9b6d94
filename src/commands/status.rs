//! `devenv status`: each service's container state, health, published ports and URL, and the
//! cluster's links (nodes Ready, the ingress, the registry wiring, the names for pods), and the
//! resolver (unless `dns.enabled: false`); exit 4 when one is missing, stopped or unhealthy, so
//! CI can gate on it. A script over [`crate::converge::summary::status`],
//! [`crate::converge::cluster::status`] and the resolver's run file.

use serde::Serialize;

use crate::cluster::registry;
use crate::config::{Config, Service, mirror_of};
use crate::converge::{
    self,
    summary::{self, Row},
};
use crate::dns::{RunFile, client, service};
use crate::docker::Engine;
use crate::error::Failure;
use crate::output::{Format, table};
use crate::state;

use super::Settings;

pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let loaded = settings.load_environment(false)?;
    let config = &loaded.config;
    let services = config.services();
    let kubeconfig = settings.kubeconfig(config)?;
    let rows = settings.runtime.block_on(async {
        let engine = Engine::connect().await?;
        let mut rows = summary::status(&engine, &config.name, &services).await?;
        let caches = mirrors(&engine, config, &services, &rows).await;
        rows.extend(converge::cluster::status(&engine, config, &kubeconfig).await);
        if config.dns.enabled {
            rows.push(resolver(config).await);
        }
        anyhow::Ok((rows, caches))
    })?;
    let (rows, caches) = rows;
    let bad: Vec<&Row> = rows.iter().filter(|r| !r.ok()).collect();
    let p = &settings.printer;
    if p.format == Format::Json {
        p.json(&serde_json::json!({
            "name": config.name,
            "healthy": bad.is_empty(),
            "services": rows,
            "mirrors": caches,
        }))?;
    } else {
        // A mirror has no URL (only the nodes reach it): its column says what it caches.
        let mut shown = rows.clone();
        for cache in &caches {
            if let Some(row) = shown.iter_mut().find(|r| r.service == cache.service) {
                row.url = Some(cache.to_string());
            }
        }
        p.data(table(&summary::table(&shown)))?;
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

/// A running mirror: what it mirrors, from where, and its cache counts when its registry
/// reports them.
#[derive(Debug, Clone, Serialize)]
struct Cache {
    service: String,
    registry: String,
    remote: String,
    #[serde(flatten)]
    counts: Option<registry::MirrorCounts>,
}

impl std::fmt::Display for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mirrors {} ({})", self.registry, self.remote)?;
        if let Some(c) = self.counts {
            write!(f, ": {} hits, {} misses", c.hits, c.misses)?;
        }
        Ok(())
    }
}

/// Every running mirror's [`Cache`].
async fn mirrors(
    engine: &Engine,
    config: &Config,
    services: &[Service],
    rows: &[Row],
) -> Vec<Cache> {
    let mut out = Vec::new();
    for service in services {
        let Some((registry, remote)) = mirror_of(config, &service.name) else {
            continue;
        };
        if !rows
            .iter()
            .any(|r| r.service == service.name && r.state == "running")
        {
            continue;
        }
        out.push(Cache {
            service: service.name.clone(),
            registry: registry.to_string(),
            remote,
            counts: registry::mirror_counts(engine, service).await,
        });
    }
    out
}

/// The resolver's row: running and answering for the domain is healthy.
async fn resolver(config: &Config) -> Row {
    let dir = state::dir(&config.name).ok();
    let run = dir.as_deref().and_then(RunFile::running);
    let Some(run) = run else {
        return Row {
            service: "resolver".into(),
            url: None,
            ports: Vec::new(),
            state: "missing".into(),
            health: "-".into(),
        };
    };
    let answering = client::answers_for(run.udp, &config.domain).await;
    let by = match dir.as_deref() {
        Some(d) if service::started_by_up(d, &run) => ", started by up",
        _ => "",
    };
    Row {
        service: "resolver".into(),
        url: Some(format!("dns://{} (pid {}{by})", run.udp, run.pid)),
        ports: vec![
            format!("{}->dns/udp", run.udp),
            format!("{}->dns/tcp", run.tcp),
        ],
        state: "running".into(),
        health: if answering { "healthy" } else { "unhealthy" }.into(),
    }
}
