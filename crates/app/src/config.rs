//! The process configuration: Tempo's YAML keys where a feature exists in both.
//!
//! Every section denies unknown keys: a typo is an error naming the key path, the line and the
//! column, before anything listens. Tempo keys that vivace accepts but does not act on yet are
//! listed by [`Config::ignored_keys`] and logged as warnings.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use vivace_common::overrides::OverridesConfig;

/// A configuration error, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: invalid value at `{key}`: {message}")]
    Parse {
        path: String,
        key: String,
        message: String,
    },
    #[error("config: {0}")]
    Invalid(String),
}

type Ignored = Option<serde_yaml_ng::Value>;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Which role(s) this process runs; only `all` until the distributed mode exists.
    pub target: String,
    /// Take the tenant from `X-Scope-OrgID`; when false every request is `single-tenant`.
    pub multitenancy_enabled: bool,
    /// Deprecated Tempo name of `multitenancy_enabled`.
    pub auth_enabled: Option<bool>,
    /// vivace: where the write-ahead log (and, later, local blocks) live. Flag `--data-dir`.
    pub data_dir: PathBuf,
    /// Prefix for every `/api/...` route.
    pub http_api_prefix: String,
    pub server: ServerConfig,
    pub distributor: vivace_distributor::Config,
    pub live_store: vivace_livestore::Config,
    pub overrides: OverridesConfig,
    /// vivace: write-ahead log settings.
    pub wal: WalConfig,
    pub storage: StorageConfig,
    pub stream_over_http_enabled: Ignored,
    pub ingest: Ignored,
    pub block_builder: Ignored,
    pub querier: Option<QuerierSection>,
    pub query_frontend: Option<QueryFrontendSection>,
    pub metrics_generator: Option<vivace_generator::GeneratorConfig>,
    pub backend_scheduler: Ignored,
    pub backend_worker: Option<CompactorSection>,
    pub memberlist: Ignored,
    pub usage_report: Ignored,
    pub cache: Ignored,
    pub compactor: Option<CompactorSection>,
    pub ingester: Ignored,
    /// vivace: optional bearer-token / basic-auth authentication (see `auth.rs`).
    pub auth: crate::auth::AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            target: "all".into(),
            multitenancy_enabled: false,
            auth_enabled: None,
            data_dir: PathBuf::from("./vivace-data"),
            http_api_prefix: String::new(),
            server: ServerConfig::default(),
            distributor: Default::default(),
            live_store: Default::default(),
            overrides: Default::default(),
            wal: WalConfig::default(),
            storage: StorageConfig::default(),
            stream_over_http_enabled: None,
            ingest: None,
            block_builder: None,
            querier: None,
            query_frontend: None,
            metrics_generator: None,
            backend_scheduler: None,
            backend_worker: None,
            memberlist: None,
            usage_report: None,
            cache: None,
            compactor: None,
            ingester: None,
            auth: Default::default(),
        }
    }
}

/// `server:` (dskit's server block).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP API listens on (empty = all interfaces).
    pub http_listen_address: String,
    /// Port of the HTTP API (Tempo 3200).
    pub http_listen_port: u16,
    /// `debug`, `info`, `warn` or `error`.
    pub log_level: String,
    /// `logfmt` or `json`.
    pub log_format: String,
    /// Upper bound on the drain of in-flight requests at shutdown.
    #[serde(with = "humantime_serde")]
    pub graceful_shutdown_timeout: Duration,
    /// Address of the gRPC query port (default: `http_listen_address`).
    pub grpc_listen_address: Option<String>,
    /// Port of `tempopb.StreamingQuerier` over gRPC (Tempo 9095; 0 turns it off). The same
    /// service is also served as h2c on the HTTP port, where Grafana dials it.
    pub grpc_listen_port: u16,
    pub grpc_server_max_recv_msg_size: Ignored,
    pub grpc_server_max_send_msg_size: Ignored,
    pub grpc_server_max_concurrent_streams: Ignored,
    pub http_server_read_timeout: Ignored,
    pub http_server_write_timeout: Ignored,
    pub http_server_idle_timeout: Ignored,
    pub log_request_headers: Ignored,
    pub register_instrumentation: Ignored,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_listen_address: String::new(),
            http_listen_port: 3200,
            log_level: "info".into(),
            log_format: "logfmt".into(),
            graceful_shutdown_timeout: Duration::from_secs(3),
            grpc_listen_address: None,
            grpc_listen_port: 9095,
            grpc_server_max_recv_msg_size: None,
            grpc_server_max_send_msg_size: None,
            grpc_server_max_concurrent_streams: None,
            http_server_read_timeout: None,
            http_server_write_timeout: None,
            http_server_idle_timeout: None,
            log_request_headers: None,
            register_instrumentation: None,
        }
    }
}

