//! The translation of one [`Service`] (the same spec the compose renderer serializes) into the
//! Docker engine's container-create request, and the hash that says whether a running container
//! still matches it.
//!
//! Pure: secrets and rendered files come in as values. Not for: talking to the engine, nor
//! rendering (the caller passes the rendered files in).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig,
    Mount as DockerMount, MountType, NetworkingConfig, PortBinding as DockerPortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{
    ConfigFile, Healthcheck, MountSource, NetworkJoin, PortBinding, SecretName, Service, labels,
};
use crate::state::Owner;

/// Bumped when the translation below changes in a way that should recreate containers.
const TRANSLATION_VERSION: u32 = 1;

/// What a container's spec depends on besides the service itself.
pub struct Context<'a> {
    /// `config.name`.
    pub project: &'a str,
    /// The infrastructure network and its subnet.
    pub network: &'a str,
    pub subnet: &'a str,
    /// The rendered config files the services mount, to mount and to hash.
    pub configs: &'a BTreeMap<ConfigFile, RenderedFile<'a>>,
    /// The value of a generated secret.
    pub secret: &'a dyn Fn(&SecretName) -> String,
    /// Who makes the container (its owner labels); `None` leaves them off.
    pub owner: Option<&'a Owner>,
    /// The state directory, where [`MountSource::State`] directories are.
    pub state_dir: &'a Path,
}

/// A rendered config file as a container mounts it: where it is on the host, and what it
/// holds (hashed, so that a changed file recreates the container).
#[derive(Debug, Clone)]
pub struct RenderedFile<'a> {
    pub source: PathBuf,
    pub contents: &'a str,
}

/// Everything needed to create one service's container.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub service: String,
    pub container_name: String,
    pub image: String,
    /// The create request, labels (hash included) filled in.
    pub create: ContainerCreateBody,
    /// Networks joined after creation (the engine takes one at create time on API 1.41).
    pub extra_networks: Vec<NetworkJoin>,
    /// Every network the container must be on.
    pub networks: Vec<String>,
    /// Named volumes it mounts.
    pub volumes: Vec<String>,
    /// How Docker judges it healthy; `None`: ready once it runs (or once `probe` passes).
    pub healthcheck: Option<Healthcheck>,
    /// The healthcheck devenv probes itself, from this host.
    pub probe: Option<crate::config::Probe>,
    pub spec_hash: String,
}

/// The parts of a container that decide whether it must be recreated, hashed in this form.
#[derive(Serialize)]
struct Fingerprint<'a> {
    translation: u32,
    image: &'a str,
    entrypoint: &'a Option<Vec<String>>,
    command: &'a [String],
    env: &'a [String],
    ports: &'a [PortBinding],
    mounts: Vec<(String, &'a str, bool, Option<String>)>,
    healthcheck: &'a Option<Healthcheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: &'a Option<String>,
    network: &'a str,
    subnet: &'a str,
    address: std::net::Ipv4Addr,
    extra_networks: &'a [NetworkJoin],
    /// Another owner's container is made again (after `--force`), so that it is labelled
    /// with the new one.
    owner: Option<&'a Owner>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    extra_hosts: &'a [String],
}

