//! The built-in services of the platform (seed 003) and their resolution, with the user's
//! settings applied, into complete [`Service`] specs.
//!
//! A [`Service`] is the one description both the compose renderer and the Docker driver
//! consume, so the compose file and what devenv runs cannot disagree. Not for: rendering the
//! services' own config files (that is `render`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use super::{Config, ServiceSettings};

/// Every built-in service, in start order (each after what it depends on).
pub const NAMES: &[&str] = &[
    "registry",
    "registry-ui",
    "pdns-db",
    "pdns",
    "pdns-admin",
    "prometheus",
    "loki",
    "tempo",
    "grafana",
    "minio",
    "timescaledb",
    "excalidraw",
    "gateway",
];

/// A group of services switched on and off together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Core,
    Observability,
    Data,
    Tools,
}

/// Transport of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`, as Docker and compose spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One port published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortBinding {
    /// The port's name in `services.<svc>.ports`.
    pub name: String,
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// A generated secret. Its value lives only in the state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum SecretName {
    PdnsDbPassword,
    PdnsApiKey,
    PdnsAdminSecretKey,
    GrafanaAdminPassword,
    MinioRootPassword,
    TimescalePassword,
}

impl SecretName {
    /// All secrets, in the order they are written to the secrets file.
    pub const ALL: [SecretName; 6] = [
        SecretName::PdnsDbPassword,
        SecretName::PdnsApiKey,
        SecretName::PdnsAdminSecretKey,
        SecretName::GrafanaAdminPassword,
        SecretName::MinioRootPassword,
        SecretName::TimescalePassword,
    ];

    /// The variable name in the secrets env file and in the compose file's `${...}` references.
    pub fn var(self) -> &'static str {
        match self {
            SecretName::PdnsDbPassword => "DEVENV_PDNS_DB_PASSWORD",
            SecretName::PdnsApiKey => "DEVENV_PDNS_API_KEY",
            SecretName::PdnsAdminSecretKey => "DEVENV_PDNS_ADMIN_SECRET_KEY",
            SecretName::GrafanaAdminPassword => "DEVENV_GRAFANA_ADMIN_PASSWORD",
            SecretName::MinioRootPassword => "DEVENV_MINIO_ROOT_PASSWORD",
            SecretName::TimescalePassword => "DEVENV_TIMESCALE_PASSWORD",
        }
    }
}

/// An environment variable's value: literal, or a reference to a generated secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum EnvValue {
    Plain(String),
    Secret(SecretName),
}

/// A rendered config file that a service mounts. Its path is relative to the compose directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ConfigFile {
    GatewayNginx,
    Prometheus,
    GrafanaDatasources,
    Loki,
    Tempo,
    PdnsConf,
    /// PowerDNS's secret settings as a Jinja template of environment variables, rendered
    /// inside the container by the image's startup script (see [`PDNS_INCLUDE_DIR`]).
    PdnsSecrets,
    PdnsSchema,
}

impl ConfigFile {
    /// Path relative to the directory of `infra.yaml`.
    pub fn path(self) -> &'static str {
        match self {
            ConfigFile::GatewayNginx => "gateway/nginx.conf",
            ConfigFile::Prometheus => "prometheus/prometheus.yml",
            ConfigFile::GrafanaDatasources => "grafana/datasources.yaml",
            ConfigFile::Loki => "loki/loki.yaml",
            ConfigFile::Tempo => "tempo/tempo.yaml",
            ConfigFile::PdnsConf => "pdns/pdns.conf",
            ConfigFile::PdnsSecrets => "pdns/secrets.j2",
            ConfigFile::PdnsSchema => "pdns/schema.pgsql.sql",
        }
    }
}

/// What a mount brings into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum MountSource {
    /// A named volume (full Docker name), kept across `down` unless `--purge`.
    Volume(String),
    /// A rendered config file, mounted read-only.
    Config(ConfigFile),
}

/// One mount into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
}

/// A probe run inside the container; Docker's health state follows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// Exec form, without the leading `CMD`.
    pub test: Vec<String>,
    pub interval_s: u32,
    pub timeout_s: u32,
    pub retries: u32,
    pub start_period_s: u32,
}

/// A service that must be healthy before this one starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub service: String,
}

/// How a hostname of a service is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// Proxied by the host gateway on :80.
    Http,
    /// The Docker registry: proxied with the headers Docker clients need.
    Registry,
    /// Not HTTP (Postgres): the name resolves, the client connects to the published port.
    Tcp,
}

