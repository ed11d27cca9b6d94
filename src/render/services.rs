//! The infrastructure services' own config files, mounted read-only by their containers:
//! Prometheus (`prometheus.yml`), Grafana's datasource provisioning, Loki, Tempo, and
//! PowerDNS (`pdns.conf`, its secrets template and the Postgres schema its database is
//! created with).
//!
//! YAML comes from the typed structs below (the fields devenv sets, named as each tool spells
//! them); `pdns.conf` has no serde model and comes from `templates/pdns.conf.j2`, the schema
//! from `templates/pdns-schema.pgsql.sql`. A file is rendered only when its service is enabled.
//! Secrets never go into these files: PowerDNS's database password and API key reach it
//! through `secrets.j2` (`templates/pdns-secrets.j2`), a template of environment variables that
//! the PowerDNS image's startup script renders inside the container into the directory
//! pdns.conf includes (see [`crate::config::PDNS_INCLUDE_DIR`]). Not for: the compose file or
//! the gateway.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Artifact, COMPOSE_DIR, generated_header, template_env, to_yaml};
use crate::config::{Config, ConfigFile, PDNS_INCLUDE_DIR, Service};

const PDNS_TEMPLATE: &str = include_str!("../../templates/pdns.conf.j2");
const PDNS_SCHEMA: &str = include_str!("../../templates/pdns-schema.pgsql.sql");
const PDNS_SECRETS: &str = include_str!("../../templates/pdns-secrets.j2");

/// The Postgres role and database PowerDNS uses (created by the `pdns-db` container).
pub const PDNS_DB: &str = "pdns";
/// The port PowerDNS answers DNS on inside its container (unprivileged: the image runs as
/// the `pdns` user).
pub const PDNS_DNS_PORT: u16 = 5300;
/// The port of PowerDNS's webserver (HTTP API and /metrics).
pub const PDNS_API_PORT: u16 = 8081;

fn artifact(file: ConfigFile, contents: String) -> Artifact {
    Artifact::new(format!("{COMPOSE_DIR}/{}", file.path()), contents)
}

// ---------------------------------------------------------------------------------------
// Prometheus

/// `prometheus.yml` (the fields devenv sets).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrometheusConfig {
    pub global: PrometheusGlobal,
    pub scrape_configs: Vec<ScrapeConfig>,
}

/// Prometheus's `global` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrometheusGlobal {
    pub scrape_interval: String,
    pub evaluation_interval: String,
    pub external_labels: BTreeMap<String, String>,
}

/// One scrape job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub metrics_path: String,
    pub static_configs: Vec<StaticConfig>,
}

/// Fixed targets of a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// The scrape config: every enabled service that exposes metrics, by its name on the
/// infrastructure network; Prometheus scrapes itself on localhost.
pub fn prometheus(config: &Config, services: &[Service]) -> PrometheusConfig {
    let scrape_configs = services
        .iter()
        .filter_map(|s| {
            let (port, path) = s.metrics.as_ref()?;
            let host = if s.name == "prometheus" {
                "localhost"
            } else {
                s.name.as_str()
            };
            Some(ScrapeConfig {
                job_name: s.name.clone(),
                metrics_path: path.clone(),
                static_configs: vec![StaticConfig {
                    targets: vec![format!("{host}:{port}")],
                    labels: BTreeMap::from([
                        ("container".to_string(), s.container_name.clone()),
                        ("tier".to_string(), format!("{:?}", s.tier).to_lowercase()),
                    ]),
                }],
            })
        })
        .collect();
    PrometheusConfig {
        global: PrometheusGlobal {
            scrape_interval: "15s".into(),
            evaluation_interval: "15s".into(),
            external_labels: BTreeMap::from([("devenv".to_string(), config.name.clone())]),
        },
        scrape_configs,
    }
}

// ---------------------------------------------------------------------------------------
// Grafana

/// Grafana's datasource provisioning file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaProvisioning {
    pub api_version: u32,
    /// Removes provisioned datasources that left this file (a service was disabled).
    pub prune: bool,
    pub datasources: Vec<GrafanaDatasource>,
}

