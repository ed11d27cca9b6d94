//! Tempo's config: local storage in its data volume, OTLP over gRPC and HTTP on its ports,
//! and, with Prometheus, span metrics and service graphs written to it.
//!
//! Not for: Tempo's container (its definition in `config`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::loki::ReportingConfig;
use super::{Artifact, generated_header, to_yaml};
use crate::config::{Config, ConfigFile, Service};

/// Tempo's config: local storage in its named volume, OTLP over gRPC and HTTP, and, with
/// Prometheus, span metrics and service graphs written to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoConfig {
    pub stream_over_http_enabled: bool,
    pub server: TempoServer,
    pub distributor: TempoDistributor,
    pub live_store: TempoLiveStore,
    pub backend_worker: TempoBackendWorker,
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

/// Tempo 3's live store (it took over from the ingester): recent traces, their WAL in the data
/// volume, cut into blocks every few minutes so that they are searchable from storage soon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoLiveStore {
    pub wal: TempoPath,
    pub shutdown_marker_dir: String,
    pub max_block_duration: String,
}

/// Tempo 3's backend worker (it took over from the compactor): compaction and retention.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TempoBackendWorker {
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

/// Tempo's config for its service: ports and the data directory (its named volume) are the
/// service's; with Prometheus among `services`, metrics are written to it.
pub fn tempo(config: &Config, service: &Service, services: &[Service]) -> TempoConfig {
    let prometheus = services.iter().find(|s| s.name == "prometheus");
    let data = service.data_dir().unwrap_or("/var/tempo");
    TempoConfig {
        stream_over_http_enabled: true,
        server: TempoServer {
            http_listen_port: service.port("http"),
            log_level: "info".into(),
        },
        distributor: TempoDistributor {
            receivers: TempoReceivers {
                otlp: TempoOtlp {
                    protocols: TempoOtlpProtocols {
                        grpc: TempoEndpoint {
                            endpoint: format!("0.0.0.0:{}", service.port("otlp-grpc")),
                        },
                        http: TempoEndpoint {
                            endpoint: format!("0.0.0.0:{}", service.port("otlp-http")),
                        },
                    },
                },
            },
        },
        live_store: TempoLiveStore {
            wal: TempoPath {
                path: format!("{data}/live-store/traces"),
            },
            shutdown_marker_dir: format!("{data}/live-store/shutdown-marker"),
            max_block_duration: "5m".into(),
        },
        backend_worker: TempoBackendWorker {
            compaction: TempoCompaction {
                block_retention: "168h".into(),
            },
        },
        metrics_generator: prometheus.map(|prometheus| TempoMetricsGenerator {
            registry: TempoRegistry {
                external_labels: BTreeMap::from([
                    ("devenv".to_string(), config.name.clone()),
                    ("source".to_string(), "tempo".to_string()),
                ]),
            },
            storage: TempoGeneratorStorage {
                path: format!("{data}/generator/wal"),
                remote_write: vec![TempoRemoteWrite {
                    url: format!(
                        "http://{}:{}/api/v1/write",
                        prometheus.name,
                        prometheus.port("http")
                    ),
                    send_exemplars: true,
                }],
            },
        }),
        storage: TempoStorage {
            trace: TempoTraceStorage {
                backend: "local".into(),
                wal: TempoPath {
                    path: format!("{data}/wal"),
                },
                local: TempoPath {
                    path: format!("{data}/blocks"),
                },
            },
        },
        overrides: prometheus.map(|_| TempoOverrides {
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

/// `tempo.yaml`, when Tempo is enabled.
pub fn render(config: &Config, services: &[Service]) -> anyhow::Result<Option<Artifact>> {
    let Some(service) = services.iter().find(|s| s.name == "tempo") else {
        return Ok(None);
    };
    let text = to_yaml(&generated_header("#"), &tempo(config, service, services))?;
    Ok(Some(Artifact::config(ConfigFile::Tempo, text)))
}
