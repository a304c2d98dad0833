//! `metrics_generator:` in Tempo's shape (`modules/generator/config.go`), and the per-tenant
//! `overrides.*.metrics_generator` values that choose processors and limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A key accepted for Tempo compatibility with no effect in a single process.
pub type Ignored = Option<serde_yaml_ng::Value>;

/// `metrics_generator:`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    pub registry: RegistryConfig,
    pub storage: StorageConfig,
    pub processor: ProcessorConfig,
    pub ring: Ignored,
    pub metrics_ingestion_time_range_slack: Ignored,
    pub query_timeout: Ignored,
    pub override_ring_key: Ignored,
    pub codec: Ignored,
    pub instance_id: Ignored,
    pub ingest_concurrency: Ignored,
    pub assigned_partitions: Ignored,
    pub leave_consumer_group_on_shutdown: Ignored,
    pub disable_grpc: Ignored,
    pub traces_storage: Ignored,
    pub traces_query_storage: Ignored,
}

impl GeneratorConfig {
    /// Checks what can be checked before serving: endpoint URLs, processor settings.
    pub fn validate(&self) -> crate::Result<()> {
        for (i, rw) in self.storage.remote_write.iter().enumerate() {
            let key = format!("metrics_generator.storage.remote_write[{i}].url");
            match reqwest::Url::parse(&rw.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                Ok(u) => {
                    return Err(crate::Error::invalid(
                        key,
                        format!("scheme {} is neither http nor https", u.scheme()),
                    ));
                }
                Err(e) => return Err(crate::Error::invalid(key, format!("{:?}: {e}", rw.url))),
            }
        }
        if self.registry.collection_interval.is_zero() {
            return Err(crate::Error::invalid(
                "metrics_generator.registry.collection_interval",
                "must be positive",
            ));
        }
        for p in &self.processor.span_metrics.filter_policies {
            crate::spanmetrics::compile_policy(p).map_err(|e| match e {
                crate::Error::InvalidConfig { key, message } => {
                    crate::Error::invalid(format!("metrics_generator.processor.{key}"), message)
                }
                other => other,
            })?;
        }
        Ok(())
    }

    /// Keys given that vivace accepts and does not use, for the start-up warning.
    pub fn ignored_keys(&self) -> Vec<&'static str> {
        let keys = [
            ("metrics_generator.ring", self.ring.is_some()),
            (
                "metrics_generator.metrics_ingestion_time_range_slack",
                self.metrics_ingestion_time_range_slack.is_some(),
            ),
            (
                "metrics_generator.query_timeout",
                self.query_timeout.is_some(),
            ),
            (
                "metrics_generator.override_ring_key",
                self.override_ring_key.is_some(),
            ),
            ("metrics_generator.codec", self.codec.is_some()),
            ("metrics_generator.instance_id", self.instance_id.is_some()),
            (
                "metrics_generator.ingest_concurrency",
                self.ingest_concurrency.is_some(),
            ),
            (
                "metrics_generator.assigned_partitions",
                self.assigned_partitions.is_some(),
            ),
            (
                "metrics_generator.leave_consumer_group_on_shutdown",
                self.leave_consumer_group_on_shutdown.is_some(),
            ),
            (
                "metrics_generator.disable_grpc",
                self.disable_grpc.is_some(),
            ),
            (
                "metrics_generator.traces_storage",
                self.traces_storage.is_some(),
            ),
            (
                "metrics_generator.traces_query_storage",
                self.traces_query_storage.is_some(),
            ),
            (
                "metrics_generator.storage.remote_write_flush_deadline",
                self.storage.remote_write_flush_deadline.is_some(),
            ),
            ("metrics_generator.storage.wal", self.storage.wal.is_some()),
        ];
        keys.into_iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| k)
            .collect()
    }
}

