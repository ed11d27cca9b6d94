//! Loki's config: one process, filesystem storage in its data volume, schema v13 on TSDB, a
//! week of retention. Also [`ReportingConfig`], the usage-reporting switch Loki and Tempo share.
//!
//! Not for: Loki's container (its definition in `config`).

use serde::Serialize;

use super::{Artifact, generated_header, to_yaml};
use crate::config::{ConfigFile, Service};

/// Loki's config: one process, filesystem storage in its named volume, schema
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

/// Loki's gRPC port, used inside its container only.
const GRPC_PORT: u16 = 9096;

/// Loki's config for its service: the HTTP port and the data directory (its named volume)
/// are the service's.
pub fn loki(service: &Service) -> LokiConfig {
    let data = service.data_dir().unwrap_or("/loki");
    LokiConfig {
        auth_enabled: false,
        server: LokiServer {
            http_listen_port: service.port("http"),
            grpc_listen_port: GRPC_PORT,
            log_level: "info".into(),
        },
        common: LokiCommon {
            instance_addr: "127.0.0.1".into(),
            path_prefix: data.into(),
            storage: LokiStorage {
                filesystem: LokiFilesystem {
                    chunks_directory: format!("{data}/chunks"),
                    rules_directory: format!("{data}/rules"),
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
            working_directory: format!("{data}/compactor"),
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

/// `loki.yaml`, when Loki is enabled.
pub fn render(services: &[Service]) -> anyhow::Result<Option<Artifact>> {
    let Some(service) = services.iter().find(|s| s.name == "loki") else {
        return Ok(None);
    };
    let text = to_yaml(&generated_header("#"), &loki(service))?;
    Ok(Some(Artifact::config(ConfigFile::Loki, text)))
}