/// `storage:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub trace: TraceStorageConfig,
}

/// `storage.trace:` — where blocks live. Tempo has more keys here (`wal`, `pool`, `search`,
/// caches); they are accepted and reported as ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TraceStorageConfig {
    /// `local`, `s3`, `gcs` or `azure`.
    pub backend: String,
    pub local: LocalStorageConfig,
    pub s3: vivace_store::S3Config,
    pub gcs: vivace_store::GcsConfig,
    pub azure: vivace_store::AzureConfig,
    pub block: BlockConfig,
    /// How often the block list is re-read (Tempo's default 5m).
    #[serde(with = "humantime_serde")]
    pub blocklist_poll: Duration,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

impl Default for TraceStorageConfig {
    fn default() -> Self {
        TraceStorageConfig {
            backend: "local".into(),
            local: LocalStorageConfig::default(),
            s3: Default::default(),
            gcs: Default::default(),
            azure: Default::default(),
            block: BlockConfig::default(),
            blocklist_poll: Duration::from_secs(300),
            other: Default::default(),
        }
    }
}

/// `storage.trace.block:` — how blocks are written (Tempo's keys and defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BlockConfig {
    /// The format written; only `vParquet5` (vParquet4 blocks are read).
    pub version: String,
    pub bloom_filter_false_positive: f64,
    pub bloom_filter_shard_size_bytes: usize,
    pub parquet_row_group_size_bytes: usize,
    /// vivace: `compact` (zstd, smaller blocks; the default) or `tempo` (Tempo's exact codecs).
    pub parquet_codecs: String,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

impl BlockConfig {
    /// The writer settings of a new block (tenant and ID filled in by the caller).
    pub fn writer_config(&self, tenant: &str, block_id: &str) -> vivace_block::WriterConfig {
        let mut w = vivace_block::WriterConfig::new(tenant, block_id);
        w.row_group_bytes = self.parquet_row_group_size_bytes;
        w.bloom_false_positive = self.bloom_filter_false_positive;
        w.bloom_shard_bytes = self.bloom_filter_shard_size_bytes;
        w.codecs = if self.parquet_codecs == "tempo" {
            vivace_block::Codecs::Tempo
        } else {
            vivace_block::Codecs::Compact
        };
        w
    }
}