/// `metrics_generator.registry:`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// How often series are collected and remote-written (Tempo 15s).
    #[serde(with = "humantime_serde")]
    pub collection_interval: Duration,
    /// A series not updated for this long is dropped (Tempo 15m).
    #[serde(with = "humantime_serde")]
    pub stale_duration: Duration,
    /// Labels added to every series.
    pub external_labels: BTreeMap<String, String>,
    /// When set, every series carries the tenant under this label name.
    pub inject_tenant_id_as: String,
    /// Longer label names are cut (Tempo 1024).
    pub max_label_name_length: usize,
    /// Longer label values are cut (Tempo 2048).
    pub max_label_value_length: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            collection_interval: Duration::from_secs(15),
            stale_duration: Duration::from_secs(15 * 60),
            external_labels: BTreeMap::new(),
            inject_tenant_id_as: String::new(),
            max_label_name_length: 1024,
            max_label_value_length: 2048,
        }
    }
}

/// `metrics_generator.storage:`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Tempo keeps a Prometheus agent WAL here; vivace keeps its samples in the queue instead
    /// (the generator's offset advances only with what was written), so this is only checked.
    pub path: Option<PathBuf>,
    /// Prometheus `remote_write` entries: where samples go.
    pub remote_write: Vec<RemoteWriteConfig>,
    /// Adds `X-Scope-OrgID: <tenant>` to each request (Tempo's default, true).
    pub remote_write_add_org_id_header: bool,
    pub remote_write_flush_deadline: Ignored,
    pub wal: Ignored,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: None,
            remote_write: Vec::new(),
            remote_write_add_org_id_header: true,
            remote_write_flush_deadline: None,
            wal: None,
        }
    }
}

/// One Prometheus `remote_write` entry (the subset a remote-write 1.0 client needs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteWriteConfig {
    pub url: String,
    pub name: String,
    #[serde(with = "humantime_serde")]
    pub remote_timeout: Duration,
    pub headers: BTreeMap<String, String>,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    /// Send exemplars (trace IDs on latency histograms); Prometheus stores them only with
    /// `--enable-feature=exemplar-storage`.
    pub send_exemplars: bool,
    pub queue_config: QueueConfig,
    pub tls_config: Ignored,
    pub proxy_url: Ignored,
    pub follow_redirects: Ignored,
    pub enable_http2: Ignored,
    pub metadata_config: Ignored,
    pub write_relabel_configs: Ignored,
    pub sigv4: Ignored,
    pub oauth2: Ignored,
    pub azuread: Ignored,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: String::new(),
            name: String::new(),
            remote_timeout: Duration::from_secs(30),
            headers: BTreeMap::new(),
            basic_auth: None,
            authorization: None,
            bearer_token: None,
            bearer_token_file: None,
            send_exemplars: false,
            queue_config: QueueConfig::default(),
            tls_config: None,
            proxy_url: None,
            follow_redirects: None,
            enable_http2: None,
            metadata_config: None,
            write_relabel_configs: None,
            sigv4: None,
            oauth2: None,
            azuread: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Authorization {
    /// Default `Bearer`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<PathBuf>,
}

/// `queue_config:` of a remote-write entry: retries and how many collections wait.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Collections waiting to be sent to this endpoint; past it the oldest is dropped (counted).
    pub capacity: usize,
    #[serde(with = "humantime_serde")]
    pub min_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    pub max_shards: Ignored,
    pub min_shards: Ignored,
    pub max_samples_per_send: Ignored,
    pub batch_send_deadline: Ignored,
    pub retry_on_http_429: Ignored,
    pub sample_age_limit: Ignored,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 40,
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            max_shards: None,
            min_shards: None,
            max_samples_per_send: None,
            batch_send_deadline: None,
            retry_on_http_429: None,
            sample_age_limit: None,
        }
    }
}

/// `metrics_generator.processor:` (per-tenant `overrides.*.metrics_generator.processor` values
/// replace these field by field).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorConfig {
    pub span_metrics: SpanMetricsConfig,
    pub service_graphs: ServiceGraphsConfig,
    pub host_info: HostInfoConfig,
    /// Tempo 2.x's local-blocks processor: vivace serves TraceQL metrics on recent data from the
    /// live-store, so there is nothing to configure.
    pub local_blocks: Ignored,
}

