//! The registry, wired into a kind cluster: containerd's host files for every name the
//! registry goes by (`localhost:<port>`, `registry.<domain>`, `<name>-registry:5000`) in every
//! Kubernetes node, and the registry container on the `kind` network so the nodes reach it.
//!
//! The files are those `devenv render` writes under `kind/registry-hosts/` (one source,
//! `render::kind`); on a node each is `/etc/containerd/certs.d/<registry>/hosts.toml`, read by
//! containerd on each pull since the cluster config sets its `config_path`. kind's external
//! load balancer runs no containerd and gets none. Wiring is idempotent: a file already there
//! with the same contents is not written again, so it runs after creation and on every `up`.
//!
//! Not for: the KEP-1755 ConfigMap (a Kubernetes object, applied with the others), nor
//! creating the registry container (the infrastructure's `up`).

use anyhow::Context as _;

use crate::config::{Config, KIND_NETWORK, Service};
use crate::docker::Engine;
use crate::docker::nodes::Node;
use crate::docker::observed::RunState;
use crate::error::Failure;
use crate::render::kind::CERTS_DIR;

/// One containerd host file as it goes onto a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    /// The registry name as image references use it (`localhost:5001`).
    pub registry: String,
    /// Its absolute path on a node.
    pub path: String,
    pub contents: String,
}

/// The host files every node needs for `config`: the registry's names, then the mirrored
/// registries (none without a registry or a mirror).
pub fn host_files(config: &Config) -> Vec<HostFile> {
    crate::render::kind::host_files(config)
        .into_iter()
        .map(|(registry, _, contents)| HostFile {
            path: format!("{CERTS_DIR}/{registry}/hosts.toml"),
            contents,
            registry,
        })
        .collect()
}

/// What wiring did on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeWiring {
    pub node: String,
    /// Registries whose host file was written (missing or different before).
    pub written: Vec<String>,
    /// Registries whose host file was already right.
    pub unchanged: Vec<String>,
}

/// What wiring did on a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wiring {
    /// The Kubernetes nodes, by name.
    pub nodes: Vec<NodeWiring>,
    /// Node containers that get no host files (the external load balancer).
    pub skipped: Vec<String>,
    /// Whether the registry container was attached to the `kind` network now.
    pub attached: bool,
}

/// The Kubernetes nodes of `cluster` (all running), and the containers that are not nodes.
async fn kubernetes_nodes(
    engine: &Engine,
    cluster: &str,
) -> anyhow::Result<(Vec<Node>, Vec<String>)> {
    let all = engine.kind_nodes(cluster).await?;
    if all.is_empty() {
        return Err(Failure::environment(
            format!("kind cluster {cluster} has no node containers"),
            Some("create it first (`devenv up`)".to_string()),
        )
        .into());
    }
    let (nodes, others): (Vec<Node>, Vec<Node>) =
        all.into_iter().partition(|n| n.role.is_kubernetes_node());
    Ok((nodes, others.into_iter().map(|n| n.name).collect()))
}

/// Wire the registry of `config` into kind cluster `cluster`: attach the registry container
/// to the `kind` network and write every host file into every Kubernetes node (each node must
/// be running), skipping files already right.
pub async fn wire(engine: &Engine, config: &Config, cluster: &str) -> anyhow::Result<Wiring> {
    let files = host_files(config);
    // The registry and the mirrors: what the nodes pull from over the `kind` network.
    let pulled: Vec<_> = config
        .services()
        .into_iter()
        .filter(|s| s.name == "registry" || crate::config::is_mirror(&s.name))
        .collect();
    if pulled.is_empty() {
        return Ok(Wiring::default());
    }
    let (nodes, skipped) = kubernetes_nodes(engine, cluster).await?;
    if let Some(stopped) = nodes.iter().find(|n| n.state != RunState::Running) {
        return Err(Failure::environment(
            format!(
                "kind node {} is not running ({:?}), so the registry cannot be wired into it",
                stopped.name, stopped.state
            ),
            Some("start the cluster's nodes first (`devenv up` does)".to_string()),
        )
        .into());
    }
    let mut attached = false;
    for service in &pulled {
        attached |= engine
            .connect_to_network(&service.container_name, KIND_NETWORK)
            .await
            .map_err(|e| match crate::error::failure(&e) {
                // The container is not there at all: the infrastructure is not up.
                Some(_) => Failure::environment(
                    format!(
                        "the {} container {} does not exist, so the cluster cannot pull from it",
                        service.name, service.container_name
                    ),
                    Some("bring the infrastructure up first (`devenv up`)".to_string()),
                )
                .into(),
                None => e.context(format!(
                    "attaching the {} container {} to the {KIND_NETWORK} network",
                    service.name, service.container_name
                )),
            })?;
    }
    let per_node = futures_util::future::try_join_all(nodes.iter().map(|node| {
        let files = &files;
        async move {
            let mut done = NodeWiring {
                node: node.name.clone(),
                ..Default::default()
            };
            for file in files {
                let present = engine.read_file(&node.name, &file.path).await?;
                if present.as_deref() == Some(file.contents.as_bytes()) {
                    done.unchanged.push(file.registry.clone());
                } else {
                    engine
                        .write_file(&node.name, &file.path, file.contents.as_bytes())
                        .await?;
                    done.written.push(file.registry.clone());
                }
            }
            anyhow::Ok(done)
        }
    }))
    .await
    .with_context(|| format!("wiring the registry into kind cluster {cluster}"))?;
    Ok(Wiring {
        nodes: per_node,
        skipped,
        attached,
    })
}

