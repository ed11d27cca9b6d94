//! Grafana's datasource provisioning: Prometheus (the default), Loki and Tempo, those of them
//! that are enabled, each at its service's name and port.
//!
//! Not for: Grafana's container (its definition in `config`) or dashboards.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Artifact, generated_header, to_yaml};
use crate::config::{ConfigFile, Service};

/// Grafana's datasource provisioning file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaProvisioning {
    pub api_version: u32,
    /// Removes provisioned datasources that left this file (a service was disabled).
    pub prune: bool,
    pub datasources: Vec<GrafanaDatasource>,
}

/// One provisioned datasource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaDatasource {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub uid: String,
    pub access: String,
    pub url: String,
    pub is_default: bool,
    pub editable: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub json_data: BTreeMap<String, serde_json::Value>,
}

/// Prometheus (the default), Loki and Tempo, those of them that are enabled; Tempo links its
/// traces to Loki's logs and Prometheus's service graph when those are there.
pub fn grafana(services: &[Service]) -> GrafanaProvisioning {
    let service = |name: &str| services.iter().find(|s| s.name == name);
    let enabled = |name: &str| service(name).is_some();
    // The service's name is also its datasource type and its host on the network.
    let source = |title: &str, s: &Service| GrafanaDatasource {
        name: title.to_string(),
        kind: s.name.clone(),
        uid: s.name.clone(),
        access: "proxy".into(),
        url: format!("http://{}:{}", s.name, s.port("http")),
        is_default: s.name == "prometheus",
        editable: false,
        json_data: BTreeMap::new(),
    };
    let mut datasources = Vec::new();
    if let Some(prometheus) = service("prometheus") {
        datasources.push(source("Prometheus", prometheus));
    }
    if let Some(loki) = service("loki") {
        datasources.push(source("Loki", loki));
    }
    if let Some(tempo) = service("tempo") {
        let mut tempo = source("Tempo", tempo);
        tempo
            .json_data
            .insert("nodeGraph".into(), serde_json::json!({"enabled": true}));
        if enabled("loki") {
            tempo.json_data.insert(
                "tracesToLogsV2".into(),
                serde_json::json!({"datasourceUid": "loki", "filterByTraceID": true}),
            );
        }
        if enabled("prometheus") {
            tempo.json_data.insert(
                "serviceMap".into(),
                serde_json::json!({"datasourceUid": "prometheus"}),
            );
        }
        datasources.push(tempo);
    }
    GrafanaProvisioning {
        api_version: 1,
        prune: true,
        datasources,
    }
}

/// The provisioning file, when Grafana is enabled.
pub fn render(services: &[Service]) -> anyhow::Result<Option<Artifact>> {
    if !services.iter().any(|s| s.name == "grafana") {
        return Ok(None);
    }
    let text = to_yaml(&generated_header("#"), &grafana(services))?;
    Ok(Some(Artifact::config(ConfigFile::GrafanaDatasources, text)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ServiceSettings};

    #[test]
    fn grafana_provisions_only_enabled_datasources_with_prometheus_default() {
        let mut config = Config::default();
        let all = grafana(&config.services());
        let names: Vec<_> = all.datasources.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["Prometheus", "Loki", "Tempo"]);
        assert_eq!(all.datasources.iter().filter(|d| d.is_default).count(), 1);
        config.services.insert(
            "loki".into(),
            ServiceSettings {
                enabled: Some(false),
                ..Default::default()
            },
        );
        let some = grafana(&config.services());
        assert_eq!(some.datasources.len(), 2);
        assert!(!some.datasources[1].json_data.contains_key("tracesToLogsV2"));
    }
}
