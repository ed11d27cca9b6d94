//! `compose/infra.yaml` (the Compose Specification) and `compose/infra.env`, from the resolved
//! [`Service`] specs, so that the infrastructure can also be run by hand with docker-compose.
//!
//! The structs below model the part of the Compose Specification devenv uses, in the subset
//! that both Debian's docker-compose 1.29 and Compose v2 accept: no top-level `version:` or
//! `name:` (1.29 rejects `name:`; the project name comes from `COMPOSE_PROJECT_NAME` in
//! infra.env), long-form `depends_on` with `condition: service_healthy`, long-form volumes.
//! Secrets are `${VAR:?hint}` references to devenv's state directory; their values never
//! appear here. Not for: running compose (devenv's own Docker driver consumes the same
//! [`Service`] specs) or the services' own config files (see `nginx`, `prometheus`, `grafana`, `loki`, `tempo`, `pdns`).

use std::collections::BTreeMap;

use serde::{Serialize, Serializer, ser::SerializeMap};

use super::{Artifact, COMPOSE_DIR, generated_header, to_yaml};
use crate::config::{Config, EnvValue, MountSource, NO_HOST_ADDRESS, NetworkJoin, Service, labels};

/// The compose key of the infrastructure network (its Docker name is `Config::network_name`).
pub const INFRA_NETWORK_KEY: &str = "infra";
/// The compose key of devenv's internal metrics network (`Config::metrics_network_name`).
pub const METRICS_NETWORK_KEY: &str = "metrics";

/// Restart policy of every infrastructure container: back after a reboot of the engine,
/// but not when the user stopped it.
pub const RESTART: &str = "unless-stopped";

/// A map that keeps the order it was built in, so services read in start order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ordered<V>(pub Vec<(String, V)>);

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<V> Ordered<V> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The whole compose file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeFile {
    pub services: Ordered<ComposeService>,
    pub networks: Ordered<ComposeNetwork>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, ComposeVolume>,
}

/// One service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeService {
    pub container_name: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Short syntax `host_ip:host_port:container_port/proto`: the long syntax's `host_ip` is
    /// not in docker-compose 1.29.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ComposeMount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<ComposeHealthcheck>,
    #[serde(skip_serializing_if = "Ordered::is_empty")]
    pub depends_on: Ordered<ComposeDependency>,
    pub restart: String,
    pub labels: BTreeMap<String, String>,
    pub networks: Ordered<Option<ComposeAttachment>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
}

/// How a service joins a network: at its fixed address on the infrastructure network, with
/// an alias on the metrics network (`null`, any address and no alias, on the others).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeAttachment {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// A long-form volume entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeMount {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub target: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// A healthcheck, durations as compose spells them (`5s`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeHealthcheck {
    pub test: Vec<String>,
    pub interval: String,
    pub timeout: String,
    pub retries: u32,
    pub start_period: String,
}

/// Long-form `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeDependency {
    pub condition: String,
}

/// A top-level network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeNetwork {
    pub name: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// No route out (devenv's metrics network).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam: Option<ComposeIpam>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A network's address management.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeIpam {
    pub config: Vec<ComposeSubnet>,
}

/// One subnet of a network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeSubnet {
    pub subnet: String,
    /// Where the engine picks addresses for containers that ask for none: away from the
    /// services' fixed addresses.
    pub ip_range: String,
}

/// A top-level named volume, with its Docker name fixed so that compose and devenv's own
/// driver use the same volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeVolume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// A literal for the compose file: compose interpolates `$`, so a literal `$` is `$$`.
pub fn literal(value: &str) -> String {
    value.replace('$', "$$")
}

/// The `${VAR:?hint}` reference to a generated secret: compose refuses to start without it
/// and says where it lives.
pub fn secret_reference(var: &str) -> String {
    format!("${{{var}:?pass devenv secrets.env with --env-file}}")
}

