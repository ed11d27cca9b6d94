//! Prometheus's `prometheus.yml`: every enabled service that exposes metrics, scraped by its
//! name on the infrastructure network, or by the name its definition gives on the network it
//! is scraped on (the registry's debug listener, on the internal metrics network); port and
//! path come from the definition. Prometheus scrapes itself on localhost.
//!
//! Not for: Prometheus's container (its definition in `config`) or other tools' files.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Artifact, generated_header, to_yaml};
use crate::config::{Config, ConfigFile, Service};

/// `prometheus.yml` (the fields devenv sets).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrometheusConfig {
    pub global: PrometheusGlobal,
    pub scrape_configs: Vec<ScrapeConfig>,
}

/// Prometheus's `global` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrometheusGlobal {
    pub scrape_interval: String,
    pub evaluation_interval: String,
    pub external_labels: BTreeMap<String, String>,
}

/// One scrape job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub metrics_path: String,
    pub static_configs: Vec<StaticConfig>,
}

/// Fixed targets of a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// The scrape config: every enabled service that exposes metrics, by its name on the
/// infrastructure network; Prometheus scrapes itself on localhost.
pub fn prometheus(config: &Config, services: &[Service]) -> PrometheusConfig {
    let scrape_configs = services
        .iter()
        .filter_map(|s| {
            let scrape = s.metrics.as_ref()?;
            let host = if s.name == "prometheus" {
                "localhost"
            } else {
                scrape.host.as_str()
            };
            Some(ScrapeConfig {
                job_name: s.name.clone(),
                metrics_path: scrape.path.clone(),
                static_configs: vec![StaticConfig {
                    targets: vec![format!("{host}:{}", scrape.port)],
                    labels: BTreeMap::from([
                        ("container".to_string(), s.container_name.clone()),
                        ("tier".to_string(), format!("{:?}", s.tier).to_lowercase()),
                    ]),
                }],
            })
        })
        .collect();
    PrometheusConfig {
        global: PrometheusGlobal {
            scrape_interval: "15s".into(),
            evaluation_interval: "15s".into(),
            external_labels: BTreeMap::from([("devenv".to_string(), config.name.clone())]),
        },
        scrape_configs,
    }
}

/// `prometheus.yml`, when Prometheus is enabled.
pub fn render(config: &Config, services: &[Service]) -> anyhow::Result<Option<Artifact>> {
    if !services.iter().any(|s| s.name == "prometheus") {
        return Ok(None);
    }
    let text = to_yaml(&generated_header("#"), &prometheus(config, services))?;
    Ok(Some(Artifact::config(ConfigFile::Prometheus, text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_scrapes_every_service_with_metrics_and_itself() {
        let config = Config::default();
        let services = config.services();
        let p = prometheus(&config, &services);
        let jobs: Vec<_> = p
            .scrape_configs
            .iter()
            .map(|j| j.job_name.as_str())
            .collect();
        let expected: Vec<_> = services
            .iter()
            .filter(|s| s.metrics.is_some())
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(jobs, expected);
        assert!(jobs.contains(&"prometheus") && jobs.contains(&"pdns"));
        let own = p
            .scrape_configs
            .iter()
            .find(|j| j.job_name == "prometheus")
            .unwrap();
        assert_eq!(own.static_configs[0].targets, ["localhost:9090"]);
        let registry = p
            .scrape_configs
            .iter()
            .find(|j| j.job_name == "registry")
            .unwrap();
        assert_eq!(
            registry.static_configs[0].targets,
            ["registry-debug:5001"],
            "the registry's debug listener, by its name on the metrics network"
        );
    }
}