/// One provisioned datasource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaDatasource {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub uid: String,
    pub access: String,
    pub url: String,
    pub is_default: bool,
    pub editable: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub json_data: BTreeMap<String, serde_json::Value>,
}

/// Prometheus (the default), Loki and Tempo, those of them that are enabled; Tempo links its
/// traces to Loki's logs and Prometheus's service graph when those are there.
pub fn grafana(services: &[Service]) -> GrafanaProvisioning {
    let enabled = |name: &str| services.iter().any(|s| s.name == name);
    let source = |name: &str, kind: &str, port: u16| GrafanaDatasource {
        name: name.to_string(),
        kind: kind.to_string(),
        uid: kind.to_string(),
        access: "proxy".into(),
        url: format!("http://{kind}:{port}"),
        is_default: kind == "prometheus",
        editable: false,
        json_data: BTreeMap::new(),
    };
    let mut datasources = Vec::new();
    if enabled("prometheus") {
        datasources.push(source("Prometheus", "prometheus", 9090));
    }
    if enabled("loki") {
        datasources.push(source("Loki", "loki", 3100));
    }
    if enabled("tempo") {
        let mut tempo = source("Tempo", "tempo", 3200);
        tempo
            .json_data
            .insert("nodeGraph".into(), serde_json::json!({"enabled": true}));
        if enabled("loki") {
            tempo.json_data.insert(
                "tracesToLogsV2".into(),
                serde_json::json!({"datasourceUid": "loki", "filterByTraceID": true}),
            );
        }
        if enabled("prometheus") {
            tempo.json_data.insert(
                "serviceMap".into(),
                serde_json::json!({"datasourceUid": "prometheus"}),
            );
        }
        datasources.push(tempo);
    }
    GrafanaProvisioning {
        api_version: 1,
        prune: true,
        datasources,
    }
}

// ---------------------------------------------------------------------------------------
// Loki

/// Loki's config: one process, filesystem storage under `/loki` (the named volume), schema
/// v13 on TSDB, a week of retention.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LokiConfig {
    pub auth_enabled: bool,
    pub server: LokiServer,
    pub common: LokiCommon,
    pub schema_config: LokiSchemaConfig,
    pub compactor: LokiCompactor,
    pub limits_config: LokiLimits,
    pub analytics: ReportingConfig,
}

/// Loki's `server` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LokiServer {
    pub http_listen_port: u16,
    pub grpc_listen_port: u16,
    pub log_level: String,
}

/// Loki's `common` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LokiCommon {
    pub instance_addr: String,
    pub path_prefix: String,
    pub storage: LokiStorage,
    pub replication_factor: u32,
    pub ring: LokiRing,
}

/// Loki's common storage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LokiStorage {
    pub filesystem: LokiFilesystem,
}

/// Loki's filesystem storage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LokiFilesystem {
    pub chunks_directory: String,
    pub rules_directory: String,
}

/// Loki's ring: in memory, single instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LokiRing {
    pub kvstore: LokiKvStore,
}

/// Loki's kv store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LokiKvStore {
    pub store: String,
}

/// Loki's `schema_config`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LokiSchemaConfig {
    pub configs: Vec<LokiPeriod>,
}

/// One schema period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LokiPeriod {
    pub from: String,
    pub store: String,
    pub object_store: String,
    pub schema: String,
    pub index: LokiIndex,
}

/// A schema period's index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LokiIndex {
    pub prefix: String,
    pub period: String,
}

/// Loki's compactor (which also applies retention).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LokiCompactor {
    pub working_directory: String,
    pub retention_enabled: bool,
    pub delete_request_store: String,
}

/// Loki's `limits_config`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LokiLimits {
    pub retention_period: String,
    pub allow_structured_metadata: bool,
    pub volume_enabled: bool,
}

/// Usage reporting to the vendor (Loki's `analytics`, Tempo's `usage_report`): off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportingConfig {
    pub reporting_enabled: bool,
}

/// Where Loki keeps everything: its named volume.
pub const LOKI_DATA: &str = "/loki";