/// A hostname under the domain that leads to one port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Fully qualified.
    pub hostname: String,
    pub container_port: u16,
    pub kind: ServiceKind,
}

/// A complete, resolved infrastructure service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// The service's name (`grafana`); also its alias on the infrastructure network.
    pub name: String,
    /// The Docker container name (`macula-grafana`).
    pub container_name: String,
    pub tier: Tier,
    pub image: String,
    /// Replaces the image's entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command when not empty.
    pub command: Vec<String>,
    pub env: BTreeMap<String, EnvValue>,
    pub ports: Vec<PortBinding>,
    pub mounts: Vec<Mount>,
    pub healthcheck: Healthcheck,
    pub depends_on: Vec<Dependency>,
    pub routes: Vec<Route>,
    /// Port and path Prometheus scrapes, where the service exposes metrics.
    pub metrics: Option<(u16, String)>,
    /// Other Docker networks it joins besides the infrastructure network (`kind`).
    pub extra_networks: Vec<String>,
}

/// The Docker network KinD puts its nodes on.
pub const KIND_NETWORK: &str = "kind";

/// The directory pdns.conf includes (`include-dir`) in the PowerDNS container, where the
/// image's startup script (`pdns_server-startup`, under tini) writes its rendered templates:
/// for each name `N` in the `TEMPLATE_FILES` environment variable it renders
/// `/etc/powerdns/templates.d/N.j2` with Jinja, the container's environment as the values,
/// into `N.conf` here, then execs pdns_server. This is how the database password and the API
/// key reach PowerDNS: never on its command line (world-readable in /proc on the host), never
/// in a rendered file.
pub const PDNS_INCLUDE_DIR: &str = "/etc/powerdns/pdns.d";
/// The directory the PowerDNS image's startup script reads templates from.
pub const PDNS_TEMPLATES_DIR: &str = "/etc/powerdns/templates.d";
/// The name, in `TEMPLATE_FILES`, of the secrets template ([`ConfigFile::PdnsSecrets`]).
pub const PDNS_SECRETS_TEMPLATE: &str = "secrets";
/// The environment variables the secrets template reads: the database password, the API key.
pub const PDNS_SECRET_VARS: [(&str, SecretName); 2] = [
    ("PDNS_DB_PASSWORD", SecretName::PdnsDbPassword),
    ("PDNS_API_KEY", SecretName::PdnsApiKey),
];

/// A port a built-in service may publish.
struct PortDef {
    name: &'static str,
    container: u16,
    /// Published on this host port by default; `None`: only through the gateway.
    host: Option<u16>,
    protocols: &'static [Protocol],
}

const TCP: &[Protocol] = &[Protocol::Tcp];
const TCP_UDP: &[Protocol] = &[Protocol::Tcp, Protocol::Udp];

/// The fixed facts of one built-in service.
struct Definition {
    name: &'static str,
    tier: Tier,
    image: &'static str,
    ports: &'static [PortDef],
    /// Labels under the domain, each with the container port it leads to.
    hostnames: &'static [(&'static str, u16)],
    kind: ServiceKind,
    /// Services it waits for (when enabled).
    after: &'static [&'static str],
}

const fn port(name: &'static str, container: u16, host: Option<u16>) -> PortDef {
    PortDef {
        name,
        container,
        host,
        protocols: TCP,
    }
}

