//! The typed model of `devenv.yaml`: what a user may write, its built-in defaults, how it is
//! loaded (with file:line:column in every error) and validated (every problem at once); and
//! the catalog of built-in services, resolved with the user's settings into [`Service`]s.
//!
//! Not for: deciding what to do about the world (that is `plan`), nor producing files
//! (that is `render`). Everything here is pure except [`load`], which reads one file.

mod catalog;
pub mod domain;
pub mod labels;
mod load;
mod locate;
mod service;
mod shape;
mod validate;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use catalog::{
    GATEWAY_HOST_NAME, GATEWAY_LIVE_DIR, GATEWAY_STATE_DIR, KIND_NETWORK, MIRRORED, PDNS_DB,
    PDNS_INCLUDE_DIR, PDNS_SECRET_VARS, address_of, is_mirror, mirror_debug_url, mirror_of,
};
pub use catalog::{Shown, shown};
pub use load::{LoadedConfig, MAX_FILE_BYTES, load, load_str};
pub use service::{
    ConfigFile, Dependency, EnvValue, Healthcheck, Mount, MountSource, NetworkJoin, Piece,
    PortBinding, Probe, ProbeCheck, Protocol, Route, Scrape, SecretName, Service, ServiceKind,
    Tier, USER_SECRET_PREFIX, is_secret_name, pieces,
};
/// The bridge driver's option that leaves the host without an address on a network (its
/// bridge gets none), so that the host has no route to what listens there.
pub const NO_HOST_ADDRESS: &str = "com.docker.network.bridge.inhibit_ipv4";

pub use validate::{Problem, Problems, check_dns_name, check_image, shorten};

/// The file name devenv looks for in the current directory when `--config` is not given.
pub const DEFAULT_FILE: &str = "devenv.yaml";

/// The whole of `devenv.yaml`. Every key is optional; the defaults bring up the whole platform:
/// the cluster, every infrastructure service but Excalidraw, and local DNS for `macula.local`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Names the environment: the KinD cluster, the Docker network, labels and container
    /// names all derive from it. Lowercase letters, digits and `-`.
    pub name: String,
    /// The local DNS domain everything is served under.
    pub domain: String,
    /// How application URLs reach the cluster's ingress.
    pub routing: Routing,
    /// The KinD cluster.
    pub cluster: Cluster,
    /// The Docker network the infrastructure services share.
    pub network: Network,
    /// Switch whole groups of services on or off.
    pub tiers: Tiers,
    /// Per-service settings, keyed by service name (`grafana`, `registry`, ...).
    pub services: BTreeMap<String, ServiceSettings>,
    /// The built-in resolver.
    pub dns: Dns,
    /// Opt-ins for publishing outside loopback.
    pub bind: Bind,
    /// The host gateway (HTTP on :80, HTTPS on :443).
    pub gateway: Gateway,
    /// The pull-through cache the cluster's nodes pull public images through.
    pub mirror: Mirror,
    /// The directory of the devenv.yaml read (bind mounts are relative to it); not a key.
    #[serde(skip)]
    #[schemars(skip)]
    pub base_dir: Option<std::path::PathBuf>,
}

impl Config {
    /// The secrets of the user's own services that their environment refers to
    /// (`${DEVENV_SECRET_<NAME>}`), each once.
    pub fn own_secrets(&self) -> Vec<SecretName> {
        let mut out: Vec<SecretName> = Vec::new();
        for service in self.services() {
            for value in service.env.values() {
                for s in value.secrets() {
                    if matches!(s, SecretName::User(_)) && !out.contains(s) {
                        out.push(s.clone());
                    }
                }
            }
        }
        out
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "macula".into(),
            domain: "macula.local".into(),
            routing: Routing::default(),
            cluster: Cluster::default(),
            network: Network::default(),
            tiers: Tiers::default(),
            services: BTreeMap::new(),
            dns: Dns::default(),
            bind: Bind::default(),
            gateway: Gateway::default(),
            mirror: Mirror::default(),
            base_dir: None,
        }
    }
}

/// How application hostnames reach the cluster's ingress: on a loopback address of their own
/// (`split-ip`), or on 127.0.0.1 with their own ports (`ports`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Routing {
    /// `split-ip`: applications at 127.0.0.2:80/443, clean URLs. `ports`: applications at
    /// 127.0.0.1:8080/8443.
    pub mode: RoutingMode,
}