/// Loki's config.
pub fn loki() -> LokiConfig {
    LokiConfig {
        auth_enabled: false,
        server: LokiServer {
            http_listen_port: 3100,
            grpc_listen_port: 9096,
            log_level: "info".into(),
        },
        common: LokiCommon {
            instance_addr: "127.0.0.1".into(),
            path_prefix: LOKI_DATA.into(),
            storage: LokiStorage {
                filesystem: LokiFilesystem {
                    chunks_directory: format!("{LOKI_DATA}/chunks"),
                    rules_directory: format!("{LOKI_DATA}/rules"),
                },
            },
            replication_factor: 1,
            ring: LokiRing {
                kvstore: LokiKvStore {
                    store: "inmemory".into(),
                },
            },
        },
        schema_config: LokiSchemaConfig {
            configs: vec![LokiPeriod {
                // Fixed, never "today": moving it would orphan the data already written.
                from: "2024-04-01".into(),
                store: "tsdb".into(),
                object_store: "filesystem".into(),
                schema: "v13".into(),
                index: LokiIndex {
                    prefix: "index_".into(),
                    period: "24h".into(),
                },
            }],
        },
        compactor: LokiCompactor {
            working_directory: format!("{LOKI_DATA}/compactor"),
            retention_enabled: true,
            delete_request_store: "filesystem".into(),
        },
        limits_config: LokiLimits {
            retention_period: "168h".into(),
            allow_structured_metadata: true,
            volume_enabled: true,
        },
        analytics: ReportingConfig {
            reporting_enabled: false,
        },
    }
}

// ---------------------------------------------------------------------------------------
// Tempo

/// Tempo's config: local storage under `/var/tempo` (the named volume), OTLP on 4317 (gRPC)
/// and 4318 (HTTP), and, with Prometheus, span metrics and service graphs written to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoConfig {
    pub stream_over_http_enabled: bool,
    pub server: TempoServer,
    pub distributor: TempoDistributor,
    pub ingester: TempoIngester,
    pub compactor: TempoCompactor,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_generator: Option<TempoMetricsGenerator>,
    pub storage: TempoStorage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overrides: Option<TempoOverrides>,
    pub usage_report: ReportingConfig,
}

/// Tempo's `server` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoServer {
    pub http_listen_port: u16,
    pub log_level: String,
}

/// Tempo's distributor: which receivers listen where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoDistributor {
    pub receivers: TempoReceivers,
}

/// Tempo's receivers (OpenTelemetry collector syntax).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoReceivers {
    pub otlp: TempoOtlp,
}

/// The OTLP receiver.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoOtlp {
    pub protocols: TempoOtlpProtocols,
}

/// OTLP over gRPC and over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoOtlpProtocols {
    pub grpc: TempoEndpoint,
    pub http: TempoEndpoint,
}

/// Where a receiver listens. All interfaces: the port is published on loopback only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoEndpoint {
    pub endpoint: String,
}

/// Tempo's ingester.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoIngester {
    pub max_block_duration: String,
}

/// Tempo's compactor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoCompactor {
    pub compaction: TempoCompaction,
}

/// Tempo's compaction (retention).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoCompaction {
    pub block_retention: String,
}

/// Tempo's metrics generator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoMetricsGenerator {
    pub registry: TempoRegistry,
    pub storage: TempoGeneratorStorage,
}

/// Labels the generator puts on every series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoRegistry {
    pub external_labels: BTreeMap<String, String>,
}

/// The generator's WAL and where it writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoGeneratorStorage {
    pub path: String,
    pub remote_write: Vec<TempoRemoteWrite>,
}

/// One remote-write target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoRemoteWrite {
    pub url: String,
    pub send_exemplars: bool,
}

/// Tempo's trace storage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoStorage {
    pub trace: TempoTraceStorage,
}

/// Local trace storage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoTraceStorage {
    pub backend: String,
    pub wal: TempoPath,
    pub local: TempoPath,
}

/// A directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoPath {
    pub path: String,
}

/// Tempo's per-tenant overrides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoOverrides {
    pub defaults: TempoOverrideDefaults,
}

/// The defaults every tenant gets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoOverrideDefaults {
    pub metrics_generator: TempoGeneratorOverrides,
}

/// Which generator processors run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoGeneratorOverrides {
    pub processors: Vec<String>,
}

