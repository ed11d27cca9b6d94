//! The resolved description of an infrastructure service — [`Service`] and its parts (ports,
//! mounts, env values, healthcheck, routes) — as the catalog produces it and the compose
//! renderer, the services' config renderers and the Docker driver consume it.
//!
//! Not for: which services exist or what they run (that is the catalog's definitions).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

/// A group of services switched on and off together.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum SecretName {
    PdnsDbPassword,
    PdnsApiKey,
    PdnsAdminSecretKey,
    GrafanaAdminPassword,
    MinioRootPassword,
    TimescalePassword,
    /// One a service of the user's own asks for with `${DEVENV_SECRET_<NAME>}`: its `NAME`.
    User(String),
}

/// The prefix of the variables of the user's own secrets.
pub const USER_SECRET_PREFIX: &str = "DEVENV_SECRET_";

impl SecretName {
    /// The built-in secrets, in the order they are written to the secrets file.
    pub const ALL: [SecretName; 6] = [
        SecretName::PdnsDbPassword,
        SecretName::PdnsApiKey,
        SecretName::PdnsAdminSecretKey,
        SecretName::GrafanaAdminPassword,
        SecretName::MinioRootPassword,
        SecretName::TimescalePassword,
    ];

    /// The variable name in the secrets env file and in the compose file's `${...}` references.
    pub fn var(&self) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(match self {
            SecretName::PdnsDbPassword => "DEVENV_PDNS_DB_PASSWORD",
            SecretName::PdnsApiKey => "DEVENV_PDNS_API_KEY",
            SecretName::PdnsAdminSecretKey => "DEVENV_PDNS_ADMIN_SECRET_KEY",
            SecretName::GrafanaAdminPassword => "DEVENV_GRAFANA_ADMIN_PASSWORD",
            SecretName::MinioRootPassword => "DEVENV_MINIO_ROOT_PASSWORD",
            SecretName::TimescalePassword => "DEVENV_TIMESCALE_PASSWORD",
            SecretName::User(name) => {
                return std::borrow::Cow::Owned(format!("{USER_SECRET_PREFIX}{name}"));
            }
        })
    }

    /// The secret a variable of the secrets file names, built-in or the user's own.
    pub fn from_var(var: &str) -> Option<SecretName> {
        if let Some(builtin) = SecretName::ALL.into_iter().find(|s| s.var() == var) {
            return Some(builtin);
        }
        let name = var.strip_prefix(USER_SECRET_PREFIX)?;
        is_secret_name(name).then(|| SecretName::User(name.to_string()))
    }
}

/// Whether `name` may name a secret of the user's own: capital letters, digits and `_`,
/// starting with a letter, at most 64.
pub fn is_secret_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A piece of an environment value of a service of the user's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Piece {
    Text(String),
    Secret(SecretName),
}

/// `value` split into text and `${DEVENV_SECRET_<NAME>}` references. A `${DEVENV_SECRET_`
/// that does not close or names no valid secret is an error saying which.
pub fn pieces(value: &str) -> Result<Vec<Piece>, String> {
    let open = format!("${{{USER_SECRET_PREFIX}");
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find(&open) {
        if at > 0 {
            out.push(Piece::Text(rest[..at].to_string()));
        }
        let after = &rest[at + open.len()..];
        let Some(end) = after.find('}') else {
            return Err(format!("`{open}` is not closed with `}}`"));
        };
        let name = &after[..end];
        if !is_secret_name(name) {
            return Err(format!(
                "`{open}{}}}` does not name a secret (capital letters, digits and `_`, starting with a letter)",
                super::shorten(name)
            ));
        }
        out.push(Piece::Secret(SecretName::User(name.to_string())));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

/// An environment variable's value: literal, or a reference to a generated secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum EnvValue {
    Plain(String),
    Secret(SecretName),
    /// Text with secrets in it (services of the user's own).
    Template(Vec<Piece>),
}

impl EnvValue {
    /// The secrets it uses.
    pub fn secrets(&self) -> Vec<&SecretName> {
        match self {
            EnvValue::Plain(_) => Vec::new(),
            EnvValue::Secret(s) => vec![s],
            EnvValue::Template(pieces) => pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Secret(s) => Some(s),
                    Piece::Text(_) => None,
                })
                .collect(),
        }
    }

    /// The value with each secret given by `secret`.
    pub fn fill(&self, secret: &dyn Fn(&SecretName) -> String) -> String {
        match self {
            EnvValue::Plain(v) => v.clone(),
            EnvValue::Secret(s) => secret(s),
            EnvValue::Template(pieces) => pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.clone(),
                    Piece::Secret(s) => secret(s),
                })
                .collect(),
        }
    }
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
    /// inside the container by the image's startup script (see
    /// [`crate::config::PDNS_INCLUDE_DIR`]).
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
    /// A directory of the state directory (its name there), mounted as a directory so that
    /// files swapped into it by rename are seen by the running container (the gateway's
    /// certificate and routes). Its contents are not part of the container's fingerprint:
    /// they change under it.
    State(&'static str),
    /// A path on the host (a service of the user's own: relative to devenv.yaml, made
    /// absolute).
    Bind(std::path::PathBuf),
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

/// A healthcheck devenv runs itself, from this host, for an image with no tool to check with:
/// through the port's binding on the host when it is published, else to the container's
/// address (which a Linux host reaches; Docker Desktop's VM does not let it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub check: ProbeCheck,
    /// The port in the container.
    pub port: u16,
    pub timeout_s: u32,
    /// The network whose address of the container is tried first (the infrastructure's).
    pub network: String,
}