/// The built-in services. Images are pinned; why each version was chosen is in README.md.
const DEFINITIONS: &[Definition] = &[
    Definition {
        name: "registry",
        tier: Tier::Core,
        image: "registry:3.0.0",
        ports: &[port("api", 5000, Some(5001))],
        hostnames: &[("registry", 5000)],
        kind: ServiceKind::Registry,
        after: &[],
    },
    Definition {
        name: "registry-ui",
        tier: Tier::Core,
        image: "joxit/docker-registry-ui:2.5.7",
        ports: &[port("http", 80, None)],
        hostnames: &[("registry-ui", 80)],
        kind: ServiceKind::Http,
        after: &["registry"],
    },
    Definition {
        name: "pdns-db",
        tier: Tier::Core,
        image: "postgres:16.6-alpine",
        ports: &[port("postgres", 5432, None)],
        hostnames: &[],
        kind: ServiceKind::Tcp,
        after: &[],
    },
    Definition {
        name: "pdns",
        tier: Tier::Core,
        image: "powerdns/pdns-auth-49:4.9.4",
        ports: &[
            PortDef {
                name: "dns",
                container: 5300,
                host: Some(5300),
                protocols: TCP_UDP,
            },
            port("api", 8081, None),
        ],
        hostnames: &[("dns", 8081)],
        kind: ServiceKind::Http,
        after: &["pdns-db"],
    },
    Definition {
        name: "pdns-admin",
        tier: Tier::Core,
        image: "powerdnsadmin/pda-legacy:v0.4.2",
        ports: &[port("http", 80, None)],
        hostnames: &[("dns-admin", 80)],
        kind: ServiceKind::Http,
        after: &["pdns"],
    },
    Definition {
        name: "prometheus",
        tier: Tier::Observability,
        image: "prom/prometheus:v3.1.0",
        ports: &[port("http", 9090, Some(9090))],
        hostnames: &[("prometheus", 9090)],
        kind: ServiceKind::Http,
        after: &[],
    },
    Definition {
        name: "loki",
        tier: Tier::Observability,
        image: "grafana/loki:3.3.2",
        ports: &[port("http", 3100, Some(3100))],
        hostnames: &[("loki", 3100)],
        kind: ServiceKind::Http,
        after: &[],
    },
    Definition {
        name: "tempo",
        tier: Tier::Observability,
        image: "grafana/tempo:2.6.1",
        ports: &[
            port("http", 3200, Some(3200)),
            port("otlp-grpc", 4317, Some(4317)),
            port("otlp-http", 4318, Some(4318)),
        ],
        hostnames: &[("tempo", 3200)],
        kind: ServiceKind::Http,
        after: &[],
    },
    Definition {
        name: "grafana",
        tier: Tier::Observability,
        image: "grafana/grafana:11.4.0",
        ports: &[port("http", 3000, Some(3000))],
        hostnames: &[("grafana", 3000)],
        kind: ServiceKind::Http,
        after: &["prometheus", "loki", "tempo"],
    },
    Definition {
        name: "minio",
        tier: Tier::Data,
        image: "minio/minio:RELEASE.2025-04-22T22-12-26Z",
        ports: &[
            port("api", 9000, Some(9000)),
            port("console", 9001, Some(9001)),
        ],
        hostnames: &[("s3", 9000), ("s3-console", 9001)],
        kind: ServiceKind::Http,
        after: &[],
    },
    Definition {
        name: "timescaledb",
        tier: Tier::Data,
        image: "timescale/timescaledb:2.17.2-pg16",
        ports: &[port("postgres", 5432, Some(5432))],
        hostnames: &[("postgres", 5432)],
        kind: ServiceKind::Tcp,
        after: &[],
    },
    Definition {
        name: "excalidraw",
        tier: Tier::Tools,
        image: "excalidraw/excalidraw:sha-4bfc5bb",
        ports: &[port("http", 80, None)],
        hostnames: &[("draw", 80)],
        kind: ServiceKind::Http,
        after: &[],
    },
    Definition {
        name: "gateway",
        tier: Tier::Core,
        image: "nginx:1.28.0-alpine",
        ports: &[port("http", 80, Some(80))],
        hostnames: &[],
        kind: ServiceKind::Http,
        after: &[],
    },
];

/// The container port of `service`'s port `port` (`registry`, `api` -> 5000), whether or not
/// it is published on the host: how other containers on its networks reach it.
pub fn container_port(service: &str, port: &str) -> Option<u16> {
    definition(service)?
        .ports
        .iter()
        .find(|p| p.name == port)
        .map(|p| p.container)
}

fn definition(name: &str) -> Option<&'static Definition> {
    DEFINITIONS.iter().find(|d| d.name == name)
}

/// The port names a service has, for validation messages.
pub(super) fn port_names(service: &str) -> Vec<&'static str> {
    definition(service)
        .map(|d| d.ports.iter().map(|p| p.name).collect())
        .unwrap_or_default()
}

/// Whether a service is switched on, by its own setting or else its tier.
pub(super) fn is_enabled(config: &Config, name: &str) -> bool {
    let Some(def) = definition(name) else {
        return false;
    };
    config
        .services
        .get(name)
        .and_then(|s| s.enabled)
        .unwrap_or_else(|| config.tiers.enabled(def.tier))
}

