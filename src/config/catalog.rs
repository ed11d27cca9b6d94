//! The services of the platform as definitions, and their resolution, with the user's
//! settings applied, into complete [`Service`] specs. A built-in and a service of the user's
//! own (a name under `services:` that is not built in) are the same kind of [`Definition`]:
//! the built-ins are constant data, the user's are made from devenv.yaml.
//!
//! Each service's facts are stated once, in its definition: image, ports (by name), hostnames,
//! data directory, dependencies, and where its parts come from (for a built-in, one small
//! function beside it for its env, command, mounts, metrics and healthcheck; for the user's,
//! its settings). A [`Service`] is the one description the compose renderer, the services'
//! config renderers (which read ports and data directories through it) and the Docker driver
//! consume, so they cannot disagree. Not for: rendering the services' own config files (that
//! is `render`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use super::service::{
    ConfigFile, Dependency, EnvValue, Healthcheck, Mount, MountSource, NetworkJoin, Piece,
    PortBinding, Probe, ProbeCheck, Protocol, Route, Scrape, SecretName, Service, ServiceKind,
    Tier, pieces,
};
use super::{ClusterProvider, Config, HealthcheckSetting, PortRef, ServiceSettings};

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
    "mirror",
    "mirror-ghcr",
    "mirror-quay",
    "mirror-k8s",
];

/// The public registries a mirror can stand in front of: the registry as image references
/// name it, the service that mirrors it, and where it is fetched from by default (Docker Hub's
/// API is not at `docker.io`: containerd's own default for it is `registry-1.docker.io`).
pub const MIRRORED: [(&str, &str, &str); 4] = [
    ("docker.io", "mirror", "https://registry-1.docker.io"),
    ("ghcr.io", "mirror-ghcr", "https://ghcr.io"),
    ("quay.io", "mirror-quay", "https://quay.io"),
    ("registry.k8s.io", "mirror-k8s", "https://registry.k8s.io"),
];

/// Whether `service` is one of the mirrors.
pub fn is_mirror(service: &str) -> bool {
    MIRRORED.iter().any(|m| m.1 == service)
}

/// The registry a mirror service mirrors, and where it fetches it from (`mirror.remote`, else
/// the public address); `None` for a service that is not a mirror.
pub fn mirror_of(config: &Config, service: &str) -> Option<(&'static str, String)> {
    let (registry, _, public) = MIRRORED.iter().find(|m| m.1 == service)?;
    let remote = config
        .mirror
        .remote
        .get(*registry)
        .cloned()
        .unwrap_or_else(|| public.to_string());
    Some((registry, remote))
}

/// The gateway's live directory in the state directory: the certificate and key it serves
/// and the user's routes, swapped in by rename and reloaded (`crate::gateway`).
pub const GATEWAY_STATE_DIR: &str = "gateway";
/// Where the gateway container sees [`GATEWAY_STATE_DIR`].
pub const GATEWAY_LIVE_DIR: &str = "/etc/nginx/devenv";
/// The name the gateway container reaches the host by (an `/etc/hosts` entry).
pub const GATEWAY_HOST_NAME: &str = "host.docker.internal";

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

/// The Postgres role and database PowerDNS uses, created by the `pdns-db` container and named
/// in pdns.conf.
pub const PDNS_DB: &str = "pdns";

/// A port a service listens on.
#[derive(Clone, Copy)]
struct PortDef<'a> {
    name: &'a str,
    container: u16,
    /// Published on this host port by default; `None`: only through the gateway.
    host: Option<u16>,
    protocols: &'static [Protocol],
}

const TCP: &[Protocol] = &[Protocol::Tcp];
const TCP_UDP: &[Protocol] = &[Protocol::Tcp, Protocol::Udp];

/// The definition of one service, built in or the user's own: its facts as data, and where
/// what it runs (env, command, mounts, healthcheck) comes from. The built-ins are constant
/// definitions ([`DEFINITIONS`]) whose parts come from one small function beside each; a
/// service of the user's own is a definition made from its settings in devenv.yaml
/// ([`own_definition`]), its parts read from them. Every question about a service (its ports,
/// what it needs, whether it is on) and its resolution into a [`Service`] take a definition,
/// so both kinds go through the same code: the planner, driver, renderers and checks cannot
/// tell them apart.
struct Definition<'a> {
    name: &'a str,
    tier: Tier,
    image: &'a str,
    ports: Cow<'a, [PortDef<'a>]>,
    /// Labels under the domain, each with the name of the port it leads to.
    hostnames: Cow<'a, [(&'a str, &'a str)]>,
    /// How its names are served: proxied over HTTP, or only resolved.
    kind: ServiceKind,
    /// Services it starts after (those enabled), each saying whether it is needed.
    after: Cow<'a, [After<'a>]>,
    /// Where its named data volume is mounted, if it keeps one.
    data: Option<&'a str>,
    /// Env, command, mounts, metrics and healthcheck.
    parts: PartsFrom<'a>,
}

/// Where a definition's parts come from.
#[derive(Clone, Copy)]
enum PartsFrom<'a> {
    /// A built-in's function.
    Function(fn(&Build<'_, '_>) -> Parts),
    /// The settings of a service of the user's own.
    Settings(&'a ServiceSettings),
}

impl Definition<'_> {
    /// The container port named `name`, if it has one.
    fn port(&self, name: &str) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.container)
    }
}

/// What a definition's parts are made with: the configuration and the facts resolved so far.
struct Build<'a, 'd> {
    config: &'a Config,
    def: &'a Definition<'d>,
    routes: &'a [Route],
}

impl Build<'_, '_> {
    /// The container port named `name` of this service; a name its definition does not have
    /// is a bug in devenv.
    fn port(&self, name: &str) -> u16 {
        match self.def.port(name) {
            Some(p) => p,
            None => panic!("service {} defines no port named {name}", self.def.name),
        }
    }

    /// Where the data volume is mounted; asking without one is a bug in devenv.
    fn data(&self) -> &str {
        match self.def.data {
            Some(d) => d,
            None => panic!("service {} keeps no data", self.def.name),
        }
    }

    /// The named volume `name` of this service, owned by the environment.
    fn volume(&self, name: &str) -> String {
        format!("{}-{}-{name}", self.config.name, self.def.name)
    }

    /// `http://127.0.0.1:<port>/<path>` of the named port, as the container itself reaches it.
    fn local_url(&self, port: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port(port))
    }

    /// `wget` of a path on the named port, from inside the container.
    fn wget(&self, port: &str, path: &str) -> Vec<String> {
        strings(&["wget", "-q", "-O", "/dev/null", &self.local_url(port, path)])
    }

    /// `curl` of a path on the named port, from inside the container, failing on an HTTP error.
    fn curl(&self, port: &str, path: &str) -> Vec<String> {
        strings(&[
            "curl",
            "-fsS",
            "-o",
            "/dev/null",
            &self.local_url(port, path),
        ])
    }

    /// The service's own binary asking its readiness path on the named port: for images with
    /// no shell and no HTTP client (Loki since 3.6, Tempo since 2.7), whose binaries answer
    /// `-health [-health.url=URL]` with exit 0 on 200 (Loki's `cmd/loki/health.go` since 3.7,
    /// Tempo's `cmd/tempo/main.go` since 3.0).
    fn self_check(&self, binary: &str, port: &str, path: &str) -> Vec<String> {
        let url = format!("-health.url={}", self.local_url(port, path));
        strings(&[binary, "-health", &url])
    }
}

/// What a service runs, besides its fixed facts.
#[derive(Default)]
struct Parts {
    env: BTreeMap<String, EnvValue>,
    /// `None`: the image's own entrypoint.
    entrypoint: Option<Vec<String>>,
    command: Vec<String>,
    user: Option<String>,
    /// In mount order.
    mounts: Vec<Mount>,
    /// Where Prometheus scrapes it (on the infrastructure network by the service's name
    /// unless it says otherwise).
    metrics: Option<Scrape>,
    /// Run by the engine inside the container.
    healthcheck: Option<Healthcheck>,
    /// Run by devenv from outside, for images with no tool to check themselves.
    probe: Option<Probe>,
    extra_networks: Vec<NetworkJoin>,
    /// `/etc/hosts` entries (`name:address`).
    extra_hosts: Vec<String>,
}