/// See [`Routing::mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingMode {
    /// Infrastructure on 127.0.0.1, applications on their own loopback address, both on :80/:443.
    #[default]
    SplitIp,
    /// Everything on 127.0.0.1; applications on the cluster's 8080/8443.
    Ports,
}

/// The KinD cluster's shape and the ports it maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// Who provides the cluster: `kind` (devenv creates it with the `kind` binary), `existing`
    /// (a cluster you run, reached through `context`: devenv configures it and never creates,
    /// stops or deletes it), or `none` (the infrastructure only).
    pub provider: ClusterProvider,
    /// With `provider: existing`, the kubeconfig context of that cluster.
    pub context: Option<String>,
    /// The pinned KinD node image (never a floating tag).
    pub node_image: String,
    /// Worker nodes beside the control plane.
    pub workers: u8,
    /// The host address the ingress ports below are published on (besides 127.0.0.2:80/443
    /// in `split-ip` mode).
    pub listen_address: Ipv4Addr,
    /// Host port for the ingress's HTTP (container port 80).
    pub http_port: u16,
    /// Host port for the ingress's HTTPS (container port 443).
    pub https_port: u16,
    /// Host UDP port for QUIC (container port 4433).
    pub quic_port: u16,
    /// Serve Gateway API beside Ingress: `up` installs the pinned standard-channel Gateway API
    /// CRDs when the cluster has none, turns on Traefik's `kubernetesGateway` provider and
    /// makes the GatewayClass `traefik` and the Gateway `devenv/devenv`. `false` leaves all
    /// of that out.
    pub gateway_api: bool,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            provider: ClusterProvider::Kind,
            context: None,
            // The default image of kind v0.33.0, pinned by the digest its release lists.
            node_image: "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5".into(),
            workers: 0,
            listen_address: Ipv4Addr::LOCALHOST,
            http_port: 8080,
            https_port: 8443,
            quic_port: 4433,
            gateway_api: true,
        }
    }
}

/// See [`Cluster::provider`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterProvider {
    /// A KinD cluster devenv creates, starts, stops and (with `down --purge`) deletes.
    #[default]
    Kind,
    /// A cluster devenv did not create, reached through `cluster.context`.
    Existing,
    /// No cluster: the infrastructure only.
    None,
}

/// The Docker network of the infrastructure services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// The network's subnet. Fixed so that service APIs can be restricted to it.
    #[schemars(with = "String")]
    pub subnet: ipnet::Ipv4Net,
}

impl Network {
    /// The part of the subnet the engine hands out to containers that ask for no address
    /// (its upper half). The lower half holds each service's fixed address
    /// ([`Service::address`]), so that no other container can take one.
    pub fn dynamic_range(&self) -> ipnet::Ipv4Net {
        let half = self.subnet.prefix_len().saturating_add(1).min(32);
        self.subnet
            .subnets(half)
            .ok()
            .and_then(|mut halves| halves.nth(1))
            .unwrap_or(self.subnet)
    }

    /// The fixed address of the `index`th built-in service: after the network's own address
    /// and its gateway (the engine's, the host's side of the bridge).
    fn service_address(&self, index: usize) -> std::net::Ipv4Addr {
        let offset = u32::try_from(index).unwrap_or(u32::MAX).saturating_add(2);
        std::net::Ipv4Addr::from(u32::from(self.subnet.network()).saturating_add(offset))
    }

    /// The fewest addresses the subnet can have: twice the fixed block (network address,
    /// gateway, one address per service), the upper half left to the engine.
    pub fn smallest_prefix() -> u8 {
        let fixed = catalog::PLATFORM as u32 + 2;
        let block = fixed.next_power_of_two();
        (32 - block.trailing_zeros() - 1) as u8
    }
}

impl Default for Network {
    fn default() -> Self {
        Network {
            subnet: "172.30.80.0/24".parse().expect("valid default subnet"),
        }
    }
}

/// Groups of services that can be switched on and off together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Tiers {
    /// Gateway, registry and its UI, PowerDNS and its database and admin UI.
    pub core: bool,
    /// Prometheus, Grafana, Loki, Tempo.
    pub observability: bool,
    /// MinIO and TimescaleDB.
    pub data: bool,
    /// Excalidraw.
    pub tools: bool,
}

