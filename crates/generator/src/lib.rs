//! The metrics-generator role: span metrics, service graphs and host info computed from the
//! acknowledged spans and remote-written to Prometheus with Tempo's names, labels and buckets
//! (DESIGN.md §3, Tempo's `modules/generator`).
//!
//! The generator is a consumer of the queue (`metrics-generator`). Its loop ([`Generator::run`],
//! on a thread of its own) reads records from its committed offset, feeds each tenant's
//! processors (chosen by `overrides.*.metrics_generator.processors`), and every
//! `collection_interval` collects every tenant's series into one remote-write request per tenant,
//! queued on each endpoint with the offset below which every record is counted in it. The offset
//! is committed once every endpoint has sent the collection or deliberately dropped it (counted
//! with the reason), so a restart re-reads only what no delivered sample counted: it neither
//! loses nor counts twice a whole interval (counters restart from zero, which Prometheus's
//! `rate`/`increase` treat as a reset).

pub mod config;
mod error;
pub mod hostinfo;
pub mod registry;
pub mod remote_write;
pub mod servicegraphs;
pub mod spanmetrics;
pub mod spans;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prost::Message;
use tokio::sync::watch;
use vivace_common::overrides::{Overrides, TenantOverrides, merge};
use vivace_proto::tempopb::Trace;
use vivace_queue::{Offset, Queue, QueueRecord};

pub use config::GeneratorConfig;
use config::ProcessorConfig;
pub use error::{Error, Result};
use registry::{Registry, RegistrySettings};
pub use remote_write::{SenderMetrics, Senders};

/// The generator's consumer name in the queue.
pub const CONSUMER: &str = "metrics-generator";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub tenant: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub tenant: String,
    pub outcome: String,
}

/// The generator's own metrics, on vivace's `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct GeneratorMetrics {
    pub spans: Family<TenantLabel, Counter>,
    pub active_series: Family<TenantLabel, Gauge>,
    pub series_limited: Family<ReasonLabel, Counter>,
    pub edges: Family<OutcomeLabel, Counter>,
    pub edges_waiting: Family<TenantLabel, Gauge>,
    pub bad_records: Counter,
    pub skipped_records: Counter,
    pub sender: SenderMetrics,
}

impl GeneratorMetrics {
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "vivace_generator_spans_received",
            "Spans the metrics generator processed",
            self.spans.clone(),
        );
        r.register(
            "vivace_generator_active_series",
            "Series the metrics generator holds",
            self.active_series.clone(),
        );
        r.register(
            "vivace_generator_series_limited",
            "Samples of new series put in the overflow series (max_active_series) and label values replaced by __cardinality_overflow__ (max_cardinality_per_label)",
            self.series_limited.clone(),
        );
        r.register(
            "vivace_generator_service_graph_edges",
            "Service-graph edges by outcome: paired, database, virtual_node, expired_unpaired, refused (max_items)",
            self.edges.clone(),
        );
        r.register(
            "vivace_generator_service_graph_edges_waiting",
            "Service-graph edges waiting for their other side",
            self.edges_waiting.clone(),
        );
        r.register(
            "vivace_generator_bad_records",
            "Queue records the metrics generator could not decode",
            self.bad_records.clone(),
        );
        r.register(
            "vivace_generator_skipped_records",
            "Queue records removed or damaged before the metrics generator read them",
            self.skipped_records.clone(),
        );
        self.sender.register(r);
    }
}

/// What a tenant's overrides ask of the generator; the tenant's state is rebuilt when it changes.
#[derive(Debug, Clone, PartialEq)]
struct Setup {
    processors: Vec<String>,
    processor: serde_yaml_ng::Value,
    max_active_series: u64,
    max_cardinality_per_label: u64,
    trace_id_label: String,
}

#[derive(Debug)]
struct TenantState {
    /// The overrides this state was built from (compared by pointer, then by setup).
    overrides: Arc<TenantOverrides>,
    setup: Setup,
    registry: Registry,
    span_metrics: Option<spanmetrics::SpanMetrics>,
    service_graphs: Option<servicegraphs::ServiceGraphs>,
    host_info: Option<hostinfo::HostInfo>,
    disable_collection: bool,
    headers: Vec<(String, String)>,
    /// Counts already added to the `/metrics` counters.
    reported_limited: registry::Limited,
    reported_edges: servicegraphs::EdgeStats,
}