/// `processor.span_metrics:`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpanMetricsConfig {
    /// Attributes (resource first, then span) added as labels, names sanitized.
    pub dimensions: Vec<String>,
    pub intrinsic_dimensions: IntrinsicDimensions,
    pub dimension_mappings: Vec<DimensionMapping>,
    /// Latency buckets in seconds (Tempo: 0.002 × 2^n, 14 buckets).
    pub histogram_buckets: Vec<f64>,
    pub filter_policies: Vec<FilterPolicy>,
    pub enable_target_info: bool,
    pub target_info_excluded_dimensions: Vec<String>,
    /// `instance`/`job` labels on span metrics without target info (Tempo's default false).
    pub enable_instance_label: Option<bool>,
    pub span_multiplier_key: Ignored,
    pub subprocessors: Ignored,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            dimensions: Vec::new(),
            intrinsic_dimensions: IntrinsicDimensions::default(),
            dimension_mappings: Vec::new(),
            histogram_buckets: exponential(0.002, 2.0, 14),
            filter_policies: Vec::new(),
            enable_target_info: false,
            target_info_excluded_dimensions: Vec::new(),
            enable_instance_label: None,
            span_multiplier_key: None,
            subprocessors: None,
        }
    }
}

/// Which intrinsic labels span metrics carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntrinsicDimensions {
    pub service: bool,
    pub span_name: bool,
    pub span_kind: bool,
    pub status_code: bool,
    pub status_message: bool,
}

impl Default for IntrinsicDimensions {
    fn default() -> Self {
        IntrinsicDimensions {
            service: true,
            span_name: true,
            span_kind: true,
            status_code: true,
            status_message: false,
        }
    }
}

/// A label built by joining attribute values.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DimensionMapping {
    pub name: String,
    pub source_labels: Vec<String>,
    pub join: String,
}

/// `filter_policies:` entry: spans must match every `include` and no `exclude`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterPolicy {
    pub include: Option<PolicyMatch>,
    pub exclude: Option<PolicyMatch>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyMatch {
    /// `strict` or `regex`.
    pub match_type: String,
    pub attributes: Vec<PolicyAttribute>,
}

/// `key` is `kind`, `status`, `name` (intrinsics) or `resource.<attr>` / `span.<attr>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyAttribute {
    pub key: String,
    pub value: serde_yaml_ng::Value,
}

/// `processor.service_graphs:`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceGraphsConfig {
    /// How long an edge waits for its other side (Tempo 10s).
    #[serde(with = "humantime_serde")]
    pub wait: Duration,
    /// Edges waiting at most; new ones are refused past it (Tempo 10,000).
    pub max_items: usize,
    pub workers: Ignored,
    /// Seconds (Tempo: 0.1 × 2^n, 8 buckets).
    pub histogram_buckets: Vec<f64>,
    pub dimensions: Vec<String>,
    /// Attributes naming the other side of an edge with no span there (virtual nodes).
    pub peer_attributes: Vec<String>,
    pub enable_client_server_prefix: bool,
    pub enable_virtual_node_label: bool,
    pub enable_messaging_system_latency_histogram: bool,
    /// Attributes naming the database of a client span (Tempo: `db.namespace`, `db.name`).
    pub database_name_attributes: Vec<String>,
    pub span_multiplier_key: Ignored,
}

impl Default for ServiceGraphsConfig {
    fn default() -> Self {
        ServiceGraphsConfig {
            wait: Duration::from_secs(10),
            max_items: 10_000,
            workers: None,
            histogram_buckets: exponential(0.1, 2.0, 8),
            dimensions: Vec::new(),
            peer_attributes: ["peer.service", "db.name", "db.system", "db.system.name"]
                .map(String::from)
                .to_vec(),
            enable_client_server_prefix: false,
            enable_virtual_node_label: false,
            enable_messaging_system_latency_histogram: false,
            database_name_attributes: ["db.namespace", "db.name"].map(String::from).to_vec(),
            span_multiplier_key: None,
        }
    }
}

/// `processor.host_info:`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostInfoConfig {
    /// Resource attributes naming the host, the first present wins.
    pub host_identifiers: Vec<String>,
    pub metric_name: String,
}

impl Default for HostInfoConfig {
    fn default() -> Self {
        HostInfoConfig {
            host_identifiers: ["k8s.node.name", "host.id"].map(String::from).to_vec(),
            metric_name: "traces_host_info".into(),
        }
    }
}

/// `start × factor^i` for `count` buckets.
pub fn exponential(start: f64, factor: f64, count: usize) -> Vec<f64> {
    (0..count).map(|i| start * factor.powi(i as i32)).collect()
}