/// Translate `service` into a container spec.
pub fn container_spec(ctx: &Context<'_>, service: &Service) -> anyhow::Result<ContainerSpec> {
    let env: Vec<String> = service
        .env
        .iter()
        .map(|(k, v)| format!("{k}={}", v.fill(ctx.secret)))
        .collect();

    let mut mounts = Vec::new();
    let mut fingerprint_mounts = Vec::new();
    let mut volumes = Vec::new();
    for m in &service.mounts {
        let (source, kind, content) = match &m.source {
            MountSource::Volume(name) => {
                volumes.push(name.clone());
                (name.clone(), MountType::VOLUME, None)
            }
            MountSource::Config(file) => {
                let rendered = ctx.configs.get(file).with_context(|| {
                    format!(
                        "service {} mounts {}, which the renderers did not produce",
                        service.name,
                        file.path()
                    )
                })?;
                (
                    rendered.source.to_string_lossy().into_owned(),
                    MountType::BIND,
                    Some(hex::encode(Sha256::digest(rendered.contents.as_bytes()))),
                )
            }
            MountSource::State(name) => (
                ctx.state_dir.join(name).to_string_lossy().into_owned(),
                MountType::BIND,
                None,
            ),
            MountSource::Bind(path) => (path.to_string_lossy().into_owned(), MountType::BIND, None),
        };
        fingerprint_mounts.push((source.clone(), m.target.as_str(), m.read_only, content));
        mounts.push(DockerMount {
            target: Some(m.target.clone()),
            source: Some(source),
            typ: Some(kind),
            read_only: Some(m.read_only),
            ..Default::default()
        });
    }

    let spec_hash = {
        let fp = Fingerprint {
            translation: TRANSLATION_VERSION,
            image: &service.image,
            entrypoint: &service.entrypoint,
            command: &service.command,
            env: &env,
            ports: &service.ports,
            mounts: fingerprint_mounts,
            healthcheck: &service.healthcheck,
            user: &service.user,
            network: ctx.network,
            subnet: ctx.subnet,
            address: service.address,
            extra_networks: &service.extra_networks,
            owner: ctx.owner,
            extra_hosts: &service.extra_hosts,
        };
        let bytes = serde_json::to_vec(&fp).context("serializing a container fingerprint")?;
        hex::encode(Sha256::digest(&bytes))
    };

    let mut port_bindings: HashMap<String, Option<Vec<DockerPortBinding>>> = HashMap::new();
    let mut exposed = Vec::new();
    for p in &service.ports {
        let key = format!("{}/{}", p.container_port, p.protocol.as_str());
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(DockerPortBinding {
                host_ip: Some(p.host_ip.to_string()),
                host_port: Some(p.host_port.to_string()),
            });
    }

    let mut labels: HashMap<String, String> = [
        (labels::PROJECT.to_string(), ctx.project.to_string()),
        (labels::SERVICE.to_string(), service.name.clone()),
        (labels::SPEC_HASH.to_string(), spec_hash.clone()),
    ]
    .into();
    if let Some(owner) = ctx.owner {
        labels.extend(owner.labels());
    }

    let seconds = |s: u32| i64::from(s) * 1_000_000_000;

    let endpoints: HashMap<String, EndpointSettings> = [(
        ctx.network.to_string(),
        EndpointSettings {
            aliases: Some(vec![service.name.clone()]),
            // Its fixed address: the one allow lists name (see `Service::address`).
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some(service.address.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
    )]
    .into();

    let create = ContainerCreateBody {
        hostname: Some(service.name.clone()),
        image: Some(service.image.clone()),
        entrypoint: service.entrypoint.clone(),
        cmd: (!service.command.is_empty()).then(|| service.command.clone()),
        env: Some(env),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        user: service.user.clone(),
        healthcheck: service.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(
                std::iter::once("CMD".to_string())
                    .chain(h.test.iter().cloned())
                    .collect(),
            ),
            interval: Some(seconds(h.interval_s)),
            timeout: Some(seconds(h.timeout_s)),
            retries: Some(i64::from(h.retries)),
            start_period: Some(seconds(h.start_period_s)),
            start_interval: None,
        }),
        host_config: Some(HostConfig {
            port_bindings: Some(port_bindings),
            mounts: Some(mounts),
            extra_hosts: (!service.extra_hosts.is_empty()).then(|| service.extra_hosts.clone()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    };

    let mut networks = vec![ctx.network.to_string()];
    networks.extend(service.extra_networks.iter().map(|n| n.network.clone()));
    Ok(ContainerSpec {
        service: service.name.clone(),
        container_name: service.container_name.clone(),
        image: service.image.clone(),
        create,
        extra_networks: service.extra_networks.clone(),
        networks,
        volumes,
        healthcheck: service.healthcheck.clone(),
        probe: service.probe.clone(),
        spec_hash,
    })
}

/// The specs of several services, keyed by service name.
pub fn container_specs(
    ctx: &Context<'_>,
    services: &[Service],
) -> anyhow::Result<BTreeMap<String, ContainerSpec>> {
    services
        .iter()
        .map(|s| Ok((s.name.clone(), container_spec(ctx, s)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The specs of the services that mount only named volumes.
    fn specs(config: &Config) -> BTreeMap<String, ContainerSpec> {
        let plain: Vec<String> = config
            .services()
            .into_iter()
            .filter(|s| {
                s.mounts
                    .iter()
                    .all(|m| matches!(m.source, MountSource::Volume(_)))
            })
            .map(|s| s.name)
            .collect();
        all_specs(config)
            .into_iter()
            .filter(|(name, _)| plain.contains(name))
            .collect()
    }

    /// Every enabled service's spec, each rendered config file standing in as an empty file.
    fn all_specs(config: &Config) -> BTreeMap<String, ContainerSpec> {
        let secret = |s: &SecretName| format!("secret-{}", s.var());
        let services = config.services();
        let configs: BTreeMap<ConfigFile, RenderedFile<'_>> = services
            .iter()
            .flat_map(|s| &s.mounts)
            .filter_map(|m| match m.source {
                MountSource::Config(file) => Some((
                    file,
                    RenderedFile {
                        source: Path::new("/rendered").join(file.path()),
                        contents: "",
                    },
                )),
                _ => None,
            })
            .collect();
        let ctx = Context {
            project: &config.name,
            network: "macula-infra",
            subnet: "172.30.80.0/24",
            configs: &configs,
            secret: &secret,
            owner: None,
            state_dir: Path::new("/state"),
        };
        container_specs(&ctx, &services).unwrap()
    }

    #[test]
    fn a_spec_carries_labels_ports_secrets_and_the_healthcheck() {
        let config = Config::default();
        let all = specs(&config);
        let ts = &all["timescaledb"];
        let labels = ts.create.labels.as_ref().unwrap();
        assert_eq!(labels[labels::PROJECT], "macula");
        assert_eq!(labels[labels::SERVICE], "timescaledb");
        assert_eq!(labels[labels::SPEC_HASH], ts.spec_hash);
        let env = ts.create.env.as_ref().unwrap();
        assert!(env.contains(&"POSTGRES_PASSWORD=secret-DEVENV_TIMESCALE_PASSWORD".to_string()));
        let host = ts.create.host_config.as_ref().unwrap();
        let binding = &host.port_bindings.as_ref().unwrap()["5432/tcp"]
            .as_ref()
            .unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some("5432"));
        let hc = ts.create.healthcheck.as_ref().unwrap();
        assert_eq!(hc.test.as_ref().unwrap()[0], "CMD");
        assert_eq!(hc.test.as_ref().unwrap()[1], "pg_isready");
        assert_eq!(ts.volumes, ["macula-timescaledb-data"]);
        assert_eq!(
            all["registry"].networks,
            ["macula-infra", "kind", "macula-metrics"]
        );
    }

    #[test]
    fn each_container_asks_for_its_services_fixed_address_the_one_compose_names() {
        let config = Config::default();
        let compose = crate::render::compose::compose_file(&config);
        let all = all_specs(&config);
        assert_eq!(all.len(), config.services().len());
        assert_eq!(
            all["prometheus"].networks,
            ["macula-infra", "macula-metrics"]
        );
        for (name, spec) in all {
            let endpoints = spec.create.networking_config.as_ref().unwrap();
            let infra = &endpoints.endpoints_config.as_ref().unwrap()["macula-infra"];
            let asked = infra.ipam_config.as_ref().unwrap().ipv4_address.as_deref();
            let composed = &compose
                .services
                .0
                .iter()
                .find(|(k, _)| *k == name)
                .unwrap()
                .1;
            let named = composed.networks.0[0].1.as_ref().unwrap();
            assert_eq!(asked, named.ipv4_address.as_deref(), "{name}");
            // The other networks it joins, with the same aliases, by their Docker names.
            let joined: Vec<(String, Vec<String>)> = spec
                .extra_networks
                .iter()
                .map(|j| (j.network.clone(), j.alias.iter().cloned().collect()))
                .collect();
            let composed_joins: Vec<(String, Vec<String>)> = composed.networks.0[1..]
                .iter()
                .map(|(key, attachment)| {
                    let network = &compose.networks.0.iter().find(|(k, _)| k == key).unwrap().1;
                    let aliases = attachment.as_ref().map(|a| a.aliases.clone());
                    (network.name.clone(), aliases.unwrap_or_default())
                })
                .collect();
            assert_eq!(joined, composed_joins, "{name}");
        }
    }

    #[test]
    fn the_hash_changes_with_the_service_and_only_with_it() {
        let base = Config::default();
        let before = specs(&base);
        let mut edited = base.clone();
        edited.services.insert(
            "timescaledb".into(),
            crate::config::ServiceSettings {
                ports: [("postgres".to_string(), 15432.into())].into(),
                ..Default::default()
            },
        );
        let after = specs(&edited);
        for (name, spec) in &before {
            let same = spec.spec_hash == after[name].spec_hash;
            assert_eq!(same, name != "timescaledb", "{name}");
        }
        assert_eq!(specs(&base)["minio"].spec_hash, before["minio"].spec_hash);
    }

    #[test]
    fn config_mounts_point_into_the_rendered_directory_and_hash_their_contents() {
        let config = Config::default();
        let gateway = config
            .services()
            .into_iter()
            .find(|s| s.name == "gateway")
            .unwrap();
        let secret = |_: &SecretName| String::new();
        let artifact = |text: &str| {
            vec![crate::render::Artifact::new(
                "compose/gateway/nginx.conf",
                text.to_string(),
            )]
        };
        let (one, two) = (artifact("a"), artifact("b"));
        // As converge hands them over: mounted from the state directory's `rendered/`.
        fn mounted<'a>(
            artifacts: &'a [crate::render::Artifact],
            service: &Service,
        ) -> BTreeMap<ConfigFile, RenderedFile<'a>> {
            crate::converge::render::mounted(
                artifacts,
                std::slice::from_ref(service),
                std::path::Path::new("/state"),
            )
        }
        let (one, two, none) = (
            mounted(&one, &gateway),
            mounted(&two, &gateway),
            mounted(&[], &gateway),
        );
        let ctx = |configs| Context {
            project: "macula",
            network: "macula-infra",
            subnet: "172.30.80.0/24",
            configs,
            secret: &secret,
            owner: None,
            state_dir: Path::new("/state"),
        };
        let a = container_spec(&ctx(&one), &gateway).unwrap();
        let b = container_spec(&ctx(&two), &gateway).unwrap();
        assert_ne!(a.spec_hash, b.spec_hash);
        let mount = &a
            .create
            .host_config
            .as_ref()
            .unwrap()
            .mounts
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            mount.source.as_deref(),
            Some("/state/rendered/compose/gateway/nginx.conf")
        );
        assert_eq!(mount.read_only, Some(true));
        let missing = container_spec(&ctx(&none), &gateway).unwrap_err();
        assert!(
            missing.to_string().contains("gateway/nginx.conf"),
            "{missing}"
        );
    }
}
