//! Per-tenant limits ("overrides"), in Tempo's scoped format.
//!
//! Defaults come from `overrides.defaults` in the main config; per-tenant values from the file
//! named by `overrides.per_tenant_override_config`, re-read every `per_tenant_override_period`:
//!
//! ```yaml
//! overrides:
//!   "tenant-a":
//!     ingestion: { rate_limit_bytes: 1000000, max_traces_per_user: 500 }
//!     global: { max_bytes_per_trace: 1000000 }
//!   "*":          # every tenant without its own entry
//!     ingestion: { rate_limit_bytes: 5000000 }
//! ```
//!
//! A tenant's values are its own entry, else the `*` entry, else the defaults. As in Tempo, an
//! entry starts from the defaults: a field it leaves out keeps the value of `overrides.defaults`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// Limits of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantOverrides {
    pub ingestion: IngestionLimits,
    pub global: GlobalLimits,
    /// Accepted for compatibility with Tempo override files; not used by vivace yet.
    pub read: Option<serde_yaml_ng::Value>,
    pub compaction: Option<serde_yaml_ng::Value>,
    pub metrics_generator: GeneratorOverrides,
    pub forwarders: Option<serde_yaml_ng::Value>,
    pub storage: Option<serde_yaml_ng::Value>,
    pub cost_attribution: Option<serde_yaml_ng::Value>,
}

/// `ingestion:` limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestionLimits {
    /// `local` (per process) is the only strategy of a single binary; `global` is accepted and
    /// behaves as `local` until the distributed mode exists.
    pub rate_strategy: String,
    /// Sustained bytes/s of encoded OTLP per tenant (default 30,000,000).
    pub rate_limit_bytes: u64,
    /// Burst of bytes per tenant (default 30,000,000).
    pub burst_size_bytes: u64,
    /// Live traces per tenant (default 10,000; 0 = unlimited).
    pub max_traces_per_user: usize,
    /// Accepted for Tempo compatibility; distributed mode only.
    pub max_global_traces_per_user: usize,
    /// Accepted for Tempo compatibility; distributed mode only.
    pub tenant_shard_size: usize,
    /// Attribute keys and string values longer than this are truncated (0 = use the
    /// distributor's `max_attribute_bytes`).
    pub max_attribute_bytes: usize,
    /// Attach a `google.rpc.RetryInfo` to RESOURCE_EXHAUSTED answers (default true).
    pub retry_info_enabled: bool,
    #[serde(with = "humantime_serde")]
    pub artificial_delay: Option<Duration>,
}

impl Default for IngestionLimits {
    fn default() -> Self {
        IngestionLimits {
            rate_strategy: "local".into(),
            rate_limit_bytes: 30_000_000,
            burst_size_bytes: 30_000_000,
            max_traces_per_user: 10_000,
            max_global_traces_per_user: 0,
            tenant_shard_size: 0,
            max_attribute_bytes: 0,
            retry_info_enabled: true,
            artificial_delay: None,
        }
    }
}

/// `global:` limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GlobalLimits {
    /// Largest trace in bytes (default 5,000,000; 0 = unlimited).
    pub max_bytes_per_trace: usize,
}

impl Default for GlobalLimits {
    fn default() -> Self {
        GlobalLimits {
            max_bytes_per_trace: 5_000_000,
        }
    }
}

/// `metrics_generator:` overrides: which processors run for the tenant, and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorOverrides {
    /// `span-metrics`, `service-graphs`, `host-info`, or sub-processors
    /// (`span-metrics-latency|count|size`, `service-graphs-request|latency`); none by default,
    /// as in Tempo.
    pub processors: Vec<String>,
    /// Active series of the tenant at most (0 = unlimited); samples of new series past it go to
    /// one overflow series labelled `metric_overflow="true"`.
    pub max_active_series: u64,
    /// Distinct values of one label at most (0 = unlimited); past it new values become
    /// `__cardinality_overflow__`.
    pub max_cardinality_per_label: u64,
    /// The tenant's collection interval (default: the registry's).
    #[serde(with = "humantime_serde")]
    pub collection_interval: Option<Duration>,
    /// Compute but never send the tenant's series.
    pub disable_collection: bool,
    /// Label of exemplars' trace ID (default `traceID`).
    pub trace_id_label_name: String,
    /// Extra headers of the tenant's remote-write requests.
    pub remote_write_headers: std::collections::BTreeMap<String, String>,
    /// Processor settings laid over `metrics_generator.processor` key by key.
    pub processor: Option<serde_yaml_ng::Value>,
    pub ring_size: Option<serde_yaml_ng::Value>,
    pub max_active_entities: Option<serde_yaml_ng::Value>,
    pub generate_native_histograms: Option<serde_yaml_ng::Value>,
    pub forwarder: Option<serde_yaml_ng::Value>,
    pub ingestion_time_range_slack: Option<serde_yaml_ng::Value>,
    pub native_histogram_bucket_factor: Option<serde_yaml_ng::Value>,
    pub native_histogram_max_bucket_number: Option<serde_yaml_ng::Value>,
    pub native_histogram_min_reset_duration: Option<serde_yaml_ng::Value>,
    pub span_name_sanitization: Option<serde_yaml_ng::Value>,
}