fn env_value(value: &EnvValue) -> String {
    match value {
        EnvValue::Plain(v) => literal(v),
        EnvValue::Secret(name) => secret_reference(&name.var()),
        EnvValue::Template(pieces) => pieces
            .iter()
            .map(|p| match p {
                crate::config::Piece::Text(t) => literal(t),
                crate::config::Piece::Secret(name) => secret_reference(&name.var()),
            })
            .collect(),
    }
}

fn labels(config: &Config, service: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([(labels::PROJECT.to_string(), literal(&config.name))]);
    if let Some(s) = service {
        out.insert(labels::SERVICE.to_string(), literal(s));
    }
    out
}

fn seconds(s: u32) -> String {
    format!("{s}s")
}

fn port(p: &crate::config::PortBinding) -> String {
    let ip = match p.host_ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    format!(
        "{ip}:{}:{}/{}",
        p.host_port,
        p.container_port,
        p.protocol.as_str()
    )
}

fn service(
    config: &Config,
    s: &Service,
    all: &[Service],
    volumes: &mut BTreeMap<String, ComposeVolume>,
) -> ComposeService {
    let mounts = s
        .mounts
        .iter()
        .map(|m| match &m.source {
            MountSource::Volume(name) => {
                volumes.insert(
                    literal(name),
                    ComposeVolume {
                        name: literal(name),
                        labels: labels(config, Some(&s.name)),
                    },
                );
                ComposeMount {
                    kind: "volume".into(),
                    source: literal(name),
                    target: literal(&m.target),
                    read_only: m.read_only,
                }
            }
            MountSource::Config(file) => ComposeMount {
                kind: "bind".into(),
                // Relative to the compose file's directory, where the configs are rendered.
                source: format!("./{}", file.path()),
                target: literal(&m.target),
                read_only: true,
            },
            // devenv's state directory is per user; compose reads it from the environment.
            MountSource::State(name) => ComposeMount {
                kind: "bind".into(),
                source: format!(
                    "${{{}:?set it to devenv's state directory}}/{}",
                    crate::env::STATE_DIR,
                    literal(name)
                ),
                target: literal(&m.target),
                read_only: m.read_only,
            },
            MountSource::Bind(path) => ComposeMount {
                kind: "bind".into(),
                source: literal(&path.to_string_lossy()),
                target: literal(&m.target),
                read_only: m.read_only,
            },
        })
        .collect();
    let mut networks = vec![(
        INFRA_NETWORK_KEY.to_string(),
        Some(ComposeAttachment {
            ipv4_address: Some(s.address.to_string()),
            aliases: Vec::new(),
        }),
    )];
    networks.extend(s.extra_networks.iter().map(|n| {
        let attachment = n.alias.as_ref().map(|a| ComposeAttachment {
            ipv4_address: None,
            aliases: vec![literal(a)],
        });
        (network_key(n), attachment)
    }));
    ComposeService {
        container_name: literal(&s.container_name),
        image: literal(&s.image),
        entrypoint: s
            .entrypoint
            .as_ref()
            .map(|e| e.iter().map(|a| literal(a)).collect()),
        command: s.command.iter().map(|a| literal(a)).collect(),
        environment: s
            .env
            .iter()
            .map(|(k, v)| (k.clone(), env_value(v)))
            .collect(),
        ports: s.ports.iter().map(port).collect(),
        user: s.user.as_ref().map(|u| literal(u)),
        volumes: mounts,
        healthcheck: s.healthcheck.as_ref().map(|h| ComposeHealthcheck {
            test: std::iter::once("CMD".to_string())
                .chain(h.test.iter().map(|a| literal(a)))
                .collect(),
            interval: seconds(h.interval_s),
            timeout: seconds(h.timeout_s),
            retries: h.retries,
            start_period: seconds(h.start_period_s),
        }),
        depends_on: Ordered(
            s.depends_on
                .iter()
                .map(|d| {
                    (
                        d.service.clone(),
                        ComposeDependency {
                            // One of the user's own without a healthcheck: ready once started.
                            condition: if all
                                .iter()
                                .any(|a| a.name == d.service && a.healthcheck.is_none())
                            {
                                "service_started".into()
                            } else {
                                "service_healthy".into()
                            },
                        },
                    )
                })
                .collect(),
        ),
        restart: RESTART.into(),
        labels: labels(config, Some(&s.name)),
        networks: Ordered(networks),
        extra_hosts: s.extra_hosts.iter().map(|h| literal(h)).collect(),
    }
}