impl Default for Tiers {
    fn default() -> Self {
        Tiers {
            core: true,
            observability: true,
            data: true,
            tools: true,
        }
    }
}

impl Tiers {
    /// Whether `tier` is switched on.
    pub fn enabled(&self, tier: Tier) -> bool {
        match tier {
            Tier::Core => self.core,
            Tier::Observability => self.observability,
            Tier::Data => self.data,
            Tier::Tools => self.tools,
        }
    }

    /// Switch `tier` on or off.
    pub fn set(&mut self, tier: Tier, on: bool) {
        match tier {
            Tier::Core => self.core = on,
            Tier::Observability => self.observability = on,
            Tier::Data => self.data = on,
            Tier::Tools => self.tools = on,
        }
    }
}

/// One service under `services:`: the settings a user may change about a built-in one, or,
/// under a name that is not built in, the whole definition of a service of the user's own
/// (`image` required). The keys marked "own services only" are refused for built-ins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceSettings {
    /// Switch this one service on or off (overrides its tier).
    pub enabled: Option<bool>,
    /// The image: for a built-in, another one (a mirror, an air-gapped copy, a test image); for
    /// a service of your own, what it runs. Pinned: a tag or tag@digest, never `:latest`.
    pub image: Option<String>,
    /// The host address its ports are published on (a loopback address unless
    /// `bind.allow_non_loopback`).
    pub address: Option<IpAddr>,
    /// Ports by name (`http`, `api`, ...). A number is the host port (`0`: not published); for
    /// a service of your own it is also the container port, or give
    /// `{container: 8025, host: 0}`.
    pub ports: BTreeMap<String, PortSetting>,
    /// Hostnames under the domain, replacing the defaults (`grafana` means `grafana.<domain>`).
    /// A service of your own is proxied by the gateway on :80/:443 to its `http` port; without
    /// one its names only resolve.
    pub hostnames: Option<Vec<String>>,
    /// Own services only: replaces the image's command.
    pub command: Option<Vec<String>>,
    /// Own services only: replaces the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Own services only: environment variables. `${DEVENV_SECRET_<NAME>}` in a value is a
    /// secret devenv generates once for this environment (`NAME`: capital letters, digits and
    /// `_`), kept with the other secrets (0600) and never printed.
    pub env: BTreeMap<String, String>,
    /// Own services only: the user (and group) the container runs as, `uid[:gid]` or a name.
    pub user: Option<String>,
    /// Own services only: `NAME:/path` is a named volume of the environment (kept by `down`,
    /// removed by `down --purge`); `./dir:/path` mounts a path relative to devenv.yaml,
    /// read-only unless it ends in `:rw`.
    pub volumes: Vec<String>,
    /// Own services only: a command run inside the container; the service is healthy when it
    /// exits 0. Without one, a service of your own counts as ready once it runs.
    pub healthcheck: Option<HealthcheckSetting>,
    /// Own services only: services (built-in or your own) started first, each waited for
    /// until healthy.
    pub depends_on: Vec<String>,
    /// Own services only: the tier it belongs to (switched with it); `core` by default.
    pub tier: Option<Tier>,
    /// Own services only: where Prometheus scrapes it.
    pub metrics: Option<MetricsSetting>,
}

/// A port of a service: the host port, or (services of your own) the container port with
/// the host port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortSetting {
    /// The host port (`0`: not published).
    Host(u16),
    /// The container port, published on `host` (`0` or left out: not published).
    Mapped {
        container: u16,
        #[serde(default)]
        host: u16,
    },
}

impl PortSetting {
    /// The host port; `0` when not published.
    pub fn host(self) -> u16 {
        match self {
            PortSetting::Host(p) | PortSetting::Mapped { host: p, .. } => p,
        }
    }

    /// The container port of a service of the user's own.
    pub fn container(self) -> u16 {
        match self {
            PortSetting::Host(p) => p,
            PortSetting::Mapped { container, .. } => container,
        }
    }
}

impl From<u16> for PortSetting {
    fn from(port: u16) -> PortSetting {
        PortSetting::Host(port)
    }
}