impl Default for GeneratorOverrides {
    fn default() -> Self {
        GeneratorOverrides {
            processors: Vec::new(),
            max_active_series: 0,
            max_cardinality_per_label: 0,
            collection_interval: None,
            disable_collection: false,
            trace_id_label_name: "traceID".into(),
            remote_write_headers: Default::default(),
            processor: None,
            ring_size: None,
            max_active_entities: None,
            generate_native_histograms: None,
            forwarder: None,
            ingestion_time_range_slack: None,
            native_histogram_bucket_factor: None,
            native_histogram_max_bucket_number: None,
            native_histogram_min_reset_duration: None,
            span_name_sanitization: None,
        }
    }
}

/// `overrides:` in the main config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverridesConfig {
    pub defaults: TenantOverrides,
    /// YAML file of per-tenant overrides (`overrides:` map keyed by tenant, `*` for all).
    pub per_tenant_override_config: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub per_tenant_override_period: Option<Duration>,
    /// Tempo's legacy flat format is not supported; accepted only when false.
    pub enable_legacy_overrides: bool,
    pub user_configurable_overrides: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeFile {
    #[serde(default)]
    overrides: HashMap<String, serde_yaml_ng::Value>,
}

/// Lays `over` on top of `base`, mapping by mapping.
pub fn merge(base: &mut serde_yaml_ng::Value, over: serde_yaml_ng::Value) {
    use serde_yaml_ng::Value;
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The current limits of every tenant, reloadable.
#[derive(Debug, Clone)]
pub struct Overrides {
    defaults: Arc<TenantOverrides>,
    per_tenant: Arc<RwLock<HashMap<String, Arc<TenantOverrides>>>>,
    path_opt: Option<PathBuf>,
    /// Why the last reload failed (the values in force are the last good ones), if it did.
    last_error: Arc<RwLock<Option<String>>>,
}

impl Overrides {
    pub fn new(cfg: &OverridesConfig) -> Result<Self, String> {
        let o = Overrides {
            defaults: Arc::new(cfg.defaults.clone()),
            per_tenant: Arc::default(),
            path_opt: cfg.per_tenant_override_config.clone(),
            last_error: Arc::default(),
        };
        o.reload()?;
        Ok(o)
    }

    /// Re-reads the per-tenant file. On error the previous values stay in force and the error
    /// is kept for [`Overrides::last_error`].
    pub fn reload(&self) -> Result<(), String> {
        let r = self.load();
        *self.last_error.write() = r.as_ref().err().cloned();
        r
    }

    /// Why the last reload failed, while the last good values stay in force.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.read().clone()
    }

    /// The values of `overrides.defaults`.
    pub fn defaults(&self) -> Arc<TenantOverrides> {
        self.defaults.clone()
    }

    /// Every entry of the runtime file (`*` included), with the defaults laid under it.
    pub fn per_tenant(&self) -> std::collections::BTreeMap<String, Arc<TenantOverrides>> {
        self.per_tenant
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn load(&self) -> Result<(), String> {
        let Some(path) = &self.path_opt else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let file: RuntimeFile = if text.trim().is_empty() {
            RuntimeFile::default()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        };
        let base = serde_yaml_ng::to_value(&*self.defaults).map_err(|e| e.to_string())?;
        let mut map = HashMap::new();
        for (tenant, entry) in file.overrides {
            let mut v = base.clone();
            merge(&mut v, entry);
            let limits: TenantOverrides = serde_yaml_ng::from_value(v)
                .map_err(|e| format!("{}: tenant {tenant}: {e}", path.display()))?;
            map.insert(tenant, Arc::new(limits));
        }
        *self.per_tenant.write() = map;
        Ok(())
    }

    /// The limits of `tenant`: its own entry, else `*`, else the defaults.
    pub fn tenant(&self, tenant: &str) -> Arc<TenantOverrides> {
        let m = self.per_tenant.read();
        m.get(tenant)
            .or_else(|| m.get("*"))
            .cloned()
            .unwrap_or_else(|| self.defaults.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_then_wildcard_then_defaults() {
        let dir = std::env::temp_dir().join(format!("vivace-ovr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("o.yaml");
        std::fs::write(&path, "overrides:\n  a:\n    ingestion:\n      max_traces_per_user: 5\n  '*':\n    global:\n      max_bytes_per_trace: 7\n").unwrap();
        let mut cfg = OverridesConfig {
            per_tenant_override_config: Some(path.clone()),
            ..Default::default()
        };
        cfg.defaults.global.max_bytes_per_trace = 9;
        let o = Overrides::new(&cfg).unwrap();
        assert_eq!(o.tenant("a").ingestion.max_traces_per_user, 5);
        assert_eq!(
            o.tenant("a").global.max_bytes_per_trace,
            9,
            "inherits overrides.defaults"
        );
        assert_eq!(o.tenant("b").global.max_bytes_per_trace, 7);
        std::fs::write(&path, "overrides:\n  a:\n    ingestion:\n      bogus: 1\n").unwrap();
        let err = o.reload().unwrap_err();
        assert!(err.contains("bogus"), "{err}");
        assert_eq!(
            o.tenant("a").ingestion.max_traces_per_user,
            5,
            "old values kept"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