impl Default for BlockConfig {
    fn default() -> Self {
        BlockConfig {
            version: "vParquet5".into(),
            bloom_filter_false_positive: 0.01,
            bloom_filter_shard_size_bytes: 100 * 1024,
            parquet_row_group_size_bytes: 100_000_000,
            parquet_codecs: "compact".into(),
            other: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalStorageConfig {
    /// Bucket directory: `<path>/<tenant>/<blockID>/`. Default `<data_dir>/blocks`.
    pub path: Option<PathBuf>,
}

/// `query_frontend:` — the search keys act; the rest is accepted and reported.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QueryFrontendSection {
    pub search: FrontendSearchConfig,
    pub metrics: FrontendMetricsConfig,
    /// The MCP server at `{http_api_prefix}/api/mcp` (off by default, as in Tempo).
    pub mcp_server: McpServerConfig,
    /// Longest TraceQL text accepted (128 KiB).
    pub max_query_expression_size_bytes: Option<usize>,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

/// `query_frontend.mcp_server:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpServerConfig {
    pub enabled: bool,
}

/// `query_frontend.metrics:` (TraceQL metrics).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FrontendMetricsConfig {
    /// Longest range of a metrics query (24h; 0 = no limit).
    #[serde(with = "humantime_serde::option")]
    pub max_duration: Option<Duration>,
    /// Most intervals a range query may have (10000).
    pub max_intervals: Option<u64>,
    /// Most exemplars in an answer; a request's `exemplars` is cut to it (100).
    pub max_exemplars: Option<u32>,
    /// Most series in an answer; more are cut and the answer flagged partial (1000).
    pub max_response_series: Option<u32>,
    /// vivace: how much of the newest data a metrics query leaves out (Tempo 30s; vivace 0).
    #[serde(with = "humantime_serde::option")]
    pub query_end_cutoff: Option<Duration>,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

/// `query_frontend.search:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FrontendSearchConfig {
    /// Traces returned when the request gives no `limit` (20).
    pub default_result_limit: Option<u32>,
    /// A larger `limit` is refused with 400 (262144).
    pub max_result_limit: Option<u32>,
    /// Spans per spanset when the request gives no `spss` (3).
    pub default_spans_per_span_set: Option<u32>,
    /// A larger `spss` is refused with 400 (100).
    pub max_spans_per_span_set: Option<u32>,
    /// Longest range a search may cover (168h).
    #[serde(with = "humantime_serde::option")]
    pub max_duration: Option<Duration>,
    /// vivace: how much of the newest data a search leaves out. Tempo cuts 30s; vivace's
    /// default is 0, since a span is searchable as soon as it is acknowledged.
    #[serde(with = "humantime_serde::option")]
    pub query_end_cutoff: Option<Duration>,
    /// Jobs (the live-store, blocks) read and evaluated at once (vivace default 4).
    pub concurrent_jobs: Option<usize>,
    /// Compressed row-group bytes of a block job that can be split (span-only metrics; Tempo's
    /// key, its default 100 MiB; vivace 16 MiB, so one large block keeps every core busy).
    pub target_bytes_per_job: Option<u64>,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

/// `querier.search:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QuerierSearchConfig {
    /// A search that takes longer answers 504 (30s).
    #[serde(with = "humantime_serde::option")]
    pub query_timeout: Option<Duration>,
    /// vivace: memory for blocks already decoded for search, reused by later searches of the
    /// same blocks (256 MiB; 0 turns the cache off).
    pub block_cache_bytes: Option<usize>,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

/// `querier:` — the keys that act; the rest is accepted and reported.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QuerierSection {
    pub trace_by_id: TraceByIdConfig,
    pub search: QuerierSearchConfig,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

/// `querier.trace_by_id:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TraceByIdConfig {
    /// A lookup across blocks that takes longer answers 504 (Tempo's default 10s).
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

impl Default for TraceByIdConfig {
    fn default() -> Self {
        TraceByIdConfig {
            query_timeout: Duration::from_secs(10),
            other: Default::default(),
        }
    }
}

/// `compactor:` (Tempo 2.x) or `backend_worker:` (Tempo 3): the `compaction` keys act; the rest of
/// the section is accepted and reported.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CompactorSection {
    pub compaction: vivace_compactor::CompactionConfig,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

/// `wal:` — vivace's embedded queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalConfig {
    /// A segment file is closed and a new one started past this size (default 128 MiB).
    pub segment_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_bytes: 128 << 20,
        }
    }
}