/// The healthcheck of a service of the user's own: one of `command` (run by Docker inside the
/// container), `tcp` or `http` (probed by devenv itself, for an image with no tool to check
/// with).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthcheckSetting {
    /// Run inside the container (exec form, no shell unless you name one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// devenv connects to this port (its name under `ports`, or the port in the container)
    /// and counts an accepted connection as healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<PortRef>,
    /// devenv sends `GET path` to this port and counts a 2xx or 3xx answer as healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheckSetting>,
    /// Seconds between checks.
    #[serde(default = "default_health_interval")]
    pub interval: u32,
    /// Seconds one check may take.
    #[serde(default = "default_health_timeout")]
    pub timeout: u32,
    /// Failures in a row before it is unhealthy.
    #[serde(default = "default_health_retries")]
    pub retries: u32,
    /// Seconds after start in which failures do not count.
    #[serde(default)]
    pub start_period: u32,
}

/// A port of a service: its name under `ports`, or its number in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

/// An HTTP healthcheck devenv probes itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCheckSetting {
    /// Its name under `ports`, or the port in the container.
    pub port: PortRef,
    /// The path asked for.
    #[serde(default = "default_health_path")]
    pub path: String,
}

fn default_health_path() -> String {
    "/".to_string()
}

fn default_health_interval() -> u32 {
    5
}
fn default_health_timeout() -> u32 {
    3
}
fn default_health_retries() -> u32 {
    12
}

/// Where Prometheus scrapes a service of the user's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsSetting {
    /// The name of one of its ports.
    pub port: String,
    /// The path of its metrics.
    #[serde(default = "default_metrics_path")]
    pub path: String,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

/// The resolver's default port. Above 1024, so it needs no privilege; below every OS's
/// ephemeral range (Linux 32768-60999, macOS and Windows 49152-65535), so no outgoing socket
/// holds it by chance; and none of the ports local resolvers default to: 53 (DNS), 5353 (mDNS,
/// which macOS's resolver also treats as multicast), 5354 (mDNSResponder), 5355 (LLMNR,
/// systemd-resolved), 5300 (devenv's PowerDNS), 5335 (unbound in the Pi-hole guide), 5053
/// (cloudflared proxy-dns), 1053, 8053, 9053 and 10053 (CoreDNS, dnsmasq, Tor and kube-dns
/// examples), 8600 (Consul). It ends in 53 to be recognisable as DNS.
pub const DEFAULT_DNS_PORT: u16 = 20053;

/// The built-in resolver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// Whether `devenv up` runs the resolver in the background (and `down` stops it). `false`
    /// for those who run their own (`devenv dns serve`, another resolver with the zone).
    pub enabled: bool,
    /// Where `devenv dns serve` listens (UDP and TCP).
    pub address: IpAddr,
    /// Its port, UDP and TCP. The default needs no privilege and is named in the OS routing
    /// (`dns install`); 53 needs privilege (or `setcap cap_net_bind_service`); 0 picks a free
    /// one at each start.
    pub port: u16,
    /// TTL of the zone's answers, in seconds.
    pub ttl: u32,
    /// Forwarders for names outside the domain. Empty: the system's resolvers.
    pub upstreams: Vec<std::net::SocketAddr>,
    /// The address infrastructure names resolve to (the host gateway).
    pub infrastructure: Ipv4Addr,
    /// The address application names resolve to in `split-ip` mode (the cluster's ingress).
    pub applications: Ipv4Addr,
    /// Answer AAAA queries for the zone with `::1`.
    pub ipv6: bool,
    /// Answers for queries from these networks (Docker, KinD), which cannot reach the host's
    /// loopback.
    pub views: Vec<DnsView>,
    /// Extra static records.
    pub records: Vec<DnsRecord>,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            enabled: true,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_DNS_PORT,
            ttl: 5,
            upstreams: Vec::new(),
            infrastructure: Ipv4Addr::LOCALHOST,
            applications: Ipv4Addr::new(127, 0, 0, 2),
            ipv6: false,
            views: Vec::new(),
            records: Vec::new(),
        }
    }
}

/// The answers given to clients on one network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsView {
    /// Source addresses this view applies to.
    #[schemars(with = "String")]
    pub cidr: ipnet::IpNet,
    /// Where infrastructure names point for these clients.
    pub infrastructure: Ipv4Addr,
    /// Where application names point for these clients.
    pub applications: Ipv4Addr,
}

