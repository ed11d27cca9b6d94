//! The KinD cluster config (`kind/cluster.yaml`, KinD `v1alpha4`) and the containerd registry
//! host files every node needs so that `localhost:5001`, `registry.<domain>` and the registry's
//! own address on the `kind` network (`<name>-registry:5000`) pull from the registry container.
//!
//! How the host files reach the nodes: `cluster.yaml` points containerd's `config_path` at
//! [`CERTS_DIR`], and each file under `kind/registry-hosts/` goes to
//! `<CERTS_DIR>/<registry>/hosts.toml` on every node (not kind's external load balancer, which
//! runs no containerd). `devenv up` writes them (`cluster::registry`) after creating the
//! cluster and on every run; containerd reads the directory on each pull, so no restart is
//! needed. Each file's header also gives the commands to do it by hand. Not for: creating the
//! cluster or talking to the nodes.
//!
//! The `config_path` patch is sent once per containerd config version, each declaring its
//! `version`: since kind v0.32 a patch that declares a version is applied only to nodes whose
//! containerd config has that version (kind `pkg/internal/patch/toml.go`), and the CRI
//! registry settings live under a different plugin in each (`io.containerd.grpc.v1.cri` in
//! version 2, `io.containerd.cri.v1.images` in version 3). The node images of kind v0.33 carry a
//! version 2 config (containerd 2 reads and migrates it), so today the first applies; the
//! second keeps the cluster right on a node image whose config is version 3. Before v0.32 kind
//! merged every patch into every node, so the version 3 patch would turn a version 2 config
//! into a broken one: that is why kind below v0.32 is not supported (`cluster::kind`).
//!
//! The structs below model KinD's v1alpha4 types (the fields devenv uses), with
//! `deny_unknown_fields`, so a test can parse the output back and fail on any field KinD does
//! not have.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_saphyr::LitString;

use super::cluster::traefik::{QUIC_NODE_PORT, WEB, WEBSECURE};
use super::{Artifact, KIND_DIR, generated_header, to_yaml};
use crate::config::{Config, RoutingMode, Service};

/// KinD's `Cluster` (kind.x-k8s.io/v1alpha4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindCluster {
    pub kind: String,
    pub api_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub nodes: Vec<KindNode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<KindNetworking>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containerd_config_patches: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
}

/// KinD's `Node`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindNode {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_port_mappings: Vec<KindPortMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_mounts: Vec<KindMount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubeadm_config_patches: Vec<String>,
}

/// KinD's `PortMapping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindPortMapping {
    pub container_port: u16,
    pub host_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_address: Option<String>,
    /// `TCP`, `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// KinD's `Mount`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindMount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// KinD's `Networking` (the fields devenv sets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindNetworking {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_server_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<String>,
}

/// Where containerd looks for per-registry host files on every node.
pub const CERTS_DIR: &str = "/etc/containerd/certs.d";

/// The containerd config versions devenv patches, with the plugin that holds the CRI registry
/// settings in each (see the module's notes).
pub const CRI_REGISTRY_PLUGINS: [(u8, &str); 2] = [
    (2, "io.containerd.grpc.v1.cri"),
    (3, "io.containerd.cri.v1.images"),
];

/// The registries the nodes can pull from, each with the file name of its host file under
/// `kind/registry-hosts/` (`:` becomes `-`): (registry name as used in image references,
/// artifact file name). On a node, the file goes to `<CERTS_DIR>/<registry>/hosts.toml`.
///
/// `localhost:<port>` is there only when the registry's API is published on that host port
/// (`services.registry.ports.api`, 5001 by default): it is the name images are pushed under
/// from the host, so with nothing published there is nothing to pull under it. The registry's
/// hostnames (`registry.<domain>`) and its own address on the `kind` network
/// (`<name>-registry:5000`, what KEP-1755's `hostFromClusterNetwork` names) are always there.
/// No registry service, no host files.
pub fn registry_hosts(config: &Config) -> Vec<(String, String)> {
    let Some(registry) = registry_service(config) else {
        return Vec::new();
    };
    let file = |name: &str| format!("{}.toml", name.replace(':', "-"));
    let mut out = Vec::new();
    if let Some(port) = registry.ports.iter().find(|p| p.name == "api") {
        let name = format!("localhost:{}", port.host_port);
        out.push((name.clone(), file(&name)));
    }
    for route in &registry.routes {
        out.push((route.hostname.clone(), file(&route.hostname)));
    }
    if let Some(address) = registry_address(config) {
        out.push((address.clone(), file(&address)));
    }
    out
}

