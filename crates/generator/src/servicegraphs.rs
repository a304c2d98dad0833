//! The service-graphs processor (Tempo's `processor/servicegraphs`).
//!
//! An edge is keyed by (trace ID, span ID): a CLIENT or PRODUCER span fills the client side under
//! its own span ID, a SERVER or CONSUMER span fills the server side under its parent's span ID.
//! When both sides are there the edge is complete and counted:
//! `traces_service_graph_request_total`, `traces_service_graph_request_failed_total` (either
//! side's status is ERROR), `traces_service_graph_request_server_seconds` and `_client_seconds`
//! (exemplar: the trace ID), and for messaging edges with
//! `enable_messaging_system_latency_histogram` `traces_service_graph_request_messaging_system_seconds`
//! (consumer start − producer end). Labels: `client`, `server`, `connection_type` (`""`,
//! `messaging_system`, `database`, `virtual_node`), `virtual_node` with
//! `enable_virtual_node_label`, and each dimension (`client_<d>`/`server_<d>` with
//! `enable_client_server_prefix`, else `<d>` with the server's value, else the client's).
//!
//! A client span that names a database (`database_name_attributes`, `db.system`) completes at
//! once: the server is its `peer.service`, `server.address`, `network.peer.address[:port]` or the
//! database name. An edge still alone after `wait` expires: a root server span gets the client
//! `user`, a client span with a peer attribute gets that as its server (virtual nodes); any other
//! is dropped and counted as unpaired. Past `max_items` waiting edges, new ones are refused and
//! counted.

use std::collections::{HashMap, VecDeque};

use vivace_proto::otlp::common::KeyValue;
use vivace_proto::otlp::trace::Span;
use vivace_proto::otlp::trace::span::SpanKind;

use crate::config::ServiceGraphsConfig;
use crate::registry::{MetricId, Registry};
use crate::spans::{duration_seconds, find_string, is_error, kind, sanitize_label, trace_hex};

/// Which service-graph series the tenant's processors ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enabled {
    pub request: bool,
    pub latency: bool,
}

/// What happened to edges, since the processor was created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EdgeStats {
    /// Client and server spans paired.
    pub paired: u64,
    /// Database edges completed from one client span.
    pub database: u64,
    /// Expired edges completed with a virtual node (`user`, or a peer attribute).
    pub virtual_node: u64,
    /// Expired edges with no way to complete them.
    pub unpaired: u64,
    /// Refused because `max_items` edges were waiting.
    pub refused: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Plain,
    Messaging,
    Database,
    Virtual,
}

impl Conn {
    fn label(self) -> &'static str {
        match self {
            Conn::Plain => "",
            Conn::Messaging => "messaging_system",
            Conn::Database => "database",
            Conn::Virtual => "virtual_node",
        }
    }
}

type Key = [u8; 24];

#[derive(Debug, Default)]
struct Side {
    service: String,
    latency: f64,
    dims: Vec<String>,
}

#[derive(Debug)]
struct Edge {
    client: Option<Side>,
    server: Option<Side>,
    conn: Conn,
    failed: bool,
    /// The first peer attribute of the client span: the server of a virtual node.
    peer: Option<String>,
    /// The server of a database edge.
    database: Option<String>,
    client_end_ns: u64,
    server_start_ns: u64,
    expires_ms: i64,
}

#[derive(Debug)]
pub struct ServiceGraphs {
    cfg: ServiceGraphsConfig,
    total: Option<MetricId>,
    failed: Option<MetricId>,
    server_seconds: Option<MetricId>,
    client_seconds: Option<MetricId>,
    messaging_seconds: Option<MetricId>,
    dim_labels: Vec<String>,
    edges: HashMap<Key, Edge>,
    expiry: VecDeque<(i64, Key)>,
    pub stats: EdgeStats,
}

const RESERVED: &[&str] = &["client", "server", "connection_type", "virtual_node"];