/// What is missing of the wiring, for `status`: per Kubernetes node, the registries whose host
/// file is absent or different (nodes with nothing missing are left out). Reads only; stopped
/// nodes are read too.
pub async fn missing(
    engine: &Engine,
    config: &Config,
    cluster: &str,
) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let files = host_files(config);
    let (nodes, _) = kubernetes_nodes(engine, cluster).await?;
    let mut out = Vec::new();
    for node in &nodes {
        let mut absent = Vec::new();
        for file in &files {
            let present = engine.read_file(&node.name, &file.path).await?;
            if present.as_deref() != Some(file.contents.as_bytes()) {
                absent.push(file.registry.clone());
            }
        }
        if !absent.is_empty() {
            out.push((node.name.clone(), absent));
        }
    }
    Ok(out)
}

/// A mirror's cache counts, summed over blobs and manifests, as its registry reports them at
/// `/debug/vars` on its debug listener: Distribution's `registry.proxy` expvar map (in 2.8 and
/// 3.x alike), `{"blobs": {"Hits": .., "Misses": ..}, "manifests": {..}}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MirrorCounts {
    /// Answered from the cache.
    pub hits: u64,
    /// Fetched from the registry mirrored.
    pub misses: u64,
}

/// The counts in a `/debug/vars` document; `None` when it has no proxy map.
pub fn parse_counts(vars: &str) -> Option<MirrorCounts> {
    let doc: serde_json::Value = serde_json::from_str(vars).ok()?;
    let proxy = doc.get("registry")?.get("proxy")?;
    let mut counts = MirrorCounts::default();
    for kind in ["blobs", "manifests"] {
        let m = proxy.get(kind)?;
        counts.hits += m.get("Hits")?.as_u64()?;
        counts.misses += m.get("Misses")?.as_u64()?;
    }
    Some(counts)
}

/// The cache counts of running mirror `service`, read inside its container (its debug
/// listener is on the container's loopback only); `None` when they cannot be read.
pub async fn mirror_counts(engine: &Engine, service: &Service) -> Option<MirrorCounts> {
    let url = crate::config::mirror_debug_url("/debug/vars");
    let cmd = ["wget", "-q", "-O", "-", url.as_str()];
    let out = engine.exec(&service.container_name, &cmd).await.ok()?;
    if out.code != 0 {
        return None;
    }
    parse_counts(&out.output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_counts_are_read_from_the_proxy_map_of_debug_vars() {
        let vars = r#"{"cmdline": ["registry"], "registry": {"proxy": {
            "blobs": {"Requests": 4, "Hits": 3, "Misses": 1, "BytesPulled": 10, "BytesPushed": 40},
            "manifests": {"Requests": 2, "Hits": 1, "Misses": 1, "BytesPulled": 5, "BytesPushed": 10}}}}"#;
        assert_eq!(
            parse_counts(vars),
            Some(MirrorCounts { hits: 4, misses: 2 })
        );
        assert_eq!(parse_counts(r#"{"registry": {}}"#), None);
        assert_eq!(parse_counts("not json"), None);
    }

    #[test]
    fn one_file_per_registry_name_under_certs_d() {
        let files = host_files(&Config::default());
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/containerd/certs.d/localhost:5001/hosts.toml",
                "/etc/containerd/certs.d/registry.macula.local/hosts.toml",
                "/etc/containerd/certs.d/macula-registry:5000/hosts.toml",
                "/etc/containerd/certs.d/docker.io/hosts.toml",
            ]
        );
        assert!(files[..3].iter().all(|f| {
            f.contents
                .contains("server = \"http://macula-registry:5000\"")
        }));
        assert!(
            files[3]
                .contents
                .contains("server = \"https://registry-1.docker.io\"")
        );
    }
}