fn wget(url: &str) -> Vec<String> {
    ["wget", "-q", "-O", "/dev/null", url]
        .into_iter()
        .map(String::from)
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn check(test: Vec<String>, start_period_s: u32) -> Healthcheck {
    Healthcheck {
        test,
        interval_s: 5,
        timeout_s: 3,
        retries: 12,
        start_period_s,
    }
}

fn plain(value: impl Into<String>) -> EnvValue {
    EnvValue::Plain(value.into())
}

/// Resolve every enabled service, in [`NAMES`] order.
pub(super) fn resolve(config: &Config) -> Vec<Service> {
    NAMES
        .iter()
        .filter(|name| is_enabled(config, name))
        .filter_map(|name| definition(name))
        .map(|def| resolve_one(config, def))
        .collect()
}

fn resolve_one(config: &Config, def: &Definition) -> Service {
    let empty = ServiceSettings::default();
    let settings = config.services.get(def.name).unwrap_or(&empty);
    let address = settings.address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut ports = Vec::new();
    for p in def.ports {
        let host = settings.ports.get(p.name).copied().or(p.host).unwrap_or(0);
        if host == 0 {
            continue;
        }
        for &protocol in p.protocols {
            ports.push(PortBinding {
                name: p.name.to_string(),
                host_ip: address,
                host_port: host,
                container_port: p.container,
                protocol,
            });
        }
    }
    let routes: Vec<Route> = match &settings.hostnames {
        Some(labels) => {
            let target = def.hostnames.first().map(|h| h.1).unwrap_or(0);
            labels
                .iter()
                .map(|l| Route {
                    hostname: config.fqdn(l),
                    container_port: target,
                    kind: def.kind,
                })
                .collect()
        }
        None => def
            .hostnames
            .iter()
            .map(|(label, port)| Route {
                hostname: config.fqdn(label),
                container_port: *port,
                kind: def.kind,
            })
            .collect(),
    };
    let volume =
        |suffix: &str| MountSource::Volume(format!("{}-{}-{suffix}", config.name, def.name));
    let data = |target: &str| Mount {
        source: volume("data"),
        target: target.to_string(),
        read_only: false,
    };
    let conf = |file: ConfigFile, target: &str| Mount {
        source: MountSource::Config(file),
        target: target.to_string(),
        read_only: true,
    };
    let mut env = BTreeMap::new();
    let mut command = Vec::new();
    let mut mounts = Vec::new();
    let mut metrics = None;
    let mut extra_networks = Vec::new();
    let healthcheck;
    match def.name {
        "registry" => {
            env.insert("REGISTRY_STORAGE_DELETE_ENABLED".into(), plain("true"));
            env.insert("REGISTRY_HTTP_DEBUG_ADDR".into(), plain("0.0.0.0:5001"));
            env.insert(
                "REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED".into(),
                plain("true"),
            );
            // Registry 3 exports traces by default and logs every failed export otherwise.
            env.insert("OTEL_TRACES_EXPORTER".into(), plain("none"));
            mounts.push(data("/var/lib/registry"));
            metrics = Some((5001, "/metrics".to_string()));
            extra_networks.push(KIND_NETWORK.to_string());
            healthcheck = check(wget("http://127.0.0.1:5000/v2/"), 5);
        }
        "registry-ui" => {
            env.insert("SINGLE_REGISTRY".into(), plain("true"));
            env.insert(
                "REGISTRY_TITLE".into(),
                plain(format!("{} registry", config.name)),
            );
            env.insert("NGINX_PROXY_PASS_URL".into(), plain("http://registry:5000"));
            env.insert("DELETE_IMAGES".into(), plain("true"));
            healthcheck = check(wget("http://127.0.0.1:80/"), 5);
        }
        "pdns-db" => {
            env.insert("POSTGRES_USER".into(), plain("pdns"));
            env.insert("POSTGRES_DB".into(), plain("pdns"));
            env.insert(
                "POSTGRES_PASSWORD".into(),
                EnvValue::Secret(SecretName::PdnsDbPassword),
            );
            mounts.push(data("/var/lib/postgresql/data"));
            mounts.push(conf(
                ConfigFile::PdnsSchema,
                "/docker-entrypoint-initdb.d/10-pdns-schema.sql",
            ));
            healthcheck = check(
                strings(&[
                    "pg_isready",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "pdns",
                    "-d",
                    "pdns",
                ]),
                10,
            );
        }
        "pdns" => {
            for (var, secret) in PDNS_SECRET_VARS {
                env.insert(var.into(), EnvValue::Secret(secret));
            }
            // The image's own entrypoint (tini, then its startup script) renders the secrets
            // template from these variables into PDNS_INCLUDE_DIR before it execs pdns_server.
            // Not PDNS_AUTH_API_KEY, the script's shortcut: its generated config would open the
            // webserver to 0.0.0.0/0.
            env.insert("TEMPLATE_FILES".into(), plain(PDNS_SECRETS_TEMPLATE));
            mounts.push(conf(ConfigFile::PdnsConf, "/etc/powerdns/pdns.conf"));
            mounts.push(conf(
                ConfigFile::PdnsSecrets,
                &format!("{PDNS_TEMPLATES_DIR}/{PDNS_SECRETS_TEMPLATE}.j2"),
            ));
            metrics = Some((8081, "/metrics".to_string()));
            healthcheck = check(strings(&["pdns_control", "rping"]), 10);
        }
        "pdns-admin" => {
            env.insert(
                "SECRET_KEY".into(),
                EnvValue::Secret(SecretName::PdnsAdminSecretKey),
            );
            env.insert(
                "SQLALCHEMY_DATABASE_URI".into(),
                plain("sqlite:////data/powerdns-admin.db"),
            );
            mounts.push(data("/data"));
            healthcheck = check(wget("http://127.0.0.1:80/login"), 20);
        }
        "prometheus" => {
            command = strings(&[
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                "--web.enable-lifecycle",
                "--web.enable-remote-write-receiver",
            ]);
            mounts.push(conf(
                ConfigFile::Prometheus,
                "/etc/prometheus/prometheus.yml",
            ));
            mounts.push(data("/prometheus"));
            metrics = Some((9090, "/metrics".to_string()));
            healthcheck = check(wget("http://127.0.0.1:9090/-/healthy"), 5);
        }
        "loki" => {
            command = strings(&["-config.file=/etc/loki/loki.yaml"]);
            mounts.push(conf(ConfigFile::Loki, "/etc/loki/loki.yaml"));
            mounts.push(data("/loki"));
            metrics = Some((3100, "/metrics".to_string()));
            healthcheck = check(wget("http://127.0.0.1:3100/ready"), 20);
        }
        "tempo" => {
            command = strings(&["-config.file=/etc/tempo/tempo.yaml"]);
            mounts.push(conf(ConfigFile::Tempo, "/etc/tempo/tempo.yaml"));
            mounts.push(data("/var/tempo"));
            metrics = Some((3200, "/metrics".to_string()));
            healthcheck = check(wget("http://127.0.0.1:3200/ready"), 20);
        }
        "grafana" => {
            env.insert("GF_SECURITY_ADMIN_USER".into(), plain("admin"));
            env.insert(
                "GF_SECURITY_ADMIN_PASSWORD".into(),
                EnvValue::Secret(SecretName::GrafanaAdminPassword),
            );
            let root = routes
                .first()
                .map(|r| format!("http://{}/", r.hostname))
                .unwrap_or_else(|| "http://localhost:3000/".to_string());
            env.insert("GF_SERVER_ROOT_URL".into(), plain(root));
            env.insert("GF_ANALYTICS_REPORTING_ENABLED".into(), plain("false"));
            env.insert("GF_ANALYTICS_CHECK_FOR_UPDATES".into(), plain("false"));
            mounts.push(conf(
                ConfigFile::GrafanaDatasources,
                "/etc/grafana/provisioning/datasources/devenv.yaml",
            ));
            mounts.push(data("/var/lib/grafana"));
            metrics = Some((3000, "/metrics".to_string()));
            healthcheck = check(wget("http://127.0.0.1:3000/api/health"), 10);
        }
        "minio" => {
            command = strings(&["server", "/data", "--console-address", ":9001"]);
            env.insert("MINIO_ROOT_USER".into(), plain("devenv"));
            env.insert(
                "MINIO_ROOT_PASSWORD".into(),
                EnvValue::Secret(SecretName::MinioRootPassword),
            );
            // Metrics without a bearer token, so Prometheus scrapes them like every other
            // service. Anyone who reaches port 9000 can read them: the infrastructure network
            // and, since 9000 is published, processes on this host. Publishing is on loopback,
            // which keeps them off the LAN (unless `bind.allow_non_loopback` and a non-loopback
            // `address` are set on purpose).
            env.insert("MINIO_PROMETHEUS_AUTH_TYPE".into(), plain("public"));
            mounts.push(data("/data"));
            metrics = Some((9000, "/minio/v2/metrics/cluster".to_string()));
            healthcheck = check(strings(&["mc", "ready", "local"]), 5);
        }
        "timescaledb" => {
            env.insert("POSTGRES_USER".into(), plain("devenv"));
            env.insert("POSTGRES_DB".into(), plain("devenv"));
            env.insert(
                "POSTGRES_PASSWORD".into(),
                EnvValue::Secret(SecretName::TimescalePassword),
            );
            mounts.push(data("/var/lib/postgresql/data"));
            healthcheck = check(
                strings(&[
                    "pg_isready",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "devenv",
                    "-d",
                    "devenv",
                ]),
                10,
            );
        }
        "excalidraw" => {
            healthcheck = check(wget("http://127.0.0.1:80/"), 5);
        }
        "gateway" => {
            mounts.push(conf(ConfigFile::GatewayNginx, "/etc/nginx/nginx.conf"));
            healthcheck = check(wget("http://127.0.0.1:80/health"), 2);
        }
        other => unreachable!("service {other} has a definition but no resolution"),
    }
    Service {
        name: def.name.to_string(),
        container_name: format!("{}-{}", config.name, def.name),
        tier: def.tier,
        image: settings
            .image
            .clone()
            .unwrap_or_else(|| def.image.to_string()),
        // Every built-in service runs its image's own entrypoint.
        entrypoint: None,
        command,
        env,
        ports,
        mounts,
        healthcheck,
        depends_on: def
            .after
            .iter()
            .filter(|d| is_enabled(config, d))
            .map(|d| Dependency {
                service: d.to_string(),
            })
            .collect(),
        routes,
        metrics,
        extra_networks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_a_definition_and_dependencies_come_first() {
        for (i, name) in NAMES.iter().enumerate() {
            let def = definition(name).unwrap_or_else(|| panic!("{name} has no definition"));
            for dep in def.after {
                let j = NAMES
                    .iter()
                    .position(|n| n == dep)
                    .expect("dependency is known");
                assert!(j < i, "{dep} must come before {name}");
            }
        }
        assert_eq!(NAMES.len(), DEFINITIONS.len());
    }

    #[test]
    fn default_images_are_pinned() {
        for def in DEFINITIONS {
            let tag = def.image.rsplit_once(':').map(|t| t.1).unwrap_or("");
            assert!(
                !tag.is_empty() && tag != "latest",
                "{} is not pinned",
                def.image
            );
        }
    }

    #[test]
    fn disabling_a_tier_drops_its_services_and_their_dependency_edges() {
        let mut config = Config::default();
        config.tiers.observability = false;
        let services = config.services();
        assert!(services.iter().all(|s| s.tier != Tier::Observability));
        config.tiers.observability = true;
        config.services.insert(
            "loki".into(),
            ServiceSettings {
                enabled: Some(false),
                ..Default::default()
            },
        );
        let grafana = config
            .services()
            .into_iter()
            .find(|s| s.name == "grafana")
            .expect("grafana enabled");
        let deps: Vec<_> = grafana
            .depends_on
            .iter()
            .map(|d| d.service.as_str())
            .collect();
        assert_eq!(deps, ["prometheus", "tempo"]);
    }

    #[test]
    fn settings_override_image_address_ports_and_hostnames() {
        let mut config = Config::default();
        config.services.insert(
            "grafana".into(),
            ServiceSettings {
                image: Some("local/grafana:test".into()),
                address: Some("127.0.0.3".parse().unwrap()),
                ports: [("http".to_string(), 3300)].into(),
                hostnames: Some(vec!["metrics".into()]),
                ..Default::default()
            },
        );
        let g = config
            .services()
            .into_iter()
            .find(|s| s.name == "grafana")
            .unwrap();
        assert_eq!(g.image, "local/grafana:test");
        assert_eq!(g.ports[0].host_ip.to_string(), "127.0.0.3");
        assert_eq!(g.ports[0].host_port, 3300);
        assert_eq!(g.routes[0].hostname, "metrics.macula.local");
        assert_eq!(g.routes[0].container_port, 3000);
    }
}