impl ServiceGraphs {
    pub fn new(cfg: ServiceGraphsConfig, enabled: Enabled, reg: &mut Registry) -> ServiceGraphs {
        let mut labels: Vec<String> = ["client", "server", "connection_type"]
            .map(String::from)
            .to_vec();
        if cfg.enable_virtual_node_label {
            labels.push("virtual_node".into());
        }
        let mut dim_labels = Vec::new();
        for d in &cfg.dimensions {
            let s = sanitize_label(d, RESERVED);
            if cfg.enable_client_server_prefix {
                dim_labels.push(format!("client_{s}"));
                dim_labels.push(format!("server_{s}"));
            } else {
                dim_labels.push(s);
            }
        }
        labels.extend(dim_labels.iter().cloned());
        let b = &cfg.histogram_buckets;
        let total = enabled
            .request
            .then(|| reg.counter("traces_service_graph_request_total", &labels));
        let failed = enabled
            .request
            .then(|| reg.counter("traces_service_graph_request_failed_total", &labels));
        let server_seconds = enabled
            .latency
            .then(|| reg.histogram("traces_service_graph_request_server_seconds", &labels, b));
        let client_seconds = enabled
            .latency
            .then(|| reg.histogram("traces_service_graph_request_client_seconds", &labels, b));
        let messaging_seconds = (enabled.latency && cfg.enable_messaging_system_latency_histogram)
            .then(|| {
                reg.histogram(
                    "traces_service_graph_request_messaging_system_seconds",
                    &labels,
                    b,
                )
            });
        ServiceGraphs {
            cfg,
            total,
            failed,
            server_seconds,
            client_seconds,
            messaging_seconds,
            dim_labels,
            edges: HashMap::new(),
            expiry: VecDeque::new(),
            stats: EdgeStats::default(),
        }
    }

    /// Edges waiting for their other side.
    pub fn waiting(&self) -> usize {
        self.edges.len()
    }

    fn dims(&self, resource: &[KeyValue], span: &Span) -> Vec<String> {
        self.cfg
            .dimensions
            .iter()
            .map(|d| find_string(d, &[resource, &span.attributes]).unwrap_or_default())
            .collect()
    }

    /// Pairs the spans of one resource.
    pub fn push(
        &mut self,
        reg: &mut Registry,
        resource: &[KeyValue],
        spans: &[&Span],
        trace_id: &[u8],
        now_ms: i64,
    ) {
        let service = find_string("service.name", &[resource]).unwrap_or_default();
        for span in spans {
            let k = kind(span);
            let (own_id, is_client) = match k {
                SpanKind::Client | SpanKind::Producer => (&span.span_id, true),
                SpanKind::Server | SpanKind::Consumer => (&span.parent_span_id, false),
                _ => continue,
            };
            let key = key(trace_id, own_id);
            if !self.edges.contains_key(&key) {
                if self.edges.len() >= self.cfg.max_items {
                    self.stats.refused += 1;
                    continue;
                }
                let expires_ms = now_ms + self.cfg.wait.as_millis() as i64;
                self.edges.insert(
                    key,
                    Edge {
                        client: None,
                        server: None,
                        conn: Conn::Plain,
                        failed: false,
                        peer: None,
                        database: None,
                        client_end_ns: 0,
                        server_start_ns: 0,
                        expires_ms,
                    },
                );
                self.expiry.push_back((expires_ms, key));
            }
            let dims = self.dims(resource, span);
            let peer = is_client
                .then(|| {
                    self.cfg
                        .peer_attributes
                        .iter()
                        .find_map(|a| find_string(a, &[&span.attributes, resource]))
                })
                .flatten();
            let database = if k == SpanKind::Client {
                self.database_server(resource, span)
            } else {
                None
            };
            let e = self.edges.get_mut(&key).expect("inserted above");
            e.failed |= is_error(span);
            if matches!(k, SpanKind::Producer | SpanKind::Consumer) {
                e.conn = Conn::Messaging;
            }
            let side = Side {
                service: service.clone(),
                latency: duration_seconds(span),
                dims,
            };
            if is_client {
                e.client = Some(side);
                e.client_end_ns = span.end_time_unix_nano;
                if peer.is_some() {
                    e.peer = peer;
                }
                if let Some(db) = database {
                    e.conn = Conn::Database;
                    e.database = Some(db);
                }
            } else {
                e.server = Some(side);
                e.server_start_ns = span.start_time_unix_nano;
            }
            let done = e.server.is_some() && e.client.is_some();
            let db = e.conn == Conn::Database && e.server.is_none();
            if done || db {
                let e = self.edges.remove(&key).expect("present");
                if done {
                    self.stats.paired += 1;
                } else {
                    self.stats.database += 1;
                }
                self.complete(reg, e, trace_id, None, now_ms);
            }
        }
    }

