//! `devenv status`: each service's container state, health, published ports and URL, and the
//! cluster's links (nodes Ready, the ingress, the registry wiring, the names for pods); exit 4
//! when one is missing, stopped or unhealthy, so CI can gate on it. A script over
//! [`crate::converge::summary::status`] and [`crate::converge::cluster::status`].

use crate::converge::{
    self,
    summary::{self, Row},
};
use crate::docker::Engine;
use crate::error::Failure;
use crate::output::{Format, table};

use super::Settings;

pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let loaded = settings.load_environment(false)?;
    let config = &loaded.config;
    let services = config.services();
    let kubeconfig = settings.kubeconfig(config)?;
    let rows = settings.runtime.block_on(async {
        let engine = Engine::connect().await?;
        let mut rows = summary::status(&engine, &config.name, &services).await?;
        rows.extend(converge::cluster::status(&engine, config, &kubeconfig).await);
        anyhow::Ok(rows)
    })?;
    let bad: Vec<&Row> = rows.iter().filter(|r| !r.ok()).collect();
    let p = &settings.printer;
    if p.format == Format::Json {
        p.json(&serde_json::json!({
            "name": config.name,
            "healthy": bad.is_empty(),
            "services": rows,
        }))?;
    } else {
        p.data(table(&summary::table(&rows)))?;
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