/// What a [`Probe`] asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeCheck {
    /// A TCP connection is accepted.
    Tcp,
    /// `GET path` answers 2xx or 3xx.
    Http { path: String },
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
    /// Proxied by the host gateway on :80 and :443.
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
    /// Its fixed address on the infrastructure network, in the lower half of
    /// `network.subnet`: what allow lists name (PowerDNS's API, the registry's debug
    /// listener), the same in the compose file and for devenv's own driver.
    pub address: std::net::Ipv4Addr,
    pub tier: Tier,
    pub image: String,
    /// Replaces the image's entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command when not empty.
    pub command: Vec<String>,
    pub env: BTreeMap<String, EnvValue>,
    pub ports: Vec<PortBinding>,
    pub mounts: Vec<Mount>,
    /// How Docker judges it healthy; a service of the user's own without one is ready once
    /// it runs.
    pub healthcheck: Option<Healthcheck>,
    /// The healthcheck devenv probes itself instead (a service of the user's own whose image
    /// has no tool to check with); `healthcheck` is then `None`.
    pub probe: Option<Probe>,
    /// The user it runs as, when not the image's.
    pub user: Option<String>,
    pub depends_on: Vec<Dependency>,
    pub routes: Vec<Route>,
    /// Where Prometheus scrapes it, where the service exposes metrics.
    pub metrics: Option<Scrape>,
    /// Other Docker networks it joins besides the infrastructure network: KinD's, and
    /// devenv's internal metrics network.
    pub extra_networks: Vec<NetworkJoin>,
    /// `/etc/hosts` entries, `name:address` as Docker takes them (`host-gateway` is the
    /// engine's address for the host).
    pub extra_hosts: Vec<String>,
    /// Every port it listens on inside its container, by its name in
    /// `services.<svc>.ports`, published or not.
    pub container_ports: BTreeMap<String, u16>,
}

/// Where Prometheus scrapes a service: `host:port` and the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scrape {
    /// The service's name on the network Prometheus reaches it on.
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// A Docker network a service joins besides the infrastructure network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkJoin {
    /// The network's name.
    pub network: String,
    /// Whether it is devenv's own internal network (created, labelled and removed with the
    /// environment, no route out and no address on the host) rather than one another tool
    /// owns (KinD's).
    pub internal: bool,
    /// A name the service answers to on that network only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl Service {
    /// The container port named `name` (`http`, `api`, ...). The names are the definition's;
    /// asking for one it does not have is a bug in devenv.
    pub fn port(&self, name: &str) -> u16 {
        match self.container_ports.get(name) {
            Some(p) => *p,
            None => panic!("service {} defines no port named {name}", self.name),
        }
    }

    /// Whether it is a service of the user's own rather than a built-in one.
    pub fn is_own(&self) -> bool {
        !super::catalog::NAMES.contains(&self.name.as_str())
    }

    /// Where its named data volume is mounted in the container, if it keeps data.
    pub fn data_dir(&self) -> Option<&str> {
        self.mounts
            .iter()
            .find(|m| matches!(m.source, MountSource::Volume(_)))
            .map(|m| m.target.as_str())
    }
}