impl Config {
    /// Parses YAML text; `source` names it in errors. With `expand_env`, `${VAR}` and
    /// `${VAR:-default}` are replaced from the environment first (Tempo's `-config.expand-env`).
    pub fn parse(text: &str, source: &str, expand_env: bool) -> Result<Config, ConfigError> {
        let text = if expand_env {
            expand(text)
        } else {
            text.to_string()
        };
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let de = serde_yaml_ng::Deserializer::from_str(&text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Parse {
                path: source.to_string(),
                key,
                message: e.into_inner().to_string(),
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn load(path: &std::path::Path, expand_env: bool) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string(), expand_env)
    }

    /// The OTLP protocols to serve (none when the receiver is left out).
    pub fn otlp_protocols(&self) -> vivace_distributor::OtlpProtocols {
        self.distributor
            .receivers
            .otlp
            .as_ref()
            .map(|o| o.protocols.clone())
            .unwrap_or_default()
    }

    /// The local bucket directory.
    pub fn blocks_dir(&self) -> PathBuf {
        self.storage
            .trace
            .local
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("blocks"))
    }

    /// The object store of `storage.trace.backend`.
    pub fn backend(&self) -> Result<vivace_store::Backend, ConfigError> {
        let t = &self.storage.trace;
        let b = match t.backend.as_str() {
            "s3" => vivace_store::Backend::s3(&t.s3),
            "gcs" => vivace_store::Backend::gcs(&t.gcs),
            "azure" => vivace_store::Backend::azure(&t.azure),
            _ => vivace_store::Backend::local(&self.blocks_dir()),
        };
        b.map_err(|e| ConfigError::Invalid(format!("storage.trace.{}: {e}", t.backend)))
    }

    /// Compaction and retention settings: `backend_worker.compaction` (Tempo 3) over
    /// `compactor.compaction` (Tempo 2.x) over the defaults.
    pub fn compaction(&self) -> vivace_compactor::CompactionConfig {
        self.backend_worker
            .as_ref()
            .or(self.compactor.as_ref())
            .map(|s| s.compaction.clone())
            .unwrap_or_default()
    }

    /// `querier.trace_by_id.query_timeout`.
    pub fn trace_by_id_timeout(&self) -> Duration {
        self.querier
            .as_ref()
            .map_or(Duration::from_secs(10), |q| q.trace_by_id.query_timeout)
    }

    /// Search settings from `query_frontend.search`, `query_frontend` and `querier.search`.
    pub fn search(&self) -> vivace_querier::SearchConfig {
        let mut c = vivace_querier::SearchConfig::default();
        if let Some(f) = &self.query_frontend {
            let s = &f.search;
            c.default_result_limit = s.default_result_limit.unwrap_or(c.default_result_limit);
            c.max_result_limit = s.max_result_limit.unwrap_or(c.max_result_limit);
            c.default_spans_per_span_set = s
                .default_spans_per_span_set
                .unwrap_or(c.default_spans_per_span_set);
            c.max_spans_per_span_set = s.max_spans_per_span_set.unwrap_or(c.max_spans_per_span_set);
            c.max_duration = s.max_duration.unwrap_or(c.max_duration);
            c.query_end_cutoff = s.query_end_cutoff.unwrap_or(c.query_end_cutoff);
            c.concurrent_jobs = s.concurrent_jobs.unwrap_or(c.concurrent_jobs).max(1);
            c.max_query_bytes = f
                .max_query_expression_size_bytes
                .unwrap_or(c.max_query_bytes);
        }
        if let Some(t) = self.querier.as_ref().and_then(|q| q.search.query_timeout) {
            c.query_timeout = t;
        }
        c
    }

    /// `query_frontend.search.target_bytes_per_job` (16 MiB).
    pub fn target_bytes_per_job(&self) -> u64 {
        self.query_frontend
            .as_ref()
            .and_then(|f| f.search.target_bytes_per_job)
            .unwrap_or(16 << 20)
            .max(1)
    }

    /// `query_frontend.mcp_server.enabled`.
    pub fn mcp_enabled(&self) -> bool {
        self.query_frontend
            .as_ref()
            .is_some_and(|f| f.mcp_server.enabled)
    }