/// The compose key of a network a service joins besides the infrastructure network.
fn network_key(n: &NetworkJoin) -> String {
    if n.internal {
        METRICS_NETWORK_KEY.to_string()
    } else {
        literal(&n.network)
    }
}

/// The compose model of `config`'s enabled services.
pub fn compose_file(config: &Config) -> ComposeFile {
    let services = config.services();
    let mut volumes = BTreeMap::new();
    let composed = services
        .iter()
        .map(|s| (s.name.clone(), service(config, s, &services, &mut volumes)))
        .collect();
    let mut networks = vec![(
        INFRA_NETWORK_KEY.to_string(),
        ComposeNetwork {
            name: literal(&config.network_name()),
            external: false,
            internal: false,
            driver_opts: BTreeMap::new(),
            ipam: Some(ComposeIpam {
                config: vec![ComposeSubnet {
                    subnet: config.network.subnet.to_string(),
                    ip_range: config.network.dynamic_range().to_string(),
                }],
            }),
            labels: labels(config, None),
        },
    )];
    let mut extra: Vec<&NetworkJoin> = services.iter().flat_map(|s| &s.extra_networks).collect();
    extra.sort_by(|a, b| (!a.internal, &a.network).cmp(&(!b.internal, &b.network)));
    extra.dedup_by(|a, b| a.network == b.network);
    for n in extra {
        let network = if n.internal {
            // devenv's own: no route out, no address on the host; on devenv's first choice of
            // subnet for it (its driver takes the next free one when the engine has that one).
            let subnet =
                crate::subnets::free_metrics_subnet(&config.name, config.network.subnet, &[])
                    .map(|s| s.to_string());
            ComposeNetwork {
                name: literal(&n.network),
                external: false,
                internal: true,
                driver_opts: BTreeMap::from([(NO_HOST_ADDRESS.to_string(), "true".to_string())]),
                ipam: subnet.map(|s| ComposeIpam {
                    config: vec![ComposeSubnet {
                        subnet: s.clone(),
                        ip_range: s,
                    }],
                }),
                labels: labels(config, None),
            }
        } else {
            // Networks devenv joins but does not own (KinD's): created by their owner.
            ComposeNetwork {
                name: literal(&n.network),
                external: true,
                internal: false,
                driver_opts: BTreeMap::new(),
                ipam: None,
                labels: BTreeMap::new(),
            }
        };
        networks.push((network_key(n), network));
    }
    ComposeFile {
        services: Ordered(composed),
        networks: Ordered(networks),
        volumes,
    }
}

/// The non-secret env file: the compose project's name and the values a person running
/// compose by hand wants to see.
pub fn env_file(config: &Config) -> String {
    let name = &config.name;
    let mut out = generated_header("#");
    out.push_str(&format!(
        "#\n\
         # The non-secret settings of the `{name}` infrastructure. The secrets are generated by\n\
         # devenv into its state directory, file secrets.env (mode 0600):\n\
         #   $DEVENV_STATE_DIR, else ${{XDG_STATE_HOME:-$HOME/.local/state}}/devenv/{name}/secrets.env\n\
         # `devenv up` runs all of this for you. To run it by hand with docker-compose 1.29 (one\n\
         # --env-file only) or Compose v2, from the directory that holds compose/:\n\
         #   set -a; . compose/infra.env; set +a\n\
         #   docker-compose --env-file ~/.local/state/devenv/{name}/secrets.env -f compose/infra.yaml up -d\n\
         # The KinD network must exist first (`devenv up` or `kind create cluster` creates it).\n"
    ));
    let vars = [
        ("COMPOSE_PROJECT_NAME", name.clone()),
        ("DEVENV_NAME", name.clone()),
        ("DEVENV_DOMAIN", config.domain.clone()),
        ("DEVENV_NETWORK", config.network_name()),
        ("DEVENV_SUBNET", config.network.subnet.to_string()),
    ];
    for (k, v) in vars {
        out.push_str(&format!("{k}={v}\n"));
    }
    out
}