fn registry_service(config: &Config) -> Option<Service> {
    config.services().into_iter().find(|s| s.name == "registry")
}

/// The registry's address on the `kind` network, `<container name>:<API container port>`
/// (`macula-registry:5000`): how nodes reach it, by Docker's embedded DNS.
pub fn registry_address(config: &Config) -> Option<String> {
    let registry = registry_service(config)?;
    let port = *registry.container_ports.get("api")?;
    Some(format!("{}:{port}", registry.container_name))
}

/// The cluster config for `config`.
pub fn cluster(config: &Config) -> KindCluster {
    let c = &config.cluster;
    let listen = c.listen_address.to_string();
    let map = |container: u16, host: u16, addr: &str, proto: &str| KindPortMapping {
        container_port: container,
        host_port: host,
        listen_address: Some(addr.to_string()),
        protocol: Some(proto.to_string()),
    };
    // The node ports the ingress pod holds (see `cluster::traefik`).
    let (http, https, quic) = (WEB.host_port, WEBSECURE.host_port, QUIC_NODE_PORT);
    let mut ports = vec![
        map(http, c.http_port, &listen, "TCP"),
        map(https, c.https_port, &listen, "TCP"),
        map(quic, c.quic_port, &listen, "UDP"),
    ];
    if config.routing.mode == RoutingMode::SplitIp {
        // The clean URLs: HTTP and HTTPS on the standard ports, HTTP/3 on 443/udp and on the
        // QUIC port that Traefik advertises in `Alt-Svc` (see `traefik::Http3`).
        let apps = config.dns.applications.to_string();
        ports.push(map(http, 80, &apps, "TCP"));
        ports.push(map(https, 443, &apps, "TCP"));
        for port in config.application_quic_ports() {
            ports.push(map(quic, port, &apps, "UDP"));
        }
    }
    let mut nodes = vec![KindNode {
        role: "control-plane".into(),
        image: Some(c.node_image.clone()),
        labels: [("ingress-ready".to_string(), "true".to_string())].into(),
        extra_port_mappings: ports,
        extra_mounts: Vec::new(),
        kubeadm_config_patches: Vec::new(),
    }];
    for _ in 0..c.workers {
        nodes.push(KindNode {
            role: "worker".into(),
            image: Some(c.node_image.clone()),
            labels: BTreeMap::new(),
            extra_port_mappings: Vec::new(),
            extra_mounts: Vec::new(),
            kubeadm_config_patches: Vec::new(),
        });
    }
    let patches = if host_files(config).is_empty() {
        Vec::new()
    } else {
        CRI_REGISTRY_PLUGINS
            .iter()
            .map(|(version, plugin)| {
                format!(
                    "version = {version}\n[plugins.\"{plugin}\".registry]\n  config_path = \"{CERTS_DIR}\"\n"
                )
            })
            .collect()
    };
    KindCluster {
        kind: "Cluster".into(),
        api_version: "kind.x-k8s.io/v1alpha4".into(),
        name: Some(config.name.clone()),
        nodes,
        networking: Some(KindNetworking {
            api_server_address: Some("127.0.0.1".into()),
            ip_family: None,
        }),
        containerd_config_patches: patches,
        feature_gates: BTreeMap::new(),
    }
}

