//! The KEP-1755 ConfigMap `kube-public/local-registry-hosting`: how tools such as Tilt find
//! the local registry — the name to push under from the host, and the name the nodes' container
//! runtime and pods use to reach it on the `kind` network.
//!
//! Not for: the containerd host files on the nodes (`render::kind::registry_hosts` and the
//! cluster driver) or the registry container itself (`config::catalog`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};

use super::{PUBLIC_NAMESPACE, meta};
use crate::config::Config;

/// The ConfigMap's name, fixed by KEP-1755.
pub const NAME: &str = "local-registry-hosting";
/// The data key of version 1 of the format.
pub const KEY: &str = "localRegistryHosting.v1";
/// The port name of the registry's API in its service definition.
const API_PORT: &str = "api";
/// Where a user reads how the registry is wired into a KinD cluster.
pub const HELP: &str = "https://kind.sigs.k8s.io/docs/user/local-registry/";

/// `LocalRegistryHostingV1` of KEP-1755.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalRegistryHostingV1 {
    /// Where the developer's machine pushes (`localhost:5001`).
    pub host: String,
    /// What the nodes' container runtime pulls from (the registry container on the `kind`
    /// network; containerd reaches it through its host file).
    pub host_from_container_runtime: String,
    /// What pods reach the registry at, on the cluster's network.
    pub host_from_cluster_network: String,
    /// Documentation for the registry setup.
    pub help: String,
}

/// The registry's hosting facts, when the registry service is enabled: `host` is
/// `localhost:<published port>` (or, with the API unpublished, its first hostname through the
/// gateway), the in-cluster names are `<container name>:<container port>` on the `kind` network.
pub fn hosting(config: &Config) -> Option<LocalRegistryHostingV1> {
    let registry = config
        .services()
        .into_iter()
        .find(|s| s.name == "registry")?;
    let published = registry.ports.iter().find(|p| p.name == API_PORT);
    // The API's container port: from its published binding, else from the route that leads
    // to it. With neither there is no fact to publish.
    let container_port = published
        .map(|p| p.container_port)
        .or_else(|| registry.routes.first().map(|r| r.container_port))?;
    let host = match published {
        Some(p) => format!("localhost:{}", p.host_port),
        None => registry.routes.first()?.hostname.clone(),
    };
    let inside = format!("{}:{container_port}", registry.container_name);
    Some(LocalRegistryHostingV1 {
        host,
        host_from_container_runtime: inside.clone(),
        host_from_cluster_network: inside,
        help: HELP.to_string(),
    })
}

/// The ConfigMap, when there is a registry.
pub fn local_registry_hosting(config: &Config) -> Option<ConfigMap> {
    let hosting = hosting(config)?;
    let text = serde_saphyr::to_string(&hosting).expect("plain strings serialize");
    Some(ConfigMap {
        metadata: meta(config, NAME, Some(PUBLIC_NAMESPACE)),
        data: Some(BTreeMap::from([(KEY.to_string(), text)])),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceSettings;

    #[test]
    fn all_four_fields_from_the_published_port_and_the_container_name() {
        let cm = local_registry_hosting(&Config::default()).unwrap();
        assert_eq!(cm.metadata.namespace.as_deref(), Some("kube-public"));
        let text = &cm.data.unwrap()[KEY];
        let parsed: LocalRegistryHostingV1 = serde_saphyr::from_str(text).unwrap();
        assert_eq!(
            parsed,
            LocalRegistryHostingV1 {
                host: "localhost:5001".into(),
                host_from_container_runtime: "macula-registry:5000".into(),
                host_from_cluster_network: "macula-registry:5000".into(),
                help: HELP.into(),
            }
        );
    }

    #[test]
    fn follows_the_port_setting_and_the_registry_switch() {
        let mut config = Config::default();
        let settings = |port: u16| ServiceSettings {
            ports: [("api".to_string(), port.into())].into(),
            ..ServiceSettings::default()
        };
        config.services.insert("registry".into(), settings(5555));
        assert_eq!(hosting(&config).unwrap().host, "localhost:5555");
        config.services.insert("registry".into(), settings(0));
        let unpublished = hosting(&config).unwrap();
        assert_eq!(unpublished.host, "registry.macula.local");
        assert_eq!(
            unpublished.host_from_cluster_network,
            "macula-registry:5000"
        );
        config.tiers.core = false;
        assert!(local_registry_hosting(&config).is_none());
    }
}
