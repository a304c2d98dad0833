//! The host-info processor: `traces_host_info{grafana_host_id="<host>"} = 1` for each host that
//! sent spans, the host named by the first of `host_identifiers` (`k8s.node.name`, `host.id`)
//! among the resource attributes.

use vivace_proto::otlp::common::KeyValue;

use crate::config::HostInfoConfig;
use crate::registry::{MetricId, Registry};
use crate::spans::find_string;

#[derive(Debug)]
pub struct HostInfo {
    identifiers: Vec<String>,
    gauge: MetricId,
    value: Vec<String>,
}

impl HostInfo {
    pub fn new(cfg: HostInfoConfig, reg: &mut Registry) -> HostInfo {
        let name = if cfg.metric_name.is_empty() {
            "traces_host_info".to_string()
        } else {
            cfg.metric_name
        };
        HostInfo {
            identifiers: cfg.host_identifiers,
            gauge: reg.gauge(&name, &["grafana_host_id".to_string()]),
            value: vec![String::new()],
        }
    }

    pub fn push(&mut self, reg: &mut Registry, resource: &[KeyValue], now_ms: i64) {
        if let Some(host) = self
            .identifiers
            .iter()
            .find_map(|k| find_string(k, &[resource]))
            .filter(|h| !h.is_empty())
        {
            self.value[0] = host;
            reg.set(self.gauge, &self.value, 1.0, now_ms);
        }
    }
}