/// Where Tempo keeps everything: its named volume.
pub const TEMPO_DATA: &str = "/var/tempo";

/// Tempo's config.
pub fn tempo(config: &Config, services: &[Service]) -> TempoConfig {
    let with_prometheus = services.iter().any(|s| s.name == "prometheus");
    TempoConfig {
        stream_over_http_enabled: true,
        server: TempoServer {
            http_listen_port: 3200,
            log_level: "info".into(),
        },
        distributor: TempoDistributor {
            receivers: TempoReceivers {
                otlp: TempoOtlp {
                    protocols: TempoOtlpProtocols {
                        grpc: TempoEndpoint {
                            endpoint: "0.0.0.0:4317".into(),
                        },
                        http: TempoEndpoint {
                            endpoint: "0.0.0.0:4318".into(),
                        },
                    },
                },
            },
        },
        ingester: TempoIngester {
            max_block_duration: "5m".into(),
        },
        compactor: TempoCompactor {
            compaction: TempoCompaction {
                block_retention: "168h".into(),
            },
        },
        metrics_generator: with_prometheus.then(|| TempoMetricsGenerator {
            registry: TempoRegistry {
                external_labels: BTreeMap::from([
                    ("devenv".to_string(), config.name.clone()),
                    ("source".to_string(), "tempo".to_string()),
                ]),
            },
            storage: TempoGeneratorStorage {
                path: format!("{TEMPO_DATA}/generator/wal"),
                remote_write: vec![TempoRemoteWrite {
                    url: "http://prometheus:9090/api/v1/write".into(),
                    send_exemplars: true,
                }],
            },
        }),
        storage: TempoStorage {
            trace: TempoTraceStorage {
                backend: "local".into(),
                wal: TempoPath {
                    path: format!("{TEMPO_DATA}/wal"),
                },
                local: TempoPath {
                    path: format!("{TEMPO_DATA}/blocks"),
                },
            },
        },
        overrides: with_prometheus.then(|| TempoOverrides {
            defaults: TempoOverrideDefaults {
                metrics_generator: TempoGeneratorOverrides {
                    processors: vec!["service-graphs".into(), "span-metrics".into()],
                },
            },
        }),
        usage_report: ReportingConfig {
            reporting_enabled: false,
        },
    }
}

// ---------------------------------------------------------------------------------------
// PowerDNS

/// A value for pdns.conf: one line, no `#` (pdns.conf has no quoting; `#` starts a comment).
fn pdns_value(value: String) -> Result<String, minijinja::Error> {
    if value.chars().any(|c| c.is_control() || c == '#') || value.trim() != value {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("{value:?} cannot go into pdns.conf"),
        ));
    }
    Ok(value)
}

/// `pdns.conf`: the Postgres backend on `pdns-db`, DNS on 5300, the API and webserver
/// reachable from the infrastructure network only.
pub fn pdns_conf(config: &Config) -> anyhow::Result<String> {
    let mut env = template_env();
    env.add_filter("pdns", pdns_value);
    env.add_template("pdns.conf", PDNS_TEMPLATE)?;
    let header = generated_header("#");
    Ok(env.get_template("pdns.conf")?.render(minijinja::context! {
        header => header.trim_end(),
        db_host => "pdns-db",
        db_name => PDNS_DB,
        db_user => PDNS_DB,
        dns_port => PDNS_DNS_PORT,
        api_port => PDNS_API_PORT,
        include_dir => PDNS_INCLUDE_DIR,
        // The compose network only (Prometheus, PowerDNS-Admin, the gateway), plus the
        // container's own loopback for `pdns_control` and probes.
        allow_from => format!("127.0.0.1,::1,{}", config.network.subnet),
        soa => format!("ns1.{} hostmaster.{} 0 10800 3600 604800 3600", config.domain, config.domain),
    })?)
}

/// `secrets.j2`: PowerDNS's secret settings as `{{ VAR }}` placeholders, which the image's
/// startup script fills from the container's environment. Written verbatim: devenv does not
/// render it, the container does.
pub fn pdns_secrets_template() -> String {
    format!("{}{PDNS_SECRETS}", generated_header("#"))
}