/// `compose/infra.yaml` and `compose/infra.env`.
pub fn render(config: &Config) -> anyhow::Result<Vec<Artifact>> {
    let header = format!(
        "{}# Run with: docker-compose --env-file <devenv state dir>/secrets.env -f compose/infra.yaml up -d\n# (see infra.env next to this file).\n",
        generated_header("#")
    );
    Ok(vec![
        Artifact::new(
            format!("{COMPOSE_DIR}/infra.yaml"),
            to_yaml(&header, &compose_file(config))?,
        ),
        Artifact::new(format!("{COMPOSE_DIR}/infra.env"), env_file(config)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretName;

    #[test]
    fn secrets_are_references_and_dollars_are_escaped() {
        let text = &render(&Config::default()).unwrap()[0].contents;
        for s in SecretName::ALL {
            assert!(
                text.contains(&format!("${{{}:?", s.var())),
                "{} is not referenced",
                s.var()
            );
        }
        assert_eq!(literal("a$b$$"), "a$$b$$$$");
    }

    #[test]
    fn dependencies_wait_for_health_and_volumes_keep_docker_names() {
        let file = compose_file(&Config::default());
        let pdns = &file.services.0.iter().find(|(k, _)| k == "pdns").unwrap().1;
        assert_eq!(pdns.depends_on.0[0].0, "pdns-db");
        assert_eq!(pdns.depends_on.0[0].1.condition, "service_healthy");
        let grafana = &file
            .services
            .0
            .iter()
            .find(|(k, _)| k == "grafana")
            .unwrap()
            .1;
        let deps: Vec<_> = grafana.depends_on.0.iter().map(|d| d.0.as_str()).collect();
        assert_eq!(deps, ["prometheus", "loki", "tempo"]);
        let v = &file.volumes["macula-grafana-data"];
        assert_eq!(v.name, "macula-grafana-data");
        assert!(
            grafana.volumes.iter().any(|m| m.kind == "bind"
                && m.source == "./grafana/datasources.yaml"
                && m.read_only)
        );
    }

    #[test]
    fn powerdns_gets_its_secrets_from_the_environment_not_its_command_line() {
        let file = compose_file(&Config::default());
        let pdns = &file.services.0.iter().find(|(k, _)| k == "pdns").unwrap().1;
        // The image's own entrypoint (tini and the startup script that renders TEMPLATE_FILES).
        assert_eq!(pdns.entrypoint, None);
        assert!(pdns.command.is_empty(), "{:?}", pdns.command);
        assert_eq!(pdns.environment["TEMPLATE_FILES"], "secrets");
        assert_eq!(
            pdns.environment["PDNS_DB_PASSWORD"],
            secret_reference("DEVENV_PDNS_DB_PASSWORD")
        );
        assert_eq!(
            pdns.environment["PDNS_API_KEY"],
            secret_reference("DEVENV_PDNS_API_KEY")
        );
        assert!(!pdns.environment.contains_key("PDNS_AUTH_API_KEY"));
        let mounts: Vec<_> = pdns
            .volumes
            .iter()
            .map(|m| (m.source.as_str(), m.target.as_str()))
            .collect();
        assert_eq!(
            mounts,
            [
                ("./pdns/pdns.conf", "/etc/powerdns/pdns.conf"),
                ("./pdns/secrets.j2", "/etc/powerdns/templates.d/secrets.j2"),
            ]
        );
    }

    #[test]
    fn the_registry_joins_the_external_kind_network() {
        let file = compose_file(&Config::default());
        let kind = file.networks.0.iter().find(|(k, _)| k == "kind").unwrap();
        assert!(kind.1.external);
        let registry = &file
            .services
            .0
            .iter()
            .find(|(k, _)| k == "registry")
            .unwrap()
            .1;
        let joined: Vec<_> = registry
            .networks
            .0
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(joined, ["infra", "kind", "metrics"]);
        assert_eq!(
            file.networks.0[0].1.ipam.as_ref().unwrap().config[0].subnet,
            "172.30.80.0/24"
        );
    }

    #[test]
    fn only_the_registry_and_prometheus_join_the_internal_metrics_network() {
        let config = Config::default();
        let file = compose_file(&config);
        let metrics = &file
            .networks
            .0
            .iter()
            .find(|(k, _)| k == "metrics")
            .unwrap()
            .1;
        assert_eq!(metrics.name, "macula-metrics");
        assert!(metrics.internal && !metrics.external);
        assert_eq!(metrics.driver_opts[NO_HOST_ADDRESS], "true");
        let subnet = &metrics.ipam.as_ref().expect("a subnet").config[0].subnet;
        assert_eq!(
            Some(subnet.parse().unwrap()),
            crate::subnets::free_metrics_subnet("macula", config.network.subnet, &[]),
            "devenv's first choice, not a pool of the engine's"
        );
        assert_eq!(metrics.labels[labels::PROJECT], "macula");
        let on: Vec<_> = file
            .services
            .0
            .iter()
            .filter_map(|(name, s)| {
                let joined = s.networks.0.iter().find(|(k, _)| k == "metrics")?;
                Some((name.as_str(), joined.1.clone().map(|a| a.aliases)))
            })
            .collect();
        assert_eq!(
            on,
            [
                ("registry", Some(vec!["registry-debug".to_string()])),
                ("prometheus", None)
            ]
        );
        let registry = &file.services.0[0].1;
        assert_eq!(
            registry.environment["REGISTRY_HTTP_DEBUG_ADDR"],
            "registry-debug:5001"
        );

        // Without the registry there is nothing to scrape there, and no such network.
        let mut config = Config::default();
        config.services.insert(
            "registry".into(),
            crate::config::ServiceSettings {
                enabled: Some(false),
                ..Default::default()
            },
        );
        let file = compose_file(&config);
        assert!(!file.networks.0.iter().any(|(k, _)| k == "metrics"));
    }

    #[test]
    fn every_service_has_its_fixed_address_below_the_engines_range() {
        let config = Config::default();
        let file = compose_file(&config);
        let ipam = &file.networks.0[0].1.ipam.as_ref().unwrap().config[0];
        assert_eq!(ipam.ip_range, "172.30.80.128/25");
        let mut seen = std::collections::BTreeSet::new();
        for (name, s) in &file.services.0 {
            let infra = s.networks.0[0].1.as_ref().expect("a fixed address");
            let address: std::net::Ipv4Addr = infra.ipv4_address.as_ref().unwrap().parse().unwrap();
            assert!(
                config.network.subnet.contains(&address),
                "{name}: {address}"
            );
            assert!(
                !config.network.dynamic_range().contains(&address),
                "{name}: {address}"
            );
            assert!(u32::from(address) > u32::from(config.network.subnet.network()) + 1);
            assert!(seen.insert(address), "{name}: {address} twice");
            // One model: the compose file and the driver read the same fact.
            assert_eq!(address, crate::config::address_of(&config, name), "{name}");
        }
        let registry = &file.services.0[0];
        assert_eq!(registry.0, "registry");
        assert_eq!(
            registry.1.networks.0[0].1.as_ref().unwrap().ipv4_address,
            Some("172.30.80.2".to_string())
        );
    }
}