impl Parts {
    fn env(mut self, name: &str, value: EnvValue) -> Parts {
        self.env.insert(name.to_string(), value);
        self
    }

    fn plain(self, name: &str, value: impl Into<String>) -> Parts {
        self.env(name, EnvValue::Plain(value.into()))
    }

    fn command(mut self, args: &[&str]) -> Parts {
        self.command = strings(args);
        self
    }

    fn mount(mut self, source: MountSource, target: impl Into<String>, read_only: bool) -> Parts {
        self.mounts.push(Mount {
            source,
            target: target.into(),
            read_only,
        });
        self
    }

    /// A rendered config file, mounted read-only at `target`.
    fn config(self, file: ConfigFile, target: impl Into<String>) -> Parts {
        self.mount(MountSource::Config(file), target, true)
    }

    /// A directory of the state directory, mounted read-only at `target`.
    fn state_dir(self, name: &'static str, target: impl Into<String>) -> Parts {
        self.mount(MountSource::State(name), target, true)
    }

    fn extra_host(mut self, entry: impl Into<String>) -> Parts {
        self.extra_hosts.push(entry.into());
        self
    }

    /// The data volume, at this place among the mounts.
    fn data(self, b: &Build<'_, '_>) -> Parts {
        let target = b.data().to_string();
        self.mount(MountSource::Volume(b.volume("data")), target, false)
    }

    /// Scraped by Prometheus by the service's name on the infrastructure network.
    fn metrics(mut self, b: &Build<'_, '_>, port: u16, path: &str) -> Parts {
        self.metrics = Some(Scrape {
            host: b.def.name.to_string(),
            port,
            path: path.to_string(),
        });
        self
    }

    fn join(mut self, network: NetworkJoin) -> Parts {
        self.extra_networks.push(network);
        self
    }

    fn healthcheck(mut self, test: Vec<String>, start_period_s: u32) -> Parts {
        self.healthcheck = Some(Healthcheck {
            test,
            interval_s: 5,
            timeout_s: 3,
            retries: 12,
            start_period_s,
        });
        self
    }
}

/// A service another one starts after.
#[derive(Clone, Copy)]
struct After<'a> {
    service: &'a str,
    /// It cannot run without it: enabling it while this one is disabled is refused. Otherwise
    /// it only uses it when it runs (Grafana's datasources are rendered from whichever of
    /// Prometheus, Loki and Tempo run).
    needed: bool,
}

/// A service it cannot run without.
const fn needs(service: &str) -> After<'_> {
    After {
        service,
        needed: true,
    }
}