/// Every service config file for the enabled services.
pub fn render(config: &Config) -> anyhow::Result<Vec<Artifact>> {
    let services = config.services();
    let enabled = |name: &str| services.iter().any(|s| s.name == name);
    let header = generated_header("#");
    let mut out = Vec::new();
    if enabled("prometheus") {
        out.push(artifact(
            ConfigFile::Prometheus,
            to_yaml(&header, &prometheus(config, &services))?,
        ));
    }
    if enabled("grafana") {
        out.push(artifact(
            ConfigFile::GrafanaDatasources,
            to_yaml(&header, &grafana(&services))?,
        ));
    }
    if enabled("loki") {
        out.push(artifact(ConfigFile::Loki, to_yaml(&header, &loki())?));
    }
    if enabled("tempo") {
        out.push(artifact(
            ConfigFile::Tempo,
            to_yaml(&header, &tempo(config, &services))?,
        ));
    }
    if enabled("pdns") {
        out.push(artifact(ConfigFile::PdnsConf, pdns_conf(config)?));
        out.push(artifact(ConfigFile::PdnsSecrets, pdns_secrets_template()));
    }
    if enabled("pdns-db") {
        out.push(artifact(
            ConfigFile::PdnsSchema,
            format!("{}{PDNS_SCHEMA}", generated_header("--")),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceSettings;

    #[test]
    fn prometheus_scrapes_every_service_with_metrics_and_itself() {
        let config = Config::default();
        let services = config.services();
        let p = prometheus(&config, &services);
        let jobs: Vec<_> = p
            .scrape_configs
            .iter()
            .map(|j| j.job_name.as_str())
            .collect();
        let expected: Vec<_> = services
            .iter()
            .filter(|s| s.metrics.is_some())
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(jobs, expected);
        assert!(jobs.contains(&"prometheus") && jobs.contains(&"pdns"));
        let own = p
            .scrape_configs
            .iter()
            .find(|j| j.job_name == "prometheus")
            .unwrap();
        assert_eq!(own.static_configs[0].targets, ["localhost:9090"]);
    }

    #[test]
    fn grafana_provisions_only_enabled_datasources_with_prometheus_default() {
        let mut config = Config::default();
        let all = grafana(&config.services());
        let names: Vec<_> = all.datasources.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["Prometheus", "Loki", "Tempo"]);
        assert_eq!(all.datasources.iter().filter(|d| d.is_default).count(), 1);
        config.services.insert(
            "loki".into(),
            ServiceSettings {
                enabled: Some(false),
                ..Default::default()
            },
        );
        let some = grafana(&config.services());
        assert_eq!(some.datasources.len(), 2);
        assert!(!some.datasources[1].json_data.contains_key("tracesToLogsV2"));
    }

    #[test]
    fn pdns_conf_limits_the_api_to_the_network_and_holds_no_secret() {
        let text = pdns_conf(&Config::default()).unwrap();
        assert!(
            text.contains("webserver-allow-from=127.0.0.1,::1,172.30.80.0/24\n"),
            "{text}"
        );
        assert!(text.contains("launch=gpgsql\n"));
        assert!(text.contains("local-port=5300\n"));
        assert!(
            text.contains("include-dir=/etc/powerdns/pdns.d\n"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(!line.starts_with("gpgsql-password"), "{line}");
            assert!(!line.starts_with("api-key"), "{line}");
            assert!(!line.contains("0.0.0.0/0"), "{line}");
        }
    }

    #[test]
    fn pdns_secrets_template_reads_every_secret_from_the_environment() {
        let text = pdns_secrets_template();
        let settings: Vec<_> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            settings,
            [
                "gpgsql-password={{ PDNS_DB_PASSWORD }}",
                "api-key={{ PDNS_API_KEY }}"
            ],
            "{text}"
        );
        // The variables the template reads are the ones the container is given.
        let vars: Vec<_> = crate::config::PDNS_SECRET_VARS
            .iter()
            .map(|v| v.0)
            .collect();
        assert_eq!(vars, ["PDNS_DB_PASSWORD", "PDNS_API_KEY"]);
        // Jinja comments and blocks would change what the container renders.
        assert!(!text.contains("{#") && !text.contains("{%"), "{text}");
    }
}