    /// TraceQL metrics settings (`query_frontend.metrics`).
    pub fn metrics(&self) -> vivace_querier::MetricsConfig {
        let mut c = vivace_querier::MetricsConfig::default();
        if let Some(f) = &self.query_frontend {
            let m = &f.metrics;
            c.max_duration = m.max_duration.unwrap_or(c.max_duration);
            c.max_intervals = m.max_intervals.unwrap_or(c.max_intervals);
            c.max_exemplars = m.max_exemplars.unwrap_or(c.max_exemplars);
            c.max_response_series = m.max_response_series.unwrap_or(c.max_response_series);
            c.query_end_cutoff = m.query_end_cutoff.unwrap_or(c.query_end_cutoff);
        }
        c
    }

    /// `querier.search.block_cache_bytes`.
    pub fn search_block_cache_bytes(&self) -> usize {
        self.querier
            .as_ref()
            .and_then(|q| q.search.block_cache_bytes)
            .unwrap_or(256 << 20)
    }

    pub fn multitenancy(&self) -> bool {
        self.multitenancy_enabled || self.auth_enabled.unwrap_or(false) || self.auth_on()
    }

    /// Whether `auth:` lists credentials (then every request carries its tenant in them).
    pub fn auth_on(&self) -> bool {
        !self.auth.tokens.is_empty() || !self.auth.users.is_empty()
    }