/// The containerd `hosts.toml` that sends pulls of `registry` to the registry container,
/// `file` being its name under `kind/registry-hosts/`. Its header says where it goes on a node
/// and how to put it there by hand.
pub fn hosts_toml(config: &Config, registry: &str, file: &str) -> String {
    let name = &config.name;
    let address = registry_address(config).unwrap_or_else(|| format!("{name}-registry:5000"));
    let upstream = format!("http://{address}");
    let what = format!("to the registry container ({address}) over the `kind` network.");
    host_file(config, registry, file, &what, &upstream, &[&upstream])
}

/// One mirrored registry as the nodes see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorHost {
    /// The registry as image references name it (`docker.io`).
    pub registry: String,
    /// The mirror on the `kind` network (`http://macula-mirror:5000`).
    pub mirror: String,
    /// Where the registry itself is (`https://registry-1.docker.io`, or `mirror.remote`).
    pub remote: String,
    /// Its file name under `kind/registry-hosts/`.
    pub file: String,
}

/// The registries the enabled mirrors stand in front of, in the order of
/// [`crate::config::MIRRORED`].
pub fn mirror_hosts(config: &Config) -> Vec<MirrorHost> {
    config
        .services()
        .into_iter()
        .filter_map(|s| {
            let (registry, remote) = crate::config::mirror_of(config, &s.name)?;
            let port = s.container_ports.get("api")?;
            Some(MirrorHost {
                registry: registry.to_string(),
                mirror: format!("http://{}:{port}", s.container_name),
                remote,
                file: format!("{registry}.toml"),
            })
        })
        .collect()
}

/// The containerd `hosts.toml` of a mirrored registry: the mirror first, and the registry
/// itself (`server`) when the mirror does not answer.
pub fn mirror_hosts_toml(config: &Config, m: &MirrorHost) -> String {
    let what = format!(
        "to the mirror ({}) over the `kind` network first, and to\n\
         # {} itself when the mirror does not answer.",
        m.mirror, m.remote
    );
    host_file(config, &m.registry, &m.file, &what, &m.remote, &[&m.mirror])
}

/// Every host file the nodes get: (registry as image references name it, file name under
/// `kind/registry-hosts/`, contents). The local registry's names, then the mirrored
/// registries.
pub fn host_files(config: &Config) -> Vec<(String, String, String)> {
    let local = registry_hosts(config).into_iter().map(|(registry, file)| {
        let contents = hosts_toml(config, &registry, &file);
        (registry, file, contents)
    });
    let mirrors = mirror_hosts(config).into_iter().map(|m| {
        let contents = mirror_hosts_toml(config, &m);
        (m.registry, m.file, contents)
    });
    local.chain(mirrors).collect()
}