/// A service it uses when that one runs, and starts after.
const fn uses(service: &'static str) -> After<'static> {
    After {
        service,
        needed: false,
    }
}

const fn port(name: &'static str, container: u16, host: Option<u16>) -> PortDef<'static> {
    PortDef {
        name,
        container,
        host,
        protocols: TCP,
    }
}

/// The Distribution registry, for the registry and the mirrors.
const REGISTRY_IMAGE: &str =
    "registry:3.1.2@sha256:ddf754342cfc8acc51a56d5d0ab6af06826461864460636d8bd5c546dab2a7b8";

/// A mirror of a public registry (see [`MIRRORED`]): a registry in proxy mode, reached by the
/// nodes on the `kind` network and never published on the host.
const MIRROR_PORTS: &[PortDef<'static>] = &[port("api", 5000, None)];

const fn mirror_definition(name: &'static str) -> Definition<'static> {
    Definition {
        name,
        tier: Tier::Core,
        image: REGISTRY_IMAGE,
        ports: Cow::Borrowed(MIRROR_PORTS),
        hostnames: Cow::Borrowed(&[]),
        kind: ServiceKind::Registry,
        after: Cow::Borrowed(&[]),
        data: Some("/var/lib/registry"),
        parts: PartsFrom::Function(mirror),
    }
}

/// The built-in services. Images are pinned; why each version was chosen is in README.md.
const DEFINITIONS: &[Definition<'static>] = &[
    Definition {
        name: "registry",
        tier: Tier::Core,
        image: REGISTRY_IMAGE,
        ports: Cow::Borrowed(&[port("api", 5000, Some(5001))]),
        hostnames: Cow::Borrowed(&[("registry", "api")]),
        kind: ServiceKind::Registry,
        after: Cow::Borrowed(&[]),
        data: Some("/var/lib/registry"),
        parts: PartsFrom::Function(registry),
    },
    Definition {
        name: "registry-ui",
        tier: Tier::Core,
        image: "joxit/docker-registry-ui:2.6.0",
        ports: Cow::Borrowed(&[port("http", 80, None)]),
        hostnames: Cow::Borrowed(&[("registry-ui", "http")]),
        kind: ServiceKind::Http,
        after: Cow::Borrowed(&[needs("registry")]),
        data: None,
        parts: PartsFrom::Function(registry_ui),
    },
    Definition {
        name: "pdns-db",
        tier: Tier::Core,
        image: "postgres:16.15-alpine@sha256:721873c34ceb9f8d8fc265984940dc982404c105f19ad51be9fdc5970a6080ea",
        ports: Cow::Borrowed(&[port("postgres", 5432, None)]),
        hostnames: Cow::Borrowed(&[]),
        kind: ServiceKind::Tcp,
        after: Cow::Borrowed(&[]),
        data: Some("/var/lib/postgresql/data"),
        parts: PartsFrom::Function(pdns_db),
    },
    Definition {
        name: "pdns",
        tier: Tier::Core,
        image: "powerdns/pdns-auth-51:5.1.4@sha256:bb5b1c133bcca1dd455075321de7d55db4945a8d7f2ba23339e3c7bbe416b205",
        ports: Cow::Borrowed(&[
            PortDef {
                name: "dns",
                container: 5300,
                host: Some(5300),
                protocols: TCP_UDP,
            },
            port("api", 8081, None),
        ]),
        hostnames: Cow::Borrowed(&[("dns", "api")]),
        kind: ServiceKind::Http,
        after: Cow::Borrowed(&[needs("pdns-db")]),
        data: None,
        parts: PartsFrom::Function(pdns),
    },
    Definition {
        name: "pdns-admin",
        tier: Tier::Core,
        image: "powerdnsadmin/pda-legacy:v0.6.1",
        ports: Cow::Borrowed(&[port("http", 80, None)]),
        hostnames: Cow::Borrowed(&[("dns-admin", "http")]),
        kind: ServiceKind::Http,
        after: Cow::Borrowed(&[needs("pdns")]),
        data: Some("/data"),
        parts: PartsFrom::Function(pdns_admin),
    },
    Definition {
        name: "prometheus",
        tier: Tier::Observability,
        image: "prom/prometheus:v3.15.0@sha256:efd719c99d83b060d9daefdcf00360461adf279f45ef5391f8d111892118753e",
        ports: Cow::Borrowed(&[port("http", 9090, Some(9090))]),
        hostnames: Cow::Borrowed(&[("prometheus", "http")]),
        kind: ServiceKind::Http,
        after: Cow::Borrowed(&[]),
        data: Some("/prometheus"),
        parts: PartsFrom::Function(prometheus),
    },
    Definition {
        name: "loki",
        tier: Tier::Observability,
        image: "grafana/loki:3.7.8@sha256:1107dd5274e0ada47e42472b7a7e71f3b2a2fe878878108f3e2f9e51528f0193",
        ports: Cow::Borrowed(&[port("http", 3100, Some(3100))]),
        hostnames: Cow::Borrowed(&[("loki", "http")]),
        kind: ServiceKind::Http,
        after: Cow::Borrowed(&[]),
        data: Some("/loki"),
        parts: PartsFrom::Function(loki),
    },
    Definition {
        name: "tempo",
        tier: Tier::Observability,
        image: "grafana/tempo:3.1.0@sha256:3076b8dcdfb32fd6bc5ccef85e7b7313e6199b9cb84366257fc17ecb696db5fd",
        ports: Cow::Borrowed(&[
            port("http", 3200, Some(3200)),
            port("otlp-grpc", 4317, Some(4317)),
            port("otlp-http", 4318, Some(4318)),
        ]),
        hostnames: Cow::Borrowed(&[("tempo", "http")]),
        kind: ServiceKind::Http,
        after: Cow::Borrowed(&[]),
        data: Some("/var/tempo"),
        parts: PartsFrom::Function(tempo),
    },
    Definition {
        name: "grafana",
        tier: Tier::Observability,
        image: "grafana/grafana:13.2.3@sha256:b28bae15e219c998fb0e0424ed724930cc61b1f61fb404d47c862f9a23f9e572",
        ports: Cow::Borrowed(&[port("http", 3000, Some(3000))]),
        hostnames: Cow::Borrowed(&[("grafana", "http")]),
        kind: ServiceKind::Http,
        after: Cow::Borrowed(&[uses("prometheus"), uses("loki"), uses("tempo")]),
        data: Some("/var/lib/grafana"),
        parts: PartsFrom::Function(grafana),
    },
    Definition {
        name: "minio",
        tier: Tier::Data,
        image: "minio/minio:RELEASE.2025-09-07T16-13-09Z@sha256:14cea493d9a34af32f524e538b8346cf79f3321eff8e708c1e2960462bd8936e",
        ports: Cow::Borrowed(&[
            port("api", 9000, Some(9000)),
            port("console", 9001, Some(9001)),
        ]),
        hostnames: Cow::Borrowed(&[("s3", "api"), ("s3-console", "console")]),
        kind: ServiceKind::Http,
        after: Cow::Borrowed(&[]),
        data: Some("/data"),
        parts: PartsFrom::Function(minio),
    },
    Definition {
        name: "timescaledb",
        tier: Tier::Data,
        image: "timescale/timescaledb:2.30.2-pg16@sha256:6f139d56042989bd35f50ba5986e492cd32e35cc6778c50be2659add298dc09f",
        ports: Cow::Borrowed(&[port("postgres", 5432, Some(5432))]),
        hostnames: Cow::Borrowed(&[("postgres", "postgres")]),
        kind: ServiceKind::Tcp,
        after: Cow::Borrowed(&[]),
        data: Some("/var/lib/postgresql/data"),
        parts: PartsFrom::Function(timescaledb),
    },
    Definition {
        name: "excalidraw",
        tier: Tier::Tools,
        image: "excalidraw/excalidraw:latest@sha256:f7ee194addd607bf831d2af0f0a34463dd4225e426cf35199ef0b12a803398e9",
        ports: Cow::Borrowed(&[port("http", 80, None)]),
        hostnames: Cow::Borrowed(&[("draw", "http")]),
        kind: ServiceKind::Http,
        after: Cow::Borrowed(&[]),
        data: None,
        parts: PartsFrom::Function(excalidraw),
    },
    Definition {
        name: "gateway",
        tier: Tier::Core,
        image: "nginx:1.30.5-alpine@sha256:0985e772fb9f729e6fa0980da05fca5d9c468e870eed43071545afa9d2e27d94",
        ports: Cow::Borrowed(&[port("http", 80, Some(80)), port("https", 443, Some(443))]),
        hostnames: Cow::Borrowed(&[]),
        kind: ServiceKind::Http,
        after: Cow::Borrowed(&[]),
        data: None,
        parts: PartsFrom::Function(gateway),
    },
    mirror_definition("mirror"),
    mirror_definition("mirror-ghcr"),
    mirror_definition("mirror-quay"),
    mirror_definition("mirror-k8s"),
];

/// The registry's debug listener (Prometheus metrics, and also pprof and expvar, which it
/// cannot turn off): never published, never routed, and bound to the registry's address on
/// devenv's internal metrics network only ([`Config::metrics_network_name`]), which only the
/// registry and Prometheus join and the host has no address on. So neither the host (through
/// a bridge's address), KinD's network nor the other infrastructure containers reach it.
const REGISTRY_DEBUG_PORT: u16 = 5001;
/// The registry's name on the metrics network: the registry resolves it to bind its debug
/// listener there (Docker's embedded DNS answers it on that network only), and Prometheus
/// scrapes it by that name.
pub const REGISTRY_DEBUG_HOST: &str = "registry-debug";

/// Joining devenv's internal metrics network, with `alias` there.
fn metrics_network(config: &Config, alias: Option<&str>) -> NetworkJoin {
    NetworkJoin {
        network: config.metrics_network_name(),
        internal: true,
        alias: alias.map(str::to_string),
    }
}

fn kind_network() -> NetworkJoin {
    NetworkJoin {
        network: KIND_NETWORK.to_string(),
        internal: false,
        alias: None,
    }
}

fn registry(b: &Build<'_, '_>) -> Parts {
    let mut parts = Parts::default()
        .join(kind_network())
        .join(metrics_network(b.config, Some(REGISTRY_DEBUG_HOST)))
        .plain("REGISTRY_STORAGE_DELETE_ENABLED", "true")
        .plain(
            "REGISTRY_HTTP_DEBUG_ADDR",
            format!("{REGISTRY_DEBUG_HOST}:{REGISTRY_DEBUG_PORT}"),
        )
        .plain("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "true")
        // Registry 3 exports traces by default and logs every failed export otherwise.
        .plain("OTEL_TRACES_EXPORTER", "none")
        .data(b);
    parts.metrics = Some(Scrape {
        host: REGISTRY_DEBUG_HOST.to_string(),
        port: REGISTRY_DEBUG_PORT,
        path: "/metrics".to_string(),
    });
    parts.healthcheck(b.wget("api", "/v2/"), 5)
}

/// A registry in proxy mode in front of the registry [`mirror_of`] names: it fetches what it
/// does not have from there and keeps it in its volume (Distribution's `proxy.remoteurl`; no
/// pushes). Its debug listener (the proxy's hit and miss counts at `/debug/vars`, and pprof,
/// which it cannot turn off) listens on the container's own loopback only: nothing outside
/// the container reaches it, `status` reads it from inside ([`mirror_debug_url`]).
fn mirror(b: &Build<'_, '_>) -> Parts {
    let remote = mirror_of(b.config, b.def.name).map_or_else(String::new, |m| m.1);
    Parts::default()
        .join(kind_network())
        .plain("REGISTRY_PROXY_REMOTEURL", remote)
        // The proxy removes what expired from its cache.
        .plain("REGISTRY_STORAGE_DELETE_ENABLED", "true")
        .plain(
            "REGISTRY_HTTP_DEBUG_ADDR",
            format!("127.0.0.1:{REGISTRY_DEBUG_PORT}"),
        )
        .plain("OTEL_TRACES_EXPORTER", "none")
        .data(b)
        .healthcheck(b.wget("api", "/v2/"), 5)
}

/// Where a mirror's debug listener answers `path`, from inside its container.
pub fn mirror_debug_url(path: &str) -> String {
    format!("http://127.0.0.1:{REGISTRY_DEBUG_PORT}{path}")
}

fn registry_ui(b: &Build<'_, '_>) -> Parts {
    let registry = builtin_port("registry", "api");
    Parts::default()
        .plain("SINGLE_REGISTRY", "true")
        .plain("REGISTRY_TITLE", format!("{} registry", b.config.name))
        .plain(
            "NGINX_PROXY_PASS_URL",
            format!("http://registry:{registry}"),
        )
        .plain("DELETE_IMAGES", "true")
        .healthcheck(b.wget("http", "/"), 5)
}

fn postgres_ready(user: &str, db: &str) -> Vec<String> {
    strings(&["pg_isready", "-q", "-h", "127.0.0.1", "-U", user, "-d", db])
}

fn pdns_db(b: &Build<'_, '_>) -> Parts {
    Parts::default()
        .plain("POSTGRES_USER", PDNS_DB)
        .plain("POSTGRES_DB", PDNS_DB)
        .env(
            "POSTGRES_PASSWORD",
            EnvValue::Secret(SecretName::PdnsDbPassword),
        )
        .data(b)
        .config(
            ConfigFile::PdnsSchema,
            "/docker-entrypoint-initdb.d/10-pdns-schema.sql",
        )
        .healthcheck(postgres_ready(PDNS_DB, PDNS_DB), 10)
}

fn pdns(b: &Build<'_, '_>) -> Parts {
    let mut parts = Parts::default();
    for (var, secret) in PDNS_SECRET_VARS {
        parts = parts.env(var, EnvValue::Secret(secret));
    }
    // The image's own entrypoint (tini, then its startup script) renders the secrets
    // template from these variables into PDNS_INCLUDE_DIR before it execs pdns_server.
    // Not PDNS_AUTH_API_KEY, the script's shortcut: its generated config would open the
    // webserver to 0.0.0.0/0.
    parts
        .plain("TEMPLATE_FILES", PDNS_SECRETS_TEMPLATE)
        .config(ConfigFile::PdnsConf, "/etc/powerdns/pdns.conf")
        .config(
            ConfigFile::PdnsSecrets,
            format!("{PDNS_TEMPLATES_DIR}/{PDNS_SECRETS_TEMPLATE}.j2"),
        )
        .metrics(b, b.port("api"), "/metrics")
        .healthcheck(strings(&["pdns_control", "rping"]), 10)
}

fn pdns_admin(b: &Build<'_, '_>) -> Parts {
    Parts::default()
        .env(
            "SECRET_KEY",
            EnvValue::Secret(SecretName::PdnsAdminSecretKey),
        )
        .plain(
            "SQLALCHEMY_DATABASE_URI",
            "sqlite:////data/powerdns-admin.db",
        )
        // The image's entrypoint starts 4 gunicorn workers by default; one person's admin UI
        // needs 2.
        .plain("GUNICORN_WORKERS", "2")
        .data(b)
        // Since v0.5 the image is Debian slim with curl and no wget; `/healthcheck` answers
        // `ok` without a session.
        .healthcheck(b.curl("http", "/healthcheck"), 20)
}

fn prometheus(b: &Build<'_, '_>) -> Parts {
    let data = b.data();
    let mut parts = Parts::default();
    // Where the registry's debug listener is, and nowhere else.
    if is_enabled(b.config, "registry") {
        parts = parts.join(metrics_network(b.config, None));
    }
    parts
        .command(&[
            "--config.file=/etc/prometheus/prometheus.yml",
            &format!("--storage.tsdb.path={data}"),
            "--web.enable-lifecycle",
            "--web.enable-remote-write-receiver",
        ])
        .config(ConfigFile::Prometheus, "/etc/prometheus/prometheus.yml")
        .data(b)
        .metrics(b, b.port("http"), "/metrics")
        .healthcheck(b.wget("http", "/-/healthy"), 5)
}

fn loki(b: &Build<'_, '_>) -> Parts {
    Parts::default()
        .command(&["-config.file=/etc/loki/loki.yaml"])
        .config(ConfigFile::Loki, "/etc/loki/loki.yaml")
        .data(b)
        .metrics(b, b.port("http"), "/metrics")
        .healthcheck(b.self_check("/usr/bin/loki", "http", "/ready"), 20)
}

fn tempo(b: &Build<'_, '_>) -> Parts {
    Parts::default()
        .command(&["-config.file=/etc/tempo/tempo.yaml"])
        .config(ConfigFile::Tempo, "/etc/tempo/tempo.yaml")
        .data(b)
        .metrics(b, b.port("http"), "/metrics")
        .healthcheck(b.self_check("/tempo", "http", "/ready"), 20)
}

fn grafana(b: &Build<'_, '_>) -> Parts {
    let root = b
        .routes
        .first()
        .map(|r| format!("http://{}/", r.hostname))
        .unwrap_or_else(|| format!("http://localhost:{}/", b.port("http")));
    Parts::default()
        .plain("GF_SECURITY_ADMIN_USER", "admin")
        .env(
            "GF_SECURITY_ADMIN_PASSWORD",
            EnvValue::Secret(SecretName::GrafanaAdminPassword),
        )
        .plain("GF_SERVER_ROOT_URL", root)
        .plain("GF_ANALYTICS_REPORTING_ENABLED", "false")
        .plain("GF_ANALYTICS_CHECK_FOR_UPDATES", "false")
        .config(
            ConfigFile::GrafanaDatasources,
            "/etc/grafana/provisioning/datasources/devenv.yaml",
        )
        .data(b)
        .metrics(b, b.port("http"), "/metrics")
        .healthcheck(b.wget("http", "/api/health"), 10)
}

fn minio(b: &Build<'_, '_>) -> Parts {
    let console = format!(":{}", b.port("console"));
    Parts::default()
        .command(&["server", b.data(), "--console-address", &console])
        .plain("MINIO_ROOT_USER", "devenv")
        .env(
            "MINIO_ROOT_PASSWORD",
            EnvValue::Secret(SecretName::MinioRootPassword),
        )
        // Metrics without a bearer token, so Prometheus scrapes them like every other
        // service. Anyone who reaches the API port can read them: the infrastructure network
        // and, since it is published, processes on this host. Publishing is on loopback,
        // which keeps them off the LAN (unless `bind.allow_non_loopback` and a non-loopback
        // `address` are set on purpose).
        .plain("MINIO_PROMETHEUS_AUTH_TYPE", "public")
        .data(b)
        .metrics(b, b.port("api"), "/minio/v2/metrics/cluster")
        .healthcheck(strings(&["mc", "ready", "local"]), 5)
}

fn timescaledb(b: &Build<'_, '_>) -> Parts {
    Parts::default()
        .plain("POSTGRES_USER", "devenv")
        .plain("POSTGRES_DB", "devenv")
        .env(
            "POSTGRES_PASSWORD",
            EnvValue::Secret(SecretName::TimescalePassword),
        )
        .data(b)
        .healthcheck(postgres_ready("devenv", "devenv"), 10)
}

fn excalidraw(b: &Build<'_, '_>) -> Parts {
    Parts::default().healthcheck(b.wget("http", "/"), 5)
}

fn gateway(b: &Build<'_, '_>) -> Parts {
    // Pods reach the infrastructure names through the gateway on KinD's network (the cluster's
    // CoreDNS zone points them at this container's name there).
    let extra_networks = match b.config.cluster.provider {
        ClusterProvider::Kind => vec![kind_network()],
        ClusterProvider::Existing | ClusterProvider::None => Vec::new(),
    };
    Parts {
        extra_networks,
        ..Parts::default()
    }
    .config(ConfigFile::GatewayNginx, "/etc/nginx/nginx.conf")
    .state_dir(GATEWAY_STATE_DIR, GATEWAY_LIVE_DIR)
    // Routes to processes on the host: the engine's address for the host. On Linux this
    // is the default bridge's gateway (`docker0`), where a process listening on 0.0.0.0
    // (not only 127.0.0.1) is reached; Docker Desktop forwards it to the host's loopback.
    .extra_host(format!("{GATEWAY_HOST_NAME}:host-gateway"))
    .healthcheck(b.wget("http", "/health"), 2)
}

/// The container port named `port` of built-in service `service`; a name the definitions do
/// not have is a bug in devenv.
fn builtin_port(service: &str, port: &str) -> u16 {
    match builtin(service).and_then(|d| d.port(port)) {
        Some(p) => p,
        None => panic!("service {service} defines no port named {port}"),
    }
}

fn builtin(name: &str) -> Option<&'static Definition<'static>> {
    DEFINITIONS.iter().find(|d| d.name == name)
}

/// The definition of service `name` in `config`: a built-in's, or one made from the settings
/// of a service of the user's own; `None` for a name that is neither.
fn definition<'a>(config: &'a Config, name: &str) -> Option<Definition<'a>> {
    if let Some(def) = builtin(name) {
        return Some(Definition {
            ports: Cow::Borrowed(&def.ports),
            hostnames: Cow::Borrowed(&def.hostnames),
            after: Cow::Borrowed(&def.after),
            ..*def
        });
    }
    let (name, settings) = config.services.get_key_value(name)?;
    Some(own_definition(name, settings))
}

/// The definition of a service of the user's own, from its settings: its ports as it names
/// them (published where it says), its names leading to its `http` port (proxied) or else
/// its first port (only resolved), the services it `depends_on` as the ones it needs, and its
/// parts read from the settings by [`own_parts`].
fn own_definition<'a>(name: &'a str, settings: &'a ServiceSettings) -> Definition<'a> {
    let ports: Vec<PortDef<'a>> = settings
        .ports
        .iter()
        .map(|(n, p)| PortDef {
            name: n,
            container: p.container(),
            host: Some(p.host()),
            protocols: TCP,
        })
        .collect();
    let (kind, target) = match ports.iter().find(|p| p.name == "http") {
        Some(p) => (ServiceKind::Http, p.name),
        None => (ServiceKind::Tcp, ports.first().map_or("", |p| p.name)),
    };
    Definition {
        name,
        tier: settings.tier.unwrap_or(Tier::Core),
        image: settings.image.as_deref().unwrap_or_default(),
        hostnames: settings
            .hostnames
            .iter()
            .flatten()
            .map(|label| (label.as_str(), target))
            .collect(),
        ports: Cow::Owned(ports),
        kind,
        after: settings.depends_on.iter().map(|d| needs(d)).collect(),
        data: None,
        parts: PartsFrom::Settings(settings),
    }
}

/// How many built-in services come before the mirrors in [`NAMES`]: the platform's.
pub const PLATFORM: usize = NAMES.len() - MIRRORED.len();

/// The fixed address of service `service` on the infrastructure network (enabled or not: an
/// address is a fact of the service, not of which others run). The platform's services first,
/// in [`NAMES`] order; then the user's own, in name order; then the mirrors, in [`MIRRORED`]
/// order (a mirror moves when a service of one's own is added: only its container is made
/// again, its cache stays in its volume). A name that is none of these is a bug in devenv.
pub fn address_of(config: &Config, service: &str) -> Ipv4Addr {
    config.network.service_address(slot(config, service))
}

/// The index of `service`'s fixed address (see [`address_of`]).
fn slot(config: &Config, service: &str) -> usize {
    if let Some(i) = NAMES[..PLATFORM].iter().position(|n| *n == service) {
        return i;
    }
    let own = own_names(config);
    if let Some(i) = own.clone().position(|n| n == service) {
        return PLATFORM + i;
    }
    match MIRRORED.iter().position(|m| m.1 == service) {
        Some(i) => PLATFORM + own.count() + i,
        None => panic!("no service named {service}"),
    }
}

/// How many fixed addresses the enabled services need: up to the last one taken.
pub fn slots_used(config: &Config) -> usize {
    config
        .services()
        .iter()
        .map(|s| slot(config, &s.name) + 1)
        .max()
        .unwrap_or(0)
        .max(PLATFORM)
}

/// The names of the user's own services in devenv.yaml (enabled or not), in name order: the
/// names under `services:` that are not built in.
pub fn own_names(config: &Config) -> impl Iterator<Item = &str> + Clone {
    config
        .services
        .keys()
        .map(String::as_str)
        .filter(|n| !NAMES.contains(n))
}

/// The port names a service has, for validation messages.
pub(super) fn port_names<'a>(config: &'a Config, service: &str) -> Vec<&'a str> {
    definition(config, service)
        .map(|d| d.ports.iter().map(|p| p.name).collect())
        .unwrap_or_default()
}

/// The services `service` cannot run without (enabled or not), with their tiers.
pub(super) fn needs_of(config: &Config, service: &str) -> Vec<(String, Tier)> {
    let Some(def) = definition(config, service) else {
        return Vec::new();
    };
    def.after
        .iter()
        .filter(|a| a.needed)
        .filter_map(|a| definition(config, a.service).map(|n| (n.name.to_string(), n.tier)))
        .collect()
}

/// Whether a service is switched on, by its own setting or else its tier.
pub(super) fn is_enabled(config: &Config, name: &str) -> bool {
    definition(config, name).is_some_and(|def| is_on(config, &def))
}

/// Its own `enabled`, else its tier; a mirror also only for a KinD cluster and a registry
/// `mirror.registries` lists.
fn is_on(config: &Config, def: &Definition<'_>) -> bool {
    if let Some(on) = config.services.get(def.name).and_then(|s| s.enabled) {
        return on;
    }
    let mirrored = match MIRRORED.iter().find(|m| m.1 == def.name) {
        Some((registry, ..)) => {
            config.cluster.provider == ClusterProvider::Kind
                && config.mirror.registries.iter().any(|r| r == registry)
        }
        None => true,
    };
    mirrored && config.tiers.enabled(def.tier)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Resolve every enabled service: the built-ins in [`NAMES`] order, then the user's own in
/// name order (ordered among themselves by their `depends_on`, which validation has checked
/// for cycles).
pub(super) fn resolve(config: &Config) -> Vec<Service> {
    let enabled = |names: Vec<&str>| -> Vec<Service> {
        names
            .into_iter()
            .filter_map(|name| definition(config, name))
            .filter(|def| is_on(config, def))
            .map(|def| resolve_one(config, &def))
            .collect()
    };
    let mut services = enabled(NAMES.to_vec());
    let mut own = enabled(own_names(config).collect());
    // Each after its dependencies among them: take the first whose own ones are all out.
    while !own.is_empty() {
        let waiting = |dep: &str| own.iter().any(|o| o.name == dep);
        let next = own
            .iter()
            .position(|s| s.depends_on.iter().all(|d| !waiting(&d.service)))
            .unwrap_or(0);
        services.push(own.remove(next));
    }
    services
}

/// The secrets `value` uses, with each `${DEVENV_SECRET_<NAME>}` as a piece; a value whose
/// references do not parse (validation reports it) is taken as plain text.
fn own_env(value: &str) -> EnvValue {
    match pieces(value) {
        Ok(p) if p.iter().any(|p| matches!(p, Piece::Secret(_))) => EnvValue::Template(p),
        _ => EnvValue::Plain(value.to_string()),
    }
}

/// A volume entry of a service of the user's own: a named volume (`NAME:/path`) or a path
/// relative to devenv.yaml (`./dir:/path[:rw|:ro]`, read-only by default). `None` when it is
/// neither (validation reports it).
pub(super) fn own_volume(config: &Config, service: &str, entry: &str) -> Option<Mount> {
    let mut parts = entry.split(':');
    let source = parts.next()?;
    let target = parts.next()?;
    let mode = parts.next();
    if parts.next().is_some() || !target.starts_with('/') {
        return None;
    }
    if source.starts_with("./") || source.starts_with("../") || source == "." || source == ".." {
        let read_only = match mode {
            None | Some("ro") => true,
            Some("rw") => false,
            Some(_) => return None,
        };
        let base = config
            .base_dir
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from("."));
        return Some(Mount {
            source: MountSource::Bind(normalise(&base.join(source))),
            target: target.to_string(),
            read_only,
        });
    }
    if mode.is_some() || !is_volume_name(source) {
        return None;
    }
    Some(Mount {
        source: MountSource::Volume(format!("{}-{service}-{source}", config.name)),
        target: target.to_string(),
        read_only: false,
    })
}

/// A volume name of a service of the user's own: lowercase letters, digits and `-`, starting
/// with a letter, at most 40.
pub(super) fn is_volume_name(name: &str) -> bool {
    name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `path` without `.` and `..` components (lexically: the path need not exist yet).
fn normalise(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The parts of a service of the user's own, read from its settings: what a built-in's
/// function states in code.
fn own_parts(b: &Build<'_, '_>, settings: &ServiceSettings) -> Parts {
    let healthcheck = settings.healthcheck.as_ref();
    Parts {
        env: settings
            .env
            .iter()
            .map(|(k, v)| (k.clone(), own_env(v)))
            .collect(),
        entrypoint: settings.entrypoint.clone(),
        command: settings.command.clone().unwrap_or_default(),
        user: settings.user.clone(),
        mounts: settings
            .volumes
            .iter()
            .filter_map(|v| own_volume(b.config, b.def.name, v))
            .collect(),
        metrics: settings.metrics.as_ref().and_then(|m| {
            Some(Scrape {
                host: b.def.name.to_string(),
                port: b.def.port(&m.port)?,
                path: m.path.clone(),
            })
        }),
        healthcheck: healthcheck.and_then(|h| {
            Some(Healthcheck {
                test: h.command.clone()?,
                interval_s: h.interval,
                timeout_s: h.timeout,
                retries: h.retries,
                start_period_s: h.start_period,
            })
        }),
        probe: healthcheck.and_then(|h| own_probe(b, h)),
        extra_networks: Vec::new(),
        extra_hosts: Vec::new(),
    }
}

/// The probe of a `tcp:` or `http:` healthcheck, its port resolved (validation names a port
/// that does not exist).
fn own_probe(b: &Build<'_, '_>, h: &HealthcheckSetting) -> Option<Probe> {
    let port = |r: &PortRef| match r {
        PortRef::Number(n) => Some(*n),
        PortRef::Name(name) => b.def.port(name),
    };
    let (check, at) = match (&h.tcp, &h.http) {
        (Some(p), _) => (ProbeCheck::Tcp, p),
        (None, Some(http)) => (
            ProbeCheck::Http {
                path: http.path.clone(),
            },
            &http.port,
        ),
        (None, None) => return None,
    };
    Some(Probe {
        check,
        port: port(at)?,
        timeout_s: h.timeout,
        network: b.config.network_name(),
    })
}

/// One definition with the user's settings applied: the facts, then the parts. Built-ins and
/// services of the user's own alike.
fn resolve_one(config: &Config, def: &Definition<'_>) -> Service {
    let empty = ServiceSettings::default();
    let settings = config.services.get(def.name).unwrap_or(&empty);
    let address = settings.address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut ports = Vec::new();
    for p in def.ports.iter() {
        let host = settings
            .ports
            .get(p.name)
            .map(|p| p.host())
            .or(p.host)
            .unwrap_or(0);
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
    // A name whose port the service does not have (a service of one's own with no ports)
    // leads nowhere: it resolves, and the gateway has nothing to proxy.
    let target = |port: &str| def.port(port).unwrap_or(0);
    let route = |label: &str, port: &str| Route {
        hostname: config.fqdn(label),
        container_port: target(port),
        kind: def.kind,
    };
    let routes: Vec<Route> = match &settings.hostnames {
        // The user's names lead where the definition's first name does.
        Some(labels) => {
            let port = def.hostnames.first().map_or("", |h| h.1);
            labels.iter().map(|l| route(l, port)).collect()
        }
        None => def.hostnames.iter().map(|(l, p)| route(l, p)).collect(),
    };
    let build = Build {
        config,
        def,
        routes: &routes,
    };
    let parts = match def.parts {
        PartsFrom::Function(f) => f(&build),
        PartsFrom::Settings(s) => own_parts(&build, s),
    };
    Service {
        name: def.name.to_string(),
        container_name: format!("{}-{}", config.name, def.name),
        address: address_of(config, def.name),
        tier: def.tier,
        image: settings
            .image
            .clone()
            .unwrap_or_else(|| def.image.to_string()),
        entrypoint: parts.entrypoint,
        command: parts.command,
        env: parts.env,
        ports,
        mounts: parts.mounts,
        healthcheck: parts.healthcheck,
        probe: parts.probe,
        user: parts.user,
        depends_on: def
            .after
            .iter()
            .filter(|a| is_enabled(config, a.service))
            .map(|a| Dependency {
                service: a.service.to_string(),
            })
            .collect(),
        routes,
        metrics: parts.metrics,
        extra_networks: parts.extra_networks,
        extra_hosts: parts.extra_hosts,
        container_ports: def
            .ports
            .iter()
            .map(|p| (p.name.to_string(), p.container))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_a_definition_and_dependencies_come_first() {
        for (i, name) in NAMES.iter().enumerate() {
            let def = builtin(name).unwrap_or_else(|| panic!("{name} has no definition"));
            for dep in def.after.iter() {
                let j = NAMES
                    .iter()
                    .position(|n| *n == dep.service)
                    .expect("dependency is known");
                assert!(j < i, "{} must come before {name}", dep.service);
            }
        }
        assert_eq!(NAMES.len(), DEFINITIONS.len());
    }

    #[test]
    fn needs_are_read_from_the_definitions_and_grafana_only_uses_its_datasources() {
        let config = Config::default();
        let needs = |name| needs_of(&config, name);
        assert_eq!(needs("pdns"), [("pdns-db".to_string(), Tier::Core)]);
        assert_eq!(needs("pdns-admin"), [("pdns".to_string(), Tier::Core)]);
        assert_eq!(needs("registry-ui"), [("registry".to_string(), Tier::Core)]);
        assert!(needs("grafana").is_empty());
        // Grafana still starts after what it uses.
        let grafana = builtin("grafana").unwrap();
        let after: Vec<_> = grafana.after.iter().map(|a| a.service).collect();
        assert_eq!(after, ["prometheus", "loki", "tempo"]);
    }

    #[test]
    fn default_images_are_pinned_by_tag_and_digest() {
        // Pinned by tag only: no digest of theirs is confirmed by two independent public
        // sources (README.md, "Pinned images").
        const TAG_ONLY: &[&str] = &["registry-ui", "pdns-admin"];
        for def in DEFINITIONS {
            crate::config::validate::check_image(def.image)
                .unwrap_or_else(|why| panic!("{} {why}", def.image));
            let (reference, digest) = match def.image.split_once('@') {
                Some((reference, digest)) => (reference, Some(digest)),
                None => (def.image, None),
            };
            let tag = reference.rsplit_once(':').map(|t| t.1).unwrap_or("");
            assert!(
                !tag.is_empty(),
                "{} has no tag beside its digest",
                def.image
            );
            match digest {
                Some(digest) => {
                    assert!(digest.starts_with("sha256:"), "{}", def.image);
                    assert!(
                        !TAG_ONLY.contains(&def.name),
                        "{} has a digest now",
                        def.name
                    );
                }
                None => assert!(
                    TAG_ONLY.contains(&def.name) && tag != "latest",
                    "{} is not pinned by digest",
                    def.image
                ),
            }
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
                ports: [("http".to_string(), 3300.into())].into(),
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

/// One resolved service as `devenv config show` prints it: what runs, where it is reached,
/// and its settings, secrets as references (`${DEVENV_...}`), never their values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    pub image: String,
    pub container: String,
    pub tier: Tier,
    /// `name: 127.0.0.1:5300 -> 5300/udp`, or `name: not published -> 8081/tcp`.
    pub ports: BTreeMap<String, Vec<String>>,
    pub hostnames: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub depends_on: Vec<String>,
}

/// Every enabled service of `services`, resolved, by name.
pub fn shown(services: &[Service]) -> BTreeMap<String, Shown> {
    services
        .iter()
        .map(|s| {
            let mut ports: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for p in &s.ports {
                ports.entry(p.name.clone()).or_default().push(format!(
                    "{} -> {}/{}",
                    std::net::SocketAddr::new(p.host_ip, p.host_port),
                    p.container_port,
                    p.protocol.as_str()
                ));
            }
            for (name, port) in &s.container_ports {
                ports
                    .entry(name.clone())
                    .or_insert_with(|| vec![format!("not published -> {port}")]);
            }
            let env = s
                .env
                .iter()
                .map(|(k, v)| {
                    let v = v.fill(&|name| format!("${{{}}}", name.var()));
                    (k.clone(), v)
                })
                .collect();
            let shown = Shown {
                image: s.image.clone(),
                container: s.container_name.clone(),
                tier: s.tier,
                ports,
                hostnames: s.routes.iter().map(|r| r.hostname.clone()).collect(),
                env,
                depends_on: s.depends_on.iter().map(|d| d.service.clone()).collect(),
            };
            (s.name.clone(), shown)
        })
        .collect()
}

#[cfg(test)]
mod own_service_tests {
    use super::*;
    use crate::config::load_str;

    const OWN: &str = r#"
services:
  cache:
    image: redis:8.2.1-alpine
    command: [redis-server, --requirepass, "${DEVENV_SECRET_CACHE_PASSWORD}"]
    env:
      REDIS_URL: "redis://:${DEVENV_SECRET_CACHE_PASSWORD}@cache:6379/0"
      PLAIN: "cost $5"
    ports:
      redis: 6379
    volumes: ["data:/data", "./conf:/usr/local/etc/redis"]
    healthcheck: {command: [redis-cli, ping], interval: 2}
    hostnames: [cache]
  api:
    image: example.com/team/api:1.4.2
    user: "1000:1000"
    ports:
      http: {container: 8080, host: 0}
      metrics: {container: 9100}
    hostnames: [api, api-v1]
    depends_on: [cache, registry]
    metrics: {port: metrics}
    tier: data
"#;

    fn own(config: &Config, name: &str) -> Service {
        config
            .services()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} is not resolved"))
    }

    #[test]
    fn a_service_of_ones_own_resolves_like_the_built_ins() {
        let mut config = load_str(OWN, "devenv.yaml").expect("valid");
        config.base_dir = Some("/work/project".into());
        let names: Vec<String> = config.services().into_iter().map(|s| s.name).collect();
        // After the built-ins, each after what it depends on.
        let at = |n: &str| names.iter().position(|x| x == n).unwrap();
        assert!(
            at("cache") < at("api") && at("gateway") < at("cache"),
            "{names:?}"
        );

        let cache = own(&config, "cache");
        assert!(cache.is_own());
        assert_eq!(cache.container_name, "macula-cache");
        assert_eq!(cache.address, address_of(&config, "cache"));
        assert_ne!(cache.address, address_of(&config, "api"));
        assert_eq!(cache.ports[0].host_port, 6379);
        assert_eq!(cache.ports[0].container_port, 6379);
        assert_eq!(cache.ports[0].host_ip.to_string(), "127.0.0.1");
        assert_eq!(
            cache.mounts[0].source,
            MountSource::Volume("macula-cache-data".into())
        );
        assert_eq!(
            cache.mounts[1].source,
            MountSource::Bind("/work/project/conf".into())
        );
        assert!(cache.mounts[1].read_only && !cache.mounts[0].read_only);
        let hc = cache.healthcheck.as_ref().unwrap();
        assert_eq!(
            (hc.test[0].as_str(), hc.interval_s, hc.retries),
            ("redis-cli", 2, 12)
        );
        // Only names that lead to a port of its own; not HTTP: the name resolves, no proxy.
        assert_eq!(cache.routes[0].kind, ServiceKind::Tcp);
        assert_eq!(cache.routes[0].container_port, 6379);
        let secret = SecretName::User("CACHE_PASSWORD".into());
        assert_eq!(cache.env["REDIS_URL"].secrets(), [&secret]);
        assert_eq!(
            cache.env["REDIS_URL"].fill(&|s| format!("<{}>", s.var())),
            "redis://:<DEVENV_SECRET_CACHE_PASSWORD>@cache:6379/0"
        );
        assert_eq!(cache.env["PLAIN"], EnvValue::Plain("cost $5".into()));
        assert_eq!(config.own_secrets(), [secret]);

        let api = own(&config, "api");
        assert!(api.ports.is_empty(), "host 0 and no host: not published");
        assert_eq!(api.container_ports["http"], 8080);
        assert_eq!(api.routes.len(), 2);
        assert_eq!(api.routes[1].hostname, "api-v1.macula.local");
        assert_eq!(api.routes[0].kind, ServiceKind::Http);
        assert_eq!(api.routes[0].container_port, 8080);
        let deps: Vec<&str> = api.depends_on.iter().map(|d| d.service.as_str()).collect();
        assert_eq!(deps, ["cache", "registry"]);
        assert_eq!(api.metrics.as_ref().unwrap().port, 9100);
        assert_eq!(api.tier, Tier::Data);
        assert_eq!(api.user.as_deref(), Some("1000:1000"));
        assert!(api.healthcheck.is_none());

        // Its tier switches it.
        config.tiers.data = false;
        assert!(config.services().iter().all(|s| s.name != "api"));
    }

    #[test]
    fn every_built_in_resolves_with_a_healthcheck_and_its_names_lead_to_its_ports() {
        let config = Config::default();
        for def in DEFINITIONS {
            for (label, port) in def.hostnames.iter() {
                assert!(def.port(port).is_some(), "{}: {label} -> {port}", def.name);
            }
        }
        for s in config.services() {
            assert!(s.healthcheck.is_some(), "{} has no healthcheck", s.name);
        }
    }

    #[test]
    fn a_built_in_declared_as_ones_own_resolves_to_the_same_service() {
        // Excalidraw's facts written in devenv.yaml under another name: the same definition
        // in data, so the same resolution.
        let config = load_str(
            "services:\n  sketch:\n    image: excalidraw/excalidraw:latest@sha256:f7ee194addd607bf831d2af0f0a34463dd4225e426cf35199ef0b12a803398e9\n    tier: tools\n    ports: {http: {container: 80, host: 0}}\n    hostnames: [sketch]\n    healthcheck: {command: [wget, -q, -O, /dev/null, \"http://127.0.0.1:80/\"], start_period: 5}\n",
            "devenv.yaml",
        )
        .expect("valid");
        let built_in = own(&config, "excalidraw");
        let declared = own(&config, "sketch");
        assert!(declared.is_own() && !built_in.is_own());
        let same = |s: &Service| {
            (
                s.image.clone(),
                s.tier,
                s.ports.clone(),
                s.container_ports.clone(),
                s.healthcheck.clone(),
                s.routes
                    .iter()
                    .map(|r| (r.container_port, r.kind))
                    .collect::<Vec<_>>(),
                s.mounts.clone(),
                s.env.clone(),
                s.command.clone(),
            )
        };
        assert_eq!(same(&declared), same(&built_in));
        assert_eq!(declared.routes[0].hostname, "sketch.macula.local");
    }

    #[test]
    fn a_service_of_ones_own_needs_what_it_depends_on() {
        let e = problems(
            "tiers: {data: false}\nservices:\n  api:\n    image: x:1\n    depends_on: [timescaledb]\n",
        );
        assert!(
            e.contains(
                "`api` is enabled but `timescaledb`, which it needs, is disabled (by `tiers.data`)"
            ),
            "{e}"
        );
        let e = problems(
            "services:\n  api:\n    image: x:1\n    depends_on: [cache]\n  cache:\n    image: x:1\n    enabled: false\n",
        );
        assert!(e.contains("(by `services.cache.enabled`)"), "{e}");
    }

    #[test]
    fn the_docker_hub_mirror_is_on_for_a_kind_cluster_and_others_when_listed() {
        let names = |config: &Config| -> Vec<String> {
            config
                .services()
                .into_iter()
                .filter(|s| mirror_of(config, &s.name).is_some())
                .map(|s| s.name)
                .collect()
        };
        assert_eq!(names(&Config::default()), ["mirror"]);
        let config = load_str(
            "mirror:\n  registries: [ghcr.io, docker.io, registry.k8s.io]\n  remote: {docker.io: \"http://hub.example.internal:5000\"}\n",
            "devenv.yaml",
        )
        .expect("valid");
        assert_eq!(names(&config), ["mirror", "mirror-ghcr", "mirror-k8s"]);
        let hub = own(&config, "mirror");
        assert_eq!(
            hub.env["REGISTRY_PROXY_REMOTEURL"],
            EnvValue::Plain("http://hub.example.internal:5000".into())
        );
        assert!(hub.ports.is_empty(), "never published on the host");
        assert!(hub.routes.is_empty());
        let ghcr = own(&config, "mirror-ghcr");
        assert_eq!(
            ghcr.env["REGISTRY_PROXY_REMOTEURL"],
            EnvValue::Plain("https://ghcr.io".into())
        );
        assert_eq!(
            ghcr.mounts[0].source,
            MountSource::Volume("macula-mirror-ghcr-data".into())
        );
        assert!(
            ghcr.metrics.is_none(),
            "its debug listener is on its own loopback"
        );
        assert_eq!(
            ghcr.env["REGISTRY_HTTP_DEBUG_ADDR"],
            EnvValue::Plain("127.0.0.1:5001".into())
        );
        let off = load_str("mirror: {registries: []}\n", "devenv.yaml").unwrap();
        assert!(names(&off).is_empty());
        let none = load_str("cluster: {provider: none}\n", "devenv.yaml").unwrap();
        assert!(names(&none).is_empty(), "no KinD cluster, nothing pulls");
        let switched = load_str("services: {mirror: {enabled: false}}\n", "devenv.yaml").unwrap();
        assert!(names(&switched).is_empty());
    }

    #[test]
    fn a_mirror_of_an_unknown_or_devenvs_own_registry_is_refused_at_its_line() {
        let e = problems("mirror:\n  registries: [docker.io, gcr.io, ghcr.oi]\n");
        assert!(e.contains("devenv.yaml:2:"), "{e}");
        assert!(e.contains("devenv cannot mirror `gcr.io`"), "{e}");
        assert!(e.contains("did you mean `ghcr.io`?"), "{e}");
        let e = problems("mirror:\n  registries: [registry.macula.local, \"localhost:5001\"]\n");
        assert_eq!(e.matches("is devenv's own registry").count(), 2, "{e}");
        let e = problems("mirror:\n  registries: [docker.io, docker.io]\n");
        assert!(e.contains("listed twice"), "{e}");
        let e = problems("mirror:\n  remote: {quay.io: \"https://q.example\"}\n");
        assert!(e.contains("`quay.io` is not mirrored"), "{e}");
        let on = "mirror:\n  remote: {quay.io: \"https://q.example\"}\nservices:\n  mirror-quay: {enabled: true}\n";
        let quay = load_str(on, "devenv.yaml").expect("switched on by its own enabled");
        assert_eq!(
            own(&quay, "mirror-quay").env["REGISTRY_PROXY_REMOTEURL"],
            EnvValue::Plain("https://q.example".into())
        );
        let e = problems("mirror:\n  remote: {docker.io: \"hub.example/v2\"}\n");
        assert!(e.contains("is not a registry's address"), "{e}");
        let e = problems("mirror:\n  remote: {docker.io: \"http://macula-registry:5000\"}\n");
        assert!(e.contains("devenv's own registry, not a remote"), "{e}");
        let e = problems("mirror:\n  registry: [docker.io]\n");
        assert!(
            e.contains("unknown key `registry`") && e.contains("takes: registries, remote"),
            "{e}"
        );
        let e = problems("services:\n  mirror:\n    hostnames: [hub]\n");
        assert!(e.contains("`mirror` is not reached by hostname"), "{e}");
        // Its address comes after the services of one's own, so theirs do not move.
        let config = load_str("services:\n  a:\n    image: x:1\n", "devenv.yaml").unwrap();
        let base = u32::from(config.network.subnet.network());
        let at = |s: &str| u32::from(address_of(&config, s)) - base;
        assert_eq!(
            (at("gateway"), at("a"), at("mirror"), at("mirror-k8s")),
            (14, 15, 16, 19)
        );
        // The default fits a /27: 13 services, Docker Hub's mirror, network and gateway.
        assert!(load_str("network: {subnet: 10.1.2.0/27}\n", "devenv.yaml").is_ok());
        let e = problems("network: {subnet: 10.1.2.0/27}\nservices:\n  a:\n    image: x:1\n");
        assert!(e.contains("has room for 14 services"), "{e}");
    }

    fn problems(yaml: &str) -> String {
        format!("{:#}", load_str(yaml, "devenv.yaml").unwrap_err())
    }

    #[test]
    fn tcp_and_http_healthchecks_become_devenvs_own_probes_on_the_container_port() {
        let config = load_str(
            "services:\n  kv:\n    image: x:1\n    ports: {redis: {container: 6379, host: 0}}\n    healthcheck: {tcp: redis}\n  web:\n    image: y:1\n    ports: {http: {container: 3000, host: 0}}\n    healthcheck: {http: {port: 3000, path: /health}, timeout: 2}\n",
            "devenv.yaml",
        )
        .unwrap();
        let kv = own(&config, "kv");
        assert!(kv.healthcheck.is_none());
        assert_eq!(
            kv.probe,
            Some(Probe {
                check: ProbeCheck::Tcp,
                port: 6379,
                timeout_s: 3,
                network: config.network_name(),
            })
        );
        let web = own(&config, "web");
        assert_eq!(
            web.probe,
            Some(Probe {
                check: ProbeCheck::Http {
                    path: "/health".into()
                },
                port: 3000,
                timeout_s: 2,
                network: config.network_name(),
            })
        );
        let cache = load_str(
            "services:\n  c:\n    image: x:1\n    healthcheck: {command: [true]}\n",
            "devenv.yaml",
        )
        .unwrap();
        assert!(own(&cache, "c").probe.is_none());
    }

    #[test]
    fn a_bad_service_of_ones_own_is_named_with_the_fix() {
        let e = problems("services:\n  grafanna:\n    ports: {http: 3000}\n");
        assert!(e.contains("did you mean `grafana`, the built-in"), "{e}");
        let e = problems("services:\n  grafana:\n    command: [x]\n    env: {A: b}\n");
        assert!(e.contains("`command` is for services of your own"), "{e}");
        assert!(e.contains("`env` is for services of your own"), "{e}");
        let e = problems("services:\n  grafana:\n    ports: {http: {container: 1, host: 2}}\n");
        assert!(
            e.contains("container port of built-in `grafana` is fixed"),
            "{e}"
        );
        let e = problems(
            "services:\n  a:\n    image: x:1\n    depends_on: [b]\n  b:\n    image: x:1\n    depends_on: [a]\n",
        );
        assert!(e.contains("in a circle: a -> b -> a"), "{e}");
        let e = problems("services:\n  a:\n    image: x:1\n    depends_on: [nope]\n");
        assert!(e.contains("there is no service `nope`"), "{e}");
        let e = problems(
            "services:\n  a:\n    image: x:1\n    env: {URL: \"${DEVENV_SECRET_lower}\"}\n",
        );
        assert!(e.contains("does not name a secret"), "{e}");
        let e = problems(
            "services:\n  a:\n    image: x:1\n    volumes: [\"/etc:/etc\", \"Bad:/x\", \"d:/x\", \"e:/x\"]\n",
        );
        assert!(e.contains("`/etc:/etc` is not a volume"), "{e}");
        assert!(e.contains("`Bad:/x` is not a volume"), "{e}");
        assert!(e.contains("`/x` is mounted twice"), "{e}");
        let e = problems("services:\n  a:\n    image: redis\n");
        assert!(e.contains("not pinned"), "{e}");
        let e = problems(
            "services:\n  a:\n    image: x:1\n    metrics: {port: web}\n    ports: {http: 80}\n",
        );
        assert!(e.contains("has no port `web`"), "{e}");
        let e = problems("services:\n  a:\n    image: x:1\n    ports: {http: 99999}\n");
        assert!(e.contains("99999"), "{e}");
        let e = problems("services:\n  a:\n    image: x:1\n    healthcheck: {command: []}\n");
        assert!(e.contains("no command"), "{e}");
        let e = problems(
            "services:\n  a:\n    image: x:1\n    volumes: [\"data-before-restore:/d\"]\n",
        );
        assert!(e.contains("is devenv's own"), "{e}");
        let e =
            problems("services:\n  a:\n    image: x:1\n    healthcheck: {command: [x], tcp: 80}\n");
        assert!(
            e.contains("exactly one of `command`, `tcp` and `http`"),
            "{e}"
        );
        let e = problems(
            "services:\n  a:\n    image: x:1\n    ports: {web: 80}\n    healthcheck: {tcp: api}\n",
        );
        assert!(
            e.contains("healthcheck.tcp") && e.contains("has no port `api`"),
            "{e}"
        );
        assert!(e.contains("its ports are: web"), "{e}");
        let e = problems(
            "services:\n  a:\n    image: x:1\n    healthcheck: {http: {port: 80, path: health}}\n",
        );
        assert!(e.contains("`health` is not a path"), "{e}");
        // Its hostnames clash like any other's.
        let e = problems(
            "services:\n  a:\n    image: x:1\n    ports: {http: 80}\n    hostnames: [grafana]\n",
        );
        assert!(e.contains("grafana"), "{e}");
    }
}