    /// Errors that parsing cannot catch.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.auth_on()
            && let Some(j) = &self.distributor.receivers.jaeger
            && (j.protocols.thrift_compact.is_some() || j.protocols.thrift_binary.is_some())
        {
            return Err(ConfigError::Invalid(
                "auth: UDP receivers (distributor.receivers.jaeger.protocols.thrift_compact, thrift_binary) cannot carry credentials; remove them or auth".into(),
            ));
        }
        crate::auth::Authenticator::new(&self.auth).map_err(ConfigError::Invalid)?;
        if self.target != "all" {
            return Err(ConfigError::Invalid(format!(
                "target: `{}` is not available yet; only `all` runs in this version",
                self.target
            )));
        }
        if !["debug", "info", "warn", "error"].contains(&self.server.log_level.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "server.log_level: unknown level `{}`",
                self.server.log_level
            )));
        }
        if !["local", "s3", "gcs", "azure"].contains(&self.storage.trace.backend.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "storage.trace.backend: unknown backend `{}` (local, s3, gcs or azure)",
                self.storage.trace.backend
            )));
        }
        if self.storage.trace.block.version != "vParquet5" {
            return Err(ConfigError::Invalid(format!(
                "storage.trace.block.version: vivace writes `vParquet5` (and reads vParquet4); `{}` is not written",
                self.storage.trace.block.version
            )));
        }
        if !["compact", "tempo"].contains(&self.storage.trace.block.parquet_codecs.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "storage.trace.block.parquet_codecs: `{}` is neither `compact` nor `tempo`",
                self.storage.trace.block.parquet_codecs
            )));
        }
        let fp = self.storage.trace.block.bloom_filter_false_positive;
        if !(fp > 0.0 && fp < 1.0) {
            return Err(ConfigError::Invalid(
                "storage.trace.block.bloom_filter_false_positive must be between 0 and 1".into(),
            ));
        }
        if self.storage.trace.blocklist_poll.is_zero() {
            return Err(ConfigError::Invalid(
                "storage.trace.blocklist_poll must be positive".into(),
            ));
        }
        if self.overrides.enable_legacy_overrides {
            return Err(ConfigError::Invalid(
                "overrides.enable_legacy_overrides: the legacy format is not supported".into(),
            ));
        }
        let protocols = self.otlp_protocols();
        if protocols
            .grpc
            .as_ref()
            .is_some_and(|g| g.max_recv_msg_size_mib == 0)
        {
            return Err(ConfigError::Invalid(
                "distributor.receivers.otlp.protocols.grpc.max_recv_msg_size_mib must be positive"
                    .into(),
            ));
        }
        if protocols
            .http
            .as_ref()
            .is_some_and(|h| h.max_request_body_size == 0)
        {
            return Err(ConfigError::Invalid(
                "distributor.receivers.otlp.protocols.http.max_request_body_size must be positive"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Tempo keys that were set but do nothing in this version of vivace.
    pub fn ignored_keys(&self) -> Vec<String> {
        let top = [
            (
                "stream_over_http_enabled",
                self.stream_over_http_enabled.is_some(),
            ),
            ("ingest", self.ingest.is_some()),
            ("block_builder", self.block_builder.is_some()),
            ("backend_scheduler", self.backend_scheduler.is_some()),
            ("memberlist", self.memberlist.is_some()),
            ("usage_report", self.usage_report.is_some()),
            ("cache", self.cache.is_some()),
            ("ingester", self.ingester.is_some()),
            (
                "server.grpc_server_max_recv_msg_size",
                self.server.grpc_server_max_recv_msg_size.is_some(),
            ),
            (
                "server.grpc_server_max_send_msg_size",
                self.server.grpc_server_max_send_msg_size.is_some(),
            ),
            (
                "server.grpc_server_max_concurrent_streams",
                self.server.grpc_server_max_concurrent_streams.is_some(),
            ),
            (
                "server.http_server_read_timeout",
                self.server.http_server_read_timeout.is_some(),
            ),
            (
                "server.http_server_write_timeout",
                self.server.http_server_write_timeout.is_some(),
            ),
            (
                "server.http_server_idle_timeout",
                self.server.http_server_idle_timeout.is_some(),
            ),
            (
                "server.log_request_headers",
                self.server.log_request_headers.is_some(),
            ),
            (
                "server.register_instrumentation",
                self.server.register_instrumentation.is_some(),
            ),
        ];
        let mut v: Vec<String> = top
            .iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| k.to_string())
            .collect();
        if let Some(g) = &self.metrics_generator {
            v.extend(g.ignored_keys().into_iter().map(String::from));
        }
        v.extend(
            self.distributor
                .ignored_keys()
                .into_iter()
                .map(String::from),
        );
        v.extend(
            self.storage
                .trace
                .other
                .keys()
                .map(|k| format!("storage.trace.{k}")),
        );
        if let Some(f) = &self.query_frontend {
            v.extend(f.other.keys().map(|k| format!("query_frontend.{k}")));
            v.extend(
                f.search
                    .other
                    .keys()
                    .map(|k| format!("query_frontend.search.{k}")),
            );
        }
        if let Some(q) = &self.querier {
            v.extend(q.other.keys().map(|k| format!("querier.{k}")));
            v.extend(q.search.other.keys().map(|k| format!("querier.search.{k}")));
            v.extend(
                q.trace_by_id
                    .other
                    .keys()
                    .map(|k| format!("querier.trace_by_id.{k}")),
            );
        }
        for (name, sec) in [
            ("compactor", &self.compactor),
            ("backend_worker", &self.backend_worker),
        ] {
            if let Some(sec) = sec {
                v.extend(sec.other.keys().map(|k| format!("{name}.{k}")));
                v.extend(
                    sec.compaction
                        .other
                        .keys()
                        .map(|k| format!("{name}.compaction.{k}")),
                );
            }
        }
        v.extend(
            self.storage
                .trace
                .block
                .other
                .keys()
                .map(|k| format!("storage.trace.block.{k}")),
        );
        v
    }
}

/// `${VAR}` and `${VAR:-default}` from the environment; an unset variable without default
/// becomes empty, as Tempo's expansion does.
fn expand(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = &after[..j];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match std::env::var(name) {
            Ok(v) if !v.is_empty() || default.is_none() => out.push_str(&v),
            _ => out.push_str(default.unwrap_or("")),
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tempo_keys_parse() {
        let text = "
multitenancy_enabled: true
server:
  http_listen_port: 3300
  grpc_listen_port: 9096
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:5317
        http:
overrides:
  defaults:
    ingestion:
      max_traces_per_user: 5
    global:
      max_bytes_per_trace: 100
";
        let cfg = Config::parse(text, "t.yaml", false).unwrap();
        assert!(cfg.multitenancy());
        assert_eq!(cfg.server.http_listen_port, 3300);
        let p = &cfg.distributor.receivers.otlp.as_ref().unwrap().protocols;
        assert_eq!(p.grpc.as_ref().unwrap().endpoint, "127.0.0.1:5317");
        assert_eq!(
            p.http.as_ref().unwrap().endpoint,
            "0.0.0.0:4318",
            "empty http: means defaults"
        );
        assert_eq!(cfg.overrides.defaults.ingestion.max_traces_per_user, 5);
        assert_eq!(cfg.server.grpc_listen_port, 9096);
        assert!(cfg.ignored_keys().is_empty());
    }

    #[test]
    fn unknown_key_names_path_and_line() {
        let text = "server:\n  http_listen_port: 3200\n  htp_listen_address: x\n";
        let err = Config::parse(text, "t.yaml", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("htp_listen_address"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("`server"), "{err}");
        let err = Config::parse("live_store:\n  max_trace_idle: soon\n", "t.yaml", false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("live_store.max_trace_idle") && err.contains("line 2"),
            "{err}"
        );
        let err = Config::parse("target: querier\n", "t.yaml", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("target"), "{err}");
    }

    #[test]
    fn env_expansion() {
        // SAFETY: single-threaded test setting a variable no other test reads.
        unsafe { std::env::set_var("VIVACE_TEST_PORT", "3999") };
        assert_eq!(
            expand("a: ${VIVACE_TEST_PORT}\nb: ${VIVACE_UNSET_X:-7}\nc: ${VIVACE_UNSET_X}"),
            "a: 3999\nb: 7\nc: "
        );
        let cfg = Config::parse(
            "server:\n  http_listen_port: ${VIVACE_TEST_PORT}\n",
            "t",
            true,
        )
        .unwrap();
        assert_eq!(cfg.server.http_listen_port, 3999);
    }
}

#[cfg(test)]
mod storage_tests {
    use super::*;

    #[test]
    fn tempo_storage_keys_are_accepted_and_reported() {
        let cfg = Config::parse("storage:\n  trace:\n    backend: local\n    local:\n      path: /b\n    wal:\n      path: /var/tempo/wal\n    blocklist_poll: 1m\n", "t", false).unwrap();
        assert_eq!(cfg.blocks_dir(), PathBuf::from("/b"));
        assert_eq!(cfg.storage.trace.blocklist_poll, Duration::from_secs(60));
        assert_eq!(cfg.ignored_keys(), vec!["storage.trace.wal".to_string()]);
        let err = Config::parse("storage:\n  trace:\n    backend: swift\n", "t", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.trace.backend"), "{err}");
        let cfg = Config::parse("storage:\n  trace:\n    backend: s3\n    s3:\n      bucket: tempo\n      endpoint: 127.0.0.1:9000\n      insecure: true\n      forcepathstyle: true\n      access_key: a\n      secret_key: b\n    block:\n      bloom_filter_shard_size_bytes: 1000\n      v2_index_downsample_bytes: 1\n", "t", false).unwrap();
        assert_eq!(cfg.storage.trace.s3.bucket, "tempo");
        assert_eq!(cfg.storage.trace.block.bloom_filter_shard_size_bytes, 1000);
        assert_eq!(
            cfg.ignored_keys(),
            vec!["storage.trace.block.v2_index_downsample_bytes".to_string()]
        );
        assert!(cfg.backend().is_ok());
        let err = Config::parse(
            "storage:\n  trace:\n    block:\n      version: vParquet3\n",
            "t",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("vParquet5"), "{err}");
        let cfg = Config::parse("querier:\n  trace_by_id:\n    query_timeout: 2s\n  max_concurrent_queries: 20\ncompactor:\n  compaction:\n    block_retention: 48h\n    v2_in_buffer_bytes: 1\n", "t", false).unwrap();
        assert_eq!(cfg.trace_by_id_timeout(), Duration::from_secs(2));
        assert_eq!(
            cfg.compaction().block_retention,
            Duration::from_secs(48 * 3600)
        );
        assert_eq!(
            cfg.ignored_keys(),
            vec![
                "querier.max_concurrent_queries".to_string(),
                "compactor.compaction.v2_in_buffer_bytes".to_string()
            ]
        );
    }
}