/// One extra record in the zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsRecord {
    /// A name under the domain (`foo` or `foo.macula.local`).
    pub name: String,
    /// `A`, `AAAA`, `CNAME` or `TXT`.
    #[serde(rename = "type")]
    pub kind: RecordKind,
    /// The record's data.
    pub value: String,
}

/// The record types `dns.records` may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordKind {
    A,
    #[allow(clippy::upper_case_acronyms)]
    AAAA,
    #[allow(clippy::upper_case_acronyms)]
    CNAME,
    #[allow(clippy::upper_case_acronyms)]
    TXT,
}

/// Publishing outside loopback is an explicit choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Bind {
    /// Allow addresses outside 127.0.0.0/8 (and ::1) for published ports and the resolver.
    pub allow_non_loopback: bool,
}

impl Config {
    /// The address application names resolve to from the host, by routing mode.
    pub fn applications_address(&self) -> Ipv4Addr {
        match self.routing.mode {
            RoutingMode::SplitIp => self.dns.applications,
            RoutingMode::Ports => self.dns.infrastructure,
        }
    }

    /// The UDP ports HTTP/3 is published on at the applications' address in split-ip mode: 443
    /// (the clean URL's own port) and `cluster.quic_port` (the port the ingress advertises in
    /// `Alt-Svc`, see `render::cluster::traefik::Http3`), once each.
    pub fn application_quic_ports(&self) -> Vec<u16> {
        let mut ports = vec![443];
        if self.cluster.quic_port != 443 {
            ports.push(self.cluster.quic_port);
        }
        ports
    }

    /// The fully qualified name for a label under the domain (`grafana` -> `grafana.macula.local`).
    pub fn fqdn(&self, label: &str) -> String {
        if label.ends_with(&format!(".{}", self.domain)) || label == self.domain {
            label.to_string()
        } else {
            format!("{label}.{}", self.domain)
        }
    }

    /// The Docker network the infrastructure services share.
    pub fn network_name(&self) -> String {
        format!("{}-infra", self.name)
    }

    /// devenv's internal network for what only Prometheus may reach (the registry's debug
    /// listener): no route out, and no address on the host, so neither the host, KinD's
    /// network nor the other infrastructure containers reach what listens there.
    ///
    /// The bridge driver's [`NO_HOST_ADDRESS`] option keeps the host off it.
    pub fn metrics_network_name(&self) -> String {
        format!("{}-metrics", self.name)
    }

    /// The enabled services, resolved into complete specs, in a stable order
    /// (dependencies before dependents).
    pub fn services(&self) -> Vec<Service> {
        catalog::resolve(self)
    }

    /// Every built-in service name, enabled or not.
    pub fn known_services() -> &'static [&'static str] {
        catalog::NAMES
    }

    /// Every service name this configuration knows, enabled or not: the built-ins, then the
    /// user's own.
    pub fn service_names(&self) -> Vec<String> {
        catalog::NAMES
            .iter()
            .map(|n| n.to_string())
            .chain(catalog::own_names(self).map(str::to_string))
            .collect()
    }
}

/// The pull-through cache: one registry in proxy mode per public registry it mirrors (the
/// services `mirror` for Docker Hub, `mirror-ghcr`, `mirror-quay`, `mirror-k8s`), each with its
/// own volume, kept across `down` and across re-creation of the cluster. containerd in every
/// node of a KinD cluster tries the mirror first and the registry itself after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Mirror {
    /// The registries mirrored: any of `docker.io`, `ghcr.io`, `quay.io`, `registry.k8s.io`.
    /// Empty: no mirror.
    pub registries: Vec<String>,
    /// Where a mirrored registry is fetched from instead of its public address (a company's
    /// own mirror, or a registry standing in for it), as `registry: http(s)://host[:port]`.
    /// Nodes fall back to it too when the mirror does not answer.
    pub remote: BTreeMap<String, String>,
}

impl Default for Mirror {
    fn default() -> Self {
        Mirror {
            registries: vec!["docker.io".to_string()],
            remote: BTreeMap::new(),
        }
    }
}

/// The host gateway's behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Gateway {
    /// Answer plain HTTP on the named hosts (infrastructure names and routes) with a
    /// redirect (308) to HTTPS on the gateway's published HTTPS port; none while HTTPS is not
    /// published. Off by default: HTTP keeps working for clients that do not trust devenv's CA.
    pub redirect_http: bool,
}