    /// The server of a database call made by a client span, or `None` when it is not one.
    fn database_server(&self, resource: &[KeyValue], span: &Span) -> Option<String> {
        let attrs: [&[KeyValue]; 2] = [&span.attributes, resource];
        let name = self
            .cfg
            .database_name_attributes
            .iter()
            .find_map(|a| find_string(a, &attrs));
        let is_db = name.is_some()
            || find_string("db.system", &attrs).is_some()
            || find_string("db.system.name", &attrs).is_some();
        if !is_db {
            return None;
        }
        let server = find_string("peer.service", &attrs)
            .or_else(|| find_string("server.address", &attrs))
            .or_else(|| {
                find_string("network.peer.address", &attrs).map(|a| {
                    match find_string("network.peer.port", &attrs) {
                        Some(p) => format!("{a}:{p}"),
                        None => a,
                    }
                })
            })
            .or(name)
            .unwrap_or_default();
        // A database with no name waits like any edge (and may become a virtual node).
        (!server.is_empty()).then_some(server)
    }

    /// Expires edges waiting past `wait`: virtual nodes where a side can be named, the others
    /// counted as unpaired.
    pub fn expire(&mut self, reg: &mut Registry, now_ms: i64) {
        while let Some(&(at, key)) = self.expiry.front() {
            if at > now_ms {
                break;
            }
            self.expiry.pop_front();
            let Some(e) = self.edges.get(&key) else {
                continue;
            };
            if e.expires_ms != at {
                continue;
            }
            let mut e = self.edges.remove(&key).expect("present");
            let root_server = e.client.is_none() && key[16..] == [0u8; 8];
            if root_server {
                e.client = Some(Side {
                    service: "user".into(),
                    ..Side::default()
                });
                e.conn = Conn::Virtual;
                self.stats.virtual_node += 1;
                self.complete(reg, e, &key[..16], Some("client"), now_ms);
            } else if e.server.is_none() && e.client.is_some() && e.peer.is_some() {
                e.server = Some(Side {
                    service: e.peer.clone().unwrap_or_default(),
                    ..Side::default()
                });
                e.conn = Conn::Virtual;
                self.stats.virtual_node += 1;
                self.complete(reg, e, &key[..16], Some("server"), now_ms);
            } else {
                self.stats.unpaired += 1;
            }
        }
    }

    fn complete(
        &mut self,
        reg: &mut Registry,
        e: Edge,
        trace_id: &[u8],
        virtual_node: Option<&str>,
        now_ms: i64,
    ) {
        let client = e.client.unwrap_or_default();
        let server = match (e.server, &e.database) {
            (Some(s), _) => s,
            (None, Some(db)) => Side {
                service: db.clone(),
                latency: client.latency,
                dims: Vec::new(),
            },
            (None, None) => Side::default(),
        };
        let mut values = vec![
            client.service.clone(),
            server.service.clone(),
            e.conn.label().to_string(),
        ];
        if self.cfg.enable_virtual_node_label {
            values.push(virtual_node.unwrap_or_default().to_string());
        }
        for i in 0..self.cfg.dimensions.len() {
            let c = client.dims.get(i).cloned().unwrap_or_default();
            let s = server.dims.get(i).cloned().unwrap_or_default();
            if self.cfg.enable_client_server_prefix {
                values.push(c);
                values.push(s);
            } else {
                values.push(if s.is_empty() { c } else { s });
            }
        }
        debug_assert_eq!(
            values.len(),
            3 + self.dim_labels.len() + usize::from(self.cfg.enable_virtual_node_label)
        );
        let tid = trace_hex(trace_id);
        if let Some(id) = self.total {
            reg.inc(id, &values, 1.0, now_ms);
        }
        if let Some(id) = self.failed
            && e.failed
        {
            reg.inc(id, &values, 1.0, now_ms);
        }
        if let Some(id) = self.server_seconds {
            reg.observe(id, &values, server.latency, Some(&tid), now_ms);
        }
        if let Some(id) = self.client_seconds {
            reg.observe(id, &values, client.latency, Some(&tid), now_ms);
        }
        if let Some(id) = self.messaging_seconds
            && e.conn == Conn::Messaging
            && e.server_start_ns > 0
            && e.client_end_ns > 0
        {
            let lag = e.server_start_ns.saturating_sub(e.client_end_ns) as f64 / 1e9;
            reg.observe(id, &values, lag, Some(&tid), now_ms);
        }
    }
}

