//! The Docker engine driver, over bollard: connection, observation of what devenv made
//! (by its labels, into the driver's own model, [`observed`]), and the few operations
//! converge, `status` and `logs` need — networks, volumes, containers, image pulls, health
//! waits and logs.
//!
//! Every error names the container, network, volume or image it is about. The bollard client
//! is private to this module and its files. Not for: deciding what to do (that is `plan`), the
//! order of it (that is `converge`), nor telling anyone about it (progress goes through the
//! caller's `output::Reporter`; the driver never imports `output`).

mod connect;
pub mod health;
pub mod images;
pub mod kind_network;
pub mod logs;
pub mod nodes;
pub mod observed;
pub mod spec;
pub mod volumes;

use std::collections::HashMap;

use anyhow::Context as _;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerSummary, ContainerSummaryStateEnum, EndpointSettings, Ipam, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, InspectNetworkOptions, ListContainersOptions,
    ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
    StartContainerOptions, StopContainerOptions,
};

use crate::config::{Protocol, labels};
use observed::{Observed, ObservedContainer, ObservedNetwork, ObservedVolume, RunState};

pub use spec::ContainerSpec;

/// The address plan of a network devenv owns: its subnet, and the part of it the engine
/// hands out to containers that ask for no fixed address.
#[derive(Debug, Clone, Copy)]
pub struct Subnet<'a> {
    pub subnet: &'a str,
    pub ip_range: &'a str,
}

/// What kind of network `create_network` makes.
#[derive(Debug, Clone, Copy)]
pub enum NetworkKind<'a> {
    /// The environment's infrastructure network, on its subnet.
    Own(Subnet<'a>),
    /// The environment's internal network, on this subnet: no route out, no address on the
    /// host.
    Internal(&'a str),
    /// A network other tools use too (KinD's), labelled as shared.
    Shared,
}

/// What became of a network [`Engine::remove_network_if_unused`] was to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkRemoval {
    /// Removed now.
    Removed,
    /// It was already gone.
    Gone,
    /// Kept: these containers (by endpoint name) are attached.
    InUse(Vec<String>),
    /// Kept: the engine refused with this message although, by its own account, no container
    /// is attached. Docker's count of a network's endpoints can go wrong (moby/moby#43286),
    /// and then only restarting the engine lets the network go.
    Refused(String),
    /// Kept: the engine still lists endpoints (by name) of containers that no longer exist,
    /// even after a forced disconnect.
    StaleEndpoints(Vec<String>),
}

/// How often, and how many times, `remove_network_if_unused` looks again while the engine
/// releases the endpoints of containers just removed.
const NETWORK_RELEASE_POLL: std::time::Duration = std::time::Duration::from_millis(200);
const NETWORK_RELEASE_ATTEMPTS: u32 = 15;

/// Seconds a container gets to stop after SIGTERM before it is killed.
pub const STOP_TIMEOUT_S: i32 = 10;

/// A connected engine. The bollard client stays inside the driver: everything else goes
/// through the operations below (and those of `health`, `images`, `logs`).
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    /// Where it was found (for messages).
    pub endpoint: String,
}

/// Tries at creating a container whose name is taken by a leftover, and the pause between.
const LEFTOVER_ATTEMPTS: u32 = 25;
const LEFTOVER_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// What holds a container name devenv is about to use.
enum Leftover {
    /// A container of this environment the plan did not see (by its ID).
    Ours(String),
    /// Another request is creating it right now.
    Pending,
    /// Not devenv's, or another environment's.
    Foreign,
}

/// A container as `status` reports it.
#[derive(Debug, Clone)]
pub struct ContainerStatus {
    pub id: String,
    pub name: String,
    pub service: Option<String>,
    pub state: RunState,
    /// `healthy`, `unhealthy`, `starting`, or `none` without a healthcheck.
    pub health: String,
    /// Published ports: `127.0.0.1:5432->5432/tcp`.
    pub ports: Vec<String>,
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn is_conflict(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

fn is_forbidden(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 403,
            ..
        }
    )
}

/// The engine's own words for an error it answered with.
fn message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        e => e.to_string(),
    }
}

fn is_not_modified(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 304,
            ..
        }
    )
}

fn run_state(state: Option<&ContainerSummaryStateEnum>) -> RunState {
    match state {
        Some(ContainerSummaryStateEnum::CREATED) => RunState::Created,
        Some(ContainerSummaryStateEnum::RUNNING) => RunState::Running,
        Some(ContainerSummaryStateEnum::RESTARTING) => RunState::Restarting,
        Some(ContainerSummaryStateEnum::PAUSED) => RunState::Paused,
        Some(ContainerSummaryStateEnum::EXITED) => RunState::Exited,
        Some(ContainerSummaryStateEnum::DEAD) => RunState::Dead,
        Some(ContainerSummaryStateEnum::REMOVING) => RunState::Removing,
        _ => RunState::Unknown,
    }
}