/// A containerd host file: pulls of `registry` go to `hosts` in order, then to `server`.
fn host_file(
    config: &Config,
    registry: &str,
    file: &str,
    what: &str,
    server: &str,
    hosts: &[&str],
) -> String {
    let name = &config.name;
    let dir = format!("{CERTS_DIR}/{registry}");
    let mut out = generated_header("#");
    out.push_str(&format!(
        "#\n\
         # containerd's host file for images named {registry}/... on the KinD nodes: pulls go\n\
         # {what}\n\
         # On every node it is {dir}/hosts.toml\n\
         # (cluster.yaml sets containerd's config_path to {CERTS_DIR}).\n\
         # `devenv up` writes it there. By hand, after\n\
         # `kind create cluster --config kind/cluster.yaml`, from the directory that holds kind/:\n\
         #   for node in $(kind get nodes --name {name}); do\n\
         #     docker exec \"$node\" mkdir -p \"{dir}\"\n\
         #     docker cp \"{KIND_DIR}/registry-hosts/{file}\" \"$node:{dir}/hosts.toml\"\n\
         #   done\n\
         # (skip {name}-external-load-balancer, which a cluster with several control planes has).\n\
         server = \"{server}\"\n"
    ));
    for host in hosts {
        out.push_str(&format!(
            "\n[host.\"{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ));
    }
    out
}

/// The cluster config with its containerd patches as block scalars, so a person can read it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Readable<'a> {
    kind: &'a str,
    api_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    nodes: &'a [KindNode],
    #[serde(skip_serializing_if = "Option::is_none")]
    networking: Option<&'a KindNetworking>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    containerd_config_patches: Vec<LitString>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    feature_gates: &'a BTreeMap<String, bool>,
}

/// The KinD config's file name under `kind/`.
pub const CLUSTER_FILE: &str = "cluster.yaml";

/// The text of `kind/cluster.yaml` for `config`: what `kind create cluster --config` reads.
pub fn render_cluster(config: &Config) -> anyhow::Result<String> {
    cluster_yaml(&cluster(config))
}

/// `cluster` as the text of `kind/cluster.yaml`.
fn cluster_yaml(c: &KindCluster) -> anyhow::Result<String> {
    let readable = Readable {
        kind: &c.kind,
        api_version: &c.api_version,
        name: c.name.as_deref(),
        nodes: &c.nodes,
        networking: c.networking.as_ref(),
        containerd_config_patches: c
            .containerd_config_patches
            .iter()
            .cloned()
            .map(LitString)
            .collect(),
        feature_gates: &c.feature_gates,
    };
    to_yaml(&generated_header("#"), &readable)
}

/// `kind/cluster.yaml` and one host file per registry name.
pub fn render(config: &Config) -> anyhow::Result<Vec<Artifact>> {
    let mut out = vec![Artifact::new(
        format!("{KIND_DIR}/{CLUSTER_FILE}"),
        cluster_yaml(&cluster(config))?,
    )];
    for (_, file, contents) in host_files(config) {
        out.push(Artifact::new(
            format!("{KIND_DIR}/registry-hosts/{file}"),
            contents,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceSettings;

    #[test]
    fn parses_back_into_kind_types() {
        let config = Config::default();
        let text = &render(&config).unwrap()[0].contents;
        let parsed: KindCluster = serde_saphyr::from_str(text).expect("valid KinD v1alpha4");
        assert_eq!(parsed, cluster(&config));
        assert!(text.contains("containerdConfigPatches:\n- |"), "{text}");
    }

    #[test]
    fn maps_the_design_cards_ports_and_split_ip() {
        let c = cluster(&Config::default());
        let m: Vec<_> = c.nodes[0]
            .extra_port_mappings
            .iter()
            .map(|p| {
                format!(
                    "{}:{}->{}/{}",
                    p.listen_address.as_deref().unwrap(),
                    p.host_port,
                    p.container_port,
                    p.protocol.as_deref().unwrap()
                )
            })
            .collect();
        assert_eq!(
            m,
            [
                "127.0.0.1:8080->80/TCP",
                "127.0.0.1:8443->443/TCP",
                "127.0.0.1:4433->4433/UDP",
                "127.0.0.2:80->80/TCP",
                "127.0.0.2:443->443/TCP",
                "127.0.0.2:443->4433/UDP",
                "127.0.0.2:4433->4433/UDP"
            ]
        );
        // A QUIC port of 443 is published once on the applications' address.
        let mut on_443 = Config::default();
        on_443.cluster.quic_port = 443;
        let udp: Vec<String> = cluster(&on_443).nodes[0]
            .extra_port_mappings
            .iter()
            .filter(|p| p.protocol.as_deref() == Some("UDP"))
            .map(|p| format!("{}:{}", p.listen_address.as_deref().unwrap(), p.host_port))
            .collect();
        assert_eq!(udp, ["127.0.0.1:443", "127.0.0.2:443"]);
        let mut ports = Config::default();
        ports.routing.mode = RoutingMode::Ports;
        assert_eq!(cluster(&ports).nodes[0].extra_port_mappings.len(), 3);
    }

    #[test]
    fn feature_gates_are_written() {
        let mut c = cluster(&Config::default());
        c.feature_gates
            .insert("InPlacePodVerticalScaling".into(), true);
        let text = cluster_yaml(&c).unwrap();
        assert!(
            text.contains("featureGates:\n  InPlacePodVerticalScaling: true\n"),
            "{text}"
        );
        let parsed: KindCluster = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(parsed, c);
    }

    #[test]
    fn registry_host_files_follow_the_published_port_and_hostnames() {
        let names = |config: &Config| -> Vec<String> {
            registry_hosts(config).into_iter().map(|h| h.0).collect()
        };
        let mut config = Config::default();
        assert_eq!(
            names(&config),
            [
                "localhost:5001",
                "registry.macula.local",
                "macula-registry:5000"
            ]
        );
        let registry = |ports: &[(&str, u16)]| ServiceSettings {
            ports: ports
                .iter()
                .map(|(k, v)| (k.to_string(), (*v).into()))
                .collect(),
            ..Default::default()
        };
        config
            .services
            .insert("registry".into(), registry(&[("api", 5555)]));
        assert_eq!(
            registry_hosts(&config)[0],
            (
                "localhost:5555".to_string(),
                "localhost-5555.toml".to_string()
            )
        );
        // Nothing publishes the API on the host: no `localhost:` name to pull under.
        config
            .services
            .insert("registry".into(), registry(&[("api", 0)]));
        assert_eq!(
            names(&config),
            ["registry.macula.local", "macula-registry:5000"]
        );
        let files: Vec<_> = render(&config)
            .unwrap()
            .into_iter()
            .map(|a| a.path.display().to_string())
            .collect();
        assert_eq!(
            files,
            [
                "kind/cluster.yaml",
                "kind/registry-hosts/registry.macula.local.toml",
                "kind/registry-hosts/macula-registry-5000.toml",
                "kind/registry-hosts/docker.io.toml"
            ]
        );
        // No registry: no host files and no config_path patch.
        config.services.insert(
            "registry".into(),
            ServiceSettings {
                enabled: Some(false),
                ..Default::default()
            },
        );
        assert!(registry_hosts(&config).is_empty());
        // The mirror still needs containerd to read host files; without it, nothing does.
        assert_eq!(cluster(&config).containerd_config_patches.len(), 2);
        config.mirror.registries.clear();
        assert!(host_files(&config).is_empty());
        assert!(cluster(&config).containerd_config_patches.is_empty());
    }

    #[test]
    fn host_files_say_where_they_go_and_how_to_put_them_there() {
        let text = hosts_toml(&Config::default(), "localhost:5001", "localhost-5001.toml");
        assert!(
            text.contains("#   for node in $(kind get nodes --name macula); do\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "#     docker exec \"$node\" mkdir -p \"/etc/containerd/certs.d/localhost:5001\"\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("#     docker cp \"kind/registry-hosts/localhost-5001.toml\" \"$node:/etc/containerd/certs.d/localhost:5001/hosts.toml\"\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "server = \"http://macula-registry:5000\"\n\n[host.\"http://macula-registry:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn sends_the_config_path_patch_once_per_containerd_config_version() {
        let patches = cluster(&Config::default()).containerd_config_patches;
        assert_eq!(
            patches,
            [
                "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
                "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
            ]
        );
    }

    #[test]
    fn the_registrys_own_address_pulls_from_itself() {
        let config = Config {
            name: "acme".into(),
            ..Default::default()
        };
        assert_eq!(
            registry_address(&config).as_deref(),
            Some("acme-registry:5000")
        );
        let text = hosts_toml(&config, "acme-registry:5000", "acme-registry-5000.toml");
        assert!(
            text.contains("/etc/containerd/certs.d/acme-registry:5000/hosts.toml"),
            "{text}"
        );
        assert!(
            text.ends_with("server = \"http://acme-registry:5000\"\n\n[host.\"http://acme-registry:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
            "{text}"
        );
    }

    #[test]
    fn rejects_fields_kind_does_not_have() {
        let text = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  hostPorts: [80]\n";
        assert!(serde_saphyr::from_str::<KindCluster>(text).is_err());
    }
}