/// The generator role.
#[derive(Debug)]
pub struct Generator {
    cfg: GeneratorConfig,
    overrides: Overrides,
    metrics: GeneratorMetrics,
    tenants: HashMap<String, TenantState>,
    warned: std::collections::HashSet<String>,
}

impl Generator {
    pub fn new(cfg: GeneratorConfig, overrides: Overrides, metrics: GeneratorMetrics) -> Generator {
        if cfg.processor.local_blocks.is_some() {
            tracing::info!(
                "metrics_generator.processor.local_blocks: vivace serves TraceQL metrics on recent data from the live-store; nothing to configure"
            );
        }
        Generator {
            cfg,
            overrides,
            metrics,
            tenants: HashMap::new(),
            warned: Default::default(),
        }
    }

    /// The counters the remote-write senders update.
    pub fn sender_metrics(&self) -> SenderMetrics {
        self.metrics.sender.clone()
    }

    /// Reads the queue from `from` until `stop`, collecting every `collection_interval` into
    /// `senders` (which commit what they finish). Blocking: run it on a thread of its own; `rt`
    /// is the runtime the queue's futures run on.
    pub fn run(
        mut self,
        queue: Arc<dyn Queue>,
        from: Offset,
        senders: Senders,
        rt: tokio::runtime::Handle,
        stop: watch::Receiver<bool>,
    ) {
        let mut reader = match queue.reader(from) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "metrics generator cannot read the queue; it is off");
                return;
            }
        };
        tracing::info!(from = %from, "metrics generator consuming");
        let interval = self
            .cfg
            .registry
            .collection_interval
            .max(Duration::from_millis(100));
        let mut next_collect = Instant::now() + interval;
        let mut next_expire = Instant::now() + Duration::from_secs(1);
        let mut skipped = 0u64;
        let mut cpu = vivace_common::background::CpuMeter::start("vivace-generator");
        loop {
            if *stop.borrow() {
                break;
            }
            match reader.read(4 << 20) {
                Ok(batch) if batch.is_empty() => {
                    let wait = next_collect
                        .min(next_expire)
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_secs(1));
                    rt.block_on(reader.wait(wait));
                }
                Ok(batch) => {
                    let now_ms = now_ms();
                    for rec in batch {
                        self.consume(rec.version, &rec.payload, now_ms);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "metrics generator: reading the queue failed; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            let s = reader.skipped();
            if s > skipped {
                self.metrics.skipped_records.inc_by(s - skipped);
                skipped = s;
            }
            let now = Instant::now();
            if now >= next_expire {
                self.expire(now_ms());
                next_expire = now + Duration::from_secs(1);
            }
            if now >= next_collect {
                senders.push(self.collect(reader.position(), now_ms()));
                next_collect += interval;
                if next_collect < now {
                    next_collect = now + interval;
                }
            }
            cpu.account();
        }
        // A last collection, sent for a few seconds; what is not sent by then is re-read at the
        // next start (its offset is not committed).
        senders.push(self.collect(reader.position(), now_ms()));
        let deadline = Instant::now() + Duration::from_secs(3);
        while senders.pending() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        rt.block_on(senders.commit());
        cpu.account();
        tracing::info!("metrics generator stopped");
    }

    /// Feeds one queue record to its tenant's processors.
    pub fn consume(&mut self, version: u8, payload: &[u8], now_ms: i64) {
        if version != vivace_queue::wal::RECORD_VERSION {
            self.metrics.bad_records.inc();
            return;
        }
        let rec = match QueueRecord::decode(payload) {
            Ok(r) => r,
            Err(_) => {
                self.metrics.bad_records.inc();
                return;
            }
        };
        let bad = self.metrics.bad_records.clone();
        let Some(state) = self.tenant(&rec.tenant) else {
            return;
        };
        let mut spans_seen = 0u64;
        for (id, bytes) in rec.ids.iter().zip(&rec.traces) {
            let Ok(trace) = Trace::decode(bytes.as_ref()) else {
                bad.inc();
                continue;
            };
            let tid = spans::trace_hex(id);
            for rs in &trace.resource_spans {
                let resource: &[_] = rs
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or(&[]);
                let spans: Vec<_> = rs.scope_spans.iter().flat_map(|ss| &ss.spans).collect();
                spans_seen += spans.len() as u64;
                if let Some(sm) = &mut state.span_metrics {
                    sm.push(&mut state.registry, resource, &spans, &tid, now_ms);
                }
                if let Some(sg) = &mut state.service_graphs {
                    sg.push(&mut state.registry, resource, &spans, id, now_ms);
                }
                if let Some(hi) = &mut state.host_info {
                    hi.push(&mut state.registry, resource, now_ms);
                }
            }
        }
        self.metrics
            .spans
            .get_or_create(&TenantLabel {
                tenant: rec.tenant.clone(),
            })
            .inc_by(spans_seen);
    }

    /// Expires waiting service-graph edges of every tenant.
    pub fn expire(&mut self, now_ms: i64) {
        for st in self.tenants.values_mut() {
            if let Some(sg) = &mut st.service_graphs {
                sg.expire(&mut st.registry, now_ms);
            }
        }
    }

    /// Every tenant's series now, as remote-write bodies, tagged with `offset`.
    pub fn collect(&mut self, offset: Offset, now_ms: i64) -> remote_write::Collection {
        let exemplars = self
            .cfg
            .storage
            .remote_write
            .iter()
            .any(|r| r.send_exemplars);
        let mut writes = Vec::new();
        for (tenant, st) in &mut self.tenants {
            let mut series = Vec::new();
            st.registry.collect(now_ms, exemplars, &mut series);
            let t = TenantLabel {
                tenant: tenant.clone(),
            };
            self.metrics
                .active_series
                .get_or_create(&t)
                .set(st.registry.active_series() as i64);
            let l = st.registry.limited;
            for (reason, now, before) in [
                ("max_active_series", l.series, st.reported_limited.series),
                (
                    "max_cardinality_per_label",
                    l.label_values,
                    st.reported_limited.label_values,
                ),
            ] {
                if now > before {
                    tracing::warn!(
                        tenant,
                        reason,
                        samples = now - before,
                        "metrics generator series limited"
                    );
                    self.metrics
                        .series_limited
                        .get_or_create(&ReasonLabel {
                            tenant: tenant.clone(),
                            reason: reason.into(),
                        })
                        .inc_by(now - before);
                }
            }
            st.reported_limited = l;
            if let Some(sg) = &st.service_graphs {
                let s = sg.stats;
                let r = st.reported_edges;
                for (outcome, now, before) in [
                    ("paired", s.paired, r.paired),
                    ("database", s.database, r.database),
                    ("virtual_node", s.virtual_node, r.virtual_node),
                    ("expired_unpaired", s.unpaired, r.unpaired),
                    ("refused", s.refused, r.refused),
                ] {
                    if now > before {
                        self.metrics
                            .edges
                            .get_or_create(&OutcomeLabel {
                                tenant: tenant.clone(),
                                outcome: outcome.into(),
                            })
                            .inc_by(now - before);
                    }
                }
                st.reported_edges = s;
                self.metrics
                    .edges_waiting
                    .get_or_create(&t)
                    .set(sg.waiting() as i64);
            }
            if st.disable_collection || series.is_empty() {
                continue;
            }
            let samples = series.iter().map(|s| s.samples.len() as u64).sum();
            writes.push(remote_write::TenantWrite {
                tenant: tenant.clone(),
                headers: st.headers.clone(),
                body: remote_write::encode(&remote_write::WriteRequest { timeseries: series }),
                samples,
            });
        }
        remote_write::Collection { offset, writes }
    }

    /// The tenant's state, (re)built when its overrides changed; `None` when no processor runs
    /// for it.
    fn tenant(&mut self, tenant: &str) -> Option<&mut TenantState> {
        let o = self.overrides.tenant(tenant);
        let rebuild = match self.tenants.get(tenant) {
            Some(st) if Arc::ptr_eq(&st.overrides, &o) => false,
            Some(st) => {
                let setup = setup(&o);
                if st.setup == setup {
                    self.tenants.get_mut(tenant).expect("present").overrides = o.clone();
                    false
                } else {
                    true
                }
            }
            None => !o.metrics_generator.processors.is_empty(),
        };
        if rebuild {
            match self.build(tenant, o) {
                Ok(Some(st)) => {
                    self.tenants.insert(tenant.to_string(), st);
                }
                Ok(None) => {
                    self.tenants.remove(tenant);
                }
                Err(e) => {
                    if self.warned.insert(format!("{tenant}: {e}")) {
                        tracing::error!(
                            tenant,
                            error = %e,
                            "metrics generator settings are invalid; the tenant's previous settings stay"
                        );
                    }
                }
            }
        }
        self.tenants.get_mut(tenant)
    }

    fn build(&mut self, tenant: &str, o: Arc<TenantOverrides>) -> Result<Option<TenantState>> {
        let setup = setup(&o);
        if setup.processors.is_empty() {
            return Ok(None);
        }
        let key = format!("overrides.{tenant}.metrics_generator.processor");
        let mut base = serde_yaml_ng::to_value(&self.cfg.processor)
            .map_err(|e| Error::invalid("metrics_generator.processor", e.to_string()))?;
        if !setup.processor.is_null() {
            merge(&mut base, setup.processor.clone());
        }
        let pc: ProcessorConfig =
            serde_yaml_ng::from_value(base).map_err(|e| Error::invalid(&key, e.to_string()))?;
        let r = &self.cfg.registry;
        let mut constant: Vec<(String, String)> = r
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !r.inject_tenant_id_as.is_empty() {
            constant.push((r.inject_tenant_id_as.clone(), tenant.to_string()));
        }
        constant.sort();
        let mut registry = Registry::new(RegistrySettings {
            constant_labels: constant,
            max_label_name_length: r.max_label_name_length,
            max_label_value_length: r.max_label_value_length,
            stale_ms: r.stale_duration.as_millis() as i64,
            max_active_series: setup.max_active_series,
            max_cardinality_per_label: setup.max_cardinality_per_label,
            trace_id_label: setup.trace_id_label.clone(),
        });
        let mut sm = spanmetrics::Enabled {
            count: false,
            latency: false,
            size: false,
        };
        let mut sg = servicegraphs::Enabled {
            request: false,
            latency: false,
        };
        let mut host = false;
        for p in &setup.processors {
            match p.as_str() {
                "span-metrics" => {
                    sm = spanmetrics::Enabled {
                        count: true,
                        latency: true,
                        size: true,
                    }
                }
                "span-metrics-count" => sm.count = true,
                "span-metrics-latency" => sm.latency = true,
                "span-metrics-size" => sm.size = true,
                "service-graphs" => {
                    sg = servicegraphs::Enabled {
                        request: true,
                        latency: true,
                    }
                }
                "service-graphs-request" | "service-graphs-count" => sg.request = true,
                "service-graphs-latency" => sg.latency = true,
                "host-info" => host = true,
                "local-blocks" => {
                    if self.warned.insert(format!("{tenant}:local-blocks")) {
                        tracing::info!(
                            tenant,
                            "processor local-blocks: vivace serves TraceQL metrics on recent data from the live-store; nothing to run"
                        );
                    }
                }
                other => {
                    if self.warned.insert(format!("{tenant}:{other}")) {
                        tracing::warn!(
                            tenant,
                            processor = other,
                            "unknown or unsupported metrics generator processor; ignored"
                        );
                    }
                }
            }
        }
        let span_metrics = if sm.count || sm.latency || sm.size {
            Some(spanmetrics::SpanMetrics::new(
                pc.span_metrics,
                sm,
                &mut registry,
            )?)
        } else {
            None
        };
        let service_graphs = (sg.request || sg.latency)
            .then(|| servicegraphs::ServiceGraphs::new(pc.service_graphs, sg, &mut registry));
        let host_info = host.then(|| hostinfo::HostInfo::new(pc.host_info, &mut registry));
        tracing::info!(tenant, processors = ?setup.processors, "metrics generator processors set");
        Ok(Some(TenantState {
            disable_collection: o.metrics_generator.disable_collection,
            headers: o
                .metrics_generator
                .remote_write_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            overrides: o,
            setup,
            registry,
            span_metrics,
            service_graphs,
            host_info,
            reported_limited: Default::default(),
            reported_edges: Default::default(),
        }))
    }
}

fn setup(o: &TenantOverrides) -> Setup {
    let g = &o.metrics_generator;
    let mut processors = g.processors.clone();
    processors.sort();
    processors.dedup();
    Setup {
        processors,
        processor: g.processor.clone().unwrap_or(serde_yaml_ng::Value::Null),
        max_active_series: g.max_active_series,
        max_cardinality_per_label: g.max_cardinality_per_label,
        trace_id_label: if g.trace_id_label_name.is_empty() {
            "traceID".into()
        } else {
            g.trace_id_label_name.clone()
        },
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