/// The health part of a container list's `Status` (`Up 3 minutes (healthy)`); API 1.41 has no
/// separate field.
pub fn health_from_status(status: &str) -> &'static str {
    if status.contains("(healthy)") {
        "healthy"
    } else if status.contains("(unhealthy)") {
        "unhealthy"
    } else if status.contains("(health: starting)") {
        "starting"
    } else {
        "none"
    }
}

fn summary_name(c: &ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default()
}

impl Engine {
    /// Connect to the engine: `DOCKER_HOST`, else the usual sockets, the API version negotiated.
    pub async fn connect() -> anyhow::Result<Engine> {
        let c = connect::connect().await?;
        Ok(Engine {
            docker: c.docker,
            endpoint: c.candidate.uri,
        })
    }

    async fn containers(&self) -> anyhow::Result<Vec<ContainerSummary>> {
        tracing::info!("engine: listing containers at {}", self.endpoint);
        self.docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await
            .with_context(|| format!("listing containers at {}", self.endpoint))
    }

    /// Every container, network and volume the engine holds (devenv's and others', since a
    /// foreign one may hold a name devenv needs).
    pub async fn observe(&self) -> anyhow::Result<Observed> {
        tracing::info!("engine: listing networks and volumes");
        let (containers, networks, volumes) = tokio::try_join!(
            self.containers(),
            async {
                self.docker
                    .list_networks(None::<ListNetworksOptions>)
                    .await
                    .with_context(|| format!("listing networks at {}", self.endpoint))
            },
            async {
                self.docker
                    .list_volumes(None::<ListVolumesOptions>)
                    .await
                    .with_context(|| format!("listing volumes at {}", self.endpoint))
            },
        )?;
        let containers = containers
            .iter()
            .map(|c| {
                let label = |k: &str| c.labels.as_ref().and_then(|l| l.get(k)).cloned();
                ObservedContainer {
                    id: c.id.clone().unwrap_or_default(),
                    name: summary_name(c),
                    project: label(labels::PROJECT),
                    service: label(labels::SERVICE),
                    spec_hash: label(labels::SPEC_HASH),
                    image_id: c.image_id.clone(),
                    state: run_state(c.state.as_ref()),
                    networks: c
                        .network_settings
                        .as_ref()
                        .and_then(|n| n.networks.as_ref())
                        .map(|n| n.keys().cloned().collect())
                        .unwrap_or_default(),
                    published: c
                        .ports
                        .iter()
                        .flatten()
                        .filter_map(|p| {
                            let ip = p.ip.as_deref()?.parse().ok()?;
                            let protocol = match p.typ.map(|t| t.to_string()).as_deref() {
                                Some("udp") => Protocol::Udp,
                                _ => Protocol::Tcp,
                            };
                            Some((ip, p.public_port?, protocol))
                        })
                        .collect(),
                    healthy: health_from_status(c.status.as_deref().unwrap_or("")) == "healthy",
                }
            })
            .collect();
        let networks = networks
            .into_iter()
            .map(|n| ObservedNetwork {
                name: n.name.unwrap_or_default(),
                project: n
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(labels::PROJECT))
                    .cloned(),
                subnets: n
                    .ipam
                    .and_then(|i| i.config)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.subnet)
                    .collect(),
            })
            .collect();
        let volumes = volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| ObservedVolume {
                project: v.labels.get(labels::PROJECT).cloned(),
                name: v.name,
            })
            .collect();
        Ok(Observed {
            containers,
            networks,
            volumes,
        })
    }

    /// The containers of `project`, with health and published ports.
    pub async fn project_containers(&self, project: &str) -> anyhow::Result<Vec<ContainerStatus>> {
        tracing::info!("engine: listing the containers labelled {project}");
        let all = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "label".to_string(),
                    vec![format!("{}={project}", labels::PROJECT)],
                )])),
                ..Default::default()
            }))
            .await
            .with_context(|| format!("listing the containers of {project}"))?;
        Ok(all
            .iter()
            .map(|c| {
                let mut ports: Vec<String> = c
                    .ports
                    .iter()
                    .flatten()
                    .filter_map(|p| {
                        let public = p.public_port?;
                        let ip = p.ip.clone().unwrap_or_default();
                        let proto = p.typ.map(|t| t.to_string()).unwrap_or_default();
                        Some(format!("{ip}:{public}->{}/{proto}", p.private_port))
                    })
                    .collect();
                ports.sort();
                ports.dedup();
                ContainerStatus {
                    id: c.id.clone().unwrap_or_default(),
                    name: summary_name(c),
                    service: c
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(labels::SERVICE))
                        .cloned(),
                    state: run_state(c.state.as_ref()),
                    health: health_from_status(c.status.as_deref().unwrap_or("")).to_string(),
                    ports,
                }
            })
            .collect())
    }

    /// The engine's product version and API version (`20.10.24`, `1.41`), as it reports them.
    pub async fn version(&self) -> anyhow::Result<(String, String)> {
        let v =
            self.docker.version().await.with_context(|| {
                format!("asking the engine at {} for its version", self.endpoint)
            })?;
        Ok((
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default(),
        ))
    }

    /// Whether the engine runs rootless (its security options list `name=rootless`): it then
    /// publishes ports as the user, not as root.
    pub async fn rootless(&self) -> anyhow::Result<bool> {
        let info = self
            .docker
            .info()
            .await
            .with_context(|| format!("asking the engine at {} about itself", self.endpoint))?;
        Ok(info
            .security_options
            .unwrap_or_default()
            .iter()
            .any(|o| o.split(',').any(|part| part == "name=rootless")))
    }

    /// The address containers reach this host at through `host-gateway` (`extra_hosts`): the
    /// default bridge's IPv4 gateway, which is what the engine maps `host-gateway` to unless
    /// its daemon configures another. When the network names no gateway (Docker 28 leaves it
    /// out for the default bridge), the bridge has its subnet's first address, as the default
    /// IPAM driver gives it. `None` when the engine has no default bridge.
    pub async fn host_gateway(&self) -> Option<std::net::IpAddr> {
        let bridge = self.docker.inspect_network("bridge", None).await.ok()?;
        bridge.ipam?.config?.iter().find_map(|c| {
            if let Some(gateway) = c.gateway.as_deref().filter(|g| !g.is_empty()) {
                return gateway.parse::<std::net::Ipv4Addr>().ok().map(Into::into);
            }
            let (network, _) = c.subnet.as_deref()?.split_once('/')?;
            let network: std::net::Ipv4Addr = network.parse().ok()?;
            Some(std::net::Ipv4Addr::from(u32::from(network) + 1).into())
        })
    }

    /// Create a network labelled for `project`. A network of that name that appears at the
    /// same time (another devenv creating the shared `kind` network) is used instead: the
    /// engine (API 1.41) accepts duplicate names, so duplicates devenv made are removed again.
    pub async fn create_network(
        &self,
        project: &str,
        name: &str,
        how: NetworkKind<'_>,
        extra_labels: &[(String, String)],
    ) -> anyhow::Result<()> {
        let subnet = match how {
            NetworkKind::Own(subnet) => Some(subnet),
            NetworkKind::Internal(subnet) => Some(Subnet {
                subnet,
                ip_range: subnet,
            }),
            NetworkKind::Shared => {
                return self.create_kind_network(project, name, extra_labels).await;
            }
        };
        let internal = matches!(how, NetworkKind::Internal(_));
        let mut labels = HashMap::from([(labels::PROJECT.to_string(), project.to_string())]);
        labels.extend(extra_labels.iter().cloned());
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            ipam: subnet.map(|s| Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(s.subnet.to_string()),
                    ip_range: Some(s.ip_range.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(labels),
            // No route out, and no address for the host on its bridge: nothing outside the
            // network reaches what listens there.
            internal: internal.then_some(true),
            options: internal.then(|| {
                HashMap::from([(
                    crate::config::NO_HOST_ADDRESS.to_string(),
                    "true".to_string(),
                )])
            }),
            ..Default::default()
        };
        tracing::info!("engine: creating network {name}");
        let created = match self.docker.create_network(request).await {
            Ok(r) => r.id,
            Err(e) if is_conflict(&e) => return Ok(()),
            Err(e) => {
                return Err(e).with_context(|| match subnet {
                    Some(s) => format!("creating network {name} with subnet {}", s.subnet),
                    None => format!("creating network {name}"),
                });
            }
        };
        self.drop_duplicate(name, &created).await
    }

    /// The shared `kind` network, as kind creates it ([`kind_network`]), labelled as shared and
    /// as made for `project` (kind itself puts no labels on it).
    async fn create_kind_network(
        &self,
        project: &str,
        name: &str,
        extra_labels: &[(String, String)],
    ) -> anyhow::Result<()> {
        let mut labels = HashMap::from([
            (labels::PROJECT.to_string(), project.to_string()),
            (labels::SHARED.to_string(), "true".to_string()),
        ]);
        labels.extend(extra_labels.iter().cloned());
        let mtu = match self.docker.inspect_network("bridge", None).await {
            Ok(bridge) => kind_network::bridge_mtu(
                bridge
                    .options
                    .as_ref()
                    .and_then(|o| o.get(kind_network::MTU_OPTION))
                    .map(String::as_str),
            ),
            Err(_) => None,
        };
        let mut options = HashMap::from([(
            kind_network::MASQUERADE_OPTION.to_string(),
            "true".to_string(),
        )]);
        if let Some(mtu) = mtu {
            options.insert(kind_network::MTU_OPTION.to_string(), mtu.to_string());
        }
        let request = |ipv6: Option<String>| NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            enable_ipv6: Some(ipv6.is_some()),
            ipam: ipv6.map(|subnet| Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(labels.clone()),
            options: Some(options.clone()),
            ..Default::default()
        };
        tracing::info!("engine: creating network {name} as kind does");
        let mut last = String::new();
        for attempt in 0..kind_network::ATTEMPTS {
            let subnet = kind_network::ula_subnet(name, attempt);
            let refused = match self
                .docker
                .create_network(request(Some(subnet.clone())))
                .await
            {
                Ok(r) => return self.drop_duplicate(name, &r.id).await,
                Err(e) if is_conflict(&e) => return Ok(()),
                Err(e) => e,
            };
            let message = match &refused {
                DockerError::DockerResponseServerError { message, .. } => message.clone(),
                other => other.to_string(),
            };
            match kind_network::refusal(&message) {
                kind_network::Refusal::NoIpv6 => {
                    tracing::info!("engine: no IPv6 for network {name} ({message}); without it");
                    return match self.docker.create_network(request(None)).await {
                        Ok(r) => self.drop_duplicate(name, &r.id).await,
                        Err(e) if is_conflict(&e) => Ok(()),
                        Err(e) => Err(e).with_context(|| format!("creating network {name}")),
                    };
                }
                kind_network::Refusal::Overlap => {
                    // Another kind or devenv may have made it meanwhile.
                    if self.network_exists(name).await? {
                        return Ok(());
                    }
                    last = format!("{subnet}: {message}");
                }
                kind_network::Refusal::Other => {
                    return Err(refused).with_context(|| {
                        format!("creating network {name} with IPv6 subnet {subnet}")
                    });
                }
            }
        }
        anyhow::bail!(
            "creating network {name}: each of kind's {} IPv6 subnets overlaps another network (last {last})",
            kind_network::ATTEMPTS
        )
    }

    async fn network_exists(&self, name: &str) -> anyhow::Result<bool> {
        Ok(!self.same_named(name).await?.is_empty())
    }

    /// The IDs of the networks named exactly `name`.
    async fn same_named(&self, name: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(HashMap::from([(
                    "name".to_string(),
                    vec![name.to_string()],
                )])),
            }))
            .await
            .with_context(|| format!("listing networks named {name}"))?
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .filter_map(|n| n.id)
            .collect())
    }

    /// The engine (API 1.41) accepts duplicate names: of several networks named `name`, keep the
    /// one kind keeps ([`kind_network::kept`]), and remove `created` if it is not that one.
    async fn drop_duplicate(&self, name: &str, created: &str) -> anyhow::Result<()> {
        let ids = self.same_named(name).await?;
        if ids.len() < 2 {
            return Ok(());
        }
        let mut counted = Vec::new();
        for id in ids {
            let containers = match self.docker.inspect_network(&id, None).await {
                Ok(n) => n.containers.map_or(0, |c| c.len()),
                Err(_) => continue,
            };
            counted.push((id, containers));
        }
        if kind_network::kept(&counted) != Some(created) {
            let _ = self.docker.remove_network(created).await;
        }
        Ok(())
    }

    /// Create a named volume labelled for `project` and with `extra_labels` (an existing one is
    /// kept as it is).
    pub async fn create_volume(
        &self,
        project: &str,
        name: &str,
        extra_labels: &[(String, String)],
    ) -> anyhow::Result<()> {
        let mut labels = HashMap::from([(labels::PROJECT.to_string(), project.to_string())]);
        labels.extend(extra_labels.iter().cloned());
        tracing::info!("engine: creating volume {name}");
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating volume {name}"))?;
        Ok(())
    }

    /// Create the container of `spec` and attach it to its extra networks. Returns its ID.
    ///
    /// A container of the same name that devenv made for the same environment but that the
    /// plan did not see (a run killed mid-create leaves the engine finishing its request) is
    /// removed and the creation tried again; a name still reserved by such a request is
    /// waited for a few seconds; a foreign container is left alone and named.
    pub async fn create_container(&self, spec: &ContainerSpec) -> anyhow::Result<String> {
        let create = || {
            self.docker.create_container(
                Some(CreateContainerOptions {
                    name: Some(spec.container_name.clone()),
                    ..Default::default()
                }),
                spec.create.clone(),
            )
        };
        let context = || {
            format!(
                "creating container {} from {}",
                spec.container_name, spec.image
            )
        };
        tracing::info!(
            "engine: creating container {} from {}",
            spec.container_name,
            spec.image
        );
        let mut attempts = 0;
        let id = loop {
            match create().await {
                Ok(r) => break r.id,
                Err(e) if is_conflict(&e) && attempts < LEFTOVER_ATTEMPTS => {
                    attempts += 1;
                    match self.leftover(spec).await? {
                        Leftover::Ours(id) => {
                            tracing::debug!(
                                "removing {}, left by an earlier run, to create it again",
                                spec.container_name
                            );
                            self.stop_and_remove(&id, &spec.container_name).await?;
                        }
                        Leftover::Pending => tokio::time::sleep(LEFTOVER_POLL).await,
                        Leftover::Foreign => return Err(e).with_context(context),
                    }
                }
                Err(e) => return Err(e).with_context(context),
            }
        };
        for join in &spec.extra_networks {
            let network = &join.network;
            tracing::info!(
                "engine: attaching {} to network {network}",
                spec.container_name
            );
            self.docker
                .connect_network(
                    network,
                    NetworkConnectRequest {
                        container: id.clone(),
                        endpoint_config: Some(EndpointSettings {
                            aliases: join.alias.clone().map(|a| vec![a]),
                            ..Default::default()
                        }),
                    },
                )
                .await
                .with_context(|| {
                    format!(
                        "attaching container {} to network {network}",
                        spec.container_name
                    )
                })?;
        }
        Ok(id)
    }

    /// What holds the name of `spec`'s container when creating it conflicts.
    async fn leftover(&self, spec: &ContainerSpec) -> anyhow::Result<Leftover> {
        let name = &spec.container_name;
        let found = match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            // The engine reserves the name before the container exists.
            Err(e) if is_not_found(&e) => return Ok(Leftover::Pending),
            Err(e) => return Err(e).with_context(|| format!("inspecting container {name}")),
        };
        let project = |set: Option<&HashMap<String, String>>| {
            set.and_then(|l| l.get(labels::PROJECT)).cloned()
        };
        let theirs = project(found.config.as_ref().and_then(|c| c.labels.as_ref()));
        let ours = project(spec.create.labels.as_ref());
        Ok(match found.id {
            Some(id) if theirs.is_some() && theirs == ours => Leftover::Ours(id),
            _ => Leftover::Foreign,
        })
    }

    /// The owners (devenv.yaml, state directory: their labels) of `project`'s containers and
    /// volumes, each with what carries it. Those made before devenv labelled owners have none.
    pub async fn owners(&self, project: &str) -> anyhow::Result<Vec<((String, String), String)>> {
        let filter = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={project}", labels::PROJECT)],
        )]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filter.clone()),
                ..Default::default()
            }))
            .await
            .with_context(|| format!("listing the containers of {project}"))?;
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filter),
            }))
            .await
            .with_context(|| format!("listing the volumes of {project}"))?;
        let owner = |l: &HashMap<String, String>| {
            Some((
                l.get(labels::OWNER_CONFIG)?.clone(),
                l.get(labels::OWNER_STATE)?.clone(),
            ))
        };
        let mut out = Vec::new();
        for c in &containers {
            if let Some(o) = c.labels.as_ref().and_then(owner) {
                out.push((o, format!("container {}", summary_name(c))));
            }
        }
        for v in volumes.volumes.unwrap_or_default() {
            if let Some(o) = owner(&v.labels) {
                out.push((o, format!("volume {}", v.name)));
            }
        }
        tracing::debug!("owners of {project}: {out:?}");
        Ok(out)
    }

    /// Start a container (already running is fine; a paused one is unpaused).
    pub async fn start(&self, id: &str, name: &str) -> anyhow::Result<()> {
        tracing::info!("engine: starting container {name}");
        match self
            .docker
            .start_container(id, None::<StartContainerOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_modified(&e) => Ok(()),
            Err(e) => {
                if self.paused(id).await {
                    tracing::info!("container {name} is paused: unpausing it");
                    return self
                        .docker
                        .unpause_container(id)
                        .await
                        .with_context(|| format!("unpausing container {name}"));
                }
                Err(e).with_context(|| format!("starting container {name}"))
            }
        }
    }

    async fn paused(&self, id: &str) -> bool {
        self.docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.paused)
            .unwrap_or(false)
    }

    /// Where this host may reach container `id`'s TCP port `port`, best first: the
    /// container's address on `network` (then on its other networks), and the port's binding
    /// on the host while published (an any-address binding through loopback).
    pub async fn reach(&self, id: &str, port: u16, network: &str) -> Vec<std::net::SocketAddr> {
        let Ok(c) = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        else {
            return Vec::new();
        };
        let Some(settings) = c.network_settings else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut networks: Vec<_> = settings
            .networks
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        networks.sort_by_key(|(name, _)| name != network);
        for (_, n) in networks {
            if let Some(ip) = n
                .ip_address
                .as_deref()
                .and_then(|i| i.parse::<std::net::IpAddr>().ok())
            {
                out.push(std::net::SocketAddr::new(ip, port));
            }
        }
        let published = settings
            .ports
            .as_ref()
            .and_then(|p| p.get(&format!("{port}/tcp")).cloned().flatten())
            .unwrap_or_default();
        for b in published {
            let Some(host_port) = b.host_port.as_deref().and_then(|p| p.parse::<u16>().ok()) else {
                continue;
            };
            let ip: Option<std::net::IpAddr> = match b.host_ip.as_deref().unwrap_or("") {
                "" | "0.0.0.0" => Some(std::net::Ipv4Addr::LOCALHOST.into()),
                "::" => Some(std::net::Ipv6Addr::LOCALHOST.into()),
                other => other.parse().ok(),
            };
            if let Some(ip) = ip {
                out.push(std::net::SocketAddr::new(ip, host_port));
            }
        }
        out.dedup();
        out
    }

    /// The host binds a container is configured to publish (what it holds whenever it is up,
    /// whatever its state now).
    pub async fn port_bindings(
        &self,
        id: &str,
        name: &str,
    ) -> anyhow::Result<Vec<(std::net::IpAddr, u16, Protocol)>> {
        let c = match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("inspecting container {name}")),
        };
        let map = c
            .host_config
            .and_then(|h| h.port_bindings)
            .unwrap_or_default();
        let mut out = Vec::new();
        for (key, bindings) in map {
            let protocol = if key.ends_with("/udp") {
                Protocol::Udp
            } else {
                Protocol::Tcp
            };
            for b in bindings.unwrap_or_default() {
                let ip = b
                    .host_ip
                    .as_deref()
                    .filter(|i| !i.is_empty())
                    .unwrap_or("0.0.0.0")
                    .parse();
                let port = b.host_port.as_deref().and_then(|p| p.parse().ok());
                if let (Ok(ip), Some(port)) = (ip, port) {
                    out.push((ip, port, protocol));
                }
            }
        }
        Ok(out)
    }

    /// Stop a container (SIGTERM, then SIGKILL after [`STOP_TIMEOUT_S`]). Returns whether it
    /// still exists.
    pub async fn stop_container(&self, id: &str, name: &str) -> anyhow::Result<bool> {
        match self
            .docker
            .stop_container(
                id,
                Some(StopContainerOptions {
                    t: Some(STOP_TIMEOUT_S),
                    signal: None,
                }),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if is_not_modified(&e) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("stopping container {name}")),
        }
    }

    /// Stop (SIGTERM, then SIGKILL after [`STOP_TIMEOUT_S`]) and remove a container; its
    /// named volumes stay. A container already gone is fine.
    pub async fn stop_and_remove(&self, id: &str, name: &str) -> anyhow::Result<()> {
        tracing::info!("engine: stopping and removing container {name}");
        if !self.stop_container(id, name).await? {
            return Ok(());
        }
        match self
            .docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // Already being removed by someone else.
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing container {name}")),
        }
    }

    /// Remove a network devenv made, unless containers are still attached to it.
    pub async fn remove_network_if_unused(&self, name: &str) -> anyhow::Result<NetworkRemoval> {
        tracing::info!("engine: removing network {name} unless something is attached");
        let mut outcome = NetworkRemoval::Refused(String::new());
        // The engine lets go of a removed container's endpoint a moment after the removal
        // returns: an endpoint whose container no longer exists is waited out, briefly, then
        // disconnected by force (it belongs to nothing), and looked at again.
        for attempt in 0..NETWORK_RELEASE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(NETWORK_RELEASE_POLL).await;
            }
            let network = match self
                .docker
                .inspect_network(name, None::<InspectNetworkOptions>)
                .await
            {
                Ok(n) => n,
                Err(e) if is_not_found(&e) => return Ok(NetworkRemoval::Gone),
                Err(e) => return Err(e).with_context(|| format!("inspecting network {name}")),
            };
            let attached: Vec<(String, String)> = network
                .containers
                .unwrap_or_default()
                .into_iter()
                .map(|(id, c)| {
                    let endpoint = c
                        .name
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| id.clone());
                    (id, endpoint)
                })
                .collect();
            let mut users = Vec::new();
            for (id, endpoint) in &attached {
                if self.container_exists(id).await? {
                    users.push(endpoint.clone());
                }
            }
            if !users.is_empty() {
                users.sort();
                return Ok(NetworkRemoval::InUse(users));
            }
            if !attached.is_empty() {
                let mut stale: Vec<String> = attached.iter().map(|(_, e)| e.clone()).collect();
                stale.sort();
                outcome = NetworkRemoval::StaleEndpoints(stale);
                let looks_left = NETWORK_RELEASE_ATTEMPTS - attempt - 1;
                if looks_left > 0 && looks_left <= NETWORK_RELEASE_ATTEMPTS / 2 {
                    for (_, endpoint) in &attached {
                        self.disconnect_stale_endpoint(name, endpoint).await?;
                    }
                }
                continue;
            }
            let id = network.id.unwrap_or_else(|| name.to_string());
            match self.docker.remove_network(&id).await {
                Ok(()) => return Ok(NetworkRemoval::Removed),
                Err(e) if is_not_found(&e) => return Ok(NetworkRemoval::Gone),
                // Something attached in the meantime, or an endpoint still being released:
                // look again.
                Err(e) if is_conflict(&e) || is_forbidden(&e) => {
                    outcome = NetworkRemoval::Refused(message(&e));
                }
                Err(e) => return Err(e).with_context(|| format!("removing network {name}")),
            }
        }
        Ok(outcome)
    }

    /// Force endpoint `endpoint` (named after a container that no longer exists) off network
    /// `network`.
    async fn disconnect_stale_endpoint(&self, network: &str, endpoint: &str) -> anyhow::Result<()> {
        // The engine looks the name up as a container first: never one that exists (again).
        if self.container_exists(endpoint).await? {
            return Ok(());
        }
        tracing::info!("engine: disconnecting stale endpoint {endpoint} from network {network}");
        let request = NetworkDisconnectRequest {
            container: endpoint.to_string(),
            force: Some(true),
        };
        match self.docker.disconnect_network(network, request).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) || is_forbidden(&e) => Ok(()),
            Err(e) => {
                Err(e).with_context(|| format!("disconnecting endpoint {endpoint} from {network}"))
            }
        }
    }

    /// Whether a container with this ID (or name) exists, in any state.
    async fn container_exists(&self, id: &str) -> anyhow::Result<bool> {
        match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("inspecting container {id}")),
        }
    }

    /// Remove a named volume.
    pub async fn remove_volume(&self, name: &str) -> anyhow::Result<()> {
        tracing::info!("engine: removing volume {name}");
        match self
            .docker
            .remove_volume(name, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing volume {name}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    /// An engine that answers each request with the next of `answers` (status, JSON body)
    /// and records the requests (`METHOD path`), over plain HTTP on a loopback port.
    async fn scripted_engine(
        answers: Vec<(u16, &'static str)>,
    ) -> (Engine, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let answers = Arc::new(std::sync::Mutex::new(answers.into_iter()));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, answers) = (Arc::clone(&log), Arc::clone(&answers));
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = BufReader::new(read);
                    loop {
                        let mut line = String::new();
                        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let mut length = 0;
                        loop {
                            let mut header = String::new();
                            read.read_line(&mut header).await.unwrap();
                            if header.trim().is_empty() {
                                break;
                            }
                            if let Some((k, v)) = header.split_once(':')
                                && k.eq_ignore_ascii_case("content-length")
                            {
                                length = v.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; length];
                        read.read_exact(&mut body).await.unwrap();
                        let mut words = line.split_whitespace();
                        let (method, target) = (words.next().unwrap(), words.next().unwrap());
                        let path = target.split('?').next().unwrap();
                        let path = path.trim_start_matches(|c| c != '/').to_string();
                        let path = path
                            .split_once("/networks")
                            .map(|(_, rest)| format!("/networks{rest}"))
                            .or_else(|| {
                                path.split_once("/containers")
                                    .map(|(_, rest)| format!("/containers{rest}"))
                            })
                            .unwrap_or(path);
                        log.lock().unwrap().push(format!("{method} {path}"));
                        let (status, json) = answers
                            .lock()
                            .unwrap()
                            .next()
                            .expect("an answer for each request");
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                            json.len()
                        );
                        write.write_all(reply.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        let uri = format!("tcp://127.0.0.1:{port}");
        let docker =
            bollard::Docker::connect_with_http(&uri, 10, bollard::API_DEFAULT_VERSION).unwrap();
        (
            Engine {
                docker,
                endpoint: uri,
            },
            seen,
        )
    }

    const NETWORK_WITH_GONE_ENDPOINT: &str =
        r#"{"Id":"nid","Name":"env-infra","Containers":{"ep-gone":{"Name":"env-registry"}}}"#;
    const NETWORK_EMPTY: &str = r#"{"Id":"nid","Name":"env-infra","Containers":{}}"#;
    const NO_SUCH: &str = r#"{"message":"No such container: ep-gone"}"#;
    const ACTIVE: &str = r#"{"message":"error while removing network: network env-infra id nid has active endpoints"}"#;

    #[tokio::test]
    async fn an_endpoint_the_engine_still_releases_is_waited_out_then_the_network_goes() {
        let (engine, seen) = scripted_engine(vec![
            (200, NETWORK_WITH_GONE_ENDPOINT),
            (404, NO_SUCH),
            (200, NETWORK_EMPTY),
            (403, ACTIVE),
            (200, NETWORK_EMPTY),
            (204, ""),
        ])
        .await;
        assert_eq!(
            engine.remove_network_if_unused("env-infra").await.unwrap(),
            NetworkRemoval::Removed
        );
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "GET /networks/env-infra",
                "GET /containers/ep-gone/json",
                "GET /networks/env-infra",
                "DELETE /networks/nid",
                "GET /networks/env-infra",
                "DELETE /networks/nid",
            ]
        );
    }

    #[tokio::test]
    async fn a_network_a_container_still_uses_is_kept_at_once() {
        let (engine, seen) = scripted_engine(vec![
            (
                200,
                r#"{"Id":"nid","Name":"env-infra","Containers":{"c1":{"Name":"someone"}}}"#,
            ),
            (200, r#"{"Id":"c1","Name":"/someone"}"#),
        ])
        .await;
        assert_eq!(
            engine.remove_network_if_unused("env-infra").await.unwrap(),
            NetworkRemoval::InUse(vec!["someone".into()])
        );
        assert_eq!(
            *seen.lock().unwrap(),
            ["GET /networks/env-infra", "GET /containers/c1/json"],
            "no removal is tried"
        );
    }

    #[tokio::test]
    async fn a_network_the_engine_refuses_with_nothing_attached_is_reported_as_refused() {
        let mut answers = Vec::new();
        for _ in 0..NETWORK_RELEASE_ATTEMPTS {
            answers.push((200, NETWORK_EMPTY));
            answers.push((403, ACTIVE));
        }
        let (engine, seen) = scripted_engine(answers).await;
        assert_eq!(
            engine.remove_network_if_unused("env-infra").await.unwrap(),
            NetworkRemoval::Refused(
                "error while removing network: network env-infra id nid has active endpoints"
                    .into()
            )
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2 * NETWORK_RELEASE_ATTEMPTS as usize);
        assert!(
            seen.iter()
                .all(|r| r == "GET /networks/env-infra" || r == "DELETE /networks/nid")
        );
    }

    /// Whether the `attempt`th look (from 0) is followed by a forced disconnect of stale
    /// endpoints: in the second half of the looks, never on the last.
    fn disconnects_after(attempt: u32) -> bool {
        let left = NETWORK_RELEASE_ATTEMPTS - attempt - 1;
        left > 0 && left <= NETWORK_RELEASE_ATTEMPTS / 2
    }

    /// The answers of an engine that lists the stale endpoint `env-registry` at every look,
    /// with `on_disconnect` where devenv disconnects it.
    fn stale_endpoint_every_time(
        on_disconnect: &[(u16, &'static str)],
    ) -> Vec<(u16, &'static str)> {
        let mut answers = Vec::new();
        for attempt in 0..NETWORK_RELEASE_ATTEMPTS {
            answers.push((200, NETWORK_WITH_GONE_ENDPOINT));
            answers.push((404, NO_SUCH));
            if disconnects_after(attempt) {
                answers.extend_from_slice(on_disconnect);
            }
        }
        answers
    }

    #[tokio::test]
    async fn an_endpoint_left_by_a_removed_container_is_disconnected_by_force() {
        let mut answers = Vec::new();
        let first = (0..NETWORK_RELEASE_ATTEMPTS)
            .find(|&a| disconnects_after(a))
            .unwrap();
        // Listed, its container gone, until the looks that disconnect it.
        for _ in 0..first {
            answers.push((200, NETWORK_WITH_GONE_ENDPOINT));
            answers.push((404, NO_SUCH));
        }
        answers.extend([
            (200, NETWORK_WITH_GONE_ENDPOINT),
            (404, NO_SUCH),
            (404, NO_SUCH),
            (200, ""),
            (200, NETWORK_EMPTY),
            (204, ""),
        ]);
        let (engine, seen) = scripted_engine(answers).await;
        assert_eq!(
            engine.remove_network_if_unused("env-infra").await.unwrap(),
            NetworkRemoval::Removed
        );
        let seen = seen.lock().unwrap();
        let tail: Vec<&str> = seen
            .iter()
            .rev()
            .take(6)
            .rev()
            .map(String::as_str)
            .collect();
        assert_eq!(
            tail,
            [
                "GET /networks/env-infra",
                "GET /containers/ep-gone/json",
                // The endpoint's name is no container's (again) before it goes.
                "GET /containers/env-registry/json",
                "POST /networks/env-infra/disconnect",
                "GET /networks/env-infra",
                "DELETE /networks/nid",
            ]
        );
        assert_eq!(
            seen.iter().filter(|r| r.ends_with("/disconnect")).count(),
            1,
            "not disconnected while the engine may still be releasing it"
        );
    }

    #[tokio::test]
    async fn endpoints_a_forced_disconnect_does_not_clear_are_reported_as_stale() {
        let answers = stale_endpoint_every_time(&[(404, NO_SUCH), (200, "")]);
        let (engine, seen) = scripted_engine(answers).await;
        assert_eq!(
            engine.remove_network_if_unused("env-infra").await.unwrap(),
            NetworkRemoval::StaleEndpoints(vec!["env-registry".into()])
        );
        let seen = seen.lock().unwrap();
        assert!(
            !seen.iter().any(|r| r.starts_with("DELETE")),
            "no removal is tried while the engine lists endpoints"
        );
        assert_eq!(
            seen.last().map(String::as_str),
            Some("GET /containers/ep-gone/json"),
            "the last disconnect is looked at again"
        );
    }

    #[tokio::test]
    async fn an_endpoint_whose_name_a_container_has_again_is_not_disconnected() {
        let answers = stale_endpoint_every_time(&[(200, r#"{"Id":"new","Name":"/env-registry"}"#)]);
        let (engine, seen) = scripted_engine(answers).await;
        assert_eq!(
            engine.remove_network_if_unused("env-infra").await.unwrap(),
            NetworkRemoval::StaleEndpoints(vec!["env-registry".into()])
        );
        assert!(
            !seen
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.ends_with("/disconnect")),
            "a container of that name exists: nothing is disconnected"
        );
    }
}