fn key(trace_id: &[u8], span_id: &[u8]) -> Key {
    let mut k = [0u8; 24];
    let t = trace_id.len().min(16);
    k[16 - t..16].copy_from_slice(&trace_id[..t]);
    let s = span_id.len().min(8);
    k[16..16 + s].copy_from_slice(&span_id[..s]);
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistrySettings;
    use vivace_proto::otlp::common::{AnyValue, any_value};

    fn registry() -> Registry {
        Registry::new(RegistrySettings {
            constant_labels: Vec::new(),
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            stale_ms: 60_000,
            max_active_series: 0,
            max_cardinality_per_label: 0,
            trace_id_label: "traceID".into(),
        })
    }

    fn span(kind: SpanKind, id: u8, parent: u8) -> Span {
        Span {
            span_id: vec![id; 8],
            parent_span_id: if parent == 0 {
                Vec::new()
            } else {
                vec![parent; 8]
            },
            kind: kind as i32,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            ..Span::default()
        }
    }

    fn resource(service: &str) -> Vec<KeyValue> {
        vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(service.into())),
            }),
            ..KeyValue::default()
        }]
    }

    #[test]
    fn unpaired_edges_expire_and_a_full_store_refuses() {
        let mut cfg = ServiceGraphsConfig {
            max_items: 2,
            ..ServiceGraphsConfig::default()
        };
        cfg.wait = std::time::Duration::from_millis(100);
        let mut reg = registry();
        let on = Enabled {
            request: true,
            latency: true,
        };
        let mut sg = ServiceGraphs::new(cfg, on, &mut reg);
        let t = [7u8; 16];
        // Two client spans with no peer attribute wait; a third is refused.
        let (a, b, c) = (
            span(SpanKind::Client, 1, 9),
            span(SpanKind::Client, 2, 9),
            span(SpanKind::Client, 3, 9),
        );
        sg.push(&mut reg, &resource("a"), &[&a, &b, &c], &t, 0);
        assert_eq!((sg.waiting(), sg.stats.refused), (2, 1));
        // A server span pairs with the first in the other order of arrival.
        let s = span(SpanKind::Server, 4, 1);
        sg.push(&mut reg, &resource("b"), &[&s], &t, 10);
        assert_eq!((sg.waiting(), sg.stats.paired), (1, 1));
        sg.expire(&mut reg, 50);
        assert_eq!(sg.stats.unpaired, 0, "not yet");
        sg.expire(&mut reg, 100);
        assert_eq!((sg.waiting(), sg.stats.unpaired), (0, 1));
        let mut out = Vec::new();
        reg.collect(200, false, &mut out);
        let total: Vec<_> = out
            .iter()
            .filter(|t| {
                t.labels
                    .iter()
                    .any(|l| l.value == "traces_service_graph_request_total")
            })
            .collect();
        assert_eq!(total.len(), 1);
        assert_eq!(total[0].samples.last().unwrap().value, 1.0);
        assert!(
            total[0]
                .labels
                .iter()
                .any(|l| l.name == "client" && l.value == "a")
        );
        assert!(
            total[0]
                .labels
                .iter()
                .any(|l| l.name == "server" && l.value == "b")
        );
    }
}
